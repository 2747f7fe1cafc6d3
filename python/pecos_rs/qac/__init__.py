"""Session-aware query autocompletion."""

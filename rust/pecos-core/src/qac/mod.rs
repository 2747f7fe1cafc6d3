//! Query autocompletion (QAC): the queries a user may be typing, given the prefix typed so far
//! (PECOS's `examples/qp2q`, session-aware query autocompletion, Yadav et al. KDD 2021).
//!
//! * [`CompletionIndex`]: the queries of a log with their counts, answering "the `k` most frequent
//!   completions of a prefix", backing off to shorter prefixes when there are fewer than `k`:
//!   the most-frequent-query (MFQ) baseline, and the fallback of the session model; its ranges of
//!   completions ([`CompletionIndex::prefix_range`]) restrict that model's search;
//! * `range_min`: the range-minimum structure over the queries' ranks that the top-k search
//!   walks.
//!
//! Owns the completion index's file format (in [`crate::io`]'s envelope). Uses only
//! [`crate::io`]; the session model will add the XR-Linear stages.

mod completion;
mod range_min;

pub use completion::{CompletionIndex, Suggestions, QAC_FORMAT_VERSION};

//! The single mapping from core errors to Python exceptions.
//!
//! The exception classes are defined in Python (`pecos_rs/exceptions.py`) so that they can inherit
//! from both `PecosError` and `ValueError`, which sklearn-style callers expect; they are imported
//! once, on first use, and cached as typed classes.

use pecos_core::PecosError;
use pyo3::exceptions::{PyFileNotFoundError, PyKeyboardInterrupt, PyOSError, PyPermissionError};
use pyo3::prelude::*;
use std::io::ErrorKind;

pyo3::import_exception!(pecos_rs.exceptions, InvalidInputError);
pyo3::import_exception!(pecos_rs.exceptions, InvalidParameterError);
pyo3::import_exception!(pecos_rs.exceptions, ModelFormatError);

/// A core error on its way to Python.
pub struct PyPecosErr(PecosError);

impl From<PecosError> for PyPecosErr {
    fn from(e: PecosError) -> Self {
        PyPecosErr(e)
    }
}

impl From<PyPecosErr> for PyErr {
    fn from(err: PyPecosErr) -> PyErr {
        let msg = err.0.to_string();
        match &err.0 {
            PecosError::InvalidInput(_) | PecosError::ShapeMismatch { .. } => {
                InvalidInputError::new_err(msg)
            }
            PecosError::InvalidParam { .. } => InvalidParameterError::new_err(msg),
            PecosError::Format(_) => ModelFormatError::new_err(msg),
            PecosError::Interrupted => PyKeyboardInterrupt::new_err(msg),
            PecosError::Io(e) => match e.kind() {
                ErrorKind::NotFound => PyFileNotFoundError::new_err(msg),
                ErrorKind::PermissionDenied => PyPermissionError::new_err(msg),
                _ => PyOSError::new_err(msg),
            },
        }
    }
}

/// A core result as a Python result.
pub fn core<T>(r: Result<T, PecosError>) -> PyResult<T> {
    r.map_err(|e| PyPecosErr::from(e).into())
}

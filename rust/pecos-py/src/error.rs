//! The single mapping from core errors to Python exceptions.
//!
//! The exception classes are defined in Python (`pecos_rs/exceptions.py`) so that they can inherit
//! from both `PecosError` and `ValueError`, which sklearn-style callers expect.

use pecos_core::PecosError;
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyPermissionError};
use pyo3::prelude::*;
use pyo3::types::PyType;
use std::io::ErrorKind;

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
        let class = match &err.0 {
            PecosError::InvalidInput(_) | PecosError::ShapeMismatch { .. } => "InvalidInputError",
            PecosError::InvalidParam { .. } => "InvalidParameterError",
            PecosError::Format(_) => "ModelFormatError",
            PecosError::Io(e) => {
                return match e.kind() {
                    ErrorKind::NotFound => PyFileNotFoundError::new_err(msg),
                    ErrorKind::PermissionDenied => PyPermissionError::new_err(msg),
                    _ => PyOSError::new_err(msg),
                }
            }
        };
        Python::attach(|py| {
            let cls = py
                .import("pecos_rs.exceptions")
                .and_then(|m| m.getattr(class))
                .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
            match cls {
                Ok(cls) => PyErr::from_type(cls, msg),
                Err(e) => e,
            }
        })
    }
}

/// `Result` of a core call, convertible to `PyResult` with `?`.
pub type CoreResult<T> = Result<T, PyPecosErr>;

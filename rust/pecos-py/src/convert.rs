//! Every conversion between Python objects and core types: sparse matrices (borrowed, never
//! copied), label trees, top-k results, parameter maps and call arguments, lists of strings and of
//! numbers.

use crate::error::core;
use numpy::{
    PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pecos_core::index::ClusterChain;
use pecos_core::infer::TopK;
use pecos_core::params::{Params, Value};
use pecos_core::sparse::CsrView;
use pecos_core::PecosError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use std::borrow::Cow;

/// A scipy CSR matrix passed as `(indptr int64, indices int32, data float32, n_rows, n_cols)`;
/// the arrays are borrowed, not copied.
#[derive(FromPyObject)]
pub struct CsrArgs<'py>(
    PyReadonlyArray1<'py, i64>,
    PyReadonlyArray1<'py, i32>,
    PyReadonlyArray1<'py, f32>,
    usize,
    usize,
);

impl CsrArgs<'_> {
    /// The validated view of the matrix.
    pub fn view(&self) -> PyResult<CsrView<'_>> {
        core(CsrView::try_new(
            self.3,
            self.4,
            self.0.as_slice()?,
            self.1.as_slice()?,
            self.2.as_slice()?,
        ))
    }
}

/// A label tree passed as one parent array (uint32) per layer, checked.
pub fn cluster_chain(layers: &[PyReadonlyArray1<'_, u32>]) -> PyResult<ClusterChain> {
    let assignments = layers
        .iter()
        .map(|a| Ok(a.as_slice()?.to_vec()))
        .collect::<PyResult<Vec<_>>>()?;
    core(ClusterChain::try_new(assignments))
}

/// A CSR (or CSC) matrix for Python: `(indptr, indices, data, shape)`.
pub type CsrArrays<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i32>>,
    Bound<'py, PyArray1<f32>>,
    (usize, usize),
);

/// Moves the arrays of a compressed sparse matrix into numpy (no copy).
pub fn csr_arrays(
    py: Python<'_>,
    indptr: Vec<i64>,
    indices: Vec<i32>,
    data: Vec<f32>,
    shape: (usize, usize),
) -> CsrArrays<'_> {
    (
        PyArray1::from_vec(py, indptr),
        PyArray1::from_vec(py, indices),
        PyArray1::from_vec(py, data),
        shape,
    )
}

/// A label tree for Python: the parent array of each layer, root layer first.
pub fn chain_arrays<'py>(py: Python<'py>, chain: &ClusterChain) -> Vec<Bound<'py, PyArray1<u32>>> {
    chain
        .layers()
        .iter()
        .map(|layer| PyArray1::from_slice(py, layer.parent_of()))
        .collect()
}

/// `(labels int64 (n, k), scores float32 (n, k))`.
pub type TopKArrays<'py> = (Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<f32>>);

/// A top-k result given as `(labels int64 (n, k), scores float32 (n, k))`, copied.
pub type TopKArgs<'py> = (PyReadonlyArray2<'py, i64>, PyReadonlyArray2<'py, f32>);

/// The core's top-k of a result given by Python, both arrays of the same shape.
pub fn topk_of(
    labels: &PyReadonlyArray2<'_, i64>,
    scores: &PyReadonlyArray2<'_, f32>,
) -> PyResult<TopK> {
    if labels.shape() != scores.shape() {
        return core(Err(PecosError::InvalidInput(format!(
            "labels of shape {:?} with scores of shape {:?}",
            labels.shape(),
            scores.shape()
        ))));
    }
    Ok(TopK {
        k: labels.shape()[1],
        labels: labels.as_array().iter().copied().collect(),
        scores: scores.as_array().iter().copied().collect(),
    })
}

/// Moves top-k results of `n_rows` queries into numpy (no copy).
pub fn topk_arrays(py: Python<'_>, top: TopK, n_rows: usize) -> PyResult<TopKArrays<'_>> {
    let TopK { k, labels, scores } = top;
    Ok((
        PyArray1::from_vec(py, labels).reshape([n_rows, k])?,
        PyArray1::from_vec(py, scores).reshape([n_rows, k])?,
    ))
}

/// An estimator's parameters as a dict `{name: value}`, read into the core's [`Params`]. Values
/// are taken as they are: Python's side turns numpy scalars into Python ones first.
pub struct ParamsArg(pub Params);

impl<'py> FromPyObject<'_, 'py> for ParamsArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        let dict = obj.cast::<PyDict>().map_err(|_| {
            PyErr::from(crate::error::PyPecosErr::from(PecosError::InvalidInput(
                "parameters must be given as a dict".into(),
            )))
        })?;
        let mut entries = Vec::with_capacity(dict.len());
        for (key, value) in dict.iter() {
            entries.push((key.extract::<String>()?, param_value(&value)?));
        }
        Ok(ParamsArg(Params::new(entries)))
    }
}

impl ParamsArg {
    /// The parameters as `from_params` (a stage's reader) reads them; a parameter it does not
    /// read is refused as unknown.
    pub fn read<T>(
        self,
        from_params: impl FnOnce(&mut Params) -> pecos_core::Result<T>,
    ) -> PyResult<T> {
        let mut p = self.0;
        let value = core(from_params(&mut p))?;
        core(p.finish())?;
        Ok(value)
    }
}

/// One parameter value on its own (for a function with a single parameter).
pub struct ValueArg(pub Value);

impl<'py> FromPyObject<'_, 'py> for ValueArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        Ok(ValueArg(param_value(&obj)?))
    }
}

/// One parameter value; anything but None, bool, int, float, str and tuples or lists of them
/// is kept by its `repr`, for the error message.
fn param_value(v: &Bound<'_, PyAny>) -> PyResult<Value> {
    Ok(if v.is_none() {
        Value::None
    } else if let Ok(b) = v.cast::<PyBool>() {
        Value::Bool(b.is_true())
    } else if v.is_instance_of::<PyInt>() {
        match v.extract::<i128>() {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Other(v.repr()?.to_string()),
        }
    } else if let Ok(f) = v.cast::<PyFloat>() {
        Value::Float(f.value())
    } else if let Ok(s) = v.cast::<PyString>() {
        Value::Str(s.to_str()?.to_string())
    } else if v.is_instance_of::<PyTuple>() || v.is_instance_of::<PyList>() {
        Value::List(
            v.try_iter()?
                .map(|item| param_value(&item?))
                .collect::<PyResult<_>>()?,
        )
    } else {
        Value::Other(v.repr()?.to_string())
    })
}

/// A batch of strings (documents, queries, prefixes) copied out of a Python list: one buffer and
/// the end offset of each, so that the GIL can be released while they are read.
pub struct StrList {
    text: String,
    ends: Vec<usize>,
}

impl StrList {
    /// Copies a list of `str`; anything else in it is an `InvalidInputError` naming the item by
    /// `what` ("document") and its position, counted from `first` (the list may be one batch of
    /// many).
    pub fn from_list(items: &Bound<'_, PyList>, what: &str, first: usize) -> PyResult<Self> {
        let mut text = String::new();
        let mut ends = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            text.push_str(str_arg(&item, || format!("{what} {}", first + i))?);
            ends.push(text.len());
        }
        Ok(StrList { text, ends })
    }

    /// Number of strings.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn slices(&self) -> Vec<&str> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let s = &self.text[start..end];
                start = end;
                s
            })
            .collect()
    }
}

/// The text of a Python `str`; anything else is an `InvalidInputError` naming it by `name()`
/// ("document 3", "prefix"), built only then.
pub fn str_arg<'a>(item: &'a Bound<'_, PyAny>, name: impl Fn() -> String) -> PyResult<&'a str> {
    let s = item.cast::<PyString>().map_err(|_| {
        let kind = item
            .get_type()
            .name()
            .map_or_else(|_| "?".to_string(), |n| n.to_string());
        invalid(format!("{} is a {kind}, not a str", name()))
    })?;
    s.to_str().map_err(|_| {
        invalid(format!(
            "{} is not valid Unicode (it contains a lone surrogate)",
            name()
        ))
    })
}

/// Numbers given as a 1-D float64 array (borrowed when contiguous) or a sequence of numbers
/// (copied).
pub enum Floats<'py> {
    Array(PyReadonlyArray1<'py, f64>),
    List(Vec<f64>),
}

/// The numbers of argument `name`; anything else is an `InvalidInputError` naming it.
pub fn floats_arg<'py>(value: &Bound<'py, PyAny>, name: &str) -> PyResult<Floats<'py>> {
    if let Ok(array) = value.extract::<PyReadonlyArray1<'py, f64>>() {
        return Ok(Floats::Array(array));
    }
    let numbers = if value.is_instance_of::<PyString>() {
        None
    } else {
        value.extract::<Vec<f64>>().ok()
    };
    numbers.map(Floats::List).ok_or_else(|| {
        invalid(format!(
            "{name} must be a 1-D float64 array or a sequence of numbers"
        ))
    })
}

impl Floats<'_> {
    pub fn values(&self) -> Cow<'_, [f64]> {
        match self {
            Floats::Array(a) => a
                .as_slice()
                .map_or_else(|_| Cow::Owned(a.as_array().to_vec()), Cow::Borrowed),
            Floats::List(v) => Cow::Borrowed(v),
        }
    }
}

/// A count given as a call argument (`k`): an int `>= min`, checked by the core's parameter
/// contract (its checks and wording: bools refused, "k must be an integer >= 1, got 0").
pub fn count_arg(name: &str, value: &Bound<'_, PyAny>, min: usize) -> PyResult<usize> {
    // The common case without building a parameter map: a plain int in range.
    if value.is_exact_instance_of::<PyInt>() {
        if let Ok(v) = value.extract::<usize>() {
            if v >= min {
                return Ok(v);
            }
        }
    }
    let mut params = Params::new([(name.to_string(), param_value(value)?)]);
    core(params.count(name, min))
}

fn invalid(msg: String) -> PyErr {
    crate::error::PyPecosErr::from(PecosError::InvalidInput(msg)).into()
}

/// Caller metadata (a JSON string) kept with a saved artifact.
pub fn parse_metadata(json: &str) -> PyResult<serde_json::Value> {
    core(
        serde_json::from_str(json)
            .map_err(|e| PecosError::InvalidInput(format!("metadata is not JSON: {e}"))),
    )
}

/// What `__reduce__` returns for an object saved as `bytes`: pickling calls the class's
/// `from_bytes` on them, so pickles use the validated file format.
pub fn reduce_by_bytes<'py>(
    obj: &Bound<'py, PyAny>,
    bytes: Bound<'py, PyBytes>,
) -> PyResult<Bound<'py, PyTuple>> {
    let from_bytes = obj.get_type().getattr("from_bytes")?;
    let args = PyTuple::new(obj.py(), [bytes])?;
    PyTuple::new(obj.py(), [from_bytes, args.into_any()])
}

/// Label ranges `[start, end)` given as a uint32 `(n_rows, 2)` array, one per query row, checked
/// against the number of labels.
pub fn label_range_rows(
    ranges: &PyReadonlyArray2<'_, u32>,
    n_rows: usize,
    n_labels: usize,
) -> PyResult<Vec<std::ops::Range<u32>>> {
    let shape = ranges.shape();
    if shape != [n_rows, 2] {
        return core(Err(PecosError::InvalidInput(format!(
            "label_ranges must have shape ({n_rows}, 2), one [start, end) per row, got {shape:?}"
        ))));
    }
    let values = ranges.as_array();
    values
        .rows()
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            let (start, end) = (row[0], row[1]);
            if start > end || end as usize > n_labels {
                return core(Err(PecosError::InvalidInput(format!(
                    "label_ranges row {i} is [{start}, {end}): it must satisfy start <= end <= \
                     {n_labels} (the number of labels)"
                ))));
            }
            Ok(start..end)
        })
        .collect()
}

//! The parameter contract: a caller (the Python estimators) hands over an estimator's parameters
//! as one map of loosely typed [`Value`]s, exactly as the user set them, and each parameter is
//! read and validated here, once, with one wording: `"{name} must be {what}, got {value}"`.
//! Unknown names are refused, so a typo never passes silently.
//!
//! Each stage owns the parameters it uses (`index::HierarchicalKMeans::from_params`,
//! `train::TrainParams::from_params`, `infer::PredictParams::from_params`, the text
//! featurizers' configurations), built from a [`Params`] with the typed readers below.

use crate::error::{PecosError, Result};
use std::fmt;

/// A parameter value as the caller gave it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    /// Any integer a caller can express in 128 bits (Python ints beyond that arrive as `Other`).
    Int(i128),
    Float(f64),
    Str(String),
    /// A sequence (a Python tuple or list).
    List(Vec<Value>),
    /// Anything else, by its printed form (for the error message).
    Other(String),
}

impl fmt::Display for Value {
    /// Python's `repr` of the value, so that messages show what the user typed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::None => write!(f, "None"),
            Value::Bool(true) => write!(f, "True"),
            Value::Bool(false) => write!(f, "False"),
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) if v.is_nan() => write!(f, "nan"),
            Value::Float(v) if v.is_infinite() => {
                write!(f, "{}", if *v > 0.0 { "inf" } else { "-inf" })
            }
            Value::Float(v) if v.fract() == 0.0 && v.abs() < 1e16 => write!(f, "{v:.1}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::List(items) => {
                write!(f, "(")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{item}")?;
                }
                write!(f, ")")
            }
            Value::Other(repr) => write!(f, "{repr}"),
        }
    }
}

/// The parameters of one estimator, read one by one; see the module documentation.
#[derive(Clone, Debug, Default)]
pub struct Params {
    entries: Vec<(String, Value, bool)>,
}

/// The error for parameter `name` with value `value`: `"{name} must be {what}, got {value}"`.
pub fn invalid(name: &str, what: &str, value: &Value) -> PecosError {
    PecosError::param(name, format!("must be {what}, got {value}"))
}

/// The choice that `value` names, for parameter `name`.
///
/// # Errors
/// [`PecosError::InvalidParam`] if `value` is not one of the choices' names, listing them.
pub fn choose<T: Copy>(name: &str, choices: &[(&str, T)], value: &Value) -> Result<T> {
    if let Value::Str(s) = value {
        if let Some(&(_, t)) = choices.iter().find(|(n, _)| n == s) {
            return Ok(t);
        }
    }
    let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
    Err(invalid(
        name,
        &format!("one of {}", names.join(", ")),
        value,
    ))
}

/// The name under which `value` appears in `choices` ("" if it does not).
pub fn name_of<T: PartialEq>(choices: &[(&'static str, T)], value: &T) -> &'static str {
    choices
        .iter()
        .find(|(_, t)| t == value)
        .map_or("", |(name, _)| name)
}

impl Params {
    pub fn new(entries: impl IntoIterator<Item = (String, Value)>) -> Self {
        Params {
            entries: entries.into_iter().map(|(k, v)| (k, v, false)).collect(),
        }
    }

    /// The value of `name`, marked as read.
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] if the caller did not give it.
    pub fn value(&mut self, name: &str) -> Result<&Value> {
        match self.entries.iter_mut().find(|(k, ..)| k == name) {
            Some((_, v, read)) => {
                *read = true;
                Ok(v)
            }
            None => Err(PecosError::param(name, "is missing")),
        }
    }

    /// An integer in `range`; `what` describes the range for the message ("an integer >= 1").
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] for anything else (bools and floats included).
    pub fn int(
        &mut self,
        name: &str,
        range: std::ops::RangeInclusive<i128>,
        what: &str,
    ) -> Result<i128> {
        match self.value(name)? {
            Value::Int(v) if range.contains(v) => Ok(*v),
            other => Err(invalid(name, what, other)),
        }
    }

    /// A non-negative integer that fits `usize`, at least `min`.
    ///
    /// # Errors
    /// As [`Params::int`].
    pub fn count(&mut self, name: &str, min: usize) -> Result<usize> {
        let v = self.int(
            name,
            min as i128..=usize::MAX as i128,
            &format!("an integer >= {min}"),
        )?;
        Ok(v as usize)
    }

    /// `None` (read as `default`) or an integer >= `min`.
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] for anything else.
    pub fn count_or(&mut self, name: &str, min: usize, default: usize) -> Result<usize> {
        match self.value(name)? {
            Value::None => Ok(default),
            Value::Int(v) if (min as i128..=usize::MAX as i128).contains(v) => Ok(*v as usize),
            other => Err(invalid(
                name,
                &format!("None or an integer >= {min}"),
                other,
            )),
        }
    }

    /// A seed: an integer in `[0, 2**64)`.
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] for anything else.
    pub fn seed(&mut self, name: &str) -> Result<u64> {
        let v = self.int(name, 0..=u64::MAX as i128, "an integer in [0, 2**64)")?;
        Ok(v as u64)
    }

    /// A number (int or float, not bool) that is finite as an f32 and `>= 0`, or `> 0` if
    /// `positive`.
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] for anything else.
    pub fn real(&mut self, name: &str, positive: bool) -> Result<f32> {
        let what = if positive {
            "a finite number > 0"
        } else {
            "a finite number >= 0"
        };
        let value = self.value(name)?;
        let x = match value {
            Value::Int(v) => *v as f64,
            Value::Float(v) => *v,
            other => return Err(invalid(name, what, other)),
        };
        let x32 = x as f32;
        if x32.is_finite() && (x32 > 0.0 || (!positive && x32 == 0.0)) {
            Ok(x32)
        } else {
            Err(invalid(name, what, value))
        }
    }

    /// `None` or an integer >= `min`.
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] for anything else.
    pub fn optional_count(&mut self, name: &str, min: usize) -> Result<Option<usize>> {
        match self.value(name)? {
            Value::None => Ok(None),
            Value::Int(v) if (min as i128..=usize::MAX as i128).contains(v) => {
                Ok(Some(*v as usize))
            }
            other => Err(invalid(
                name,
                &format!("None or an integer >= {min}"),
                other,
            )),
        }
    }

    /// A number (int or float, not bool), as f64; its range is the caller's to check.
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] for anything else.
    pub fn number(&mut self, name: &str) -> Result<f64> {
        match self.value(name)? {
            Value::Int(v) => Ok(*v as f64),
            Value::Float(v) => Ok(*v),
            other => Err(invalid(name, "a number", other)),
        }
    }

    /// A pair of non-negative integers (a tuple or list of two); their order is the caller's to
    /// check.
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] for anything else.
    pub fn pair(&mut self, name: &str) -> Result<(usize, usize)> {
        let value = self.value(name)?;
        let as_count = |v: &Value| match v {
            Value::Int(i) if (0..=usize::MAX as i128).contains(i) => Some(*i as usize),
            _ => None,
        };
        match value {
            Value::List(items) if items.len() == 2 => {
                if let (Some(a), Some(b)) = (as_count(&items[0]), as_count(&items[1])) {
                    return Ok((a, b));
                }
                Err(invalid(name, "a pair of integers >= 0", value))
            }
            other => Err(invalid(name, "a pair of integers >= 0", other)),
        }
    }

    /// `None` or one of the `choices`, given by name.
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] for anything else, listing the choices.
    pub fn choice_or_none<T: Copy>(
        &mut self,
        name: &str,
        choices: &[(&str, T)],
    ) -> Result<Option<T>> {
        let value = self.value(name)?;
        if *value == Value::None {
            return Ok(None);
        }
        choose(name, choices, value)
            .map_err(|_| {
                let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
                invalid(name, &format!("None or one of {}", names.join(", ")), value)
            })
            .map(Some)
    }

    /// A bool.
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] for anything else (0 and 1 included).
    pub fn flag(&mut self, name: &str) -> Result<bool> {
        match self.value(name)? {
            Value::Bool(b) => Ok(*b),
            other => Err(invalid(name, "a bool", other)),
        }
    }

    /// A string.
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] for anything else.
    pub fn string(&mut self, name: &str) -> Result<String> {
        match self.value(name)? {
            Value::Str(s) => Ok(s.clone()),
            other => Err(invalid(name, "a str", other)),
        }
    }

    /// One of the `choices`, given by name.
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] for anything else, listing the choices.
    pub fn choice<T: Copy>(&mut self, name: &str, choices: &[(&str, T)]) -> Result<T> {
        let value = self.value(name)?;
        choose(name, choices, value)
    }

    /// Refuses parameters that nothing read.
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] naming the first unknown parameter.
    pub fn finish(self) -> Result<()> {
        match self.entries.iter().find(|(.., read)| !read) {
            Some((name, ..)) => Err(PecosError::param(name, "is not a known parameter")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(entries: &[(&str, Value)]) -> Params {
        Params::new(entries.iter().map(|(k, v)| (k.to_string(), v.clone())))
    }

    fn message(r: Result<impl fmt::Debug>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn reads_each_kind_and_words_errors_one_way() {
        let mut p = params(&[
            ("n", Value::Int(3)),
            ("x", Value::Float(0.5)),
            ("b", Value::Bool(true)),
            ("s", Value::Str("tfn".into())),
            ("none", Value::None),
        ]);
        assert_eq!(p.count("n", 1).unwrap(), 3);
        assert_eq!(p.real("x", true).unwrap(), 0.5);
        assert!(p.flag("b").unwrap());
        assert_eq!(p.choice("s", &[("tfn", 1), ("tfn+man", 2)]).unwrap(), 1);
        assert_eq!(p.count_or("none", 1, 16).unwrap(), 16);
        p.finish().unwrap();

        let mut p = params(&[
            ("n", Value::Float(2.0)),
            ("b", Value::Int(1)),
            ("x", Value::Float(f64::NAN)),
            ("y", Value::Float(1e300)),
            ("s", Value::Str("man".into())),
        ]);
        assert_eq!(
            message(p.count("n", 1)),
            "n must be an integer >= 1, got 2.0"
        );
        assert_eq!(message(p.flag("b")), "b must be a bool, got 1");
        assert_eq!(
            message(p.real("x", false)),
            "x must be a finite number >= 0, got nan"
        );
        // Finite in f64, infinite in the f32 the core computes with.
        assert!(message(p.real("y", true)).starts_with("y must be a finite number > 0"));
        assert_eq!(
            message(p.choice("s", &[("tfn", 1), ("tfn+man", 2)])),
            r#"s must be one of "tfn", "tfn+man", got "man""#
        );
    }

    #[test]
    fn missing_and_unknown_parameters_are_errors() {
        let mut p = params(&[("n_split", Value::Int(2))]);
        assert_eq!(message(p.count("n_splits", 2)), "n_splits is missing");
        assert_eq!(message(p.finish()), "n_split is not a known parameter");
    }

    #[test]
    fn bools_are_not_integers_and_seeds_span_64_bits() {
        let mut p = params(&[
            ("t", Value::Bool(true)),
            ("big", Value::Int(u64::MAX as i128)),
            ("over", Value::Int(1 << 64)),
        ]);
        assert!(p.count("t", 0).is_err());
        assert_eq!(p.seed("big").unwrap(), u64::MAX);
        assert!(p.seed("over").is_err());
    }
}

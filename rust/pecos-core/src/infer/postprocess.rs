//! Score post-processors: how a layer's raw linear score is transformed and combined with the
//! score of its parent along the beam (PECOS `PostProcessor`, spec section 2.1).

use crate::error::{PecosError, Result};
use crate::params::{invalid, Value};
use serde::{Deserialize, Serialize};

/// A transform of the raw score `v = w·x` and the rule combining it with the parent's score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PostProcessor {
    /// `v`; the parent's score is dropped.
    Noop,
    /// `1 / (1 + e^-v)`, multiplied down the path.
    Sigmoid,
    /// `-ln(1 + e^-v)`, added down the path.
    LogSigmoid,
    /// `exp(-max(0, 1 - v)^p)`, multiplied down the path.
    Hinge(u8),
    /// `-max(0, 1 - v)^p`, added down the path.
    LogHinge(u8),
}

impl PostProcessor {
    /// Every accepted name, in PECOS's spelling.
    pub const NAMES: [&'static str; 11] = [
        "noop",
        "sigmoid",
        "log-sigmoid",
        "l1-hinge",
        "l2-hinge",
        "l3-hinge",
        "l4-hinge",
        "log-l1-hinge",
        "log-l2-hinge",
        "log-l3-hinge",
        "log-l4-hinge",
    ];

    /// The post-processor a `post_processor` parameter names.
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] listing the valid names.
    pub fn from_value(value: &Value) -> Result<Self> {
        match value {
            Value::Str(name) => Self::parse(name),
            other => Err(Self::unknown(other)),
        }
    }

    fn unknown(value: &Value) -> PecosError {
        let names: Vec<String> = Self::NAMES.iter().map(|n| format!("{n:?}")).collect();
        invalid(
            "post_processor",
            &format!("one of {}", names.join(", ")),
            value,
        )
    }

    /// Parses a PECOS post-processor name such as `"l3-hinge"`.
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] listing the valid names.
    pub fn parse(name: &str) -> Result<Self> {
        let hinge_power = |s: &str| -> Option<u8> {
            let p = s.strip_prefix('l')?.strip_suffix("-hinge")?.parse().ok()?;
            (1..=4).contains(&p).then_some(p)
        };
        match name {
            "noop" => Ok(Self::Noop),
            "sigmoid" => Ok(Self::Sigmoid),
            "log-sigmoid" => Ok(Self::LogSigmoid),
            _ => {
                if let Some(p) = name.strip_prefix("log-").and_then(hinge_power) {
                    Ok(Self::LogHinge(p))
                } else if let Some(p) = hinge_power(name) {
                    Ok(Self::Hinge(p))
                } else {
                    Err(Self::unknown(&Value::Str(name.into())))
                }
            }
        }
    }

    pub fn name(&self) -> String {
        match self {
            Self::Noop => "noop".into(),
            Self::Sigmoid => "sigmoid".into(),
            Self::LogSigmoid => "log-sigmoid".into(),
            Self::Hinge(p) => format!("l{p}-hinge"),
            Self::LogHinge(p) => format!("log-l{p}-hinge"),
        }
    }

    #[inline]
    pub fn transform(&self, v: f32) -> f32 {
        match *self {
            Self::Noop => v,
            Self::Sigmoid => 1.0 / (1.0 + (-v).exp()),
            // -softplus(-v), written so that very negative v gives a large finite value, not -inf.
            Self::LogSigmoid => -((-v).max(0.0) + (-v.abs()).exp().ln_1p()),
            Self::Hinge(p) => (-hinge_power((1.0 - v).max(0.0), p)).exp(),
            Self::LogHinge(p) => -hinge_power((1.0 - v).max(0.0), p),
        }
    }

    /// Combines a transformed score with the score of the parent it was reached from.
    #[inline]
    pub fn combine(&self, score: f32, parent_score: f32) -> f32 {
        match self {
            Self::Noop => score,
            Self::Sigmoid | Self::Hinge(_) => score * parent_score,
            Self::LogSigmoid | Self::LogHinge(_) => score + parent_score,
        }
    }
}

/// `x^p` for the hinge powers 1 to 4, multiplied out: the same products, in the same order, as
/// `powi`'s repeated squaring, without its library call (this runs for every scored child).
#[inline]
fn hinge_power(x: f32, p: u8) -> f32 {
    match p {
        1 => x,
        2 => x * x,
        3 => x * (x * x),
        4 => (x * x) * (x * x),
        _ => x.powi(i32::from(p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in PostProcessor::NAMES {
            assert_eq!(PostProcessor::parse(name).unwrap().name(), name);
        }
        for bad in [
            "", "l5-hinge", "l0-hinge", "log-noop", "L3-hinge", "lx-hinge",
        ] {
            assert!(PostProcessor::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn transforms_match_formulas() {
        let l3 = PostProcessor::Hinge(3);
        assert_eq!(l3.transform(2.0), 1.0);
        assert!((l3.transform(0.0) - (-1.0f32).exp()).abs() < 1e-7);
        assert!((PostProcessor::Sigmoid.transform(0.0) - 0.5).abs() < 1e-7);
        assert!((PostProcessor::LogSigmoid.transform(0.0) + 2f32.ln()).abs() < 1e-6);
        assert_eq!(PostProcessor::LogHinge(2).transform(-1.0), -4.0);
        assert_eq!(PostProcessor::LogHinge(2).combine(-1.0, -2.0), -3.0);
        assert_eq!(l3.combine(0.5, 0.5), 0.25);
        assert_eq!(PostProcessor::Noop.combine(0.5, 9.0), 0.5);
        assert!(PostProcessor::LogSigmoid.transform(-200.0).is_finite());
    }
}

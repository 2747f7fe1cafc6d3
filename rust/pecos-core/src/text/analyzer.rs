//! Turning one (already lower-cased / normalised) document into weighted n-gram keys.
//!
//! Three analyzers, each emitting `(key bytes, weight)` pairs in a fixed order:
//! * `Word`: n-grams of tokens, joined by one space ("echo with", "with screen").
//! * `CharInWords`: character n-grams inside each token, after wrapping it in the start and end
//!   markers ("echo" with end marker "#" gives "ech", "cho", "ho#"). A marked token shorter than
//!   the smallest n is emitted whole, so short words ("tv#") still count.
//! * `Chars`: character n-grams over the whole string, whitespace runs collapsed to one space;
//!   the n-gram starting at character `i` weighs `decay.weight(i)`, which lets a character
//!   TF-IDF favour the start of a string (a trie-like embedding for autocompletion).
//!
//! Tokens are the matches of a regular expression (Rust `regex` syntax). If the pattern has one
//! capture group, the group is the token, as in scikit-learn.

use crate::error::{PecosError, Result};
use crate::params::{invalid, Value};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// Letters, digits, combining marks and connector punctuation (`_`), by Unicode general category.
pub const DEFAULT_TOKEN_PATTERN: &str = r"[\p{L}\p{N}\p{M}\p{Pc}]+";

/// Largest n accepted in an n-gram range (keys longer than this are not useful features).
pub const MAX_NGRAM: usize = 64;

/// What an analyzer extracts, as stored with a fitted vocabulary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AnalyzerConfig {
    Word {
        ngram_range: (usize, usize),
        token_pattern: String,
    },
    CharInWords {
        ngram_range: (usize, usize),
        token_pattern: String,
        start_marker: String,
        end_marker: String,
    },
    Chars {
        ngram_range: (usize, usize),
        position_decay: PositionDecay,
    },
}

/// The weight of an n-gram as a function of its 0-based starting character position `i`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PositionDecay {
    /// Every position counts 1 (plain counts).
    Constant,
    /// `1 / (i + 1)`, the position weighting of PECOS's session-aware autocompletion model.
    Inverse,
    /// `1 / sqrt(i + 1)`.
    InverseSqrt,
    /// `rate^i`, with `0 < rate <= 1`.
    Exponential { rate: f64 },
}

impl PositionDecay {
    /// Every decay by its parameter name (the exponential's rate is a separate parameter).
    pub const CHOICES: [(&'static str, PositionDecay); 4] = [
        ("inverse", PositionDecay::Inverse),
        ("inverse_sqrt", PositionDecay::InverseSqrt),
        ("exponential", PositionDecay::Exponential { rate: 1.0 }),
        ("none", PositionDecay::Constant),
    ];

    pub fn weight(self, i: usize) -> f64 {
        let x = i as f64;
        match self {
            PositionDecay::Constant => 1.0,
            PositionDecay::Inverse => 1.0 / (x + 1.0),
            PositionDecay::InverseSqrt => 1.0 / (x + 1.0).sqrt(),
            PositionDecay::Exponential { rate } => rate.powf(x),
        }
    }
}

/// A validated analyzer with its compiled token pattern.
#[derive(Clone, Debug)]
pub struct Analyzer {
    config: AnalyzerConfig,
    tokenizer: Option<Tokenizer>,
}

#[derive(Clone, Debug)]
struct Tokenizer {
    regex: Regex,
    /// The pattern has one capture group, and the group (not the whole match) is the token.
    use_group: bool,
}

impl Tokenizer {
    fn new(pattern: &str) -> Result<Self> {
        let regex = Regex::new(pattern)
            .map_err(|e| PecosError::param("token_pattern", format!("does not compile: {e}")))?;
        let groups = regex.captures_len() - 1;
        if groups > 1 {
            return Err(PecosError::param(
                "token_pattern",
                format!("has {groups} capture groups; at most one is allowed"),
            ));
        }
        Ok(Tokenizer {
            regex,
            use_group: groups == 1,
        })
    }

    /// Byte spans of the tokens of `doc`, in order.
    fn tokens(&self, doc: &str, spans: &mut Vec<(usize, usize)>) {
        spans.clear();
        if self.use_group {
            spans.extend(
                self.regex
                    .captures_iter(doc)
                    .filter_map(|c| c.get(1))
                    .map(|m| (m.start(), m.end())),
            );
        } else {
            spans.extend(self.regex.find_iter(doc).map(|m| (m.start(), m.end())));
        }
        spans.retain(|&(s, e)| e > s);
    }
}

/// Reusable buffers for [`Analyzer::for_each_ngram`], one per thread.
#[derive(Default)]
pub struct Scratch {
    spans: Vec<(usize, usize)>,
    text: String,
    key: Vec<u8>,
    /// Byte offsets of the characters of `text`, plus its length.
    bounds: Vec<usize>,
}

/// The rate of an exponential position decay must be in `(0, 1]`.
///
/// # Errors
/// [`PecosError::InvalidParam`] otherwise.
pub(crate) fn check_decay_rate(rate: f64) -> Result<()> {
    if rate > 0.0 && rate <= 1.0 {
        Ok(())
    } else {
        Err(invalid(
            "decay_rate",
            "a number in (0, 1]",
            &Value::Float(rate),
        ))
    }
}

fn check_range(name: &str, (lo, hi): (usize, usize)) -> Result<()> {
    if lo == 0 || lo > hi || hi > MAX_NGRAM {
        let pair = Value::List(vec![Value::Int(lo as i128), Value::Int(hi as i128)]);
        return Err(invalid(
            name,
            &format!("a pair (min_n, max_n) with 1 <= min_n <= max_n <= {MAX_NGRAM}"),
            &pair,
        ));
    }
    Ok(())
}

impl Analyzer {
    /// # Errors
    /// [`PecosError::InvalidParam`] for an empty or reversed n-gram range, a pattern that does not
    /// compile or has several groups, or a decay rate outside `(0, 1]`.
    pub fn new(config: AnalyzerConfig) -> Result<Self> {
        let tokenizer = match &config {
            AnalyzerConfig::Word {
                ngram_range,
                token_pattern,
            }
            | AnalyzerConfig::CharInWords {
                ngram_range,
                token_pattern,
                ..
            } => {
                check_range("ngram_range", *ngram_range)?;
                Some(Tokenizer::new(token_pattern)?)
            }
            AnalyzerConfig::Chars {
                ngram_range,
                position_decay,
            } => {
                check_range("ngram_range", *ngram_range)?;
                if let PositionDecay::Exponential { rate } = position_decay {
                    check_decay_rate(*rate)?;
                }
                None
            }
        };
        Ok(Analyzer { config, tokenizer })
    }

    /// Whether occurrence weights depend on their position (else every occurrence weighs 1).
    pub fn is_position_weighted(&self) -> bool {
        matches!(
            self.config,
            AnalyzerConfig::Chars { position_decay, .. } if position_decay != PositionDecay::Constant
        )
    }

    /// The weight of an occurrence emitted at `position` by [`Analyzer::for_each_ngram`].
    pub fn weight(&self, position: usize) -> f64 {
        match self.config {
            AnalyzerConfig::Chars { position_decay, .. } => position_decay.weight(position),
            _ => 1.0,
        }
    }

    /// Calls `emit(key, position)` for every n-gram occurrence of `doc`; `position` is the
    /// starting character for whole-string character n-grams, 0 otherwise (see
    /// [`Analyzer::weight`]).
    pub fn for_each_ngram(&self, doc: &str, s: &mut Scratch, mut emit: impl FnMut(&[u8], usize)) {
        match (&self.config, &self.tokenizer) {
            (AnalyzerConfig::Word { ngram_range, .. }, Some(tok)) => {
                tok.tokens(doc, &mut s.spans);
                word_ngrams(doc, &s.spans, *ngram_range, &mut s.key, &mut emit);
            }
            (
                AnalyzerConfig::CharInWords {
                    ngram_range,
                    start_marker,
                    end_marker,
                    ..
                },
                Some(tok),
            ) => {
                tok.tokens(doc, &mut s.spans);
                for &(a, b) in &s.spans {
                    s.text.clear();
                    s.text.push_str(start_marker);
                    s.text.push_str(&doc[a..b]);
                    s.text.push_str(end_marker);
                    char_bounds(&s.text, &mut s.bounds);
                    let n_chars = s.bounds.len() - 1;
                    if n_chars < ngram_range.0 {
                        emit(s.text.as_bytes(), 0);
                    } else {
                        char_ngrams(&s.text, &s.bounds, *ngram_range, &mut |k, _| emit(k, 0));
                    }
                }
            }
            (AnalyzerConfig::Chars { ngram_range, .. }, _) => {
                collapse_whitespace(doc, &mut s.text);
                char_bounds(&s.text, &mut s.bounds);
                char_ngrams(&s.text, &s.bounds, *ngram_range, &mut emit);
            }
            // `new` builds a tokenizer for every analyzer that needs one.
            _ => {}
        }
    }
}

fn word_ngrams(
    doc: &str,
    spans: &[(usize, usize)],
    (lo, hi): (usize, usize),
    key: &mut Vec<u8>,
    emit: &mut impl FnMut(&[u8], usize),
) {
    let bytes = doc.as_bytes();
    for n in lo..=hi.min(spans.len()) {
        for window in spans.windows(n) {
            if n == 1 {
                emit(&bytes[window[0].0..window[0].1], 0);
                continue;
            }
            key.clear();
            for (j, &(a, b)) in window.iter().enumerate() {
                if j > 0 {
                    key.push(b' ');
                }
                key.extend_from_slice(&bytes[a..b]);
            }
            emit(key, 0);
        }
    }
}

/// All character n-grams of `text` with n in the range, with their starting character index.
fn char_ngrams(
    text: &str,
    bounds: &[usize],
    (lo, hi): (usize, usize),
    emit: &mut impl FnMut(&[u8], usize),
) {
    let bytes = text.as_bytes();
    let n_chars = bounds.len() - 1;
    for n in lo..=hi.min(n_chars) {
        for i in 0..=n_chars - n {
            emit(&bytes[bounds[i]..bounds[i + n]], i);
        }
    }
}

fn char_bounds(text: &str, bounds: &mut Vec<usize>) {
    bounds.clear();
    bounds.extend(text.char_indices().map(|(i, _)| i));
    bounds.push(text.len());
}

/// Copies `doc` into `out` with every run of Unicode whitespace replaced by one space.
fn collapse_whitespace(doc: &str, out: &mut String) {
    out.clear();
    let mut in_space = false;
    for c in doc.chars() {
        if c.is_whitespace() {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grams(config: AnalyzerConfig, doc: &str) -> Vec<(String, f64)> {
        let a = Analyzer::new(config).unwrap();
        let mut out = Vec::new();
        a.for_each_ngram(doc, &mut Scratch::default(), |k, i| {
            out.push((String::from_utf8(k.to_vec()).unwrap(), a.weight(i)))
        });
        out
    }

    fn keys(config: AnalyzerConfig, doc: &str) -> Vec<String> {
        grams(config, doc).into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn word_ngrams_of_the_issue_example() {
        let cfg = AnalyzerConfig::Word {
            ngram_range: (1, 3),
            token_pattern: DEFAULT_TOKEN_PATTERN.into(),
        };
        assert_eq!(
            keys(cfg, "echo with screen"),
            [
                "echo",
                "with",
                "screen",
                "echo with",
                "with screen",
                "echo with screen"
            ]
        );
    }

    #[test]
    fn char_ngrams_inside_words_with_markers() {
        let cfg = AnalyzerConfig::CharInWords {
            ngram_range: (3, 3),
            token_pattern: DEFAULT_TOKEN_PATTERN.into(),
            start_marker: String::new(),
            end_marker: "#".into(),
        };
        assert_eq!(
            keys(cfg.clone(), "echo with screen"),
            ["ech", "cho", "ho#", "wit", "ith", "th#", "scr", "cre", "ree", "een", "en#"]
        );
        // A marked word shorter than n is its own feature.
        assert_eq!(keys(cfg, "a tv"), ["a#", "tv#"]);
    }

    #[test]
    fn whole_string_char_ngrams_are_position_weighted() {
        let cfg = AnalyzerConfig::Chars {
            ngram_range: (1, 2),
            position_decay: PositionDecay::Inverse,
        };
        let g = grams(cfg, "ab \t c");
        let want = [
            ("a", 1.0),
            ("b", 0.5),
            (" ", 1.0 / 3.0),
            ("c", 0.25),
            ("ab", 1.0),
            ("b ", 0.5),
            (" c", 1.0 / 3.0),
        ];
        assert_eq!(g.len(), want.len());
        for ((k, w), (wk, ww)) in g.iter().zip(want) {
            assert_eq!(k, wk);
            assert!((w - ww).abs() < 1e-12);
        }
    }

    #[test]
    fn capture_group_is_the_token_and_bad_patterns_are_rejected() {
        let cfg = AnalyzerConfig::Word {
            ngram_range: (1, 1),
            token_pattern: r"<(\w+)>".into(),
        };
        assert_eq!(keys(cfg, "<a> b <cd>"), ["a", "cd"]);
        for pattern in ["(", r"(\w)(\w)"] {
            let cfg = AnalyzerConfig::Word {
                ngram_range: (1, 1),
                token_pattern: pattern.into(),
            };
            assert!(matches!(
                Analyzer::new(cfg),
                Err(PecosError::InvalidParam { .. })
            ));
        }
        let bad_range = AnalyzerConfig::Chars {
            ngram_range: (2, 1),
            position_decay: PositionDecay::Constant,
        };
        assert!(Analyzer::new(bad_range).is_err());
    }

    #[test]
    fn empty_and_whitespace_documents_give_nothing_but_spaces() {
        let word = AnalyzerConfig::Word {
            ngram_range: (1, 2),
            token_pattern: DEFAULT_TOKEN_PATTERN.into(),
        };
        assert!(keys(word.clone(), "").is_empty());
        assert!(keys(word, " \t\n ").is_empty());
        let chars = AnalyzerConfig::Chars {
            ngram_range: (1, 1),
            position_decay: PositionDecay::Constant,
        };
        assert_eq!(keys(chars, " \t\n "), [" "]);
    }
}

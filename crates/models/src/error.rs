//! Typed errors of the model crate. Nothing here panics on bad input: every
//! public function that can be fed bad data returns one of these.

use thiserror::Error;

/// Errors from the volatility, SVJD, calibration, gap and advisor modules.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ModelError {
    /// A parameter is out of its domain (negative variance, |rho| >= 1, ...).
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    /// Too few observations for the requested estimate.
    #[error("not enough data: need at least {needed}, got {got}")]
    InsufficientData { needed: usize, got: usize },
    /// A NaN or infinite value in an input series.
    #[error("non-finite value in input at index {index}")]
    NonFinite { index: usize },
    /// The optimizer never reached a finite objective.
    #[error("optimizer found no finite objective value")]
    OptimizationFailed,
    /// An estimate could not be formed from the data (degenerate moments).
    #[error("estimation failed: {0}")]
    Estimation(String),
    /// The static tier table given to the advisor is unusable.
    #[error("bad tier table: {0}")]
    TierTable(String),
    /// A decimal string could not be parsed.
    #[error("bad decimal `{value}`: {reason}")]
    Decimal { value: String, reason: String },
    /// An update's timestamp went backwards.
    #[error("timestamp {ts_ms} is before the previous update at {previous_ms}")]
    TimeWentBackwards { ts_ms: u64, previous_ms: u64 },
}

pub type Result<T> = std::result::Result<T, ModelError>;

/// Checks that `value` is finite and strictly positive.
pub(crate) fn positive(name: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(ModelError::InvalidParameter { name, reason: format!("must be finite and > 0, got {value}") })
    }
}

/// Checks that `value` is finite and >= 0.
pub(crate) fn non_negative(name: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(ModelError::InvalidParameter { name, reason: format!("must be finite and >= 0, got {value}") })
    }
}

/// Checks that `value` lies in the open interval (lo, hi).
pub(crate) fn open_interval(name: &'static str, value: f64, lo: f64, hi: f64) -> Result<f64> {
    if value.is_finite() && value > lo && value < hi {
        Ok(value)
    } else {
        Err(ModelError::InvalidParameter { name, reason: format!("must lie in ({lo}, {hi}), got {value}") })
    }
}

/// Checks that every value of a series is finite.
pub(crate) fn all_finite(values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(ModelError::NonFinite { index }),
        None => Ok(()),
    }
}

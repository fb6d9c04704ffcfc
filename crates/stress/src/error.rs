//! Typed errors of the stress lab. Bad input (a malformed state file, an
//! option out of range, an unusable configuration) is an error, never a panic.

use std::path::PathBuf;
use thiserror::Error;

/// Everything `solvent stress` can refuse or fail on.
#[derive(Debug, Error)]
pub enum StressError {
    /// An option is out of its domain (`--paths 0`, a negative depth, ...).
    #[error("invalid option `{name}`: {reason}")]
    InvalidOption { name: &'static str, reason: String },
    /// The configuration file could not be read or is not a valid solvent config.
    #[error("config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    /// The state file could not be read.
    #[error("state file {path}: {source}")]
    StateIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The state file is not JSON of the `--state-out` shape.
    #[error("state file {path}: not a solvent state dump: {source}")]
    StateJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The state file parses but cannot be rebuilt (unknown market, bad decimal, ...).
    #[error("state file {path}: {reason}")]
    StateInvalid { path: PathBuf, reason: String },
    /// The population is empty or has no open position to stress.
    #[error("population: {0}")]
    Population(String),
    /// A model call refused its inputs (SVJD, gap, advisor).
    #[error("model: {0}")]
    Model(#[from] solvent_models::ModelError),
    /// The engine refused an event the harness itself generated. This is a
    /// harness or configuration problem, reported with the line and the reason.
    #[error("engine rejected harness event {line}: {error}")]
    EngineRejected { line: String, error: String },
    /// Writing a report failed.
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A scenario file could not be read.
    #[error("scenario file {path}: {reason}")]
    ScenarioIo { path: PathBuf, reason: String },
    /// A scenario file has a bad row (malformed, unknown market, time going backwards, ...).
    #[error("scenario file {path}, line {line}: {fault}")]
    ScenarioFile { path: PathBuf, line: usize, fault: crate::scenario_file::ScenarioFault },
    /// The cascade predictor could not be trained or evaluated.
    #[error("predictor: {0}")]
    Predictor(String),
    /// A worker thread pool could not be built.
    #[error("thread pool: {0}")]
    ThreadPool(String),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, StressError>;

/// An option check: `Ok(value)` when `ok`, else [`StressError::InvalidOption`].
pub(crate) fn check<T>(name: &'static str, value: T, ok: bool, reason: &str) -> Result<T> {
    if ok {
        Ok(value)
    } else {
        Err(StressError::InvalidOption { name, reason: reason.to_string() })
    }
}

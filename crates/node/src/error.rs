//! Typed errors of the node. Every refusal to start names what is wrong and where (file and
//! byte offset for the journal); nothing is skipped silently.

use std::io;
use std::path::PathBuf;

/// Why the journal could not be read, verified or appended to.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal I/O on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "journal corrupt: {path} at byte offset {offset}: {reason}; this is not a torn tail, refusing to start \
         (see docs/serve.md, \"Recovery\")"
    )]
    Corrupt { path: PathBuf, offset: u64, reason: String },
    #[error("journal segment {path} has a bad header: {reason}")]
    BadHeader { path: PathBuf, reason: String },
    #[error("journal segments are not contiguous: {path} starts at seq {found}, expected {expected}")]
    Gap { path: PathBuf, found: u64, expected: u64 },
    #[error("journal segment {path} is {len_bytes} bytes, above the {max_bytes}-byte limit for a segment")]
    SegmentTooLarge { path: PathBuf, len_bytes: u64, max_bytes: u64 },
    #[error("event line of {len_bytes} bytes exceeds the {max_bytes}-byte record limit")]
    RecordTooLarge { len_bytes: usize, max_bytes: usize },
    #[error("journal is unavailable after an earlier write or fsync failure: {0}")]
    Failed(String),
}

/// Why a snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot I/O on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("snapshot {path} is invalid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot encode snapshot: {0}")]
    Encode(String),
}

/// Why the server configuration (tokens, limits) was refused.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read server config {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("server config {path}: {source}")]
    Toml { path: PathBuf, source: toml::de::Error },
    #[error("server config: {0}")]
    Invalid(String),
}

/// Every way the node can fail as a whole.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("engine config: {0}")]
    EngineConfig(String),
    #[error("data directory {path}: {message}")]
    DataDir { path: PathBuf, message: String },
    #[error("recovery: {0}")]
    Recovery(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: io::Error },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("{0}")]
    Other(String),
}

impl NodeError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> NodeError {
        NodeError::Io { what: what.into(), source }
    }
}

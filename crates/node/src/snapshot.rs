//! Snapshots of the whole engine state: postcard-encoded, checksummed with BLAKE3, written to a
//! temporary file, fsynced, renamed into place and the directory fsynced; the newest two are kept.
//!
//! ```text
//! header (32 bytes): magic "SOLVSNP\n" | version u16 | flags u16 | reserved u32 | seq u64 | payload_len u64
//! payload: postcard(SnapshotBody { seq, state_hash, engine })
//! trailer: blake3(header | payload), 32 bytes
//! ```
//! A snapshot is accepted only if the checksum matches, it decodes, the engine's name index
//! rebuilds, and the recomputed state hash equals the one stored at write time.

use crate::error::SnapshotError;
use serde::{Deserialize, Serialize};
use solvent_core::Engine;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const SNAPSHOT_MAGIC: [u8; 8] = *b"SOLVSNP\n";
/// 2: the engine records `max_clock_jump_ms` and carries the head of its effect hash chain.
/// 4: markets carry liquidation rules and chunked-liquidation records.
/// 6: assets carry a collateral haircut and the engine the protocol's collateral holdings.
/// 7: collateral assets carry chain, token, bridge haircut, status and weight phase.
pub const SNAPSHOT_VERSION: u16 = 7;
const HEADER_BYTES: usize = 32;
const CHECKSUM_BYTES: usize = 32;
/// How many snapshots are kept (the newest, and one to fall back to).
pub const SNAPSHOTS_KEPT: usize = 2;

#[derive(Serialize)]
struct SnapshotRef<'a> {
    seq: u64,
    state_hash: &'a str,
    engine: &'a Engine,
}

#[derive(Deserialize)]
struct SnapshotBody {
    seq: u64,
    state_hash: String,
    engine: Engine,
}

/// A snapshot read back and verified.
pub struct LoadedSnapshot {
    pub seq: u64,
    pub engine: Engine,
    pub path: PathBuf,
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io { path: path.to_path_buf(), source }
}

fn invalid(path: &Path, reason: impl Into<String>) -> SnapshotError {
    SnapshotError::Invalid { path: path.to_path_buf(), reason: reason.into() }
}

pub fn snapshot_file_name(seq: u64) -> String {
    format!("{seq:020}.snap")
}

/// Encode a snapshot of `engine` after event `seq`.
pub fn encode(seq: u64, engine: &Engine) -> Result<Vec<u8>, SnapshotError> {
    let state_hash = engine.state_hash();
    let body = SnapshotRef { seq, state_hash: &state_hash, engine };
    let payload = postcard::to_stdvec(&body).map_err(|e| SnapshotError::Encode(e.to_string()))?;
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len() + CHECKSUM_BYTES);
    bytes.extend_from_slice(&SNAPSHOT_MAGIC);
    bytes.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&0u16.to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&payload);
    let checksum = blake3::hash(&bytes);
    bytes.extend_from_slice(checksum.as_bytes());
    Ok(bytes)
}

/// Decode and verify snapshot bytes read from `path`.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<LoadedSnapshot, SnapshotError> {
    if bytes.len() < HEADER_BYTES + CHECKSUM_BYTES {
        return Err(invalid(path, format!("{} bytes, too short for a snapshot", bytes.len())));
    }
    let (body, checksum) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
    if blake3::hash(body).as_bytes() != checksum {
        return Err(invalid(path, "checksum mismatch"));
    }
    if body[..8] != SNAPSHOT_MAGIC {
        return Err(invalid(path, "wrong magic"));
    }
    let version = u16::from_le_bytes([body[8], body[9]]);
    if version != SNAPSHOT_VERSION {
        return Err(invalid(path, format!("version {version}, this build reads {SNAPSHOT_VERSION}")));
    }
    let seq = u64::from_le_bytes(body[16..24].try_into().unwrap_or_default());
    let payload_len = u64::from_le_bytes(body[24..32].try_into().unwrap_or_default());
    if payload_len != (body.len() - HEADER_BYTES) as u64 {
        return Err(invalid(path, "payload length does not match the file"));
    }
    let decoded: SnapshotBody =
        postcard::from_bytes(&body[HEADER_BYTES..]).map_err(|e| invalid(path, format!("cannot decode: {e}")))?;
    if decoded.seq != seq {
        return Err(invalid(path, "header and body disagree on the seq"));
    }
    let engine = Engine::from_snapshot(decoded.engine).map_err(|e| invalid(path, e))?;
    let state_hash = engine.state_hash();
    if state_hash != decoded.state_hash {
        return Err(invalid(path, format!("state hash {state_hash} differs from the stored {}", decoded.state_hash)));
    }
    Ok(LoadedSnapshot { seq, engine, path: path.to_path_buf() })
}

/// Write a snapshot durably (temp file, fsync, rename, fsync dir), then keep only the newest
/// [`SNAPSHOTS_KEPT`]. Returns the path and the size in bytes.
pub fn write(dir: &Path, seq: u64, engine: &Engine) -> Result<(PathBuf, u64), SnapshotError> {
    let bytes = encode(seq, engine)?;
    let final_path = dir.join(snapshot_file_name(seq));
    let temp_path = dir.join(format!(".{}.tmp", snapshot_file_name(seq)));
    let mut file: File =
        OpenOptions::new().write(true).create(true).truncate(true).open(&temp_path).map_err(io_at(&temp_path))?;
    file.write_all(&bytes).map_err(io_at(&temp_path))?;
    file.sync_all().map_err(io_at(&temp_path))?;
    drop(file);
    std::fs::rename(&temp_path, &final_path).map_err(io_at(&final_path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_at(dir))?;
    prune(dir)?;
    Ok((final_path, bytes.len() as u64))
}

/// Snapshot files of `dir`, oldest first, with their seq.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SnapshotError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        let name = entry.file_name();
        let Some(digits) = name.to_str().and_then(|n| n.strip_suffix(".snap")) else { continue };
        if digits.len() == 20 {
            if let Ok(seq) = digits.parse::<u64>() {
                found.push((seq, entry.path()));
            }
        }
    }
    found.sort();
    Ok(found)
}

fn prune(dir: &Path) -> Result<(), SnapshotError> {
    let snapshots = list(dir)?;
    let excess = snapshots.len().saturating_sub(SNAPSHOTS_KEPT);
    for (_, path) in &snapshots[..excess] {
        std::fs::remove_file(path).map_err(io_at(path))?;
    }
    Ok(())
}

/// Remove temporary files left by a snapshot write that a crash interrupted.
pub fn remove_temp_files(dir: &Path) -> Result<usize, SnapshotError> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| n.starts_with('.') && n.ends_with(".snap.tmp")) {
            std::fs::remove_file(entry.path()).map_err(io_at(&entry.path()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The newest snapshot that verifies, with `seq <= max_seq`; a bad one is logged and the
/// previous one tried. `None` when no snapshot qualifies (start from the empty state).
pub fn load_newest_valid(dir: &Path, max_seq: u64) -> Result<Option<LoadedSnapshot>, SnapshotError> {
    for (seq, path) in list(dir)?.into_iter().rev() {
        if seq > max_seq {
            continue;
        }
        let loaded = std::fs::read(&path).map_err(io_at(&path)).and_then(|bytes| decode(&path, &bytes));
        match loaded {
            Ok(snapshot) => return Ok(Some(snapshot)),
            Err(error) => tracing::error!(%error, "snapshot rejected; falling back to the previous one"),
        }
    }
    Ok(None)
}

//! Recovery: the newest valid snapshot (falling back to the previous one) plus the journal tail.
//! The whole journal is verified on the way; a torn tail is cut off with a warning; corruption
//! anywhere else stops the start with the file and byte offset.

use crate::datadir::Layout;
use crate::error::{JournalError, NodeError};
use crate::journal::{self, JournalFs, JournalWriter, TornTail};
use crate::snapshot;
use solvent_core::{Config, Effect, Engine};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

/// The state rebuilt from disk, and the journal opened for appending after it.
pub struct Recovered {
    pub engine: Engine,
    pub last_seq: u64,
    pub snapshot_seq: u64,
    pub replayed_events: u64,
    pub journal: JournalWriter,
}

/// Rebuild the engine from `layout` and open the journal for appending.
pub fn recover(
    layout: &Layout,
    config: &Config,
    fs: Arc<dyn JournalFs>,
    segment_bytes: u64,
) -> Result<Recovered, NodeError> {
    let started = Instant::now();
    let removed = snapshot::remove_temp_files(&layout.snapshots)?;
    if removed > 0 {
        tracing::info!(removed, "removed temporary files of an interrupted snapshot write");
    }
    let base = snapshot::load_newest_valid(&layout.snapshots, u64::MAX)?;
    let (snapshot_seq, mut engine) = match base {
        Some(loaded) => {
            tracing::info!(path = %loaded.path.display(), seq = loaded.seq, "loaded snapshot");
            (loaded.seq, loaded.engine)
        }
        None => (0, Engine::new(config)),
    };
    let mut effects: Vec<Effect> = Vec::new();
    let mut replayed_events = 0u64;
    let end = journal::scan_journal(&layout.journal, &mut |seq, payload| {
        if seq > snapshot_seq {
            effects.clear();
            engine.apply_line(seq, payload, &mut effects);
            replayed_events += 1;
        }
        ControlFlow::Continue(())
    })?;
    if snapshot_seq > end.last_seq {
        return Err(NodeError::Recovery(format!(
            "the newest valid snapshot is at seq {snapshot_seq} but the journal ends at seq {}: journal records \
             that were acknowledged are missing (was the journal directory replaced or truncated?)",
            end.last_seq
        )));
    }
    if let Some(torn) = &end.torn {
        drop_torn_tail(layout, fs.as_ref(), torn)?;
    }
    let journal = JournalWriter::open(&layout.journal, fs, end.tail.as_ref(), end.last_seq, segment_bytes)?;
    tracing::info!(
        snapshot_seq,
        replayed_events,
        last_seq = end.last_seq,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "recovered"
    );
    Ok(Recovered { engine, last_seq: end.last_seq, snapshot_seq, replayed_events, journal })
}

/// Log a torn tail; remove a segment whose own header is torn. (A torn record is cut off when
/// the writer opens the segment at its valid length.)
fn drop_torn_tail(layout: &Layout, fs: &dyn JournalFs, torn: &TornTail) -> Result<(), NodeError> {
    tracing::warn!(
        path = %torn.path.display(),
        offset = torn.offset,
        dropped_bytes = torn.dropped_bytes,
        reason = %torn.reason,
        "dropping the torn tail of the journal (an append that was never acknowledged)"
    );
    if torn.whole_segment {
        let io = |source| JournalError::Io { path: torn.path.clone(), source };
        std::fs::remove_file(&torn.path).map_err(io)?;
        fs.sync_dir(&layout.journal).map_err(|source| JournalError::Io { path: layout.journal.clone(), source })?;
    }
    Ok(())
}

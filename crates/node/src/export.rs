//! Export the journal as JSON Lines (the events exactly as journaled, in seq order), and replay
//! such a file the way `solvent replay` does (seq = line number) to get its state hash.

use crate::datadir::Layout;
use crate::error::NodeError;
use crate::journal;
use solvent_core::{Config, Effect, Engine};
use std::io::{BufRead, Write};
use std::ops::ControlFlow;
use std::path::Path;

/// Counts of an export.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportSummary {
    pub events: u64,
    pub last_seq: u64,
    /// A torn tail was found (and left in place: export never writes to the data directory).
    pub torn_tail: Option<String>,
}

/// Write every journaled event of `data_dir`, one per line, verified as it is read. Line N of
/// the output is the event with seq N.
pub fn export_journal(data_dir: &Path, out: &mut dyn Write) -> Result<ExportSummary, NodeError> {
    let layout = Layout::new(data_dir);
    let mut write_error = None;
    let mut events = 0u64;
    let end = journal::scan_journal(&layout.journal, &mut |_, payload| {
        let written = out.write_all(payload).and_then(|()| out.write_all(b"\n"));
        match written {
            Ok(()) => {
                events += 1;
                ControlFlow::Continue(())
            }
            Err(error) => {
                write_error = Some(error);
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(error) = write_error {
        return Err(NodeError::io("writing the export", error));
    }
    out.flush().map_err(|e| NodeError::io("writing the export", e))?;
    let torn_tail = end.torn.map(|t| format!("{} at offset {}: {}", t.path.display(), t.offset, t.reason));
    Ok(ExportSummary { events, last_seq: end.last_seq, torn_tail })
}

/// Replay JSON Lines events as `solvent replay` does (`Engine::apply_line`, seq = 1-based line
/// number): the final engine.
pub fn replay_lines(config: &Config, input: &mut dyn BufRead) -> Result<Engine, NodeError> {
    let mut engine = Engine::new(config);
    let mut effects: Vec<Effect> = Vec::new();
    let mut line = Vec::new();
    let mut seq = 0u64;
    loop {
        line.clear();
        let read = input.read_until(b'\n', &mut line).map_err(|e| NodeError::io("reading events", e))?;
        if read == 0 {
            return Ok(engine);
        }
        seq += 1;
        let bytes = line.strip_suffix(b"\n").unwrap_or(&line);
        effects.clear();
        engine.apply_line(seq, bytes, &mut effects);
    }
}

//! Signed orders from the running server (`[server.signing]`): a thread that follows the durable
//! journal with an engine of its own and writes the signed effects file,
//! `<data dir>/signed-effects.jsonl`, line for line what `solvent sign` writes for the exported
//! journal (each effect with its chain link; every `liquidation`, `adl`, `socialized_loss` and
//! `auction_fill` with the state hash after its event and the engine's ed25519 signature, and
//! the EIP-712 signature when asked), so `solvent verify` checks it against the journal.
//!
//! Off the tick path: the sequencer never waits for the signer (it reads the journal, not the
//! sequencer's engine, and computes the state hash of each event that emits an order on its own
//! copy of the state). It lags while it hashes; `solvent_signed_seq` says how far it is. On a
//! restart it resumes after the last event whose lines are all in the file (a torn last event is
//! cut off and signed again), from the newest snapshot at or before that point.

use crate::datadir::Layout;
use crate::error::NodeError;
use crate::journal::{JournalTail, JournalTailError};
use crate::telemetry as t;
use serde::Deserialize;
use solvent_core::{Config, Effect, Engine};
use solvent_proofs::signing::{self, Replay};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The signed effects file in the data directory.
pub const EFFECTS_FILE: &str = "signed-effects.jsonl";
/// How often an idle signer looks for newly durable events.
const POLL_MS: u64 = 2;
/// Most events signed between two flushes (and `fdatasync`s) of the effects file.
const MAX_EVENTS_PER_PASS: u64 = 65_536;
/// Most bytes read back from the end of the effects file to find where to resume.
const MAX_RESUME_SCAN_BYTES: u64 = 1 << 30;

/// The `[server.signing]` table.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SigningSection {
    /// Sign orders in the running server.
    pub enabled: bool,
    /// The engine's secret key file (`solvent keygen`); without it, `SOLVENT_ENGINE_KEY`.
    pub key_file: Option<PathBuf>,
    /// Also sign each order as EIP-712 typed data (secp256k1, from the same key).
    pub eip712: bool,
}

/// The keys the signer signs with.
pub struct SignerKeys {
    ed25519: ed25519_dalek::SigningKey,
    eip712: Option<k256::ecdsa::SigningKey>,
}

impl SignerKeys {
    /// The keys a signing section names; `None` when signing is off.
    pub fn load(section: &SigningSection) -> Result<Option<SignerKeys>, NodeError> {
        if !section.enabled {
            return Ok(None);
        }
        let signing = |e: String| NodeError::Other(format!("[server.signing]: {e}"));
        let ed25519 = solvent_proofs::keys::load_signing_key(section.key_file.as_deref()).map_err(signing)?;
        let eip712 = if section.eip712 { Some(solvent_proofs::eip712::key(&ed25519).map_err(signing)?) } else { None };
        Ok(Some(SignerKeys { ed25519, eip712 }))
    }
}

/// The running signer thread.
pub struct Signer {
    stop: Arc<AtomicBool>,
    signed_seq: Arc<AtomicU64>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl Signer {
    /// Resume from the effects file (rebuilding the engine at its last complete event) and
    /// start following the journal up to the sequencer's durable head.
    pub fn start(
        layout: &Layout,
        config: &Config,
        keys: SignerKeys,
        shared: Arc<crate::sequencer::Shared>,
    ) -> Result<Signer, NodeError> {
        let path = layout.root.join(EFFECTS_FILE);
        let resume = find_resume_point(&path)?;
        let engine = engine_at(layout, config, resume.signed_seq)?;
        let file = OpenOptions::new().create(true).write(true).truncate(false).open(&path).map_err(io_at(&path))?;
        file.set_len(resume.keep_bytes).map_err(io_at(&path))?;
        file.sync_data().map_err(io_at(&path))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.seek(SeekFrom::End(0)).map_err(io_at(&path))?;
        tracing::info!(path = %path.display(), signed_seq = resume.signed_seq, "signer resumes");
        let follow = Follow {
            replay: Replay::resume(engine, resume.signed_seq),
            tail: JournalTail::new(&layout.journal, resume.signed_seq + 1),
            out,
            path,
            keys,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let signed_seq = Arc::new(AtomicU64::new(resume.signed_seq));
        metrics::gauge!(t::SIGNED_SEQ).set(resume.signed_seq as f64);
        let (stop_flag, signed) = (stop.clone(), signed_seq.clone());
        let thread = std::thread::Builder::new()
            .name("solvent-signer".into())
            .spawn(move || follow.run(&shared.head_seq, &stop_flag, &signed))
            .map_err(|e| NodeError::io("cannot start the signer thread", e))?;
        Ok(Signer { stop, signed_seq, thread: Some(thread) })
    }

    /// The last event whose effects are all signed and durable in the file, as it advances.
    pub fn signed_seq_cell(&self) -> Arc<AtomicU64> {
        self.signed_seq.clone()
    }

    /// Sign up to the head the sequencer reached (call after the sequencer stopped), then stop.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => tracing::error!(%reason, "the signer stopped"),
                Err(_) => tracing::error!("the signer thread panicked"),
            }
        }
    }
}

struct Follow {
    replay: Replay,
    tail: JournalTail,
    out: BufWriter<File>,
    path: PathBuf,
    keys: SignerKeys,
}

impl Follow {
    /// The thread body: sign what is durable, wait, repeat; after `stop`, catch up and end. A
    /// failure (the file cannot be written, the journal cannot be read) stops signing, never the
    /// server: the file stays valid up to its last complete event and a restart resumes there.
    fn run(mut self, head_seq: &AtomicU64, stop: &AtomicBool, signed_seq: &AtomicU64) -> Result<(), String> {
        let result = self.follow(head_seq, stop, signed_seq);
        if let Err(reason) = &result {
            metrics::gauge!(t::SIGNER_FAILED).set(1.0);
            tracing::error!(%reason, "signing stopped; the server goes on (restart to resume signing)");
        }
        result
    }

    fn follow(&mut self, head_seq: &AtomicU64, stop: &AtomicBool, signed_seq: &AtomicU64) -> Result<(), String> {
        loop {
            let stopping = stop.load(Ordering::SeqCst);
            let head = head_seq.load(Ordering::SeqCst);
            let next = self.tail.next_seq();
            if head >= next {
                let to = head.min(next + MAX_EVENTS_PER_PASS - 1);
                self.pass(to)?;
                signed_seq.store(self.tail.next_seq() - 1, Ordering::SeqCst);
                metrics::gauge!(t::SIGNED_SEQ).set((self.tail.next_seq() - 1) as f64);
                continue;
            }
            if stopping {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(POLL_MS));
        }
    }

    /// Sign events up to `to`, then flush and `fdatasync` the file.
    fn pass(&mut self, to: u64) -> Result<(), String> {
        let Follow { replay, tail, out, keys, path } = self;
        let mut orders = 0u64;
        tail.read_to(to, &mut |seq, payload| {
            debug_assert_eq!(seq, replay.seq() + 1, "the journal is contiguous");
            replay.apply(payload);
            let written = signing::write_lines(replay, &keys.ed25519, keys.eip712.as_ref(), out)?;
            orders += written.signed;
            Ok(())
        })
        .map_err(|e| match e {
            JournalTailError::Journal(error) => error.to_string(),
            JournalTailError::Visit(reason) => format!("{}: {reason}", path.display()),
        })?;
        out.flush().map_err(|e| format!("{}: {e}", path.display()))?;
        out.get_ref().sync_data().map_err(|e| format!("{}: {e}", path.display()))?;
        metrics::counter!(t::ORDERS_SIGNED_TOTAL).increment(orders);
        Ok(())
    }
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |e| NodeError::io(format!("signed effects {}", path.display()), e)
}

/// Where a signer resumes: every line of events `1..=signed_seq` is in the first `keep_bytes`.
#[derive(Debug, PartialEq, Eq)]
struct ResumePoint {
    signed_seq: u64,
    keep_bytes: u64,
}

/// The seq of an effects line (the `seq` field every effect line carries).
fn line_seq(line: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    value.get("seq")?.as_u64()
}

/// Read the file's end: the last complete line names the last event E that has lines; its lines
/// may be incomplete (a crash while writing them), so they are cut and E is signed again.
/// Events after the last line's that have no effect have no line; signing them again writes
/// nothing, so resuming at E - 1 is exact.
fn find_resume_point(path: &Path) -> Result<ResumePoint, NodeError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ResumePoint { signed_seq: 0, keep_bytes: 0 }),
        Err(e) => return Err(io_at(path)(e)),
    };
    let len = file.metadata().map_err(io_at(path))?.len();
    let start = len.saturating_sub(MAX_RESUME_SCAN_BYTES);
    file.seek(SeekFrom::Start(start)).map_err(io_at(path))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).map_err(io_at(path))?;
    let complete = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let lines: Vec<&[u8]> = tail[..complete].split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    let Some(last) = lines.last() else {
        if start > 0 {
            return Err(NodeError::Other(format!("{}: no complete line in its last 1 GiB", path.display())));
        }
        return Ok(ResumePoint { signed_seq: 0, keep_bytes: 0 });
    };
    let bad_line = || NodeError::Other(format!("{}: a line without a seq near its end", path.display()));
    let last_seq = line_seq(last).ok_or_else(bad_line)?;
    let mut keep = complete as u64;
    for line in lines.iter().rev() {
        if line_seq(line).ok_or_else(bad_line)? != last_seq {
            break;
        }
        keep -= line.len() as u64 + 1;
    }
    if keep == 0 && start > 0 {
        return Err(NodeError::Other(format!("{}: one event's lines exceed 1 GiB", path.display())));
    }
    assert!(last_seq >= 1, "effects belong to events, whose seqs start at 1");
    Ok(ResumePoint { signed_seq: last_seq - 1, keep_bytes: start + keep })
}

/// The engine after event `seq`: the newest valid snapshot at or before it, then the journal.
fn engine_at(layout: &Layout, config: &Config, seq: u64) -> Result<Engine, NodeError> {
    let (mut engine, from) = match crate::snapshot::load_newest_valid(&layout.snapshots, seq)? {
        Some(loaded) => (loaded.engine, loaded.seq),
        None => (Engine::new(config), 0),
    };
    if from < seq {
        let mut effects: Vec<Effect> = Vec::new();
        let mut tail = JournalTail::new(&layout.journal, from + 1);
        // Bounded: each call advances at least one record until `seq` (or fails).
        while tail.next_seq() <= seq {
            let handed = tail
                .read_to(seq, &mut |at, payload| {
                    effects.clear();
                    engine.apply_line(at, payload, &mut effects);
                    Ok(())
                })
                .map_err(|e| NodeError::Other(format!("signer: {e}")))?;
            assert!(handed > 0, "a read below a durable seq hands out records or fails");
        }
    }
    Ok(engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resume_point_cuts_the_last_events_lines_and_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EFFECTS_FILE);
        assert_eq!(find_resume_point(&path).unwrap(), ResumePoint { signed_seq: 0, keep_bytes: 0 });
        let lines = "{\"type\":\"a\",\"seq\":3}\n{\"type\":\"b\",\"seq\":7}\n{\"type\":\"c\",\"seq\":7}\n";
        std::fs::write(&path, format!("{lines}{{\"type\":\"d\",\"se")).unwrap();
        let first = "{\"type\":\"a\",\"seq\":3}\n".len() as u64;
        assert_eq!(find_resume_point(&path).unwrap(), ResumePoint { signed_seq: 6, keep_bytes: first });
        std::fs::write(&path, "{\"type\":\"a\",\"seq\":1}\n").unwrap();
        assert_eq!(find_resume_point(&path).unwrap(), ResumePoint { signed_seq: 0, keep_bytes: 0 });
        std::fs::write(&path, "not json\n").unwrap();
        assert!(find_resume_point(&path).unwrap_err().to_string().contains("without a seq"));
    }
}

//! `solvent replay` on two threads: a reader thread reads and parses lines (pure: no engine
//! state), the calling thread applies them in order and writes the effects. The output is
//! byte-identical to [`crate::replay::replay_into`] (one thread): the engine sees the same parsed
//! lines with the same sequence numbers, and effects are written in line order.
//!
//! Every queue is bounded: at most [`QUEUE_BATCHES`] batches of [`BATCH_LINES`] parsed lines wait
//! for the engine, and a line longer than `MAX_LINE_BYTES` is never held whole (the reader
//! reports it as too long). Batches go back to the reader once applied, so the events' strings
//! are allocated and freed on the same thread and the batch buffers are reused.

use crate::lines::{Line, LineReader};
use crate::replay::{Applier, Summary};
use solvent_core::event::{ParsedLine, StringPool, MAX_LINE_BYTES};
use solvent_core::{Engine, Prefetch};
use std::io::{BufRead, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

/// Lines per batch handed from the reader to the engine thread.
pub const BATCH_LINES: usize = 512;
/// Batches in flight from the reader to the engine thread (the bound on read-ahead).
pub const QUEUE_BATCHES: usize = 4;

/// One input line as the reader hands it over: parsed, or too long (`None`), with its length.
struct Item {
    line: Option<ParsedLine>,
    line_bytes: usize,
}

/// What the reader sends: a batch, the end of the input, or a read error (after the lines before it).
enum Message {
    Batch(Vec<Item>),
    End,
    Failed(String),
}

/// Read and parse lines into batches until the input ends, fails, or the engine side hangs up.
fn read_ahead(input: Box<dyn BufRead + Send>, full: SyncSender<Message>, empty: Receiver<Vec<Item>>) {
    let mut reader = LineReader::new(input, MAX_LINE_BYTES);
    let mut pool = StringPool::default();
    loop {
        // A returned batch is emptied here: its events' strings are reused for the next lines
        // (or dropped on the thread that allocated them).
        let mut batch = empty.try_recv().unwrap_or_else(|_| Vec::with_capacity(BATCH_LINES));
        batch.drain(..).filter_map(|item| item.line).for_each(|line| line.recycle(&mut pool));
        let mut last = None;
        while batch.len() < BATCH_LINES {
            match reader.next_line() {
                Ok(Some(Line::Text(bytes))) => {
                    let line = ParsedLine::parse_pooled(bytes, &mut pool);
                    batch.push(Item { line: Some(line), line_bytes: bytes.len() })
                }
                Ok(Some(Line::TooLong)) => batch.push(Item { line: None, line_bytes: 0 }),
                Ok(None) => {
                    last = Some(Message::End);
                    break;
                }
                Err(e) => {
                    last = Some(Message::Failed(format!("reading events: {e}")));
                    break;
                }
            }
        }
        if !batch.is_empty() && full.send(Message::Batch(batch)).is_err() {
            return; // the engine side stopped (it failed to write); nothing more to do
        }
        if let Some(message) = last {
            let _ = full.send(message);
            return;
        }
    }
}

/// [`crate::replay::replay_into`] with reading and parsing on a second thread: same effects, same
/// order, same counts and errors (a read error ends the run after the lines before it).
pub fn replay_pipelined(
    engine: &mut Engine,
    input: Box<dyn BufRead + Send>,
    out: &mut dyn Write,
    progress: &indicatif::ProgressBar,
) -> Result<Summary, String> {
    let (full_tx, full_rx) = sync_channel(QUEUE_BATCHES);
    let (empty_tx, empty_rx) = sync_channel(QUEUE_BATCHES + 2);
    let reader = std::thread::Builder::new()
        .name("replay-reader".into())
        .spawn(move || read_ahead(input, full_tx, empty_rx))
        .map_err(|e| format!("starting the reader thread: {e}"))?;
    let mut applier = Applier::new(out);
    let result = apply_all(engine, &mut applier, &full_rx, &empty_tx, progress);
    // On an error the reader may be blocked reading (stdin): it stops at its next send.
    drop(full_rx);
    result?;
    reader.join().map_err(|_| "the reader thread panicked".to_string())?;
    applier.finish()
}

fn apply_all(
    engine: &mut Engine,
    applier: &mut Applier,
    full: &Receiver<Message>,
    empty: &SyncSender<Vec<Item>>,
    progress: &indicatif::ProgressBar,
) -> Result<(), String> {
    let hints = &mut Vec::with_capacity(BATCH_LINES);
    loop {
        let batch = match full.recv() {
            Ok(Message::Batch(batch)) => batch,
            Ok(Message::End) => return Ok(()),
            Ok(Message::Failed(message)) => return Err(message),
            Err(_) => return Err("the reader thread stopped before the end of the input".into()),
        };
        apply_batch(engine, applier, &batch, progress, hints)?;
        match empty.try_send(batch) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(batch)) => drop(batch),
        }
    }
}

/// How many lines ahead of the one being applied each prefetch stage runs: the parsed line
/// itself (written by the reader's core), its strings, then the engine's hint stages: the
/// name-table slots, the account records, what they point to (see [`solvent_core::Prefetch`]).
const PREFETCH_AHEAD: [usize; 5] = [24, 18, 12, 8, 4];

/// Apply one batch in order, prefetching for the lines a few places ahead (the hints change no
/// state and no output; they only overlap the cache misses of what upcoming lines will read).
fn apply_batch(
    engine: &mut Engine,
    applier: &mut Applier,
    batch: &[Item],
    progress: &indicatif::ProgressBar,
    hints: &mut Vec<Prefetch>,
) -> Result<(), String> {
    let [item_at, strings_at, hint_at, record_at, data_at] = PREFETCH_AHEAD;
    let parsed = |j: usize| batch.get(j).and_then(|item| item.line.as_ref());
    let hint = |engine: &Engine, j: usize| match parsed(j).and_then(ParsedLine::event) {
        Some(event) => engine.prefetch_hint(event),
        None => Prefetch::default(),
    };
    // The first lines of a batch get their stages back to back (nothing to overlap them with).
    batch.iter().take(item_at).for_each(solvent_core::prefetch::prefetch_value);
    (0..strings_at).filter_map(parsed).for_each(ParsedLine::prefetch_strings);
    hints.clear();
    hints.extend((0..hint_at.min(batch.len())).map(|j| hint(engine, j)));
    for (k, h) in hints.iter_mut().enumerate() {
        if k < record_at {
            engine.prefetch(h);
        }
        if k < data_at {
            engine.prefetch(h);
        }
    }
    for (j, item) in batch.iter().enumerate() {
        if let Some(ahead) = batch.get(j + item_at) {
            solvent_core::prefetch::prefetch_value(ahead);
        }
        if let Some(ahead) = parsed(j + strings_at) {
            ahead.prefetch_strings();
        }
        if j + hint_at < batch.len() {
            hints.push(hint(engine, j + hint_at));
        }
        for at in [record_at, data_at] {
            if let Some(h) = hints.get_mut(j + at) {
                engine.prefetch(h);
            }
        }
        applier.line(engine, item.line.as_ref(), item.line_bytes)?;
        if applier.summary.lines.is_multiple_of(65_536) {
            progress.set_position(applier.bytes_read);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use solvent_core::Config;
    use std::io::{self, Read};

    /// A stream of good and bad lines, several batches long: a market opened by three sources,
    /// accounts trading, and between them bad lines of every sort (invalid UTF-8, bad JSON,
    /// unknown fields, unknown accounts, time going backwards, a withdrawal beyond margin), blank
    /// and CRLF lines, and one line over the limit.
    fn mixed_input() -> Vec<u8> {
        let mut text = String::from("{\"type\":\"clock\",\"ts\":1000}\n");
        for s in ["s1", "s2", "s3"] {
            text += &format!(
                "{{\"type\":\"price\",\"ts\":1000,\"market\":\"BTC-PERP\",\"source\":\"{s}\",\"price\":\"10000\"}}\n"
            );
        }
        let bad = [
            "{\"type\":\"deposit\",\"ts\":1000,\"account\":\"a1\",\"asset\":\"USDC\",\"amount\":\"-5\"}",
            "{\"type\":\"deposit\",\"ts\":1000,\"account\":\"a1\",\"asset\":\"USDC\"",
            "{\"type\":\"trade\",\"ts\":1000,\"market\":\"BTC-PERP\",\"buyer\":\"nobody\",\"seller\":\"a2\",\"size\":\"1\",\"price\":\"10000\"}",
            "{\"type\":\"clock\",\"ts\":5}",
            "{\"type\":\"withdraw\",\"ts\":1000,\"account\":\"a3\",\"asset\":\"USDC\",\"amount\":\"99999999\"}",
            "{\"type\":\"deposit\",\"ts\":1000,\"account\":\"a1\",\"asset\":\"USDC\",\"amount\":\"1\",\"x\":1}",
            "   ",
            "{\"type\":\"nope\",\"ts\":1000}\r",
        ];
        for i in 0..6_000u32 {
            let (a, b) = (format!("a{}", i % 97), format!("a{}", (i * 7 + 3) % 97));
            text += &match i % 5 {
                0 | 1 => format!("{{\"type\":\"deposit\",\"ts\":1000,\"account\":\"{a}\",\"asset\":\"USDC\",\"amount\":\"1000\"}}\n"),
                2 => format!("{{\"type\":\"trade\",\"ts\":1000,\"market\":\"BTC-PERP\",\"buyer\":\"{a}\",\"seller\":\"{b}\",\"size\":\"0.01\",\"price\":\"10000\"}}\n"),
                3 => format!("{{\"type\":\"price\",\"ts\":1000,\"market\":\"BTC-PERP\",\"source\":\"s{}\",\"price\":\"{}\"}}\r\n", 1 + i % 3, 9_990 + i % 20),
                _ => format!("{}\n", bad[(i / 5) as usize % bad.len()]),
            };
        }
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"\xff\xfe not utf-8\n");
        bytes.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
        bytes.extend_from_slice(b"\n{\"type\":\"clock\",\"ts\":2000}");
        bytes
    }

    fn run(pipelined: bool, input: Box<dyn BufRead + Send>) -> (Result<Summary, String>, Vec<u8>, String) {
        let mut engine = Engine::new(&Config::embedded_default());
        let mut out = Vec::new();
        let bar = indicatif::ProgressBar::hidden();
        let result = if pipelined {
            replay_pipelined(&mut engine, input, &mut out, &bar)
        } else {
            crate::replay::replay_into(&mut engine, input, &mut out, &bar)
        };
        (result, out, engine.state_hash())
    }

    #[test]
    fn pipelined_output_is_the_one_thread_output() {
        let input = mixed_input();
        let reader = |capacity| Box::new(io::BufReader::with_capacity(capacity, io::Cursor::new(input.clone())));
        let (one, one_out, one_hash) = run(false, reader(1 << 16));
        let one = one.unwrap();
        assert!(one.lines > (BATCH_LINES * (QUEUE_BATCHES + 2)) as u64, "the queue fills and batches are reused");
        assert!(one.rejected > 1_000 && one.effects > one.rejected, "{one:?}");
        let text = String::from_utf8(one_out.clone()).unwrap();
        for kind in ["invalid_utf8", "line_too_long", "time_backwards", "unknown_account", "non_positive"] {
            assert!(text.contains(&format!("\"error\":\"{kind}\"")), "{kind} is among the effects");
        }
        for capacity in [7, 1 << 16] {
            let (two, two_out, two_hash) = run(true, reader(capacity));
            assert_eq!(two.unwrap(), one, "same counts");
            assert!(two_out == one_out, "byte-identical effects (reader buffer {capacity})");
            assert_eq!(two_hash, one_hash);
        }
    }

    /// Reads `good` bytes, then fails.
    struct FailingAfter {
        data: io::Cursor<Vec<u8>>,
    }

    impl Read for FailingAfter {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.data.read(buf)? {
                0 => Err(io::Error::other("disk on fire")),
                n => Ok(n),
            }
        }
    }

    /// A read error ends both paths the same way: the lines before it applied and written, then
    /// the error.
    #[test]
    fn a_read_error_stops_both_paths_alike() {
        let input = mixed_input();
        let cut = input.len() / 2;
        let reader = || Box::new(io::BufReader::new(FailingAfter { data: io::Cursor::new(input[..cut].to_vec()) }));
        let (one, one_out, one_hash) = run(false, reader());
        let (two, two_out, two_hash) = run(true, reader());
        assert_eq!(one.unwrap_err(), "reading events: disk on fire");
        assert_eq!(two.unwrap_err(), "reading events: disk on fire");
        assert!(!one_out.is_empty() && one_out == two_out);
        assert_eq!(one_hash, two_hash);
    }
}

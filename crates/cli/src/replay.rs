//! `solvent replay`: apply a JSON Lines event file, write effects, report the final state hash.

use crate::lines::{Line, LineReader};
use solvent_core::event::ParsedLine;
use solvent_core::event::MAX_LINE_BYTES;
use solvent_core::{Config, Effect, Engine, Error};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct ReplayOptions {
    pub config: Option<PathBuf>,
    pub events: PathBuf,
    pub out: Option<PathBuf>,
    pub state_out: Option<PathBuf>,
    pub report: bool,
}

/// Counts of one run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub lines: u64,
    pub events: u64,
    pub rejected: u64,
    pub effects: u64,
    /// Refusals by stable error kind (`future_ts`, `time_backwards`, ...), for the hints.
    pub rejected_by_kind: std::collections::BTreeMap<String, u64>,
    /// `clock` events seen.
    pub clock_events: u64,
    /// Largest `ts` of any event (0 when none).
    pub max_ts: u64,
}

/// A `ts` below this (in 1973 as milliseconds) but at least [`SECONDS_TS_MIN`] looks like
/// seconds since the epoch, not milliseconds.
const SECONDS_TS_MAX: u64 = 100_000_000_000;
/// 2001-09-09 in seconds.
const SECONDS_TS_MIN: u64 = 1_000_000_000;

impl Summary {
    /// What a newcomer needs to hear about this run: why events were refused and what to add,
    /// and timestamps that look like seconds. One line each.
    pub fn hints(&self) -> Vec<String> {
        let mut hints = Vec::new();
        if (SECONDS_TS_MIN..SECONDS_TS_MAX).contains(&self.max_ts) {
            hints.push(format!(
                "warning: the largest ts is {}, which looks like seconds since the epoch; ts is in milliseconds \
                 (multiply by 1000), or ticks and time limits will not mean what you expect",
                self.max_ts
            ));
        }
        if self.rejected > 0 {
            let kinds: Vec<String> = self.rejected_by_kind.iter().map(|(kind, n)| format!("{n} {kind}")).collect();
            hints.push(format!("refused: {} of {} events ({})", self.rejected, self.events, kinds.join(", ")));
        }
        if let Some(&n) = self.rejected_by_kind.get("future_ts") {
            let why = if self.clock_events == 0 {
                "the file has no clock events, and price ticks never move the engine clock"
            } else {
                "price ticks never move the engine clock, and the clock events are too sparse"
            };
            hints.push(format!(
                "hint: {n} price ticks were refused as future_ts (more than max_future_ms ahead of the engine clock): \
                 {why}; add a line {{\"type\":\"clock\",\"ts\":T}} before each tick time T (docs/getting-started.md)"
            ));
        }
        if let Some(&n) = self.rejected_by_kind.get("time_backwards") {
            hints.push(format!(
                "hint: {n} events were refused as time_backwards: deposits, trades, clock and other sequencer events \
                 must not go back in time; sort the file by ts"
            ));
        }
        hints
    }
}

/// Load `--config FILE` or the embedded default.
pub fn load_config(path: Option<&Path>) -> Result<Config, String> {
    match path {
        None => Ok(Config::embedded_default()),
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
            Config::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
        }
    }
}

fn open_input(path: &Path) -> Result<(Box<dyn BufRead + Send>, u64), String> {
    if path.as_os_str() == "-" {
        return Ok((Box::new(BufReader::with_capacity(1 << 16, io::stdin())), 0));
    }
    let file = File::open(path).map_err(|e| format!("cannot open events {}: {e}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((Box::new(BufReader::with_capacity(1 << 16, file)), len))
}

fn open_output(path: Option<&Path>) -> Result<Box<dyn Write>, String> {
    match path {
        None => Ok(Box::new(BufWriter::with_capacity(1 << 16, io::stdout().lock()))),
        Some(path) => {
            let file = File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            Ok(Box::new(BufWriter::with_capacity(1 << 16, file)))
        }
    }
}

/// Counts and buffers shared by both replay paths: one line in, its effects out, in order.
pub(crate) struct Applier<'w> {
    out: &'w mut dyn Write,
    pub(crate) summary: Summary,
    effects: Vec<Effect>,
    pub(crate) bytes_read: u64,
}

impl<'w> Applier<'w> {
    pub(crate) fn new(out: &'w mut dyn Write) -> Applier<'w> {
        Applier { out, summary: Summary::default(), effects: Vec::with_capacity(64), bytes_read: 0 }
    }

    /// Apply the next line (`None`: longer than the limit) and write its effects.
    pub(crate) fn line(
        &mut self,
        engine: &mut Engine,
        line: Option<&ParsedLine>,
        line_bytes: usize,
    ) -> Result<(), String> {
        self.summary.lines += 1;
        let seq = self.summary.lines;
        self.effects.clear();
        match line {
            Some(parsed) => {
                self.bytes_read += line_bytes as u64 + 1;
                if !parsed.is_blank() {
                    self.summary.events += 1;
                }
                if let Some(event) = parsed.event() {
                    self.summary.max_ts = self.summary.max_ts.max(event.ts());
                    self.summary.clock_events += u64::from(matches!(event, solvent_core::Event::Clock { .. }));
                }
                engine.apply_parsed(seq, parsed, &mut self.effects);
            }
            None => {
                self.summary.events += 1;
                let error = Error::LineTooLong { max_bytes: MAX_LINE_BYTES };
                self.effects.push(Effect::rejected(seq, engine.last_ts(), &error));
            }
        }
        for effect in &self.effects {
            if let Some(kind) = effect.rejection_kind() {
                self.summary.rejected += 1;
                match self.summary.rejected_by_kind.get_mut(kind) {
                    Some(count) => *count += 1,
                    None => {
                        self.summary.rejected_by_kind.insert(kind.to_string(), 1);
                    }
                }
            }
            serde_json::to_writer(&mut *self.out, effect).map_err(|e| format!("writing effects: {e}"))?;
            self.out.write_all(b"\n").map_err(|e| format!("writing effects: {e}"))?;
        }
        self.summary.effects += self.effects.len() as u64;
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<Summary, String> {
        self.out.flush().map_err(|e| format!("writing effects: {e}"))?;
        Ok(self.summary)
    }
}

/// Replay `events` into `engine` on the calling thread (read, parse, apply, write, line by
/// line), writing effects to `out`. Returns the counts. [`crate::pipeline::replay_pipelined`] gives the same
/// output with reading and parsing on a second thread.
pub fn replay_into(
    engine: &mut Engine,
    input: Box<dyn BufRead + Send>,
    out: &mut dyn Write,
    progress: &indicatif::ProgressBar,
) -> Result<Summary, String> {
    let mut reader = LineReader::new(input, MAX_LINE_BYTES);
    let mut applier = Applier::new(out);
    while let Some(line) = reader.next_line().map_err(|e| format!("reading events: {e}"))? {
        match line {
            Line::Text(bytes) => applier.line(engine, Some(&ParsedLine::parse(bytes)), bytes.len())?,
            Line::TooLong => applier.line(engine, None, 0)?,
        }
        if applier.summary.lines.is_multiple_of(65_536) {
            progress.set_position(applier.bytes_read);
        }
    }
    applier.finish()
}

/// The whole command. Returns the summary and the engine's final state.
pub fn run(options: &ReplayOptions) -> Result<(Summary, Engine), String> {
    let config = load_config(options.config.as_deref())?;
    let mut engine = Engine::new(&config);
    let (input, len) = open_input(&options.events)?;
    let mut out = open_output(options.out.as_deref())?;
    let progress = crate::progress::bytes_bar(len, "replaying");
    let started = Instant::now();
    let summary = crate::pipeline::replay_pipelined(&mut engine, input, &mut out, &progress)?;
    progress.finish_and_clear();
    let elapsed = started.elapsed();
    if let Some(path) = &options.state_out {
        write_state(&engine, path)?;
    }
    let hash = engine.state_hash();
    eprintln!(
        "replayed {} events ({} rejected) from {} lines in {:.3} s; {} effects; state_hash {}",
        summary.events,
        summary.rejected,
        summary.lines,
        elapsed.as_secs_f64(),
        summary.effects,
        hash
    );
    for hint in summary.hints() {
        eprintln!("{hint}");
    }
    if options.report {
        eprint!("{}", crate::report::accounts_table(&engine));
    }
    Ok((summary, engine))
}

fn write_state(engine: &Engine, path: &Path) -> Result<(), String> {
    let dump = engine.dump();
    let text = serde_json::to_string_pretty(&dump).map_err(|e| format!("encoding state: {e}"))?;
    if path.as_os_str() == "-" {
        let mut stdout = io::stdout().lock();
        return writeln!(stdout, "{text}")
            .and_then(|_| stdout.flush())
            .map_err(|e| format!("writing state to stdout: {e}"));
    }
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write state to {}: {e}", path.display()))
}

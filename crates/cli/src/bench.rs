//! `solvent bench`: a synthetic book and the engine's hot paths, measured side by side in one run.
//! The figures, how to reproduce them and where the time goes: `docs/performance.md`.
//!
//! Phases, in order: memory per account of a one-position book (built, measured, dropped); the
//! main book (victims for the latency ladder, then `--accounts` accounts); full-scan revaluation
//! against a plain memory read; price ticks through `apply` on the book and on an empty engine
//! (2 per account, between 10,000 and 2,000,000); the latency ladder (ticks that make 1 to 10
//! victims cross; one sample per 200 accounts, between 100 and 5,000); mixed event files through
//! the JSON parser and `apply`, as `solvent replay` runs them (two files of one line per account,
//! between 10,000 and 1,000,000: the first on one thread, the second pipelined, as `solvent
//! replay` does it), with CPU time per event; the liquidation map of BTC-PERP against a full scan
//! measured in the same phase (`--only map`); signing the ladder's orders as the server's signer
//! does (`--only sign`). The default (1,000,000 accounts) runs every phase
//! at full size.

mod alloc;
mod book;
mod cpu;
mod phases;

pub use alloc::{enable_huge_pages, start_counting, CountingAllocator};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fmt::Write as _;
use std::path::PathBuf;

pub struct BenchOptions {
    pub accounts: usize,
    pub seed: u64,
    pub json: Option<PathBuf>,
    /// Phases to run; empty means all.
    pub only: Vec<Phase>,
    /// Percent of the main book's pairs built as hedged portfolio-margined pairs.
    pub portfolio_percent: u32,
}

/// A phase of the bench, for `--only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// Memory per account of a one-position book.
    Memory,
    /// Full-scan revaluation against a plain memory read.
    Scan,
    /// Price ticks through `apply`.
    Ticks,
    /// Tick-to-liquidation latency ladder.
    Latency,
    /// Mixed event files through the parser and `apply`.
    Replay,
    /// The liquidation map of one market against a full scan, measured side by side.
    Map,
    /// Signing the latency ladder's orders (state hash per event, ed25519 per order); runs the
    /// latency ladder.
    Sign,
}

impl BenchOptions {
    fn runs(&self, phase: Phase) -> bool {
        self.only.is_empty() || self.only.contains(&phase)
    }
}

/// A target and whether the figure meets it.
#[derive(Clone, Debug)]
pub struct Target {
    pub text: &'static str,
    pub met: bool,
}

/// One measured figure.
#[derive(Clone, Debug)]
pub struct Figure {
    pub name: &'static str,
    pub value: f64,
    pub unit: &'static str,
    pub target: Option<Target>,
    pub note: String,
}

impl Figure {
    pub fn new(name: &'static str, value: f64, unit: &'static str) -> Figure {
        Figure { name, value, unit, target: None, note: String::new() }
    }
    pub fn target(mut self, text: &'static str, met: impl Fn(f64) -> bool) -> Figure {
        self.target = Some(Target { text, met: met(self.value) });
        self
    }
    pub fn note(mut self, note: impl Into<String>) -> Figure {
        self.note = note.into();
        self
    }
}

fn accounts_bar(total: usize, message: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
    let template = "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} accounts ({per_sec}, eta {eta})";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_message(message);
    bar
}

/// Samples of the latency ladder: one per 200 accounts, between 100 and 5,000.
fn ladder_samples(accounts: usize) -> usize {
    (accounts / 200).clamp(100, 5_000)
}

/// The whole command.
pub fn run(options: &BenchOptions) -> Result<(), String> {
    if options.accounts < 2 {
        return Err("--accounts must be at least 2".into());
    }
    if options.portfolio_percent > 100 {
        return Err(format!("--portfolio-percent must be at most 100, not {}", options.portfolio_percent));
    }
    start_counting();
    let n = options.accounts;
    let mut figures = Vec::new();
    if options.runs(Phase::Memory) {
        let bar = accounts_bar(n, "one-position book");
        figures.extend(phases::memory_one_position(n, options.seed, &bar));
        bar.finish_and_clear();
    }
    if options.only.iter().all(|p| *p == Phase::Memory) && !options.only.is_empty() {
        print!("{}", table(&figures, options));
        return write_json(&figures, options);
    }
    let samples = ladder_samples(n);
    let bar = accounts_bar(n + samples * 6, "building the book");
    let (mut book, ladder, built) = phases::build_book(n, samples, (options.seed, options.portfolio_percent), &bar);
    bar.finish_and_clear();
    figures.extend(built);
    eprintln!("solvent bench: book built; measuring");
    let stats = book.engine.risk_index_stats();
    let accounts = book.engine.accounts().len() as f64;
    figures.push(Figure::new("risk_index_bytes", stats.heap_bytes as f64 / accounts, "bytes/account").note(format!(
        "{} live entries (bands) for {} accounts",
        stats.entries_live,
        book.engine.accounts().len()
    )));
    let mut full_scan_ns = None;
    if options.runs(Phase::Scan) {
        let (ns, scan) = phases::full_scan(&mut book, 5);
        full_scan_ns = Some(ns);
        figures.extend(scan);
    }
    if options.runs(Phase::Map) {
        figures.extend(phases::liquidation_map(&book, 5));
    }
    if options.runs(Phase::Ticks) {
        figures.extend(phases::ticks(&mut book, (2 * n).clamp(10_000, 2_000_000), options.seed, full_scan_ns));
    }
    if options.runs(Phase::Latency) || options.runs(Phase::Sign) {
        let (latency, crash) = phases::latency(&mut book, &ladder);
        figures.extend(latency);
        if options.runs(Phase::Sign) {
            figures.extend(phases::signing(&book, &crash));
        }
    }
    if options.runs(Phase::Replay) {
        figures.extend(phases::replay(&mut book, n.clamp(10_000, 1_000_000), n, options.seed)?);
    }
    let stats = book.engine.risk_index_stats();
    figures.push(Figure::new("risk_index_rechecks_total", stats.rechecks as f64, "accounts").note(format!(
        "exact rechecks over the whole run; {} band crossings, {} merges",
        stats.triggered, stats.merges
    )));
    print!("{}", table(&figures, options));
    write_json(&figures, options)
}

fn write_json(figures: &[Figure], options: &BenchOptions) -> Result<(), String> {
    if let Some(path) = &options.json {
        let text = json(figures, options);
        std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

fn show(value: f64) -> String {
    if value.abs() >= 100.0 || value == value.trunc() {
        let rounded = value.round() as i128;
        let digits = rounded.unsigned_abs().to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        format!("{}{grouped}", if rounded < 0 { "-" } else { "" })
    } else {
        format!("{value:.3}")
    }
}

fn table(figures: &[Figure], options: &BenchOptions) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "solvent bench: {} accounts, seed {}", options.accounts, options.seed);
    let _ = writeln!(text, "{:<34} {:>18} {:<14} {:<14} note", "figure", "value", "unit", "target");
    for f in figures {
        let target =
            f.target.as_ref().map_or(String::new(), |t| format!("{} {}", t.text, if t.met { "MET" } else { "MISSED" }));
        let _ = writeln!(text, "{:<34} {:>18} {:<14} {:<14} {}", f.name, show(f.value), f.unit, target, f.note);
    }
    text
}

fn json(figures: &[Figure], options: &BenchOptions) -> String {
    let list: Vec<serde_json::Value> = figures
        .iter()
        .map(|f| {
            let mut entry = serde_json::json!({ "name": f.name, "value": f.value, "unit": f.unit });
            if let Some(t) = &f.target {
                entry["target"] = t.text.into();
                entry["met"] = t.met.into();
            }
            if !f.note.is_empty() {
                entry["note"] = f.note.clone().into();
            }
            entry
        })
        .collect();
    let document = serde_json::json!({
        "command": "solvent bench",
        "accounts": options.accounts,
        "seed": options.seed,
        "figures": list,
    });
    serde_json::to_string_pretty(&document).unwrap_or_default()
}

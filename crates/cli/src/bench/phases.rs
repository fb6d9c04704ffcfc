//! The measurements of `solvent bench`, each a function returning named figures.

use super::alloc::Snapshot;
use super::book::{self, Book, Ladder, Rng, BASE, MARKETS, SOURCES};
use super::Figure;
use solvent_core::{EffectKind, Engine, Event};
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::time::Instant;

fn ns_since(start: Instant) -> f64 {
    start.elapsed().as_nanos() as f64
}

/// Quote every market at its base price (the book's opening).
pub fn open_at_base(book: &mut Book) {
    for (market, base) in BASE.iter().enumerate() {
        book.quote_all(market, book::price_raw(*base as f64));
    }
}

/// Memory per account of a book where every account holds exactly one position.
pub fn memory_one_position(accounts: usize, seed: u64, progress: &indicatif::ProgressBar) -> Vec<Figure> {
    let before = Snapshot::now();
    let mut book = Book::new(seed);
    open_at_base(&mut book);
    book::build_one_position(&mut book, accounts, progress);
    book.out = Vec::new();
    let after = Snapshot::now();
    let per = |a: i64, b: i64| (a - b) as f64 / accounts as f64;
    let positions: usize = book.engine.accounts().iter().map(|a| a.positions.len()).sum();
    assert_eq!(positions, accounts / 2 * 2, "every account holds one position");
    vec![
        Figure::new("memory_one_position_requested", per(after.requested, before.requested), "bytes/account")
            .target("<= 256", |v| v <= 256.0)
            .note("bytes requested from the allocator, engine + name index + risk index, / accounts"),
        Figure::new("memory_one_position_malloc", per(after.footprint, before.footprint), "bytes/account")
            .note("bytes of the blocks handed out (the allocator's size-class rounding)"),
        Figure::new("memory_one_position_rss", per(after.rss, before.rss), "bytes/account")
            .note("resident set growth while building, / accounts"),
        Figure::new("memory_one_position_blocks", per(after.blocks, before.blocks), "allocations/account"),
        Figure::new("one_position_build_refused", book.refused as f64, "events"),
    ]
}

/// The main book: victims at 10,300, a walk down to 10,000, then `accounts` accounts.
pub fn build_book(
    accounts: usize,
    samples: usize,
    options: (u64, u32),
    progress: &indicatif::ProgressBar,
) -> (Book, Ladder, Vec<Figure>) {
    let (seed, portfolio_percent) = options;
    let before = Snapshot::now();
    let started = Instant::now();
    let mut book = Book::new(seed);
    book.portfolio_share = f64::from(portfolio_percent) / 100.0;
    open_at_base(&mut book);
    // A liquidated victim is restored to 1.5 x MM, so it does not cross again at the next step
    // of the latency ladder (with the default buffer 0 it would sit exactly at MM).
    let buffer = solvent_core::event::ParamsUpdate {
        ts: book.clock_ts,
        market: MARKETS[0].into(),
        liquidation_buffer: solvent_core::Rate::parse("0.5").ok(),
        ..Default::default()
    };
    book.apply(&Event::Params(Box::new(buffer)));
    let open = book::price_raw(book::VICTIM_OPEN as f64);
    book.walk(0, book::price_raw(BASE[0] as f64), open);
    let ladder = book::build_victims(&mut book, samples, progress);
    book.walk(0, open, book::price_raw(BASE[0] as f64));
    let victims = book.engine.accounts().len();
    if portfolio_percent > 0 {
        book::set_portfolio_loadings(&mut book);
    }
    book::build_main(&mut book, 0, accounts, progress);
    book.out = Vec::new();
    let after = Snapshot::now();
    let total = book.engine.accounts().len();
    let positions: usize = book.engine.accounts().iter().map(|a| a.positions.len()).sum();
    let portfolio = book.engine.accounts().iter().filter(|a| !a.margin_model.is_tiered()).count();
    let figures = vec![
        Figure::new("book_accounts", total as f64, "accounts")
            .note(format!("{victims} of them latency victims + 1 market maker")),
        Figure::new("book_positions", positions as f64, "positions"),
        Figure::new("book_portfolio_accounts", portfolio as f64, "accounts").note("under portfolio margin"),
        Figure::new("book_build_time", started.elapsed().as_secs_f64(), "s").note("through Engine::apply"),
        Figure::new("book_build_refused", book.refused as f64, "events"),
        Figure::new(
            "memory_book_requested",
            (after.requested - before.requested) as f64 / total as f64,
            "bytes/account",
        ),
        Figure::new("memory_book_rss", (after.rss - before.rss) as f64 / total as f64, "bytes/account"),
    ];
    (book, ladder, figures)
}

/// Bytes a full scan reads: the account records and their position and collateral entries.
fn scan_bytes(engine: &Engine) -> usize {
    let per_position = std::mem::size_of::<solvent_core::state::Position>();
    let per_collateral = std::mem::size_of::<(solvent_core::state::AssetId, solvent_core::Size)>();
    engine
        .accounts()
        .iter()
        .map(|a| std::mem::size_of_val(a) + a.positions.len() * per_position + a.collateral.len() * per_collateral)
        .sum()
}

/// Best time of `runs` reads of a buffer of `bytes` bytes, as GB/s.
fn memory_read_bandwidth(bytes: usize, runs: usize) -> f64 {
    let buffer: Vec<u64> = (0..bytes / 8).map(|i| i as u64).collect();
    let mut best = f64::MAX;
    for _ in 0..runs {
        let start = Instant::now();
        let sum = buffer.iter().fold(0u64, |acc, x| acc.wrapping_add(*x));
        black_box(sum);
        best = best.min(ns_since(start));
    }
    bytes as f64 / best
}

/// Full-scan revaluation of every account (the reference), against a plain memory read.
pub fn full_scan(book: &mut Book, runs: usize) -> (f64, Vec<Figure>) {
    let mut best = f64::MAX;
    let mut total = 0.0;
    for _ in 0..runs {
        let start = Instant::now();
        let found = book.engine.liquidation_candidates_full_scan();
        let ns = ns_since(start);
        black_box(found);
        best = best.min(ns);
        total += ns;
    }
    let mean = total / runs as f64;
    let bytes = scan_bytes(&book.engine);
    let scan_gbs = bytes as f64 / best;
    let memory_gbs = memory_read_bandwidth(bytes, runs);
    let accounts = book.engine.accounts().len() as f64;
    let figures = vec![
        Figure::new("full_scan_per_tick", mean, "ns").note(format!("mean of {runs}; best {:.0} ns", best)),
        Figure::new("full_scan_per_account", mean / accounts, "ns"),
        Figure::new("full_scan_bytes", bytes as f64, "bytes").note("account records + position and collateral entries"),
        Figure::new("full_scan_bandwidth", scan_gbs, "GB/s").note("bytes / best scan time"),
        Figure::new("memory_read_bandwidth", memory_gbs, "GB/s").note("best plain read of a buffer of the same size"),
        Figure::new("full_scan_bandwidth_fraction", scan_gbs / memory_gbs, "ratio").target(">= 0.5", |v| v >= 0.5),
    ];
    (mean, figures)
}

/// The liquidation map of the first market (default step and range) against the full scan,
/// interleaved, best of `runs` each: the map must cost no more than one full scan.
pub fn liquidation_map(book: &Book, runs: usize) -> Vec<Figure> {
    use solvent_core::liquidation_map::{DEFAULT_MAP_RANGE, DEFAULT_MAP_STEP};
    let (mut best_map, mut best_scan) = (f64::MAX, f64::MAX);
    let mut liquidated = 0u64;
    for _ in 0..runs {
        let start = Instant::now();
        black_box(book.engine.liquidation_candidates_full_scan());
        best_scan = best_scan.min(ns_since(start));
        let start = Instant::now();
        let map = book.engine.liquidation_map(MARKETS[0], DEFAULT_MAP_STEP, DEFAULT_MAP_RANGE);
        best_map = best_map.min(ns_since(start));
        let map = map.expect("the bench market has a mark");
        liquidated = map.down.iter().chain(&map.up).map(|b| b.accounts).sum();
    }
    let accounts = book.engine.accounts().len() as f64;
    vec![
        Figure::new("liquidation_map", best_map, "ns")
            .note(format!("{} ±50% in 0.5% buckets, best of {runs}; {liquidated} accounts in buckets", MARKETS[0])),
        Figure::new("liquidation_map_per_account", best_map / accounts, "ns"),
        Figure::new("liquidation_map_over_full_scan", best_map / best_scan, "ratio")
            .target("<= 1", |v| v <= 1.0)
            .note(format!("full scan best {best_scan:.0} ns in the same phase")),
    ]
}

/// A bounded random walk of each market's "true" price (within +-0.3% of base), quoted by the
/// five sources in turn with +-0.5 bp of noise; markets round-robin.
pub struct Walk {
    rng: Rng,
    level: [f64; 3],
    count: u64,
}

impl Walk {
    pub fn new(seed: u64) -> Walk {
        Walk { rng: Rng(seed ^ 0x5eed), level: [0.0; 3], count: 0 }
    }

    fn next_quote(&mut self) -> (usize, usize, i64) {
        let market = (self.count % 3) as usize;
        let source = ((self.count / 3) % 5) as usize;
        self.count += 1;
        let step = (self.rng.unit() - 0.5) * 1e-4;
        self.level[market] = (self.level[market] + step).clamp(-0.003, 0.003);
        let noise = (self.rng.unit() - 0.5) * 1e-4;
        let price = BASE[market] as f64 * (1.0 + self.level[market] + noise);
        (market, source, book::price_raw(price))
    }

    /// `count` ticks for `book` (ts from its counters), with a clock event whenever one is due.
    pub fn stream(&mut self, book: &mut Book, count: usize) -> Vec<Event> {
        let mut events = Vec::with_capacity(count + count / book::CLOCK_EVERY as usize + 1);
        for _ in 0..count {
            if book.clock_due() {
                book.clock_ts = book.tick_ts;
                events.push(Event::Clock { ts: book.clock_ts });
            }
            book.tick_ts += 1;
            let (market, source, price) = self.next_quote();
            events.push(book::tick(market, source, book.tick_ts, price));
        }
        events
    }
}

/// Apply `ticks` ticks of the walk in chunks; returns (ns per tick, refused).
fn run_ticks(book: &mut Book, walk: &mut Walk, ticks: usize) -> (f64, u64) {
    const CHUNK: usize = 50_000;
    let mut elapsed = 0.0;
    let mut refused = 0;
    let mut done = 0;
    while done < ticks {
        let events = walk.stream(book, CHUNK.min(ticks - done));
        let start = Instant::now();
        for event in &events {
            book.seq += 1;
            book.out.clear();
            if book.engine.apply(book.seq, event, &mut book.out).is_err() {
                refused += 1;
            }
        }
        elapsed += ns_since(start);
        done += CHUNK.min(ticks - done);
    }
    (elapsed / ticks as f64, refused)
}

/// Price ticks through `apply` with aggregation, on the book and on an empty engine.
pub fn ticks(book: &mut Book, ticks: usize, seed: u64, full_scan_ns: Option<f64>) -> Vec<Figure> {
    let mut empty = Book::new(seed);
    open_at_base(&mut empty);
    let (empty_ns, _) = run_ticks(&mut empty, &mut Walk::new(seed), ticks.min(1_000_000));
    let stats_before = book.engine.risk_index_stats();
    let (book_ns, refused) = run_ticks(book, &mut Walk::new(seed), ticks);
    let stats = book.engine.risk_index_stats();
    let rechecks = (stats.rechecks - stats_before.rechecks) as f64 / ticks as f64;
    let triggered = (stats.triggered - stats_before.triggered) as f64 / ticks as f64;
    let mut figures = vec![
        Figure::new("indexed_tick", book_ns, "ns")
            .note("apply(price) with the risk index, whole event (oracle + index + waterfall)"),
        Figure::new("oracle_tick_empty_book", empty_ns, "ns").note("the same ticks on an engine without accounts"),
        Figure::new("index_share_of_tick", book_ns - empty_ns, "ns"),
    ];
    if let Some(full_scan_ns) = full_scan_ns {
        figures.push(
            Figure::new("full_scan_to_indexed_ratio", full_scan_ns / book_ns, "x").target(">= 1000", |v| v >= 1_000.0),
        );
    }
    figures.extend([
        Figure::new("price_ticks_per_second", 1e9 / book_ns, "ticks/s")
            .target(">= 1,000,000", |v| v >= 1e6)
            .note("5 sources x 3 markets round-robin, one clock event per 1,000 ticks included"),
        Figure::new("rechecks_per_tick", rechecks, "accounts").note(format!("band crossings per tick {triggered:.4}")),
        Figure::new("ticks_refused", refused as f64, "events"),
    ]);
    figures
}

/// Ladder ticks down from `top` with 1 to 10 victims crossing each; latency of each `apply`.
/// The orders of the latency ladder, kept for the signing phase: the ticks that emitted one,
/// the liquidation effects, and the engine's time for those ticks.
#[derive(Default)]
pub struct Crash {
    pub events: u64,
    pub orders: Vec<solvent_core::Effect>,
    pub engine_ns: f64,
}

pub fn latency(book: &mut Book, ladder: &Ladder) -> (Vec<Figure>, Crash) {
    let mut crash = Crash::default();
    let mark = book.engine.markets()[0].mark_price.map_or(0, |p| p.raw());
    book.walk(0, mark, ladder.top + 2 * ladder.step); // every source above the ladder
    let mut samples: Vec<(f64, u32)> = Vec::with_capacity(ladder.crossing.len());
    let mut mismatched = 0u64;
    for j in 0..ladder.crossing.len() + 2 {
        if book.clock_due() {
            book.advance_clock();
            for market in 1..MARKETS.len() {
                let mark = book.engine.markets()[market].mark_price.map_or(0, |p| p.raw());
                book.quote_all(market, mark);
            }
        }
        book.tick_ts += 1;
        let event = book::tick(0, j % SOURCES.len(), book.tick_ts, ladder.quote(j));
        book.seq += 1;
        book.out.clear();
        let (result, ns) = timed_apply(&mut book.engine, book.seq, &event, &mut book.out);
        let liquidated = book.out.iter().filter(|e| matches!(e.kind, EffectKind::Liquidation { .. })).count() as u32;
        if j >= 2 {
            samples.push((ns, liquidated));
            mismatched += u64::from(result.is_err() || liquidated != ladder.crossing[j - 2]);
        }
        if liquidated > 0 {
            crash.events += 1;
            crash.engine_ns += ns;
            crash.orders.extend(book.out.iter().filter(|e| solvent_proofs::order::is_signed(e)).cloned());
        }
    }
    (latency_figures(&mut samples, mismatched), crash)
}

/// Signing the ladder's orders as the server's signer does (docs/serve.md, "Signed orders"): one
/// state hash of the whole book after each event that emitted an order, one ed25519 signature
/// per order; against the rate at which the engine emitted them.
pub fn signing(book: &Book, crash: &Crash) -> Vec<Figure> {
    if crash.orders.is_empty() {
        return vec![Figure::new("signing_orders", 0.0, "orders").note("the ladder emitted no order")];
    }
    let hash_ns = (0..3)
        .map(|_| {
            let start = Instant::now();
            black_box(book.engine.state_hash());
            ns_since(start)
        })
        .fold(f64::INFINITY, f64::min);
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let (state_hash, chain) = ([1u8; 32], [2u8; 32]);
    let start = Instant::now();
    for order in &crash.orders {
        black_box(solvent_proofs::order::sign(&key, order, &state_hash, &chain));
    }
    let sign_ns = ns_since(start) / crash.orders.len() as f64;
    let orders = crash.orders.len() as f64;
    let signer_ns = crash.events as f64 * hash_ns + orders * sign_ns;
    let crash_rate = orders / crash.engine_ns * 1e9;
    let signer_rate = orders / signer_ns * 1e9;
    let without_hash = 1e9 / sign_ns;
    vec![
        Figure::new("signing_state_hash", hash_ns / 1e6, "ms").note("the whole book's state hash, best of 3"),
        Figure::new("signing_per_order", sign_ns / 1e3, "us").note("ed25519 over the order's canonical message"),
        Figure::new("signing_crash_orders_per_sec", crash_rate, "orders/s").note(format!(
            "{} orders in {} ticks of the latency ladder, engine time only",
            crash.orders.len(),
            crash.events
        )),
        Figure::new("signing_orders_per_sec", signer_rate, "orders/s").note(format!(
            "one thread: a state hash per event plus a signature per order ({without_hash:.0}/s without the hash)"
        )),
        Figure::new("signing_over_crash_rate", signer_rate / crash_rate, "ratio")
            .target(">= 1", |v| v >= 1.0)
            .note("the signer keeps up with the busiest crash when >= 1"),
    ]
}

/// One timed `apply` of the latency ladder (kept out of line so that profilers can single out
/// the measured region: `valgrind --tool=callgrind --toggle-collect='*timed_apply*'`).
#[inline(never)]
fn timed_apply(
    engine: &mut Engine,
    seq: u64,
    event: &Event,
    out: &mut Vec<solvent_core::Effect>,
) -> (Result<(), solvent_core::Error>, f64) {
    let start = Instant::now();
    let result = engine.apply(seq, event, out);
    (result, ns_since(start))
}

fn latency_figures(samples: &mut [(f64, u32)], mismatched: u64) -> Vec<Figure> {
    samples.sort_by(|a, b| a.0.total_cmp(&b.0));
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)].0 / 1_000.0;
    let mean_liquidations = samples.iter().map(|s| f64::from(s.1)).sum::<f64>() / samples.len() as f64;
    let worst_ten = samples.iter().filter(|s| s.1 >= 9).map(|s| s.0).fold(0.0, f64::max) / 1_000.0;
    // The samples with exactly ten liquidations, still sorted: the p99 of the whole ladder lies
    // among them unless more than 1% of samples are disturbed.
    let ten: Vec<f64> = samples.iter().filter(|s| s.1 == 10).map(|s| s.0 / 1_000.0).collect();
    let ten_at = |q: f64| ten.get(((ten.len() as f64 * q) as usize).min(ten.len().saturating_sub(1))).copied();
    vec![
        Figure::new("tick_to_liquidation_p50", at(0.50), "us"),
        Figure::new("tick_to_liquidation_p99", at(0.99), "us").target("<= 10", |v| v <= 10.0),
        Figure::new("tick_to_liquidation_p999", at(0.999), "us"),
        Figure::new("tick_to_liquidation_max_9_10", worst_ten, "us").note("slowest sample with 9 or 10 liquidations"),
        Figure::new("tick_to_liquidation_p50_10", ten_at(0.5).unwrap_or(f64::NAN), "us")
            .note(format!("samples with exactly 10 liquidations ({})", ten.len())),
        Figure::new("tick_to_liquidation_p90_10", ten_at(0.9).unwrap_or(f64::NAN), "us"),
        Figure::new("liquidations_per_sample", mean_liquidations, "accounts")
            .note(format!("{} samples, 1 to 10 each", samples.len())),
        Figure::new("latency_samples_mismatched", mismatched as f64, "samples").note("liquidations != victims planned"),
    ]
}

/// One line of the mixed file.
fn mixed_line(book: &mut Book, walk: &mut Walk, accounts: usize, out: &mut impl Write) -> std::io::Result<()> {
    let roll = book.rng.below(100);
    let ts = book.clock_ts;
    let pick = |rng: &mut Rng| book::account_name(rng.below(accounts as u64) as usize);
    match roll {
        0..=54 => {
            if book.clock_due() {
                book.clock_ts = book.tick_ts;
                writeln!(out, r#"{{"type":"clock","ts":{}}}"#, book.clock_ts)?;
            }
            book.tick_ts += 1;
            let (market, source, price) = walk.next_quote();
            let price = solvent_core::Price::from_raw(price);
            let (m, s, t) = (MARKETS[market], SOURCES[source], book.tick_ts);
            writeln!(out, r#"{{"type":"price","ts":{t},"market":"{m}","source":"{s}","price":"{price}"}}"#)
        }
        55..=79 => {
            let market = book.rng.below(3) as usize;
            let (buyer, seller) = (pick(&mut book.rng), pick(&mut book.rng));
            let size = ["0.001", "0.02", "0.5"][market];
            let price = BASE[market];
            let m = MARKETS[market];
            writeln!(
                out,
                r#"{{"type":"trade","ts":{ts},"market":"{m}","buyer":"{buyer}","seller":"{seller}","size":"{size}","price":"{price}"}}"#
            )
        }
        80..=89 => writeln!(
            out,
            r#"{{"type":"deposit","ts":{ts},"account":"{}","asset":"USDC","amount":"25"}}"#,
            pick(&mut book.rng)
        ),
        90..=94 => writeln!(
            out,
            r#"{{"type":"withdraw","ts":{ts},"account":"{}","asset":"USDC","amount":"1.5"}}"#,
            pick(&mut book.rng)
        ),
        _ => {
            book.clock_ts = book.tick_ts.max(book.clock_ts);
            writeln!(out, r#"{{"type":"clock","ts":{}}}"#, book.clock_ts)
        }
    }
}

/// Write `lines` mixed lines to a temporary file; returns its path and size in bytes.
fn write_mixed_file(
    book: &mut Book,
    walk: &mut Walk,
    lines: usize,
    accounts: usize,
    name: &str,
) -> Result<(std::path::PathBuf, u64), String> {
    let path = std::env::temp_dir().join(format!("solvent-bench-{}-{name}.jsonl", std::process::id()));
    let file = std::fs::File::create(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    let mut writer = BufWriter::with_capacity(1 << 16, file);
    for _ in 0..lines {
        mixed_line(book, walk, accounts, &mut writer).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    writer.flush().map_err(|e| format!("writing {}: {e}", path.display()))?;
    drop(writer);
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    Ok((path, bytes))
}

/// One timed replay: the counts, wall seconds, and CPU ns of the calling (engine) thread and of
/// the whole process (both `None` where `/proc` is unavailable).
struct Timed {
    summary: crate::replay::Summary,
    seconds: f64,
    engine_cpu_ns: Option<f64>,
    process_cpu_ns: Option<f64>,
}

/// Replay the file at `path` into the book's engine, on one thread or pipelined (file open to
/// last effect written).
fn time_replay(book: &mut Book, path: &std::path::Path, pipelined: bool) -> Result<Timed, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("opening {}: {e}", path.display()));
    let _ = std::fs::remove_file(path); // the open file stays readable
    let input = Box::new(std::io::BufReader::with_capacity(1 << 16, file?));
    let (sink, bar) = (&mut std::io::sink(), &indicatif::ProgressBar::hidden());
    let (thread_before, process_before) = (super::cpu::thread_ns(), super::cpu::process_ns());
    let start = Instant::now();
    let summary = if pipelined {
        crate::pipeline::replay_pipelined(&mut book.engine, input, sink, bar)
    } else {
        crate::replay::replay_into(&mut book.engine, input, sink, bar)
    }?;
    let seconds = start.elapsed().as_secs_f64();
    let delta = |before: Option<f64>, after: Option<f64>| Some(after? - before?);
    Ok(Timed {
        summary,
        seconds,
        engine_cpu_ns: delta(thread_before, super::cpu::thread_ns()),
        process_cpu_ns: delta(process_before, super::cpu::process_ns()),
    })
}

/// Replay mixed event files through the JSON parser and `apply`, as `solvent replay` does
/// (effects serialized to a sink): one file on one thread, then the next (same mix, continuing
/// the same stream) pipelined, the path `solvent replay` takes.
pub fn replay(book: &mut Book, lines: usize, accounts: usize, seed: u64) -> Result<Vec<Figure>, String> {
    let mut walk = Walk::new(seed ^ 0xfeed);
    let (one_path, bytes) = write_mixed_file(book, &mut walk, lines, accounts, "one-thread")?;
    let one = time_replay(book, &one_path, false)?;
    let (two_path, _) = write_mixed_file(book, &mut walk, lines, accounts, "pipelined")?;
    let two = time_replay(book, &two_path, true)?;
    let mix = "55% prices, 25% trades, 10% deposits, 5% withdrawals, 5% clocks; parse + apply + effects to a sink";
    let per_event = |ns: f64, timed: &Timed| ns / timed.summary.events as f64;
    let mut figures = vec![
        Figure::new("replay_events_per_second", two.summary.events as f64 / two.seconds, "events/s")
            .target(">= 1,000,000", |v| v >= 1e6)
            .note(format!("{mix}; reader/parser thread + engine thread (solvent replay)")),
        Figure::new("replay_one_thread_events_per_second", one.summary.events as f64 / one.seconds, "events/s")
            .note("the same mix, read + parse + apply + write on one thread"),
    ];
    if let (Some(engine), Some(process), Some(single)) = (two.engine_cpu_ns, two.process_cpu_ns, one.engine_cpu_ns) {
        figures.extend([
            Figure::new("replay_engine_thread_cpu", per_event(engine, &two), "ns/event")
                .note("pipelined: CPU time of the applying thread (bounds events/s on an idle core)"),
            Figure::new("replay_reader_thread_cpu", per_event(process - engine, &two), "ns/event")
                .note("pipelined: CPU time of the rest of the process (the reader/parser), 10 ms ticks"),
            Figure::new("replay_one_thread_cpu", per_event(single, &one), "ns/event"),
        ]);
    }
    figures.extend([
        Figure::new("replay_events", (one.summary.events + two.summary.events) as f64, "events")
            .note(format!("two files of {lines} lines, {:.1} MB each", bytes as f64 / 1e6)),
        Figure::new("replay_rejected", (one.summary.rejected + two.summary.rejected) as f64, "events"),
        Figure::new("replay_effects", (one.summary.effects + two.summary.effects) as f64, "effects"),
    ]);
    Ok(figures)
}

//! Criterion benches of the hot paths of the risk index, on books built through `Engine::apply`:
//!
//! - `indexed_tick`: a price tick through `apply` (oracle judging, the risk index's pass, the
//!   waterfall) on books of 10,000 and 100,000 accounts, prices walking within +-0.3%;
//! - `full_scan`: `liquidation_candidates_full_scan` on the same books (what the index replaces);
//! - `health`: `margin::health` of a one-position account and of a three-market account with BTC
//!   collateral;
//! - `partial_liquidation_sizing`: `sizing::partial_close_size` in marginal and whole brackets;
//! - `liquidation`: one tick that makes 1 or 10 accounts cross, from tick to effects;
//! - `replay`: parse + apply of a mixed event stream (55% prices, 25% trades, 10% deposits, 5%
//!   withdrawals, 5% clocks) on a 10,000-account book.
//!
//! Run: `cargo bench -p solvent-core --bench risk` (a filter narrows it: `-- indexed_tick`).
//! `solvent bench` measures the same paths at 1,000,000 accounts in one run.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use solvent_core::config::MarketParams;
use solvent_core::event::{ParamsUpdate, ParsedLine, PriceTick, Trade, Transfer};
use solvent_core::liquidation::sizing::partial_close_size;
use solvent_core::margin::health;
use solvent_core::state::{Account, AssetId, MarketId, Position};
use solvent_core::{Config, Effect, Engine, Event, Price, Quote, Rate, Size};
use std::time::{Duration, Instant};

const MARKETS: [&str; 3] = ["BTC-PERP", "ETH-PERP", "SOL-PERP"];
const SOURCES: [&str; 5] = ["s1", "s2", "s3", "s4", "s5"];
const BASE: [i64; 3] = [10_000, 500, 20];

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone)]
struct Book {
    engine: Engine,
    seq: u64,
    clock_ts: u64,
    tick_ts: u64,
    level: [i64; 3],
    rng_state: u64,
}

fn raw(units: i64) -> i64 {
    units * Price::ONE_RAW
}

impl Book {
    fn apply(&mut self, event: &Event) {
        self.seq += 1;
        let _ = self.engine.apply(self.seq, event, &mut Vec::new());
    }

    /// The next tick of the walk (and a clock event before it every 1,000 ticks).
    fn next_ticks(&mut self, out: &mut Vec<Event>) {
        if self.tick_ts + 1 >= self.clock_ts + 1_000 {
            self.clock_ts = self.tick_ts;
            out.push(Event::Clock { ts: self.clock_ts });
        }
        let mut rng = Rng(self.rng_state);
        let n = self.tick_ts as usize;
        let market = n % 3;
        let base = raw(BASE[market]);
        let step = base / 100_000 * (rng.below(11) as i64 - 5);
        self.level[market] = (self.level[market] + step).clamp(base - base / 333, base + base / 333);
        self.rng_state = rng.next();
        self.tick_ts += 1;
        out.push(tick(market, (n / 3) % 5, self.tick_ts, self.level[market]));
    }

    fn ticks(&mut self, count: u64) -> Vec<Event> {
        let mut events = Vec::with_capacity(count as usize + 1);
        while (events.len() as u64) < count {
            self.next_ticks(&mut events);
        }
        events
    }
}

fn tick(market: usize, source: usize, ts: u64, price: i64) -> Event {
    Event::Price(PriceTick {
        ts,
        market: MARKETS[market].into(),
        source: SOURCES[source].into(),
        price: Price::from_raw(price),
        conf: None,
        sig: None,
    })
}

fn deposit(ts: u64, account: &str, amount: i64) -> Event {
    let amount = Quote::from_int(amount).expect("small");
    Event::Deposit(Transfer { ts, account: account.into(), asset: "USDC".into(), amount })
}

fn trade(ts: u64, market: usize, buyer: &str, seller: &str, size: Size, price: i64) -> Event {
    Event::Trade(Trade {
        ts,
        market: MARKETS[market].into(),
        buyer: buyer.into(),
        seller: seller.into(),
        size,
        price: Price::from_raw(price),
        buyer_fee: Quote::ZERO,
        seller_fee: Quote::ZERO,
        buyer_isolated: false,
        seller_isolated: false,
    })
}

/// Pairs trading at base prices at 1x to 15x; one pair in seven in two markets.
fn book(accounts: usize) -> Book {
    let mut book = Book {
        engine: Engine::new(&Config::embedded_default()),
        seq: 0,
        clock_ts: 1,
        tick_ts: 1,
        level: BASE.map(raw),
        rng_state: 7,
    };
    let mut rng = Rng(42);
    for pair in 0..accounts / 2 {
        if pair % 2_000 == 0 {
            for (market, base) in BASE.iter().enumerate() {
                for source in 0..5 {
                    book.tick_ts += 1;
                    book.apply(&tick(market, source, book.tick_ts, raw(*base)));
                }
            }
        }
        let (a, b) = (format!("u{:07}", 2 * pair), format!("u{:07}", 2 * pair + 1));
        let notional = 1_000 + rng.below(100_000) as i64;
        let leverage = 1 + rng.below(15) as i64;
        let markets = if pair % 7 == 0 { vec![0, 1] } else { vec![pair % 3] };
        for name in [&a, &b] {
            book.apply(&deposit(book.clock_ts, name, notional * markets.len() as i64 / leverage + 10));
        }
        for market in markets {
            let size = Size::from_raw(notional * Size::ONE_RAW / BASE[market]);
            book.apply(&trade(book.clock_ts, market, &a, &b, size, raw(BASE[market])));
        }
    }
    book
}

fn indexed_tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("indexed_tick");
    for accounts in [10_000, 100_000] {
        let mut base = book(accounts);
        group.bench_function(format!("apply_price_{accounts}_accounts"), |b| {
            b.iter_custom(|iters| {
                let events = base.ticks(iters);
                let mut out = Vec::with_capacity(16);
                let start = Instant::now();
                for event in &events {
                    base.seq += 1;
                    out.clear();
                    let _ = base.engine.apply(base.seq, black_box(event), &mut out);
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

fn full_scan(c: &mut Criterion) {
    let mut group = c.benchmark_group("full_scan");
    group.sample_size(20);
    for accounts in [10_000, 100_000] {
        let base = book(accounts);
        group.throughput(Throughput::Elements(accounts as u64));
        group.bench_function(format!("{accounts}_accounts"), |b| {
            b.iter(|| base.engine.liquidation_candidates_full_scan())
        });
    }
    group.finish();
}

fn position(market: u16, size: &str, entry: i64) -> Position {
    let size = Size::parse(size).expect("literal");
    Position { market: MarketId(market), size, cost: size.mul_price(Price::from_raw(raw(entry))) }
}

fn health_bench(c: &mut Criterion) {
    let base = book(100);
    let (assets, markets) = (base.engine.assets(), base.engine.markets());
    let mut one = Account::new("one");
    one.settlement = Quote::from_int(1_000).expect("small");
    one.positions.push(position(0, "1", 10_000));
    let mut three = one.clone();
    three.collateral.push((AssetId(0), Size::parse("0.5").expect("literal")));
    three.positions.push(position(1, "-10", 500));
    three.positions.push(position(2, "100", 20));
    let mut group = c.benchmark_group("health");
    group.bench_function("one_position", |b| b.iter(|| health(black_box(&one), assets, markets)));
    group.bench_function("three_positions_btc_collateral", |b| b.iter(|| health(black_box(&three), assets, markets)));
    group.finish();
}

fn sizing_bench(c: &mut Criterion) {
    let marginal: MarketParams = Config::embedded_default().markets[0].params.clone();
    let whole = MarketParams { tier_mode: solvent_core::config::TierMode::Whole, ..marginal.clone() };
    let size = Size::from_int(300).expect("small");
    let mark = Price::from_int(9_000).expect("small");
    let equity = Quote::from_int(120_000).expect("small");
    let mut group = c.benchmark_group("partial_liquidation_sizing");
    for (name, params) in [("marginal", &marginal), ("whole", &whole)] {
        group.bench_function(name, |b| {
            b.iter(|| partial_close_size(params, black_box(size), mark, equity, Quote::ZERO))
        });
    }
    group.finish();
}

/// A book where the next BTC tick at 9,690 makes `crossing` accounts cross (longs opened at
/// 10,000 with liquidation prices from 9,700), among 1,000 others.
fn crossing_book(crossing: usize) -> (Book, Event) {
    let mut base = book(1_000);
    let buffer = ParamsUpdate {
        ts: base.clock_ts,
        market: MARKETS[0].into(),
        liquidation_buffer: Rate::parse("0.5").ok(),
        ..Default::default()
    };
    base.apply(&Event::Params(Box::new(buffer)));
    base.apply(&deposit(base.clock_ts, "mm", 1_000_000_000));
    for k in 0..crossing {
        let name = format!("victim{k}");
        let size = Size::ONE;
        let liquidation = raw(9_700) + k as i64 * raw(3);
        let exact = size.mul_price(Price::from_raw(raw(10_000))).raw()
            - size.mul_price(Price::from_raw(liquidation)).raw() / 1_000 * 975;
        base.apply(&Event::Deposit(Transfer {
            ts: base.clock_ts,
            account: name.clone(),
            asset: "USDC".into(),
            amount: Quote::from_raw(exact),
        }));
        base.apply(&trade(base.clock_ts, 0, &name, "mm", size, raw(10_000)));
    }
    // Two sources already at 9,690: the third makes the median of five cross.
    for source in 0..2 {
        base.tick_ts += 1;
        base.apply(&tick(0, source, base.tick_ts, raw(9_690)));
    }
    let _ = base.engine.liquidation_candidates_indexed();
    base.tick_ts += 1;
    let event = tick(0, 2, base.tick_ts, raw(9_690));
    (base, event)
}

fn liquidation_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("liquidation");
    for crossing in [1, 10] {
        let (base, event) = crossing_book(crossing);
        let mut check = base.clone();
        let mut out: Vec<Effect> = Vec::new();
        let _ = check.engine.apply(check.seq + 1, &event, &mut out);
        let liquidations = out.iter().filter(|e| e.type_name() == "liquidation").count();
        assert_eq!(liquidations, crossing, "the tick liquidates exactly the crossing accounts: {out:?}");
        group.bench_function(format!("tick_with_{crossing}_crossing"), |b| {
            b.iter_batched_ref(
                || (base.clone(), Vec::with_capacity(64)),
                |(book, out)| book.engine.apply(book.seq + 1, black_box(&event), out),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// `count` mixed lines continuing `book`'s clocks.
fn mixed_lines(book: &mut Book, accounts: usize, count: u64) -> Vec<String> {
    let mut rng = Rng(book.tick_ts ^ 0xabcdef);
    let mut lines = Vec::with_capacity(count as usize);
    let mut scratch = Vec::new();
    while (lines.len() as u64) < count {
        let pick = |rng: &mut Rng| format!("u{:07}", rng.below(accounts as u64));
        let ts = book.clock_ts;
        let line = match rng.below(100) {
            0..=54 => {
                scratch.clear();
                book.next_ticks(&mut scratch);
                scratch.iter().map(line_of).collect::<Vec<_>>().join("\n")
            }
            55..=79 => {
                let (buyer, seller) = (pick(&mut rng), pick(&mut rng));
                format!(
                    r#"{{"type":"trade","ts":{ts},"market":"BTC-PERP","buyer":"{buyer}","seller":"{seller}","size":"0.001","price":"10000"}}"#
                )
            }
            80..=89 => {
                format!(r#"{{"type":"deposit","ts":{ts},"account":"{}","asset":"USDC","amount":"25"}}"#, pick(&mut rng))
            }
            90..=94 => format!(
                r#"{{"type":"withdraw","ts":{ts},"account":"{}","asset":"USDC","amount":"1.5"}}"#,
                pick(&mut rng)
            ),
            _ => {
                book.clock_ts = book.tick_ts.max(book.clock_ts);
                format!(r#"{{"type":"clock","ts":{}}}"#, book.clock_ts)
            }
        };
        lines.extend(line.split('\n').map(str::to_string));
    }
    lines
}

fn line_of(event: &Event) -> String {
    match event {
        Event::Clock { ts } => format!(r#"{{"type":"clock","ts":{ts}}}"#),
        Event::Price(p) => format!(
            r#"{{"type":"price","ts":{},"market":"{}","source":"{}","price":"{}"}}"#,
            p.ts, p.market, p.source, p.price
        ),
        other => unreachable!("only ticks and clocks: {other:?}"),
    }
}

fn replay_bench(c: &mut Criterion) {
    let accounts = 10_000;
    let base = book(accounts);
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_apply_mixed_10k_accounts", |b| {
        b.iter_custom(|iters| {
            let mut replica = base.clone();
            let lines = mixed_lines(&mut replica, accounts, iters);
            let mut out = Vec::with_capacity(64);
            let start = Instant::now();
            for (i, line) in lines.iter().take(iters as usize).enumerate() {
                out.clear();
                replica.engine.apply_line(replica.seq + 1 + i as u64, black_box(line.as_bytes()), &mut out);
            }
            let elapsed = start.elapsed();
            drop(replica);
            elapsed.max(Duration::from_nanos(1))
        })
    });
    // The engine thread's share when lines are parsed on another thread (`solvent replay`):
    // parsing happens before the clock starts.
    group.bench_function("apply_parsed_mixed_10k_accounts", |b| {
        b.iter_custom(|iters| {
            let mut replica = base.clone();
            let lines = mixed_lines(&mut replica, accounts, iters);
            let parsed: Vec<ParsedLine> = lines.iter().map(|l| ParsedLine::parse(l.as_bytes())).collect();
            let mut out = Vec::with_capacity(64);
            let start = Instant::now();
            for (i, line) in parsed.iter().take(iters as usize).enumerate() {
                out.clear();
                replica.engine.apply_parsed(replica.seq + 1 + i as u64, black_box(line), &mut out);
            }
            let elapsed = start.elapsed();
            drop((replica, parsed));
            elapsed.max(Duration::from_nanos(1))
        })
    });
    // Where the time goes, by event type (the same lines, only that type).
    for (kind, filter) in
        [("price", "\"price\""), ("trade", "\"trade\""), ("deposit", "\"deposit\""), ("withdraw", "\"withdraw\"")]
    {
        group.bench_function(format!("parse_apply_{kind}_only"), |b| {
            b.iter_custom(|iters| {
                let mut replica = base.clone();
                let mut lines = Vec::with_capacity(iters as usize);
                while (lines.len() as u64) < iters {
                    let batch = mixed_lines(&mut replica, accounts, 1_000);
                    // Clock lines keep ticks acceptable; everything else of other types is dropped.
                    lines.extend(batch.into_iter().filter(|l| l.contains(filter) || l.contains("\"clock\"")));
                }
                let mut out = Vec::with_capacity(64);
                let mut elapsed = Duration::ZERO;
                for (i, line) in lines.iter().enumerate() {
                    out.clear();
                    let start = Instant::now();
                    replica.engine.apply_line(replica.seq + 1 + i as u64, black_box(line.as_bytes()), &mut out);
                    if line.contains(filter) {
                        elapsed += start.elapsed();
                    }
                }
                let counted = lines.iter().filter(|l| l.contains(filter)).count().max(1) as u32;
                elapsed * iters as u32 / counted
            })
        });
    }
    group.bench_function("parse_only_mixed", |b| {
        b.iter_custom(|iters| {
            let mut replica = base.clone();
            let lines = mixed_lines(&mut replica, accounts, iters);
            let start = Instant::now();
            for line in lines.iter().take(iters as usize) {
                let _ = black_box(Event::parse_line(black_box(line.as_bytes())));
            }
            start.elapsed()
        })
    });
    group.finish();
}

criterion_group!(benches, indexed_tick, full_scan, health_bench, sizing_bench, liquidation_bench, replay_bench);
criterion_main!(benches);

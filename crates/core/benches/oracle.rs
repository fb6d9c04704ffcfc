//! Price ticks per second through aggregation with 5 sources: the guarded path (`Engine::apply`
//! of a price event: arrival checks, staleness, outliers, quorum, weighting, jump clamp) against
//! a plain median without guards doing the same bookkeeping, in the same process.
//! Run: `cargo bench -p solvent-core --bench oracle`. Target (issue 3): guarded < 2x plain.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use solvent_core::event::{Event, PriceTick};
use solvent_core::oracle::median;
use solvent_core::{Config, Engine, Price};

const SOURCES: [&str; 5] = ["s1", "s2", "s3", "s4", "s5"];

fn guarded_engine() -> Engine {
    let mut config = Config::embedded_default();
    // Ticks here carry increasing ts without clock events: widen the time guards so that every
    // tick is accepted and judged (the work is the same; only the verdict would differ).
    config.markets[0].params.max_future_ms = 1 << 40;
    config.markets[0].params.max_age_ms = 1 << 40;
    Engine::new(&config)
}

/// (market name, (source name, latest price) per source, index).
type PlainMarket = (String, Vec<(String, Option<Price>)>, Option<Price>);

/// The baseline: latest price per source, plain median, no guards.
struct PlainOracle {
    markets: Vec<PlainMarket>,
}

impl PlainOracle {
    fn new() -> Self {
        let markets = Config::embedded_default()
            .markets
            .iter()
            .map(|m| (m.name.clone(), m.sources.iter().map(|s| (s.clone(), None)).collect(), None))
            .collect();
        PlainOracle { markets }
    }

    fn tick(&mut self, tick: &PriceTick) {
        let Some(market) = self.markets.iter_mut().find(|m| m.0 == tick.market) else { return };
        let Some(source) = market.1.iter_mut().find(|s| s.0 == tick.source) else { return };
        source.1 = Some(tick.price);
        let mut prices = [Price::ZERO; 32];
        let mut count = 0;
        for (_, latest) in &market.1 {
            if let Some(p) = latest {
                prices[count] = *p;
                count += 1;
            }
        }
        market.2 = median(&mut prices[..count]);
    }
}

fn ticks(count: usize) -> Vec<Event> {
    (0..count)
        .map(|i| {
            let wiggle = ((i * 7919) % 200) as i64 - 100; // +-1% around 10,000
            Event::Price(PriceTick {
                ts: 1 + (i / SOURCES.len()) as u64,
                market: "BTC-PERP".into(),
                source: SOURCES[i % SOURCES.len()].into(),
                price: Price::from_int(10_000 + wiggle).unwrap(),
                conf: None,
                sig: None,
            })
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let events = ticks(100_000);
    let mut group = c.benchmark_group("price_tick_5_sources");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(20);
    group.bench_function("guarded_apply", |b| {
        b.iter_batched(
            guarded_engine,
            |mut engine| {
                let mut out = Vec::with_capacity(16);
                for (seq, event) in events.iter().enumerate() {
                    out.clear();
                    let _ = engine.apply(seq as u64, black_box(event), &mut out);
                }
                engine
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function("plain_median", |b| {
        b.iter_batched(
            PlainOracle::new,
            |mut oracle| {
                for event in &events {
                    if let Event::Price(tick) = black_box(event) {
                        oracle.tick(tick);
                    }
                }
                oracle
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

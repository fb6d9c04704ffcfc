//! The synthetic book of `solvent bench`, built through `Engine::apply` like any other input.
//!
//! - Three markets (BTC-PERP 10,000, ETH-PERP 500, SOL-PERP 20), five sources each.
//! - Accounts come in pairs that trade with each other at mark (zero-sum by construction).
//!   85% of pairs trade one market (BTC 50%, ETH 30%, SOL 20%), 15% two or three.
//! - Notional per account is log-uniform from 100 to 1,000,000 USDC; leverage is 1 + 14 u^2
//!   (u uniform: most accounts at low leverage, a tail up to 15x; at most 8x above 300,000 and 5x
//!   with BTC collateral), so every account's liquidation price is at least ~4% away.
//! - 10% of accounts post BTC (weight 0.9) instead of most of their USDC.
//! - **Victims** for the latency measurement: BTC longs opened at 10,300 against one market
//!   maker, each with a deposit that puts its exact liquidation price inside a chosen step of a
//!   price ladder between 9,900 and 9,950 (see `phases::latency`). They are built first, then BTC
//!   walks down to 10,000 and the book is built there. BTC-PERP's `liquidation_buffer` is 0.5 (a
//!   liquidated victim is restored to 1.5 x MM and does not cross again at the next step).
//! - With `--portfolio-percent P`, P% of the pairs are **hedged portfolio-margined** pairs: each
//!   account holds opposite legs in two or three markets (one long BTC and short ETH (and SOL),
//!   the other the reverse, equal notionals), deposits 6% to 16% of its total notional, trades
//!   under tiers and then opts into portfolio margin. The markets' factor loadings are set
//!   first: BTC 1, ETH 0.9, SOL 0.8. With P = 0 (the default) the book is the same as without
//!   the option, draw for draw.

use indicatif::ProgressBar;
use solvent_core::event::{PriceTick, Trade, Transfer};
use solvent_core::{Config, Effect, Engine, Event, Price, Quote, Size};

pub const MARKETS: [&str; 3] = ["BTC-PERP", "ETH-PERP", "SOL-PERP"];
pub const SOURCES: [&str; 5] = ["s1", "s2", "s3", "s4", "s5"];
/// Base prices, whole quote units.
pub const BASE: [i64; 3] = [10_000, 500, 20];
/// Where the victims open (BTC), whole quote units.
pub const VICTIM_OPEN: i64 = 10_300;
/// Ticks between two clock events (engine ms: one tick = 1 ms of source time).
pub const CLOCK_EVERY: u64 = 1_000;

/// splitmix64.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// An engine and the bookkeeping to feed it valid events.
pub struct Book {
    pub engine: Engine,
    pub seq: u64,
    /// The engine clock as last set by a clock event.
    pub clock_ts: u64,
    /// The ts of the last tick (shared counter: strictly increasing for every source).
    pub tick_ts: u64,
    pub rng: Rng,
    pub out: Vec<Effect>,
    /// Events refused while building (should stay 0).
    pub refused: u64,
    /// Fraction of pairs built as hedged portfolio-margined pairs (0: none, no draw taken).
    pub portfolio_share: f64,
}

pub fn price_raw(units: f64) -> i64 {
    (units * Price::ONE_RAW as f64).round() as i64
}

pub fn tick(market: usize, source: usize, ts: u64, price: i64) -> Event {
    Event::Price(PriceTick {
        ts,
        market: MARKETS[market].into(),
        source: SOURCES[source].into(),
        price: Price::from_raw(price.max(1)),
        conf: None,
        sig: None,
    })
}

pub fn deposit(ts: u64, account: &str, asset: &str, amount: Quote) -> Event {
    Event::Deposit(Transfer { ts, account: account.into(), asset: asset.into(), amount })
}

pub fn trade(ts: u64, market: usize, buyer: &str, seller: &str, size: Size, price: i64) -> Event {
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

pub fn account_name(i: usize) -> String {
    format!("u{i:07}")
}

impl Book {
    pub fn new(seed: u64) -> Book {
        let engine = Engine::new(&Config::embedded_default());
        let out = Vec::with_capacity(64);
        Book { engine, seq: 0, clock_ts: 1, tick_ts: 1, rng: Rng(seed), out, refused: 0, portfolio_share: 0.0 }
    }

    /// Apply one event; a refusal is counted (the builders only send valid events).
    pub fn apply(&mut self, event: &Event) {
        self.seq += 1;
        self.out.clear();
        if self.engine.apply(self.seq, event, &mut self.out).is_err() {
            self.refused += 1;
        }
    }

    /// Whether the next tick needs a clock event first (ticks may not run too far ahead).
    pub fn clock_due(&self) -> bool {
        self.tick_ts + 1 >= self.clock_ts + CLOCK_EVERY
    }

    /// A clock event at the ticks' time.
    pub fn advance_clock(&mut self) {
        self.clock_ts = self.tick_ts.max(self.clock_ts);
        let clock = Event::Clock { ts: self.clock_ts };
        self.apply(&clock);
    }

    /// The next tick ts (with a clock event first when due).
    pub fn next_tick_ts(&mut self) -> u64 {
        if self.clock_due() {
            self.advance_clock();
        }
        self.tick_ts += 1;
        self.tick_ts
    }

    /// Every source of `market` quotes `price` (raw).
    pub fn quote_all(&mut self, market: usize, price: i64) {
        for source in 0..SOURCES.len() {
            let ts = self.next_tick_ts();
            self.apply(&tick(market, source, ts, price));
        }
    }

    /// Walk `market` from `from` to `to` (raw) in steps of at most 1% (the jump clamp allows 10%/s).
    pub fn walk(&mut self, market: usize, from: i64, to: i64) {
        let steps = ((from - to).abs() * 100 / from.max(1)).max(1) + 1;
        for k in 1..=steps {
            self.quote_all(market, from + (to - from) * k / steps);
        }
    }

    /// Fresh quotes in every market at its current mark (keeps sources from going stale).
    pub fn refresh_quotes(&mut self) {
        for (market, base) in BASE.iter().enumerate() {
            let mark = self.engine.markets()[market].mark_price.map_or(price_raw(*base as f64), |p| p.raw());
            self.quote_all(market, mark);
        }
    }
}

/// Size for a notional at a price, rounded down to 10^-4 base units (at least that).
fn size_for(notional: f64, price_units: f64) -> Size {
    let units = (notional / price_units * 10_000.0).floor().max(1.0) / 10_000.0;
    Size::from_raw((units * Size::ONE_RAW as f64).round() as i64)
}

fn usdc(amount: f64) -> Quote {
    Quote::from_raw((amount.max(1.0) * 10_000.0).round() as i128 * (Quote::ONE_RAW / 10_000))
}

/// The factor loadings of the portfolio-margined pairs: BTC 1, ETH 0.9, SOL 0.8.
pub fn set_portfolio_loadings(book: &mut Book) {
    for (market, loading) in MARKETS.iter().zip(["1", "0.9", "0.8"]) {
        let update = solvent_core::event::ParamsUpdate {
            ts: book.clock_ts,
            market: (*market).into(),
            portfolio: solvent_core::event::PortfolioUpdate {
                pm_correlation: solvent_core::Rate::parse(loading).ok(),
                ..Default::default()
            },
            ..Default::default()
        };
        book.apply(&Event::Params(Box::new(update)));
    }
}

/// A hedged portfolio-margined pair: opposite legs in BTC and ETH (and SOL half of the time),
/// equal notionals; deposits, trades under tiers, then both opt in.
fn build_portfolio_pair(book: &mut Book, a: &str, b: &str) {
    let rng = &mut book.rng;
    let markets: &[usize] = if rng.unit() < 0.5 { &[0, 1] } else { &[0, 1, 2] };
    let leg = 100.0 * 10f64.powf(4.0 * rng.unit());
    let total = leg * markets.len() as f64;
    let shares = [0.06 + 0.1 * rng.unit(), 0.06 + 0.1 * rng.unit()];
    // a: long the first leg, short the others; b the reverse.
    let sizes: Vec<Size> = (0..markets.len())
        .map(|k| size_for(if k == 0 { leg * (markets.len() - 1) as f64 } else { leg }, BASE[markets[k]] as f64))
        .collect();
    // Under tiers the legs need their IM while they open (large legs reach higher brackets).
    let mut tier_im = Quote::ZERO;
    for (market, size) in markets.iter().zip(&sizes) {
        let params = &book.engine.markets()[*market].params;
        let im = solvent_core::margin::position_im(params, *size, Price::from_raw(price_raw(BASE[*market] as f64)));
        tier_im = tier_im.checked_add(im.unwrap_or(Quote::ZERO)).unwrap_or(tier_im);
    }
    let ts = book.clock_ts;
    for (name, share) in [a, b].into_iter().zip(shares) {
        let amount = usdc(total * share * 1.02).max(Quote::from_raw(tier_im.raw() / 100 * 103));
        book.apply(&deposit(ts, name, "USDC", amount));
    }
    for (k, (market, size)) in markets.iter().zip(&sizes).enumerate() {
        let (buyer, seller) = if k == 0 { (a, b) } else { (b, a) };
        book.apply(&trade(ts, *market, buyer, seller, *size, price_raw(BASE[*market] as f64)));
    }
    for name in [a, b] {
        // Large legs reach the higher tier brackets, whose floor can need more than the deposit:
        // top the account up to its portfolio IM first (so the opt-in is never refused).
        let mut opted = book.engine.account(name).expect("just created").clone();
        opted.margin_model = solvent_core::state::MarginModel::Portfolio;
        let engine = &book.engine;
        if let Ok(health) = solvent_core::margin::health(&opted, engine.assets(), engine.markets()) {
            let short = health.initial_margin.checked_sub(health.equity_without_profit).unwrap_or(Quote::ZERO);
            if short.is_positive() {
                let top_up = short.raw() / 100 * 102 + Quote::ONE_RAW;
                book.apply(&deposit(ts, name, "USDC", Quote::from_raw(top_up)));
            }
        }
        let choice = solvent_core::event::MarginModelChoice {
            ts,
            account: name.into(),
            model: solvent_core::state::MarginModel::Portfolio,
        };
        book.apply(&Event::MarginModel(choice));
    }
}

/// One pair of the main book: deposits for both, then their trades.
fn build_pair(book: &mut Book, a: &str, b: &str) {
    if book.portfolio_share > 0.0 && book.rng.unit() < book.portfolio_share {
        return build_portfolio_pair(book, a, b);
    }
    let rng = &mut book.rng;
    let markets: Vec<usize> = if rng.unit() < 0.15 {
        let first = rng.below(3) as usize;
        let count = 2 + rng.below(2) as usize;
        (0..count).map(|k| (first + k) % 3).collect()
    } else {
        let roll = rng.unit();
        vec![if roll < 0.5 {
            0
        } else if roll < 0.8 {
            1
        } else {
            2
        }]
    };
    let mut notionals = Vec::with_capacity(markets.len());
    for _ in &markets {
        notionals.push(100.0 * 10f64.powf(4.0 * rng.unit()));
    }
    let total: f64 = notionals.iter().sum();
    let btc_collateral = [rng.unit() < 0.1, rng.unit() < 0.1];
    let cap = |btc: bool| {
        if btc {
            5.0
        } else if total > 300_000.0 {
            8.0
        } else {
            15.0
        }
    };
    let leverage = [
        (1.0 + 14.0 * rng.unit().powi(2)).min(cap(btc_collateral[0])),
        (1.0 + 14.0 * rng.unit().powi(2)).min(cap(btc_collateral[1])),
    ];
    let ts = book.clock_ts;
    for (k, name) in [a, b].into_iter().enumerate() {
        let margin = total / leverage[k] * 1.02;
        if btc_collateral[k] {
            let btc = size_for(margin / 0.9, BASE[0] as f64);
            book.apply(&deposit(ts, name, "BTC", Quote::from_raw(i128::from(btc.raw()) * 100_000_000)));
            book.apply(&deposit(ts, name, "USDC", usdc(margin * 0.05)));
        } else {
            book.apply(&deposit(ts, name, "USDC", usdc(margin)));
        }
    }
    for (k, market) in markets.iter().enumerate() {
        let size = size_for(notionals[k], BASE[*market] as f64);
        let (buyer, seller) = if (k + a.len()).is_multiple_of(2) { (a, b) } else { (b, a) };
        book.apply(&trade(ts, *market, buyer, seller, size, price_raw(BASE[*market] as f64)));
    }
}

/// The main book: `accounts` accounts in pairs, at the base prices (the book must already be
/// quoted there). Names start at `first`.
pub fn build_main(book: &mut Book, first: usize, accounts: usize, progress: &ProgressBar) {
    for pair in 0..accounts / 2 {
        let (a, b) = (account_name(first + 2 * pair), account_name(first + 2 * pair + 1));
        build_pair(book, &a, &b);
        if pair % 4_096 == 0 {
            progress.set_position((2 * pair) as u64);
            book.refresh_quotes(); // time passes while building: keep every source fresh
        }
    }
    progress.set_position(accounts as u64);
}

/// Accounts with exactly one position each (the memory figure): pairs long/short 0.5 BTC at
/// 10,000, 2,000 USDC each. The book must be quoted at the base prices.
pub fn build_one_position(book: &mut Book, accounts: usize, progress: &ProgressBar) {
    let size = Size::from_raw(Size::ONE_RAW / 2);
    for pair in 0..accounts / 2 {
        let (a, b) = (account_name(2 * pair), account_name(2 * pair + 1));
        let ts = book.clock_ts;
        book.apply(&deposit(ts, &a, "USDC", usdc(2_000.0)));
        book.apply(&deposit(ts, &b, "USDC", usdc(2_000.0)));
        book.apply(&trade(ts, 0, &a, &b, size, price_raw(BASE[0] as f64)));
        if pair % 4_096 == 0 {
            progress.set_position((2 * pair) as u64);
            book.refresh_quotes();
        }
    }
    progress.set_position(accounts as u64);
}

/// The ladder of the latency measurement: quoted prices `top - k x step` (raw), and per sample
/// how many victims cross.
#[derive(Clone, Debug)]
pub struct Ladder {
    pub top: i64,
    pub step: i64,
    /// Victims crossing at sample k (k = 0 ..): their liquidation price is between the mark
    /// after sample k and the one before it.
    pub crossing: Vec<u32>,
}

impl Ladder {
    /// The quoted price of ladder tick `k`.
    pub fn quote(&self, k: usize) -> i64 {
        self.top - self.step * k as i64
    }
}

/// Victims: BTC longs opened at `VICTIM_OPEN` against `mm`, each liquidating inside its sample's
/// step (1 to 10 per sample). The book must be quoted at `VICTIM_OPEN` in BTC.
pub fn build_victims(book: &mut Book, samples: usize, progress: &ProgressBar) -> Ladder {
    let top = price_raw(9_950.0);
    let step = price_raw(50.0) / (samples as i64 + 4);
    let mut ladder = Ladder { top, step, crossing: Vec::with_capacity(samples) };
    let ts = book.clock_ts;
    book.apply(&deposit(ts, "mm", "USDC", Quote::from_int(1_000_000_000_000).unwrap_or(Quote::MAX)));
    let open = price_raw(VICTIM_OPEN as f64);
    let mut victim = 0usize;
    for sample in 0..samples {
        let count = 1 + book.rng.below(10) as u32;
        ladder.crossing.push(count);
        // With five sources quoting a falling ladder, the mark after ladder tick k + 2 is quote(k):
        // sample k moves the mark from quote(k - 1) to quote(k). Liquidation halfway between.
        let liquidation = ladder.quote(sample) + step / 2;
        for _ in 0..count {
            let size = Size::from_raw(Size::ONE_RAW / 10 * (1 + book.rng.below(10) as i64));
            let name = format!("v{victim:07}");
            victim += 1;
            // equity - MM = c + s (p - open) - 0.025 s p = 0 at p = liquidation.
            let exact = size.mul_price(Price::from_raw(open)).raw()
                - size.mul_price(Price::from_raw(liquidation)).raw() / 1_000 * 975;
            book.apply(&deposit(ts, &name, "USDC", Quote::from_raw(exact)));
            book.apply(&trade(ts, 0, &name, "mm", size, open));
        }
        if sample % 1_024 == 0 {
            progress.set_position(victim as u64);
            book.refresh_quotes();
        }
    }
    ladder
}

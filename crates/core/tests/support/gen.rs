//! Event generators (proptest strategies) over the embedded default config.
//!
//! A [`Scenario`] is a compact, shrinkable plan: the accounts (3-8, created in a random order),
//! their opening deposits, which markets get opening ticks, and a list of [`Timed`] operations. A
//! [`Resolver`] turns each operation into a concrete [`Step`] at the moment it is applied, reading
//! the engine where an operation is relative to the state (a trade "near mark", "close this
//! position", a withdrawal "exactly the free collateral") and keeping its own model of each oracle
//! source's random walk. Each step goes through `Engine::apply` (a typed `Event`) or
//! `Engine::apply_line` (the same event as a JSON line), chosen per operation.

use super::reference;
use super::{Expect, Step};
use proptest::collection::vec;
use proptest::prelude::*;
use solvent_core::config::{CliffRange, TierBasis, TierMode, TierSpec};
use solvent_core::event::{AuctionTake, ParamsUpdate, PriceTick, Trade, Transfer};
use solvent_core::state::MarginModel;
use solvent_core::state::{Market, MarketId};
use solvent_core::{Config, Engine, Event, Price, Quote, Rate, Size};

pub const POOL: [&str; 10] = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"];
pub const MARKETS: [&str; 3] = ["BTC-PERP", "ETH-PERP", "SOL-PERP"];
pub const SOURCES: [&str; 5] = ["s1", "s2", "s3", "s4", "s5"];
pub const ASSETS: [&str; 3] = ["USDC", "BTC", "ETH"];
/// Opening price of each market, in whole quote units.
const BASE_PRICE: [i64; 3] = [10_000, 500, 20];
/// Size of each market's first default bracket, in base units (tier bounds scale with it).
const BRACKET: [i64; 3] = [50, 1_000, 25_000];

const PRICE_ONE: i64 = Price::ONE_RAW;
const QUOTE_ONE: i128 = Quote::ONE_RAW;
/// Quote raw per Size raw (10^8).
const QUOTE_PER_SIZE: i128 = Quote::ONE_RAW / Size::ONE_RAW as i128;

// ---------------------------------------------------------------------------------------------
// The plan.

#[derive(Clone, Debug)]
pub struct Scenario {
    /// Account names in the order the opening deposits create them.
    pub accounts: Vec<&'static str>,
    /// The first `funded` accounts get opening deposits; the others appear later (or never).
    pub funded: usize,
    pub opening: Vec<Opening>,
    /// Number of sources that tick each market at ts 0 (0: the market opens without a price).
    pub opening_ticks: [usize; 3],
    /// Sort keys giving a second order of the opening deposits (for the order-independence check).
    pub order_keys: Vec<u32>,
    pub ops: Vec<Timed>,
}

#[derive(Clone, Debug)]
pub struct Opening {
    pub usdc: u64,
    pub btc: Option<u64>,
    pub eth: Option<u64>,
}

/// One operation, after `dt` milliseconds, through `apply_line` when `json` (else `apply`).
#[derive(Clone, Debug)]
pub struct Timed {
    pub dt: u64,
    pub json: bool,
    pub op: Op,
}

#[derive(Clone, Debug)]
pub enum Op {
    /// One source reports: the market's true price takes a random-walk step (sometimes a gap) and
    /// the source reports it with its own noise, `lag` ms behind the clock, with an optional
    /// confidence interval of `conf_bp` / 10,000 of the price (above 2%: too wide to use).
    Tick {
        market: usize,
        source: usize,
        step_bps: i64,
        gap_bps: i64,
        noise_bps: i64,
        fine: u64,
        conf_bp: Option<u32>,
        lag: u64,
    },
    /// `count` sources (3-5, from `first`) report in a burst, each with its own noise.
    TickRound {
        market: usize,
        first: usize,
        count: usize,
        step_bps: i64,
        gap_bps: i64,
        noise_bps: [i64; 5],
        lag: u64,
    },
    Deposit {
        account: usize,
        asset: usize,
        seed: u64,
    },
    Withdraw {
        account: usize,
        asset: usize,
        mode: WithdrawMode,
    },
    Trade {
        market: usize,
        a: usize,
        b: usize,
        a_buys: bool,
        size: SizeMode,
        price_bps: i64,
        fine: u64,
        fees: Option<(u32, u32)>,
        /// Bit 0: the initiator fills in its isolated wallet of the market; bit 1: the other side.
        isolated: u8,
    },
    /// Settlement collateral into an account's isolated wallet of a market (bp / 10,000 of its
    /// cross balance, up to 120%), or back out of it (`back`, bp of the wallet's balance).
    Isolate {
        account: usize,
        market: usize,
        frac_bp: u32,
        back: bool,
    },
    Params {
        market: usize,
        change: ParamsChange,
    },
    /// An account chooses portfolio margin (or goes back to tiers).
    MarginModel {
        account: usize,
        portfolio: bool,
    },
    /// A backstop maker takes bp / 10,000 of a market's auctioned inventory (up to 120%: some
    /// exceed what is left); without an auction, a take of an unknown auction.
    AuctionTake {
        market: usize,
        bidder: usize,
        frac_bp: u32,
    },
    /// A backstop maker buys bp / 10,000 of the protocol's holding of a collateral asset (0 BTC,
    /// 1 ETH, 2 the settlement asset: refused; up to 120%: some exceed what is held); without a
    /// holding, one unit (refused).
    CollateralTake {
        asset: usize,
        bidder: usize,
        frac_bp: u32,
    },
    /// A top-up of the insurance fund (USDC).
    FundDeposit {
        seed: u64,
    },
    /// An external input (never changes margin); market-less when `market` is `None`.
    Signal {
        market: Option<usize>,
        seed: u64,
    },
    /// A collateral asset's status (`asset`: 0 BTC, 1 ETH, 2 the settlement asset, 3 unknown;
    /// `status`: an index into `AssetStatus::ALL`).
    AssetStatus {
        asset: usize,
        status: usize,
    },
    Clock,
    Invalid(Invalid),
}

#[derive(Clone, Debug)]
pub enum WithdrawMode {
    /// bp / 10,000 of the balance (up to 150%: some are too large).
    Fraction(u32),
    /// Exactly what the reference says is free (collateral + min(0, uPnL) - IM), or one unit more.
    Free { plus_one: bool },
    /// bp / 10,000 of the free collateral.
    FractionOfFree(u32),
}

#[derive(Clone, Debug)]
pub enum SizeMode {
    /// Notional = leverage / 100 x the initiator's equity (5x..30x fails initial margin often).
    Leverage(u32),
    /// Reduce the initiator's position by bp / 10,000.
    Reduce(u32),
    Close,
    /// Trade through the position to the other side: (1 + bp / 10,000) x |size|.
    Flip(u32),
    /// A few raw units.
    Tiny(u32),
    /// At mark, with a fee that leaves the initiator exactly at initial margin (or one unit below).
    Boundary {
        leverage: u32,
        plus_one: bool,
    },
}

#[derive(Clone, Debug)]
pub enum ParamsChange {
    /// Funding and skew fees: on or off, interval (ms), interest / clamp / cap (bp of a bp),
    /// skew scale (units; 0: none), velocity (per cent per day per day), alert thresholds.
    Funding {
        enabled: bool,
        interval_ms: u64,
        interest: i32,
        clamp: u32,
        cap: u32,
        skew_scale_units: u32,
        velocity_pct: u32,
        skew_alert_units: u32,
    },
    ImFactor(u32),
    Mode {
        whole: bool,
    },
    Tiers {
        notional: bool,
        brackets: Vec<(u32, u32)>,
        whole: Option<bool>,
        im: Option<u32>,
        fine: u64,
    },
    Default,
    BadRates,
    BadFirst,
    BasisWithoutTiers,
    BadIm,
    /// mark = index + EMA of the basis (0: mark = index).
    MarkEma(u64),
    /// The venue rules of partial liquidation: buffer (bp), minimum notional (units), chunk
    /// threshold (units; 0: no chunks), chunk rate (%), cooldown (ms), backstop fraction (%),
    /// dust threshold (units of 0.01).
    Rules {
        buffer_bp: u32,
        min_notional: u32,
        chunk_notional: u32,
        chunk_pct: u32,
        cooldown_ms: u64,
        backstop_pct: u32,
        dust_cents: u32,
    },
    /// The per-event liquidation caps: per account and per market (units; 0 removes the cap).
    Caps {
        account_units: u32,
        event_units: u32,
    },
    /// Portfolio margin: range (%), buckets (odd), correlation loading (%), MM factor (%),
    /// floor (%).
    Portfolio {
        range_pct: u32,
        buckets: u32,
        correlation_pct: u32,
        mm_factor_pct: u32,
        floor_pct: u32,
    },
    /// Predictive margin: an IM add-on, an MM phase-in and a raise (or cut) of the current target
    /// rates by `raise_pct` percent, same brackets; sometimes an open-interest cap.
    Predictive {
        addon_bp: u32,
        phase_in_ms: u64,
        raise_pct: i32,
        oi_cap_units: Option<u32>,
        /// A cliff range at these offsets from the mark (bp, lower first), with a concentration
        /// add-on and a backstop rebate (bp).
        cliff: Option<(i32, u32, u32, u32)>,
    },
    /// Oracle settings; a quorum above the 5 sources is refused.
    Oracle {
        quorum: u32,
        max_age_ms: u64,
        max_deviation_bp: u32,
    },
}

#[derive(Clone, Debug)]
pub enum Invalid {
    UnknownMarketTick,
    UnknownSource,
    UnknownMarketTrade,
    UnknownAsset,
    ZeroAmount,
    NegativePrice,
    SelfTrade,
    UnknownAccount,
    Backwards {
        back: u64,
        deposit: bool,
    },
    BrokenJson,
    UnknownType,
    UnknownField,
    TooManyDecimals,
    AuctionTake,
    NumberNotString,
    /// A tick stamped at or before its source's last tick.
    ReplayedTick,
    /// A tick stamped more than `max_future_ms` ahead of the engine clock.
    FutureTick,
    /// An `asset_status` line with a status that does not exist.
    UnknownAssetStatus,
}

// ---------------------------------------------------------------------------------------------
// Strategies.

fn withdraw_mode() -> impl Strategy<Value = WithdrawMode> {
    prop_oneof![
        4 => (1u32..15_000).prop_map(WithdrawMode::Fraction),
        3 => any::<bool>().prop_map(|plus_one| WithdrawMode::Free { plus_one }),
        2 => (1u32..10_000).prop_map(WithdrawMode::FractionOfFree),
    ]
}

fn size_mode() -> impl Strategy<Value = SizeMode> {
    prop_oneof![
        6 => (5u32..1_500).prop_map(SizeMode::Leverage),
        2 => (1_500u32..3_000).prop_map(SizeMode::Leverage),
        3 => (1u32..10_000).prop_map(SizeMode::Reduce),
        3 => Just(SizeMode::Close),
        2 => (1u32..20_000).prop_map(SizeMode::Flip),
        1 => (0u32..10_000).prop_map(SizeMode::Tiny),
        2 => (50u32..1_500, any::<bool>()).prop_map(|(leverage, plus_one)| SizeMode::Boundary { leverage, plus_one }),
    ]
}

fn params_change() -> impl Strategy<Value = ParamsChange> {
    let tiers = (
        any::<bool>(),
        vec((1u32..400, 0u32..3_000), 1..=5),
        proptest::option::of(any::<bool>()),
        proptest::option::of(100u32..=300),
        any::<u64>(),
    )
        .prop_map(|(notional, brackets, whole, im, fine)| ParamsChange::Tiers {
            notional,
            brackets,
            whole,
            im,
            fine,
        });
    prop_oneof![
        10 => (prop_oneof![3 => Just(true), 1 => Just(false)], 1_000u64..5_000, -500i32..500, 0u32..2_000, 2_000u32..40_000, 0u32..3, 0u32..300, 0u32..4)
            .prop_map(|(enabled, interval_ms, interest, clamp, cap, skew, velocity_pct, alert)| ParamsChange::Funding {
                enabled,
                interval_ms,
                interest,
                clamp,
                cap,
                skew_scale_units: [0, 50, 100_000][skew as usize],
                velocity_pct,
                skew_alert_units: alert,
            }),
        2 => (100u32..=300).prop_map(ParamsChange::ImFactor),
        2 => any::<bool>().prop_map(|whole| ParamsChange::Mode { whole }),
        5 => tiers,
        1 => Just(ParamsChange::Default),
        1 => Just(ParamsChange::BadRates),
        1 => Just(ParamsChange::BadFirst),
        1 => Just(ParamsChange::BasisWithoutTiers),
        1 => Just(ParamsChange::BadIm),
        2 => prop_oneof![Just(0u64), 500u64..30_000].prop_map(ParamsChange::MarkEma),
        3 => (
            prop_oneof![Just(0u32), 1u32..500],
            prop_oneof![Just(0u32), 1u32..5_000],
            prop_oneof![Just(0u32), 1_000u32..200_000],
            1u32..=100,
            prop_oneof![Just(0u64), 1_000u64..60_000],
            prop_oneof![Just(0u32), 1u32..=100],
            0u32..500,
        )
            .prop_map(|(buffer_bp, min_notional, chunk_notional, chunk_pct, cooldown_ms, backstop_pct, dust_cents)| {
                ParamsChange::Rules { buffer_bp, min_notional, chunk_notional, chunk_pct, cooldown_ms, backstop_pct, dust_cents }
            }),
        2 => (prop_oneof![Just(0u32), 1u32..50_000], prop_oneof![Just(0u32), 1u32..200_000])
            .prop_map(|(account_units, event_units)| ParamsChange::Caps { account_units, event_units }),
        4 => (
            prop_oneof![Just(0u32), 1u32..500],
            prop_oneof![Just(0u64), 100u64..20_000],
            -30i32..300,
            proptest::option::of(1u32..400),
            proptest::option::of((-3_000i32..1_000, 1u32..1_500, 0u32..500, 0u32..300)),
        )
            .prop_map(|(addon_bp, phase_in_ms, raise_pct, oi_cap_units, cliff)| ParamsChange::Predictive {
                addon_bp,
                phase_in_ms,
                raise_pct,
                oi_cap_units,
                cliff,
            }),
        1 => (1u32..=6, 1_000u64..20_000, 50u32..1_000)
            .prop_map(|(quorum, max_age_ms, max_deviation_bp)| ParamsChange::Oracle { quorum, max_age_ms, max_deviation_bp }),
        2 => (1u32..40, prop_oneof![Just(3u32), Just(9u32), Just(15u32)], 0u32..=100, 10u32..200, 0u32..=100)
            .prop_map(|(range_pct, buckets, correlation_pct, mm_factor_pct, floor_pct)| ParamsChange::Portfolio {
                range_pct,
                buckets,
                correlation_pct,
                mm_factor_pct,
                floor_pct,
            }),
    ]
}

fn invalid() -> impl Strategy<Value = Invalid> {
    prop_oneof![
        Just(Invalid::UnknownMarketTick),
        Just(Invalid::UnknownSource),
        Just(Invalid::UnknownMarketTrade),
        Just(Invalid::UnknownAsset),
        Just(Invalid::ZeroAmount),
        Just(Invalid::NegativePrice),
        Just(Invalid::SelfTrade),
        Just(Invalid::UnknownAccount),
        (0u64..5_000, any::<bool>()).prop_map(|(back, deposit)| Invalid::Backwards { back, deposit }),
        Just(Invalid::BrokenJson),
        Just(Invalid::UnknownType),
        Just(Invalid::UnknownField),
        Just(Invalid::TooManyDecimals),
        Just(Invalid::AuctionTake),
        Just(Invalid::NumberNotString),
        Just(Invalid::ReplayedTick),
        Just(Invalid::FutureTick),
        Just(Invalid::UnknownAssetStatus),
    ]
}

pub fn op() -> impl Strategy<Value = Op> {
    let gap = || prop_oneof![12 => Just(0i64), 1 => -1_500i64..1_500];
    // Bursts move the market together: now and then a gap big enough to liquidate.
    let round_gap = prop_oneof![4 => Just(0i64), 1 => -1_200i64..1_200];
    let lag = || prop_oneof![1 => Just(0u64), 3 => 0u64..1_000];
    let conf = proptest::option::weighted(0.2, prop_oneof![9 => 1u32..100, 1 => 100u32..500]);
    let tick = (0usize..3, 0usize..5, -150i64..150, gap(), -40i64..40, any::<u64>(), conf, lag()).prop_map(
        |(market, source, step_bps, gap_bps, noise_bps, fine, conf_bp, lag)| Op::Tick {
            market,
            source,
            step_bps,
            gap_bps,
            noise_bps,
            fine,
            conf_bp,
            lag,
        },
    );
    let round = (
        0usize..3,
        0usize..5,
        3usize..=5,
        -150i64..150,
        round_gap,
        [-40i64..40, -40..40, -40..40, -40..40, -40..40],
        lag(),
    )
        .prop_map(|(market, first, count, step_bps, gap_bps, noise_bps, lag)| Op::TickRound {
            market,
            first,
            count,
            step_bps,
            gap_bps,
            noise_bps,
            lag,
        });
    let trade = (
        0usize..3,
        0usize..8,
        0usize..8,
        any::<bool>(),
        size_mode(),
        -200i64..200,
        any::<u64>(),
        proptest::option::weighted(0.3, (0u32..1_000, 0u32..1_000)),
        prop_oneof![14 => Just(0u8), 3 => Just(1u8), 2 => Just(2u8), 1 => Just(3u8)],
    )
        .prop_map(|(market, a, b, a_buys, size, price_bps, fine, fees, isolated)| Op::Trade {
            market,
            a,
            b,
            a_buys,
            size,
            price_bps,
            fine,
            fees,
            isolated,
        });
    let isolate = (0usize..8, 0usize..3, prop_oneof![4 => 1u32..6_000, 1 => 6_000u32..12_000], any::<bool>())
        .prop_map(|(account, market, frac_bp, back)| Op::Isolate { account, market, frac_bp, back });
    prop_oneof![
        10 => tick,
        16 => round,
        9 => (0usize..10, 0usize..3, any::<u64>()).prop_map(|(account, asset, seed)| Op::Deposit { account, asset, seed }),
        9 => (0usize..8, prop_oneof![3 => Just(0usize), 1 => 1usize..3], withdraw_mode())
            .prop_map(|(account, asset, mode)| Op::Withdraw { account, asset, mode }),
        32 => trade,
        4 => isolate,
        5 => (0usize..3, params_change()).prop_map(|(market, change)| Op::Params { market, change }),
        4 => (0usize..3, 0usize..8, prop_oneof![3 => 1u32..3_000, 1 => 3_000u32..12_000]).prop_map(|(market, bidder, frac_bp)| Op::AuctionTake { market, bidder, frac_bp }),
        2 => (prop_oneof![4 => 0usize..2, 1 => Just(2usize)], 0usize..8, prop_oneof![3 => 1u32..10_000, 1 => 10_000u32..12_000])
            .prop_map(|(asset, bidder, frac_bp)| Op::CollateralTake { asset, bidder, frac_bp }),
        4 => Just(Op::Clock),
        2 => (0usize..8, prop_oneof![3 => Just(true), 1 => Just(false)])
            .prop_map(|(account, portfolio)| Op::MarginModel { account, portfolio }),
        1 => any::<u64>().prop_map(|seed| Op::FundDeposit { seed }),
        1 => (proptest::option::of(0usize..3), any::<u64>()).prop_map(|(market, seed)| Op::Signal { market, seed }),
        2 => (prop_oneof![6 => 0usize..2, 1 => 2usize..4], prop_oneof![2 => Just(0usize), 1 => 1usize..3])
            .prop_map(|(asset, status)| Op::AssetStatus { asset, status }),
        6 => invalid().prop_map(Op::Invalid),
    ]
}

fn timed() -> impl Strategy<Value = Timed> {
    // Mostly short steps (sources stay fresh), sometimes long enough for sources to go stale
    // (max_age 5 s) and markets to freeze.
    let dt = prop_oneof![40 => Just(0u64), 55 => 1u64..150, 4 => 150u64..2_000, 1 => 2_000u64..12_000];
    (dt, any::<bool>(), op()).prop_map(|(dt, json, op)| Timed { dt, json, op })
}

fn opening() -> impl Strategy<Value = Opening> {
    (any::<u64>(), proptest::option::weighted(0.3, any::<u64>()), proptest::option::weighted(0.2, any::<u64>()))
        .prop_map(|(usdc, btc, eth)| Opening { usdc, btc, eth })
}

/// A scenario with `ops` operations after the opening.
pub fn scenario(ops: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Scenario> {
    let names = proptest::sample::subsequence(POOL.to_vec(), 3..=8).prop_shuffle();
    let ticks = prop_oneof![1 => Just(0usize), 9 => 3usize..=5];
    let unfunded = prop_oneof![6 => Just(0usize), 3 => Just(1usize), 1 => Just(2usize)];
    (
        names,
        unfunded,
        vec(opening(), 8),
        [ticks.clone(), ticks.clone(), ticks],
        vec(any::<u32>(), 24),
        vec(timed(), ops),
    )
        .prop_map(|(accounts, unfunded, opening, opening_ticks, order_keys, ops)| {
            let funded = accounts.len().saturating_sub(unfunded).max(2);
            Scenario { accounts, funded, opening, opening_ticks, order_keys, ops }
        })
}

// ---------------------------------------------------------------------------------------------
// Resolution into concrete steps.

/// A value in [lo, hi], skewed toward lo (quadratic), from a seed.
fn skewed(seed: u64, lo: i128, hi: i128) -> i128 {
    let u = i128::from(seed % 1_000);
    lo + (hi - lo) * u * u / (999 * 999)
}

/// An amount of `asset` (0 USDC, 1 BTC, 2 ETH) as Quote raw, with random decimals at the asset's
/// precision (16 for USDC, 8 for the others) for most seeds.
/// The configuration of the random sequences: the embedded default with collateral weight phases
/// short enough (3.2 s, steps every 100 ms) that sequences of a few seconds see them run.
pub fn property_config() -> Config {
    let mut config = Config::embedded_default();
    for asset in &mut config.assets {
        asset.weight_phase_ms = 3_200;
    }
    config
}

pub fn amount_of(asset: usize, seed: u64) -> Quote {
    let (lo, hi) = match asset {
        0 => (10, 3_000_000),
        1 => (0, 60),
        _ => (0, 1_500),
    };
    let units = skewed(seed, lo, hi);
    let decimals = if asset == 0 { Quote::DECIMALS } else { Size::DECIMALS };
    let step = 10i128.pow(Quote::DECIMALS - decimals);
    let frac = match (seed >> 10) % 4 {
        0 => 0,
        _ => i128::from((seed >> 12) % 10u64.pow(decimals)) * step,
    };
    let raw = (units * QUOTE_ONE + frac).max(step);
    Quote::from_raw(raw)
}

fn tier_spec(from: String, mm: i64) -> TierSpec {
    TierSpec { from, mm_rate: Rate::from_raw(mm), penalty_rate: Rate::from_raw(mm / 4) }
}

pub struct Resolver<'a> {
    scenario: &'a Scenario,
    ts: u64,
    truth: [i64; 3],
}

impl<'a> Resolver<'a> {
    pub fn new(scenario: &'a Scenario) -> Resolver<'a> {
        Resolver { scenario, ts: 0, truth: BASE_PRICE.map(|p| p * PRICE_ONE) }
    }

    fn name(&self, i: usize) -> &'static str {
        self.scenario.accounts[i % self.scenario.accounts.len()]
    }

    /// Opening deposits (all at ts 0, distinct accounts or assets: they commute), then ticks.
    pub fn opening(&mut self) -> (Vec<Step>, Vec<Step>) {
        let mut deposits = Vec::new();
        for i in 0..self.scenario.funded {
            let funds = &self.scenario.opening[i];
            let mut add = |asset: usize, seed: u64| {
                let event = Event::Deposit(Transfer {
                    ts: 0,
                    account: self.scenario.accounts[i].to_string(),
                    asset: ASSETS[asset].to_string(),
                    amount: amount_of(asset, seed),
                });
                let step = if deposits.len() % 2 == 0 { Step::event(event) } else { Step::line_of(event) };
                deposits.push(step.expect(Expect::Accept));
            };
            add(0, funds.usdc.max(500));
            if let Some(seed) = funds.btc {
                add(1, seed);
            }
            if let Some(seed) = funds.eth {
                add(2, seed);
            }
        }
        let mut ticks = Vec::new();
        for market in 0..3 {
            for source in 0..self.scenario.opening_ticks[market] {
                let noise = (source as i64 - 2) * 7; // a few bps apart
                let price = self.truth[market] + self.truth[market] * noise / 10_000;
                let event = tick_event(0, market, source, price, None);
                let step = if source % 2 == 0 { Step::line_of(event) } else { Step::event(event) };
                ticks.push(step.expect(Expect::Accept));
            }
        }
        // Half the scenarios run one market with funding (and sometimes skew fees) from the start.
        let keys = &self.scenario.order_keys;
        if keys[0].is_multiple_of(2) {
            let change = ParamsChange::Funding {
                enabled: true,
                interval_ms: 1_000 + u64::from(keys[1] % 2_000),
                interest: (keys[2] % 400) as i32 - 200,
                clamp: keys[3] % 1_000,
                cap: 2_000 + keys[4] % 20_000,
                skew_scale_units: [0, 50, 100_000][(keys[5] % 3) as usize],
                velocity_pct: keys[6] % 300,
                skew_alert_units: keys[7] % 4,
            };
            let engine = Engine::new(&Config::embedded_default());
            let (update, expect) = build_params(&engine, 0, (keys[8] % 3) as usize, &change);
            ticks.push(Step::line_of(Event::Params(Box::new(update))).expect(expect));
        }
        (deposits, ticks)
    }

    /// The second order of the opening deposits (a permutation of `0..count`).
    pub fn shuffled_order(&self, count: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..count).collect();
        order.sort_by_key(|&i| (self.scenario.order_keys[i % self.scenario.order_keys.len()], std::cmp::Reverse(i)));
        if order.iter().enumerate().all(|(i, &j)| i == j) {
            order.reverse();
        }
        order
    }

    /// Move the market's true price by a random-walk step (and a gap), within [base/50, base x 50].
    fn walk(&mut self, market: usize, step_bps: i64, gap_bps: i64) -> i64 {
        let base = BASE_PRICE[market] * PRICE_ONE;
        let moved = i128::from(self.truth[market]) * i128::from(10_000 + step_bps + gap_bps) / 10_000;
        self.truth[market] = (moved as i64).clamp(base / 50, base * 50);
        self.truth[market]
    }

    /// A source's tick time: `lag` behind the clock, but after that source's last stored tick.
    fn tick_ts(&self, engine: &Engine, market: usize, source: usize, lag: u64) -> u64 {
        let last = engine.markets()[market].sources[source].latest.map(|t| t.ts);
        // Sources stamp their own time; it runs with the sequencer's clock (which is behind the
        // generator's when events were refused), at most a little ahead of the engine clock.
        let ahead = engine.markets()[market].params.max_future_ms.min(1_000);
        let wanted = self.ts.min(engine.last_ts() + ahead).saturating_sub(lag);
        match last {
            Some(last) if wanted <= last => last + 1,
            _ => wanted,
        }
    }

    /// The concrete steps of one operation (several for a burst of ticks).
    pub fn resolve(&mut self, timed: &Timed, engine: &Engine) -> Vec<Step> {
        self.ts += timed.dt;
        let ts = self.ts;
        let wrap = |event: Event| if timed.json { Step::line_of(event) } else { Step::event(event) };
        let step = match &timed.op {
            Op::Tick { market, source, step_bps, gap_bps, noise_bps, fine, conf_bp, lag } => {
                let m = *market;
                let truth = self.walk(m, *step_bps, *gap_bps);
                let noisy = truth + truth * noise_bps / 10_000 + (*fine % (truth as u64 / 1_000 + 1)) as i64;
                let price = noisy.max(1);
                let conf = conf_bp.map(|bp| Price::from_raw(price / 10_000 * i64::from(bp)));
                let tick_ts = self.tick_ts(engine, m, *source, *lag);
                wrap(tick_event(tick_ts, m, *source, price, conf))
            }
            Op::TickRound { market, first, count, step_bps, gap_bps, noise_bps, lag } => {
                let m = *market;
                let truth = self.walk(m, *step_bps, *gap_bps);
                let mut steps = Vec::new();
                let mut as_line = !timed.json; // alternate the two paths within a burst
                for k in 0..*count {
                    let source = (first + k) % SOURCES.len();
                    let price = (truth + truth * noise_bps[source] / 10_000).max(1);
                    let tick_ts = self.tick_ts(engine, m, source, *lag);
                    let event = tick_event(tick_ts, m, source, price, None);
                    as_line = !as_line;
                    steps.push(if as_line { Step::line_of(event) } else { Step::event(event) });
                }
                return steps;
            }
            Op::Deposit { account, asset, seed } => {
                let account = deposit_account(self.scenario, *account);
                wrap(Event::Deposit(Transfer {
                    ts,
                    account: account.to_string(),
                    asset: ASSETS[*asset].to_string(),
                    amount: amount_of(*asset, *seed),
                }))
            }
            Op::Withdraw { account, asset, mode } => {
                let name = self.name(*account);
                let amount = withdraw_amount(engine, name, *asset, mode);
                wrap(Event::Withdraw(Transfer {
                    ts,
                    account: name.to_string(),
                    asset: ASSETS[*asset].to_string(),
                    amount,
                }))
            }
            Op::Trade { market, a, b, a_buys, size, price_bps, fine, fees, isolated } => {
                let initiator = self.name(*a);
                let mut other = self.name(*b);
                if other == initiator {
                    other = self.name(*a + 1);
                }
                // An isolated initiator trades where it has a wallet, when it has one.
                let funded = |m: &usize| {
                    engine.account(&solvent_core::event::isolated_account(initiator, MARKETS[*m])).is_some()
                };
                let market = if isolated & 1 != 0 {
                    (0..MARKETS.len()).map(|k| (market + k) % MARKETS.len()).find(funded).unwrap_or(*market)
                } else {
                    *market
                };
                let parties = Parties { initiator, other, isolated: *isolated };
                wrap(Event::Trade(build_trade(engine, ts, market, parties, *a_buys, size, *price_bps, *fine, *fees)))
            }
            Op::Isolate { account, market, frac_bp, back } => {
                let name = self.name(*account);
                let wallet = solvent_core::event::isolated_account(name, MARKETS[*market]);
                let from = if *back { wallet.as_str() } else { name };
                let held = engine.account(from).map_or(0, |a| a.settlement.raw());
                let amount = (held.max(QUOTE_ONE) * i128::from(*frac_bp) / 10_000).max(1);
                let amount = Quote::from_raw(if *back { -amount } else { amount });
                wrap(Event::IsolatedMargin(solvent_core::event::IsolatedMargin {
                    ts,
                    account: name.to_string(),
                    market: MARKETS[*market].to_string(),
                    amount,
                }))
            }
            Op::MarginModel { account, portfolio } => {
                let model = if *portfolio { MarginModel::Portfolio } else { MarginModel::Tiered };
                wrap(Event::MarginModel(solvent_core::event::MarginModelChoice {
                    ts,
                    account: self.name(*account).to_string(),
                    model,
                }))
            }
            Op::Params { market, change } => {
                let (update, expect) = build_params(engine, ts, *market, change);
                wrap(Event::Params(Box::new(update))).expect(expect)
            }
            Op::AuctionTake { market, bidder, frac_bp } => {
                // Prefer a market with a running auction; half the takes come from the account
                // with the most equity (a backstop maker with room for the position).
                let running: Vec<&Market> = engine.markets().iter().filter(|m| m.auction.is_some()).collect();
                let market =
                    if running.is_empty() { &engine.markets()[*market] } else { running[market % running.len()] };
                let richest = engine
                    .accounts()
                    .iter()
                    // An isolated wallet (`account#market`) cannot be named as a bidder.
                    .filter(|a| !a.name.contains(solvent_core::event::ISOLATED_SEPARATOR))
                    .max_by_key(|a| (engine.health(&a.name).map_or(Quote::ZERO, |h| h.equity), a.name.clone()))
                    .map(|a| a.name.to_string());
                let bidder = match richest {
                    Some(name) if bidder % 2 == 0 => name,
                    _ => self.name(*bidder).to_string(),
                };
                match market.auction {
                    Some(auction) => {
                        let left = i128::from(market.inventory.size.raw()).abs();
                        let size = (left * i128::from(*frac_bp) / 10_000).clamp(1, i128::from(i64::MAX)) as i64;
                        let take =
                            AuctionTake { ts, auction: auction.id.to_string(), bidder, size: Size::from_raw(size) };
                        wrap(Event::AuctionTake(take))
                    }
                    None => {
                        let take = AuctionTake { ts, auction: "999999".into(), bidder, size: Size::ONE };
                        wrap(Event::AuctionTake(take)).expect(Expect::Reject("unknown_auction"))
                    }
                }
            }
            Op::CollateralTake { asset, bidder, frac_bp } => {
                wrap(Event::CollateralTake(self.collateral_take(engine, ts, *asset, *bidder, *frac_bp)))
            }
            Op::Clock => {
                // Now and then jump to the next funding boundary so clocks cross intervals.
                let boundary = engine
                    .markets()
                    .iter()
                    .filter_map(|m| m.perp.as_deref().filter(|_| m.params.perp.funding_enabled))
                    .map(|state| state.next_funding_ts)
                    .filter(|next| *next > ts && *next - ts <= 5_000)
                    .min();
                if let Some(next) = boundary.filter(|_| timed.dt.is_multiple_of(2)) {
                    self.ts = next;
                }
                wrap(Event::Clock { ts: self.ts }).expect(Expect::Accept)
            }
            Op::FundDeposit { seed } => {
                wrap(Event::FundDeposit { ts, amount: amount_of(0, *seed) }).expect(Expect::Accept)
            }
            Op::Signal { market, seed } => {
                let signal = solvent_core::event::Signal {
                    ts,
                    name: ["funding_rate", "basis", "open_interest", "iv_index", "sentiment"][(*seed % 5) as usize]
                        .into(),
                    value: Quote::from_raw((*seed as i64 >> 8) as i128 * 1_000),
                    market: market.map(|m| MARKETS[m].to_string()),
                };
                wrap(Event::Signal(signal)).expect(Expect::Accept)
            }
            Op::AssetStatus { asset, status } => {
                let name = ["BTC", "ETH", "USDC", "DOGE"][*asset % 4];
                let status = solvent_core::asset_status::AssetStatus::ALL[*status % 3];
                let expect = match *asset % 4 {
                    2 => Expect::Reject("invalid_field_type"),
                    3 => Expect::Reject("unknown_asset"),
                    _ => Expect::Accept,
                };
                let update = solvent_core::event::AssetStatusUpdate { ts, asset: name.into(), status };
                wrap(Event::AssetStatus(update)).expect(expect)
            }
            Op::Invalid(kind) => self.invalid(kind, timed.json, ts, engine),
        };
        vec![step]
    }

    /// A take of `asset`'s holding (the settlement asset for 2): half the bidders are the account
    /// with the most settlement balance (a backstop maker with the cash).
    fn collateral_take(
        &self,
        engine: &Engine,
        ts: u64,
        asset: usize,
        bidder: usize,
        frac_bp: u32,
    ) -> solvent_core::event::CollateralTake {
        let richest = engine
            .accounts()
            .iter()
            .filter(|a| !a.name.contains(solvent_core::event::ISOLATED_SEPARATOR))
            .max_by_key(|a| (a.settlement, a.name.clone()))
            .map(|a| a.name.to_string());
        let bidder = match richest {
            Some(name) if bidder.is_multiple_of(2) => name,
            _ => self.name(bidder).to_string(),
        };
        let held = match asset {
            0 | 1 => engine.collateral_holding(solvent_core::state::AssetId(asset as u16)).size.raw(),
            _ => 0,
        };
        let size = (i128::from(held) * i128::from(frac_bp) / 10_000).clamp(1, i128::from(i64::MAX)) as i64;
        let asset = ASSETS[(asset + 1) % 3].to_string();
        solvent_core::event::CollateralTake { ts, asset, bidder, size: Size::from_raw(size) }
    }

    fn invalid(&self, kind: &Invalid, json: bool, ts: u64, engine: &Engine) -> Step {
        let wrap = |event: Event| if json { Step::line_of(event) } else { Step::event(event) };
        let a = self.name(0).to_string();
        let b = self.name(1).to_string();
        let trade = |market: &str, buyer: &str, seller: &str| Trade {
            ts,
            market: market.to_string(),
            buyer: buyer.to_string(),
            seller: seller.to_string(),
            size: Size::ONE,
            price: Price::from_int(100).unwrap(),
            buyer_fee: Quote::ZERO,
            seller_fee: Quote::ZERO,
            buyer_isolated: false,
            seller_isolated: false,
        };
        let deposit = |ts: u64, asset: &str, amount: Quote| {
            Event::Deposit(Transfer { ts, account: a.clone(), asset: asset.to_string(), amount })
        };
        let reject = Expect::Reject;
        match kind {
            Invalid::UnknownMarketTick => {
                let mut tick = tick_event(ts, 0, 0, 100 * PRICE_ONE, None);
                if let Event::Price(p) = &mut tick {
                    p.market = "DOGE-PERP".into();
                }
                wrap(tick).expect(reject("unknown_market"))
            }
            Invalid::UnknownSource => {
                let mut tick = tick_event(ts, 0, 0, self.truth[0], None);
                if let Event::Price(p) = &mut tick {
                    p.source = "s9".into();
                }
                wrap(tick).expect(reject("unknown_source"))
            }
            Invalid::UnknownMarketTrade => {
                wrap(Event::Trade(trade("DOGE-PERP", &a, &b))).expect(reject("unknown_market"))
            }
            Invalid::UnknownAsset => wrap(deposit(ts, "DOGE", Quote::ONE)).expect(reject("unknown_asset")),
            Invalid::ZeroAmount => {
                let line = format!(r#"{{"type":"deposit","ts":{ts},"account":"{a}","asset":"USDC","amount":"0"}}"#);
                Step::raw(&line).expect(reject("non_positive"))
            }
            Invalid::NegativePrice => {
                let line = format!(r#"{{"type":"price","ts":{ts},"market":"BTC-PERP","source":"s1","price":"-5"}}"#);
                Step::raw(&line).expect(reject("non_positive"))
            }
            Invalid::SelfTrade => wrap(Event::Trade(trade("BTC-PERP", &a, &a))).expect(reject("self_trade")),
            Invalid::UnknownAccount => wrap(Event::Withdraw(Transfer {
                ts,
                account: "ghost".into(),
                asset: "USDC".into(),
                amount: Quote::ONE,
            }))
            .expect(reject("unknown_account")),
            Invalid::Backwards { back, deposit: as_deposit } => {
                let last = engine.last_ts();
                if last == 0 {
                    return wrap(Event::Clock { ts }).expect(Expect::Accept);
                }
                let past = last - (1 + back % last);
                let event = if *as_deposit { deposit(past, "USDC", Quote::ONE) } else { Event::Clock { ts: past } };
                wrap(event).expect(reject("time_backwards"))
            }
            Invalid::BrokenJson => {
                Step::raw(&format!(r#"{{"type":"deposit","ts":{ts},"account":"{a}","#)).expect(reject("invalid_json"))
            }
            Invalid::UnknownAssetStatus => {
                let line = format!(r#"{{"type":"asset_status","ts":{ts},"asset":"BTC","status":"halted"}}"#);
                Step::raw(&line).expect(reject("unknown_asset_status"))
            }
            Invalid::UnknownType => {
                Step::raw(&format!(r#"{{"type":"teleport","ts":{ts}}}"#)).expect(reject("unknown_type"))
            }
            Invalid::UnknownField => {
                Step::raw(&format!(r#"{{"type":"clock","ts":{ts},"colour":"red"}}"#)).expect(reject("unknown_field"))
            }
            Invalid::TooManyDecimals => {
                // 0.000000001 BTC: finer than BTC's 8 decimals (fine for the parser's Quote scale).
                wrap(deposit(ts, "BTC", Quote::from_raw(10_000_000))).expect(reject("too_many_decimals"))
            }
            Invalid::AuctionTake => wrap(Event::AuctionTake(AuctionTake {
                ts,
                auction: "no-such-auction".into(),
                bidder: a.clone(),
                size: Size::ONE,
            }))
            .expect(reject("unknown_auction")),
            Invalid::NumberNotString => {
                let line = format!(r#"{{"type":"deposit","ts":{ts},"account":"{a}","asset":"USDC","amount":100}}"#);
                Step::raw(&line).expect(reject("invalid_field_type"))
            }
            Invalid::ReplayedTick => match engine.markets()[0].sources[0].latest {
                Some(last) => wrap(tick_event(last.ts, 0, 0, self.truth[0], None)).expect(reject("replayed")),
                None => Step::raw(&format!(r#"{{"type":"clock","ts":{ts}}}"#)).expect(Expect::Accept),
            },
            Invalid::FutureTick => {
                let ahead = engine.last_ts() + engine.markets()[1].params.max_future_ms + 1;
                wrap(tick_event(ahead.max(ts + 1), 1, 2, self.truth[1], None)).expect(reject("future_ts"))
            }
        }
    }
}

/// The account a deposit goes to: one of the scenario's, or (slot 9) a newcomer from the pool.
fn deposit_account(scenario: &Scenario, i: usize) -> &'static str {
    let newcomer = POOL.iter().copied().find(|n| !scenario.accounts.contains(n));
    match newcomer {
        Some(name) if i == 9 => name,
        _ => scenario.accounts[i % scenario.accounts.len()],
    }
}

fn tick_event(ts: u64, market: usize, source: usize, price: i64, conf: Option<Price>) -> Event {
    Event::Price(PriceTick {
        ts,
        market: MARKETS[market].into(),
        source: SOURCES[source].into(),
        price: Price::from_raw(price.max(1)),
        conf,
        sig: None,
    })
}

fn mark_of(engine: &Engine, market: usize) -> Option<i64> {
    engine.markets()[market].mark_price.map(Price::raw)
}

/// What the reference calls free: rounded collateral + min(0, uPnL) - rounded IM (Quote raw).
fn free_collateral(engine: &Engine, name: &str) -> Option<i128> {
    let account = engine.account(name)?;
    let health = reference::account_health(account, engine.assets(), engine.markets()).ok()?;
    i128::try_from(health.equity_without_profit_raw - health.im_raw).ok()
}

fn withdraw_amount(engine: &Engine, name: &str, asset: usize, mode: &WithdrawMode) -> Quote {
    let account = engine.account(name);
    let unit = if asset == 0 { 1 } else { QUOTE_PER_SIZE };
    let balance = match account {
        None => 0,
        Some(acc) if asset == 0 => acc.settlement.raw(),
        Some(acc) => {
            i128::from(acc.collateral_balance(solvent_core::state::AssetId(asset as u16 - 1)).raw()) * QUOTE_PER_SIZE
        }
    };
    // Free collateral in the asset's own units (USDC exactly; BTC / ETH at weight x index).
    let free_in_asset = |free: i128| -> i128 {
        if asset == 0 {
            return free;
        }
        let config_asset = &engine.assets()[asset - 1];
        let index = engine.markets()[config_asset.index_market.0 as usize].index_price.map_or(0, Price::raw);
        // index raw x weight raw: Quote raw per Size unit, times 10^8.
        let per_unit = i128::from(index) * i128::from(config_asset.weight.raw());
        if per_unit == 0 {
            return balance;
        }
        // Size raw = free raw x 10^8 / (index raw x weight raw), floored; then as Quote raw.
        free.saturating_mul(i128::from(Size::ONE_RAW)) / per_unit * QUOTE_PER_SIZE
    };
    let raw = match mode {
        WithdrawMode::Fraction(bp) => balance * i128::from(*bp) / 10_000 / unit * unit,
        WithdrawMode::Free { plus_one } => {
            let free = free_collateral(engine, name).unwrap_or(0).max(0);
            free_in_asset(free) + if *plus_one { unit } else { 0 }
        }
        WithdrawMode::FractionOfFree(bp) => {
            let free = free_collateral(engine, name).unwrap_or(0).max(0);
            free_in_asset(free * i128::from(*bp) / 10_000) / unit * unit
        }
    };
    Quote::from_raw(raw.max(unit))
}

/// The two sides of a generated trade and which of them fill in their isolated wallets.
struct Parties<'a> {
    initiator: &'a str,
    other: &'a str,
    /// Bit 0: the initiator, bit 1: the other side.
    isolated: u8,
}

#[allow(clippy::too_many_arguments)]
fn build_trade(
    engine: &Engine,
    ts: u64,
    market: usize,
    parties: Parties,
    initiator_buys: bool,
    mode: &SizeMode,
    price_bps: i64,
    fine: u64,
    fees: Option<(u32, u32)>,
) -> Trade {
    let mark = mark_of(engine, market).unwrap_or(BASE_PRICE[market] * PRICE_ONE);
    let Parties { initiator, other, isolated } = parties;
    let (initiator_isolated, other_isolated) = (isolated & 1 != 0, isolated & 2 != 0);
    // Sizing reads the account the initiator fills in.
    let wallet = solvent_core::event::isolated_account(initiator, MARKETS[market]);
    let filler = if initiator_isolated { wallet.as_str() } else { initiator };
    let equity = engine.health(filler).map_or(0, |h| h.equity.raw()).max(100 * QUOTE_ONE);
    let by_leverage = |centi: u32| equity * i128::from(centi) / 100 / i128::from(mark);
    let held = engine.account(filler).map_or(0, |a| a.size(MarketId(market as u16)).raw());
    let mut buys = initiator_buys;
    let size_raw: i128 = match mode {
        SizeMode::Leverage(centi) => by_leverage(*centi),
        SizeMode::Tiny(r) => 1 + i128::from(*r % 10_000),
        SizeMode::Boundary { leverage, .. } => by_leverage(*leverage),
        SizeMode::Reduce(_) | SizeMode::Close | SizeMode::Flip(_) if held == 0 => by_leverage(100),
        SizeMode::Reduce(bp) => {
            buys = held < 0;
            i128::from(held).abs() * i128::from(*bp) / 10_000
        }
        SizeMode::Close => {
            buys = held < 0;
            i128::from(held).abs()
        }
        SizeMode::Flip(bp) => {
            buys = held < 0;
            i128::from(held).abs() * i128::from(10_000 + *bp) / 10_000
        }
    };
    let size = Size::from_raw(size_raw.clamp(1, 1_000_000_000_000_000) as i64);
    let boundary = matches!(mode, SizeMode::Boundary { .. });
    let price = if boundary {
        mark
    } else {
        let shifted = i128::from(mark) * i128::from(10_000 + price_bps) / 10_000;
        (shifted as i64 + (fine % (mark as u64 / 10_000 + 1)) as i64).max(1)
    };
    let price = Price::from_raw(price);
    let (buyer, seller) = if buys { (initiator, other) } else { (other, initiator) };
    let notional = size.mul_price(price).raw();
    let (mut buyer_fee, mut seller_fee) = match fees {
        Some((x, y)) => (notional * i128::from(x) / 1_000_000, notional * i128::from(y) / 1_000_000),
        None => (0, 0),
    };
    if let SizeMode::Boundary { plus_one, .. } = mode {
        // The fee that leaves the initiator's equity exactly at its initial margin after the fill.
        if let Some(account) = engine.account(filler) {
            let delta = if buys { size } else { Size::from_raw(-size.raw()) };
            let filled = reference::exposure_adding_fill(account, MarketId(market as u16), delta, price, Quote::ZERO);
            let health =
                filled.and_then(|after| reference::account_health(&after, engine.assets(), engine.markets()).ok());
            if let Some(slack) = health.and_then(|h| i128::try_from(h.equity_raw - h.im_raw).ok()) {
                if slack >= 0 {
                    let fee = slack + i128::from(*plus_one);
                    if buys {
                        buyer_fee = fee;
                    } else {
                        seller_fee = fee;
                    }
                }
            }
        }
    }
    Trade {
        ts,
        market: MARKETS[market].into(),
        buyer: buyer.into(),
        seller: seller.into(),
        size,
        price,
        buyer_fee: Quote::from_raw(buyer_fee),
        seller_fee: Quote::from_raw(seller_fee),
        buyer_isolated: if buys { initiator_isolated } else { other_isolated },
        seller_isolated: if buys { other_isolated } else { initiator_isolated },
    }
}

fn build_params(engine: &Engine, ts: u64, market: usize, change: &ParamsChange) -> (ParamsUpdate, Expect) {
    let base = ParamsUpdate { ts, market: MARKETS[market].into(), ..ParamsUpdate::default() };
    let bracket = i128::from(BRACKET[market]);
    let size_bound = |units: i128| Size::from_raw((units * i128::from(Size::ONE_RAW)) as i64).to_string();
    match change {
        ParamsChange::ImFactor(centi) => {
            (ParamsUpdate { im_factor: Some(Rate::from_raw(i64::from(*centi) * 1_000_000)), ..base }, Expect::Accept)
        }
        ParamsChange::Mode { whole } => {
            let mode = if *whole { TierMode::Whole } else { TierMode::Marginal };
            (ParamsUpdate { tier_mode: Some(mode), ..base }, Expect::Accept)
        }
        ParamsChange::Tiers { notional, brackets, whole, im, fine } => {
            let mut tiers = Vec::new();
            let mut from: i128 = 0; // raw in the basis unit
            let mut rate: i64 = 500_000; // 0.005
            for (i, (width_pct, rate_step)) in brackets.iter().enumerate() {
                if i > 0 {
                    // Bounds: a fraction of the default bracket, with odd decimals at times.
                    let unit_raw = if *notional {
                        bracket * i128::from(BASE_PRICE[market]) * QUOTE_ONE
                    } else {
                        bracket * i128::from(Size::ONE_RAW)
                    };
                    let odd = if fine % 3 == 0 { i128::from(*fine % 1_000_003) } else { 0 };
                    from += unit_raw * i128::from(*width_pct) / 100 + odd + 1;
                }
                rate =
                    (rate + i64::from(*rate_step) * 10_000 + if fine % 5 == 0 { 7 } else { 0 }).min(Rate::ONE_RAW / 2);
                let bound =
                    if *notional { Quote::from_raw(from).to_string() } else { Size::from_raw(from as i64).to_string() };
                tiers.push(tier_spec(bound, rate));
            }
            let basis = if *notional { TierBasis::Notional } else { TierBasis::Size };
            let update = ParamsUpdate {
                tier_basis: Some(basis),
                tiers: Some(tiers),
                tier_mode: whole.map(|w| if w { TierMode::Whole } else { TierMode::Marginal }),
                im_factor: im.map(|c| Rate::from_raw(i64::from(c) * 1_000_000)),
                ..base
            };
            (update, Expect::Accept)
        }
        ParamsChange::Default => {
            let params = &Config::embedded_default().markets[market].params;
            let tiers = params
                .tiers
                .iter()
                .map(|t| TierSpec {
                    from: size_bound(t.from_raw / i128::from(Size::ONE_RAW)),
                    mm_rate: t.mm_rate,
                    penalty_rate: t.penalty_rate,
                })
                .collect();
            let update = ParamsUpdate {
                tier_basis: Some(params.tier_basis),
                tier_mode: Some(params.tier_mode),
                tiers: Some(tiers),
                im_factor: Some(params.im_factor),
                ..base
            };
            (update, Expect::Accept)
        }
        ParamsChange::BadRates => {
            let tiers = vec![tier_spec("0".into(), 5_000_000), tier_spec(size_bound(bracket), 2_500_000)];
            (
                ParamsUpdate { tier_basis: Some(TierBasis::Size), tiers: Some(tiers), ..base },
                Expect::Reject("invalid_params"),
            )
        }
        ParamsChange::BadFirst => {
            let tiers = vec![tier_spec(size_bound(1), 2_500_000)];
            (
                ParamsUpdate { tier_basis: Some(TierBasis::Size), tiers: Some(tiers), ..base },
                Expect::Reject("invalid_params"),
            )
        }
        ParamsChange::BasisWithoutTiers => {
            let current = engine.markets()[market].params.tier_basis;
            let other = if current == TierBasis::Size { TierBasis::Notional } else { TierBasis::Size };
            (ParamsUpdate { tier_basis: Some(other), ..base }, Expect::Reject("invalid_params"))
        }
        ParamsChange::MarkEma(ms) => (ParamsUpdate { mark_ema_ms: Some(*ms), ..base }, Expect::Accept),
        ParamsChange::Rules {
            buffer_bp,
            min_notional,
            chunk_notional,
            chunk_pct,
            cooldown_ms,
            backstop_pct,
            dust_cents,
        } => {
            let units = |n: u32| Quote::from_raw(i128::from(n) * Quote::ONE_RAW);
            let rules = solvent_core::event::RulesUpdate {
                min_liquidation_notional: Some(units(*min_notional)),
                liquidation_chunk_notional: Some((*chunk_notional > 0).then(|| units(*chunk_notional))),
                liquidation_chunk_rate: Some(Rate::from_raw(i64::from(*chunk_pct) * 1_000_000)),
                liquidation_cooldown_ms: Some(*cooldown_ms),
                backstop_mm_fraction: Some(Rate::from_raw(i64::from(*backstop_pct) * 1_000_000)),
                dust_equity: Some(Quote::from_raw(i128::from(*dust_cents) * Quote::ONE_RAW / 100)),
                ..Default::default()
            };
            let buffer = Some(Rate::from_raw(i64::from(*buffer_bp) * 10_000));
            (ParamsUpdate { liquidation_buffer: buffer, rules, ..base }, Expect::Accept)
        }
        ParamsChange::Caps { account_units, event_units } => {
            let cap = |n: u32| Some((n > 0).then(|| Quote::from_raw(i128::from(n) * Quote::ONE_RAW)));
            let rules = solvent_core::event::RulesUpdate {
                max_account_liquidation_notional: cap(*account_units),
                max_event_liquidation_notional: cap(*event_units),
                ..Default::default()
            };
            (ParamsUpdate { rules, ..base }, Expect::Accept)
        }
        ParamsChange::Portfolio { range_pct, buckets, correlation_pct, mm_factor_pct, floor_pct } => {
            let pct = |n: u32| Rate::from_raw(i64::from(n) * 1_000_000);
            let portfolio = solvent_core::event::PortfolioUpdate {
                pm_range: Some(pct(*range_pct)),
                pm_buckets: Some(*buckets),
                pm_correlation: Some(pct(*correlation_pct)),
                pm_mm_factor: Some(pct(*mm_factor_pct)),
                pm_im_factor: None,
                pm_floor: Some(pct(*floor_pct)),
            };
            (ParamsUpdate { portfolio, ..base }, Expect::Accept)
        }
        ParamsChange::Funding {
            enabled,
            interval_ms,
            interest,
            clamp,
            cap,
            skew_scale_units,
            velocity_pct,
            skew_alert_units,
        } => {
            // Rates in units of 10^-8 x 100 (a hundredth of a basis point).
            let rate = |hundredths_bp: i64| Rate::from_raw(hundredths_bp * 100);
            let units = |n: u32| (n > 0).then(|| Size::from_raw(i64::from(n) * Size::ONE_RAW));
            let perp = solvent_core::event::PerpUpdate {
                funding_enabled: Some(*enabled),
                funding_interval_ms: Some(*interval_ms),
                funding_interest_rate: Some(rate(i64::from(*interest))),
                funding_clamp: Some(rate(i64::from(*clamp))),
                funding_cap: Some(rate(i64::from(*cap))),
                skew_scale: Some(units(*skew_scale_units)),
                max_funding_velocity: Some(Rate::from_raw(i64::from(*velocity_pct) * 1_000_000)),
                skew_alert: Some(units(*skew_alert_units)),
                protocol_delta_alert: Some((*skew_alert_units > 1).then(|| Quote::from_raw(QUOTE_ONE * 1_000))),
            };
            // A basis EMA so that trades away from the index make a premium to sample.
            let ema = enabled.then_some(1_000);
            (ParamsUpdate { perp, mark_ema_ms: ema, ..base }, Expect::Accept)
        }
        ParamsChange::Oracle { quorum, max_age_ms, max_deviation_bp } => {
            let update = ParamsUpdate {
                quorum: Some(*quorum),
                max_age_ms: Some(*max_age_ms),
                max_deviation: Some(Rate::from_raw(i64::from(*max_deviation_bp) * 10_000)),
                ..base
            };
            let expect =
                if *quorum as usize <= SOURCES.len() { Expect::Accept } else { Expect::Reject("invalid_params") };
            (update, expect)
        }
        ParamsChange::Predictive { addon_bp, phase_in_ms, raise_pct, oi_cap_units, cliff } => {
            let mark = engine.markets()[market].mark_price.map_or(BASE_PRICE[market] * PRICE_ONE, |p| p.raw());
            let at = |bp: i64| Price::from_raw((i128::from(mark) * (10_000 + i128::from(bp)) / 10_000).max(1) as i64);
            let cliff_ranges = cliff.map(|(from_bp, width_bp, _, _)| {
                let from = i64::from(from_bp);
                vec![CliffRange { from: at(from), to: at(from + i64::from(width_bp)) }]
            });
            let target = engine.markets()[market].target_params();
            let from = |raw: i128| match target.tier_basis {
                TierBasis::Size => Size::from_raw(raw as i64).to_string(),
                TierBasis::Notional => Quote::from_raw(raw).to_string(),
            };
            let scale = |rate: Rate| {
                let scaled = i128::from(rate.raw()) * i128::from(100 + raise_pct) / 100;
                Rate::from_raw((scaled as i64).clamp(1, Rate::ONE_RAW))
            };
            let tiers = target
                .tiers
                .iter()
                .map(|t| {
                    let mm_rate = scale(t.mm_rate);
                    TierSpec {
                        from: from(t.from_raw),
                        mm_rate,
                        penalty_rate: t.penalty_rate.min(Rate::from_raw(mm_rate.raw() / 2)),
                    }
                })
                .collect();
            let update = ParamsUpdate {
                tiers: Some(tiers),
                im_addon_rate: Some(Rate::from_raw(i64::from(*addon_bp) * 10_000)),
                mm_phase_in_ms: Some(*phase_in_ms),
                oi_cap: oi_cap_units
                    .map(|units| Some(Size::from_raw(i64::from(units) * BRACKET[market] * Size::ONE_RAW / 1_000))),
                cliff_ranges,
                concentration_addon_rate: cliff.map(|(_, _, bp, _)| Rate::from_raw(i64::from(bp) * 10_000)),
                incentive_rebate_rate: cliff.map(|(_, _, _, bp)| Rate::from_raw(i64::from(bp) * 10_000)),
                ..base
            };
            (update, Expect::Accept)
        }
        ParamsChange::BadIm => (
            ParamsUpdate { im_factor: Some(Rate::from_raw(Rate::ONE_RAW / 2)), ..base },
            Expect::Reject("invalid_params"),
        ),
    }
}

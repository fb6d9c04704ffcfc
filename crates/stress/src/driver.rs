//! One run: a scenario under a policy, on a clone of the policy's book.
//!
//! Per step, at engine time `ts`: a `clock` event; if the oracle is live, price
//! ticks from every fed source at the scenario's price times the accumulated
//! liquidation impact; under the dynamic policy the advisor reads the engine's
//! mark and its `params` line is applied when a rate changed; then the book's
//! margin is sampled; the size liquidated during the step moves the next step's
//! price (square-root law); finally backstop makers take live auctions
//! `backstop_take_delay_ms` after they start, up to their capacity (late, or not
//! at all, inside the congestion window of a congested book: `congestion.rs`).

use crate::book::{params_line, tick_line, Book, MAKER_BUYER, MAKER_SELLER, T_SETUP_MS};
use crate::congestion::{stream_for, window_offsets_ms, Answer, Congestion};
use crate::error::{Result, StressError};
use crate::metrics::{RunMetrics, StepSample, Tally, Trace};
use crate::policy::DynamicModel;
use crate::population::{price_f64, price_from_f64, quote_f64, size_f64};
use crate::predictive::{PredictiveMarket, PredictiveModel};
use crate::scenario::Scenario;
use serde_json::{json, Map};
use solvent_core::config::{MarketParams, TierBasis, TierMode};
use solvent_core::effect::EffectKind;
use solvent_core::liquidation::auction::price_after;
use solvent_core::{Effect, Engine, Quote, Size};
use solvent_models::advisor::PriceDrivenAdvisor;

/// Engine time of a run's offset 0.
pub const RUN_T0_MS: u64 = T_SETUP_MS + 1_000;
/// Largest price impact of one step's liquidations (a fraction of the price).
pub const MAX_STEP_IMPACT: f64 = 0.5;

/// An engine fed event lines, optionally journaling them.
#[derive(Debug, Clone)]
pub struct Feed {
    pub engine: Engine,
    pub seq: u64,
    pub journal: Option<Vec<String>>,
    out: Vec<Effect>,
}

impl Feed {
    pub fn new(engine: Engine, seq: u64, record: bool) -> Feed {
        Feed { engine, seq, journal: record.then(Vec::new), out: Vec::new() }
    }

    /// Applies one line; returns its effects (a refusal is a `rejected` effect).
    pub fn push(&mut self, line: String) -> &[Effect] {
        self.seq += 1;
        self.out.clear();
        self.engine.apply_line(self.seq, line.as_bytes(), &mut self.out);
        if let Some(journal) = &mut self.journal {
            journal.push(line);
        }
        &self.out
    }

    /// Applies a line the harness expects the engine to accept.
    pub fn push_checked(&mut self, line: String) -> Result<&[Effect]> {
        let copy = self.journal.is_none().then(|| line.clone());
        self.push(line);
        if let Some(kind) = self.out.iter().find_map(|e| e.rejection_kind()) {
            let line = copy.or_else(|| self.journal.as_ref().and_then(|j| j.last().cloned())).unwrap_or_default();
            return Err(StressError::EngineRejected { line, error: kind.to_string() });
        }
        Ok(&self.out)
    }
}

/// What a caller wants back besides the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunRequest {
    /// Keep the setup and run event lines.
    pub journal: bool,
    /// Keep per-step price, fund and margin and the liquidation markers.
    pub trace: bool,
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub metrics: RunMetrics,
    pub trace: Option<Trace>,
    /// Setup and run event lines, in order (when requested).
    pub journal: Option<Vec<String>>,
    /// The engine after the last event.
    pub engine: Engine,
}

/// Mutable state of a run besides the engine.
struct RunState {
    tally: Tally,
    impact: Vec<f64>,
    advisors: Option<Vec<PriceDrivenAdvisor>>,
    predictive: Option<Vec<PredictiveMarket>>,
    /// Maps read by the predictive policy (traced runs only).
    maps: Option<Vec<(f64, solvent_models::cascade::LiquidationMap)>>,
    views: Option<Vec<(f64, crate::predictive::MarketView)>>,
    /// Per market: the auction the makers last decided on, and their answer (`None`
    /// once it is sent).
    answers: Vec<Option<(u64, Option<Answer>)>>,
    congestion: Congestion,
    samples: Vec<StepSample>,
}

/// Which advisor drives a run's margin (none: the book's tables stay).
#[derive(Debug, Clone, Copy, Default)]
pub struct Advisors<'a> {
    pub dynamic: Option<&'a DynamicModel>,
    pub predictive: Option<&'a PredictiveModel>,
}

/// Runs `scenario` on a clone of `book`; `dynamic` is `Some` for the dynamic policy.
pub fn run_scenario(
    book: &Book,
    scenario: &Scenario,
    dynamic: Option<&DynamicModel>,
    options: &crate::options::StressOptions,
    request: RunRequest,
) -> Result<RunOutcome> {
    run_scenario_with(book, scenario, Advisors { dynamic, predictive: None }, options, request)
}

/// Runs `scenario` on a clone of `book` under the given advisors.
pub fn run_scenario_with(
    book: &Book,
    scenario: &Scenario,
    models: Advisors,
    options: &crate::options::StressOptions,
    request: RunRequest,
) -> Result<RunOutcome> {
    let mut feed = Feed::new(book.engine.clone(), book.seq, request.journal);
    if let Some(journal) = &mut feed.journal {
        journal.extend(book.journal.iter().cloned());
    }
    let advisors = models.dynamic.map(|d| d.advisors(book, scenario.base_step_ms)).transpose()?;
    let predictive = models
        .predictive
        .map(|p| book.markets.iter().map(|m| PredictiveMarket::new(p, m)).collect::<Result<Vec<_>>>())
        .transpose()?;
    let n = book.markets.len();
    let mut state = RunState {
        tally: Tally::new(n, request.trace),
        impact: vec![1.0; n],
        advisors,
        predictive,
        maps: request.trace.then(Vec::new),
        views: request.trace.then(Vec::new),
        answers: vec![None; n],
        congestion: run_congestion(book, scenario, options),
        samples: Vec::with_capacity(scenario.steps.len()),
    };
    let max_age_ms = scenario.base_step_ms * 5 / 2;
    for m in &book.markets {
        let mut fields = Map::new();
        fields.insert("max_age_ms".into(), json!(max_age_ms));
        let effects = feed.push_checked(params_line(RUN_T0_MS, &m.name, fields))?;
        state.tally.absorb(effects, book, RUN_T0_MS);
    }
    for k in 0..scenario.steps.len() {
        run_step(&mut feed, &mut state, book, scenario, k, options)?;
    }
    let mut metrics = RunMetrics::finish(&state.tally, &state.samples, scenario, book, &feed.engine);
    metrics.window_s = state.congestion.window_ms.map(|(a, b)| {
        let s = |t: u64| t.saturating_sub(RUN_T0_MS) as f64 / 1_000.0;
        (s(a), s(b))
    });
    let trace = request.trace.then(|| Trace {
        maps: state.maps.take().unwrap_or_default(),
        views: state.views.take().unwrap_or_default(),
        ..Trace::from_run(&state.tally, &state.samples, scenario)
    });
    Ok(RunOutcome { metrics, trace, journal: feed.journal.take(), engine: feed.engine })
}

fn run_step(
    feed: &mut Feed,
    state: &mut RunState,
    book: &Book,
    scenario: &Scenario,
    k: usize,
    options: &crate::options::StressOptions,
) -> Result<()> {
    let step = &scenario.steps[k];
    let ts = RUN_T0_MS + step.offset_ms;
    let next_ts = scenario.steps.get(k + 1).map_or(ts + scenario.base_step_ms, |s| RUN_T0_MS + s.offset_ms);
    let effects = feed.push_checked(format!(r#"{{"type":"clock","ts":{ts}}}"#))?;
    state.tally.absorb(effects, book, ts);
    if step.oracle_live {
        for (i, m) in book.markets.iter().enumerate() {
            let price = price_from_f64(m.reference_price * step.price_factor * state.impact[i]);
            for source in &book.sources {
                let effects = feed.push_checked(tick_line(ts, &m.name, source, price))?;
                state.tally.absorb(effects, book, ts);
            }
        }
        advise(feed, state, book, ts)?;
        predict(feed, state, book, ts)?;
    }
    let advised = state.advisors.is_some() || state.predictive.is_some();
    let s = sample(&feed.engine, book, advised);
    if state.congestion.in_window(ts) {
        state.tally.window.observe(&s, next_ts - ts);
    }
    state.samples.push(s);
    apply_impact(state, book, step.sigma_daily, options.impact_y);
    take_auctions(feed, state, book, ts, next_ts, options.backstop_take_delay_ms)?;
    take_collateral(feed, state, book)
}

/// Backstop makers buy what collateral liquidation left in the protocol's hands (the BTC or ETH
/// it bought from liquidated accounts at index less the haircut) at the end of each step, at the
/// engine's take price (index less half the haircut), all of it; nobody buys inside an active
/// congestion window (as nobody bids on auctions there). Refused takes are counted like auction
/// takes (`takes_refused`).
fn take_collateral(feed: &mut Feed, state: &mut RunState, book: &Book) -> Result<()> {
    let ts = feed.engine.last_ts();
    if state.congestion.active && state.congestion.in_window(ts) {
        return Ok(());
    }
    let mut takes = Vec::new();
    for (i, asset) in feed.engine.assets().iter().enumerate() {
        let holding = feed.engine.collateral_holding(solvent_core::state::AssetId(i as u16));
        let index_market = &feed.engine.markets()[asset.index_market.0 as usize];
        if holding.size.is_positive() && !index_market.frozen && index_market.index_price.is_some() {
            takes.push((asset.name.to_string(), holding.size));
        }
    }
    for (asset, size) in takes {
        let line = format!(
            r#"{{"type":"collateral_take","ts":{ts},"asset":"{asset}","bidder":"{MAKER_BUYER}","size":"{size}"}}"#
        );
        let effects = feed.push(line);
        state.tally.absorb(effects, book, ts);
    }
    Ok(())
}

/// The run's congestion: its window in engine time (measured in every run), active
/// when the book is congested, drawing from the seed's stream for the scenario.
fn run_congestion(book: &Book, scenario: &Scenario, options: &crate::options::StressOptions) -> Congestion {
    let settings = &options.congestion;
    let window = window_offsets_ms(settings, scenario).map(|(a, b)| (RUN_T0_MS + a, RUN_T0_MS + b));
    let rng = crate::rng::stream_rng(options.seed, stream_for(&scenario.name));
    Congestion::new(window, book.congested && settings.enabled(), settings, rng)
}

/// Feeds each live market's mark to its advisor and applies a changed table.
fn advise(feed: &mut Feed, state: &mut RunState, book: &Book, ts: u64) -> Result<()> {
    let Some(advisors) = &mut state.advisors else { return Ok(()) };
    for (m, advisor) in book.markets.iter().zip(advisors.iter_mut()) {
        let market = &feed.engine.markets()[m.index];
        let Some(mark) = market.mark_price.filter(|_| !market.frozen) else { continue };
        if let Some(update) = advisor.on_price(ts, price_f64(mark))? {
            if update.changed {
                state.tally.margin_changes += 1;
                let effects = feed.push_checked(update.line)?;
                state.tally.absorb(effects, book, ts);
            }
        }
    }
    Ok(())
}

/// Feeds each live market's mark (and, every map interval, its liquidation map)
/// to the predictive policy and applies its `params` line.
fn predict(feed: &mut Feed, state: &mut RunState, book: &Book, ts: u64) -> Result<()> {
    let Some(policies) = &mut state.predictive else { return Ok(()) };
    for (m, policy) in book.markets.iter().zip(policies.iter_mut()) {
        let market = &feed.engine.markets()[m.index];
        let Some(mark) = market.mark_price.filter(|_| !market.frozen) else { continue };
        if policy.wants_map(ts) {
            let map = crate::liqmap::float_map(&feed.engine, m.index)?;
            policy.on_map(ts, &map)?;
            if let (Some(maps), 0) = (&mut state.maps, m.index) {
                maps.push(((ts - RUN_T0_MS) as f64 / 1_000.0, map));
            }
        }
        let oi = crate::liqmap::open_interest(&feed.engine, m.index);
        let update = policy.on_price(ts, price_f64(mark), oi)?;
        if let (Some(views), 0) = (&mut state.views, m.index) {
            views.push(((ts - RUN_T0_MS) as f64 / 1_000.0, policy.view));
        }
        if let Some(update) = update {
            state.tally.margin_changes += 1;
            let effects = feed.push_checked(update.line)?;
            state.tally.absorb(effects, book, ts);
        }
    }
    Ok(())
}

/// A tier table in floats: (from in its basis unit, MM rate).
#[derive(Debug, Clone, PartialEq)]
pub struct FloatTiers {
    notional_basis: bool,
    whole: bool,
    brackets: Vec<(f64, f64)>,
}

impl FloatTiers {
    pub fn new(params: &MarketParams) -> FloatTiers {
        let notional_basis = params.tier_basis == TierBasis::Notional;
        let unit = if notional_basis { Quote::ONE_RAW as f64 } else { Size::ONE_RAW as f64 };
        FloatTiers {
            notional_basis,
            whole: params.tier_mode == TierMode::Whole,
            brackets: params.tiers.iter().map(|t| (t.from_raw as f64 / unit, t.mm_rate.raw() as f64 / 1e8)).collect(),
        }
    }

    /// Maintenance margin of a position of `size_abs` at `mark`: the core's formula
    /// (`margin::position_mm_fine`) in floats, without its final rounding up.
    pub fn maintenance_margin(&self, size_abs: f64, mark: f64) -> f64 {
        let x = if self.notional_basis { size_abs * mark } else { size_abs };
        let weighted = if self.whole {
            let rate =
                self.brackets.iter().rev().find(|(from, _)| x >= *from).or(self.brackets.first()).map_or(0.0, |b| b.1);
            x * rate
        } else {
            let mut sum = 0.0;
            for (i, (from, rate)) in self.brackets.iter().enumerate() {
                let upper = self.brackets.get(i + 1).map_or(f64::INFINITY, |b| b.0);
                if x <= *from {
                    break;
                }
                sum += (x.min(upper) - from) * rate;
            }
            sum
        };
        if self.notional_basis {
            weighted
        } else {
            weighted * mark
        }
    }
}

/// Sum of the population's maintenance margin and notional at mark (and, for the
/// dynamic policy, the same book's margin under the static tables).
fn sample(engine: &Engine, book: &Book, with_static: bool) -> StepSample {
    let markets = engine.markets();
    let current: Vec<FloatTiers> = markets.iter().map(|m| FloatTiers::new(&m.params)).collect();
    let mut s = StepSample {
        fund_usdc: quote_f64(engine.insurance_fund()),
        protocol_net_usdc: crate::metrics::protocol_net(engine),
        ..StepSample::default()
    };
    for account in engine.accounts().iter().skip(book.population_start) {
        for p in &account.positions {
            let i = p.market.0 as usize;
            let Some(mark) = markets[i].mark_price.map(price_f64) else { continue };
            let size_abs = size_f64(p.size).abs();
            s.mm_usdc += current[i].maintenance_margin(size_abs, mark);
            s.notional_usdc += size_abs * mark;
            if with_static {
                s.mm_static_usdc += book.static_tiers_f64[i].maintenance_margin(size_abs, mark);
            }
        }
    }
    if !with_static {
        s.mm_static_usdc = s.mm_usdc;
    }
    for m in &book.markets {
        let market = &markets[m.index];
        let Some(mark) = market.mark_price else { continue };
        s.inventory_usdc += size_f64(market.inventory.size).abs() * price_f64(mark);
        let pnl = market.inventory.unrealized_pnl(mark).map_or(0.0, quote_f64);
        s.inventory_loss_usdc += (-pnl).max(0.0);
    }
    let primary = &markets[book.markets[0].index];
    s.price = primary.mark_price.map_or(0.0, price_f64);
    s
}

/// The size liquidated since the last price moves the next price against it:
/// factor (1 -/+ Y sigma_daily sqrt(|Q| / V)), longs liquidated push down.
fn apply_impact(state: &mut RunState, book: &Book, sigma_daily: f64, impact_y: f64) {
    for (i, m) in book.markets.iter().enumerate() {
        let q = std::mem::take(&mut state.tally.pending_liquidated_base[i]);
        if q == 0.0 {
            continue;
        }
        let f = (impact_y * sigma_daily * (q.abs() / m.depth_base_per_day).sqrt()).min(MAX_STEP_IMPACT);
        state.impact[i] *= if q > 0.0 { 1.0 - f } else { 1.0 + f };
    }
}

/// Backstop makers answer each live auction once: `delay_ms` after it starts, or
/// as the run's congestion says (late, missed, no bid), up to their capacity; what is
/// left is re-auctioned when the auction expires. No take is sent past the auction's
/// duration, so every fill is at or above the floor (checked: `fills_below_floor`).
fn take_auctions(
    feed: &mut Feed,
    state: &mut RunState,
    book: &Book,
    ts: u64,
    next_ts: u64,
    delay_ms: u64,
) -> Result<()> {
    let mut takes = Vec::new();
    for (i, m) in book.markets.iter().enumerate() {
        let market = &feed.engine.markets()[m.index];
        let Some(auction) = market.auction.filter(|_| !market.frozen) else { continue };
        let duration_ms = market.params.auction_duration_ms;
        let answer = match state.answers[i] {
            Some((id, answer)) if id == auction.id => answer,
            _ => {
                let answer = state.congestion.answer(auction.start_ts, duration_ms, delay_ms);
                state.tally.window.count_answer(&state.congestion, auction.start_ts, answer);
                state.answers[i] = Some((auction.id, Some(answer)));
                Some(answer)
            }
        };
        let Some(Answer::TakeAt(take_ts)) = answer else { continue };
        if take_ts < ts || take_ts >= next_ts {
            continue;
        }
        assert!(take_ts < auction.start_ts + duration_ms, "a take past the auction's end");
        state.answers[i] = Some((auction.id, None)); // answered once
        let remaining = market.inventory.size.raw().saturating_abs();
        let response = state.predictive.as_ref().map_or(0.0, |p| p[i].maker_response_at(market.mark_price));
        let capacity = (m.backstop_capacity_base * (1.0 + response) * 1e8).floor() as i64;
        let size = Size::from_raw(remaining.min(capacity));
        let floor = market.mark_price.and_then(|mark| price_after(market, auction.selling, mark, duration_ms).ok());
        if size.is_positive() {
            let bidder = if auction.selling { MAKER_BUYER } else { MAKER_SELLER };
            takes.push((take_ts, auction.id, bidder, size, auction.selling, floor));
        }
    }
    takes.sort_by_key(|t| (t.0, t.1));
    for (take_ts, id, bidder, size, selling, floor) in takes {
        let line =
            format!(r#"{{"type":"auction_take","ts":{take_ts},"auction":"{id}","bidder":"{bidder}","size":"{size}"}}"#);
        let effects = feed.push(line);
        for e in effects {
            if let (EffectKind::AuctionFill { price, .. }, Some(floor)) = (&e.kind, floor) {
                let below = if selling { *price < floor } else { *price > floor };
                state.tally.window.fills_below_floor += u64::from(below);
            }
        }
        state.tally.absorb(effects, book, take_ts);
    }
    Ok(())
}

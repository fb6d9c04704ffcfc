//! Per-run figures: a tally of the engine's effects, per-step samples of the
//! book's margin, and the run's summary. Amounts are USDC (the settlement
//! asset), sizes base units, times seconds from the run's start.

use crate::book::Book;
use crate::driver::RUN_T0_MS;
use crate::population::{price_f64, quote_f64, size_f64};
use crate::scenario::Scenario;
use serde::Serialize;
use solvent_core::effect::EffectKind;
use solvent_core::{Effect, Engine};

/// The book sampled after a step's events.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepSample {
    /// Sum of the population's maintenance margin under the tables in force.
    pub mm_usdc: f64,
    /// The same positions' maintenance margin under the static tables.
    pub mm_static_usdc: f64,
    /// Sum of |size| x mark over the population.
    pub notional_usdc: f64,
    pub fund_usdc: f64,
    /// Mark of the primary (first) market.
    pub price: f64,
    /// The protocol's liquidation inventory: Σ |size| x mark over the fed markets.
    pub inventory_usdc: f64,
    /// Its mark-to-market loss: Σ max(0, cost - size x mark) over the fed markets.
    pub inventory_loss_usdc: f64,
    /// The protocol's net position: fund + inventory PnL at mark (every market) - bad debt.
    pub protocol_net_usdc: f64,
}

/// What happened inside a run's congestion window (measured in every run, congested
/// or not, so that the two are read side by side).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WindowStats {
    /// Largest inventory notional at a step inside the window.
    pub peak_inventory_usdc: f64,
    /// Largest mark-to-market loss of that inventory at a step inside the window.
    pub peak_inventory_loss_usdc: f64,
    /// Inventory notional x time inside the window, USDC x hours.
    pub inventory_usdc_h: f64,
    /// Auctions that started inside the window.
    pub auctions: u64,
    /// Of those, congested: nobody bid.
    pub no_bid_auctions: u64,
    /// Congested: answered late, inside the auction.
    pub late_takes: u64,
    /// Congested: the late answer would have landed after the auction's end.
    pub missed_takes: u64,
    /// Fills below the auction's floor at the live mark (every auction, not only in the window).
    pub fills_below_floor: u64,
}

impl WindowStats {
    /// A step inside the window that lasts `step_ms`.
    pub fn observe(&mut self, s: &StepSample, step_ms: u64) {
        self.peak_inventory_usdc = self.peak_inventory_usdc.max(s.inventory_usdc);
        self.peak_inventory_loss_usdc = self.peak_inventory_loss_usdc.max(s.inventory_loss_usdc);
        self.inventory_usdc_h += s.inventory_usdc * step_ms as f64 / 3_600_000.0;
    }

    /// The makers' answer to an auction that started at `start_ts`.
    pub fn count_answer(
        &mut self,
        c: &crate::congestion::Congestion,
        start_ts: u64,
        answer: crate::congestion::Answer,
    ) {
        use crate::congestion::Answer;
        if !c.in_window(start_ts) {
            return;
        }
        self.auctions += 1;
        match answer {
            Answer::NoBid => self.no_bid_auctions += 1,
            Answer::Missed => self.missed_takes += 1,
            Answer::TakeAt(_) if c.active && c.delay_ms > 0 => self.late_takes += 1,
            Answer::TakeAt(_) => {}
        }
    }
}

/// Liquidations in the primary market at one engine time, for charts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LiquidationMark {
    pub t_s: f64,
    pub price: f64,
    pub notional_usdc: f64,
}

/// Counters over a run's effects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub liquidations: u64,
    pub liquidated_notional_usdc: f64,
    /// Signed size liquidated per market since the last price move (+ = longs).
    pub pending_liquidated_base: Vec<f64>,
    pub bankruptcies: u64,
    /// Distinct accounts that went bankrupt (an account whose debt is backed by
    /// non-settlement collateral can go bankrupt again as that collateral falls).
    pub bankrupt_accounts: std::collections::BTreeSet<String>,
    pub bankruptcy_deficit_usdc: f64,
    pub fund_bankruptcy_cover_usdc: f64,
    pub fund_inventory_loss_usdc: f64,
    pub fund_inflow_usdc: f64,
    /// Deficits the fund did not cover (absorbed by ADL or socialized loss).
    pub uncovered_deficit_usdc: f64,
    pub adl_count: u64,
    pub adl_notional_usdc: f64,
    pub socialized_count: u64,
    pub socialized_usdc: f64,
    pub unabsorbed_alerts: u64,
    pub auctions_started: u64,
    pub auction_fills: u64,
    pub auction_filled_notional_usdc: f64,
    pub takes_refused: u64,
    pub oracle_freezes: u64,
    pub margin_changes: u64,
    pub marks: Option<Vec<LiquidationMark>>,
    pub window: WindowStats,
}

impl Tally {
    pub fn new(markets: usize, keep_marks: bool) -> Tally {
        Tally { pending_liquidated_base: vec![0.0; markets], marks: keep_marks.then(Vec::new), ..Tally::default() }
    }

    /// Counts `effects` of an event at engine time `ts`.
    pub fn absorb(&mut self, effects: &[Effect], book: &Book, ts: u64) {
        for effect in effects {
            self.absorb_one(&effect.kind, book, ts);
        }
    }

    fn absorb_one(&mut self, kind: &EffectKind, book: &Book, ts: u64) {
        match kind {
            EffectKind::Liquidation { market, closed_size, price, .. } => {
                let notional = size_f64(*closed_size).abs() * price_f64(*price);
                self.liquidations += 1;
                self.liquidated_notional_usdc += notional;
                if let Some(i) = book.markets.iter().position(|m| m.name == *market) {
                    self.pending_liquidated_base[i] += size_f64(*closed_size);
                    if let (0, Some(marks)) = (i, &mut self.marks) {
                        let t_s = ts.saturating_sub(RUN_T0_MS) as f64 / 1_000.0;
                        match marks.last_mut() {
                            // One mark per event time: the notional liquidated then, at the last price.
                            Some(last) if last.t_s == t_s => {
                                last.notional_usdc += notional;
                                last.price = price_f64(*price);
                            }
                            _ => marks.push(LiquidationMark { t_s, price: price_f64(*price), notional_usdc: notional }),
                        }
                    }
                }
            }
            EffectKind::Insurance { reason, amount, .. } => {
                let a = quote_f64(*amount);
                match (a < 0.0, reason.as_str()) {
                    (true, "bankruptcy_cover") => self.fund_bankruptcy_cover_usdc -= a,
                    (true, _) => self.fund_inventory_loss_usdc -= a,
                    (false, _) => self.fund_inflow_usdc += a,
                }
            }
            EffectKind::Bankruptcy { account, deficit, covered_by_fund } => {
                self.bankruptcies += 1;
                self.bankrupt_accounts.insert(account.clone());
                self.bankruptcy_deficit_usdc += quote_f64(*deficit);
                self.uncovered_deficit_usdc += quote_f64(*deficit) - quote_f64(*covered_by_fund);
            }
            EffectKind::Adl { size, price, .. } => {
                self.adl_count += 1;
                self.adl_notional_usdc += size_f64(*size).abs() * price_f64(*price);
            }
            EffectKind::SocializedLoss { amount, .. } => {
                self.socialized_count += 1;
                self.socialized_usdc += quote_f64(*amount);
            }
            EffectKind::Alert { alert, .. } if alert == "loss_unabsorbed" => self.unabsorbed_alerts += 1,
            EffectKind::AuctionStarted { .. } => self.auctions_started += 1,
            EffectKind::AuctionFill { size, price, .. } => {
                self.auction_fills += 1;
                self.auction_filled_notional_usdc += size_f64(*size) * price_f64(*price);
            }
            EffectKind::Rejected { .. } => self.takes_refused += 1,
            EffectKind::OracleFrozen { .. } => self.oracle_freezes += 1,
            _ => {}
        }
    }
}

/// The summary of one run (one scenario under one policy).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunMetrics {
    pub steps: u64,
    pub liquidations: u64,
    pub liquidated_notional_usdc: f64,
    pub bankruptcies: u64,
    pub bankrupt_accounts: u64,
    pub bankruptcy_deficit_usdc: f64,
    /// Gross outflow of the insurance fund: bankruptcy cover + inventory losses.
    pub fund_draw_usdc: f64,
    pub fund_bankruptcy_cover_usdc: f64,
    pub fund_inventory_loss_usdc: f64,
    pub fund_inflow_usdc: f64,
    pub fund_start_usdc: f64,
    pub fund_end_usdc: f64,
    pub fund_min_usdc: f64,
    pub bad_debt_end_usdc: f64,
    pub uncovered_deficit_usdc: f64,
    pub adl_count: u64,
    pub adl_notional_usdc: f64,
    pub socialized_count: u64,
    pub socialized_usdc: f64,
    pub unabsorbed_alerts: u64,
    pub auctions_started: u64,
    pub auction_fills: u64,
    pub auction_filled_notional_usdc: f64,
    pub takes_refused: u64,
    pub unsold_inventory_usdc: f64,
    pub oracle_freezes: u64,
    pub margin_changes: u64,
    pub avg_margin_usdc: f64,
    pub peak_margin_usdc: f64,
    /// Time-average of (sum of MM) / (sum of notional): the book's effective MM rate.
    pub avg_mm_rate: f64,
    pub calm_steps: u64,
    pub calm_avg_margin_usdc: f64,
    pub calm_avg_mm_rate: f64,
    /// Sum over steps of the book's MM under the tables in force / under the static tables.
    pub mm_sum_usdc: f64,
    pub mm_static_sum_usdc: f64,
    pub price_min: f64,
    pub price_end: f64,
    /// Jumps in the SVJD path (Monte Carlo runs).
    pub jump_count: Option<u32>,
    /// Largest fall of the scenario's own path within [`WORST_MOVE_WINDOW_MS`] (fraction).
    pub worst_move: f64,
    /// How long before that fall began the book's MM rate had been at least
    /// [`RAISED_RATIO`] x its calm-step mean without a break (0 when it was not).
    pub lead_time_s: f64,
    /// Whether margin was raised when the worst fall began.
    pub raised_before_worst: bool,
    /// The congestion window, seconds from the run's start (`None`: no window).
    pub window_s: Option<(f64, f64)>,
    /// What the protocol carried inside the window (see [`WindowStats`]).
    pub window_peak_inventory_usdc: f64,
    pub window_peak_inventory_loss_usdc: f64,
    pub window_inventory_usdc_h: f64,
    pub window_auctions: u64,
    pub no_bid_auctions: u64,
    pub late_takes: u64,
    pub missed_takes: u64,
    pub fills_below_floor: u64,
    /// Mark-to-market loss of the inventory still held after the last step.
    pub inventory_loss_end_usdc: f64,
    /// The protocol's net position (fund + inventory PnL at mark - bad debt) after the last
    /// step, and its lowest over the run's steps.
    pub protocol_net_end_usdc: f64,
    pub protocol_net_min_usdc: f64,
}

/// Window of the worst move the lead time is measured against.
pub const WORST_MOVE_WINDOW_MS: u64 = 15 * 60_000;
/// A book's MM rate counts as raised at this multiple of its calm mean.
pub const RAISED_RATIO: f64 = 1.05;

/// Start index and size of the largest fall of the scenario's own path within the window.
pub fn worst_move(scenario: &Scenario) -> (usize, f64) {
    let steps = &scenario.steps;
    let mut best = (0, 0.0);
    for (i, a) in steps.iter().enumerate() {
        for b in steps[i + 1..].iter().take_while(|b| b.offset_ms <= a.offset_ms + WORST_MOVE_WINDOW_MS) {
            let fall = 1.0 - b.price_factor / a.price_factor;
            if fall > best.1 {
                best = (i, fall);
            }
        }
    }
    best
}

/// Lead time (seconds) of a raised MM rate before step `start`, and whether it was raised.
fn lead_time(samples: &[StepSample], scenario: &Scenario, start: usize, calm_rate: f64) -> (f64, bool) {
    if start >= samples.len() || calm_rate <= 0.0 {
        return (0.0, false);
    }
    let raised = |s: &StepSample| rate(s) >= RAISED_RATIO * calm_rate;
    if !raised(&samples[start]) {
        return (0.0, false);
    }
    let mut first = start;
    while first > 0 && raised(&samples[first - 1]) {
        first -= 1;
    }
    let t = |k: usize| scenario.steps[k].offset_ms as f64 / 1_000.0;
    (t(start) - t(first), true)
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

fn rate(s: &StepSample) -> f64 {
    if s.notional_usdc > 0.0 {
        s.mm_usdc / s.notional_usdc
    } else {
        0.0
    }
}

impl RunMetrics {
    /// Summarizes a finished run.
    pub fn finish(t: &Tally, samples: &[StepSample], scenario: &Scenario, book: &Book, engine: &Engine) -> RunMetrics {
        let calm: Vec<&StepSample> = samples.iter().zip(&scenario.calm).filter(|(_, c)| **c).map(|(s, _)| s).collect();
        let unsold: f64 = book
            .markets
            .iter()
            .map(|m| {
                let market = &engine.markets()[m.index];
                size_f64(market.inventory.size).abs() * market.mark_price.map_or(0.0, price_f64)
            })
            .sum();
        let fund_start = quote_f64(book.engine.insurance_fund());
        let calm_rate = mean(calm.iter().map(|s| rate(s)));
        let (worst_start, worst) = worst_move(scenario);
        let (lead_time_s, raised_before_worst) = lead_time(samples, scenario, worst_start, calm_rate);
        RunMetrics {
            steps: samples.len() as u64,
            liquidations: t.liquidations,
            liquidated_notional_usdc: t.liquidated_notional_usdc,
            bankruptcies: t.bankruptcies,
            bankrupt_accounts: t.bankrupt_accounts.len() as u64,
            bankruptcy_deficit_usdc: t.bankruptcy_deficit_usdc,
            fund_draw_usdc: t.fund_bankruptcy_cover_usdc + t.fund_inventory_loss_usdc,
            fund_bankruptcy_cover_usdc: t.fund_bankruptcy_cover_usdc,
            fund_inventory_loss_usdc: t.fund_inventory_loss_usdc,
            fund_inflow_usdc: t.fund_inflow_usdc,
            fund_start_usdc: fund_start,
            fund_end_usdc: quote_f64(engine.insurance_fund()),
            fund_min_usdc: samples.iter().map(|s| s.fund_usdc).fold(fund_start, f64::min),
            bad_debt_end_usdc: quote_f64(engine.bad_debt()),
            uncovered_deficit_usdc: t.uncovered_deficit_usdc,
            adl_count: t.adl_count,
            adl_notional_usdc: t.adl_notional_usdc,
            socialized_count: t.socialized_count,
            socialized_usdc: t.socialized_usdc,
            unabsorbed_alerts: t.unabsorbed_alerts,
            auctions_started: t.auctions_started,
            auction_fills: t.auction_fills,
            auction_filled_notional_usdc: t.auction_filled_notional_usdc,
            takes_refused: t.takes_refused,
            unsold_inventory_usdc: unsold,
            oracle_freezes: t.oracle_freezes,
            margin_changes: t.margin_changes,
            avg_margin_usdc: mean(samples.iter().map(|s| s.mm_usdc)),
            peak_margin_usdc: samples.iter().map(|s| s.mm_usdc).fold(0.0, f64::max),
            avg_mm_rate: mean(samples.iter().map(rate)),
            calm_steps: calm.len() as u64,
            calm_avg_margin_usdc: mean(calm.iter().map(|s| s.mm_usdc)),
            calm_avg_mm_rate: mean(calm.iter().map(|s| rate(s))),
            mm_sum_usdc: samples.iter().map(|s| s.mm_usdc).sum(),
            mm_static_sum_usdc: samples.iter().map(|s| s.mm_static_usdc).sum(),
            price_min: samples.iter().map(|s| s.price).filter(|p| *p > 0.0).reduce(f64::min).unwrap_or(0.0),
            price_end: samples.last().map_or(0.0, |s| s.price),
            jump_count: scenario.jump_count,
            worst_move: worst,
            lead_time_s,
            raised_before_worst,
            window_s: None,
            window_peak_inventory_usdc: t.window.peak_inventory_usdc,
            window_peak_inventory_loss_usdc: t.window.peak_inventory_loss_usdc,
            window_inventory_usdc_h: t.window.inventory_usdc_h,
            window_auctions: t.window.auctions,
            no_bid_auctions: t.window.no_bid_auctions,
            late_takes: t.window.late_takes,
            missed_takes: t.window.missed_takes,
            fills_below_floor: t.window.fills_below_floor,
            inventory_loss_end_usdc: inventory_loss_end(book, engine),
            protocol_net_end_usdc: protocol_net(engine),
            protocol_net_min_usdc: samples.iter().map(|s| s.protocol_net_usdc).fold(protocol_net(engine), f64::min),
        }
    }
}

/// The protocol's net position in USDC (`Engine::protocol_net_position`; 0 on overflow, which
/// no simulated book reaches).
pub fn protocol_net(engine: &Engine) -> f64 {
    engine.protocol_net_position().map_or(0.0, quote_f64)
}

/// Mark-to-market loss of the inventory left after the run (0 for a gain).
fn inventory_loss_end(book: &Book, engine: &Engine) -> f64 {
    book.markets
        .iter()
        .map(|m| {
            let market = &engine.markets()[m.index];
            let pnl = market.mark_price.map_or(Ok(solvent_core::Quote::ZERO), |p| market.inventory.unrealized_pnl(p));
            (-pnl.map_or(0.0, quote_f64)).max(0.0)
        })
        .sum()
}

/// Per-step series of one run, for charts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Trace {
    pub t_s: Vec<f64>,
    pub price: Vec<f64>,
    pub fund_usdc: Vec<f64>,
    pub margin_usdc: Vec<f64>,
    /// The protocol's inventory notional after each step.
    pub inventory_usdc: Vec<f64>,
    pub liquidations: Vec<LiquidationMark>,
    /// Liquidation maps the predictive policy read (time, map), for the heat map.
    pub maps: Vec<(f64, solvent_models::cascade::LiquidationMap)>,
    /// What the predictive policy saw at each of its updates (time, view).
    pub views: Vec<(f64, crate::predictive::MarketView)>,
}

impl Trace {
    pub fn from_run(t: &Tally, samples: &[StepSample], scenario: &Scenario) -> Trace {
        Trace {
            t_s: scenario.steps.iter().map(|s| s.offset_ms as f64 / 1_000.0).collect(),
            price: samples.iter().map(|s| s.price).collect(),
            fund_usdc: samples.iter().map(|s| s.fund_usdc).collect(),
            margin_usdc: samples.iter().map(|s| s.mm_usdc).collect(),
            inventory_usdc: samples.iter().map(|s| s.inventory_usdc).collect(),
            liquidations: t.marks.clone().unwrap_or_default(),
            maps: Vec::new(),
            views: Vec::new(),
        }
    }
}

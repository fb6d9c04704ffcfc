//! The predictive margin policy: a regime forecast and the cascade model raise
//! margin ahead of moves, calm regimes run at the configured floors.
//!
//! Per market, every step the mark is live:
//! 1. the mark's log return feeds a two-state Hamilton filter
//!    (`solvent_models::regime`, fitted once per stress run by EM on simulated
//!    SVCJ returns of the lab's step); `p` = P(high regime at some step within
//!    the liquidation horizon);
//! 2. every `map_interval_ms` the engine's liquidation map of the market goes
//!    through the cascade model (`solvent_models::cascade`, square-root depth with
//!    the lab's V and the filter's volatility): the amplification of a
//!    `probe_shock` move down and up, and the cliff levels;
//! 3. stress score `s = max(ramp(p), ramp(amplification))` in [0, 1], and the
//!    table multiplier `k = calm_k + (storm_k - calm_k) s` on every static MM
//!    rate, quantized to `k_step` and never below the floors (`calm_k` x static,
//!    written into the configuration's `mm_floor_rate`);
//! 4. a changed `k` is sent as one `params` line: the new tiers, the IM add-on
//!    `im_addon_storm x s` (new exposure pays at once), `mm_phase_in_ms` (a raise
//!    reaches the existing book in bounded steps, never inside the announcing
//!    event), and in cliff ranges the concentration add-on, the open-interest cap
//!    and the makers' rebate. Lowering waits `lower_hold_ms` after the last raise
//!    and goes one `k_step` at a time (hysteresis).
//!
//! Only `params` lines reach the engine, so the core stays float-free and a
//! replay of the journal reproduces the state hash.

use crate::book::{params_line, MarketSetup};
use crate::error::{check, Result};
use serde::Serialize;
use serde_json::{json, Map};
use solvent_models::advisor::{format_rate_units, parse_rate_units, Tier};
use solvent_models::cascade::{cascade, cliffs, near_share, CascadeConfig, Depth, Direction, LiquidationMap};
use solvent_models::gap::ImpactModel;
use solvent_models::regime::{fit, RegimeFilter, RegimeParams};
use solvent_models::svjd::{simulate_path, SimConfig, SvjdParams};

/// Settings of the predictive policy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PredictiveSettings {
    /// Table multiplier in calm regimes (also the configured floor).
    pub calm_k: f64,
    /// Table multiplier at full stress score.
    pub storm_k: f64,
    /// Multipliers move in steps of this size.
    pub k_step: f64,
    /// Regime probability (within the horizon) at which the score starts / is 1.
    pub p_low: f64,
    pub p_high: f64,
    /// Amplification of the probe shock at which the score starts / is 1.
    pub amp_low: f64,
    pub amp_high: f64,
    /// Probe shock of the cascade model (fraction of the mark).
    pub probe_shock: f64,
    /// Liquidation horizon of the regime forecast, seconds.
    pub horizon_s: f64,
    /// How often the liquidation map is read and the cascade model run.
    pub map_interval_ms: u64,
    /// Phase-in of MM raises (0 = immediate).
    pub mm_phase_in_ms: u64,
    /// Largest raise of k in one update (a rate limit on top of the phase-in).
    pub max_raise_per_update: f64,
    /// No MM raise while the mark is this far below its high of the last
    /// `fall_window_ms` (a raise then would liquidate the book into the fall; the IM
    /// add-on still applies to new exposure).
    pub no_raise_drawdown: f64,
    pub fall_window_ms: u64,
    /// No lowering until this long after the last raise.
    pub lower_hold_ms: u64,
    /// IM add-on at full score.
    pub im_addon_storm: f64,
    /// Concentration add-on for positions liquidated inside a cliff range.
    pub concentration_addon: f64,
    /// Rebate offered to backstop makers for fills inside cliff ranges.
    pub incentive_rebate: f64,
    /// Assumed behaviour: makers answering the rebate add this fraction to their
    /// capacity for auctions inside a cliff range (0 = makers ignore incentives).
    pub maker_response: f64,
    /// Days of simulated SVCJ returns the EM fit uses.
    pub regime_fit_days: u32,
    pub regime_source: RegimeSource,
}

impl Default for PredictiveSettings {
    fn default() -> Self {
        PredictiveSettings {
            calm_k: 0.6,
            storm_k: 1.2,
            k_step: 0.1,
            p_low: 0.2,
            p_high: 0.8,
            amp_low: 1.2,
            amp_high: 2.0,
            probe_shock: 0.05,
            horizon_s: 900.0,
            map_interval_ms: 900_000,
            mm_phase_in_ms: 900_000,
            max_raise_per_update: 0.2,
            no_raise_drawdown: 0.03,
            fall_window_ms: 3_600_000,
            lower_hold_ms: 3_600_000,
            im_addon_storm: 0.05,
            concentration_addon: 0.05,
            incentive_rebate: 0.002,
            maker_response: 0.0,
            regime_fit_days: 90,
            regime_source: RegimeSource::SvcjImplied,
        }
    }
}

impl PredictiveSettings {
    /// Checks every setting's domain.
    pub fn validate(&self) -> Result<()> {
        let rate = |x: f64| x.is_finite() && (0.0..=1.0).contains(&x);
        check("predictive.calm_k", self.calm_k, self.calm_k.is_finite() && self.calm_k >= 0.1, "must be >= 0.1")?;
        check(
            "predictive.storm_k",
            self.storm_k,
            self.storm_k >= self.calm_k && self.storm_k <= 10.0,
            "must be in calm_k..=10",
        )?;
        check("predictive.k_step", self.k_step, self.k_step > 0.0 && self.k_step <= 1.0, "must be in (0, 1]")?;
        check(
            "predictive.p_high",
            self.p_high,
            rate(self.p_low) && rate(self.p_high) && self.p_high > self.p_low,
            "need 0 <= p_low < p_high <= 1",
        )?;
        check(
            "predictive.amp_high",
            self.amp_high,
            self.amp_low >= 1.0 && self.amp_high > self.amp_low,
            "need 1 <= amp_low < amp_high",
        )?;
        check(
            "predictive.probe_shock",
            self.probe_shock,
            self.probe_shock > 0.0 && self.probe_shock < 0.5,
            "must be in (0, 0.5)",
        )?;
        check(
            "predictive.horizon_s",
            self.horizon_s,
            self.horizon_s.is_finite() && self.horizon_s > 0.0,
            "must be > 0",
        )?;
        check("predictive.map_interval_ms", self.map_interval_ms, self.map_interval_ms >= 1_000, "must be >= 1,000")?;
        check("predictive.mm_phase_in_ms", self.mm_phase_in_ms, self.mm_phase_in_ms <= 86_400_000, "at most a day")?;
        for (name, x) in [
            ("predictive.im_addon_storm", self.im_addon_storm),
            ("predictive.concentration_addon", self.concentration_addon),
            ("predictive.incentive_rebate", self.incentive_rebate),
        ] {
            check(name, x, rate(x), "must be in [0, 1]")?;
        }
        let drawdown = self.no_raise_drawdown;
        check("predictive.no_raise_drawdown", drawdown, drawdown > 0.0 && drawdown <= 1.0, "must be in (0, 1]")?;
        let window = self.fall_window_ms;
        check("predictive.fall_window_ms", window, (60_000..=86_400_000).contains(&window), "must be 1 min..=1 day")?;
        let raise = self.max_raise_per_update;
        check("predictive.max_raise_per_update", raise, raise > 0.0 && raise <= 10.0, "must be in (0, 10]")?;
        let response = self.maker_response;
        check(
            "predictive.maker_response",
            response,
            response.is_finite() && (0.0..=10.0).contains(&response),
            "must be in [0, 10]",
        )?;
        let days = self.regime_fit_days;
        check("predictive.regime_fit_days", days, (2..=3_650).contains(&days), "must be in 2..=3,650")?;
        Ok(())
    }
}

/// The fitted regime model and the settings, built once per stress run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictiveModel {
    pub settings: PredictiveSettings,
    /// The regime model the policy filters with.
    pub regime: RegimeParams,
    /// Step of the returns the regime model was fitted on, seconds.
    pub step_s: u64,
    /// EM iterations (0 when the parameters are implied by the SVCJ model).
    pub fit_iterations: usize,
}

/// Winsorizing bound of the fit's returns, in sample standard deviations: a
/// jump return is one event, not a regime; the filter sees the same bound.
pub const WINSOR_SD: f64 = 5.0;

impl PredictiveModel {
    /// The regime model of `settings.regime_source` at the lab's step `step_s`.
    pub fn new(settings: PredictiveSettings, step_s: u64, seed: u64) -> Result<Self> {
        let params = SvjdParams::btc_default();
        let (regime, fit_iterations) = match settings.regime_source {
            RegimeSource::Fitted => em_fit(&params, settings.regime_fit_days, step_s, seed)?,
            RegimeSource::SvcjImplied => (svcj_implied(&params, step_s), 0),
        };
        Ok(PredictiveModel { settings, regime, step_s, fit_iterations })
    }

    /// Horizon of the forecast in steps of the fitted model.
    fn horizon_steps(&self) -> u32 {
        ((self.settings.horizon_s / self.step_s as f64).round() as u32).max(1)
    }
}

/// Where the regime model's parameters come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegimeSource {
    /// EM on `regime_fit_days` of simulated SVCJ returns, winsorized at [`WINSOR_SD`]:
    /// separates the model's quiet diffusive state from its mean level.
    Fitted,
    /// The two states the SVCJ model moves between: low = its long-run diffusive
    /// variance, high = that plus the mean variance jump; leaving low at the jump
    /// intensity, leaving high at the variance's mean-reversion speed.
    SvcjImplied,
}

/// EM fit on `days` of simulated SVCJ returns of `step_s` (stream `1 << 41` of the seed).
fn em_fit(params: &SvjdParams, days: u32, step_s: u64, seed: u64) -> Result<(RegimeParams, usize)> {
    let steps = (days as u64 * 86_400 / step_s.max(1)) as usize;
    let config = SimConfig { horizon_s: (steps as u64 * step_s) as f64, steps, seed };
    let path = simulate_path(params, 1.0, params.long_run_variance(), &config, 1 << 41)?;
    let returns: Vec<f64> = path.prices.windows(2).map(|w| (w[1] / w[0]).ln()).collect();
    let bound = WINSOR_SD * sd(&returns);
    let clipped: Vec<f64> = returns.iter().map(|r| r.clamp(-bound, bound)).collect();
    let fitted = fit(&clipped, 500, 1e-6)?;
    Ok((fitted.params, fitted.iterations))
}

/// The SVCJ model's two states at `step_s` (see [`RegimeSource::SvcjImplied`]).
pub fn svcj_implied(p: &SvjdParams, step_s: u64) -> RegimeParams {
    let dt = step_s as f64 / solvent_models::SECONDS_PER_YEAR;
    let low = p.long_run_variance();
    RegimeParams {
        sigma_low: (low * dt).sqrt(),
        sigma_high: ((low + p.mu_v_annual_var.max(low)) * dt).sqrt(),
        p_stay_low: (-p.lambda_per_year * dt).exp(),
        p_stay_high: (-p.kappa_per_year * dt).exp(),
    }
}

fn sd(values: &[f64]) -> f64 {
    (values.iter().map(|r| r * r).sum::<f64>() / values.len().max(1) as f64).sqrt()
}

fn ramp(x: f64, lo: f64, hi: f64) -> f64 {
    ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
}

/// What the policy last measured in one market (for metrics and the report).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct MarketView {
    pub prob_high: f64,
    pub amplification_down: f64,
    pub amplification_up: f64,
    /// Share of the down side's notional within 2 probe shocks of the mark.
    pub concentration_down: f64,
    pub score: f64,
    pub k: f64,
}

/// The policy's state in one market.
#[derive(Debug, Clone)]
pub struct PredictiveMarket {
    model: PredictiveModel,
    market: String,
    static_tiers: Vec<Tier>,
    /// V of the square-root law in quote units per day, at the reference price.
    depth_quote_per_day: f64,
    filter: RegimeFilter,
    last: Option<(u64, f64)>,
    /// Marks of the last `fall_window_ms` (at most [`MAX_RECENT`]).
    recent: std::collections::VecDeque<(u64, f64)>,
    last_map_ms: Option<u64>,
    last_raise_ms: Option<u64>,
    /// Cliff ranges (from, to) of the last map.
    pub cliffs: Vec<(f64, f64)>,
    pub view: MarketView,
}

/// Bound of the recent-marks window.
pub const MAX_RECENT: usize = 10_000;

/// A `params` line the policy wants applied.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyUpdate {
    pub line: String,
    pub raised: bool,
}

impl PredictiveMarket {
    pub fn new(model: &PredictiveModel, market: &MarketSetup) -> Result<Self> {
        Ok(PredictiveMarket {
            model: model.clone(),
            market: market.name.clone(),
            static_tiers: market.static_tiers.clone(),
            depth_quote_per_day: market.depth_base_per_day * market.reference_price,
            filter: RegimeFilter::new(model.regime)?,
            last: None,
            recent: std::collections::VecDeque::new(),
            last_map_ms: None,
            last_raise_ms: None,
            cliffs: Vec::new(),
            view: MarketView { k: 1.0, amplification_down: 1.0, amplification_up: 1.0, ..MarketView::default() },
        })
    }

    /// Whether the map should be read at `ts` (the caller reads it, then calls
    /// [`PredictiveMarket::on_map`]).
    pub fn wants_map(&self, ts: u64) -> bool {
        self.last_map_ms.is_none_or(|t| ts >= t + self.model.settings.map_interval_ms)
    }

    /// Runs the cascade model on a fresh liquidation map.
    pub fn on_map(&mut self, ts: u64, map: &LiquidationMap) -> Result<()> {
        self.last_map_ms = Some(ts);
        let s = &self.model.settings;
        let sigma_daily = self.filter.next_step_vol() * (86_400.0 / self.model.step_s as f64).sqrt();
        let depth = Depth::SquareRoot(ImpactModel::new(1.0, sigma_daily, self.depth_quote_per_day.max(1.0))?);
        let config = CascadeConfig::default();
        let probe = |d| cascade(map, &depth, d, s.probe_shock, &config).map(|c| c.amplification);
        self.view.amplification_down = if map.down.is_empty() { 1.0 } else { probe(Direction::Down)? };
        self.view.amplification_up = if map.up.is_empty() { 1.0 } else { probe(Direction::Up)? };
        self.view.concentration_down = near_share(map, Direction::Down, 2.0 * s.probe_shock);
        let (_, found) = cliffs(map, &depth, Direction::Down, 0.005, 0.3, 0.02)?;
        self.cliffs = found
            .iter()
            .take(16)
            .map(|c| (c.final_price.min(c.trigger_price), c.trigger_price.max(c.final_price)))
            .collect();
        Ok(())
    }

    /// Takes the mark at `ts`; returns the `params` line when the table changes.
    pub fn on_price(&mut self, ts: u64, mark: f64, open_interest: f64) -> Result<Option<PolicyUpdate>> {
        let step_ms = self.model.step_s * 1_000;
        if let Some((t0, p0)) = self.last {
            if ts < t0 + step_ms {
                return Ok(None);
            }
            let gaps = ((ts - t0) / step_ms).max(1) as f64;
            let r = (mark / p0).ln() / gaps.sqrt();
            let bound = WINSOR_SD * self.model.regime.sigma_high;
            self.filter.update(r.clamp(-bound, bound));
        }
        self.last = Some((ts, mark));
        let s = self.model.settings;
        self.recent.push_back((ts, mark));
        while self.recent.len() > MAX_RECENT || self.recent.front().is_some_and(|(t, _)| *t + s.fall_window_ms < ts) {
            self.recent.pop_front();
        }
        let high = self.recent.iter().map(|(_, p)| *p).fold(mark, f64::max);
        let falling = mark < (1.0 - s.no_raise_drawdown) * high;
        let p = self.filter.prob_high_within(self.model.horizon_steps());
        let amp = self.view.amplification_down.max(self.view.amplification_up);
        let score = ramp(p, s.p_low, s.p_high).max(ramp(amp, s.amp_low, s.amp_high));
        self.view.prob_high = p;
        self.view.score = score;
        let target = quantize(s.calm_k + (s.storm_k - s.calm_k) * score, s.k_step).max(s.calm_k);
        let current = self.view.k;
        let next = if target > current + 1e-9 && falling {
            current
        } else if target > current + 1e-9 {
            target.min(current + s.max_raise_per_update)
        } else if target < current - 1e-9 && self.last_raise_ms.is_none_or(|t| ts >= t + s.lower_hold_ms) {
            (current - s.k_step).max(target)
        } else {
            current
        };
        if (next - current).abs() < 1e-9 {
            return Ok(None);
        }
        let raised = next > current;
        if raised {
            self.last_raise_ms = Some(ts);
        }
        self.view.k = next;
        Ok(Some(PolicyUpdate { line: self.line(ts, next, score, open_interest)?, raised }))
    }

    /// Assumed behaviour: the extra capacity fraction makers bring to an auction
    /// at `mark` while a rebate is offered for the cliff range holding it.
    pub fn maker_response_at(&self, mark: Option<solvent_core::Price>) -> f64 {
        let s = &self.model.settings;
        let Some(mark) = mark.map(crate::population::price_f64) else { return 0.0 };
        let offered = self.view.score > 0.0 && s.incentive_rebate > 0.0 && !LEGACY_CORE;
        if offered && self.cliffs.iter().any(|(lo, hi)| (*lo..=*hi).contains(&mark)) {
            s.maker_response
        } else {
            0.0
        }
    }

    fn line(&self, ts: u64, k: f64, score: f64, open_interest: f64) -> Result<String> {
        let s = &self.model.settings;
        let tiers = multiplied(&self.static_tiers, k)?;
        let mut fields = Map::new();
        fields.insert("tiers".into(), serde_json::to_value(&tiers).unwrap_or_default());
        if !LEGACY_CORE {
            fields.insert("mm_phase_in_ms".into(), json!(s.mm_phase_in_ms));
            fields.insert("im_addon_rate".into(), json!(rate_string(s.im_addon_storm * score)));
        }
        let cliffs: Vec<_> = if score > 0.0 { self.cliffs.clone() } else { Vec::new() };
        let ranges: Vec<_> =
            cliffs.iter().map(|(lo, hi)| json!({"from": price_string(*lo), "to": price_string(*hi)})).collect();
        let in_cliffs = !ranges.is_empty();
        if LEGACY_CORE {
            return Ok(params_line(ts, &self.market, fields));
        }
        fields.insert("cliff_ranges".into(), json!(ranges));
        fields.insert(
            "concentration_addon_rate".into(),
            json!(rate_string(if in_cliffs { s.concentration_addon } else { 0.0 })),
        );
        fields.insert(
            "incentive_rebate_rate".into(),
            json!(rate_string(if in_cliffs { s.incentive_rebate } else { 0.0 })),
        );
        // Open interest may not grow by more than (1 - score) x 20% while stressed.
        if score > 0.0 && open_interest > 0.0 {
            let cap = open_interest * (1.0 + 0.2 * (1.0 - score)) * 1.000_001;
            fields.insert("oi_cap".into(), json!(format!("{:.8}", cap)));
        }
        Ok(params_line(ts, &self.market, fields))
    }
}

/// Whether the core accepts the predictive market parameters (`mm_phase_in_ms`,
/// `im_addon_rate`, cliff ranges, add-ons, caps, rebates); without them the policy
/// sends its tables only, and raises are rate-limited by `max_raise_per_update`.
const LEGACY_CORE: bool = false;

fn quantize(k: f64, step: f64) -> f64 {
    (k / step).round() * step
}

/// A rate as a decimal string with at most 8 decimals, rounded up.
fn rate_string(rate: f64) -> String {
    format_rate_units((rate.clamp(0.0, 1.0) * 1e8).ceil() as u64)
}

fn price_string(price: f64) -> String {
    format!("{:.4}", price.max(0.0))
}

/// `tiers` with every MM rate x `k` (rounded up to 8 decimals, capped at 1; `k`
/// below 1 lowers the table: the configuration's floors must allow it).
pub fn multiplied(tiers: &[Tier], k: f64) -> Result<Vec<Tier>> {
    let k = if k.is_finite() && k > 0.0 { k } else { 1.0 };
    tiers
        .iter()
        .map(|t| {
            let units = parse_rate_units(&t.mm_rate)?;
            let scaled = ((units as f64 * k - 1e-6).ceil() as u64).clamp(1, 100_000_000);
            Ok(Tier { mm_rate: format_rate_units(scaled), ..t.clone() })
        })
        .collect()
}

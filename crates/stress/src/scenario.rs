//! Scenarios: price paths relative to the book's reference prices.
//!
//! Every scenario is a list of steps (offset from the run's start, price factor
//! relative to the start, daily volatility for the impact law, whether the oracle
//! reports). Every fed market follows the same factor (a market-wide move).
//!
//! - historical: the Black Thursday minute path of `solvent_models::scenario`
//!   (synthetic between published anchors), closes every `stride` minutes;
//! - shocks: an hour of calm minutes, a fall of 10%, 30% or 50% spread over six
//!   10-second steps, an hour of calm minutes at the new level;
//! - frozen-oracle gap: an hour of calm minutes, then the sources go silent for
//!   25 minutes (past `max_age`: the market freezes) while the price falls 30%,
//!   and they come back at the gapped price (thaw), then an hour of calm;
//! - Monte Carlo: SVJD paths (`solvent_models::svjd::simulate_path`, the BTC
//!   default parameters, stream = path index of the run's seed).

use crate::error::Result;
use crate::rng::{stream_rng, STREAM_SHOCKS};
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;
use solvent_models::svjd::{simulate_path, SimConfig, SvjdParams};
use solvent_models::SECONDS_PER_YEAR;

/// Steps of the trailing window of the calm test.
pub const CALM_WINDOW_STEPS: usize = 30;
const MINUTE_MS: u64 = 60_000;
/// Calm minutes before and after a shock.
pub const CALM_MINUTES: u64 = 60;
/// Sub-steps of the shock minute (10 s each).
pub const SHOCK_SUBSTEPS: u64 = 6;
/// Length of the oracle outage of the gap scenario (as BitMEX's on 13 March 2020).
pub const OUTAGE_MINUTES: u64 = 25;
/// Fall across the outage.
pub const GAP_FALL: f64 = 0.30;

/// The scenario family, for grouping in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScenarioSet {
    Historical,
    Shock,
    MonteCarlo,
    /// A user's path (`--scenario FILE`).
    File,
}

/// One step of a scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub offset_ms: u64,
    /// Price relative to the start (before liquidation impact).
    pub price_factor: f64,
    /// Daily volatility (fraction) used by the impact law at this step.
    pub sigma_daily: f64,
    /// Whether the oracle sources report at this step.
    pub oracle_live: bool,
}

/// A price path to run a book through.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub set: ScenarioSet,
    /// The regular step (the advisor samples on this grid; `max_age` is 2.5 x it).
    pub base_step_ms: u64,
    pub steps: Vec<Step>,
    /// Calm steps: trailing realized volatility at or below the scenario's median.
    pub calm: Vec<bool>,
    pub jump_count: Option<u32>,
}

/// Daily volatility of the model's long-run total variance (diffusion and jumps).
pub fn long_run_sigma_daily() -> f64 {
    (SvjdParams::btc_default().long_run_total_variance() / 365.0).sqrt()
}

fn finish(name: String, set: ScenarioSet, base_step_ms: u64, steps: Vec<Step>, jumps: Option<u32>) -> Scenario {
    let calm = calm_mask(&steps);
    Scenario { name, set, base_step_ms, steps, calm, jump_count: jumps }
}

/// A user's path (see `scenario_file`), with its calm mask.
pub(crate) fn finish_user(name: String, base_step_ms: u64, steps: Vec<Step>) -> Scenario {
    finish(name, ScenarioSet::File, base_step_ms, steps, None)
}

/// Trailing realized variance per second over [`CALM_WINDOW_STEPS`] steps, from
/// the exogenous path (so the mask is the same under every policy); a step is calm
/// when it is at or below the median over the scenario.
pub fn calm_mask(steps: &[Step]) -> Vec<bool> {
    let mut rates = Vec::with_capacity(steps.len());
    for k in 0..steps.len() {
        let lo = k.saturating_sub(CALM_WINDOW_STEPS);
        let (mut sq, mut dt) = (0.0, 0.0);
        for j in lo + 1..=k {
            let r = (steps[j].price_factor / steps[j - 1].price_factor).ln();
            sq += r * r;
            dt += (steps[j].offset_ms - steps[j - 1].offset_ms) as f64;
        }
        rates.push(if dt > 0.0 { sq / dt } else { 0.0 });
    }
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len().saturating_sub(1) / 2).copied().unwrap_or(0.0);
    rates.iter().map(|r| *r <= median).collect()
}

/// The Black Thursday minute path, every `stride_min`-th close.
pub fn historical(stride_min: usize) -> Result<Scenario> {
    let bt = solvent_models::scenario::black_thursday()?;
    let open = bt.candles[0].open;
    let sigma = long_run_sigma_daily();
    let step = |offset_ms: u64, price: f64| Step {
        offset_ms,
        price_factor: price / open,
        sigma_daily: sigma,
        oracle_live: true,
    };
    let mut steps = vec![step(0, open)];
    for (j, c) in bt.candles.iter().enumerate().skip(stride_min - 1).step_by(stride_min) {
        steps.push(step((j as u64 + 1) * MINUTE_MS, c.close));
    }
    let name = "black_thursday_2020".to_string();
    Ok(finish(name, ScenarioSet::Historical, stride_min as u64 * MINUTE_MS, steps, None))
}

/// Calm minutes with the model's diffusive long-run volatility, from `offset_ms`.
fn calm_minutes(steps: &mut Vec<Step>, rng: &mut impl rand::Rng, minutes: u64, live: bool) {
    let diffusive_per_min = (SvjdParams::btc_default().long_run_variance() * 60.0 / SECONDS_PER_YEAR).sqrt();
    let sigma = long_run_sigma_daily();
    for _ in 0..minutes {
        let last =
            *steps.last().unwrap_or(&Step { offset_ms: 0, price_factor: 1.0, sigma_daily: sigma, oracle_live: true });
        let z: f64 = StandardNormal.sample(rng);
        let factor = last.price_factor * (diffusive_per_min * z).exp();
        steps.push(Step {
            offset_ms: last.offset_ms + MINUTE_MS,
            price_factor: factor,
            sigma_daily: sigma,
            oracle_live: live,
        });
    }
}

/// A fall of `fall` (0.3 = -30%) within one minute, between calm hours.
pub fn shock(fall: f64, seed: u64, index: u64) -> Scenario {
    let mut rng = stream_rng(seed, STREAM_SHOCKS + index);
    let sigma = long_run_sigma_daily();
    let mut steps = vec![Step { offset_ms: 0, price_factor: 1.0, sigma_daily: sigma, oracle_live: true }];
    calm_minutes(&mut steps, &mut rng, CALM_MINUTES, true);
    let start = *steps.last().unwrap_or(&steps[0]);
    for j in 1..=SHOCK_SUBSTEPS {
        let f = j as f64 / SHOCK_SUBSTEPS as f64;
        let factor = start.price_factor * (1.0 - fall).powf(f);
        steps.push(Step { offset_ms: start.offset_ms + j * 10_000, price_factor: factor, ..start });
    }
    calm_minutes(&mut steps, &mut rng, CALM_MINUTES, true);
    let name = format!("shock_minus_{:.0}pct_1min", fall * 100.0);
    finish(name, ScenarioSet::Shock, MINUTE_MS, steps, None)
}

/// The sources go silent for [`OUTAGE_MINUTES`] while the price falls [`GAP_FALL`],
/// then report the gapped price.
pub fn frozen_gap(seed: u64, index: u64) -> Scenario {
    let mut rng = stream_rng(seed, STREAM_SHOCKS + index);
    let sigma = long_run_sigma_daily();
    let mut steps = vec![Step { offset_ms: 0, price_factor: 1.0, sigma_daily: sigma, oracle_live: true }];
    calm_minutes(&mut steps, &mut rng, CALM_MINUTES, true);
    let start = *steps.last().unwrap_or(&steps[0]);
    for j in 1..=OUTAGE_MINUTES {
        let f = j as f64 / OUTAGE_MINUTES as f64;
        let live = j == OUTAGE_MINUTES;
        let factor = start.price_factor * (1.0 - GAP_FALL).powf(f);
        steps.push(Step {
            offset_ms: start.offset_ms + j * MINUTE_MS,
            price_factor: factor,
            oracle_live: live,
            ..start
        });
    }
    calm_minutes(&mut steps, &mut rng, CALM_MINUTES, true);
    let name = format!("frozen_oracle_gap_minus_{:.0}pct_{OUTAGE_MINUTES}min", GAP_FALL * 100.0);
    finish(name, ScenarioSet::Shock, MINUTE_MS, steps, None)
}

/// The fixed shocks: -10%, -30%, -50% within a minute, and the frozen-oracle gap.
pub fn fixed_shocks(seed: u64) -> Vec<Scenario> {
    vec![shock(0.10, seed, 0), shock(0.30, seed, 1), shock(0.50, seed, 2), frozen_gap(seed, 3)]
}

/// Monte Carlo path `index` of the run's seed: SVJD with the BTC defaults from
/// variance `v0_annual_var`, `steps` steps of `step_s`.
pub fn monte_carlo(seed: u64, index: u64, v0_annual_var: f64, steps: usize, step_s: u64) -> Result<Scenario> {
    let params = SvjdParams::btc_default();
    let config = SimConfig { horizon_s: (steps as u64 * step_s) as f64, steps, seed };
    let path = simulate_path(&params, 1.0, v0_annual_var, &config, index)?;
    let step_ms = step_s * 1_000;
    let steps = path
        .prices
        .iter()
        .zip(&path.variances)
        .enumerate()
        .map(|(k, (p, v))| Step {
            offset_ms: k as u64 * step_ms,
            price_factor: *p,
            sigma_daily: (v.max(0.0) / 365.0).sqrt(),
            oracle_live: true,
        })
        .collect();
    Ok(finish(format!("svjd_path_{index}"), ScenarioSet::MonteCarlo, step_ms, steps, Some(path.jump_count)))
}

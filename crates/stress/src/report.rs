//! The report: figures with names and units per scenario and policy, Monte Carlo
//! aggregates, the dynamic-versus-static comparison; JSON and a terminal table.

use crate::error::{Result, StressError};
use crate::metrics::{RunMetrics, Trace};
use crate::policy::PolicyKind;
use crate::scenario::ScenarioSet;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use std::path::Path;

/// A number and its unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Figure {
    pub value: f64,
    pub unit: &'static str,
}

/// Named figures in a fixed order, serialized as a JSON object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures(pub Vec<(&'static str, Figure)>);

impl Figures {
    fn add(&mut self, name: &'static str, value: f64, unit: &'static str) {
        self.0.push((name, Figure { value, unit }));
    }

    /// The value of a named figure.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, f)| f.value)
    }
}

impl Serialize for Figures {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, figure) in &self.0 {
            map.serialize_entry(name, figure)?;
        }
        map.end()
    }
}

pub const USDC: &str = "USDC";
pub const COUNT: &str = "count";
pub const FRACTION: &str = "fraction";
pub const USDC_HOURS: &str = "USDC x hours";

/// The figures of one run.
pub fn run_figures(m: &RunMetrics) -> Figures {
    let mut f = Figures::default();
    f.add("fund_draw", m.fund_draw_usdc, USDC);
    f.add("fund_bankruptcy_cover", m.fund_bankruptcy_cover_usdc, USDC);
    f.add("fund_inventory_loss", m.fund_inventory_loss_usdc, USDC);
    f.add("fund_inflow", m.fund_inflow_usdc, USDC);
    f.add("fund_start", m.fund_start_usdc, USDC);
    f.add("fund_end", m.fund_end_usdc, USDC);
    f.add("fund_min", m.fund_min_usdc, USDC);
    f.add("socialized_loss", m.socialized_usdc, USDC);
    f.add("socialized_loss_events", m.socialized_count as f64, COUNT);
    f.add("uncovered_deficit", m.uncovered_deficit_usdc, USDC);
    f.add("bad_debt_end", m.bad_debt_end_usdc, USDC);
    f.add("adl_count", m.adl_count as f64, COUNT);
    f.add("adl_notional", m.adl_notional_usdc, USDC);
    f.add("bankruptcies", m.bankruptcies as f64, COUNT);
    f.add("bankrupt_accounts", m.bankrupt_accounts as f64, COUNT);
    f.add("bankruptcy_deficit", m.bankruptcy_deficit_usdc, USDC);
    f.add("liquidations", m.liquidations as f64, COUNT);
    f.add("liquidated_notional", m.liquidated_notional_usdc, USDC);
    f.add("auction_filled_notional", m.auction_filled_notional_usdc, USDC);
    f.add("takes_refused", m.takes_refused as f64, COUNT);
    f.add("unsold_inventory_end", m.unsold_inventory_usdc, USDC);
    f.add("protocol_net_end", m.protocol_net_end_usdc, USDC);
    f.add("protocol_net_min", m.protocol_net_min_usdc, USDC);
    f.add("avg_margin", m.avg_margin_usdc, USDC);
    f.add("peak_margin", m.peak_margin_usdc, USDC);
    f.add("avg_mm_rate", m.avg_mm_rate, FRACTION);
    f.add("calm_avg_margin", m.calm_avg_margin_usdc, USDC);
    f.add("calm_avg_mm_rate", m.calm_avg_mm_rate, FRACTION);
    f.add("margin_changes", m.margin_changes as f64, COUNT);
    f.add("oracle_freezes", m.oracle_freezes as f64, COUNT);
    f.add("price_min", m.price_min, "USDC per base unit");
    f.add("worst_move_15min", m.worst_move, FRACTION);
    f.add("lead_time", m.lead_time_s, "s");
    f.add("raised_before_worst_move", if m.raised_before_worst { 1.0 } else { 0.0 }, COUNT);
    f.add("steps", m.steps as f64, COUNT);
    f
}

fn mean(runs: &[RunMetrics], f: impl Fn(&RunMetrics) -> f64) -> f64 {
    if runs.is_empty() {
        return 0.0;
    }
    runs.iter().map(f).sum::<f64>() / runs.len() as f64
}

fn share(runs: &[RunMetrics], f: impl Fn(&RunMetrics) -> bool) -> f64 {
    if runs.is_empty() {
        return 0.0;
    }
    runs.iter().filter(|r| f(r)).count() as f64 / runs.len() as f64
}

/// Nearest-rank quantile of `values` (0 for an empty slice).
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Aggregates of many runs of one policy (the Monte Carlo set).
pub fn aggregate_figures(runs: &[RunMetrics]) -> Figures {
    let draws: Vec<f64> = runs.iter().map(|r| r.fund_draw_usdc).collect();
    let with_social: Vec<RunMetrics> = runs.iter().filter(|r| r.socialized_count > 0).cloned().collect();
    let jumpy: Vec<RunMetrics> = runs.iter().filter(|r| r.jump_count.unwrap_or(0) > 0).cloned().collect();
    let mut f = Figures::default();
    f.add("paths", runs.len() as f64, COUNT);
    f.add("socialized_loss_probability", share(runs, |r| r.socialized_count > 0), FRACTION);
    f.add("socialized_loss_mean", mean(runs, |r| r.socialized_usdc), USDC);
    f.add("socialized_loss_mean_given_any", mean(&with_social, |r| r.socialized_usdc), USDC);
    f.add("socialized_loss_max", runs.iter().map(|r| r.socialized_usdc).fold(0.0, f64::max), USDC);
    f.add("fund_draw_mean", mean(runs, |r| r.fund_draw_usdc), USDC);
    f.add("fund_draw_p50", quantile(&draws, 0.50), USDC);
    f.add("fund_draw_p95", quantile(&draws, 0.95), USDC);
    f.add("fund_draw_p99", quantile(&draws, 0.99), USDC);
    f.add("fund_draw_max", draws.iter().copied().fold(0.0, f64::max), USDC);
    f.add("fund_bankruptcy_cover_mean", mean(runs, |r| r.fund_bankruptcy_cover_usdc), USDC);
    f.add("fund_net_change_mean", mean(runs, |r| r.fund_end_usdc - r.fund_start_usdc), USDC);
    f.add("fund_draw_mean_paths_with_jumps", mean(&jumpy, |r| r.fund_draw_usdc), USDC);
    f.add("paths_with_jumps", jumpy.len() as f64, COUNT);
    f.add("uncovered_deficit_probability", share(runs, |r| r.uncovered_deficit_usdc > 0.0), FRACTION);
    f.add("uncovered_deficit_mean", mean(runs, |r| r.uncovered_deficit_usdc), USDC);
    f.add("bankruptcy_probability", share(runs, |r| r.bankruptcies > 0), FRACTION);
    f.add("bankrupt_accounts_mean", mean(runs, |r| r.bankrupt_accounts as f64), COUNT);
    f.add("adl_probability", share(runs, |r| r.adl_count > 0), FRACTION);
    f.add("adl_count_mean", mean(runs, |r| r.adl_count as f64), COUNT);
    f.add("adl_count_total", runs.iter().map(|r| r.adl_count as f64).sum(), COUNT);
    f.add("liquidations_mean", mean(runs, |r| r.liquidations as f64), COUNT);
    f.add("liquidated_notional_mean", mean(runs, |r| r.liquidated_notional_usdc), USDC);
    f.add("unsold_inventory_end_mean", mean(runs, |r| r.unsold_inventory_usdc), USDC);
    f.add("protocol_net_end_mean", mean(runs, |r| r.protocol_net_end_usdc), USDC);
    f.add("protocol_net_min_mean", mean(runs, |r| r.protocol_net_min_usdc), USDC);
    f.add("protocol_insolvent_probability", share(runs, |r| r.protocol_net_min_usdc < 0.0), FRACTION);
    f.add("takes_refused_mean", mean(runs, |r| r.takes_refused as f64), COUNT);
    f.add("avg_margin_mean", mean(runs, |r| r.avg_margin_usdc), USDC);
    f.add("peak_margin_mean", mean(runs, |r| r.peak_margin_usdc), USDC);
    f.add("peak_margin_max", runs.iter().map(|r| r.peak_margin_usdc).fold(0.0, f64::max), USDC);
    f.add("avg_mm_rate_mean", mean(runs, |r| r.avg_mm_rate), FRACTION);
    f.add("calm_avg_margin_mean", mean(runs, |r| r.calm_avg_margin_usdc), USDC);
    f.add("calm_avg_mm_rate_mean", mean(runs, |r| r.calm_avg_mm_rate), FRACTION);
    f.add("margin_changes_mean", mean(runs, |r| r.margin_changes as f64), COUNT);
    f.add("margin_changes_total", runs.iter().map(|r| r.margin_changes as f64).sum(), COUNT);
    f.add("raised_before_worst_move_share", share(runs, |r| r.raised_before_worst), FRACTION);
    let raised: Vec<RunMetrics> = runs.iter().filter(|r| r.raised_before_worst).cloned().collect();
    f.add("lead_time_mean_given_raised", mean(&raised, |r| r.lead_time_s), "s");
    f
}

/// The congestion figures of one run, read beside the same run without congestion.
pub fn congestion_figures(m: &RunMetrics) -> Figures {
    let mut f = Figures::default();
    f.add("fund_draw", m.fund_draw_usdc, USDC);
    f.add("fund_draw_marked", m.fund_draw_usdc + m.inventory_loss_end_usdc, USDC);
    f.add("socialized_loss", m.socialized_usdc, USDC);
    f.add("protocol_net_min", m.protocol_net_min_usdc, USDC);
    f.add("window_peak_inventory", m.window_peak_inventory_usdc, USDC);
    f.add("window_peak_inventory_loss", m.window_peak_inventory_loss_usdc, USDC);
    f.add("window_inventory_carry", m.window_inventory_usdc_h, USDC_HOURS);
    f.add("unsold_inventory_end", m.unsold_inventory_usdc, USDC);
    f.add("window_auctions", m.window_auctions as f64, COUNT);
    f.add("no_bid_auctions", m.no_bid_auctions as f64, COUNT);
    f.add("late_takes", m.late_takes as f64, COUNT);
    f.add("missed_takes", m.missed_takes as f64, COUNT);
    f.add("fills_below_floor", m.fills_below_floor as f64, COUNT);
    f
}

/// [`congestion_figures`] over the Monte Carlo paths.
pub fn congestion_aggregate(runs: &[RunMetrics]) -> Figures {
    let draws: Vec<f64> = runs.iter().map(|r| r.fund_draw_usdc).collect();
    let mut f = Figures::default();
    f.add("paths", runs.len() as f64, COUNT);
    f.add("fund_draw_mean", mean(runs, |r| r.fund_draw_usdc), USDC);
    f.add("fund_draw_p99", quantile(&draws, 0.99), USDC);
    f.add("fund_draw_marked_mean", mean(runs, |r| r.fund_draw_usdc + r.inventory_loss_end_usdc), USDC);
    f.add("socialized_loss_probability", share(runs, |r| r.socialized_count > 0), FRACTION);
    f.add("protocol_insolvent_probability", share(runs, |r| r.protocol_net_min_usdc < 0.0), FRACTION);
    f.add("window_peak_inventory_mean", mean(runs, |r| r.window_peak_inventory_usdc), USDC);
    f.add("window_peak_inventory_max", runs.iter().map(|r| r.window_peak_inventory_usdc).fold(0.0, f64::max), USDC);
    f.add("window_peak_inventory_loss_mean", mean(runs, |r| r.window_peak_inventory_loss_usdc), USDC);
    f.add(
        "window_peak_inventory_loss_max",
        runs.iter().map(|r| r.window_peak_inventory_loss_usdc).fold(0.0, f64::max),
        USDC,
    );
    f.add("window_inventory_carry_mean", mean(runs, |r| r.window_inventory_usdc_h), USDC_HOURS);
    f.add("window_auctions_total", runs.iter().map(|r| r.window_auctions as f64).sum(), COUNT);
    f.add("no_bid_auctions_total", runs.iter().map(|r| r.no_bid_auctions as f64).sum(), COUNT);
    f.add("late_takes_total", runs.iter().map(|r| r.late_takes as f64).sum(), COUNT);
    f.add("missed_takes_total", runs.iter().map(|r| r.missed_takes as f64).sum(), COUNT);
    f.add("fills_below_floor_total", runs.iter().map(|r| r.fills_below_floor as f64).sum(), COUNT);
    f
}

/// One scope (a fixed scenario or the Monte Carlo set) under one policy, with and
/// without congestion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CongestionScope {
    pub scope: String,
    pub policy: PolicyKind,
    /// The congestion window, seconds from the run's start (fixed scenarios; each
    /// Monte Carlo path has its own).
    pub window_s: Option<(f64, f64)>,
    pub without: Figures,
    pub with: Figures,
}

/// Settlement delay and congestion of the backstop makers: settings and scopes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CongestionReport {
    pub delay_ms: u64,
    pub window: String,
    pub no_bid_fraction: f64,
    pub scopes: Vec<CongestionScope>,
}

/// One policy's figures in a scope.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyFigures {
    pub policy: PolicyKind,
    pub figures: Figures,
}

/// A fixed scenario (one run per policy).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioResult {
    pub name: String,
    pub set: ScenarioSet,
    pub steps: usize,
    pub duration_s: f64,
    pub results: Vec<PolicyFigures>,
}

/// Fund-draw histogram over Monte Carlo paths, one count vector per policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Histogram {
    pub quantity: &'static str,
    pub unit: &'static str,
    /// Bin edges (n + 1): bin i holds [edges[i], edges[i+1]); with `zero_bin`, bin 0
    /// holds exactly the zeros and the others are decades.
    pub edges: Vec<f64>,
    pub zero_bin: bool,
    pub counts: Vec<(PolicyKind, Vec<u64>)>,
}

/// The Monte Carlo set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonteCarloResult {
    pub paths: usize,
    pub steps_per_path: usize,
    pub step_s: u64,
    pub v0_annual_var: f64,
    pub results: Vec<PolicyFigures>,
    pub fund_draw_histogram: Histogram,
    /// Index of the path charted in the HTML report (the static policy's largest fund draw).
    pub charted_path: u64,
}

/// A figure under the dynamic policy and under the static tiers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pair {
    pub dynamic: f64,
    #[serde(rename = "static")]
    pub static_tiers: f64,
}

/// An advised policy (dynamic or predictive; `dynamic` in the pairs) against static on one scope.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub scope: String,
    /// The policy compared with the static tiers.
    pub policy: PolicyKind,
    /// Single run: the run's draw; Monte Carlo: the mean over paths.
    pub fund_draw_usdc: Pair,
    /// Single run: the amount (USDC); Monte Carlo: the probability (fraction of paths).
    pub socialized_loss: Pair,
    pub socialized_loss_unit: &'static str,
    pub calm_avg_mm_rate: Pair,
    pub calm_avg_margin_usdc: Pair,
    /// "lower", "equal" or "higher" (dynamic relative to static).
    pub fund_draw: &'static str,
    pub socialized: &'static str,
    pub calm_margin: &'static str,
    /// "holds" (all three), "holds_weakly" (no socialized loss under either), "fails".
    pub claim: &'static str,
}

/// Per-step series of one scenario under each policy (HTML only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChartSet {
    pub scenario: String,
    pub traces: Vec<(PolicyKind, Trace)>,
}

/// Everything `solvent stress` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StressReport {
    pub schema: &'static str,
    pub settings: serde_json::Value,
    pub population: Figures,
    pub model: Figures,
    /// The dynamic policy's average MM multiplier and the scaled tables built from it.
    pub scale_multiplier: Figure,
    pub policies: Vec<serde_json::Value>,
    pub scenarios: Vec<ScenarioResult>,
    pub monte_carlo: Option<MonteCarloResult>,
    pub comparisons: Vec<Comparison>,
    /// The static frontier and the predictive policy against it.
    pub frontier: crate::frontier::Frontier,
    /// The cascade predictor's out-of-sample evaluation (when asked for).
    pub predictor: Option<crate::predictor::PredictorReport>,
    /// The static and predictive policies with and without congested makers.
    pub congestion: Option<CongestionReport>,
    #[serde(skip)]
    pub charts: Vec<ChartSet>,
    /// Per fixed scenario, the traces without and with congestion (HTML only).
    #[serde(skip)]
    pub congestion_charts: Vec<CongestionChart>,
}

/// A fixed scenario's inventory under each policy, without and with congestion.
#[derive(Debug, Clone, PartialEq)]
pub struct CongestionChart {
    pub scenario: String,
    pub window_s: Option<(f64, f64)>,
    /// (policy, without, with).
    pub traces: Vec<(PolicyKind, Trace, Trace)>,
}

impl StressReport {
    /// Pretty JSON (deterministic: same options, same bytes).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_json() + "\n").map_err(|source| StressError::Write { path: path.into(), source })
    }

    pub fn write_html(&self, path: &Path) -> Result<()> {
        let html = crate::html::render(self);
        std::fs::write(path, html).map_err(|source| StressError::Write { path: path.into(), source })
    }
}

fn direction(dynamic: f64, stat: f64) -> &'static str {
    let tolerance = 1e-9 * dynamic.abs().max(stat.abs()).max(1.0);
    if (dynamic - stat).abs() <= tolerance {
        "equal"
    } else if dynamic < stat {
        "lower"
    } else {
        "higher"
    }
}

/// Dynamic against static from two figure sets (single runs or aggregates).
pub fn compare(scope: &str, stat: &Figures, dynamic: &Figures, aggregate: bool) -> Comparison {
    let pair = |single: &str, agg: &str| {
        let name = if aggregate { agg } else { single };
        Pair { dynamic: dynamic.get(name).unwrap_or(0.0), static_tiers: stat.get(name).unwrap_or(0.0) }
    };
    let draw = pair("fund_draw", "fund_draw_mean");
    let social = pair("socialized_loss", "socialized_loss_probability");
    let calm = pair("calm_avg_mm_rate", "calm_avg_mm_rate_mean");
    let calm_usdc = pair("calm_avg_margin", "calm_avg_margin_mean");
    let direction_of = |p: Pair| direction(p.dynamic, p.static_tiers);
    let (fund_draw, socialized, calm_margin) = (direction_of(draw), direction_of(social), direction_of(calm));
    let claim = match (fund_draw, socialized, calm_margin) {
        ("lower", "lower", "lower" | "equal") => "holds",
        ("lower", "equal", "lower" | "equal") if social.static_tiers == 0.0 => "holds_weakly",
        _ => "fails",
    };
    Comparison {
        scope: scope.to_string(),
        policy: PolicyKind::Dynamic,
        fund_draw_usdc: draw,
        socialized_loss: social,
        socialized_loss_unit: if aggregate { FRACTION } else { USDC },
        calm_avg_mm_rate: calm,
        calm_avg_margin_usdc: calm_usdc,
        fund_draw,
        socialized,
        calm_margin,
        claim,
    }
}

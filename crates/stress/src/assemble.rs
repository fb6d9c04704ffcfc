//! Turns the runs into the report: settings, population and model figures,
//! per-scenario figures, Monte Carlo aggregates and histograms, comparisons.

use crate::book::Book;
use crate::options::{PopulationSource, StressOptions};
use crate::policy::{DynamicModel, PolicyKind};
use crate::population::{size_f64, Population};
use crate::report::{
    aggregate_figures, compare, congestion_aggregate, congestion_figures, run_figures, ChartSet, CongestionChart,
    CongestionReport, CongestionScope, Figure, Figures, Histogram, MonteCarloResult, PolicyFigures, ScenarioResult,
    StressReport, COUNT, FRACTION, USDC,
};
use crate::runner::{charted_path, PolicyRuns};
use crate::scenario::Scenario;
use serde_json::{json, Value};
use solvent_models::advisor::Tier;

/// Report schema identifier.
pub const SCHEMA: &str = "solvent-stress/1";

/// What the report is assembled from besides the runs.
pub(crate) struct Inputs<'a> {
    pub options: &'a StressOptions,
    pub population: &'a Population,
    pub books: &'a [&'a Book; 4],
    pub dynamic: &'a DynamicModel,
    pub predictive: &'a crate::predictive::PredictiveModel,
    pub fixed: &'a [Scenario],
    pub v0_annual_var: f64,
    pub multiplier: f64,
    pub scaled_tiers: &'a [Vec<Tier>],
}

pub(crate) fn assemble(
    inputs: &Inputs,
    runs: &[PolicyRuns],
    frontier: &[(f64, PolicyRuns)],
    charts: Vec<ChartSet>,
) -> StressReport {
    let scenarios: Vec<ScenarioResult> = inputs
        .fixed
        .iter()
        .enumerate()
        .map(|(j, s)| ScenarioResult {
            name: s.name.clone(),
            set: s.set,
            steps: s.steps.len(),
            duration_s: s.steps.last().map_or(0.0, |l| l.offset_ms as f64 / 1_000.0),
            results: runs
                .iter()
                .map(|r| PolicyFigures { policy: r.policy, figures: run_figures(&r.fixed[j].metrics) })
                .collect(),
        })
        .collect();
    let monte_carlo = inputs.options.scenarios.monte_carlo.then(|| monte_carlo(inputs, runs));
    let mut comparisons = Vec::new();
    for policy in [PolicyKind::Dynamic, PolicyKind::Predictive] {
        comparisons.extend(scenarios.iter().filter_map(|s| comparison(&s.name, &s.results, policy, false)));
        if let Some(mc) = &monte_carlo {
            comparisons.extend(comparison("monte_carlo", &mc.results, policy, true));
        }
    }
    let frontier = crate::frontier::build(inputs.fixed, runs, frontier, &scenarios, monte_carlo.as_ref());
    StressReport {
        schema: SCHEMA,
        settings: settings(inputs),
        population: population_figures(inputs),
        model: model_figures(inputs),
        scale_multiplier: Figure { value: inputs.multiplier, unit: "ratio" },
        policies: policies(inputs),
        scenarios,
        monte_carlo,
        comparisons,
        frontier,
        predictor: None,
        congestion: None,
        charts,
        congestion_charts: Vec::new(),
    }
}

/// Each congested policy beside its runs without congestion, per fixed scenario and
/// for the Monte Carlo set; and the fixed scenarios' inventory traces for the HTML.
pub(crate) fn congestion(
    inputs: &Inputs,
    runs: &[PolicyRuns],
    congested: &[PolicyRuns],
) -> (Option<CongestionReport>, Vec<CongestionChart>) {
    if congested.is_empty() {
        return (None, Vec::new());
    }
    let pairs: Vec<(&PolicyRuns, &PolicyRuns)> =
        congested.iter().filter_map(|c| Some((runs.iter().find(|r| r.policy == c.policy)?, c))).collect();
    assert_eq!(pairs.len(), congested.len(), "every congested policy has its runs without congestion");
    let mut scopes = Vec::new();
    let mut charts = Vec::new();
    for (j, s) in inputs.fixed.iter().enumerate() {
        let mut traces = Vec::new();
        for (without, with) in &pairs {
            let (w, c) = (&without.fixed[j], &with.fixed[j]);
            scopes.push(CongestionScope {
                scope: s.name.clone(),
                policy: with.policy,
                window_s: c.metrics.window_s,
                without: congestion_figures(&w.metrics),
                with: congestion_figures(&c.metrics),
            });
            if let (Some(a), Some(b)) = (&w.trace, &c.trace) {
                traces.push((with.policy, a.clone(), b.clone()));
            }
        }
        let window_s = pairs.first().and_then(|(_, c)| c.fixed[j].metrics.window_s);
        charts.push(CongestionChart { scenario: s.name.clone(), window_s, traces });
    }
    if inputs.options.scenarios.monte_carlo {
        for (without, with) in &pairs {
            scopes.push(CongestionScope {
                scope: "monte_carlo".into(),
                policy: with.policy,
                window_s: None,
                without: congestion_aggregate(&without.monte_carlo),
                with: congestion_aggregate(&with.monte_carlo),
            });
        }
    }
    let c = &inputs.options.congestion;
    let report = CongestionReport {
        delay_ms: c.delay_ms,
        window: c.window.describe(),
        no_bid_fraction: c.no_bid_fraction,
        scopes,
    };
    (Some(report), charts)
}

fn comparison(
    scope: &str,
    results: &[PolicyFigures],
    policy: PolicyKind,
    aggregate: bool,
) -> Option<crate::report::Comparison> {
    let find = |p: PolicyKind| results.iter().find(|r| r.policy == p).map(|r| &r.figures);
    let mut c = compare(scope, find(PolicyKind::Static)?, find(policy)?, aggregate);
    c.policy = policy;
    Some(c)
}

fn monte_carlo(inputs: &Inputs, runs: &[PolicyRuns]) -> MonteCarloResult {
    let o = inputs.options;
    MonteCarloResult {
        paths: o.paths,
        steps_per_path: o.mc_steps(),
        step_s: o.mc_step_s,
        v0_annual_var: inputs.v0_annual_var,
        results: runs
            .iter()
            .map(|r| PolicyFigures { policy: r.policy, figures: aggregate_figures(&r.monte_carlo) })
            .collect(),
        fund_draw_histogram: histogram(runs),
        charted_path: charted_path(runs).unwrap_or(0),
    }
}

/// Fund draw per path: bin 0 holds the paths that drew nothing, bin i >= 1 the draws
/// in [edges[i], edges[i+1]), one decade of USDC each, from the smallest positive draw
/// of any policy to the largest: the tail stays visible next to the many small draws.
fn histogram(runs: &[PolicyRuns]) -> Histogram {
    let draws = || runs.iter().flat_map(|r| &r.monte_carlo).map(|m| m.fund_draw_usdc).filter(|d| *d > 0.0);
    let mut edges = vec![0.0];
    let mut first = 0;
    if let (Some(lo), Some(hi)) = (draws().reduce(f64::min), draws().reduce(f64::max)) {
        first = lo.log10().floor() as i32;
        let last = hi.log10().floor() as i32 + 1;
        edges.extend((first..=last).map(|k| 10f64.powi(k)));
    }
    let bins = edges.len().max(2) - 1;
    let counts = runs
        .iter()
        .map(|r| {
            let mut c = vec![0u64; bins];
            for m in &r.monte_carlo {
                let d = m.fund_draw_usdc;
                let i =
                    if d > 0.0 { (d.log10().floor() as i32 - first + 1).clamp(1, bins as i32 - 1) as usize } else { 0 };
                c[i] += 1;
            }
            (r.policy, c)
        })
        .collect();
    if edges.len() < 2 {
        edges.push(0.0);
    }
    Histogram { quantity: "fund_draw", unit: USDC, edges, zero_bin: true, counts }
}

fn settings(inputs: &Inputs) -> Value {
    let o = inputs.options;
    let population = match &o.population {
        PopulationSource::Synthetic { accounts } => json!({"kind": "synthetic", "accounts": accounts}),
        PopulationSource::StateFile(path) => json!({"kind": "state_file", "path": path.display().to_string()}),
    };
    json!({
        "seed": o.seed,
        "population": population,
        "config": o.config.as_ref().map_or("embedded default".to_string(), |p| p.display().to_string()),
        "scenarios": {"historical": o.scenarios.historical, "shocks": o.scenarios.shocks, "monte_carlo": o.scenarios.monte_carlo},
        "paths": o.paths,
        "mc_horizon_s": o.mc_horizon_s,
        "mc_step_s": o.mc_step_s,
        "mc_v0_annual_var": inputs.v0_annual_var,
        "historical_stride_min": o.historical_stride_min,
        "depth_oi_multiple_per_day": o.depth_oi_multiple_per_day,
        "impact_y": o.impact_y,
        "backstop_oi_fraction_per_min": o.backstop_oi_fraction_per_min,
        "backstop_take_delay_ms": o.backstop_take_delay_ms,
        "insurance_fund_oi_fraction": o.insurance_fund_oi_fraction,
        "oracle_sources": o.oracle_sources,
        "advisor_horizon_s": o.advisor.horizon_s,
        "advisor_ewma_half_life_s": o.advisor.ewma_half_life_s,
        "gap_paths_per_stratum": o.advisor.gap_paths_per_stratum,
        "congestion_delay_ms": o.congestion.delay_ms,
        "congestion_window": o.congestion.window.describe(),
        "no_bid_fraction": o.congestion.no_bid_fraction,
    })
}

fn population_figures(inputs: &Inputs) -> Figures {
    let p = inputs.population;
    let book = inputs.books[0];
    let primary = &book.markets[0];
    let positions = p.accounts.iter().flat_map(|a| &a.positions);
    let longs = positions.clone().filter(|x| x.size.is_positive()).count();
    let base_collateral = p
        .accounts
        .iter()
        .filter(|a| a.deposits.iter().any(|(asset, _)| asset != book.engine.settlement_asset()))
        .count();
    let long_notional: f64 = book.markets.iter().map(|m| m.initial_oi_base * m.reference_price).sum();
    let mut f = Figures::default();
    f.0.push(("accounts", Figure { value: p.accounts.len() as f64, unit: COUNT }));
    f.0.push((
        "accounts_not_rebuilt",
        Figure { value: (p.skipped.len() + book.not_rebuilt.len()) as f64, unit: COUNT },
    ));
    f.0.push(("long_positions", Figure { value: longs as f64, unit: COUNT }));
    f.0.push(("short_positions", Figure { value: (positions.count() - longs) as f64, unit: COUNT }));
    f.0.push(("non_settlement_collateral_accounts", Figure { value: base_collateral as f64, unit: COUNT }));
    f.0.push(("reference_price", Figure { value: primary.reference_price, unit: "USDC per base unit" }));
    f.0.push(("open_interest", Figure { value: primary.initial_oi_base, unit: "base units" }));
    f.0.push(("long_notional", Figure { value: long_notional, unit: USDC }));
    f.0.push(("largest_position", Figure { value: largest_position(p), unit: "base units" }));
    f.0.push(("insurance_fund", Figure { value: crate::population::quote_f64(p.insurance_fund), unit: USDC }));
    f.0.push(("depth_per_day", Figure { value: primary.depth_base_per_day, unit: "base units per day" }));
    f.0.push(("backstop_capacity_per_auction", Figure { value: primary.backstop_capacity_base, unit: "base units" }));
    f.0.push(("scaled_policy_top_up", Figure { value: inputs.books[2].top_up_usdc, unit: USDC }));
    f
}

fn largest_position(p: &Population) -> f64 {
    p.accounts.iter().flat_map(|a| &a.positions).map(|x| size_f64(x.size).abs()).fold(0.0, f64::max)
}

fn model_figures(inputs: &Inputs) -> Figures {
    let d = inputs.dynamic;
    let mut f = Figures::default();
    f.0.push(("gap_es_jump_only", Figure { value: d.gap_es, unit: FRACTION }));
    f.0.push(("long_run_volatility", Figure { value: d.long_run_total_var.sqrt(), unit: "fraction per year^0.5" }));
    f.0.push((
        "long_run_daily_volatility",
        Figure { value: crate::scenario::long_run_sigma_daily(), unit: "fraction per day^0.5" },
    ));
    f.0.push(("advisor_horizon", Figure { value: d.settings.horizon_s, unit: "s" }));
    f.0.push(("advisor_ewma_half_life", Figure { value: d.settings.ewma_half_life_s, unit: "s" }));
    let r = &inputs.predictive.regime;
    let per_year = (solvent_models::SECONDS_PER_YEAR / inputs.predictive.step_s as f64).sqrt();
    f.0.push(("regime_low_volatility", Figure { value: r.sigma_low * per_year, unit: "fraction per year^0.5" }));
    f.0.push(("regime_high_volatility", Figure { value: r.sigma_high * per_year, unit: "fraction per year^0.5" }));
    f.0.push(("regime_p_stay_low", Figure { value: r.p_stay_low, unit: "probability per step" }));
    f.0.push(("regime_p_stay_high", Figure { value: r.p_stay_high, unit: "probability per step" }));
    f.0.push(("regime_stationary_high", Figure { value: r.stationary_high(), unit: FRACTION }));
    f
}

fn policies(inputs: &Inputs) -> Vec<Value> {
    let primary = &inputs.books[0].markets[0];
    let tiers = |t: &[Tier]| serde_json::to_value(t).unwrap_or(Value::Null);
    PolicyKind::ALL
        .iter()
        .map(|p| {
            let table = match p {
                PolicyKind::StaticScaled => inputs.scaled_tiers.first().map_or(Value::Null, |t| tiers(t)),
                _ => tiers(&primary.static_tiers),
            };
            let settings = match p {
                PolicyKind::Predictive => serde_json::to_value(inputs.predictive.settings).unwrap_or(Value::Null),
                _ => Value::Null,
            };
            json!({"name": p.name(), "description": p.description(), "market": primary.name, "initial_tiers": table, "settings": settings})
        })
        .collect()
}

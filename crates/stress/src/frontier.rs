//! The static frontier: the static table x k over a grid of k, each run as its
//! own policy on the same scenarios, so that a policy is judged against every
//! static table at the same calm margin. Per scope (each fixed scenario, and the
//! Monte Carlo set) the points (calm MM rate, fund draw, socialized loss), the
//! predictive policy's own point, and the frontier read at the predictive
//! policy's calm MM rate (linear between the two neighbouring points; outside
//! the frontier's range it is not extrapolated).

use crate::metrics::RunMetrics;
use crate::policy::PolicyKind;
use crate::report::{MonteCarloResult, ScenarioResult};
use crate::runner::PolicyRuns;
use crate::scenario::Scenario;
use serde::Serialize;

/// One static table (or the predictive policy) on one scope.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FrontierPoint {
    /// The multiplier (1 = the configuration's table; the predictive point has none).
    pub k: Option<f64>,
    pub calm_mm_rate: f64,
    /// The run's draw, or the mean over paths (USDC).
    pub fund_draw: f64,
    /// The run's socialized loss (USDC), or the share of paths with any (fraction).
    pub socialized: f64,
}

/// The frontier on one scope.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrontierScope {
    pub scope: String,
    /// Whether `socialized` is a probability (Monte Carlo) or an amount.
    pub aggregate: bool,
    /// Sorted by calm MM rate.
    pub points: Vec<FrontierPoint>,
    pub predictive: FrontierPoint,
    /// The frontier at the predictive policy's calm MM rate (None outside its range).
    pub at_same_calm: Option<FrontierPoint>,
    /// `1 - predictive / frontier` at the same calm rate (None when undefined).
    pub fund_draw_reduction: Option<f64>,
    pub socialized_reduction: Option<f64>,
}

/// Every scope's frontier and the multipliers it was built from.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Frontier {
    pub multipliers: Vec<f64>,
    pub scopes: Vec<FrontierScope>,
}

fn single(k: Option<f64>, m: &RunMetrics) -> FrontierPoint {
    FrontierPoint { k, calm_mm_rate: m.calm_avg_mm_rate, fund_draw: m.fund_draw_usdc, socialized: m.socialized_usdc }
}

fn aggregate(k: Option<f64>, runs: &[RunMetrics]) -> FrontierPoint {
    let n = runs.len().max(1) as f64;
    FrontierPoint {
        k,
        calm_mm_rate: runs.iter().map(|r| r.calm_avg_mm_rate).sum::<f64>() / n,
        fund_draw: runs.iter().map(|r| r.fund_draw_usdc).sum::<f64>() / n,
        socialized: runs.iter().filter(|r| r.socialized_count > 0).count() as f64 / n,
    }
}

/// The frontier read at `calm` (linear between neighbours).
pub fn at_calm(points: &[FrontierPoint], calm: f64) -> Option<FrontierPoint> {
    points.windows(2).find(|w| w[0].calm_mm_rate <= calm && calm <= w[1].calm_mm_rate).map(|w| {
        let span = w[1].calm_mm_rate - w[0].calm_mm_rate;
        let t = if span > 0.0 { (calm - w[0].calm_mm_rate) / span } else { 0.0 };
        let lerp = |a: f64, b: f64| a + (b - a) * t;
        FrontierPoint {
            k: Some(lerp(w[0].k.unwrap_or(1.0), w[1].k.unwrap_or(1.0))),
            calm_mm_rate: calm,
            fund_draw: lerp(w[0].fund_draw, w[1].fund_draw),
            socialized: lerp(w[0].socialized, w[1].socialized),
        }
    })
}

fn reduction(policy: f64, frontier: f64) -> Option<f64> {
    (frontier > 0.0).then(|| 1.0 - policy / frontier)
}

fn scope(name: &str, aggregate: bool, mut points: Vec<FrontierPoint>, predictive: FrontierPoint) -> FrontierScope {
    points.sort_by(|a, b| a.calm_mm_rate.total_cmp(&b.calm_mm_rate));
    let at = at_calm(&points, predictive.calm_mm_rate);
    FrontierScope {
        scope: name.to_string(),
        aggregate,
        fund_draw_reduction: at.and_then(|f| reduction(predictive.fund_draw, f.fund_draw)),
        socialized_reduction: at.and_then(|f| reduction(predictive.socialized, f.socialized)),
        points,
        predictive,
        at_same_calm: at,
    }
}

/// Builds every scope's frontier from the policy runs and the frontier runs.
pub(crate) fn build(
    fixed: &[Scenario],
    runs: &[PolicyRuns],
    frontier: &[(f64, PolicyRuns)],
    _scenarios: &[ScenarioResult],
    monte_carlo: Option<&MonteCarloResult>,
) -> Frontier {
    let find = |p: PolicyKind| runs.iter().find(|r| r.policy == p);
    let (Some(stat), Some(pred)) = (find(PolicyKind::Static), find(PolicyKind::Predictive)) else {
        return Frontier::default();
    };
    let mut scopes = Vec::new();
    for (j, s) in fixed.iter().enumerate() {
        let mut points = vec![single(Some(1.0), &stat.fixed[j].metrics)];
        points.extend(frontier.iter().map(|(k, r)| single(Some(*k), &r.fixed[j].metrics)));
        scopes.push(scope(&s.name, false, points, single(None, &pred.fixed[j].metrics)));
    }
    if monte_carlo.is_some() {
        let mut points = vec![aggregate(Some(1.0), &stat.monte_carlo)];
        points.extend(frontier.iter().map(|(k, r)| aggregate(Some(*k), &r.monte_carlo)));
        scopes.push(scope("monte_carlo", true, points, aggregate(None, &pred.monte_carlo)));
    }
    Frontier { multipliers: frontier.iter().map(|(k, _)| *k).collect(), scopes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(k: f64, calm: f64, draw: f64) -> FrontierPoint {
        FrontierPoint { k: Some(k), calm_mm_rate: calm, fund_draw: draw, socialized: draw / 10.0 }
    }

    #[test]
    fn frontier_is_read_linearly_between_neighbours_and_not_extrapolated() {
        let points = [p(0.8, 0.04, 300.0), p(1.0, 0.05, 200.0), p(1.2, 0.06, 150.0)];
        let at = at_calm(&points, 0.055).unwrap();
        assert!((at.fund_draw - 175.0).abs() < 1e-9 && (at.k.unwrap() - 1.1).abs() < 1e-9, "{at:?}");
        assert!(at_calm(&points, 0.03).is_none() && at_calm(&points, 0.07).is_none());
        let s = scope(
            "x",
            false,
            points.to_vec(),
            FrontierPoint { k: None, calm_mm_rate: 0.05, fund_draw: 100.0, socialized: 0.0 },
        );
        assert!((s.fund_draw_reduction.unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(s.socialized_reduction, Some(1.0));
    }
}

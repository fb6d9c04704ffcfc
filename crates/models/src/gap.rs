//! Gap premium: expected shortfall of the adverse price move over the
//! liquidation horizon under the SVJD model, widened by square-root market
//! impact.
//!
//! Losses are fractions of notional: a long loses `1 - S_T/S_0` (it fears
//! down-moves), a short `S_T/S_0 - 1` (up-moves). ES at level alpha is the
//! mean loss in the worst (1 - alpha) of outcomes.
//!
//! Jumps are rare over a liquidation horizon (BTC defaults: 5.3e-4 jumps in
//! 15 minutes), so plain Monte Carlo would see a handful of jump paths. The
//! estimate is therefore stratified on the jump count N: for each n in
//! 0..=n_max, paths are simulated with exactly n jumps and weighted by the
//! Poisson probability P(N = n) (the mass beyond n_max, below 1e-12, goes to
//! n_max). The standard error is from 10 batch means.
//!
//! Two modes: [`GapMode::JumpOnly`] (default) takes the ES of the jump part
//! of the move only, so that the advisor's `vol add-on + gap premium` does
//! not count the diffusion twice ("the gap premium is the
//! expected shortfall of a jump over that horizon"); [`GapMode::TotalMove`]
//! takes the ES of the whole simulated move (diffusion with stochastic
//! variance plus jumps).

use crate::error::{non_negative, open_interval, positive, ModelError, Result};
use crate::stats::{normal_cdf, sample_variance};
use crate::svjd::{draw_jump, path_rng, simulate_terminal_with_jumps, SimConfig, SvjdParams};
use crate::SECONDS_PER_YEAR;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Position side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    Long,
    Short,
}

impl Side {
    /// Loss as a fraction of notional for a log return `x`.
    pub fn loss_fraction(self, x: f64) -> f64 {
        match self {
            Side::Long => 1.0 - x.exp(),
            Side::Short => x.exp() - 1.0,
        }
    }
}

/// Which move the expected shortfall is taken of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GapMode {
    /// The jump component only (compound Poisson sum of log jumps).
    JumpOnly,
    /// The whole move: stochastic-variance diffusion plus jumps.
    TotalMove,
}

/// Settings of [`simulate_gap`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GapConfig {
    /// ES level, default 0.99.
    pub level: f64,
    /// Liquidation horizon, seconds.
    pub horizon_s: f64,
    /// Paths per jump-count stratum.
    pub paths_per_stratum: usize,
    /// Euler steps per path (TotalMove only).
    pub steps: usize,
    pub seed: u64,
    pub mode: GapMode,
}

impl GapConfig {
    /// Level 0.99, 10,000 paths per stratum, 30 steps, seed 0, JumpOnly.
    pub fn new(horizon_s: f64) -> Self {
        Self { level: 0.99, horizon_s, paths_per_stratum: 10_000, steps: 30, seed: 0, mode: GapMode::JumpOnly }
    }
}

/// VaR and ES (fractions of notional) of one side.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SideTail {
    pub var: f64,
    pub es: f64,
    /// Standard error of `es` from 10 batch means.
    pub es_std_error: f64,
}

/// Both tails.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GapEstimate {
    pub long: SideTail,
    pub short: SideTail,
    pub mode: GapMode,
}

impl GapEstimate {
    /// The larger of the two sides' ES: brackets serve longs and shorts alike.
    pub fn worst_es(&self) -> f64 {
        self.long.es.max(self.short.es)
    }
}

/// Poisson weights P(N = n), n = 0..=n_max, with the tail mass beyond n_max
/// (below 1e-12) added to the last.
pub fn jump_count_weights(mean_jumps: f64) -> Vec<f64> {
    let mut w = vec![(-mean_jumps).exp()];
    let mut cum = w[0];
    while 1.0 - cum > 1e-12 && w.len() < 200 {
        let n = w.len() as f64;
        let next = w[w.len() - 1] * mean_jumps / n;
        w.push(next);
        cum += next;
    }
    let last = w.len() - 1;
    w[last] += (1.0 - cum).max(0.0);
    w
}

/// Weighted VaR and ES of losses: `points` are (loss, weight) with weights
/// summing to 1; the tail is the top `1 - level` of the mass, the boundary
/// point counted fractionally.
pub fn weighted_tail(points: &mut [(f64, f64)], level: f64) -> (f64, f64) {
    points.sort_by(|a, b| b.0.total_cmp(&a.0));
    let q = 1.0 - level;
    let (mut mass, mut sum, mut var) = (0.0, 0.0, 0.0);
    for &(loss, w) in points.iter() {
        let take = w.min(q - mass);
        if take <= 0.0 {
            break;
        }
        mass += take;
        sum += take * loss;
        var = loss;
    }
    (var, if mass > 0.0 { sum / mass } else { 0.0 })
}

/// Log moves of one stratum (exactly `n` jumps).
fn stratum_moves(p: &SvjdParams, v0: f64, cfg: &GapConfig, n: u32) -> Result<Vec<f64>> {
    let base = u64::from(n) << 32;
    match cfg.mode {
        GapMode::TotalMove => {
            let sim = SimConfig { horizon_s: cfg.horizon_s, steps: cfg.steps, seed: cfg.seed };
            simulate_terminal_with_jumps(p, v0, &sim, n, cfg.paths_per_stratum, base)
        }
        GapMode::JumpOnly => Ok((0..cfg.paths_per_stratum as u64)
            .into_par_iter()
            .map(|i| {
                let mut rng = path_rng(cfg.seed, base + i);
                (0..n).map(|_| draw_jump(p, &mut rng).0).sum()
            })
            .collect()),
    }
}

const BATCHES: usize = 10;

/// ES and batch-means standard error of one side from the strata.
fn side_tail(strata: &[(f64, Vec<f64>)], side: Side, level: f64) -> SideTail {
    let points = |range: &dyn Fn(usize) -> std::ops::Range<usize>| {
        let mut pts = Vec::new();
        for (w, moves) in strata {
            let r = range(moves.len());
            let each = w / r.len() as f64;
            pts.extend(moves[r].iter().map(|x| (side.loss_fraction(*x), each)));
        }
        pts
    };
    let (var, es) = weighted_tail(&mut points(&|n| 0..n), level);
    let batch_es: Vec<f64> = (0..BATCHES)
        .map(|b| weighted_tail(&mut points(&|n| b * n / BATCHES..(b + 1) * n / BATCHES), level).1)
        .collect();
    SideTail { var, es, es_std_error: (sample_variance(&batch_es) / BATCHES as f64).sqrt() }
}

/// Stratified Monte Carlo VaR/ES of both tails of the move over the horizon.
/// `v0_annual_var` is the current variance (used by TotalMove).
pub fn simulate_gap(p: &SvjdParams, v0_annual_var: f64, cfg: &GapConfig) -> Result<GapEstimate> {
    p.validate()?;
    non_negative("v0_annual_var", v0_annual_var)?;
    open_interval("level", cfg.level, 0.0, 1.0)?;
    positive("horizon_s", cfg.horizon_s)?;
    if cfg.paths_per_stratum < 100 * BATCHES {
        return Err(ModelError::InvalidParameter {
            name: "paths_per_stratum",
            reason: format!("must be >= {}, got {}", 100 * BATCHES, cfg.paths_per_stratum),
        });
    }
    let weights = jump_count_weights(p.lambda_per_year * cfg.horizon_s / SECONDS_PER_YEAR);
    let strata: Vec<(f64, Vec<f64>)> = weights
        .iter()
        .enumerate()
        .map(|(n, &w)| Ok((w, stratum_moves(p, v0_annual_var, cfg, n as u32)?)))
        .collect::<Result<_>>()?;
    Ok(GapEstimate {
        long: side_tail(&strata, Side::Long, cfg.level),
        short: side_tail(&strata, Side::Short, cfg.level),
        mode: cfg.mode,
    })
}

/// Closed-form ES for constant variance `v_annual_var` plus the model's
/// lognormal jumps (Merton 1976; xi, mu_v and rho_J are ignored): given N = n
/// the log move is normal with mean (mu - lambda kbar - v/2) T + n mu_j and
/// variance v T + n sigma_j^2, so the tail expectations are sums of
/// E[e^X 1{X <= x}] = e^{m + s^2/2} Phi((x - m - s^2) / s). For the jump
/// part alone pass `include_diffusion = false` (a 1e-18 variance stands in
/// for zero). Theory helper for tests and sanity checks.
pub fn merton_expected_shortfall(
    p: &SvjdParams,
    v_annual_var: f64,
    horizon_s: f64,
    level: f64,
    side: Side,
    include_diffusion: bool,
) -> Result<f64> {
    p.validate()?;
    open_interval("level", level, 0.0, 1.0)?;
    let t = positive("horizon_s", horizon_s)? / SECONDS_PER_YEAR;
    let weights = jump_count_weights(p.lambda_per_year * t);
    let (drift, var) = if include_diffusion {
        ((p.drift_annual - p.lambda_per_year * p.jump_compensator() - 0.5 * v_annual_var) * t, v_annual_var * t)
    } else {
        (0.0, 1e-18)
    };
    let comps: Vec<(f64, f64, f64)> = weights
        .iter()
        .enumerate()
        .map(|(n, &w)| (w, drift + n as f64 * p.mu_j, (var + n as f64 * p.sigma_j.powi(2)).sqrt()))
        .collect();
    let cdf = |x: f64| comps.iter().map(|(w, m, s)| w * normal_cdf((x - m) / s)).sum::<f64>();
    let q = 1.0 - level;
    // Lower tail for longs (P(X <= x) = q), upper tail for shorts.
    let target = if side == Side::Long { q } else { 1.0 - q };
    let (mut lo, mut hi) = (-50.0, 50.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if cdf(mid) < target {
            lo = mid
        } else {
            hi = mid
        }
    }
    let x = 0.5 * (lo + hi);
    let tail_exp: f64 =
        comps.iter().map(|(w, m, s)| w * (m + 0.5 * s * s).exp() * normal_cdf((x - m - s * s) / s)).sum();
    Ok(match side {
        // E[(1 - e^X) 1{X <= x}] / q
        Side::Long => 1.0 - tail_exp / q,
        // E[(e^X - 1) 1{X > x}] / q
        Side::Short => {
            let total_exp: f64 = comps.iter().map(|(w, m, s)| w * (m + 0.5 * s * s).exp()).sum();
            (total_exp - tail_exp) / q - 1.0
        }
    })
}

/// Square-root market impact, `impact = Y sigma_daily sqrt(Q / V)`
/// (Tóth et al. 2011; confirmed on BTC by Donier and Bonart 2015). Q and V
/// must be in the same unit (the tier table's `from` unit).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ImpactModel {
    /// Y, of order one; default [`DEFAULT_IMPACT_Y`].
    pub y_coefficient: f64,
    /// Daily volatility (fraction).
    pub sigma_daily: f64,
    /// Daily volume (or configured book depth) V.
    pub daily_volume: f64,
}

/// Y = 1: the square-root law's prefactor is of order one across markets.
pub const DEFAULT_IMPACT_Y: f64 = 1.0;

impl ImpactModel {
    pub fn new(y_coefficient: f64, sigma_daily: f64, daily_volume: f64) -> Result<Self> {
        Ok(Self {
            y_coefficient: non_negative("y_coefficient", y_coefficient)?,
            sigma_daily: non_negative("sigma_daily", sigma_daily)?,
            daily_volume: positive("daily_volume", daily_volume)?,
        })
    }

    /// Average price concession, as a fraction, of liquidating `q`.
    pub fn impact_fraction(&self, q: f64) -> f64 {
        self.y_coefficient * self.sigma_daily * (q.max(0.0) / self.daily_volume).sqrt()
    }

    /// d(q impact(q)) / dq = 1.5 impact(q): the marginal rate that makes a
    /// marginal-bracket requirement integrate to the impact cost q impact(q).
    pub fn marginal_impact_fraction(&self, q: f64) -> f64 {
        1.5 * self.impact_fraction(q)
    }
}

/// Gap premium of a liquidation of size `q`: ES plus impact.
pub fn gap_premium(es: f64, impact: &ImpactModel, q: f64) -> f64 {
    es + impact.impact_fraction(q)
}

#[cfg(test)]
mod tests;

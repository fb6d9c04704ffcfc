//! Volatility forecasts: RiskMetrics EWMA and GARCH(1,1) fitted by Gaussian
//! quasi-maximum likelihood.
//!
//! Both work on returns sampled at a fixed step (`step_s` seconds); variances
//! are per step unless a name says otherwise (`*_annual`). A forecast over a
//! horizon of `steps` steps (fractional allowed) is the sum of the per-step
//! variance forecasts; its square root is the horizon volatility that the
//! margin advisor scales to a confidence level.

use crate::error::{all_finite, non_negative, open_interval, positive, ModelError, Result};
use crate::optim::{nelder_mead, NelderMeadOptions};
use crate::SECONDS_PER_YEAR;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// RiskMetrics (J.P. Morgan/Reuters 1996) decay factor for daily data.
pub const RISKMETRICS_LAMBDA: f64 = 0.94;

/// Number of leading returns whose mean square seeds an EWMA.
pub const EWMA_SEED_RETURNS: usize = 30;

/// Anything that forecasts variance over a number of future steps.
pub trait VolForecast {
    /// Forecast variance of the sum of the next `steps` returns.
    fn horizon_variance(&self, steps: f64) -> f64;
    /// Square root of [`VolForecast::horizon_variance`].
    fn horizon_vol(&self, steps: f64) -> f64 {
        self.horizon_variance(steps).max(0.0).sqrt()
    }
}

/// Number of `step_s`-second steps in `horizon_s` seconds.
pub fn steps_in_horizon(horizon_s: f64, step_s: f64) -> Result<f64> {
    Ok(non_negative("horizon_s", horizon_s)? / positive("step_s", step_s)?)
}

/// Annualizes a per-step variance (365-day year: crypto trades every day).
pub fn annualize_variance(variance_per_step: f64, step_s: f64) -> f64 {
    variance_per_step * SECONDS_PER_YEAR / step_s
}

/// Exponentially weighted moving average of squared returns:
/// `s2[t+1] = lambda * s2[t] + (1 - lambda) * r[t]^2`. The forecast is flat:
/// every future step has variance `s2[t+1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ewma {
    lambda_decay: f64,
    variance_per_step: f64,
}

impl Ewma {
    /// EWMA with decay `lambda_decay` in (0, 1) and a starting variance.
    pub fn new(lambda_decay: f64, initial_variance_per_step: f64) -> Result<Self> {
        Ok(Self {
            lambda_decay: open_interval("lambda_decay", lambda_decay, 0.0, 1.0)?,
            variance_per_step: non_negative("initial_variance_per_step", initial_variance_per_step)?,
        })
    }

    /// Seeds with the mean square of the first [`EWMA_SEED_RETURNS`] returns,
    /// then runs the recursion over all of them.
    pub fn from_returns(lambda_decay: f64, returns: &[f64]) -> Result<Self> {
        all_finite(returns)?;
        if returns.is_empty() {
            return Err(ModelError::InsufficientData { needed: 1, got: 0 });
        }
        let seed = &returns[..returns.len().min(EWMA_SEED_RETURNS)];
        let seed_var = seed.iter().map(|r| r * r).sum::<f64>() / seed.len() as f64;
        let mut ewma = Self::new(lambda_decay, seed_var)?;
        for &r in returns {
            ewma.update(r)?;
        }
        Ok(ewma)
    }

    /// Feeds one return.
    pub fn update(&mut self, r: f64) -> Result<()> {
        if !r.is_finite() {
            return Err(ModelError::NonFinite { index: 0 });
        }
        self.variance_per_step = self.lambda_decay * self.variance_per_step + (1.0 - self.lambda_decay) * r * r;
        Ok(())
    }

    /// One-step-ahead variance forecast.
    pub fn variance_per_step(&self) -> f64 {
        self.variance_per_step
    }

    pub fn lambda_decay(&self) -> f64 {
        self.lambda_decay
    }
}

impl VolForecast for Ewma {
    fn horizon_variance(&self, steps: f64) -> f64 {
        self.variance_per_step * steps.max(0.0)
    }
}

/// GARCH(1,1): `h[t+1] = omega + alpha r[t]^2 + beta h[t]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GarchParams {
    pub omega: f64,
    pub alpha: f64,
    pub beta: f64,
}

impl GarchParams {
    /// omega > 0, alpha >= 0, beta >= 0, alpha + beta < 1.
    pub fn validate(&self) -> Result<()> {
        positive("omega", self.omega)?;
        non_negative("alpha", self.alpha)?;
        non_negative("beta", self.beta)?;
        if self.persistence() >= 1.0 {
            return Err(ModelError::InvalidParameter {
                name: "alpha + beta",
                reason: format!("must be < 1, got {}", self.persistence()),
            });
        }
        Ok(())
    }

    pub fn persistence(&self) -> f64 {
        self.alpha + self.beta
    }

    /// omega / (1 - alpha - beta).
    pub fn unconditional_variance(&self) -> f64 {
        self.omega / (1.0 - self.persistence())
    }
}

/// Gaussian negative log-likelihood (constant dropped) of `returns` under
/// `params`, with the recursion started at `h0`.
pub fn garch_neg_log_likelihood(params: &GarchParams, returns: &[f64], h0: f64) -> f64 {
    let mut h = h0;
    let mut nll = 0.0;
    for &r in returns {
        if h.is_nan() || h <= 0.0 {
            return f64::INFINITY;
        }
        nll += h.ln() + r * r / h;
        h = params.omega + params.alpha * r * r + params.beta * h;
    }
    0.5 * nll
}

/// Conditional variances h[0..=n] (h[n] is the one-step-ahead forecast).
pub fn garch_variance_path(params: &GarchParams, returns: &[f64], h0: f64) -> Vec<f64> {
    let mut path = Vec::with_capacity(returns.len() + 1);
    let mut h = h0;
    path.push(h);
    for &r in returns {
        h = params.omega + params.alpha * r * r + params.beta * h;
        path.push(h);
    }
    path
}

/// Options of [`garch_fit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GarchFitOptions {
    pub optimizer: NelderMeadOptions,
    /// Upper bound kept on alpha + beta (strictly below 1).
    pub max_persistence: f64,
}

impl Default for GarchFitOptions {
    fn default() -> Self {
        Self {
            optimizer: NelderMeadOptions { max_iterations: 1_500, f_tolerance: 1e-9, x_tolerance: 1e-7 },
            max_persistence: 0.9999,
        }
    }
}

/// A fitted GARCH(1,1).
#[derive(Debug, Clone, PartialEq)]
pub struct GarchFit {
    pub params: GarchParams,
    /// Gaussian log-likelihood at the optimum (constant -n/2 ln 2pi included).
    pub log_likelihood: f64,
    /// Variance at which the recursion was started (sample mean square).
    pub h0: f64,
    /// One-step-ahead variance after the last return.
    pub next_variance: f64,
    /// Standard errors of (omega, alpha, beta) from the inverse numerical
    /// Hessian of the negative log-likelihood; `None` when it is not positive
    /// definite (an estimate on the boundary, typically).
    pub std_errors: Option<[f64; 3]>,
    pub iterations: usize,
    pub converged: bool,
}

/// Minimum number of returns [`garch_fit`] accepts.
pub const GARCH_MIN_RETURNS: usize = 100;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

/// Maps unconstrained (ln omega, logit persistence, logit alpha share) to
/// parameters satisfying the stationarity constraints.
fn from_unconstrained(u: &[f64], max_persistence: f64) -> GarchParams {
    let persistence = max_persistence * sigmoid(u[1]);
    let alpha = persistence * sigmoid(u[2]);
    GarchParams { omega: u[0].exp(), alpha, beta: persistence - alpha }
}

fn to_unconstrained(p: &GarchParams, max_persistence: f64) -> [f64; 3] {
    let persistence = p.persistence();
    [p.omega.ln(), logit(persistence / max_persistence), logit(p.alpha / persistence)]
}

/// Fits GARCH(1,1) to zero-mean `returns` (demean them first if needed) by
/// Gaussian QML: returns are scaled to unit mean square, the likelihood is
/// minimized by Nelder–Mead over transformed parameters from four starting
/// points, the best is polished by a restart, and standard errors come from
/// the numerical Hessian.
pub fn garch_fit(returns: &[f64], opts: &GarchFitOptions) -> Result<GarchFit> {
    all_finite(returns)?;
    if returns.len() < GARCH_MIN_RETURNS {
        return Err(ModelError::InsufficientData { needed: GARCH_MIN_RETURNS, got: returns.len() });
    }
    open_interval("max_persistence", opts.max_persistence, 0.0, 1.0)?;
    let scale2 = returns.iter().map(|r| r * r).sum::<f64>() / returns.len() as f64;
    if scale2 <= 0.0 {
        return Err(ModelError::Estimation("all returns are zero".into()));
    }
    let z: Vec<f64> = returns.iter().map(|r| r / scale2.sqrt()).collect();
    let mp = opts.max_persistence;
    let objective = |u: &[f64]| garch_neg_log_likelihood(&from_unconstrained(u, mp), &z, 1.0);
    let starts = [(0.05, 0.90), (0.10, 0.85), (0.03, 0.96), (0.20, 0.70)];
    let mut best: Option<crate::optim::Minimum> = None;
    for (alpha, beta) in starts {
        let start = GarchParams { omega: 1.0 - alpha - beta, alpha, beta };
        let m = nelder_mead(objective, &to_unconstrained(&start, mp), &[0.5; 3], &opts.optimizer)?;
        if best.as_ref().filter(|b| b.value <= m.value).is_none() {
            best = Some(m);
        }
    }
    let first = best.ok_or(ModelError::OptimizationFailed)?;
    let polished = nelder_mead(objective, &first.x, &[0.1; 3], &opts.optimizer)?;
    let m = if polished.value <= first.value { polished } else { first };
    let unit = from_unconstrained(&m.x, mp);
    let params = GarchParams { omega: unit.omega * scale2, ..unit };
    let std_errors = hessian_std_errors(&unit, &z).map(|se| [se[0] * scale2, se[1], se[2]]);
    let n = returns.len() as f64;
    let nll = garch_neg_log_likelihood(&params, returns, scale2);
    let path = garch_variance_path(&params, returns, scale2);
    Ok(GarchFit {
        params,
        log_likelihood: -nll - 0.5 * n * (2.0 * std::f64::consts::PI).ln(),
        h0: scale2,
        next_variance: path[path.len() - 1],
        std_errors,
        iterations: m.iterations,
        converged: m.converged,
    })
}

/// Standard errors from the inverse of the central-difference Hessian of the
/// negative log-likelihood in (omega, alpha, beta) on the unit-scaled data.
fn hessian_std_errors(p: &GarchParams, z: &[f64]) -> Option<[f64; 3]> {
    let theta = [p.omega, p.alpha, p.beta];
    let nll = |t: &[f64; 3]| {
        let q = GarchParams { omega: t[0], alpha: t[1], beta: t[2] };
        garch_neg_log_likelihood(&q, z, 1.0)
    };
    let h: [f64; 3] = theta.map(|t| 1e-4 * t.abs().max(1e-3));
    let mut hess = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in i..3 {
            let shifted = |si: f64, sj: f64| {
                let mut t = theta;
                t[i] += si * h[i];
                t[j] += sj * h[j];
                nll(&t)
            };
            let v = (shifted(1.0, 1.0) - shifted(1.0, -1.0) - shifted(-1.0, 1.0) + shifted(-1.0, -1.0))
                / (4.0 * h[i] * h[j]);
            hess[i][j] = v;
            hess[j][i] = v;
        }
    }
    let inv = invert_3x3(&hess)?;
    let se = [inv[0][0], inv[1][1], inv[2][2]];
    if se.iter().all(|v| v.is_finite() && *v > 0.0) {
        Some(se.map(f64::sqrt))
    } else {
        None
    }
}

fn invert_3x3(m: &[[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let c = |r0: usize, r1: usize, c0: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    let cof = [
        [c(1, 2, 1, 2), -c(1, 2, 0, 2), c(1, 2, 0, 1)],
        [-c(0, 2, 1, 2), c(0, 2, 0, 2), -c(0, 2, 0, 1)],
        [c(0, 1, 1, 2), -c(0, 1, 0, 2), c(0, 1, 0, 1)],
    ];
    let det = m[0][0] * cof[0][0] + m[0][1] * cof[0][1] + m[0][2] * cof[0][2];
    if !det.is_finite() || det.abs() < 1e-300 {
        return None;
    }
    let mut inv = [[0.0; 3]; 3];
    for (i, row) in inv.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = cof[j][i] / det;
        }
    }
    Some(inv)
}

impl GarchFit {
    /// Variance forecast for step `k` ahead (k = 1 is the next return):
    /// `vbar + (alpha + beta)^(k-1) (h[T+1] - vbar)`.
    pub fn variance_at_step(&self, k: usize) -> f64 {
        let p = self.params.persistence();
        let vbar = self.params.unconditional_variance();
        vbar + p.powi(k.saturating_sub(1) as i32) * (self.next_variance - vbar)
    }
}

impl VolForecast for GarchFit {
    /// Sum of the step forecasts over `steps` (the fractional last step is
    /// weighted by its fraction): `K vbar + d (1 - p^K) / (1 - p)` for whole K.
    fn horizon_variance(&self, steps: f64) -> f64 {
        let steps = steps.max(0.0);
        let whole = steps.floor();
        let p = self.params.persistence();
        let vbar = self.params.unconditional_variance();
        let d = self.next_variance - vbar;
        let sum_whole = whole * vbar + d * (1.0 - p.powf(whole)) / (1.0 - p);
        sum_whole + (steps - whole) * self.variance_at_step(whole as usize + 1)
    }
}

/// Simulates `n` GARCH(1,1) returns with Gaussian innovations, starting at
/// the unconditional variance. Seeded: the same seed gives the same series.
pub fn simulate_garch(params: &GarchParams, n: usize, seed: u64) -> Result<Vec<f64>> {
    params.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut h = params.unconditional_variance();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let z: f64 = StandardNormal.sample(&mut rng);
        let r = h.sqrt() * z;
        out.push(r);
        h = params.omega + params.alpha * r * r + params.beta * h;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

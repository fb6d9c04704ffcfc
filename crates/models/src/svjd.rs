//! Stochastic-volatility jump-diffusion: Bates (Heston variance + lognormal
//! compound-Poisson jumps in price) with optional SVCJ jumps in variance.
//!
//! Under the model, with x = ln S, time t in years:
//!
//! ```text
//! dx = (mu - lambda kbar - V/2) dt + sqrt(V) dW1 + J dN
//! dV = kappa (theta - V) dt + xi sqrt(V) dW2 + Zv dN,     d<W1, W2> = rho dt
//! N ~ Poisson(lambda t),  Zv ~ Exp(mean mu_v),  J | Zv ~ N(mu_j + rho_j Zv, sigma_j^2)
//! kbar = E[e^J] - 1 = exp(mu_j + sigma_j^2 / 2) / (1 - rho_j mu_v) - 1
//! ```
//!
//! so that E[S_t] = S_0 e^{mu t}; with `drift_annual = 0` the price is a
//! martingale. mu_v = 0 gives Bates; mu_v > 0 gives SVCJ (Duffie, Pan and
//! Singleton 2000; Eraker, Johannes and Polson 2003). Simulation is Euler in
//! log price and full-truncation Euler in variance (Lord, Koekkoek and van
//! Dijk 2010): the drift and diffusion use max(V, 0). Jumps are drawn per
//! step as an exact Poisson count.
//!
//! Every path has its own ChaCha8 stream (seed, stream = path index), so the
//! results do not depend on the number of threads.

use crate::error::{all_finite, non_negative, positive, ModelError, Result};
use crate::stats::simpson;
use crate::SECONDS_PER_YEAR;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Poisson, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Model parameters, annualized over a 365-day year.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SvjdParams {
    /// Expected simple return rate mu: E[S_t] = S_0 e^{mu t}.
    pub drift_annual: f64,
    /// Mean-reversion speed of the variance, per year.
    pub kappa_per_year: f64,
    /// Long-run level of the diffusive variance (without vol jumps), annual.
    pub theta_annual_var: f64,
    /// Volatility of variance xi (annual units).
    pub xi_annual: f64,
    /// Correlation of the price and variance Brownian motions.
    pub rho: f64,
    /// Jump intensity, jumps per year.
    pub lambda_per_year: f64,
    /// Mean log jump size when the variance jump is zero.
    pub mu_j: f64,
    /// Standard deviation of the log jump size.
    pub sigma_j: f64,
    /// Mean of the exponential variance jump (annual variance); 0 = Bates.
    pub mu_v_annual_var: f64,
    /// Shift of the mean log jump per unit of variance jump (SVCJ rho_J).
    pub rho_j: f64,
}

impl SvjdParams {
    /// Default BTC parameters: the SVCJ posterior means published in the
    /// QuantLet companion code of Hou, Wang, Chen and Härdle (2020) (CRIX,
    /// daily data, returns scaled by sqrt(250)), converted to annual units
    /// as documented in docs/models.md. Approximate; drift set to 0.
    pub fn btc_default() -> Self {
        let y_scale = 250f64.sqrt(); // return units of the source
        let var_scale = 365.0 / 250.0; // source variance -> annual variance
        Self {
            drift_annual: 0.0,
            kappa_per_year: 0.187 * 365.0,
            theta_annual_var: 0.054 * var_scale,
            xi_annual: (0.0069 * var_scale * 365.0).sqrt(),
            rho: 0.2748,
            lambda_per_year: 0.051 * 365.0,
            mu_j: -0.049 / y_scale,
            sigma_j: 2.06f64.sqrt() / y_scale,
            mu_v_annual_var: 0.709 * var_scale,
            rho_j: -0.21 / (y_scale * var_scale),
        }
    }

    /// Same parameters without variance jumps (pure Bates).
    pub fn without_vol_jumps(mut self) -> Self {
        self.mu_v_annual_var = 0.0;
        self.rho_j = 0.0;
        self
    }

    /// Checks every field's domain.
    pub fn validate(&self) -> Result<()> {
        all_finite(&[self.drift_annual, self.mu_j, self.rho_j])?;
        positive("kappa_per_year", self.kappa_per_year)?;
        positive("theta_annual_var", self.theta_annual_var)?;
        non_negative("xi_annual", self.xi_annual)?;
        non_negative("lambda_per_year", self.lambda_per_year)?;
        non_negative("sigma_j", self.sigma_j)?;
        non_negative("mu_v_annual_var", self.mu_v_annual_var)?;
        if !(self.rho >= -1.0 && self.rho <= 1.0) {
            return Err(ModelError::InvalidParameter {
                name: "rho",
                reason: format!("must lie in [-1, 1], got {}", self.rho),
            });
        }
        if self.rho_j * self.mu_v_annual_var >= 1.0 {
            return Err(ModelError::InvalidParameter {
                name: "rho_j",
                reason: "rho_j * mu_v must be < 1 for E[e^J] to exist".into(),
            });
        }
        Ok(())
    }

    /// kbar = E[e^J] - 1, the jump compensator.
    pub fn jump_compensator(&self) -> f64 {
        (self.mu_j + 0.5 * self.sigma_j * self.sigma_j).exp() / (1.0 - self.rho_j * self.mu_v_annual_var) - 1.0
    }

    /// E[J] = mu_j + rho_j mu_v.
    pub fn mean_jump(&self) -> f64 {
        self.mu_j + self.rho_j * self.mu_v_annual_var
    }

    /// E[J^2] = sigma_j^2 + rho_j^2 mu_v^2 + E[J]^2.
    pub fn jump_second_moment(&self) -> f64 {
        let rv = self.rho_j * self.mu_v_annual_var;
        self.sigma_j * self.sigma_j + rv * rv + self.mean_jump().powi(2)
    }

    /// Stationary mean of V: theta + lambda mu_v / kappa.
    pub fn long_run_variance(&self) -> f64 {
        self.theta_annual_var + self.lambda_per_year * self.mu_v_annual_var / self.kappa_per_year
    }

    /// Stationary annual variance of log returns: E[V] + lambda E[J^2].
    pub fn long_run_total_variance(&self) -> f64 {
        self.long_run_variance() + self.lambda_per_year * self.jump_second_moment()
    }
}

/// E[V_t] = m + (v0 - m) e^{-kappa t}, m = long-run variance.
pub fn expected_variance_at(p: &SvjdParams, v0_annual_var: f64, t_years: f64) -> f64 {
    let m = p.long_run_variance();
    m + (v0_annual_var - m) * (-p.kappa_per_year * t_years).exp()
}

/// Expected number of jumps over `horizon_s`.
pub fn expected_jump_count(p: &SvjdParams, horizon_s: f64) -> f64 {
    p.lambda_per_year * horizon_s / SECONDS_PER_YEAR
}

/// Mean and variance of the log return ln(S_T / S_0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogReturnMoments {
    pub mean: f64,
    pub variance: f64,
}

/// Exact first two moments of ln(S_T/S_0) under the continuous-time model.
/// With I = int V, M = int sqrt(V) dW1, S = sum J and
/// B(u) = (1 - e^{-kappa (T-u)}) / kappa:
///
/// ```text
/// mean = (mu - lambda kbar) T - E[I]/2 + lambda T E[J]
/// var  = Var(I)/4 + E[I] + lambda T E[J^2] - Cov(I, M) - Cov(I, S)
/// Var(I)    = int B^2 (xi^2 E[V_u] + 2 lambda mu_v^2) du
/// Cov(I, M) = rho xi int B E[V_u] du
/// Cov(I, S) = lambda (mu_j mu_v + 2 rho_j mu_v^2) int B du
/// ```
/// (integrals by Simpson's rule with 2,000 intervals).
pub fn log_return_moments(p: &SvjdParams, v0_annual_var: f64, horizon_s: f64) -> Result<LogReturnMoments> {
    p.validate()?;
    non_negative("v0_annual_var", v0_annual_var)?;
    let t = non_negative("horizon_s", horizon_s)? / SECONDS_PER_YEAR;
    let k = p.kappa_per_year;
    let ev = |u: f64| expected_variance_at(p, v0_annual_var, u);
    let b = |u: f64| (1.0 - (-k * (t - u)).exp()) / k;
    let mv = p.mu_v_annual_var;
    let lam = p.lambda_per_year;
    const N: usize = 2_000;
    let e_i = simpson(ev, 0.0, t, N);
    let var_i = simpson(|u| b(u).powi(2) * (p.xi_annual.powi(2) * ev(u) + 2.0 * lam * mv * mv), 0.0, t, N);
    let cov_im = p.rho * p.xi_annual * simpson(|u| b(u) * ev(u), 0.0, t, N);
    let cov_is = lam * (p.mu_j * mv + 2.0 * p.rho_j * mv * mv) * simpson(b, 0.0, t, N);
    let mean = (p.drift_annual - lam * p.jump_compensator()) * t - 0.5 * e_i + lam * t * p.mean_jump();
    let variance = 0.25 * var_i + e_i + lam * t * p.jump_second_moment() - cov_im - cov_is;
    Ok(LogReturnMoments { mean, variance })
}

/// RNG of one path: ChaCha8 seeded with `seed`, stream `path_index`.
pub fn path_rng(seed: u64, path_index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(path_index);
    rng
}

/// Poisson draw; inverse transform for small means (one uniform per call).
pub(crate) fn poisson_count(rng: &mut impl Rng, mean: f64) -> u32 {
    if mean <= 0.0 {
        return 0;
    }
    if mean > 10.0 {
        return Poisson::new(mean).map_or(0, |d| d.sample(rng) as u32);
    }
    let u: f64 = rng.gen();
    let mut p = (-mean).exp();
    let mut cdf = p;
    let mut k = 0u32;
    while u > cdf && k < 1_000 {
        k += 1;
        p *= mean / f64::from(k);
        cdf += p;
    }
    k
}

/// Size of one jump: (log price jump, variance jump).
pub(crate) fn draw_jump(p: &SvjdParams, rng: &mut impl Rng) -> (f64, f64) {
    let zv =
        if p.mu_v_annual_var > 0.0 { Exp::new(1.0 / p.mu_v_annual_var).map_or(0.0, |d| d.sample(rng)) } else { 0.0 };
    let eps: f64 = StandardNormal.sample(rng);
    (p.mu_j + p.rho_j * zv + p.sigma_j * eps, zv)
}

/// Mutable state of one simulated path.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PathState {
    log_price: f64,
    variance: f64,
    jumps: u32,
    jump_log_sum: f64,
}

/// Per-step constants.
struct Stepper<'a> {
    p: &'a SvjdParams,
    dt: f64,
    sqrt_1m_rho2: f64,
    drift: f64,
    jump_mean_per_step: f64,
}

impl<'a> Stepper<'a> {
    fn new(p: &'a SvjdParams, dt_years: f64) -> Self {
        Self {
            p,
            dt: dt_years,
            sqrt_1m_rho2: (1.0 - p.rho * p.rho).max(0.0).sqrt(),
            drift: p.drift_annual - p.lambda_per_year * p.jump_compensator(),
            jump_mean_per_step: p.lambda_per_year * dt_years,
        }
    }

    /// One Euler step with a Poisson number of jumps.
    fn step(&self, s: &mut PathState, rng: &mut impl Rng) {
        let n_jumps = poisson_count(rng, self.jump_mean_per_step);
        self.step_with_jumps(s, rng, n_jumps);
    }

    /// One Euler step with exactly `n_jumps` jumps.
    fn step_with_jumps(&self, s: &mut PathState, rng: &mut impl Rng, n_jumps: u32) {
        let p = self.p;
        let v_pos = s.variance.max(0.0);
        let z1: f64 = StandardNormal.sample(rng);
        let z2: f64 = StandardNormal.sample(rng);
        let w2 = p.rho * z1 + self.sqrt_1m_rho2 * z2;
        let sq = (v_pos * self.dt).sqrt();
        s.log_price += (self.drift - 0.5 * v_pos) * self.dt + sq * z1;
        let mut v_next = s.variance + p.kappa_per_year * (p.theta_annual_var - v_pos) * self.dt + p.xi_annual * sq * w2;
        for _ in 0..n_jumps {
            let (j, zv) = draw_jump(p, rng);
            s.log_price += j;
            s.jump_log_sum += j;
            s.jumps += 1;
            v_next += zv;
        }
        s.variance = v_next;
    }
}

/// Horizon and discretization of a simulation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimConfig {
    pub horizon_s: f64,
    pub steps: usize,
    pub seed: u64,
}

impl SimConfig {
    fn dt_years(&self) -> Result<f64> {
        positive("horizon_s", self.horizon_s)?;
        if self.steps == 0 {
            return Err(ModelError::InvalidParameter { name: "steps", reason: "must be >= 1".into() });
        }
        Ok(self.horizon_s / SECONDS_PER_YEAR / self.steps as f64)
    }
}

/// One simulated path: prices and variances at the step boundaries.
#[derive(Debug, Clone, PartialEq)]
pub struct SvjdPath {
    pub dt_s: f64,
    /// `steps + 1` prices, the first is `s0`.
    pub prices: Vec<f64>,
    /// `steps + 1` variances (annual), the first is `v0`; may dip below 0
    /// under full truncation (the dynamics then use 0).
    pub variances: Vec<f64>,
    pub jump_count: u32,
}

/// Simulates path number `path_index` of the set defined by `cfg.seed`.
pub fn simulate_path(
    p: &SvjdParams,
    s0: f64,
    v0_annual_var: f64,
    cfg: &SimConfig,
    path_index: u64,
) -> Result<SvjdPath> {
    p.validate()?;
    positive("s0", s0)?;
    non_negative("v0_annual_var", v0_annual_var)?;
    let stepper = Stepper::new(p, cfg.dt_years()?);
    let mut rng = path_rng(cfg.seed, path_index);
    let mut s = PathState { log_price: s0.ln(), variance: v0_annual_var, jumps: 0, jump_log_sum: 0.0 };
    let mut prices = Vec::with_capacity(cfg.steps + 1);
    let mut variances = Vec::with_capacity(cfg.steps + 1);
    prices.push(s0);
    variances.push(v0_annual_var);
    for _ in 0..cfg.steps {
        stepper.step(&mut s, &mut rng);
        prices.push(s.log_price.exp());
        variances.push(s.variance);
    }
    Ok(SvjdPath { dt_s: cfg.horizon_s / cfg.steps as f64, prices, variances, jump_count: s.jumps })
}

/// Terminal outcome of one path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TerminalDraw {
    /// ln(S_T / S_0).
    pub log_return: f64,
    pub jump_count: u32,
    /// Sum of the log jumps (the jump part of `log_return`).
    pub jump_log_sum: f64,
}

/// Simulates `n_paths` paths in parallel and returns their terminal draws in
/// path order (deterministic for a given seed, whatever the thread count).
pub fn simulate_terminal(
    p: &SvjdParams,
    v0_annual_var: f64,
    cfg: &SimConfig,
    n_paths: usize,
) -> Result<Vec<TerminalDraw>> {
    p.validate()?;
    non_negative("v0_annual_var", v0_annual_var)?;
    let stepper = Stepper::new(p, cfg.dt_years()?);
    Ok((0..n_paths as u64)
        .into_par_iter()
        .map(|i| {
            let mut rng = path_rng(cfg.seed, i);
            let mut s = PathState { log_price: 0.0, variance: v0_annual_var, jumps: 0, jump_log_sum: 0.0 };
            for _ in 0..cfg.steps {
                stepper.step(&mut s, &mut rng);
            }
            TerminalDraw { log_return: s.log_price, jump_count: s.jumps, jump_log_sum: s.jump_log_sum }
        })
        .collect())
}

/// Log returns of `n_paths` paths that each carry exactly `n_jumps` jumps
/// at independent uniform times (the jump count of the path conditioned on
/// N = n_jumps). Path i uses stream `stream_base + i`. Used for stratified
/// tail estimates (see `gap`).
pub fn simulate_terminal_with_jumps(
    p: &SvjdParams,
    v0_annual_var: f64,
    cfg: &SimConfig,
    n_jumps: u32,
    n_paths: usize,
    stream_base: u64,
) -> Result<Vec<f64>> {
    p.validate()?;
    non_negative("v0_annual_var", v0_annual_var)?;
    let stepper = Stepper::new(p, cfg.dt_years()?);
    let steps = cfg.steps;
    Ok((0..n_paths as u64)
        .into_par_iter()
        .map(|i| {
            let mut rng = path_rng(cfg.seed, stream_base + i);
            let mut per_step = vec![0u32; steps];
            for _ in 0..n_jumps {
                per_step[rng.gen_range(0..steps)] += 1;
            }
            let mut s = PathState { log_price: 0.0, variance: v0_annual_var, jumps: 0, jump_log_sum: 0.0 };
            for &k in &per_step {
                stepper.step_with_jumps(&mut s, &mut rng, k);
            }
            s.log_price
        })
        .collect())
}

#[cfg(test)]
mod tests;

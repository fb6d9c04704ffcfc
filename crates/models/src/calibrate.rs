//! Calibration of SVJD parameters from a regularly sampled price series.
//!
//! 1. **Jumps** (threshold detection, Mancini 2009; Lee and Mykland 2008):
//!    return t is a jump when |r_t| > k sigma_t, where sigma_t^2 is the
//!    bipower variation (Barndorff-Nielsen and Shephard 2004) of a window of
//!    neighbouring returns (trailing, or leading for the first window),
//!    computed twice: the second pass drops products that touch a return
//!    flagged by the first. Jump sizes come from a maximum-likelihood fit of
//!    a normal N(m, s^2) to the detected returns, each convolved with its
//!    diffusive noise and truncated to |x| > k sigma_t; the intensity is the
//!    Horvitz–Thompson count sum(1 / P_i) / T, which corrects for jumps
//!    too small to be seen.
//! 2. **Variance** (Heston): non-jump returns are summed in blocks of
//!    `block_steps` into an annualized realized variance RV_b and a block
//!    return R_b. Block averages of a square-root process have
//!    autocovariances gamma(k) = Var(V) e^{-kappa D (k-1)} (1 - e^{-kappa D})^2 / (kappa D)^2
//!    for k >= 1, untouched by the measurement error of RV, so
//!    phi = gamma(2) / gamma(1) = e^{-kappa D} gives kappa, and (Bates)
//!    Var(V) = gamma(1) (kappa D)^2 / (1 - phi)^2 = xi^2 E[V] / (2 kappa) gives xi.
//!    With variance jumps their share of Var(V) swamps the diffusive share,
//!    so xi comes instead from the one-step prediction errors of RV between
//!    adjacent jump-free blocks (reverting to theta), scaled robustly (MAD)
//!    and less the RV measurement noise estimated from realized quarticity. theta = mean(RV) - lambda mu_v / kappa.
//! 3. **rho** from Cov(R_b, RV_{b+1} - RV_{b-1}) = rho xi E[V] (1 - phi)^2 / (kappa^2 D),
//!    again free of the RV measurement error.
//! 4. **mu_v** (SVCJ, optional): the mean jump of the realized variance
//!    across detected price jumps (window after minus window before),
//!    divided by the window average of e^{-kappa t}. rho_J is not estimated:
//!    it is held at `rho_j_prior`.

use crate::error::{all_finite, positive, ModelError, Result};
use crate::optim::{nelder_mead, NelderMeadOptions};
use crate::stats::{autocovariance, covariance, mean, normal_cdf, sample_variance};
use crate::svjd::SvjdParams;
use crate::SECONDS_PER_YEAR;

/// Settings of [`calibrate_svjd`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalibrationConfig {
    /// Sampling interval of the returns, seconds.
    pub step_s: f64,
    /// Returns per realized-variance block (288 for 5-minute data = 1 day).
    pub block_steps: usize,
    /// k: a return beyond k local sigmas is a jump.
    pub jump_threshold_sigma: f64,
    /// Returns in the local bipower window (and the mu_v windows).
    pub vol_window_steps: usize,
    /// Estimate SVCJ variance jumps (mu_v); otherwise mu_v = 0 (Bates).
    pub estimate_vol_jumps: bool,
    /// rho_J, held fixed.
    pub rho_j_prior: f64,
}

impl CalibrationConfig {
    /// Defaults: k = 5, window = one block, Bates (no vol jumps).
    pub fn new(step_s: f64, block_steps: usize) -> Self {
        Self {
            step_s,
            block_steps,
            jump_threshold_sigma: 5.0,
            vol_window_steps: block_steps,
            estimate_vol_jumps: false,
            rho_j_prior: 0.0,
        }
    }
}

/// Estimated jump component.
#[derive(Debug, Clone, PartialEq)]
pub struct JumpEstimate {
    pub lambda_per_year: f64,
    /// Mean of the log jump, E[J].
    pub mean_log_jump: f64,
    /// Standard deviation of the log jump.
    pub std_log_jump: f64,
    /// Indices (into the returns) of the detected jumps.
    pub jump_indices: Vec<usize>,
    /// Mean probability that a jump of the fitted size is detected.
    pub mean_detection_probability: f64,
}

/// Estimated variance dynamics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HestonEstimate {
    pub kappa_per_year: f64,
    pub theta_annual_var: f64,
    pub xi_annual: f64,
    pub rho: f64,
    /// Mean realized variance (annual).
    pub mean_variance: f64,
    /// phi = gamma(2) / gamma(1) before clamping.
    pub ar_coefficient_raw: f64,
    pub blocks: usize,
}

/// Full result: parameters plus the pieces they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    pub params: SvjdParams,
    pub jumps: JumpEstimate,
    pub heston: HestonEstimate,
    /// Clamps that were applied (empty when every estimate was interior).
    pub notes: Vec<String>,
}

/// Log returns of a positive price series.
pub fn log_returns_from_prices(prices: &[f64]) -> Result<Vec<f64>> {
    all_finite(prices)?;
    if let Some(i) = prices.iter().position(|p| *p <= 0.0) {
        return Err(ModelError::InvalidParameter { name: "prices", reason: format!("price {i} is not positive") });
    }
    Ok(prices.windows(2).map(|w| (w[1] / w[0]).ln()).collect())
}

/// Local diffusive standard deviation per return: the larger of the bipower
/// variation over the `window` returns before and the `window` returns after
/// it (the return itself excluded), skipping products that touch `excluded`.
pub fn local_bipower_sigma(returns: &[f64], window: usize, excluded: &[bool]) -> Vec<f64> {
    let n = returns.len();
    // prefix sums over i >= 1 of |r_{i-1}||r_i| and of usable-pair counts
    let mut sum = vec![0.0; n + 1];
    let mut count = vec![0.0; n + 1];
    for i in 0..n {
        let usable = i >= 1 && !excluded[i] && !excluded[i - 1];
        let a = if usable { returns[i - 1].abs() * returns[i].abs() } else { 0.0 };
        sum[i + 1] = sum[i] + a;
        count[i + 1] = count[i] + if usable { 1.0 } else { 0.0 };
    }
    let range = |lo: usize, hi: usize| {
        let (s, c) = (sum[hi + 1] - sum[lo], count[hi + 1] - count[lo]);
        if c > 0.0 {
            (std::f64::consts::FRAC_PI_2 * s / c).sqrt()
        } else {
            0.0
        }
    };
    // Trailing window: pairs ending at t-1; leading window: pairs starting
    // at t+1. Taking the larger keeps a variance jump at time tau from
    // flagging the high-volatility returns right after tau.
    (0..n)
        .map(|t| {
            let trailing = if t >= window { range(t + 2 - window, t - 1) } else { 0.0 };
            let leading = if t + window < n { range(t + 2, t + window) } else { 0.0 };
            trailing.max(leading)
        })
        .collect()
}

/// Flags |r_t| > k sigma_t, twice (second pass with jumps removed from the
/// bipower windows). Returns (flags, sigma per return).
pub fn detect_jumps(returns: &[f64], k: f64, window: usize) -> Result<(Vec<bool>, Vec<f64>)> {
    all_finite(returns)?;
    positive("jump_threshold_sigma", k)?;
    if window < 3 || returns.len() < window + 2 {
        return Err(ModelError::InsufficientData { needed: window.max(3) + 2, got: returns.len() });
    }
    let mut flags = vec![false; returns.len()];
    let mut sigma = Vec::new();
    for _ in 0..2 {
        sigma = local_bipower_sigma(returns, window, &flags);
        flags = returns.iter().zip(&sigma).map(|(r, s)| *s > 0.0 && r.abs() > k * s).collect();
    }
    Ok((flags, sigma))
}

/// Probability that x ~ N(m, s^2) falls outside [-c, c].
fn detect_probability(m: f64, s: f64, c: f64) -> f64 {
    (normal_cdf((-c - m) / s) + 1.0 - normal_cdf((c - m) / s)).max(1e-300)
}

/// ML fit of the jump size normal N(m, s_j^2) to detected returns x_i with
/// diffusive sd d_i and detection threshold c_i = k d_i.
fn fit_jump_sizes(x: &[f64], d: &[f64], k: f64) -> Result<(f64, f64)> {
    let nll = |u: &[f64]| {
        let sj = u[1].exp();
        x.iter()
            .zip(d)
            .map(|(xi, di)| {
                let s = (sj * sj + di * di).sqrt();
                let z = (xi - u[0]) / s;
                0.5 * z * z + s.ln() + detect_probability(u[0], s, k * di).ln()
            })
            .sum::<f64>()
    };
    let start = [mean(x), sample_variance(x).sqrt().max(1e-6).ln()];
    let m = nelder_mead(nll, &start, &[0.01, 0.3], &NelderMeadOptions::default())?;
    Ok((m.x[0], m.x[1].exp()))
}

/// Jump detection plus size and intensity estimates.
pub fn estimate_jumps(returns: &[f64], cfg: &CalibrationConfig) -> Result<(JumpEstimate, Vec<bool>, Vec<f64>)> {
    let (flags, sigma) = detect_jumps(returns, cfg.jump_threshold_sigma, cfg.vol_window_steps)?;
    let idx: Vec<usize> = (0..returns.len()).filter(|&i| flags[i]).collect();
    let x: Vec<f64> = idx.iter().map(|&i| returns[i]).collect();
    let d: Vec<f64> = idx.iter().map(|&i| sigma[i]).collect();
    let t_years = returns.len() as f64 * cfg.step_s / SECONDS_PER_YEAR;
    let (m, s, probs) = if x.len() >= 3 {
        let (m, s) = fit_jump_sizes(&x, &d, cfg.jump_threshold_sigma)?;
        let probs: Vec<f64> =
            d.iter().map(|di| detect_probability(m, (s * s + di * di).sqrt(), cfg.jump_threshold_sigma * di)).collect();
        (m, s, probs)
    } else {
        // Too few jumps for a fit: raw moments, no detection correction.
        (mean(&x), sample_variance(&x).sqrt(), vec![1.0; x.len()])
    };
    let est = JumpEstimate {
        lambda_per_year: probs.iter().map(|p| 1.0 / p).sum::<f64>() / t_years,
        mean_log_jump: m,
        std_log_jump: s,
        mean_detection_probability: if probs.is_empty() { 1.0 } else { mean(&probs) },
        jump_indices: idx,
    };
    Ok((est, flags, sigma))
}

/// Statistics of one realized-variance block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Block {
    /// Annualized realized variance of the non-jump returns.
    pub rv_annual: f64,
    /// Sum of the non-jump returns.
    pub return_sum: f64,
    /// Estimated variance of the RV measurement error,
    /// 2 mean(r^4) / (3 n dt^2) (from E[r^4] = 3 (V dt)^2).
    pub rv_noise_var: f64,
    /// A jump was detected in the block.
    pub has_jump: bool,
}

/// Splits the returns into blocks of `block_steps` (a partial last block is
/// dropped) and summarizes each from its non-jump returns.
pub fn realized_variance_blocks(returns: &[f64], jumps: &[bool], block_steps: usize, step_s: f64) -> Vec<Block> {
    let dt = step_s / SECONDS_PER_YEAR;
    let size = block_steps.max(1);
    returns
        .chunks_exact(size)
        .zip(jumps.chunks_exact(size))
        .filter_map(|(r, j)| {
            let kept: Vec<f64> = r.iter().zip(j).filter(|(_, f)| !**f).map(|(x, _)| *x).collect();
            if kept.is_empty() {
                return None;
            }
            let n = kept.len() as f64;
            let quartic = kept.iter().map(|x| x.powi(4)).sum::<f64>() / n;
            Some(Block {
                rv_annual: kept.iter().map(|x| x * x).sum::<f64>() / n / dt,
                return_sum: kept.iter().sum(),
                rv_noise_var: 2.0 * quartic / (3.0 * n * dt * dt),
                has_jump: j.iter().any(|f| *f),
            })
        })
        .collect()
}

/// Median of a slice (NaN-free input); 0 when empty.
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// xi from one-step prediction errors of RV between adjacent jump-free
/// blocks. Between jumps V reverts to theta, so with phi = e^{-kappa D}
/// u_b = RV_b - theta - phi (RV_{b-1} - theta) removes the predictable
/// part (exactly, for block averages of a linear-drift diffusion), leaving
/// Var(u_b) = xi^2 V G / (2 kappa) + N_b + phi^2 N_{b-1}, where
/// x = kappa D, G = g0 (1 + phi^2) - 2 phi g1, g0 = 2 (x - 1 + e^{-x}) / x^2,
/// g1 = (1 - e^{-x})^2 / x^2 and N is the RV measurement noise (from
/// realized quarticity). u_b / sqrt(V) is scaled by a robust estimate
/// (1.4826 MAD) because jumps too small to be detected still carry
/// variance jumps that would dominate a plain mean of squares.
fn xi_from_prediction_errors(blocks: &[Block], kappa: f64, theta: f64, block_years: f64) -> Option<f64> {
    let x = kappa * block_years;
    let phi = (-x).exp();
    let (z, noise): (Vec<f64>, Vec<f64>) = blocks
        .windows(2)
        .filter(|w| !w[0].has_jump && !w[1].has_jump)
        .map(|w| {
            let level = 0.5 * (w[0].rv_annual + w[1].rv_annual);
            let u = w[1].rv_annual - theta - phi * (w[0].rv_annual - theta);
            (u / level.sqrt(), (w[1].rv_noise_var + phi * phi * w[0].rv_noise_var) / level)
        })
        .unzip();
    if z.len() < 10 {
        return None;
    }
    let centre = median(&z);
    let mad = median(&z.iter().map(|v| (v - centre).abs()).collect::<Vec<_>>());
    let g0 = 2.0 * (x - 1.0 + (-x).exp()) / (x * x);
    let g1 = (1.0 - (-x).exp()).powi(2) / (x * x);
    let g = g0 * (1.0 + phi * phi) - 2.0 * phi * g1;
    let diffusive = (1.4826 * mad).powi(2) - mean(&noise);
    Some((2.0 * kappa * diffusive / g).max(0.0).sqrt())
}

/// kappa from the block autocovariances. Returns (kappa, phi raw, phi used).
fn estimate_kappa(rv: &[f64], block_years: f64, notes: &mut Vec<String>) -> Result<(f64, f64, f64)> {
    let (g1, g2) = (autocovariance(rv, 1), autocovariance(rv, 2));
    let m = mean(rv);
    if g1.is_nan() || g1 <= 1e-12 * m * m {
        return Err(ModelError::Estimation("realized variance shows no persistence (gamma(1) <= 0)".into()));
    }
    let raw = g2 / g1;
    let phi = raw.clamp(0.01, 0.999);
    if phi != raw {
        notes.push(format!("AR coefficient {raw:.4} clamped to {phi}"));
    }
    Ok((-phi.ln() / block_years, raw, phi))
}

/// Mean variance jump across detected price jumps (see module docs).
fn estimate_mu_v(returns: &[f64], flags: &[bool], jump_idx: &[usize], window: usize, step_s: f64, kappa: f64) -> f64 {
    let step_years = step_s / SECONDS_PER_YEAR;
    let rv = |lo: usize, hi: usize| {
        let kept: Vec<f64> = (lo..hi).filter(|&i| !flags[i]).map(|i| returns[i] * returns[i]).collect();
        if kept.is_empty() {
            None
        } else {
            Some(mean(&kept) / step_years)
        }
    };
    let diffs: Vec<f64> = jump_idx
        .iter()
        .filter(|&&t| t >= window && t + 1 + window <= returns.len())
        .filter_map(|&t| Some(rv(t + 1, t + 1 + window)? - rv(t - window, t)?))
        .collect();
    let kw = kappa * window as f64 * step_years;
    let decay = (1.0 - (-kw).exp()) / kw;
    (mean(&diffs) / decay).max(0.0)
}

/// Heston part from the blocks, given the jump intensity and mu_v.
fn estimate_heston(
    blocks: &[Block],
    block_years: f64,
    kappa_phi: (f64, f64, f64),
    lambda: f64,
    mu_v: f64,
    notes: &mut Vec<String>,
) -> Result<HestonEstimate> {
    let rv: Vec<f64> = blocks.iter().map(|b| b.rv_annual).collect();
    let (kappa, raw, phi) = kappa_phi;
    let m = mean(&rv);
    let kd = kappa * block_years;
    let var_v = autocovariance(&rv, 1) * kd * kd / (1.0 - phi).powi(2);
    let mut theta = m - lambda * mu_v / kappa;
    if theta <= 0.0 {
        notes.push(format!("theta estimate {theta:.5} floored at 1% of mean RV"));
        theta = 0.01 * m;
    }
    let xi = if mu_v > 0.0 {
        xi_from_prediction_errors(blocks, kappa, theta, block_years)
            .ok_or_else(|| ModelError::Estimation("fewer than 10 jump-free block pairs".into()))?
    } else {
        (2.0 * kappa * var_v / m).max(0.0).sqrt()
    };
    if xi == 0.0 {
        notes.push("xi estimate floored at 0".into());
    }
    let r: Vec<f64> = blocks[1..blocks.len() - 1].iter().map(|b| b.return_sum).collect();
    let drv: Vec<f64> = (1..blocks.len() - 1).map(|b| rv[b + 1] - rv[b - 1]).collect();
    let denom = xi * m * (1.0 - phi).powi(2) / (kappa * kappa * block_years);
    let rho_raw = if denom > 0.0 { covariance(&r, &drv) / denom } else { 0.0 };
    let rho = rho_raw.clamp(-0.99, 0.99);
    if rho != rho_raw {
        notes.push(format!("rho estimate {rho_raw:.3} clamped to {rho}"));
    }
    Ok(HestonEstimate {
        kappa_per_year: kappa,
        theta_annual_var: theta,
        xi_annual: xi,
        rho,
        mean_variance: m,
        ar_coefficient_raw: raw,
        blocks: blocks.len(),
    })
}

/// Calibrates SVJD parameters from log returns sampled every `cfg.step_s`
/// seconds. Needs at least 20 blocks. The drift is set to 0.
pub fn calibrate_svjd(returns: &[f64], cfg: &CalibrationConfig) -> Result<Calibration> {
    positive("step_s", cfg.step_s)?;
    const MIN_BLOCKS: usize = 20;
    if cfg.block_steps < 2 || returns.len() < MIN_BLOCKS * cfg.block_steps {
        return Err(ModelError::InsufficientData { needed: MIN_BLOCKS * cfg.block_steps.max(2), got: returns.len() });
    }
    let (jumps, flags, _) = estimate_jumps(returns, cfg)?;
    let blocks = realized_variance_blocks(returns, &flags, cfg.block_steps, cfg.step_s);
    if blocks.len() < MIN_BLOCKS {
        return Err(ModelError::InsufficientData { needed: MIN_BLOCKS, got: blocks.len() });
    }
    let block_years = cfg.block_steps as f64 * cfg.step_s / SECONDS_PER_YEAR;
    let mut notes = Vec::new();
    let rv: Vec<f64> = blocks.iter().map(|b| b.rv_annual).collect();
    let kappa_phi = estimate_kappa(&rv, block_years, &mut notes)?;
    let mu_v = if cfg.estimate_vol_jumps {
        estimate_mu_v(returns, &flags, &jumps.jump_indices, cfg.vol_window_steps, cfg.step_s, kappa_phi.0)
    } else {
        0.0
    };
    let heston = estimate_heston(&blocks, block_years, kappa_phi, jumps.lambda_per_year, mu_v, &mut notes)?;
    let rj = cfg.rho_j_prior;
    let sigma_j2 = jumps.std_log_jump.powi(2) - (rj * mu_v).powi(2);
    let params = SvjdParams {
        drift_annual: 0.0,
        kappa_per_year: heston.kappa_per_year,
        theta_annual_var: heston.theta_annual_var,
        xi_annual: heston.xi_annual,
        rho: heston.rho,
        lambda_per_year: jumps.lambda_per_year,
        mu_j: jumps.mean_log_jump - rj * mu_v,
        sigma_j: sigma_j2.max(0.0).sqrt(),
        mu_v_annual_var: mu_v,
        rho_j: rj,
    };
    params.validate()?;
    Ok(Calibration { params, jumps, heston, notes })
}

/// [`calibrate_svjd`] on the log returns of `prices`.
pub fn calibrate_from_prices(prices: &[f64], cfg: &CalibrationConfig) -> Result<Calibration> {
    calibrate_svjd(&log_returns_from_prices(prices)?, cfg)
}

#[cfg(test)]
mod tests;

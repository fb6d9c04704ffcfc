//! Volatility regimes: a two-state Markov-switching model of returns (Hamilton
//! 1989) with its filter, a forecast over the liquidation horizon, and an EM
//! (Baum-Welch) fit.
//!
//! Model: `r_t = sigma_{S_t} e_t`, `e_t ~ N(0, 1)`, `S_t in {low, high}` a Markov
//! chain with `P(low -> low) = p_stay_low`, `P(high -> high) = p_stay_high`.
//! Per-step units (a return of one sampling step; no drift: margin horizons are
//! minutes).
//!
//! Filter: `pred_t = p_{t-1} p_hh + (1 - p_{t-1})(1 - p_ll)`;
//! `p_t = pred_t f_h(r_t) / (pred_t f_h(r_t) + (1 - pred_t) f_l(r_t))` with `f` the
//! normal densities. The forecast over `h` steps: `P(S_{t+h} = high)` from the
//! chain's `h`-step transition (`p_h + (p_t - p_h) (p_ll + p_hh - 1)^h`, `p_h` the
//! stationary share), and `P(high at some step in t+1..t+h)`
//! `= 1 - [(1 - p_t) p_ll + p_t (1 - p_hh)] p_ll^(h-1)`. Because the chain has
//! memory, a rising filtered probability anticipates the high-variance steps
//! that follow (it sees a regime start before a large move completes it).

use crate::error::{all_finite, open_interval, positive, ModelError, Result};
use serde::{Deserialize, Serialize};

/// Parameters of the two-state model (per-step volatilities).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegimeParams {
    pub sigma_low: f64,
    pub sigma_high: f64,
    pub p_stay_low: f64,
    pub p_stay_high: f64,
}

impl RegimeParams {
    pub fn validate(&self) -> Result<()> {
        positive("sigma_low", self.sigma_low)?;
        positive("sigma_high", self.sigma_high)?;
        if self.sigma_high <= self.sigma_low {
            return Err(ModelError::InvalidParameter {
                name: "sigma_high",
                reason: format!("must exceed sigma_low {}, got {}", self.sigma_low, self.sigma_high),
            });
        }
        open_interval("p_stay_low", self.p_stay_low, 0.0, 1.0)?;
        open_interval("p_stay_high", self.p_stay_high, 0.0, 1.0)?;
        Ok(())
    }

    /// Long-run share of steps in the high regime.
    pub fn stationary_high(&self) -> f64 {
        (1.0 - self.p_stay_low) / (2.0 - self.p_stay_low - self.p_stay_high)
    }

    /// One step of the chain from `prob_high`.
    fn predict(&self, prob_high: f64) -> f64 {
        prob_high * self.p_stay_high + (1.0 - prob_high) * (1.0 - self.p_stay_low)
    }

    /// Posterior of high given the predicted prior and return `r` (likelihood
    /// ratio in logs: no underflow for large returns).
    fn update(&self, prior_high: f64, r: f64) -> f64 {
        let (l, h) = (self.sigma_low, self.sigma_high);
        let log_ratio = (l / h).ln() + 0.5 * r * r * (1.0 / (l * l) - 1.0 / (h * h));
        let odds = prior_high / (1.0 - prior_high).max(1e-300);
        let log_post_odds = odds.max(1e-300).ln() + log_ratio;
        1.0 / (1.0 + (-log_post_odds).exp())
    }

    /// Normal densities of `r` under low and high.
    fn densities(&self, r: f64) -> (f64, f64) {
        let d = |s: f64| (-0.5 * (r / s) * (r / s)).exp() / (s * (2.0 * std::f64::consts::PI).sqrt());
        (d(self.sigma_low), d(self.sigma_high))
    }
}

/// The Hamilton filter: the filtered probability of the high regime.
#[derive(Debug, Clone, PartialEq)]
pub struct RegimeFilter {
    params: RegimeParams,
    prob_high: f64,
}

impl RegimeFilter {
    /// Starts at the chain's stationary share.
    pub fn new(params: RegimeParams) -> Result<Self> {
        params.validate()?;
        Ok(RegimeFilter { params, prob_high: params.stationary_high() })
    }

    pub fn params(&self) -> &RegimeParams {
        &self.params
    }

    /// Filtered `P(S_t = high | r_1..r_t)`.
    pub fn prob_high(&self) -> f64 {
        self.prob_high
    }

    /// Takes one return (a non-finite return is ignored: the state is kept).
    pub fn update(&mut self, r: f64) -> f64 {
        if r.is_finite() {
            let prior = self.params.predict(self.prob_high);
            self.prob_high = self.params.update(prior, r).clamp(0.0, 1.0);
        }
        self.prob_high
    }

    /// `P(S_{t+h} = high)`.
    pub fn prob_high_at(&self, h_steps: u32) -> f64 {
        let p = &self.params;
        let stat = p.stationary_high();
        stat + (self.prob_high - stat) * (p.p_stay_low + p.p_stay_high - 1.0).powi(h_steps as i32)
    }

    /// `P(S_s = high for some s in t+1..t+h)`.
    pub fn prob_high_within(&self, h_steps: u32) -> f64 {
        if h_steps == 0 {
            return self.prob_high;
        }
        let p = &self.params;
        let first_low = (1.0 - self.prob_high) * p.p_stay_low + self.prob_high * (1.0 - p.p_stay_high);
        1.0 - first_low * p.p_stay_low.powi(h_steps as i32 - 1)
    }

    /// Expected volatility of the next step.
    pub fn next_step_vol(&self) -> f64 {
        let q = self.params.predict(self.prob_high);
        let p = &self.params;
        (q * p.sigma_high * p.sigma_high + (1.0 - q) * p.sigma_low * p.sigma_low).sqrt()
    }
}

/// Result of [`fit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegimeFit {
    pub params: RegimeParams,
    pub log_likelihood: f64,
    pub iterations: usize,
    /// Log-likelihood after every iteration (EM never lowers it).
    pub trace: Vec<f64>,
}

const MAX_ITERATIONS_LIMIT: usize = 10_000;

/// Forward pass (normalized): filtered high probabilities, predicted priors,
/// and the log-likelihood.
fn forward(p: &RegimeParams, returns: &[f64], start_high: f64) -> (Vec<f64>, Vec<f64>, f64) {
    let mut filtered = Vec::with_capacity(returns.len());
    let mut priors = Vec::with_capacity(returns.len());
    let mut prob = start_high;
    let mut ll = 0.0;
    for (t, &r) in returns.iter().enumerate() {
        let prior = if t == 0 { start_high } else { p.predict(prob) };
        let (fl, fh) = p.densities(r);
        let mix = prior * fh + (1.0 - prior) * fl;
        ll += mix.max(1e-300).ln();
        prob = p.update(prior, r).clamp(0.0, 1.0);
        priors.push(prior);
        filtered.push(prob);
    }
    (filtered, priors, ll)
}

/// One EM step: smoothed probabilities (Kim smoother) and pairwise transitions
/// give the new volatilities and transition probabilities.
fn em_step(p: &RegimeParams, returns: &[f64], start_high: f64) -> (RegimeParams, f64, f64) {
    let (filtered, priors, ll) = forward(p, returns, start_high);
    let n = returns.len();
    let mut smooth = filtered.clone();
    let (mut ll_to_l, mut lh, mut hl, mut hh) = (0.0, 0.0, 0.0, 0.0);
    for t in (0..n - 1).rev() {
        let (f, next_prior, s_next) = (filtered[t], priors[t + 1], smooth[t + 1]);
        // Joint P(S_t = i, S_{t+1} = j | all) = f_i P_ij s_j / prior_j.
        let ratio_h = s_next / next_prior.max(1e-300);
        let ratio_l = (1.0 - s_next) / (1.0 - next_prior).max(1e-300);
        let j_hh = f * p.p_stay_high * ratio_h;
        let j_hl = f * (1.0 - p.p_stay_high) * ratio_l;
        let j_lh = (1.0 - f) * (1.0 - p.p_stay_low) * ratio_h;
        let j_ll = (1.0 - f) * p.p_stay_low * ratio_l;
        smooth[t] = (j_hh + j_hl).clamp(0.0, 1.0);
        hh += j_hh;
        hl += j_hl;
        lh += j_lh;
        ll_to_l += j_ll;
    }
    let (mut wl, mut wh, mut sl, mut sh) = (0.0, 0.0, 0.0, 0.0);
    for (s, r) in smooth.iter().zip(returns) {
        wh += s;
        wl += 1.0 - s;
        sh += s * r * r;
        sl += (1.0 - s) * r * r;
    }
    let clamp = |x: f64| x.clamp(1e-6, 1.0 - 1e-6);
    let next = RegimeParams {
        sigma_low: (sl / wl.max(1e-300)).sqrt().max(1e-12),
        sigma_high: (sh / wh.max(1e-300)).sqrt().max(1e-12),
        p_stay_low: clamp(ll_to_l / (ll_to_l + lh).max(1e-300)),
        p_stay_high: clamp(hh / (hh + hl).max(1e-300)),
    };
    (next, ll, smooth[0])
}

/// Maximum-likelihood fit by EM from `returns` (per-step), starting from
/// volatilities at 0.7x and 2x the sample's and sticky transitions; stops when
/// the log-likelihood gains less than `tolerance` or after `max_iterations`.
pub fn fit(returns: &[f64], max_iterations: usize, tolerance: f64) -> Result<RegimeFit> {
    if returns.len() < 100 {
        return Err(ModelError::InsufficientData { needed: 100, got: returns.len() });
    }
    all_finite(returns)?;
    if max_iterations == 0 || max_iterations > MAX_ITERATIONS_LIMIT {
        return Err(ModelError::InvalidParameter {
            name: "max_iterations",
            reason: format!("must be in 1..={MAX_ITERATIONS_LIMIT}"),
        });
    }
    positive("tolerance", tolerance)?;
    let rms = (returns.iter().map(|r| r * r).sum::<f64>() / returns.len() as f64).sqrt();
    positive("returns rms", rms)?;
    let mut params = RegimeParams { sigma_low: 0.7 * rms, sigma_high: 2.0 * rms, p_stay_low: 0.99, p_stay_high: 0.95 };
    let mut start = params.stationary_high();
    let mut trace = Vec::new();
    for _ in 0..max_iterations {
        let (next, ll, smoothed_start) = em_step(&params, returns, start);
        trace.push(ll);
        params = next;
        start = smoothed_start.clamp(1e-6, 1.0 - 1e-6);
        if trace.len() >= 2 && trace[trace.len() - 1] - trace[trace.len() - 2] < tolerance {
            break;
        }
    }
    if params.sigma_high < params.sigma_low {
        params = RegimeParams {
            sigma_low: params.sigma_high,
            sigma_high: params.sigma_low,
            p_stay_low: params.p_stay_high,
            p_stay_high: params.p_stay_low,
        };
    }
    params.validate().map_err(|e| ModelError::Estimation(format!("EM ended at a degenerate model: {e}")))?;
    let (_, _, log_likelihood) = forward(&params, returns, params.stationary_high());
    Ok(RegimeFit { params, log_likelihood, iterations: trace.len(), trace })
}

#[cfg(test)]
mod tests;

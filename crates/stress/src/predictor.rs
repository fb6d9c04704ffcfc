//! The cascade predictor: the probability of a fall of at least `fall` within
//! `horizon_steps` from the predictive policy's features, a logistic regression
//! (smartcore) trained on histories the real engine produced from simulated
//! paths, evaluated out of sample against a volatility-only baseline.
//!
//! Data: Monte Carlo paths run under the predictive policy with traces (the
//! engine's own marks, after liquidation impact). At every `sample_every`-th
//! step `t` of a path, features: the regime probability (high regime within the
//! horizon), the cascade amplification of the probe shock down, the share of the
//! down-side map within two probe shocks of the mark, and the trailing
//! realized volatility (annualized, 30 steps); label: the mark's lowest point in
//! `(t, t + horizon]` is at least `fall` below the mark at `t`. Paths with an
//! index below half the count train, the rest test (no path in both).
//! Figures: AUC (Mann-Whitney, ties halved), Brier score, the base rate's Brier
//! score for reference.

use crate::book::build_book;
use crate::driver::{run_scenario_with, Advisors, RunRequest};
use crate::error::{Result, StressError};
use crate::options::StressOptions;
use crate::policy::PolicyKind;
use crate::predictive::PredictiveModel;
use crate::runner::{load_config, load_population, with_floors};
use crate::scenario;
use rayon::prelude::*;
use serde::Serialize;
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::logistic_regression::{LogisticRegression, LogisticRegressionParameters};
use solvent_models::svjd::SvjdParams;

/// Trailing window of the volatility feature, steps.
pub const VOL_WINDOW_STEPS: usize = 30;
/// Feature names, in column order.
pub const FEATURES: [&str; 4] = ["regime_probability", "amplification_down", "map_concentration_down", "volatility"];

/// What to collect and predict.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PredictorOptions {
    pub paths: usize,
    /// A cascade: the mark falls at least this much (fraction) within the horizon.
    pub fall: f64,
    pub horizon_steps: usize,
    /// Use every n-th step as a sample (neighbouring steps are nearly the same sample).
    pub sample_every: usize,
}

impl Default for PredictorOptions {
    fn default() -> Self {
        PredictorOptions { paths: 0, fall: 0.02, horizon_steps: 30, sample_every: 5 }
    }
}

/// One sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub path: usize,
    pub features: [f64; 4],
    pub cascade: bool,
}

/// Out-of-sample figures of a model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    pub auc: f64,
    pub brier: f64,
    /// Intercept and coefficients on standardized features.
    pub coefficients: Vec<f64>,
}

/// The evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictorReport {
    pub options: PredictorOptions,
    pub features: Vec<&'static str>,
    pub train_samples: usize,
    pub test_samples: usize,
    pub train_cascades: usize,
    pub test_cascades: usize,
    /// Brier score of always forecasting the training base rate.
    pub base_rate_brier: f64,
    pub model: Scores,
    pub volatility_only: Scores,
}

fn trailing_vol(prices: &[f64], k: usize, step_s: f64) -> f64 {
    let lo = k.saturating_sub(VOL_WINDOW_STEPS);
    let returns: Vec<f64> = (lo + 1..=k).map(|i| (prices[i] / prices[i - 1]).ln()).collect();
    let ms = returns.iter().map(|r| r * r).sum::<f64>() / returns.len().max(1) as f64;
    (ms * solvent_models::SECONDS_PER_YEAR / step_s).sqrt()
}

/// Samples of one path's traced run.
fn path_samples(path: usize, trace: &crate::metrics::Trace, o: &PredictorOptions, step_s: f64) -> Vec<Sample> {
    let n = trace.price.len().min(trace.views.len());
    let mut out = Vec::new();
    for k in (VOL_WINDOW_STEPS..n.saturating_sub(o.horizon_steps)).step_by(o.sample_every.max(1)) {
        let p = trace.price[k];
        let low = trace.price[k + 1..=k + o.horizon_steps].iter().copied().fold(p, f64::min);
        let v = trace.views[k].1;
        out.push(Sample {
            path,
            features: [v.prob_high, v.amplification_down, v.concentration_down, trailing_vol(&trace.price, k, step_s)],
            cascade: low <= p * (1.0 - o.fall),
        });
    }
    out
}

/// Runs `o.paths` Monte Carlo paths of `options` under the predictive policy and samples them.
pub fn collect(options: &StressOptions, o: &PredictorOptions) -> Result<Vec<Sample>> {
    let config = with_floors(load_config(options)?, &options.frontier, options.predictive.calm_k)?;
    let population = load_population(options, &config)?;
    let book = build_book(&config, &population, options, PolicyKind::Predictive, None)?;
    let model = PredictiveModel::new(options.predictive, options.mc_step_s, options.seed)?;
    let v0 = options.mc_v0_annual_var.unwrap_or_else(|| SvjdParams::btc_default().long_run_variance());
    let per_path: Vec<Result<Vec<Sample>>> = (0..o.paths)
        .into_par_iter()
        .map(|i| {
            let s = scenario::monte_carlo(options.seed, i as u64, v0, options.mc_steps(), options.mc_step_s)?;
            let models = Advisors { dynamic: None, predictive: Some(&model) };
            let outcome = run_scenario_with(&book, &s, models, options, RunRequest { journal: false, trace: true })?;
            let trace = outcome.trace.unwrap_or_default();
            Ok(path_samples(i, &trace, o, options.mc_step_s as f64))
        })
        .collect();
    let mut samples = Vec::new();
    for p in per_path {
        samples.extend(p?);
    }
    Ok(samples)
}

/// AUC of `scores` for `labels` (Mann-Whitney U over ranks, ties get the mean rank).
pub fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut ranks = vec![0.0; scores.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            ranks[o] = mean_rank;
        }
        i = j + 1;
    }
    let positives = labels.iter().filter(|l| **l).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return f64::NAN;
    }
    let rank_sum: f64 = ranks.iter().zip(labels).filter(|(_, l)| **l).map(|(r, _)| r).sum();
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// Brier score of probabilities `p` for `labels`.
pub fn brier(p: &[f64], labels: &[bool]) -> f64 {
    let n = p.len().max(1) as f64;
    p.iter().zip(labels).map(|(p, l)| (p - if *l { 1.0 } else { 0.0 }).powi(2)).sum::<f64>() / n
}

/// Fits a logistic regression on the train rows of `columns` and scores the test rows.
fn fit_and_score(train: &[Sample], test: &[Sample], columns: &[usize]) -> Result<Scores> {
    let fail = |e: smartcore::error::Failed| StressError::Predictor(e.to_string());
    let stats: Vec<(f64, f64)> = columns
        .iter()
        .map(|&c| {
            let n = train.len().max(1) as f64;
            let mean = train.iter().map(|s| s.features[c]).sum::<f64>() / n;
            let var = train.iter().map(|s| (s.features[c] - mean).powi(2)).sum::<f64>() / n;
            (mean, var.sqrt().max(1e-12))
        })
        .collect();
    let rows = |set: &[Sample]| -> Vec<Vec<f64>> {
        set.iter().map(|s| columns.iter().zip(&stats).map(|(&c, (m, sd))| (s.features[c] - m) / sd).collect()).collect()
    };
    let x = DenseMatrix::from_2d_vec(&rows(train)).map_err(fail)?;
    let y: Vec<i32> = train.iter().map(|s| i32::from(s.cascade)).collect();
    let lr = LogisticRegression::fit(&x, &y, LogisticRegressionParameters::default().with_alpha(1e-3)).map_err(fail)?;
    let intercept = *lr.intercept().get((0, 0));
    let coef: Vec<f64> = (0..columns.len()).map(|j| *lr.coefficients().get((0, j))).collect();
    let probs: Vec<f64> = rows(test)
        .iter()
        .map(|r| 1.0 / (1.0 + (-(intercept + r.iter().zip(&coef).map(|(a, b)| a * b).sum::<f64>())).exp()))
        .collect();
    let labels: Vec<bool> = test.iter().map(|s| s.cascade).collect();
    let mut coefficients = vec![intercept];
    coefficients.extend(coef);
    Ok(Scores { auc: auc(&probs, &labels), brier: brier(&probs, &labels), coefficients })
}

/// Trains on the first half of the paths and evaluates on the second.
pub fn evaluate(samples: &[Sample], o: &PredictorOptions) -> Result<PredictorReport> {
    let half = o.paths / 2;
    let (train, test): (Vec<Sample>, Vec<Sample>) = samples.iter().partition(|s| s.path < half);
    let count = |set: &[Sample]| set.iter().filter(|s| s.cascade).count();
    let (train_cascades, test_cascades) = (count(&train), count(&test));
    if train_cascades == 0 || train_cascades == train.len() || test_cascades == 0 || test_cascades == test.len() {
        return Err(StressError::Predictor(format!(
            "need cascades and calm samples on both sides: train {train_cascades} of {}, test {test_cascades} of {} \
             (more paths, or a smaller fall)",
            train.len(),
            test.len()
        )));
    }
    let rate = train_cascades as f64 / train.len() as f64;
    let labels: Vec<bool> = test.iter().map(|s| s.cascade).collect();
    Ok(PredictorReport {
        options: *o,
        features: FEATURES.to_vec(),
        train_samples: train.len(),
        test_samples: test.len(),
        train_cascades,
        test_cascades,
        base_rate_brier: brier(&vec![rate; test.len()], &labels),
        model: fit_and_score(&train, &test, &[0, 1, 2, 3])?,
        volatility_only: fit_and_score(&train, &test, &[3])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_and_brier_by_hand() {
        assert_eq!(auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]), 0.75);
        assert_eq!(auc(&[0.5, 0.5], &[false, true]), 0.5);
        assert!((brier(&[1.0, 0.5], &[true, false]) - 0.125).abs() < 1e-12);
    }

    /// A feature that decides the label gets an AUC near 1; the other feature alone near 0.5.
    #[test]
    fn logistic_regression_finds_the_informative_feature() {
        let mut x = 12345u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 10_000) as f64 / 10_000.0
        };
        let samples: Vec<Sample> = (0..4_000)
            .map(|i| {
                let (a, noise) = (next(), next());
                Sample { path: i % 100, features: [a, 1.0, 0.5, noise], cascade: a + 0.1 * next() > 0.8 }
            })
            .collect();
        let o = PredictorOptions { paths: 100, ..PredictorOptions::default() };
        let r = evaluate(&samples, &o).unwrap();
        assert!(r.model.auc > 0.95, "{r:?}");
        assert!((r.volatility_only.auc - 0.5).abs() < 0.1, "{r:?}");
        assert!(r.model.brier < r.base_rate_brier);
    }
}

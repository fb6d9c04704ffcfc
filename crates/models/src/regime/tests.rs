use super::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

const TRUTH: RegimeParams = RegimeParams { sigma_low: 0.001, sigma_high: 0.004, p_stay_low: 0.995, p_stay_high: 0.98 };

/// Returns and true states (true = high) of the two-state model.
fn simulate(p: &RegimeParams, n: usize, seed: u64) -> (Vec<f64>, Vec<bool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut high = rng.gen_bool(p.stationary_high());
    let mut returns = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
    for _ in 0..n {
        let stay = if high { p.p_stay_high } else { p.p_stay_low };
        if !rng.gen_bool(stay) {
            high = !high;
        }
        let e: f64 = StandardNormal.sample(&mut rng);
        returns.push(e * if high { p.sigma_high } else { p.sigma_low });
        states.push(high);
    }
    (returns, states)
}

/// EM on 20,000 simulated returns recovers the truth: volatilities within 5%, transition
/// probabilities within 4 binomial standard errors of the expected number of visits (plus 10%
/// for the estimated states); the log-likelihood never falls between iterations.
#[test]
fn em_recovers_simulated_parameters() {
    let n = 20_000;
    let (returns, _) = simulate(&TRUTH, n, 11);
    let fit = fit(&returns, 500, 1e-7).unwrap();
    let e = fit.params;
    eprintln!("{e:?} after {} iterations", fit.iterations);
    assert!((e.sigma_low / TRUTH.sigma_low - 1.0).abs() < 0.05, "{e:?}");
    assert!((e.sigma_high / TRUTH.sigma_high - 1.0).abs() < 0.05, "{e:?}");
    let stat = TRUTH.stationary_high();
    let se = |p: f64, visits: f64| (p * (1.0 - p) / visits).sqrt();
    let tol_l = 4.4 * se(TRUTH.p_stay_low, n as f64 * (1.0 - stat));
    let tol_h = 4.4 * se(TRUTH.p_stay_high, n as f64 * stat);
    assert!((e.p_stay_low - TRUTH.p_stay_low).abs() < tol_l, "{e:?} tol {tol_l}");
    assert!((e.p_stay_high - TRUTH.p_stay_high).abs() < tol_h, "{e:?} tol {tol_h}");
    for w in fit.trace.windows(2) {
        assert!(w[1] >= w[0] - 1e-6 * w[0].abs(), "EM lowered the likelihood: {w:?}");
    }
    let (_, _, at_truth) = forward(&TRUTH, &returns, stat);
    assert!(
        fit.log_likelihood >= at_truth - 1e-6 * at_truth.abs(),
        "fit {} below truth {at_truth}",
        fit.log_likelihood
    );
}

/// The filter with the true parameters classifies at least 95% of steps; steps it calls high
/// are followed by returns whose mean square over the next 15 steps is more than 5x that after
/// steps it calls low (it forecasts, with the chain's memory).
#[test]
fn filter_classifies_and_anticipates() {
    let (returns, states) = simulate(&TRUTH, 50_000, 12);
    let mut filter = RegimeFilter::new(TRUTH).unwrap();
    let probs: Vec<f64> = returns.iter().map(|&r| filter.update(r)).collect();
    let right = probs.iter().zip(&states).filter(|(p, s)| (**p > 0.5) == **s).count();
    assert!(right as f64 > 0.95 * states.len() as f64, "{right} of {}", states.len());
    let h = 15;
    let (mut hi, mut lo) = ((0.0, 0), (0.0, 0));
    for t in 0..returns.len() - h {
        let ahead: f64 = returns[t + 1..=t + h].iter().map(|r| r * r).sum::<f64>() / h as f64;
        if probs[t] > 0.5 {
            hi = (hi.0 + ahead, hi.1 + 1);
        } else {
            lo = (lo.0 + ahead, lo.1 + 1);
        }
    }
    let ratio = (hi.0 / hi.1 as f64) / (lo.0 / lo.1 as f64);
    assert!(ratio > 5.0, "forward mean square ratio {ratio}");
}

/// The closed forms against the chain's explicit h-step recursion.
#[test]
fn forecasts_match_the_explicit_chain() {
    let mut filter = RegimeFilter::new(TRUTH).unwrap();
    for r in [0.001, 0.006, 0.008, -0.007] {
        filter.update(r);
    }
    let p0 = filter.prob_high();
    assert!(p0 > 0.5, "{p0}");
    let (mut at, mut all_low) = (p0, None::<f64>);
    for h in 1..=60u32 {
        at = at * TRUTH.p_stay_high + (1.0 - at) * (1.0 - TRUTH.p_stay_low);
        assert!((filter.prob_high_at(h) - at).abs() < 1e-12, "h {h}");
        let first = (1.0 - p0) * TRUTH.p_stay_low + p0 * (1.0 - TRUTH.p_stay_high);
        let stays = all_low.map_or(first, |a| a * TRUTH.p_stay_low);
        all_low = Some(stays);
        assert!((filter.prob_high_within(h) - (1.0 - stays)).abs() < 1e-12, "h {h}");
    }
    assert!(filter.prob_high_within(15) >= filter.prob_high_at(15));
    let v = filter.next_step_vol();
    assert!(v > TRUTH.sigma_low && v < TRUTH.sigma_high);
}

#[test]
fn bad_input_is_a_typed_error() {
    assert!(matches!(fit(&[0.001; 50], 10, 1e-6), Err(ModelError::InsufficientData { needed: 100, got: 50 })));
    let mut returns = vec![0.001; 200];
    returns[7] = f64::NAN;
    assert!(matches!(fit(&returns, 10, 1e-6), Err(ModelError::NonFinite { index: 7 })));
    assert!(fit(&[0.001; 200], 0, 1e-6).is_err());
    let flipped = RegimeParams { sigma_low: 0.004, sigma_high: 0.001, ..TRUTH };
    assert!(matches!(RegimeFilter::new(flipped), Err(ModelError::InvalidParameter { name: "sigma_high", .. })));
    assert!(RegimeFilter::new(RegimeParams { p_stay_low: 1.0, ..TRUTH }).is_err());
    let mut f = RegimeFilter::new(TRUTH).unwrap();
    let before = f.prob_high();
    assert_eq!(f.update(f64::INFINITY), before);
}

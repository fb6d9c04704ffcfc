use super::*;
use crate::stats::{mean, sample_variance};

/// Mean, variance (with the standard error of each) of a sample.
fn moments_with_se(x: &[f64]) -> (f64, f64, f64, f64) {
    let n = x.len() as f64;
    let m = mean(x);
    let v = sample_variance(x);
    let m4 = x.iter().map(|y| (y - m).powi(4)).sum::<f64>() / n;
    (m, (v / n).sqrt(), v, ((m4 - v * v) / n).sqrt())
}

fn check_against_theory(p: &SvjdParams, v0: f64, cfg: &SimConfig, n_paths: usize) {
    let draws = simulate_terminal(p, v0, cfg, n_paths).unwrap();
    let x: Vec<f64> = draws.iter().map(|d| d.log_return).collect();
    let (m, m_se, v, v_se) = moments_with_se(&x);
    let theory = log_return_moments(p, v0, cfg.horizon_s).unwrap();
    let jumps = draws.iter().map(|d| f64::from(d.jump_count)).sum::<f64>() / n_paths as f64;
    let jumps_theory = expected_jump_count(p, cfg.horizon_s);
    let jumps_se = (jumps_theory / n_paths as f64).sqrt();
    eprintln!(
        "mean {m:.6} (theory {:.6}, se {m_se:.6}); var {v:.6} (theory {:.6}, se {v_se:.6}); \
         jumps/path {jumps:.5} (theory {jumps_theory:.5}, se {jumps_se:.5})",
        theory.mean, theory.variance
    );
    assert!((m - theory.mean).abs() < 4.0 * m_se, "mean");
    assert!((v - theory.variance).abs() < 4.0 * v_se, "variance");
    assert!((jumps - jumps_theory).abs() <= 4.0 * jumps_se, "jump frequency");
}

/// BTC defaults (SVCJ) over one day from the stationary variance: 20,000
/// paths of 96 steps; mean, variance and jump frequency within 4 SE.
#[test]
fn btc_default_one_day_matches_theory() {
    let p = SvjdParams::btc_default();
    let cfg = SimConfig { horizon_s: 86_400.0, steps: 96, seed: 2020 };
    check_against_theory(&p, p.long_run_variance(), &cfg, 20_000);
}

/// Thirty days from a low starting variance (the transient e^{-kappa t}
/// matters), SVCJ vol jumps on, hourly steps, 4,000 paths.
#[test]
fn svcj_thirty_days_from_low_variance_matches_theory() {
    let p = SvjdParams::btc_default();
    let cfg = SimConfig { horizon_s: 30.0 * 86_400.0, steps: 720, seed: 7 };
    check_against_theory(&p, 0.1, &cfg, 4_000);
}

/// Strong leverage and vol-of-vol, no jumps: checks the -Cov(I, M) and
/// Var(I)/4 terms of the variance formula.
#[test]
fn heston_with_leverage_matches_theory() {
    let p = SvjdParams {
        drift_annual: 0.1,
        kappa_per_year: 3.0,
        theta_annual_var: 0.5,
        xi_annual: 1.5,
        rho: -0.7,
        lambda_per_year: 0.0,
        mu_j: 0.0,
        sigma_j: 0.0,
        mu_v_annual_var: 0.0,
        rho_j: 0.0,
    };
    let cfg = SimConfig { horizon_s: 90.0 * 86_400.0, steps: 360, seed: 99 };
    check_against_theory(&p, 0.5, &cfg, 4_000);
}

/// With xi = 0, no jumps and V at theta the log return is exactly normal
/// with variance theta T: a closed-form check of the moment helper.
#[test]
fn moments_reduce_to_black_scholes() {
    let p = SvjdParams {
        drift_annual: 0.05,
        kappa_per_year: 2.0,
        theta_annual_var: 0.04,
        xi_annual: 0.0,
        rho: 0.0,
        lambda_per_year: 0.0,
        mu_j: 0.0,
        sigma_j: 0.0,
        mu_v_annual_var: 0.0,
        rho_j: 0.0,
    };
    let m = log_return_moments(&p, 0.04, SECONDS_PER_YEAR).unwrap();
    assert!((m.mean - (0.05 - 0.02)).abs() < 1e-12);
    assert!((m.variance - 0.04).abs() < 1e-12);
}

#[test]
fn btc_default_is_valid_and_plausible() {
    let p = SvjdParams::btc_default();
    p.validate().unwrap();
    // Stationary annual volatility between 50% and 100% (BTC 2014-2019).
    let vol = p.long_run_total_variance().sqrt();
    assert!(vol > 0.5 && vol < 1.0, "{vol}");
    // Feller condition holds for the diffusive part.
    assert!(2.0 * p.kappa_per_year * p.theta_annual_var > p.xi_annual.powi(2));
    eprintln!("btc default {p:?}, stationary vol {vol:.4}");
}

#[test]
fn same_seed_same_paths_and_thread_independent() {
    let p = SvjdParams::btc_default();
    let cfg = SimConfig { horizon_s: 3_600.0, steps: 60, seed: 5 };
    let a = simulate_terminal(&p, 0.3, &cfg, 64).unwrap();
    let b = simulate_terminal(&p, 0.3, &cfg, 64).unwrap();
    assert_eq!(a, b);
    let c = simulate_terminal(&p, 0.3, &SimConfig { seed: 6, ..cfg }, 64).unwrap();
    assert_ne!(a, c);
    // A single path simulated alone equals the same index of the batch.
    let path = simulate_path(&p, 1.0, 0.3, &cfg, 17).unwrap();
    let last = path.prices[path.prices.len() - 1].ln();
    assert!((last - a[17].log_return).abs() < 1e-12);
    assert_eq!(path.jump_count, a[17].jump_count);
    assert_eq!(path.prices.len(), 61);
}

#[test]
fn rejects_bad_parameters() {
    let good = SvjdParams::btc_default();
    let cfg = SimConfig { horizon_s: 60.0, steps: 1, seed: 1 };
    for bad in [
        SvjdParams { rho: 1.5, ..good },
        SvjdParams { kappa_per_year: 0.0, ..good },
        SvjdParams { sigma_j: -0.1, ..good },
        SvjdParams { mu_j: f64::NAN, ..good },
        SvjdParams { rho_j: 2.0, ..good },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
        assert!(simulate_terminal(&bad, 0.3, &cfg, 1).is_err());
    }
    assert!(simulate_path(&good, -1.0, 0.3, &cfg, 0).is_err());
    assert!(simulate_terminal(&good, 0.3, &SimConfig { steps: 0, ..cfg }, 1).is_err());
    assert!(log_return_moments(&good, -0.1, 60.0).is_err());
}

#[test]
fn poisson_sampler_mean_and_variance() {
    let mut rng = path_rng(3, 0);
    let n = 50_000;
    let draws: Vec<f64> = (0..n).map(|_| f64::from(poisson_count(&mut rng, 0.7))).collect();
    let (m, m_se, v, _) = moments_with_se(&draws);
    assert!((m - 0.7).abs() < 4.0 * m_se, "{m}");
    assert!((v - 0.7).abs() < 0.05, "{v}");
    let big: Vec<f64> = (0..5_000).map(|_| f64::from(poisson_count(&mut rng, 40.0))).collect();
    assert!((mean(&big) - 40.0).abs() < 4.0 * (40.0f64 / 5_000.0).sqrt());
}

use super::*;
use crate::svjd::{simulate_path, SimConfig};

const STEP_S: f64 = 300.0; // 5-minute returns
const DAY_STEPS: usize = 288;

fn simulated_returns(p: &SvjdParams, years: f64, seed: u64) -> Vec<f64> {
    let steps = (years * 365.0) as usize * DAY_STEPS;
    let cfg = SimConfig { horizon_s: steps as f64 * STEP_S, steps, seed };
    let path = simulate_path(p, 10_000.0, p.long_run_variance(), &cfg, 0).unwrap();
    log_returns_from_prices(&path.prices).unwrap()
}

fn bates_truth() -> SvjdParams {
    SvjdParams {
        drift_annual: 0.0,
        kappa_per_year: 50.0,
        theta_annual_var: 0.3,
        xi_annual: 1.2,
        rho: -0.5,
        lambda_per_year: 50.0,
        mu_j: -0.02,
        sigma_j: 0.05,
        mu_v_annual_var: 0.0,
        rho_j: 0.0,
    }
}

/// Bates, 4 years of 5-minute data (420,480 returns, 1,460 daily blocks).
/// Tolerances are 4 standard deviations of each estimator measured across
/// 16 seeds by `estimator_dispersion_across_seeds` (see docs/models.md).
#[test]
fn recovers_bates_parameters() {
    let truth = bates_truth();
    let r = simulated_returns(&truth, 4.0, 314);
    let c = calibrate_svjd(&r, &CalibrationConfig::new(STEP_S, DAY_STEPS)).unwrap();
    let p = c.params;
    eprintln!("bates estimate {p:?}\n notes {:?} detect {:.3}", c.notes, c.jumps.mean_detection_probability);
    assert!(c.notes.is_empty(), "{:?}", c.notes);
    assert!((p.lambda_per_year - truth.lambda_per_year).abs() < 4.0 * 5.5, "lambda");
    assert!((p.mu_j - truth.mu_j).abs() < 4.0 * 0.0035, "mu_j");
    assert!((p.sigma_j - truth.sigma_j).abs() < 4.0 * 0.0032, "sigma_j");
    assert!((p.theta_annual_var - truth.theta_annual_var).abs() < 4.0 * 0.0043, "theta");
    assert!((p.kappa_per_year - truth.kappa_per_year).abs() < 4.0 * 6.8, "kappa");
    assert!((p.xi_annual - truth.xi_annual).abs() < 4.0 * 0.075, "xi");
    assert!((p.rho - truth.rho).abs() < 4.0 * 0.050, "rho");
}

/// SVCJ with the BTC defaults (variance jumps estimated, rho_J held at its
/// true value), 4 years of 5-minute data; 4-SD tolerances as above. theta
/// and rho are not asserted: with these parameters 78% of E[V] is fed by
/// variance jumps and their estimators' spread across seeds is about 40%
/// of theta and 0.40 in rho (documented as not identified at this length).
#[test]
fn recovers_svcj_btc_default_parameters() {
    let truth = SvjdParams::btc_default();
    let r = simulated_returns(&truth, 4.0, 2718);
    let cfg = CalibrationConfig {
        estimate_vol_jumps: true,
        rho_j_prior: truth.rho_j,
        ..CalibrationConfig::new(STEP_S, DAY_STEPS)
    };
    let c = calibrate_svjd(&r, &cfg).unwrap();
    let p = c.params;
    eprintln!("svcj estimate {p:?}\n notes {:?} detect {:.3}", c.notes, c.jumps.mean_detection_probability);
    assert!((p.lambda_per_year - truth.lambda_per_year).abs() < 4.0 * 2.3, "lambda");
    assert!((p.sigma_j - truth.sigma_j).abs() < 4.0 * 0.0045, "sigma_j");
    assert!((p.mu_v_annual_var - truth.mu_v_annual_var).abs() < 4.0 * 0.147, "mu_v");
    assert!((p.long_run_variance() - truth.long_run_variance()).abs() < 4.0 * 0.053, "E[V]");
    assert!((p.kappa_per_year - truth.kappa_per_year).abs() < 4.0 * 7.1, "kappa");
    assert!((p.xi_annual - truth.xi_annual).abs() < 4.0 * 0.18, "xi");
}

#[test]
fn detects_planted_jumps_in_gaussian_noise() {
    let noise = simulated_returns(&SvjdParams { lambda_per_year: 0.0, xi_annual: 0.0, ..bates_truth() }, 0.1, 1);
    let mut r = noise.clone();
    for (i, j) in [(1_000, -0.05), (5_000, 0.04), (9_000, -0.03)] {
        r[i] += j;
    }
    let (flags, _) = detect_jumps(&r, 5.0, DAY_STEPS).unwrap();
    let found: Vec<usize> = (0..r.len()).filter(|&i| flags[i]).collect();
    assert_eq!(found, vec![1_000, 5_000, 9_000]);
}

#[test]
fn rejects_bad_input() {
    let cfg = CalibrationConfig::new(STEP_S, DAY_STEPS);
    assert!(matches!(calibrate_svjd(&[0.001; 100], &cfg), Err(ModelError::InsufficientData { .. })));
    let mut r = vec![0.001; 20 * DAY_STEPS];
    r[3] = f64::NAN;
    assert_eq!(calibrate_svjd(&r, &cfg), Err(ModelError::NonFinite { index: 3 }));
    assert!(calibrate_from_prices(&[1.0, -2.0, 3.0], &cfg).is_err());
    // Constant returns: no variance persistence to estimate.
    assert!(calibrate_svjd(&vec![0.001; 30 * DAY_STEPS], &cfg).is_err());
}

/// Dispersion of the estimators across seeds (slow: run with --ignored).
#[test]
#[ignore = "multi-seed study, about a minute in debug; used to set tolerances"]
fn estimator_dispersion_across_seeds() {
    for (name, truth, vj) in [("bates", bates_truth(), false), ("svcj", SvjdParams::btc_default(), true)] {
        let mut rows = Vec::new();
        for seed in 100..116 {
            let r = simulated_returns(&truth, 4.0, seed);
            let cfg = CalibrationConfig {
                estimate_vol_jumps: vj,
                rho_j_prior: truth.rho_j,
                ..CalibrationConfig::new(STEP_S, DAY_STEPS)
            };
            let p = calibrate_svjd(&r, &cfg).unwrap().params;
            rows.push([
                p.lambda_per_year,
                p.mu_j,
                p.sigma_j,
                p.theta_annual_var,
                p.kappa_per_year,
                p.xi_annual,
                p.rho,
                p.mu_v_annual_var,
                p.long_run_variance(),
            ]);
        }
        for (k, label) in
            ["lambda", "mu_j", "sigma_j", "theta", "kappa", "xi", "rho", "mu_v", "E[V]"].iter().enumerate()
        {
            let col: Vec<f64> = rows.iter().map(|r| r[k]).collect();
            eprintln!("{name} {label}: mean {:.5} sd {:.5}", mean(&col), sample_variance(&col).sqrt());
        }
    }
}

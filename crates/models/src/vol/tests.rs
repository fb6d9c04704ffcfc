use super::*;

#[test]
fn ewma_recursion_by_hand() {
    let mut e = Ewma::new(0.94, 1e-4).unwrap();
    e.update(0.01).unwrap();
    assert!((e.variance_per_step() - 1e-4).abs() < 1e-18);
    e.update(0.02).unwrap();
    assert!((e.variance_per_step() - 1.18e-4).abs() < 1e-18);
    assert!((e.horizon_variance(15.0) - 15.0 * 1.18e-4).abs() < 1e-18);
    assert!((e.horizon_vol(4.0) - (4.0 * 1.18e-4f64).sqrt()).abs() < 1e-15);
    assert!(e.update(f64::NAN).is_err());
    assert!(Ewma::new(1.0, 1e-4).is_err());
    assert!(Ewma::new(0.94, -1.0).is_err());
    assert!(Ewma::from_returns(0.94, &[]).is_err());
}

/// With lambda = 0.999 on iid N(0, s^2) the EWMA estimate has relative
/// standard deviation sqrt(2 (1 - lambda) / (1 + lambda)) = 3.16%; the
/// final estimate must lie within 4 of those of s^2.
#[test]
fn ewma_tracks_iid_variance_within_theory() {
    let s = 0.01;
    let params = GarchParams { omega: s * s, alpha: 0.0, beta: 0.0 };
    let r = simulate_garch(&params, 20_000, 7).unwrap();
    let e = Ewma::from_returns(0.999, &r).unwrap();
    let rel_sd = (2.0 * 0.001 / 1.999f64).sqrt();
    let rel_err = e.variance_per_step() / (s * s) - 1.0;
    assert!(rel_err.abs() < 4.0 * rel_sd, "relative error {rel_err}");
}

fn truth() -> GarchParams {
    // Daily-like BTC scale: unconditional vol 3.2% per step.
    GarchParams { omega: 2e-5, alpha: 0.10, beta: 0.88 }
}

/// GARCH recovers its parameters: every estimate within 4 Hessian standard
/// errors of the truth, the standard errors small, and the fitted
/// likelihood no worse than the likelihood of the true parameters (the
/// defining property of a maximum).
#[test]
fn garch_recovers_parameters() {
    let p = truth();
    let r = simulate_garch(&p, 5_000, 11).unwrap();
    let fit = garch_fit(&r, &GarchFitOptions::default()).unwrap();
    let se = fit.std_errors.expect("interior optimum has standard errors");
    eprintln!("garch fit {:?} se {se:?} iterations {}", fit.params, fit.iterations);
    let est = [fit.params.omega, fit.params.alpha, fit.params.beta];
    let tru = [p.omega, p.alpha, p.beta];
    for i in 0..3 {
        assert!((est[i] - tru[i]).abs() < 4.0 * se[i], "param {i}: {est:?} se {se:?}");
    }
    assert!(se[1] < 0.03 && se[2] < 0.03, "se {se:?}");
    let nll_fit = garch_neg_log_likelihood(&fit.params, &r, fit.h0);
    let nll_true = garch_neg_log_likelihood(&p, &r, fit.h0);
    assert!(nll_fit <= nll_true + 1e-6, "{nll_fit} vs {nll_true}");
    assert!(fit.params.validate().is_ok());
}

#[test]
fn garch_forecast_formulas() {
    let fit = GarchFit {
        params: truth(),
        log_likelihood: 0.0,
        h0: 1e-3,
        next_variance: 3e-3,
        std_errors: None,
        iterations: 0,
        converged: true,
    };
    let vbar = truth().unconditional_variance();
    assert!((fit.variance_at_step(1) - 3e-3).abs() < 1e-15);
    assert!((fit.variance_at_step(2) - (vbar + 0.98 * (3e-3 - vbar))).abs() < 1e-15);
    let explicit: f64 = (1..=10).map(|k| fit.variance_at_step(k)).sum();
    assert!((fit.horizon_variance(10.0) - explicit).abs() < 1e-14);
    let half = fit.horizon_variance(10.5) - explicit;
    assert!((half - 0.5 * fit.variance_at_step(11)).abs() < 1e-14);
    // Far horizons approach the unconditional variance per step.
    assert!((fit.variance_at_step(5_000) - vbar).abs() < 1e-12);
}

#[test]
fn garch_rejects_bad_input() {
    let mut r = simulate_garch(&truth(), 200, 1).unwrap();
    assert!(matches!(
        garch_fit(&r[..50], &GarchFitOptions::default()),
        Err(ModelError::InsufficientData { needed: 100, got: 50 })
    ));
    r[17] = f64::INFINITY;
    assert_eq!(garch_fit(&r, &GarchFitOptions::default()), Err(ModelError::NonFinite { index: 17 }));
    assert!(garch_fit(&[0.0; 200], &GarchFitOptions::default()).is_err());
    let bad = GarchParams { omega: 1e-5, alpha: 0.5, beta: 0.5 };
    assert!(bad.validate().is_err());
    assert!(simulate_garch(&bad, 10, 1).is_err());
}

#[test]
fn same_seed_same_series() {
    let a = simulate_garch(&truth(), 500, 42).unwrap();
    let b = simulate_garch(&truth(), 500, 42).unwrap();
    let c = simulate_garch(&truth(), 500, 43).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn horizon_helpers() {
    assert_eq!(steps_in_horizon(900.0, 60.0).unwrap(), 15.0);
    assert!(steps_in_horizon(900.0, 0.0).is_err());
    let annual = annualize_variance(1e-6, 60.0);
    assert!((annual - 1e-6 * 525_600.0).abs() < 1e-9);
}

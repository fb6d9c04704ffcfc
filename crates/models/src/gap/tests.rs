use super::*;

fn merton_params() -> SvjdParams {
    SvjdParams {
        drift_annual: 0.0,
        kappa_per_year: 5.0,
        theta_annual_var: 0.64,
        xi_annual: 0.0,
        rho: 0.0,
        lambda_per_year: 20.0,
        mu_j: -0.03,
        sigma_j: 0.08,
        mu_v_annual_var: 0.0,
        rho_j: 0.0,
    }
}

fn check(est: &SideTail, theory: f64, label: &str) {
    eprintln!("{label}: es {:.6} (theory {theory:.6}, se {:.6})", est.es, est.es_std_error);
    assert!((est.es - theory).abs() < 4.0 * est.es_std_error, "{label}");
    assert!(est.es_std_error < 0.05 * theory, "{label}: se too large");
}

/// Whole move over one day with constant variance (xi = 0) against the
/// closed-form Merton ES, both sides, within 4 batch standard errors.
#[test]
fn total_move_es_matches_merton_closed_form() {
    let p = merton_params();
    let cfg = GapConfig {
        horizon_s: 86_400.0,
        paths_per_stratum: 4_000,
        steps: 8,
        mode: GapMode::TotalMove,
        ..GapConfig::new(86_400.0)
    };
    let g = simulate_gap(&p, 0.64, &cfg).unwrap();
    check(&g.long, merton_expected_shortfall(&p, 0.64, 86_400.0, 0.99, Side::Long, true).unwrap(), "long total");
    check(&g.short, merton_expected_shortfall(&p, 0.64, 86_400.0, 0.99, Side::Short, true).unwrap(), "short total");
}

/// Jump part over a 15-minute liquidation horizon (P(jump) = 5.7e-4, far
/// below 1%: the stratification is what makes this estimable).
#[test]
fn jump_only_es_matches_closed_form_at_liquidation_horizon() {
    let p = merton_params();
    let g = simulate_gap(&p, 0.64, &GapConfig::new(900.0)).unwrap();
    let long = merton_expected_shortfall(&p, 0.0, 900.0, 0.99, Side::Long, false).unwrap();
    let short = merton_expected_shortfall(&p, 0.0, 900.0, 0.99, Side::Short, false).unwrap();
    check(&g.long, long, "long jump-only");
    check(&g.short, short, "short jump-only");
    // Down-jumps on average: the long side is the worse one.
    assert!(g.long.es > g.short.es);
    assert_eq!(g.worst_es(), g.long.es);
}

#[test]
fn btc_default_gap_figures() {
    let p = SvjdParams::btc_default();
    let jump = simulate_gap(&p, p.long_run_variance(), &GapConfig::new(900.0)).unwrap();
    let total = simulate_gap(
        &p,
        p.long_run_variance(),
        &GapConfig { mode: GapMode::TotalMove, paths_per_stratum: 4_000, ..GapConfig::new(900.0) },
    )
    .unwrap();
    eprintln!("BTC 15m jump-only {jump:?}\nBTC 15m total {total:?}");
    // The whole move's ES exceeds the ES of its jump part alone.
    assert!(total.long.es > jump.long.es && total.short.es > jump.short.es);
}

#[test]
fn same_seed_same_estimate() {
    let p = SvjdParams::btc_default();
    let cfg = GapConfig { paths_per_stratum: 2_000, ..GapConfig::new(900.0) };
    assert_eq!(simulate_gap(&p, 0.3, &cfg).unwrap(), simulate_gap(&p, 0.3, &cfg).unwrap());
    assert_ne!(simulate_gap(&p, 0.3, &cfg).unwrap(), simulate_gap(&p, 0.3, &GapConfig { seed: 1, ..cfg }).unwrap());
}

#[test]
fn weights_and_weighted_tail() {
    let w = jump_count_weights(0.5);
    assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    assert!((w[1] - 0.5 * (-0.5f64).exp()).abs() < 1e-15);
    // Mass 0.5 at loss 1 and 0.5 at loss 0: the top 1% has ES 1.
    let (var, es) = weighted_tail(&mut [(0.0, 0.5), (1.0, 0.5)], 0.99);
    assert_eq!((var, es), (1.0, 1.0));
    // Top 10% of {3 w.05, 2 w.1, 0 w.85}: 0.05 x 3 + 0.05 x 2 over 0.1 = 2.5.
    let (var, es) = weighted_tail(&mut [(0.0, 0.85), (3.0, 0.05), (2.0, 0.1)], 0.9);
    assert!((es - 2.5).abs() < 1e-12 && var == 2.0);
}

#[test]
fn impact_square_root_law() {
    let m = ImpactModel::new(DEFAULT_IMPACT_Y, 0.04, 10_000.0).unwrap();
    assert!((m.impact_fraction(100.0) - 0.004).abs() < 1e-15);
    assert!((m.marginal_impact_fraction(100.0) - 0.006).abs() < 1e-15);
    // Quadrupling the size doubles the impact.
    assert!((m.impact_fraction(400.0) - 2.0 * m.impact_fraction(100.0)).abs() < 1e-15);
    assert!((gap_premium(0.01, &m, 100.0) - 0.014).abs() < 1e-15);
    assert!(ImpactModel::new(1.0, 0.04, 0.0).is_err());
    assert!(ImpactModel::new(-1.0, 0.04, 1.0).is_err());
}

#[test]
fn rejects_bad_config() {
    let p = SvjdParams::btc_default();
    assert!(simulate_gap(&p, 0.3, &GapConfig { level: 1.0, ..GapConfig::new(900.0) }).is_err());
    assert!(simulate_gap(&p, 0.3, &GapConfig { paths_per_stratum: 10, ..GapConfig::new(900.0) }).is_err());
    assert!(simulate_gap(&p, -0.3, &GapConfig::new(900.0)).is_err());
    assert!(simulate_gap(&p, 0.3, &GapConfig::new(0.0)).is_err());
}

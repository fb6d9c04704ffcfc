use super::*;

fn btc_tiers() -> Vec<Tier> {
    [("0", "0.025", "0.005"), ("50", "0.05", "0.01"), ("250", "0.1", "0.025"), ("1000", "0.2", "0.05")]
        .iter()
        .map(|(f, m, p)| Tier { from: f.to_string(), mm_rate: m.to_string(), penalty_rate: p.to_string() })
        .collect()
}

fn calm() -> RiskInputs {
    RiskInputs { sigma_horizon: 0.004, gap_es: 0.002, impact: None }
}

#[test]
fn decimal_round_trip_and_rounding_up() {
    assert_eq!(parse_rate_units("0.025").unwrap(), 2_500_000);
    assert_eq!(parse_rate_units("1").unwrap(), 100_000_000);
    assert_eq!(format_rate_units(2_500_000), "0.025");
    assert_eq!(format_rate_units(100_000_000), "1");
    assert_eq!(format_rate_units(1), "0.00000001");
    assert_eq!(format_rate_units(0), "0");
    assert_eq!(rate_units_ceil(0.025).unwrap(), 2_500_000);
    assert_eq!(rate_units_ceil(0.012_345_678_1).unwrap(), 1_234_568);
    assert_eq!(rate_units_ceil(1e-12).unwrap(), 1);
    for bad in ["", "-0.1", "1e-3", "0.123456789", ".5", "5.", "0,1", "+1"] {
        assert!(parse_rate_units(bad).is_err(), "{bad}");
    }
    assert!(rate_units_ceil(f64::NAN).is_err());
    assert!(rate_units_ceil(-0.1).is_err());
}

#[test]
fn emits_the_design_params_format() {
    let mut a = MarginAdvisor::new(AdvisorConfig::new("BTC-PERP"), btc_tiers()).unwrap();
    let u = a.update(1_584_000_000_000, &calm()).unwrap();
    // Calm: z99 x 0.4% + 0.2% = 1.13% < 2.5%, every bracket keeps its tier rate.
    assert!(!u.changed);
    assert_eq!(
        u.line,
        r#"{"type":"params","ts":1584000000000,"market":"BTC-PERP","tiers":[{"from":"0","mm_rate":"0.025","penalty_rate":"0.005"},{"from":"50","mm_rate":"0.05","penalty_rate":"0.01"},{"from":"250","mm_rate":"0.1","penalty_rate":"0.025"},{"from":"1000","mm_rate":"0.2","penalty_rate":"0.05"}]}"#
    );
    let v: serde_json::Value = serde_json::from_str(&u.line).unwrap();
    assert_eq!(v["tiers"][2]["mm_rate"], "0.1");
}

#[test]
fn rates_rise_by_bounded_steps_and_stay_monotone() {
    let mut a = MarginAdvisor::new(AdvisorConfig::new("BTC-PERP"), btc_tiers()).unwrap();
    // Stress: 3% horizon vol -> add-on 6.98% + 1% gap = 7.98% target.
    let stress = RiskInputs { sigma_horizon: 0.03, gap_es: 0.01, impact: None };
    let target = a.vol_addon(0.03) + 0.01;
    assert!((target - (2.326_347_874 * 0.03 + 0.01)).abs() < 1e-8);
    let u1 = a.update(1, &stress).unwrap();
    assert!(u1.changed);
    let r1: Vec<String> = u1.tiers.iter().map(|t| t.mm_rate.clone()).collect();
    // Bracket 0 may rise by at most 0.01 per update: 0.025 -> 0.035.
    assert_eq!(r1, ["0.035", "0.06", "0.1", "0.2"]);
    let u2 = a.update(2, &stress).unwrap();
    assert_eq!(u2.tiers[0].mm_rate, "0.045");
    for _ in 0..5 {
        a.update(3, &stress).unwrap();
    }
    let settled = a.current_tiers();
    // Settles at the target rounded up to 8 decimals, tiers above unchanged.
    assert_eq!(settled[0].mm_rate, format_rate_units(rate_units_ceil(target).unwrap()));
    assert_eq!(settled[1].mm_rate, settled[0].mm_rate);
    assert_eq!(settled[2].mm_rate, "0.1");
    // Calm again: falls by at most 0.0025 per update, never below the tier.
    let down = a.update(4, &calm()).unwrap();
    let fell = parse_rate_units(&settled[0].mm_rate).unwrap() - parse_rate_units(&down.tiers[0].mm_rate).unwrap();
    assert_eq!(fell, 250_000);
    for _ in 0..50 {
        a.update(5, &calm()).unwrap();
    }
    assert_eq!(a.current_tiers(), btc_tiers());
    for t in a.current_tiers().windows(2) {
        assert!(parse_rate_units(&t[0].mm_rate).unwrap() <= parse_rate_units(&t[1].mm_rate).unwrap());
    }
}

#[test]
fn cap_and_impact() {
    let mut cfg = AdvisorConfig::new("BTC-PERP");
    cfg.max_step_up = 1.0;
    let mut a = MarginAdvisor::new(cfg, btc_tiers()).unwrap();
    // Extreme inputs are capped at 0.5.
    let u = a.update(1, &RiskInputs { sigma_horizon: 1.0, gap_es: 0.5, impact: None }).unwrap();
    assert!(u.tiers.iter().all(|t| t.mm_rate == "0.5"));
    // Impact widens larger brackets more: Q = 50, 250, 1000, 2000 vs V = 10,000.
    let mut a =
        MarginAdvisor::new(AdvisorConfig { max_step_up: 1.0, ..AdvisorConfig::new("BTC-PERP") }, btc_tiers()).unwrap();
    let impact = ImpactModel::new(1.0, 0.05, 10_000.0).unwrap();
    let d = a.dynamic_rates(&RiskInputs { impact: Some(impact), ..calm() }).unwrap();
    assert_eq!(a.bracket_sizes(), &[50.0, 250.0, 1000.0, 2000.0]);
    let base = a.vol_addon(0.004) + 0.002;
    assert!((d[1] - base - 1.5 * 0.05 * (250.0f64 / 10_000.0).sqrt()).abs() < 1e-12);
    let u = a.update(1, &RiskInputs { impact: Some(impact), ..calm() }).unwrap();
    // Bracket 3: 0.0113 + 1.5 x 0.05 x sqrt(0.2) = 0.04484 < 0.2 tier: tier stays.
    assert_eq!(u.tiers[3].mm_rate, "0.2");
    assert_eq!(u.tiers[0].mm_rate, "0.025");
}

#[test]
fn rejects_bad_tables_and_inputs() {
    let cfg = AdvisorConfig::new("BTC-PERP");
    let mut t = btc_tiers();
    t[1].mm_rate = "0.01".into();
    assert!(matches!(MarginAdvisor::new(cfg.clone(), t), Err(ModelError::TierTable(_))));
    let mut t = btc_tiers();
    t[2].from = "40".into();
    assert!(MarginAdvisor::new(cfg.clone(), t).is_err());
    let mut t = btc_tiers();
    t[0].from = "1".into();
    assert!(MarginAdvisor::new(cfg.clone(), t).is_err());
    let mut t = btc_tiers();
    t[0].penalty_rate = "abc".into();
    assert!(matches!(MarginAdvisor::new(cfg.clone(), t), Err(ModelError::Decimal { .. })));
    assert!(MarginAdvisor::new(cfg.clone(), vec![]).is_err());
    assert!(MarginAdvisor::new(AdvisorConfig { rate_cap: 0.1, ..cfg.clone() }, btc_tiers()).is_err());
    assert!(MarginAdvisor::new(AdvisorConfig { confidence: 1.0, ..cfg.clone() }, btc_tiers()).is_err());
    let mut a = MarginAdvisor::new(cfg, btc_tiers()).unwrap();
    a.update(10, &calm()).unwrap();
    assert_eq!(a.update(9, &calm()), Err(ModelError::TimeWentBackwards { ts_ms: 9, previous_ms: 10 }));
    assert!(a.update(11, &RiskInputs { sigma_horizon: f64::NAN, ..calm() }).is_err());
    assert!(a.update(11, &RiskInputs { gap_es: -1.0, ..calm() }).is_err());
}

#[test]
fn price_driven_advisor_reacts_to_a_crash() {
    let advisor = MarginAdvisor::new(AdvisorConfig::new("BTC-PERP"), btc_tiers()).unwrap();
    let cfg = PriceDrivenConfig {
        sample_interval_ms: 60_000,
        update_interval_ms: 300_000,
        horizon_s: 900.0,
        ewma_lambda: 0.94,
        impact_y_and_volume: None,
    };
    // 60% annual vol per minute: 0.6^2 / 525,600.
    let mut p = PriceDrivenAdvisor::new(advisor, cfg, 0.002, 0.36 / 525_600.0).unwrap();
    let mut price = 7_900.0;
    let mut updates = Vec::new();
    for minute in 0..120u64 {
        // Calm first hour, then -1% a minute.
        if minute >= 60 {
            price *= 0.99;
        }
        if let Some(u) = p.on_price(minute * 60_000, price).unwrap() {
            updates.push(u);
        }
    }
    assert_eq!(updates.len(), 24);
    assert!(updates[..12].iter().all(|u| !u.changed), "calm hour keeps the static table");
    let last = &updates[updates.len() - 1];
    assert!(parse_rate_units(&last.tiers[0].mm_rate).unwrap() > 2_500_000);
    assert!(p.on_price(10, -1.0).is_err());
}

//! The predictive policy, the static frontier, the user's scenario file and the float liquidation map.

use solvent_core::{Config, Engine};
use solvent_stress::book::{build_book, Book};
use solvent_stress::driver::{run_scenario_with, Advisors, RunRequest};
use solvent_stress::liqmap::{float_map, BUCKET_STEP};
use solvent_stress::predictive::{PredictiveModel, PredictiveSettings};
use solvent_stress::runner::load_population;
use solvent_stress::scenario;
use solvent_stress::scenario_file::{self, ScenarioFault};
use solvent_stress::{
    run, AdvisorSettings, PolicyKind, PopulationSource, ScenarioSelection, StressError, StressOptions,
};
use std::path::Path;

fn small(accounts: usize) -> StressOptions {
    let defaults = StressOptions::default();
    StressOptions {
        population: PopulationSource::Synthetic { accounts },
        paths: 6,
        mc_horizon_s: 30 * 60,
        scenarios: ScenarioSelection { historical: false, shocks: true, monte_carlo: true },
        advisor: AdvisorSettings { gap_paths_per_stratum: 1_000, ..defaults.advisor },
        predictive: PredictiveSettings { regime_fit_days: 5, ..defaults.predictive },
        frontier: vec![0.8, 1.2],
        ..defaults
    }
}

fn predictive_book(options: &StressOptions) -> (Config, Book, PredictiveModel) {
    let config = solvent_stress::runner::with_floors(Config::embedded_default(), &options.frontier, 0.6).unwrap();
    let population = load_population(options, &config).unwrap();
    let book = build_book(&config, &population, options, PolicyKind::Static, None).unwrap();
    let model = PredictiveModel::new(options.predictive, options.mc_step_s, options.seed).unwrap();
    (config, Book { policy: PolicyKind::Predictive, ..book }, model)
}

/// Replays `lines`; `strict`: every line must be accepted (the run's own journal). A
/// counterfactual journal (lines removed) may see later lines refused: the makers' takes were
/// sized for the run's state (a collateral take for holdings the counterfactual does not have).
fn replay(config: &Config, lines: &mut dyn Iterator<Item = &String>, strict: bool) -> String {
    let mut engine = Engine::new(config);
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        engine.apply_line(i as u64 + 1, line.as_bytes(), &mut out);
        assert!(!strict || out.iter().all(|e| e.rejection_kind().is_none()), "replay refused line {i}: {line}");
    }
    engine.state_hash()
}

/// On the -30% minute the predictive policy lowers the calm book to its floors, raises it after
/// the fall, and every change is a `params` line: the journal replayed through a fresh engine gives
/// the run's state hash, and without those lines it differs.
#[test]
fn predictive_params_lines_replay_to_the_same_state_hash() {
    let options = small(80);
    let (config, book, model) = predictive_book(&options);
    let models = Advisors { dynamic: None, predictive: Some(&model) };
    let shock = scenario::shock(0.30, options.seed, 1);
    let outcome =
        run_scenario_with(&book, &shock, models, &options, RunRequest { journal: true, trace: true }).unwrap();
    let journal = outcome.journal.unwrap();
    let start = book.journal.len();
    let advised: Vec<&String> =
        journal[start..].iter().filter(|l| l.contains(r#""type":"params""#) && l.contains(r#""tiers""#)).collect();
    assert_eq!(advised.len() as u64, outcome.metrics.margin_changes);
    assert!(advised.iter().any(|l| l.contains(r#""mm_rate":"0.015""#)), "calm lowers the first bracket to 0.6 x 2.5%");
    assert!(advised.iter().any(|l| !l.contains(r#""mm_rate":"0.015""#)), "stress raises it again");
    assert!(advised.iter().all(|l| l.contains(r#""mm_phase_in_ms":900000"#) && l.contains("im_addon_rate")));
    assert_eq!(replay(&config, &mut journal.iter(), true), outcome.engine.state_hash());
    let without = replay(&config, &mut journal.iter().filter(|l| !advised.contains(l)), false);
    assert_ne!(without, outcome.engine.state_hash(), "the policy's params events change the outcome");
    assert!(!outcome.trace.unwrap().maps.is_empty(), "the traced run keeps the maps it read");
}

/// Every account in the float map's bucket k has equity below MM at that level and not at the
/// level before it (the nearest bucket, as the map says).
#[test]
fn float_map_puts_each_account_at_its_first_failing_level() {
    let options = small(120);
    let (_, book, _) = predictive_book(&options);
    let engine = &book.engine;
    let index = book.markets[0].index;
    let map = float_map(engine, index).unwrap();
    let total: f64 = map.down.iter().map(|l| l.notional).sum();
    assert!(total > 0.0 && !map.up.is_empty(), "longs below, shorts above: {map:?}");
    assert!(map.down.iter().all(|l| l.price < map.mark) && map.up.iter().all(|l| l.price > map.mark));
    let oi = solvent_stress::liqmap::open_interest(engine, index);
    assert!(total <= 1.6 * oi * map.mark, "no more than the book, at up to 50% lower prices");
    let k_of = |price: f64| ((price / map.mark - 1.0).abs() / BUCKET_STEP).round() as usize;
    assert!(map.down.iter().chain(&map.up).all(|l| k_of(l.price) >= 1 && k_of(l.price) <= 100));
}

/// The frontier has the static point and one per multiplier on every scope; the report compares
/// the predictive policy with it, and the HTML draws the frontier and the map's heat map.
#[test]
fn the_report_has_the_frontier_the_predictive_comparison_and_the_heat_map() {
    let options = small(60);
    let report = run(&options, &|_, _| {}).unwrap();
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    let scopes = json["frontier"]["scopes"].as_array().unwrap();
    assert_eq!(scopes.len(), 5, "four fixed shocks and the Monte Carlo set");
    for s in scopes {
        assert_eq!(s["points"].as_array().unwrap().len(), 3, "{s}");
        let rates: Vec<f64> =
            s["points"].as_array().unwrap().iter().map(|p| p["calm_mm_rate"].as_f64().unwrap()).collect();
        assert!(rates.windows(2).all(|w| w[0] <= w[1]));
    }
    assert!(report.comparisons.iter().any(|c| c.policy == PolicyKind::Predictive && c.scope == "monte_carlo"));
    let html = report.to_html();
    for class in ["frontier", "liquidation-map"] {
        assert!(html.contains(&format!(r#"<svg class="chart {class}""#)), "missing the {class} chart");
    }
    assert!(report.terminal_table().contains("static frontier"));
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("solvent-stress-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn fault(path: &Path) -> (usize, ScenarioFault) {
    let markets = vec!["BTC-PERP".to_string(), "ETH-PERP".to_string()];
    match scenario_file::load(path, &markets, "BTC-PERP") {
        Err(StressError::ScenarioFile { line, fault, .. }) => (line, fault),
        other => panic!("expected a scenario-file error, got {other:?}"),
    }
}

/// CSV (with a header and a comment) and JSON Lines give the same scenario; a run on the file
/// works; malformed rows, unknown markets and time going backwards are typed errors naming the line.
#[test]
fn scenario_files_load_and_bad_rows_name_their_line() {
    let csv = write(
        "path.csv",
        "# a fall\nts_ms,market,price\n0,BTC-PERP,8000\n60000,BTC-PERP,7600\n120000,BTC-PERP,7200.5\n",
    );
    let jsonl = write(
        "path.jsonl",
        "{\"ts_ms\":0,\"market\":\"BTC-PERP\",\"price\":\"8000\"}\n{\"ts_ms\":60000,\"market\":\"BTC-PERP\",\"price\":7600}\n{\"ts_ms\":120000,\"market\":\"BTC-PERP\",\"price\":\"7200.5\"}\n",
    );
    let markets = vec!["BTC-PERP".to_string()];
    let a = scenario_file::load(&csv, &markets, "BTC-PERP").unwrap();
    let b = scenario_file::load(&jsonl, &markets, "BTC-PERP").unwrap();
    assert_eq!(a.steps, b.steps);
    assert_eq!(a.steps.len(), 3);
    assert!((a.steps[2].price_factor - 7200.5 / 8000.0).abs() < 1e-12 && a.base_step_ms == 60_000);
    let options = StressOptions {
        scenarios: ScenarioSelection { historical: false, shocks: false, monte_carlo: false },
        scenario_file: Some(csv),
        ..small(40)
    };
    let report = run(&options, &|_, _| {}).unwrap();
    assert_eq!(report.scenarios.len(), 1);
    assert_eq!(report.scenarios[0].name, "path.csv");

    let (line, f) = fault(&write("short.csv", "0,BTC-PERP,8000\n60000,BTC-PERP\n"));
    assert_eq!((line, f.kind()), (2, "malformed_row"));
    let (line, f) = fault(&write("unknown.csv", "0,BTC-PERP,8000\n\n60000,DOGE-PERP,1\n"));
    assert_eq!((line, f), (3, ScenarioFault::UnknownMarket("DOGE-PERP".into())));
    let (line, f) = fault(&write("back.csv", "0,BTC-PERP,8000\n60000,BTC-PERP,7900\n30000,BTC-PERP,7800\n"));
    assert_eq!(line, 3);
    assert!(matches!(f, ScenarioFault::TimeWentBackwards { ts_ms: 30_000, previous_ms: 60_000, .. }), "{f:?}");
    let (line, f) = fault(&write("price.csv", "0,BTC-PERP,8e3\n"));
    assert_eq!((line, f.kind()), (1, "bad_price"));
    let (line, f) = fault(&write(
        "json.jsonl",
        "{\"ts_ms\":0,\"market\":\"BTC-PERP\",\"price\":\"1\"}\n{\"ts_ms\":1,\"market\":\"BTC-PERP\"}\n",
    ));
    assert_eq!((line, f.kind()), (2, "malformed_row"));
    let (_, f) = fault(&write("eth.csv", "0,ETH-PERP,100\n"));
    assert_eq!(f.kind(), "no_rows");
    let missing = scenario_file::load(Path::new("/nonexistent/solvent.csv"), &markets, "BTC-PERP");
    assert!(matches!(missing, Err(StressError::ScenarioIo { .. })));
}

/// The predictor collects samples from traced predictive runs, trains on half the paths and
/// reports out-of-sample AUC and Brier scores for the model and the volatility-only baseline.
#[test]
fn predictor_trains_and_scores_out_of_sample() {
    let options = StressOptions {
        mc_v0_annual_var: Some(4.0),
        mc_horizon_s: 90 * 60,
        predictor: solvent_stress::predictor::PredictorOptions {
            paths: 8,
            fall: 0.01,
            horizon_steps: 15,
            sample_every: 2,
        },
        ..small(60)
    };
    let samples = solvent_stress::predictor::collect(&options, &options.predictor).unwrap();
    assert!(samples.iter().all(|s| s.path < 8 && s.features.iter().all(|f| f.is_finite())));
    let report = solvent_stress::predictor::evaluate(&samples, &options.predictor).unwrap();
    assert_eq!(report.train_samples + report.test_samples, samples.len());
    assert!(report.test_cascades > 0 && report.train_cascades > 0);
    for s in [&report.model, &report.volatility_only] {
        assert!((0.0..=1.0).contains(&s.auc) && s.brier.is_finite() && s.brier < 1.0, "{report:?}");
    }
    assert_eq!(report.model.coefficients.len(), 5);
    let none = solvent_stress::predictor::evaluate(&samples[..0], &options.predictor);
    assert!(matches!(none, Err(StressError::Predictor(_))));
}

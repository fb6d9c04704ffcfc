//! The stress lab end to end, at small sizes (debug builds run these in seconds).

use solvent_core::config::{LiquidationRules, MarketParams, TierBasis};
use solvent_core::{margin, Config, Engine, Price, Quote, Size};
use solvent_stress::book::{build_book, Book};
use solvent_stress::driver::{run_scenario, FloatTiers, RunOutcome, RunRequest};
use solvent_stress::policy::{scaled_tiers, static_tiers, DynamicModel};
use solvent_stress::runner::load_population;
use solvent_stress::scenario::{self, Scenario};
use solvent_stress::{
    run, AdvisorSettings, PolicyKind, PopulationSource, ScenarioSelection, StressError, StressOptions,
};
use std::collections::BTreeMap;

/// Small options: `accounts` synthetic accounts, 16 Monte Carlo paths of 30 one-minute
/// steps, the fixed shocks, a gap premium from 1,000 paths per stratum.
fn small(accounts: usize) -> StressOptions {
    let defaults = StressOptions::default();
    StressOptions {
        population: PopulationSource::Synthetic { accounts },
        paths: 16,
        mc_horizon_s: 30 * 60,
        scenarios: ScenarioSelection { historical: false, shocks: true, monte_carlo: true },
        advisor: AdvisorSettings { gap_paths_per_stratum: 1_000, ..defaults.advisor },
        ..defaults
    }
}

/// Monte Carlo only (the parallel part), `paths` paths.
fn mc_only(accounts: usize, paths: usize) -> StressOptions {
    StressOptions {
        paths,
        scenarios: ScenarioSelection { historical: false, shocks: false, monte_carlo: true },
        ..small(accounts)
    }
}

fn static_book(options: &StressOptions) -> (Config, Book) {
    let config = Config::embedded_default();
    let population = load_population(options, &config).unwrap();
    let book = build_book(&config, &population, options, PolicyKind::Static, None).unwrap();
    (config, book)
}

/// The static book of `options` with every market's venue rules of partial liquidation off.
fn unpaced_book(options: &StressOptions) -> Book {
    let mut config = Config::embedded_default();
    for market in &mut config.markets {
        market.params.rules = LiquidationRules::default();
    }
    let population = load_population(options, &config).unwrap();
    build_book(&config, &population, options, PolicyKind::Static, None).unwrap()
}

fn run_one(book: &Book, scenario: &Scenario, dynamic: Option<&DynamicModel>, options: &StressOptions) -> RunOutcome {
    run_scenario(book, scenario, dynamic, options, RunRequest { journal: true, trace: true }).unwrap()
}

/// Invariants 1, 2 and 6 of docs/concepts.md on a final engine, exactly.
fn assert_conserved(engine: &Engine) {
    assert!(!engine.insurance_fund().is_negative(), "fund {}", engine.insurance_fund());
    let mut sizes: BTreeMap<String, i128> = BTreeMap::new();
    let mut held = Quote::ZERO;
    for account in engine.accounts() {
        held = held.checked_add(account.settlement).unwrap();
        for p in &account.positions {
            let market = &engine.markets()[p.market.0 as usize];
            *sizes.entry(market.name.to_string()).or_default() += i128::from(p.size.raw());
            held = held.checked_add(p.unrealized_pnl(market.mark_price.unwrap()).unwrap()).unwrap();
        }
    }
    for (i, market) in engine.markets().iter().enumerate() {
        let inventory = engine.inventory(solvent_core::state::MarketId(i as u16));
        *sizes.entry(market.name.to_string()).or_default() += i128::from(inventory.size.raw());
        if let Some(mark) = market.mark_price {
            held = held.checked_add(inventory.unrealized_pnl(mark).unwrap()).unwrap();
        }
    }
    assert!(sizes.values().all(|s| *s == 0), "sum of positions per market: {sizes:?}");
    let dump = engine.dump();
    for (name, market) in &dump.markets {
        let holders: i128 =
            dump.accounts.values().filter_map(|a| a.positions.get(name)).map(|p| i128::from(p.size.raw())).sum();
        assert_eq!(holders + i128::from(market.liquidation_inventory.raw()), 0, "dump of {name}");
    }
    let flows = engine.settlement_flows();
    let ledger = flows.deposited.checked_sub(flows.withdrawn).unwrap();
    let booked = held
        .checked_add(engine.insurance_fund())
        .unwrap()
        .checked_add(engine.fees_collected())
        .unwrap()
        .checked_sub(engine.bad_debt())
        .unwrap();
    // What the protocol paid for the collateral it bought from liquidated accounts left the
    // settlement balances: an outflow, carried at cost.
    let paid = engine.collateral_holdings().iter().fold(Quote::ZERO, |sum, h| sum.checked_add(h.cost).unwrap());
    assert_eq!(ledger, booked.checked_sub(paid).unwrap(), "settlement-asset conservation");
}

#[test]
fn same_seed_same_report_byte_for_byte_and_another_seed_differs() {
    let options = StressOptions { mc_v0_annual_var: Some(2.0), ..mc_only(100, 12) };
    let first = run(&options, &|_, _| {}).unwrap().to_json();
    let second = run(&options, &|_, _| {}).unwrap().to_json();
    assert!(first == second, "two runs with seed {} differ", options.seed);
    let other = run(&StressOptions { seed: options.seed + 1, ..options }, &|_, _| {}).unwrap().to_json();
    assert_ne!(first, other, "the report must depend on the seed");
}

#[test]
fn thread_count_does_not_change_the_report() {
    let options = StressOptions { mc_v0_annual_var: Some(2.0), ..mc_only(100, 20) };
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| run(&options, &|_, _| {})).unwrap().to_json()
    };
    let one = on(1);
    let three = on(3);
    assert!(one == three, "1 thread and 3 threads give different reports");
    let two = solvent_stress::run_on_threads(&options, 2, &|_, _| {}).unwrap().to_json();
    assert!(one == two, "run_on_threads(2) differs");
}

#[test]
fn minus_50_percent_shock_liquidates_and_conserves_value_under_every_policy() {
    let options = small(100);
    let (config, book) = static_book(&options);
    let shock = scenario::shock(0.50, options.seed, 2);
    let dynamic = DynamicModel::new(options.advisor, options.impact_y, options.seed).unwrap();
    let outcome = run_one(&book, &shock, None, &options);
    let m = &outcome.metrics;
    assert!(m.liquidations > 0 && m.liquidated_notional_usdc > 0.0, "{m:?}");
    assert!(m.bankrupt_accounts > 0, "a 50% fall in a minute bankrupts 20x accounts: {m:?}");
    assert!(m.price_min < 0.5 * 7_900.0 * 1.05, "the price followed the shock: {}", m.price_min);
    assert_conserved(&outcome.engine);
    let dyn_book = Book { policy: PolicyKind::Dynamic, ..book.clone() };
    assert_conserved(&run_one(&dyn_book, &shock, Some(&dynamic), &options).engine);
    let tiers: Vec<_> = book.markets.iter().map(|m| scaled_tiers(&m.static_tiers, 1.3).unwrap()).collect();
    let population = load_population(&options, &config).unwrap();
    let scaled = build_book(&config, &population, &options, PolicyKind::StaticScaled, Some(&tiers)).unwrap();
    assert!(scaled.top_up_usdc > 0.0, "a 1.3x table asks for more initial margin");
    assert_conserved(&run_one(&scaled, &shock, None, &options).engine);
}

#[test]
fn replaying_the_journal_with_the_advisors_params_reproduces_the_state_hash() {
    let options = small(80);
    let (config, book) = static_book(&options);
    let dyn_book = Book { policy: PolicyKind::Dynamic, ..book };
    let dynamic = DynamicModel::new(options.advisor, options.impact_y, options.seed).unwrap();
    let outcome = run_one(&dyn_book, &scenario::shock(0.30, options.seed, 1), Some(&dynamic), &options);
    let journal = outcome.journal.unwrap();
    let advised: Vec<&String> =
        journal.iter().filter(|l| l.contains(r#""type":"params""#) && l.contains(r#""tiers""#)).collect();
    assert!(outcome.metrics.margin_changes > 0 && advised.len() as u64 >= outcome.metrics.margin_changes);
    assert!(advised.iter().any(|l| !l.contains(r#""mm_rate":"0.025""#)), "some advised table raised the first bracket");
    let replay = |lines: &mut dyn Iterator<Item = &String>| {
        let mut engine = Engine::new(&config);
        let mut out = Vec::new();
        for (i, line) in lines.enumerate() {
            engine.apply_line(i as u64 + 1, line.as_bytes(), &mut out);
        }
        engine.state_hash()
    };
    assert_eq!(replay(&mut journal.iter()), outcome.engine.state_hash());
    let without = replay(&mut journal.iter().filter(|l| !advised.contains(l)));
    assert_ne!(without, outcome.engine.state_hash(), "the advisor's params events change the outcome");
}

#[test]
fn html_report_has_the_three_svg_charts_and_no_external_resources() {
    let options = StressOptions { paths: 6, ..small(60) };
    let steps = std::cell::RefCell::new(Vec::new());
    let report = run(&options, &|done, total| steps.borrow_mut().push((done, total))).unwrap();
    let html = report.to_html();
    for class in ["price-liquidations", "insurance-fund", "loss-distribution"] {
        assert!(html.contains(&format!(r#"<svg class="chart {class}""#)), "missing the {class} chart");
    }
    assert!(html.matches("<circle").count() > 0, "liquidations are marked on the price path");
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="));
    let progress = steps.into_inner();
    // Four policies, the frontier, and the congested static and predictive runs.
    let total = ((4 + options.paths) * (4 + options.frontier.len() + 2)) as u64;
    assert_eq!(progress.last(), Some(&(total, total)), "{progress:?}");
    assert!(progress.windows(2).all(|w| w[0].0 <= w[1].0));
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    let mc = &json["monte_carlo"]["results"][0]["figures"];
    assert_eq!(mc["fund_draw_mean"]["unit"], "USDC");
    assert_eq!(mc["socialized_loss_probability"]["unit"], "fraction");
    assert_eq!(json["scenarios"].as_array().unwrap().len(), 4);
    let table = report.terminal_table();
    assert!(table.contains("shock_minus_50pct_1min") && table.contains("static_scaled"));
}

#[test]
fn liquidations_move_the_price_and_backstop_capacity_decides_what_stays_unsold() {
    let options = small(80);
    let (_, book) = static_book(&options);
    let shock = scenario::shock(0.30, options.seed, 1);
    let with_impact = run_one(&book, &shock, None, &options).metrics;
    let no_impact = run_one(&book, &shock, None, &StressOptions { impact_y: 0.0, ..options.clone() }).metrics;
    let exogenous_min = shock.steps.iter().map(|s| s.price_factor).fold(f64::INFINITY, f64::min) * 7_900.0;
    assert!((no_impact.price_min - exogenous_min).abs() < 0.01, "{} vs {exogenous_min}", no_impact.price_min);
    assert!(with_impact.price_min < no_impact.price_min - 1.0, "liquidations pushed the price down");
    // A 10% fall leaves part of the book standing: impact liquidates more of it (a cascade). The
    // mechanism on its own: a book without the venue's pacing rules (chunks, cooldown, backstop).
    let ten = scenario::shock(0.10, options.seed, 0);
    let flat_options = StressOptions { impact_y: 0.0, ..options.clone() };
    let unpaced = unpaced_book(&options);
    let cascade = run_one(&unpaced, &ten, None, &options).metrics;
    let flat = run_one(&unpaced, &ten, None, &flat_options).metrics;
    assert!(cascade.liquidated_notional_usdc > flat.liquidated_notional_usdc * 1.05, "{cascade:?} vs {flat:?}");
    // The embedded default's chunks and cooldown spread the same liquidations over time: impact
    // still adds to them, by less.
    let paced = run_one(&book, &ten, None, &options).metrics;
    let paced_flat = run_one(&book, &ten, None, &flat_options).metrics;
    let amplification = cascade.liquidated_notional_usdc / flat.liquidated_notional_usdc;
    let paced_amplification = paced.liquidated_notional_usdc / paced_flat.liquidated_notional_usdc;
    assert!(paced_amplification > 1.0, "{paced:?} vs {paced_flat:?}");
    assert!(paced_amplification < amplification, "paced {paced_amplification} vs unpaced {amplification}");
    assert!(with_impact.auction_fills > 0 && with_impact.unsold_inventory_usdc < 1.0, "{with_impact:?}");
    let mut thin = book.clone();
    thin.markets[0].backstop_capacity_base = 0.0;
    let unsold = run_one(&thin, &shock, None, &options).metrics;
    assert_eq!(unsold.auction_fills, 0);
    assert!(unsold.unsold_inventory_usdc > 0.0, "nobody takes the inventory: it stays with the protocol");
}

#[test]
fn five_sources_with_a_majority_quorum_follow_a_shock_without_freezing() {
    let options = StressOptions { oracle_sources: 5, ..small(60) };
    let (_, book) = static_book(&options);
    assert_eq!(book.sources.len(), 5);
    let outcome = run_one(&book, &scenario::shock(0.30, options.seed, 1), None, &options);
    assert_eq!(outcome.metrics.oracle_freezes, 0, "sources moving together never lose quorum");
    assert!(outcome.metrics.liquidations > 0 && outcome.metrics.price_min < 0.75 * 7_900.0);
    let too_many = StressOptions { oracle_sources: 6, ..small(10) };
    assert!(matches!(run(&too_many, &|_, _| {}), Err(StressError::InvalidOption { name: "oracle_sources", .. })));
}

#[test]
fn black_thursday_replay_follows_the_published_path_and_liquidates() {
    let hourly = scenario::historical(60).unwrap();
    assert_eq!(hourly.steps.len(), 73, "72 hourly closes after the open");
    assert_eq!(hourly.steps.last().unwrap().offset_ms, 72 * 3_600_000);
    let minutes = scenario::historical(1).unwrap();
    let candles = solvent_models::scenario::black_thursday().unwrap().candles;
    assert_eq!(minutes.steps.len(), candles.len() + 1);
    for (step, candle) in minutes.steps.iter().skip(1).zip(&candles) {
        assert!((step.price_factor * candles[0].open - candle.close).abs() < 1e-6, "every minute's close, in order");
    }
    let low = minutes.steps.iter().map(|s| s.price_factor).fold(f64::INFINITY, f64::min);
    assert!(low < 0.48, "52% below the open at the low: {low}");
    let options = small(60);
    let (_, book) = static_book(&options);
    let outcome = run_one(&book, &hourly, None, &options);
    assert!(outcome.metrics.liquidations > 0 && outcome.metrics.bankrupt_accounts > 0, "{:?}", outcome.metrics);
    assert_conserved(&outcome.engine);
}

#[test]
fn frozen_oracle_gap_pauses_liquidations_then_thaws_at_the_gapped_price() {
    let options = small(80);
    let (_, book) = static_book(&options);
    let gap = scenario::frozen_gap(options.seed, 3);
    let outcome = run_one(&book, &gap, None, &options);
    assert_eq!(outcome.metrics.oracle_freezes, 1);
    let trace = outcome.trace.unwrap();
    let silent: Vec<f64> = gap.steps.iter().filter(|s| !s.oracle_live).map(|s| s.offset_ms as f64 / 1_000.0).collect();
    let (from, to) = (silent[0], silent[silent.len() - 1]);
    assert!(trace.liquidations.iter().all(|l| l.t_s < from || l.t_s > to), "no liquidation while frozen");
    assert!(trace.liquidations.iter().any(|l| l.t_s > to), "the thaw liquidates");
    assert_conserved(&outcome.engine);
}

#[test]
fn a_state_dump_is_rebuilt_with_its_equities() {
    let options = small(60);
    let (config, book) = static_book(&options);
    let after = run_one(&book, &scenario::shock(0.10, options.seed, 0), None, &options).engine;
    let dir = std::env::temp_dir().join(format!("solvent-stress-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.json");
    std::fs::write(&path, serde_json::to_string(&after.dump()).unwrap()).unwrap();
    let from_file = StressOptions { population: PopulationSource::StateFile(path.clone()), ..options.clone() };
    let population = load_population(&from_file, &config).unwrap();
    let dump = after.dump();
    for (name, reason) in &population.skipped {
        // Only the harness's own accounts and emptied bankrupt accounts (debt, no position) are left out.
        assert!(name.starts_with("stress:") || dump.accounts[name].positions.is_empty(), "{name}: {reason}");
    }
    let rebuilt = build_book(&config, &population, &from_file, PolicyKind::Static, None).unwrap();
    assert!(rebuilt.not_rebuilt.is_empty(), "{:?}", rebuilt.not_rebuilt);
    let mut compared = 0;
    for (name, account) in dump.accounts.iter().filter(|(n, a)| !n.starts_with("stress:") && !a.positions.is_empty()) {
        let health = rebuilt.engine.health(name).unwrap();
        let notional: i128 = account.positions.values().map(|p| p.size.raw().unsigned_abs() as i128).sum();
        let tolerance = Quote::from_raw(notional * 2 * 10i128.pow(8)); // entry prices are shown rounded down
        let difference = health.equity.checked_sub(account.equity).unwrap();
        assert!(difference.raw().abs() <= tolerance.raw(), "{name}: {} vs {}", health.equity, account.equity);
        compared += 1;
    }
    assert!(compared > 10, "{compared} accounts with positions compared");
    let report = run(&StressOptions { population: from_file.population.clone(), ..mc_only(0, 4) }, &|_, _| {}).unwrap();
    assert_eq!(report.population.get("accounts"), Some(population.accounts.len() as f64));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_input_is_a_typed_error() {
    let dir = std::env::temp_dir().join(format!("solvent-stress-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        StressOptions { population: PopulationSource::StateFile(path), ..small(10) }
    };
    let missing = StressOptions { population: PopulationSource::StateFile(dir.join("absent.json")), ..small(10) };
    assert!(matches!(run(&missing, &|_, _| {}), Err(StressError::StateIo { .. })));
    assert!(matches!(run(&write("garbage.json", "{not json"), &|_, _| {}), Err(StressError::StateJson { .. })));
    let unknown = r#"{"markets":{"DOGE-PERP":{"mark_price":"1"}},"accounts":{}}"#;
    assert!(matches!(run(&write("unknown.json", unknown), &|_, _| {}), Err(StressError::StateInvalid { .. })));
    let bad_size = r#"{"markets":{"BTC-PERP":{"mark_price":"9000"}},"accounts":{"a":{"collateral":{"USDC":"10"},"positions":{"BTC-PERP":{"size":"1e3"}}}}}"#;
    assert!(matches!(run(&write("size.json", bad_size), &|_, _| {}), Err(StressError::StateInvalid { .. })));
    let negative_btc = r#"{"markets":{"BTC-PERP":{"mark_price":"9000"}},"accounts":{"a":{"collateral":{"BTC":"-1"}}}}"#;
    assert!(matches!(run(&write("btc.json", negative_btc), &|_, _| {}), Err(StressError::StateInvalid { .. })));
    let no_longs = r#"{"markets":{"BTC-PERP":{"mark_price":"9000"}},"accounts":{"a":{"collateral":{"USDC":"10"}}}}"#;
    assert!(matches!(run(&write("empty.json", no_longs), &|_, _| {}), Err(StressError::Population(_))));
    assert!(matches!(
        run(&StressOptions { paths: 0, ..small(10) }, &|_, _| {}),
        Err(StressError::InvalidOption { name: "paths", .. })
    ));
    let config = StressOptions { config: Some(dir.join("garbage.json")), ..small(10) };
    assert!(matches!(run(&config, &|_, _| {}), Err(StressError::Config { .. })));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn float_margin_samples_match_the_core_and_scaled_tables_round_up() {
    let config = Config::embedded_default();
    let params: &MarketParams = &config.markets[0].params;
    let tiers = FloatTiers::new(params);
    for (size, price) in [("300", "10000"), ("0.5", "7900"), ("1200", "20000"), ("49.99", "123.45")] {
        let exact = margin::position_mm(params, Size::parse(size).unwrap(), Price::parse(price).unwrap()).unwrap();
        let float = tiers.maintenance_margin(size.parse().unwrap(), price.parse().unwrap());
        assert!((float - exact.to_string().parse::<f64>().unwrap()).abs() < 1e-6, "{size} at {price}");
    }
    let mut notional = params.clone();
    notional.tier_basis = TierBasis::Notional;
    for (tier, from) in notional.tiers.iter_mut().zip(["0", "500000", "2500000", "10000000"]) {
        tier.from_raw = Quote::parse(from).unwrap().raw();
    }
    let float = FloatTiers::new(&notional).maintenance_margin(300.0, 10_000.0);
    assert!((float - 162_500.0).abs() < 1e-6, "Binance form: {float}");
    let table = static_tiers(&config.markets[0]);
    let scaled = scaled_tiers(&table, 1.3).unwrap();
    let rates: Vec<&str> = scaled.iter().map(|t| t.mm_rate.as_str()).collect();
    assert_eq!(rates, ["0.0325", "0.065", "0.13", "0.26"]);
    assert_eq!(scaled_tiers(&table, 0.5).unwrap(), table, "a multiplier below 1 keeps the table");
    assert_eq!(scaled_tiers(&table, 9.0).unwrap()[3].mm_rate, "1", "rates are capped at 1");
}

/// A Monte Carlo step longer than the engine's max_clock_jump_ms would have every clock event
/// refused mid-run; the run is refused up front, naming the option and the config key.
#[test]
fn a_monte_carlo_step_beyond_the_clock_bound_is_refused_up_front() {
    let options = StressOptions { mc_step_s: 7_200, mc_horizon_s: 72_000, ..small(10) };
    let error = solvent_stress::runner::load_config(&options).unwrap_err().to_string();
    assert!(error.contains("mc_step_s") && error.contains("max_clock_jump_ms"), "{error}");
    assert!(solvent_stress::runner::load_config(&small(10)).is_ok());
}

//! Settlement delay and congestion of the backstop makers, at small sizes.

use solvent_core::effect::EffectKind;
use solvent_core::liquidation::auction::price_after;
use solvent_core::{Config, Engine};
use solvent_stress::book::{build_book, Book};
use solvent_stress::driver::{run_scenario, RunOutcome, RunRequest};
use solvent_stress::runner::load_population;
use solvent_stress::scenario::{self, Scenario};
use solvent_stress::{
    AdvisorSettings, CongestionSettings, CongestionWindow, PolicyKind, PopulationSource, ScenarioSelection,
    StressError, StressOptions,
};

fn options(congestion: CongestionSettings) -> StressOptions {
    let defaults = StressOptions::default();
    StressOptions {
        population: PopulationSource::Synthetic { accounts: 150 },
        paths: 4,
        mc_horizon_s: 30 * 60,
        scenarios: ScenarioSelection { historical: false, shocks: true, monte_carlo: false },
        advisor: AdvisorSettings { gap_paths_per_stratum: 1_000, ..defaults.advisor },
        congestion,
        ..defaults
    }
}

fn book(options: &StressOptions) -> (Config, Book) {
    let config = Config::embedded_default();
    let population = load_population(options, &config).unwrap();
    (config.clone(), build_book(&config, &population, options, PolicyKind::Static, None).unwrap())
}

fn shock(name: &str) -> Scenario {
    scenario::fixed_shocks(1).into_iter().find(|s| s.name.contains(name)).unwrap()
}

fn run(book: &Book, scenario: &Scenario, options: &StressOptions, congested: bool) -> RunOutcome {
    let book = Book { congested, ..book.clone() };
    run_scenario(&book, scenario, None, options, RunRequest { journal: true, trace: true }).unwrap()
}

#[test]
fn frozen_makers_leave_the_inventory_with_the_protocol_and_its_marked_draw_at_least_as_large() {
    // Nobody bids on any auction that starts during the fall of the -30% minute (from the
    // peak before it to 10 s after its trough); then the makers come back for the calm hour.
    let scenario = shock("30pct");
    let (start_ms, end_ms) = solvent_stress::congestion::crash_window_ms(&scenario).unwrap();
    let trough_ms = end_ms - solvent_stress::congestion::CRASH_TAIL_MS;
    let fall = CongestionWindow::Fixed { start_s: start_ms / 1_000, length_s: (trough_ms - start_ms) / 1_000 + 10 };
    let frozen = CongestionSettings { delay_ms: 0, window: fall, no_bid_fraction: 1.0 };
    let o = options(frozen);
    let (_, book) = book(&o);
    let without = run(&book, &scenario, &o, false);
    let with = run(&book, &scenario, &o, true);
    let (a, b) = with.metrics.window_s.expect("the -30% minute has a crash window");
    assert_eq!(without.metrics.window_s, Some((a, b)), "both runs measure the same window");
    let (w, c) = (&without.metrics, &with.metrics);
    assert!(c.window_auctions > 0 && c.no_bid_auctions == c.window_auctions, "{c:?}");
    assert_eq!((w.no_bid_auctions, w.late_takes, w.missed_takes), (0, 0, 0));
    assert!(c.auction_fills < w.auction_fills, "fewer fills while frozen: {} vs {}", c.auction_fills, w.auction_fills);
    // The inventory the protocol carries rises inside the window, above the run without congestion.
    let trace = with.trace.as_ref().unwrap();
    let inside: Vec<f64> =
        trace.t_s.iter().zip(&trace.inventory_usdc).filter(|(t, _)| **t >= a && **t < b).map(|(_, v)| *v).collect();
    let first_positive = inside.iter().position(|v| *v > 0.0).expect("inventory in the window");
    let peak = inside.iter().copied().fold(0.0, f64::max);
    assert!(peak > inside[first_positive], "the inventory grows as liquidations go on: {inside:?}");
    assert!(
        c.window_peak_inventory_usdc > w.window_peak_inventory_usdc,
        "{} vs {}",
        c.window_peak_inventory_usdc,
        w.window_peak_inventory_usdc
    );
    assert!(c.window_peak_inventory_loss_usdc > w.window_peak_inventory_loss_usdc);
    assert!(c.window_inventory_usdc_h > w.window_inventory_usdc_h);
    // The fund's draw counts the inventory's loss only once it is sold; the frozen run still
    // holds inventory at the end, so the comparison is of the draw plus that unsold loss.
    assert!(c.unsold_inventory_usdc > 0.0 && w.unsold_inventory_usdc == 0.0);
    let marked = |m: &solvent_stress::metrics::RunMetrics| m.fund_draw_usdc + m.inventory_loss_end_usdc;
    assert!(marked(c) >= marked(w), "marked draw {} with vs {} without", marked(c), marked(w));
    // Outside a congested book the answers never change: the run without is the default run.
    let default = run(&book, &scenario, &options(CongestionSettings::default()), false);
    assert_eq!(default.metrics.fund_draw_usdc, w.fund_draw_usdc);
    assert_eq!(default.engine.state_hash(), without.engine.state_hash());
}

/// Replays `journal` through a fresh engine; before each auction take, the floor of its
/// auction at the live mark; every fill is checked against it. Returns the fills checked.
fn fills_checked_against_the_floor(config: &Config, journal: &[String]) -> usize {
    let mut engine = Engine::new(config);
    let mut out = Vec::new();
    let mut checked = 0;
    for (i, line) in journal.iter().enumerate() {
        let floor = line.contains("\"auction_take\"").then(|| {
            let market = engine.markets().iter().find(|m| m.auction.is_some()).expect("a live auction");
            let auction = market.auction.unwrap();
            let mark = market.mark_price.unwrap();
            (auction.selling, price_after(market, auction.selling, mark, market.params.auction_duration_ms).unwrap())
        });
        out.clear();
        engine.apply_line(i as u64 + 1, line.as_bytes(), &mut out);
        for e in &out {
            if let (EffectKind::AuctionFill { price, .. }, Some((selling, floor))) = (&e.kind, floor) {
                assert!(if selling { *price >= floor } else { *price <= floor }, "fill at {price}, floor {floor}");
                checked += 1;
            }
        }
    }
    checked
}

#[test]
fn no_fill_is_below_the_floor_even_when_the_makers_answer_late() {
    // Late answers: 20 s + 35 s into a 60 s auction, 1/3 of the way from the mark to the
    // floor of the usual answer, 2.8% below mark; a delay of 40 s and more misses the auction.
    for delay_ms in [35_000, 45_000] {
        let late = CongestionSettings { delay_ms, window: CongestionWindow::Crash, no_bid_fraction: 0.0 };
        let o = options(late);
        let (config, book) = book(&o);
        let outcome = run(&book, &shock("30pct"), &o, true);
        let m = &outcome.metrics;
        assert_eq!(m.fills_below_floor, 0);
        assert_eq!(m.takes_refused, 0, "no take is sent past an auction's end");
        if delay_ms < 40_000 {
            assert!(m.late_takes > 0 && m.missed_takes == 0, "{m:?}");
        } else {
            assert!(m.missed_takes > 0 && m.late_takes == 0, "{m:?}");
        }
        let checked = fills_checked_against_the_floor(&config, outcome.journal.as_ref().unwrap());
        assert!(checked > 0, "some fills to check");
    }
}

#[test]
fn bad_congestion_options_name_the_option() {
    let bad = |c: CongestionSettings| match options(c).validate() {
        Err(StressError::InvalidOption { name, .. }) => name,
        other => panic!("{c:?}: {other:?}"),
    };
    let d = CongestionSettings::default();
    assert_eq!(bad(CongestionSettings { no_bid_fraction: 1.5, ..d }), "no_bid_fraction");
    assert_eq!(bad(CongestionSettings { no_bid_fraction: -0.1, ..d }), "no_bid_fraction");
    assert_eq!(bad(CongestionSettings { no_bid_fraction: f64::NAN, ..d }), "no_bid_fraction");
    assert_eq!(bad(CongestionSettings { delay_ms: 86_400_001, ..d }), "congestion_delay_ms");
    let empty = CongestionWindow::Fixed { start_s: 60, length_s: 0 };
    assert_eq!(bad(CongestionSettings { window: empty, ..d }), "congestion_window");
    match CongestionWindow::parse("during the crash") {
        Err(e @ StressError::InvalidOption { name: "congestion_window", .. }) => {
            assert!(e.to_string().contains("congestion_window"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert!(options(d).validate().is_ok());
}

#[test]
fn the_report_shows_congestion_with_and_without_in_json_and_html() {
    let o = StressOptions {
        scenarios: ScenarioSelection { historical: false, shocks: true, monte_carlo: true },
        frontier: vec![1.2],
        ..options(CongestionSettings::default())
    };
    let report = solvent_stress::run(&o, &|_, _| {}).unwrap();
    let c = report.congestion.as_ref().expect("congestion block");
    // Four shocks and the Monte Carlo set, each under static and predictive.
    assert_eq!(c.scopes.len(), 10);
    let minus_30 = c.scopes.iter().find(|s| s.scope.contains("30pct") && s.policy == PolicyKind::Static).unwrap();
    assert!(minus_30.window_s.is_some());
    assert!(minus_30.with.get("no_bid_auctions").unwrap() > 0.0);
    assert_eq!(minus_30.without.get("no_bid_auctions"), Some(0.0));
    let json = report.to_json();
    assert!(json.contains("\"window_peak_inventory\"") && json.contains("\"congestion_window\": \"crash\""));
    let html = report.to_html();
    assert!(html.contains("Congestion: what the fund carried while nobody bid"));
    assert!(html.contains("congestion-inventory") && html.contains("<dt>window_peak_inventory</dt>"));
    for name in ["fund_draw_marked", "window_peak_inventory_loss", "window_inventory_carry", "no_bid_auctions"] {
        let entry = format!("<dt>{name}</dt><dd>(not described yet)");
        assert!(html.contains(&format!("<dt>{name}</dt>")) && !html.contains(&entry), "{name}");
    }
    assert!(report.terminal_table().contains("congestion (window crash"));
    let off = StressOptions { congestion: CongestionSettings { window: CongestionWindow::Off, ..c_settings() }, ..o };
    assert!(solvent_stress::run(&off, &|_, _| {}).unwrap().congestion.is_none());
}

fn c_settings() -> CongestionSettings {
    CongestionSettings::default()
}

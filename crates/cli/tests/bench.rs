//! `solvent bench` end to end on a small book: it runs every phase and writes its figures as
//! JSON with names, values and units. Speed is not asserted here (benchmarks judge speed); the
//! test checks that every phase ran and that the book behaved as built: nothing refused, every
//! latency sample liquidated exactly the planned accounts, nothing crossed during the tick walk.

use std::process::Command;

#[test]
fn bench_runs_every_phase_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let output = Command::new(env!("CARGO_BIN_EXE_solvent"))
        .args(["bench", "--accounts", "400", "--seed", "7", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("price_ticks_per_second"), "{table}");
    let document: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(document["accounts"], 400);
    let figures = document["figures"].as_array().unwrap();
    let value = |name: &str| {
        let figure = figures.iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("no figure {name}"));
        assert!(figure["unit"].as_str().is_some_and(|u| !u.is_empty()), "{figure}");
        figure["value"].as_f64().unwrap_or_else(|| panic!("{figure}"))
    };
    for figure in figures {
        assert!(figure["value"].as_f64().is_some_and(f64::is_finite), "{figure}");
    }
    for name in [
        "memory_one_position_requested",
        "full_scan_per_tick",
        "indexed_tick",
        "full_scan_to_indexed_ratio",
        "tick_to_liquidation_p99",
        "replay_events_per_second",
        "full_scan_bandwidth_fraction",
    ] {
        assert!(value(name) > 0.0, "{name}");
    }
    for zero in ["one_position_build_refused", "book_build_refused", "ticks_refused", "latency_samples_mismatched"] {
        assert_eq!(value(zero), 0.0, "{zero}");
    }
    assert_eq!(value("rechecks_per_tick"), 0.0, "the tick walk stays inside every band");
    assert!(figures.iter().filter(|f| f.get("target").is_some()).all(|f| f["met"].is_boolean()));
}

/// With `--portfolio-percent`, a share of the pairs is built hedged and portfolio-margined:
/// nothing is refused (opt-ins included), the latency samples still liquidate exactly the planned
/// accounts, and an out-of-range percent is a clear error.
#[test]
fn bench_builds_portfolio_margined_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let output = Command::new(env!("CARGO_BIN_EXE_solvent"))
        .args(["bench", "--accounts", "2000", "--portfolio-percent", "30", "--only", "scan,ticks,latency", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let document: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let figures = document["figures"].as_array().unwrap();
    let value = |name: &str| {
        figures.iter().find(|f| f["name"] == name).and_then(|f| f["value"].as_f64()).unwrap_or_else(|| panic!("{name}"))
    };
    let portfolio = value("book_portfolio_accounts");
    assert!((400.0..800.0).contains(&portfolio), "about 30% of 2,000 accounts: {portfolio}");
    for zero in ["book_build_refused", "ticks_refused", "latency_samples_mismatched"] {
        assert_eq!(value(zero), 0.0, "{zero}");
    }
    let refused = Command::new(env!("CARGO_BIN_EXE_solvent"))
        .args(["bench", "--accounts", "100", "--portfolio-percent", "101"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--portfolio-percent"), "{refused:?}");
}

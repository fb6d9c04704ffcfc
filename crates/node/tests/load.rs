//! The load test: acknowledged events/s and request latency with group commit versus an fsync
//! per event, in one run, on loopback. The full run is `#[ignore]`d (run it with
//! `cargo test --release -p solvent-node --test load -- --ignored --nocapture`, or
//! `solvent-serve bench`); a short smoke run of the same function always runs.

use solvent_node::bench::{run_load, LoadOptions};
use solvent_node::journal::SyncMode;
use std::time::Duration;

#[test]
fn the_load_function_measures_all_four_configurations() {
    let scratch = tempfile::tempdir().unwrap();
    let options = LoadOptions {
        clients: 2,
        single_event_clients: 4,
        batch_events: 50,
        run_duration: Duration::from_millis(300),
        max_events_per_run: 20_000,
        scratch_dir: scratch.path().to_path_buf(),
    };
    let report = run_load(&options).expect("load run");
    assert_eq!(report.runs.len(), 4);
    for run in &report.runs {
        assert!(run.events > 0 && run.requests > 0, "{run:?}");
        // Every acknowledged request had all its events accepted, and no more were counted.
        assert_eq!(run.events, run.requests * run.batch_events as u64, "{run:?}");
        assert!(run.events <= options.max_events_per_run + (run.clients * run.batch_events) as u64, "{run:?}");
        // Latencies were measured (a durable round trip takes time) and no request outlived its run.
        assert!(run.p50_ms > 0.0 && run.p99_ms <= run.elapsed.as_secs_f64() * 1_000.0, "{run:?}");
    }
    assert!(report.runs.iter().any(|r| r.sync_mode == SyncMode::PerEvent));
    assert!(report.to_markdown().contains("group commit, batching clients"));
}

#[test]
#[ignore = "load test (about 25 s): cargo test --release -p solvent-node --test load -- --ignored --nocapture"]
fn load_group_commit_versus_fsync_per_event() {
    let scratch = tempfile::tempdir().unwrap();
    let options = LoadOptions { scratch_dir: scratch.path().to_path_buf(), ..LoadOptions::default() };
    let report = run_load(&options).expect("load run");
    println!("{}", report.to_markdown());
    let speedup = report.speedup_same_clients();
    assert!(speedup >= 20.0, "group commit is only {speedup:.1}x the fsync-per-event baseline");
    if !cfg!(debug_assertions) {
        let best = report.best_events_per_sec();
        assert!(best >= 100_000.0, "group commit reached {best:.0} durable events/s (target 100,000)");
    }
}

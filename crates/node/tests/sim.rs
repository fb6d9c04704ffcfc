//! Deterministic simulation of the storage path under injected faults (`solvent_node::sim`):
//! a few hundred seeds here; `solvent sim --seeds 10000` is the soak (docs/security.md).

use solvent_node::sim;

#[test]
fn simulated_faults_lose_no_acknowledged_event_and_recover_to_a_replay() {
    let seeds: u64 = std::env::var("SOLVENT_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let first: u64 = std::env::var("SOLVENT_SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let outcomes = sim::run_seeds(first, seeds, 120, &sim::default_scratch_root()).unwrap_or_else(|f| panic!("{f}"));
    let acknowledged: usize = outcomes.iter().map(|o| o.acknowledged).sum();
    let crashes: u64 = outcomes.iter().map(|o| o.crashes).sum();
    let faults: u64 = outcomes.iter().map(|o| o.faults).sum();
    let detected = outcomes.iter().filter(|o| o.detected_corruption).count();
    eprintln!("{seeds} seeds: {acknowledged} acknowledged events, {crashes} crashes, {faults} faults, {detected} runs ended on detected corruption");
    // The faults were really exercised, not skipped.
    assert!(crashes >= seeds * 2 && faults >= seeds / 4 && acknowledged as u64 >= seeds * 50);
    assert!(outcomes.iter().any(|o| o.refused_by_server > 0), "poisoned timestamps were refused before the journal");
}

/// A seed replays exactly: the same outcome twice.
#[test]
fn a_seed_reproduces_its_run() {
    let root = sim::default_scratch_root();
    let a = sim::run_seed(42, 150, &root).unwrap();
    let b = sim::run_seed(42, 150, &root).unwrap();
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

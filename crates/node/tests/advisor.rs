//! The server's margin advisor: with `[server.advisor] policy = "predictive"` it journals its
//! `params` and `signal` lines like any event; a replay of the journal gives the server's state.

mod support;

use solvent_node::advisor::{AdvisorPolicy, AdvisorSection};
use solvent_node::demo::DemoOptions;
use solvent_node::{NodeSettings, RunningServer, ServerSection, StartOptions};
use std::time::{Duration, Instant};
use support::*;

#[test]
fn the_predictive_advisor_journals_params_and_signals_and_replay_reproduces_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let advisor = AdvisorSection {
        policy: AdvisorPolicy::Predictive,
        interval_ms: 200,
        max_lines_per_minute: 600,
        ..Default::default()
    };
    let section = ServerSection { listen: "127.0.0.1:0".into(), advisor, ..ServerSection::default() };
    let mut options = StartOptions::new(dir.path().to_path_buf(), NodeSettings::build(section, token_specs()).unwrap());
    options.demo = Some(DemoOptions { max_duration: Duration::from_secs(8), print: false });
    let server = RunningServer::start(options).unwrap();
    let addr = server.local_addr();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (_, metrics) = get(addr, None, "/metrics");
        let text = metrics.as_str().unwrap_or_default().to_string();
        if text.contains("solvent_advisor_regime_probability{market=\"BTC-PERP\"}")
            && text.contains("solvent_advisor_cascade_amplification{market=\"BTC-PERP\"}")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no advisor metrics: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    let (_, before) = state(addr);
    server.shutdown().unwrap();
    let (replayed, lines) = replay_journal(dir.path(), None);
    let params: Vec<&String> =
        lines.iter().filter(|l| l.contains(r#""type":"params""#) && l.contains("tiers")).collect();
    let signals = lines.iter().filter(|l| l.contains(r#""type":"signal""#) && l.contains("regime_probability")).count();
    assert!(!params.is_empty(), "the advisor changed the tables");
    assert!(params.iter().all(|l| l.contains("mm_phase_in_ms")), "{params:?}");
    assert!(signals > 0, "the advisor journaled what it saw");
    let restarted = start(dir.path(), test_section());
    let (_, after) = state(restarted.local_addr());
    assert_eq!(after, replayed, "a replay of the journal gives the server's state");
    assert!(!before.is_empty());
}

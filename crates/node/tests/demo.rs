//! The `--demo` feed: within a few seconds the markets have prices and the leveraged positions
//! exist; the crash curve takes prices down 30% over 30 s.

mod support;

use solvent_node::demo::{crash_factor, DemoOptions};
use solvent_node::{NodeSettings, RunningServer, ServerSection, StartOptions};
use std::time::{Duration, Instant};
use support::*;

#[test]
fn the_demo_feed_builds_leveraged_positions_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let section = ServerSection { listen: "127.0.0.1:0".into(), ..ServerSection::default() };
    let mut options = StartOptions::new(dir.path().to_path_buf(), NodeSettings::build(section, token_specs()).unwrap());
    options.demo = Some(DemoOptions { max_duration: Duration::from_secs(4), print: false });
    let server = RunningServer::start(options).unwrap();
    let addr = server.local_addr();
    let deadline = Instant::now() + Duration::from_secs(20);
    let whale = loop {
        let (status, account) = get(addr, Some(VIEWER), "/v1/accounts/whale");
        if status == 200 && account["positions"]["BTC-PERP"]["size"] == "300" {
            break account;
        }
        assert!(Instant::now() < deadline, "the demo did not open the whale's position: {account}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(whale["collateral"]["USDC"], "400000");
    let (_, markets) = get(addr, Some(VIEWER), "/v1/markets");
    assert_eq!(markets["markets"]["BTC-PERP"]["frozen"], false, "{markets}");
    assert_eq!(markets["markets"]["ETH-PERP"]["frozen"], false, "{markets}");
    server.shutdown().unwrap();
    let (replayed, _) = replay_journal(dir.path(), None);
    let restarted = start(dir.path(), test_section());
    assert_eq!(state(restarted.local_addr()).1, replayed);
}

#[test]
fn the_crash_falls_thirty_percent_over_thirty_seconds() {
    assert_eq!(crash_factor(0.0), 1.0);
    assert_eq!(crash_factor(5.0), 1.0);
    assert!((crash_factor(20.0) - 0.85).abs() < 1e-12);
    assert!((crash_factor(35.0) - 0.70).abs() < 1e-12);
    assert!((crash_factor(600.0) - 0.70).abs() < 1e-12);
}

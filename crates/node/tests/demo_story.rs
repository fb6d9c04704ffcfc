//! The `--demo` story in simulated time: its script (prices, deposits, trades, the backstop
//! makers' takes) driven against an engine with the embedded default config, 250 ms per step,
//! exactly as `serve --demo` posts it but without the wall clock.

use solvent_core::effect::EffectKind;
use solvent_core::{Config, Effect, Engine, Quote};
use solvent_node::demo::{DemoScript, QUIET_SECS};
use std::collections::BTreeMap;

const T0_MS: u64 = 1_700_000_000_000;
const STEP_MS: u64 = 250;

/// Runs the script for `secs`; every accepted event's effects, with the elapsed time.
fn run_demo(secs: u64, mut each_step: impl FnMut(f64, &Engine)) -> Vec<(f64, Effect)> {
    let mut engine = Engine::new(&Config::embedded_default());
    let mut script = DemoScript::default();
    let (mut seq, mut all) = (0u64, Vec::new());
    for step in 0..=secs * 1_000 / STEP_MS {
        let elapsed_secs = (step * STEP_MS) as f64 / 1_000.0;
        let ts = T0_MS + step * STEP_MS;
        // The server's clock ticker: engine time follows the wall clock.
        let clock = format!(r#"{{"type":"clock","ts":{ts}}}"#).into_bytes();
        let lines = std::iter::once(clock).chain(script.lines(elapsed_secs, ts, &engine)).collect::<Vec<_>>();
        for line in lines {
            seq += 1;
            let mut out = Vec::new();
            engine.apply_line(seq, &line, &mut out);
            all.extend(out.into_iter().map(|e| (elapsed_secs, e)));
        }
        each_step(elapsed_secs, &engine);
    }
    all
}

/// deposits - withdrawals - Σ accounts' (settlement + unrealized PnL) - fees: what conservation
/// says the protocol holds net, computed from the ledger, not from the protocol's book.
fn identity_net(engine: &Engine) -> Quote {
    let flows = engine.settlement_flows();
    let mut net = flows.deposited.checked_sub(flows.withdrawn).unwrap();
    for account in engine.accounts() {
        net = net.checked_sub(account.settlement).unwrap();
        for position in &account.positions {
            let mark = engine.markets()[position.market.0 as usize].mark_price.unwrap();
            net = net.checked_sub(position.unrealized_pnl(mark).unwrap()).unwrap();
        }
    }
    net.checked_sub(engine.fees_collected()).unwrap()
}

/// The crash under the venue rules, with the makers bidding, then quiet, then back: no account
/// is liquidated more than 5 times per market, no liquidation is smaller than the minimum
/// notional (no penalty of a few cents), auctions fill before and after the quiet window and
/// never in it, the protocol's net position goes below zero (one alert) while the makers are
/// away and is back at zero or above once they bought the inventory, and at every step it equals
/// what conservation leaves after the traders, to the unit.
#[test]
fn the_demo_crash_is_liquidated_in_a_handful_of_steps_and_the_protocol_book_tells_the_truth() {
    let mut worst_net: Option<Quote> = None;
    let effects = run_demo(150, |_, engine| {
        let book = engine.protocol_book().unwrap();
        assert_eq!(book.net_position, identity_net(engine), "net position against the conservation identity");
        let status = solvent_node::demo::protocol_status(engine);
        assert!(status.contains(&format!("protocol net {}", book.net_position)), "{status}");
        worst_net = Some(worst_net.map_or(book.net_position, |w| w.min(book.net_position)));
    });
    let mut per_position = BTreeMap::<(String, String), u32>::new();
    let (mut fills_before, mut fills_after) = (0, 0);
    let mut insolvent_alerts = Vec::new();
    let minimum = Quote::parse("1000").unwrap();
    for (elapsed, effect) in &effects {
        if let EffectKind::Rejected { error, .. } = &effect.kind {
            // The one refusal of the script: the whale's withdrawal of paper money mid-crash.
            assert!(error == "insufficient_balance" && *elapsed == 18.0, "{}", effect.to_json_line());
        }
        match &effect.kind {
            EffectKind::Liquidation { account, market, closed_size, price, .. } => {
                *per_position.entry((account.clone(), market.clone())).or_default() += 1;
                let notional = closed_size.checked_abs().unwrap().mul_price(*price);
                assert!(notional >= minimum, "{account} liquidated for {notional} in {market}");
            }
            EffectKind::AuctionFill { .. } if QUIET_SECS.contains(elapsed) => {
                panic!("a fill while the makers are quiet")
            }
            EffectKind::AuctionFill { .. } if *elapsed < QUIET_SECS.start => fills_before += 1,
            EffectKind::AuctionFill { .. } => fills_after += 1,
            EffectKind::Alert { alert, .. } if alert == "protocol_insolvent" => insolvent_alerts.push(*elapsed),
            _ => {}
        }
    }
    let most = per_position.values().max().copied().unwrap_or(0);
    assert!(most <= 5 && per_position.len() >= 4, "liquidations per position: {per_position:?}");
    assert!(fills_before > 0 && fills_after > 0, "fills before {fills_before}, after {fills_after}");
    assert_eq!(insolvent_alerts.len(), 1, "one crossing below zero: {insolvent_alerts:?}");
    assert!(QUIET_SECS.contains(&insolvent_alerts[0]) || insolvent_alerts[0] < QUIET_SECS.start);
    assert!(worst_net.unwrap() < Quote::parse("-50000").unwrap(), "the quiet window costs: {worst_net:?}");
    let end = run_demo(150, |_, _| {});
    assert_eq!(end.len(), effects.len(), "the script is deterministic");
}

/// Prints the story (`cargo test -p solvent-node --test demo_story -- --ignored --nocapture`).
#[test]
#[ignore]
fn demo_story_prints() {
    let effects = run_demo(150, |elapsed, engine| {
        if ((elapsed * 4.0) as u64).is_multiple_of(20) {
            eprintln!("t={elapsed} {}", solvent_node::demo::protocol_status(engine));
        }
    });
    for (t, e) in &effects {
        if !matches!(e.kind, EffectKind::OracleRejected { .. }) {
            eprintln!("{t} {}", e.to_json_line());
        }
    }
}

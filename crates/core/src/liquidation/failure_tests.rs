//! The waterfall's failure paths, driven by overflow on purpose: a step that fails half-way
//! leaves nothing written (not the fund's cover, not half an ADL, not some socialized debits),
//! and the failure is reported, never swallowed.

use crate::effect::{Effect, EffectKind};
use crate::num::Quote;
use crate::{Config, Engine};

fn apply(engine: &mut Engine, seq: &mut u64, line: &str) -> Vec<Effect> {
    *seq += 1;
    let mut out = Vec::new();
    engine.apply_line(*seq, line.as_bytes(), &mut out);
    assert!(out.iter().all(|e| e.rejection_kind().is_none()), "{line}: {out:?}");
    out
}

fn prices(engine: &mut Engine, seq: &mut u64, ts: u64, price: &str) -> Vec<Effect> {
    let mut out = apply(engine, seq, &format!(r#"{{"type":"clock","ts":{ts}}}"#));
    for source in ["s1", "s2", "s3", "s4", "s5"] {
        let tick = format!(r#"{{"type":"price","ts":{ts},"market":"BTC-PERP","source":"{source}","price":"{price}"}}"#);
        out.extend(apply(engine, seq, &tick));
    }
    out
}

/// alice 1 BTC long at 10,000 on 600 USDC against bob; a fund of 10. bob's balance is then set
/// so close to i128::MAX that any evaluation of his equity overflows (a state no event can
/// reach: balances are capped; the point is the failure path).
fn poised() -> (Engine, u64) {
    let mut engine = Engine::new(&Config::embedded_default());
    let mut seq = 0;
    prices(&mut engine, &mut seq, 1_000, "10000");
    for (account, amount) in [("alice", "600"), ("bob", "100000")] {
        let line =
            format!(r#"{{"type":"deposit","ts":1000,"account":"{account}","asset":"USDC","amount":"{amount}"}}"#);
        apply(&mut engine, &mut seq, &line);
    }
    apply(&mut engine, &mut seq, r#"{"type":"fund_deposit","ts":1000,"amount":"10"}"#);
    let trade =
        r#"{"type":"trade","ts":1000,"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"1","price":"10000"}"#;
    apply(&mut engine, &mut seq, trade);
    let bob = engine.account_id("bob").unwrap();
    engine.account_mut(bob).settlement = Quote::from_raw(i128::MAX - 1);
    (engine, seq)
}

/// alice goes bankrupt at 9,000 (equity -400): the fund covers 10, then ADL against bob
/// overflows. Before, the cover stayed written and value vanished; now the whole step is undone.
#[test]
fn a_bankruptcy_whose_adl_overflows_leaves_the_fund_and_the_account_untouched() {
    let (mut engine, mut seq) = poised();
    let alice_before = engine.account("alice").unwrap().clone();
    let out = prices(&mut engine, &mut seq, 2_000, "9000");
    let alert =
        out.iter().any(|e| matches!(&e.kind, EffectKind::Alert { alert, .. } if alert == "liquidation_overflow"));
    assert!(alert, "the failure is reported: {out:?}");
    assert!(!out.iter().any(|e| e.type_name() == "bankruptcy"), "no effect of the undone step stays: {out:?}");
    assert_eq!(engine.insurance_fund(), Quote::from_raw(10 * Quote::ONE_RAW), "the fund's cover was undone");
    assert_eq!(engine.account("alice").unwrap(), &alice_before);
    assert_eq!(engine.markets()[0].inventory.size, crate::Size::ZERO);
}

/// Bad debt offered to accounts whose equity cannot be evaluated: nothing is debited, the debt
/// stays, and an alert says so (it used to be swallowed).
#[test]
fn repaying_bad_debt_that_overflows_moves_nothing_and_says_so() {
    let (mut engine, mut seq) = poised();
    engine.bad_debt = Quote::from_raw(5 * Quote::ONE_RAW);
    let accounts_before = engine.accounts().to_vec();
    let mut out = Vec::new();
    seq += 1;
    engine.repay_bad_debt(seq, &mut out);
    assert_eq!(engine.bad_debt(), Quote::from_raw(5 * Quote::ONE_RAW));
    assert_eq!(engine.accounts(), accounts_before.as_slice());
    let alert =
        out.iter().any(|e| matches!(&e.kind, EffectKind::Alert { alert, .. } if alert == "liquidation_overflow"));
    assert!(alert, "{out:?}");
}

/// A socialized loss is planned in full before any debit: when one eligible account cannot be
/// evaluated, no account is debited at all.
#[test]
fn a_socialized_loss_that_fails_half_way_debits_nobody() {
    let (mut engine, mut seq) = poised();
    // carol holds a position too (against alice), so two accounts are eligible, and bob, who
    // sorts first by name... is the one that fails: either way, nothing may move.
    let deposit = r#"{"type":"deposit","ts":1000,"account":"carol","asset":"USDC","amount":"100000"}"#;
    apply(&mut engine, &mut seq, deposit);
    let accounts_before = engine.accounts().to_vec();
    let mut out = Vec::new();
    assert!(engine.socialize(Quote::from_raw(Quote::ONE_RAW), None, "test", seq, &mut out).is_err());
    assert_eq!(engine.accounts(), accounts_before.as_slice());
    assert!(out.is_empty());
}

//! Isolated margin on the real `apply` path: the isolated wallet's liquidation price is
//! Binance's isolated formula, its loss never reaches the cross account, and every bad move is
//! refused with the state unchanged.

use solvent_core::event::isolated_account;
use solvent_core::{margin, Config, Effect, Engine, Price, Quote};

/// One market, one tier: MM 2.5%, penalty 0.5%, IM 2 x MM, no buffer, wide oracle bounds.
fn config() -> Config {
    Config::from_toml(
        r#"
settlement_asset = "USDC"
max_accounts = 1000
[[markets]]
name = "X-PERP"
tier_basis = "size"
tier_mode = "marginal"
im_factor = "2"
liquidation_buffer = "0"
sources = ["s1", "s2", "s3"]
quorum = 2
max_age_ms = 3600000
max_deviation = "0.5"
max_jump = "10"
adl_enabled = false
tiers = [ { from = "0", mm_rate = "0.025", penalty_rate = "0.005" } ]
"#,
    )
    .unwrap()
}

struct Run {
    engine: Engine,
    seq: u64,
    ts: u64,
}

impl Run {
    fn new() -> Run {
        Run { engine: Engine::new(&config()), seq: 0, ts: 1_000 }
    }

    fn apply(&mut self, text: &str) -> Vec<Effect> {
        self.seq += 1;
        let mut out = Vec::new();
        self.engine.apply_line(self.seq, text.as_bytes(), &mut out);
        out
    }

    fn ok(&mut self, text: &str) -> Vec<Effect> {
        let out = self.apply(text);
        assert!(out.iter().all(|e| e.rejection_kind().is_none()), "{text}: {out:?}");
        out
    }

    /// The refusal kind of `text`, checking that it changed nothing.
    fn refused(&mut self, text: &str) -> String {
        let before = self.engine.state_hash();
        let out = self.apply(text);
        let kind = out.iter().find_map(|e| e.rejection_kind()).unwrap_or_else(|| panic!("accepted: {text}"));
        assert_eq!(self.engine.state_hash(), before, "a refused event changes nothing: {text}");
        kind.to_string()
    }

    fn price(&mut self, price: &str) -> Vec<Effect> {
        self.ts += 1_000;
        let mut out = self.ok(&format!(r#"{{"type":"clock","ts":{}}}"#, self.ts));
        for source in ["s1", "s2", "s3"] {
            let line = format!(
                r#"{{"type":"price","ts":{},"market":"X-PERP","source":"{source}","price":"{price}"}}"#,
                self.ts
            );
            out.extend(self.ok(&line));
        }
        out
    }

    fn settlement(&self, name: &str) -> Quote {
        self.engine.account(name).map_or(Quote::ZERO, |a| a.settlement)
    }
}

fn q(text: &str) -> Quote {
    Quote::parse(text).unwrap()
}

/// alice: 10,000 USDC cross, 1,000 of it moved into the X-PERP isolated wallet, which buys 1 at
/// 10,000 from bob.
fn opened() -> Run {
    let mut run = Run::new();
    run.price("10000");
    run.ok(r#"{"type":"deposit","ts":2000,"account":"alice","asset":"USDC","amount":"10000"}"#);
    run.ok(r#"{"type":"deposit","ts":2000,"account":"bob","asset":"USDC","amount":"100000"}"#);
    run.ok(r#"{"type":"isolated_margin","ts":2000,"account":"alice","market":"X-PERP","amount":"1000"}"#);
    run.ok(
        r#"{"type":"trade","ts":2000,"market":"X-PERP","buyer":"alice","seller":"bob","size":"1","price":"10000","buyer_isolated":true}"#,
    );
    run
}

#[test]
fn the_isolated_liquidation_price_is_binances_isolated_formula() {
    let run = opened();
    let wallet = isolated_account("alice", "X-PERP");
    assert_eq!(wallet, "alice#X-PERP");
    assert_eq!(run.settlement("alice"), q("9000"), "the cross wallet gave 1,000");
    assert_eq!(run.settlement(&wallet), q("1000"));
    let cross = run.engine.account("alice").unwrap();
    assert!(cross.positions.is_empty(), "the fill went to the isolated wallet");
    let isolated = run.engine.account(&wallet).unwrap();
    assert_eq!(isolated.positions.len(), 1);
    // Binance, isolated: LP = (WB + cum - side x size x entry) / (size x MMR - side x size) with
    // WB = 1,000, cum = 0, side = +1, size = 1, entry = 10,000, MMR = 2.5%:
    // (1,000 - 10,000) / (0.025 - 1) = 9,000 / 0.975 = 9,230.769230769..., shown rounded toward
    // the mark (up, for a long).
    let market = run.engine.market_id("X-PERP").unwrap();
    let price = margin::liquidation_price(isolated, market, run.engine.assets(), run.engine.markets()).unwrap();
    assert_eq!(price, Price::parse("9230.76923077").unwrap());
}

#[test]
fn an_isolated_loss_never_reaches_the_cross_wallet() {
    let mut run = opened();
    let wallet = isolated_account("alice", "X-PERP");
    run.ok(r#"{"type":"fund_deposit","ts":2000,"amount":"5000"}"#);
    // Down 20%: the isolated wallet loses 2,000 on 1,000 of collateral; it is liquidated and
    // bankrupt, and the fund covers the deficit. The cross wallet keeps its 9,000 to the unit.
    let effects = run.price("8000");
    let liquidated: Vec<&str> = effects
        .iter()
        .filter_map(|e| match &e.kind {
            solvent_core::effect::EffectKind::Liquidation { account, .. } => Some(account.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(liquidated, vec![wallet.as_str()], "only the isolated wallet is liquidated: {effects:?}");
    assert!(effects.iter().all(|e| e.type_name() != "socialized_loss"), "{effects:?}");
    assert!(run.engine.account(&wallet).unwrap().positions.is_empty());
    assert!(run.engine.insurance_fund() < q("5000"), "the fund paid the wallet's deficit");
    assert_eq!(run.settlement("alice"), q("9000"), "the cross wallet is untouched: {effects:?}");
    assert!(run.settlement(&wallet) >= Quote::ZERO, "the bankrupt wallet ends at zero, not below");
}

#[test]
fn isolated_moves_check_the_giving_side_and_bad_ones_change_nothing() {
    let mut run = opened();
    // The wallet needs IM = 2 x 2.5% x 10,000 = 500 and holds 1,000: 500 is free, 501 is not.
    let out = |amount: &str| {
        format!(r#"{{"type":"isolated_margin","ts":3000,"account":"alice","market":"X-PERP","amount":"{amount}"}}"#)
    };
    assert_eq!(run.refused(&out("-500.0000000000000001")), "withdrawal_exceeds_free_collateral");
    assert_eq!(run.refused(&out("9000.0000000000000001")), "insufficient_balance");
    assert_eq!(run.refused(&out("0")), "non_positive");
    assert_eq!(
        run.refused(r#"{"type":"isolated_margin","ts":3000,"account":"alice","market":"NOPE","amount":"1"}"#),
        "unknown_market"
    );
    assert_eq!(
        run.refused(r#"{"type":"isolated_margin","ts":3000,"account":"carol","market":"X-PERP","amount":"1"}"#),
        "unknown_account"
    );
    assert_eq!(
        run.refused(r#"{"type":"isolated_margin","ts":3000,"account":"bob","market":"X-PERP","amount":"-1"}"#),
        "unknown_account",
        "bob has no isolated wallet to move from"
    );
    assert_eq!(
        run.refused(
            r#"{"type":"trade","ts":3000,"market":"X-PERP","buyer":"bob","seller":"alice","size":"1","price":"10000","buyer_isolated":true}"#
        ),
        "unknown_account",
        "a trade cannot fill in a wallet that was never funded"
    );
    assert_eq!(
        run.refused(r#"{"type":"deposit","ts":3000,"account":"alice#X-PERP","asset":"USDC","amount":"1"}"#),
        "invalid_id",
        "an isolated wallet is never named directly"
    );
    run.ok(&out("-500"));
    assert_eq!((run.settlement("alice"), run.settlement("alice#X-PERP")), (q("9500"), q("500")));
}

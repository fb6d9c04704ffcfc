//! Collateral liquidation on the real `apply_line` path, under the harness (reference evaluator,
//! per-asset conservation with the protocol's holdings, zero-sum and refusal cleanliness after
//! every event), with hand-computed numbers (docs/liquidation.md, "Collateral liquidation").

mod support;

use solvent_core::effect::EffectKind;
use solvent_core::state::AssetId;
use solvent_core::{Config, Effect, Event, Price, Quote, Size};
use support::{Expect, Harness, Outcome, Step};

/// X-PERP (the traded market: one tier, MM 10%, penalty 1%, IM 15%) and BTC-PERP (the index of
/// the BTC collateral, weight 0.8, haircut `haircut` or the default 2%).
fn config(haircut: Option<&str>) -> Config {
    let market = |name: &str| {
        format!(
            r#"
[[markets]]
name = "{name}"
tier_basis = "size"
tier_mode = "marginal"
im_factor = "1.5"
liquidation_buffer = "0"
sources = ["s1", "s2", "s3"]
quorum = 2
max_age_ms = 3600000
max_deviation = "0.5"
max_jump = "10"
adl_enabled = true
tiers = [ {{ from = "0", mm_rate = "0.10", penalty_rate = "0.01" }} ]
"#
        )
    };
    let haircut = haircut.map_or(String::new(), |h| format!("collateral_haircut = \"{h}\"\n"));
    let toml = format!(
        "settlement_asset = \"USDC\"\nmax_accounts = 100\n[[assets]]\nname = \"BTC\"\nweight = \"0.8\"\n\
         index_market = \"BTC-PERP\"\n{haircut}{}{}",
        market("X-PERP"),
        market("BTC-PERP")
    );
    Config::from_toml(&toml).unwrap()
}

struct Run {
    harness: Harness,
    ts: u64,
}

impl Run {
    fn new(config: &Config) -> Run {
        Run { harness: Harness::new(config), ts: 1_000 }
    }

    /// Apply one JSON line (parsed first, so the harness also checks the reference's admission
    /// rules) and return its effects.
    fn line(&mut self, text: &str, expect: Expect) -> Vec<Effect> {
        let before = self.harness.effects.len();
        let event = Event::parse_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        self.harness.step(Step::line_of(event).expect(expect)).unwrap_or_else(|e| panic!("{e}"));
        self.harness.effects[before..].to_vec()
    }

    fn ok(&mut self, text: String) -> Vec<Effect> {
        self.line(&text, Expect::Accept)
    }

    /// A second later, every source of `market` at `price`.
    fn price(&mut self, market: &str, price: &str) -> Vec<Effect> {
        self.ts += 1_000;
        let mut out = self.ok(format!(r#"{{"type":"clock","ts":{}}}"#, self.ts));
        for source in ["s1", "s2", "s3"] {
            out.extend(self.ok(format!(
                r#"{{"type":"price","ts":{},"market":"{market}","source":"{source}","price":"{price}"}}"#,
                self.ts
            )));
        }
        out
    }

    fn deposit(&mut self, account: &str, asset: &str, amount: &str) {
        self.ok(format!(
            r#"{{"type":"deposit","ts":{},"account":"{account}","asset":"{asset}","amount":"{amount}"}}"#,
            self.ts
        ));
    }

    fn short(&mut self, seller: &str, buyer: &str, size: &str, price: &str) {
        self.ok(format!(
            r#"{{"type":"trade","ts":{},"market":"X-PERP","buyer":"{buyer}","seller":"{seller}","size":"{size}","price":"{price}"}}"#,
            self.ts
        ));
    }

    fn take_line(&self, asset: &str, bidder: &str, size: &str) -> String {
        format!(
            r#"{{"type":"collateral_take","ts":{},"asset":"{asset}","bidder":"{bidder}","size":"{size}"}}"#,
            self.ts
        )
    }

    fn reject(&mut self, text: &str, kind: &'static str) {
        let hash = self.harness.engine.state_hash();
        let out = self.line(text, Expect::Reject(kind));
        assert_eq!(out.len(), 1, "one refusal effect: {out:?}");
        assert_eq!(self.harness.engine.state_hash(), hash, "a refused take changes nothing");
    }

    fn btc(&self) -> solvent_core::state::CollateralHolding {
        self.harness.engine.collateral_holding(AssetId(0))
    }
}

fn q(text: &str) -> Quote {
    Quote::parse(text).unwrap()
}
fn s(text: &str) -> Size {
    Size::parse(text).unwrap()
}
fn p(text: &str) -> Price {
    Price::parse(text).unwrap()
}

/// (account, reason, size, price, proceeds, holdings after) of every conversion.
fn conversions(effects: &[Effect]) -> Vec<(String, String, Size, Price, Quote, Size)> {
    effects
        .iter()
        .filter_map(|e| match &e.kind {
            EffectKind::CollateralConversion { account, reason, size, price, proceeds, holdings, .. } => {
                Some((account.clone(), reason.clone(), *size, *price, *proceeds, *holdings))
            }
            _ => None,
        })
        .collect()
}

fn bankruptcies(effects: &[Effect]) -> Vec<(String, Quote, Quote)> {
    effects
        .iter()
        .filter_map(|e| match &e.kind {
            EffectKind::Bankruptcy { account, deficit, covered_by_fund } => {
                Some((account.clone(), *deficit, *covered_by_fund))
            }
            _ => None,
        })
        .collect()
}

/// alice posts 1 BTC (at 10,000, weight 0.8: 8,000 of margin) and no USDC, and shorts 50 X at
/// 100. X gaps to 300: her uPnL is -10,000, equity -2,000: bankrupt. Before the deficit is
/// measured, all her BTC is sold to the protocol at 10,000 x 0.98 = 9,800: settlement 9,800,
/// equity 9,800 - 10,000 = -200. The fund (1,000) covers only those 200; no ADL, no socialized
/// loss. The short goes to the inventory at 300 and alice ends at exactly zero, with nothing.
/// A later BTC fall to 5,000 bankrupts nobody: the protocol's holding (1 BTC at cost 9,800)
/// carries the fall.
fn gapped_into_bankruptcy() -> Run {
    let mut run = Run::new(&config(None));
    run.price("BTC-PERP", "10000");
    run.price("X-PERP", "100");
    run.ok(format!(r#"{{"type":"fund_deposit","ts":{},"amount":"1000"}}"#, run.ts));
    run.deposit("alice", "BTC", "1");
    run.deposit("bob", "USDC", "100000");
    run.short("alice", "bob", "50", "100");
    let out = run.price("X-PERP", "300");
    assert_eq!(
        conversions(&out),
        vec![("alice".into(), "bankruptcy".into(), s("1"), p("9800"), q("9800"), s("1"))],
        "{out:?}"
    );
    assert_eq!(bankruptcies(&out), vec![("alice".into(), q("200"), q("200"))]);
    assert!(!out.iter().any(|e| matches!(e.kind, EffectKind::Adl { .. } | EffectKind::SocializedLoss { .. })));
    let engine = &run.harness.engine;
    assert_eq!(engine.insurance_fund(), q("800"), "the fund paid only what the BTC did not cover");
    assert_eq!(engine.bad_debt(), Quote::ZERO);
    let alice = engine.account("alice").unwrap();
    assert!(alice.collateral.is_empty() && alice.positions.is_empty(), "{alice:?}");
    assert_eq!(alice.settlement, Quote::ZERO);
    assert_eq!((run.btc().size, run.btc().cost), (s("1"), q("9800")));
    run
}

#[test]
fn a_bankrupt_accounts_collateral_pays_before_the_fund_and_a_later_fall_bankrupts_nobody() {
    let mut run = gapped_into_bankruptcy();
    let out = run.price("BTC-PERP", "5000");
    assert!(bankruptcies(&out).is_empty() && conversions(&out).is_empty(), "no second bankruptcy: {out:?}");
    assert_eq!(run.harness.engine.insurance_fund(), q("800"));
    let dump = run.harness.engine.dump();
    let holding = &dump.collateral_holdings["BTC"];
    assert_eq!((holding.size, holding.cost), (s("1"), q("9800")));
    assert_eq!(holding.value, Some(q("5000")), "valued at index");
    assert_eq!(holding.unrealized_pnl, Some(q("-4800")));
    assert_eq!(holding.take_price, Some(p("4950")), "5,000 x (1 - 0.01)");
    run.harness.replay_check(&config(None), None, true).unwrap();
}

/// Without the feature's conversion, the same gap would have cost the fund all of its 1,000 and
/// left alice with 1 BTC against a USDC debt. The holdings also enter the state hash (a block
/// written only when some holding is not empty): the hash before any conversion equals that of
/// the same state under a config without assets' haircut set, and changes once BTC is held.
#[test]
fn the_state_hash_is_unchanged_until_the_protocol_holds_collateral() {
    let mut with_default = Run::new(&config(None));
    let mut explicit = Run::new(&config(Some("0.02")));
    for run in [&mut with_default, &mut explicit] {
        run.price("BTC-PERP", "10000");
    }
    assert_eq!(with_default.harness.engine.state_hash(), explicit.harness.engine.state_hash());
    let mut other = Run::new(&config(Some("0.05")));
    other.price("BTC-PERP", "10000");
    assert_ne!(other.harness.engine.state_hash(), with_default.harness.engine.state_hash(), "a haircut is state");
}

/// A take of 0.4 BTC at index 10,000: price 10,000 x (1 - 0.02 / 2) = 9,900, paid 3,960; cost
/// share 9,800 x 0.4 = 3,920; realized +40 to the fund (800 -> 840); 0.6 BTC at cost 5,880 left.
/// The bidder pays from its settlement balance and holds the BTC as collateral.
#[test]
fn a_backstop_take_pays_the_take_price_and_books_the_realized_pnl_to_the_fund() {
    let mut run = gapped_into_bankruptcy();
    run.deposit("mm", "USDC", "10000");
    let out = run.ok(run.take_line("BTC", "mm", "0.4"));
    let fill = out.iter().find_map(|e| match &e.kind {
        EffectKind::CollateralFill { asset, bidder, size, price, cost, realized_pnl, remaining } => {
            Some((asset.clone(), bidder.clone(), *size, *price, *cost, *realized_pnl, *remaining))
        }
        _ => None,
    });
    assert_eq!(fill, Some(("BTC".into(), "mm".into(), s("0.4"), p("9900"), q("3920"), q("40"), s("0.6"))));
    let insurance = out.iter().any(|e| {
        matches!(&e.kind, EffectKind::Insurance { reason, amount, balance, .. }
            if reason == "collateral_pnl" && *amount == q("40") && *balance == q("840"))
    });
    assert!(insurance, "{out:?}");
    let mm = run.harness.engine.account("mm").unwrap();
    assert_eq!((mm.settlement, mm.collateral_balance(AssetId(0))), (q("6040"), s("0.4")));
    assert_eq!((run.btc().size, run.btc().cost), (s("0.6"), q("5880")));
    // The rest at a lower index: 0.6 x 4,950 = 2,970 paid against 5,880 of cost, -2,910; the fund
    // (840) goes to zero and 2,070 is bad debt, which bob (the only account with a position and
    // equity) absorbs by socialized loss within the same event.
    run.price("BTC-PERP", "5000");
    let out = run.ok(run.take_line("BTC", "mm", "0.6"));
    assert!(out.iter().any(|e| matches!(&e.kind,
        EffectKind::CollateralFill { cost, realized_pnl, remaining, .. }
            if *cost == q("5880") && *realized_pnl == q("-2910") && remaining.is_zero())));
    assert!(run.btc().is_empty(), "the whole holding is gone, cost and all");
    assert_eq!(run.harness.engine.insurance_fund(), Quote::ZERO);
    assert!(out.iter().any(|e| matches!(&e.kind, EffectKind::SocializedLoss { amount, .. } if *amount == q("2070"))));
    assert_eq!(run.harness.engine.bad_debt(), Quote::ZERO);
}

/// Every bad take is refused with a typed error naming the problem, and changes nothing.
#[test]
fn bad_takes_are_refused_and_change_nothing() {
    let mut run = gapped_into_bankruptcy();
    run.deposit("mm", "USDC", "5000");
    run.deposit("poor", "USDC", "10");
    let take = |run: &Run, asset: &str, bidder: &str, size: &str| run.take_line(asset, bidder, size);
    let cases = [
        (take(&run, "BTC", "mm", "1.00000001"), "collateral_holdings_exceeded"),
        (take(&run, "DOGE", "mm", "0.1"), "unknown_asset"),
        (take(&run, "USDC", "mm", "0.1"), "not_collateral_asset"),
        (take(&run, "BTC", "nobody", "0.1"), "unknown_account"),
        (take(&run, "BTC", "poor", "0.1"), "insufficient_balance"),
        (take(&run, "BTC", "mm", "0"), "non_positive"),
        (take(&run, "BTC", "mm", "-1"), "non_positive"),
        (take(&run, "BTC", "mm", "0.000000001"), "too_many_decimals"),
        (take(&run, "BTC", "bad name", "0.1"), "invalid_id"),
        (take(&run, "BTC", "mm", "0.1").replace(r#","size":"0.1""#, ""), "missing_field"),
        (take(&run, "BTC", "mm", "0.1").replace(r#""size":"0.1""#, r#""size":0.1"#), "invalid_field_type"),
        (take(&run, "BTC", "mm", "0.1").replace('}', r#","auction":"1"}"#), "unknown_field"),
    ];
    for (line, kind) in cases {
        let hash = run.harness.engine.state_hash();
        let before = run.harness.effects.len();
        run.harness.step(Step::raw(&line).expect(Expect::Reject(kind))).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(run.harness.effects.len(), before + 1, "{line}");
        assert_eq!(run.harness.engine.state_hash(), hash, "{line}");
    }
    // A bidder with a position it can only keep by its cash: paying it away would leave it below
    // initial margin (the withdrawal rule), so the take is refused as `insufficient_margin`.
    run.deposit("lev", "USDC", "2400");
    run.short("lev", "bob", "50", "300"); // notional 15,000: IM 2,250
                                          // Pays 1,980 for 0.2 BTC worth 1,600 of margin: 420 + 1,600 = 2,020 < 2,250.
    let text = run.take_line("BTC", "lev", "0.2");
    run.reject(&text, "insufficient_margin");
    // Sources silent past `max_age_ms`: the index market freezes, no price to take at.
    for step_ms in [3_000_000, 1_000_000] {
        run.ts += step_ms;
        run.harness.step(Step::raw(&format!(r#"{{"type":"clock","ts":{}}}"#, run.ts))).unwrap();
    }
    assert!(run.harness.engine.markets()[1].frozen);
    let text = run.take_line("BTC", "mm", "0.1");
    run.reject(&text, "market_frozen");
}

/// A partial liquidation that leaves the settlement balance negative sells just enough BTC,
/// the size rounded up. alice: 0.5 BTC (4,000 of margin), short 30 X at 100. X at 220: uPnL
/// -3,600, equity 400 < MM 660. The close restoring MM is q = 260 / 19.8 = 13.13131314 (rounded
/// up); it realizes -1,575.7575768 and a penalty of 28.888888908: settlement -1,604.646465708.
/// Sold: ceil(1,604.646465708 / 9,800) = 0.16373944 BTC for 1,604.646512 (settlement
/// 0.000046292, never negative); 0.33626056 BTC stays hers.
#[test]
fn a_partial_close_that_leaves_a_debt_sells_just_enough_collateral_rounded_against_the_account() {
    let mut run = Run::new(&config(None));
    run.price("BTC-PERP", "10000");
    run.price("X-PERP", "100");
    run.deposit("alice", "BTC", "0.5");
    run.deposit("bob", "USDC", "100000");
    run.short("alice", "bob", "30", "100");
    let out = run.price("X-PERP", "220");
    let closed = out.iter().find_map(|e| match &e.kind {
        EffectKind::Liquidation { closed_size, penalty, .. } => Some((*closed_size, *penalty)),
        _ => None,
    });
    assert_eq!(closed, Some((s("-13.13131314"), q("28.888888908"))), "{out:?}");
    assert_eq!(
        conversions(&out),
        vec![("alice".into(), "liquidation".into(), s("0.16373944"), p("9800"), q("1604.646512"), s("0.16373944"))]
    );
    let alice = run.harness.engine.account("alice").unwrap();
    assert_eq!(alice.settlement, q("0.000046292"));
    assert_eq!(alice.collateral_balance(AssetId(0)), s("0.33626056"));
    assert_eq!(run.harness.engine.health("alice").unwrap().equity, q("665.842103092"));
    assert!(bankruptcies(&out).is_empty());
}

/// The generator's sequences reach conversions and takes under the full reference checks; this
/// pins one: after the bankruptcy above, a take by every kind of bidder keeps per-asset
/// conservation (deposits - withdrawals of BTC = Σ balances + holdings) at every step.
#[test]
fn takes_keep_per_asset_conservation() {
    let mut run = gapped_into_bankruptcy();
    run.deposit("mm", "USDC", "20000");
    for size in ["0.1", "0.25", "0.00000001", "0.64999999"] {
        let text = run.take_line("BTC", "mm", size);
        assert_eq!(run.harness.step(Step::raw(&text)).unwrap(), Outcome::Accepted);
    }
    assert!(run.btc().is_empty());
    assert_eq!(run.harness.engine.account("mm").unwrap().collateral_balance(AssetId(0)), s("1"));
}

/// The canonical encodings of the two new effects are the layouts docs/events.md and
/// docs/proofs.md list: version, type, seq, ts, then the fields in order.
#[test]
fn collateral_effects_encode_in_the_documented_layout() {
    fn string(out: &mut Vec<u8>, text: &str) {
        out.extend((text.len() as u64).to_le_bytes());
        out.extend(text.as_bytes());
    }
    let head = |kind: &str| {
        let mut out = vec![1u8];
        string(&mut out, kind);
        out.extend(7u64.to_le_bytes());
        out.extend(1000u64.to_le_bytes());
        out
    };
    let conversion = Effect::new(
        7,
        1000,
        EffectKind::CollateralConversion {
            account: "alice".into(),
            asset: "BTC".into(),
            reason: "bankruptcy".into(),
            size: s("1.5"),
            price: p("9800"),
            proceeds: q("14700"),
            holdings: s("2"),
        },
    );
    let mut want = head("collateral_conversion");
    for text in ["alice", "BTC", "bankruptcy"] {
        string(&mut want, text);
    }
    want.extend(s("1.5").raw().to_le_bytes());
    want.extend(p("9800").raw().to_le_bytes());
    want.extend(q("14700").raw().to_le_bytes());
    want.extend(s("2").raw().to_le_bytes());
    assert_eq!(conversion.canonical_bytes(), want);
    let fill = Effect::new(
        7,
        1000,
        EffectKind::CollateralFill {
            asset: "BTC".into(),
            bidder: "mm".into(),
            size: s("0.4"),
            price: p("9900"),
            cost: q("3920"),
            realized_pnl: q("40"),
            remaining: s("0.6"),
        },
    );
    let mut want = head("collateral_fill");
    for text in ["BTC", "mm"] {
        string(&mut want, text);
    }
    want.extend(s("0.4").raw().to_le_bytes());
    want.extend(p("9900").raw().to_le_bytes());
    want.extend(q("3920").raw().to_le_bytes());
    want.extend(q("40").raw().to_le_bytes());
    want.extend(s("0.6").raw().to_le_bytes());
    assert_eq!(fill.canonical_bytes(), want);
}

/// A snapshot (serde) of an engine holding collateral restores it, and the restored engine hashes
/// the same; a snapshot whose holdings table does not match the assets is refused, and one from
/// before the feature (no table, no haircut) loads as holding nothing at the default haircut.
#[test]
fn holdings_survive_a_snapshot_and_an_inconsistent_table_is_refused() {
    let run = gapped_into_bankruptcy();
    let json = serde_json::to_string(&run.harness.engine).unwrap();
    let restored = solvent_core::Engine::from_snapshot(serde_json::from_str(&json).unwrap()).unwrap();
    assert_eq!(restored.state_hash(), run.harness.engine.state_hash());
    assert_eq!(restored.collateral_holding(AssetId(0)), run.btc());
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut broken = value.clone();
    broken["collateral_holdings"] = serde_json::json!([{"size": "1", "cost": "1"}, {"size": "0", "cost": "0"}]);
    let broken = solvent_core::Engine::from_snapshot(serde_json::from_value(broken).unwrap());
    assert!(broken.unwrap_err().contains("collateral holdings"));
    let fresh = Run::new(&config(None));
    let mut old: serde_json::Value = serde_json::to_value(&fresh.harness.engine).unwrap();
    old.as_object_mut().unwrap().remove("collateral_holdings");
    old["assets"][0].as_object_mut().unwrap().remove("collateral_haircut");
    let loaded = solvent_core::Engine::from_snapshot(serde_json::from_value(old).unwrap()).unwrap();
    assert_eq!(loaded.state_hash(), fresh.harness.engine.state_hash());
}

//! Predictive margin on the real `apply` path: MM phase-in, IM add-on, MM floors, open-interest
//! caps, with hand-computed numbers.

use solvent_core::effect::EffectKind;
use solvent_core::{Config, Effect, Engine, Quote};

/// A one-market config: one tier at `mm` (penalty 1%), im_factor 1, `extra` appended to the
/// market table (and `floor` as the tier's `mm_floor_rate` when given).
fn config(mm: &str, floor: Option<&str>, extra: &str) -> Config {
    let floor = floor.map_or(String::new(), |f| format!(r#", mm_floor_rate = "{f}""#));
    let toml = format!(
        r#"
settlement_asset = "USDC"
max_accounts = 1000
[[markets]]
name = "X-PERP"
tier_basis = "size"
tier_mode = "marginal"
im_factor = "1"
liquidation_buffer = "0"
sources = ["s1", "s2", "s3"]
quorum = 2
max_age_ms = 3600000
max_deviation = "0.5"
max_jump = "10"
{extra}
tiers = [ {{ from = "0", mm_rate = "{mm}", penalty_rate = "0.01"{floor} }}, {{ from = "100", mm_rate = "0.2", penalty_rate = "0.01" }} ]
"#
    );
    Config::from_toml(&toml).unwrap()
}

struct Run {
    engine: Engine,
    seq: u64,
    ts: u64,
}

impl Run {
    /// alice: 600 USDC, long 1 X at 10,000 (MM 500 at 5%); bob: 1,000,000 USDC, short 1.
    fn new(config: &Config) -> Run {
        let mut run = Run { engine: Engine::new(config), seq: 0, ts: 1_000 };
        for source in ["s1", "s2", "s3"] {
            run.ok(format!(r#"{{"type":"price","ts":1000,"market":"X-PERP","source":"{source}","price":"10000"}}"#));
        }
        run.ok(r#"{"type":"deposit","ts":1000,"account":"alice","asset":"USDC","amount":"600"}"#.into());
        run.ok(r#"{"type":"deposit","ts":1000,"account":"bob","asset":"USDC","amount":"1000000"}"#.into());
        run.ok(
            r#"{"type":"trade","ts":1000,"market":"X-PERP","buyer":"alice","seller":"bob","size":"1","price":"10000"}"#
                .into(),
        );
        run
    }

    fn apply(&mut self, text: String) -> Vec<Effect> {
        self.seq += 1;
        let mut out = Vec::new();
        self.engine.apply_line(self.seq, text.as_bytes(), &mut out);
        out
    }

    fn ok(&mut self, text: String) -> Vec<Effect> {
        let out = self.apply(text.clone());
        assert!(out.iter().all(|e| e.rejection_kind().is_none()), "{text}: {out:?}");
        out
    }

    /// The kind of the refusal of `text`, checking that the state did not change.
    fn refused(&mut self, text: String) -> String {
        let hash = self.engine.state_hash();
        let out = self.apply(text.clone());
        assert_eq!(self.engine.state_hash(), hash, "{text}: a refusal changes nothing");
        out.iter()
            .find_map(|e| e.rejection_kind())
            .unwrap_or_else(|| panic!("{text} was accepted: {out:?}"))
            .to_string()
    }

    fn clock(&mut self, ts: u64) -> Vec<Effect> {
        self.ts = ts;
        self.ok(format!(r#"{{"type":"clock","ts":{ts}}}"#))
    }

    fn params(&mut self, fields: &str) -> Vec<Effect> {
        self.ok(format!(r#"{{"type":"params","ts":{},"market":"X-PERP",{fields}}}"#, self.ts))
    }

    fn liquidated(out: &[Effect]) -> bool {
        out.iter().any(|e| matches!(e.kind, EffectKind::Liquidation { .. }))
    }
}

fn q(text: &str) -> Quote {
    Quote::parse(text).unwrap()
}

const RAISE: &str = r#""tiers":[{"from":"0","mm_rate":"0.1","penalty_rate":"0.01"},{"from":"100","mm_rate":"0.2","penalty_rate":"0.01"}]"#;

/// Raising MM from 5% to 10% over 60 s: the announcing event liquidates nobody, the effective
/// rate steps every 60/32 s (5% + 5% x k / 32), and alice (equity 600) is liquidated exactly at
/// the first step whose MM exceeds 600: k = 7 (6.09375%, MM 609.375), at 7/32 x 60 s = 13,125 ms
/// after the announcement, not at 13,124 ms (k = 6: 5.9375%, MM 593.75).
#[test]
fn a_phased_raise_liquidates_nobody_within_the_announcing_event() {
    let mut run = Run::new(&config("0.05", None, "mm_phase_in_ms = 60000"));
    let announced = run.params(RAISE);
    assert!(!Run::liquidated(&announced), "the announcing event liquidates nobody: {announced:?}");
    let health = run.engine.health("alice").unwrap();
    assert_eq!(health.maintenance_margin, q("500"), "MM reads the effective rate");
    assert_eq!(health.initial_margin, q("1000"), "IM reads the target rate at once");
    let dump = serde_json::to_value(run.engine.dump()).unwrap();
    let market = &dump["markets"]["X-PERP"];
    assert_eq!(market["tiers"][0]["mm_rate"], "0.05");
    assert_eq!(market["target_tiers"][0]["mm_rate"], "0.1");
    assert_eq!(market["mm_phase_in_end_ts"], 61_000);
    // New exposure pays the target at once.
    let more =
        r#"{"type":"trade","ts":1000,"market":"X-PERP","buyer":"alice","seller":"bob","size":"0.01","price":"10000"}"#;
    assert_eq!(run.refused(more.into()), "insufficient_margin");
    assert!(!Run::liquidated(&run.clock(1_000 + 13_124)));
    assert_eq!(run.engine.health("alice").unwrap().maintenance_margin, q("593.75"));
    let step = run.clock(1_000 + 13_125);
    assert!(Run::liquidated(&step), "liquidated at the step that crosses equity: {step:?}");
    run.clock(61_000);
    let market = &serde_json::to_value(run.engine.dump()).unwrap()["markets"]["X-PERP"];
    assert_eq!(market["tiers"][0]["mm_rate"], "0.1", "the target is reached at the end");
    assert!(market["mm_phase_in_end_ts"].is_null());
}

/// The same raise with no phase-in liquidates alice inside the `params` event (so the test above
/// would fail if the phase-in did nothing).
#[test]
fn an_immediate_raise_liquidates_within_the_event() {
    let mut run = Run::new(&config("0.05", None, ""));
    assert!(Run::liquidated(&run.params(RAISE)));
}

/// Price ticks never move the clock, so they never step a phase-in; a lowering applies at once;
/// repeating the same target keeps the phase-in running on its original schedule.
#[test]
fn ticks_do_not_step_lowerings_apply_at_once_repeats_keep_the_schedule() {
    let mut run = Run::new(&config("0.05", None, "mm_phase_in_ms = 60000"));
    run.params(RAISE);
    let tick = r#"{"type":"price","ts":2900,"market":"X-PERP","source":"s1","price":"10000"}"#;
    run.ok(tick.into());
    assert_eq!(run.engine.health("alice").unwrap().maintenance_margin, q("500"), "a tick is not time");
    run.clock(31_000); // k = 16: 7.5%, MM 750 > 600 -> alice is liquidated (partially or fully)
    run.ts = 31_000;
    run.params(RAISE); // the same target: the schedule is kept (end 61,000)
    let market = &serde_json::to_value(run.engine.dump()).unwrap()["markets"]["X-PERP"];
    assert_eq!(market["mm_phase_in_end_ts"], 61_000);
    assert_eq!(market["tiers"][0]["mm_rate"], "0.075");
    run.params(r#""tiers":[{"from":"0","mm_rate":"0.04","penalty_rate":"0.01"},{"from":"100","mm_rate":"0.2","penalty_rate":"0.01"}]"#);
    let market = &serde_json::to_value(run.engine.dump()).unwrap()["markets"]["X-PERP"];
    assert_eq!(market["tiers"][0]["mm_rate"], "0.04", "a lowering applies at once");
    assert!(market["mm_phase_in_end_ts"].is_null());
}

/// Floors come from the config; a `params` rate below one is refused naming the bracket, a rate
/// between the floor and the static table is accepted, and the brackets must stay.
#[test]
fn mm_floors_bound_params_events() {
    let mut run = Run::new(&config("0.05", Some("0.02"), ""));
    let below = r#"{"type":"params","ts":1000,"market":"X-PERP","tiers":[{"from":"0","mm_rate":"0.015","penalty_rate":"0.01"},{"from":"100","mm_rate":"0.2","penalty_rate":"0.01"}]}"#;
    assert_eq!(run.refused(below.into()), "params_out_of_bounds");
    let mut out = Vec::new();
    run.engine.apply_line(99, below.as_bytes(), &mut out);
    let EffectKind::Rejected { message, .. } = &out[0].kind else { panic!("{out:?}") };
    assert!(message.contains("tiers[0].mm_rate"), "{message}");
    let moved = r#"{"type":"params","ts":1000,"market":"X-PERP","tiers":[{"from":"0","mm_rate":"0.05","penalty_rate":"0.01"},{"from":"50","mm_rate":"0.2","penalty_rate":"0.01"}]}"#;
    assert_eq!(run.refused(moved.into()), "params_out_of_bounds");
    run.params(r#""tiers":[{"from":"0","mm_rate":"0.02","penalty_rate":"0.01"},{"from":"100","mm_rate":"0.2","penalty_rate":"0.01"}]"#);
    assert_eq!(run.engine.health("alice").unwrap().maintenance_margin, q("200"), "calm markets can need less");
    let text = solvent_core::DEFAULT_CONFIG_TOML.replace(
        r#"{ from = "0",    mm_rate = "0.025", penalty_rate = "0.005" }"#,
        r#"{ from = "0",    mm_rate = "0.025", penalty_rate = "0.005", mm_floor_rate = "0.03" }"#,
    );
    let refused = Config::from_toml(&text).unwrap_err().to_string();
    assert!(refused.contains("tiers[0].mm_rate") && refused.contains("floor"), "{refused}");
}

/// The IM add-on applies to new exposure at once and never to the existing book.
#[test]
fn the_im_addon_charges_new_exposure_and_liquidates_nobody() {
    let mut run = Run::new(&config("0.05", None, ""));
    let out = run.params(r#""im_addon_rate":"0.01""#);
    assert!(!Run::liquidated(&out));
    let health = run.engine.health("alice").unwrap();
    assert_eq!((health.maintenance_margin, health.initial_margin), (q("500"), q("600")));
    let more =
        r#"{"type":"trade","ts":1000,"market":"X-PERP","buyer":"alice","seller":"bob","size":"0.001","price":"10000"}"#;
    assert_eq!(run.refused(more.into()), "insufficient_margin");
    let withdraw = r#"{"type":"withdraw","ts":1000,"account":"alice","asset":"USDC","amount":"0.01"}"#;
    assert_eq!(run.refused(withdraw.into()), "withdrawal_exceeds_free_collateral");
    let too_big = r#"{"type":"params","ts":1000,"market":"X-PERP","im_addon_rate":"1.5"}"#;
    assert_eq!(run.refused(too_big.into()), "params_out_of_bounds");
}

/// A trade that raises long open interest above the cap is refused; one that does not raise it
/// passes even above the cap; "0" removes the cap.
#[test]
fn open_interest_caps_refuse_raising_trades_only() {
    let mut run = Run::new(&config("0.05", None, r#"oi_cap = "1.5""#));
    run.ok(r#"{"type":"deposit","ts":1000,"account":"carol","asset":"USDC","amount":"100000"}"#.into());
    let raise =
        r#"{"type":"trade","ts":1000,"market":"X-PERP","buyer":"carol","seller":"bob","size":"1","price":"10000"}"#;
    assert_eq!(run.refused(raise.into()), "open_interest_cap");
    run.params(r#""oi_cap":"0.5""#); // below the open interest of 1
                                     // carol buys from alice: alice's long moves to carol, open interest stays 1.
    run.ok(
        r#"{"type":"trade","ts":1000,"market":"X-PERP","buyer":"carol","seller":"alice","size":"0.5","price":"10000"}"#
            .into(),
    );
    run.ok(
        r#"{"type":"trade","ts":1000,"market":"X-PERP","buyer":"bob","seller":"carol","size":"0.5","price":"10000"}"#
            .into(),
    );
    run.params(r#""oi_cap":"0""#);
    run.ok(raise.into());
}

/// Signals are journaled inputs: the latest value per (market, name) is in the dump and the
/// state hash, they move the clock, they never change margin, and the table is bounded.
#[test]
fn signals_are_kept_hashed_bounded_and_never_change_margin() {
    let mut run = Run::new(&config("0.05", None, ""));
    let health = run.engine.health("alice").unwrap();
    let hash = run.engine.state_hash();
    run.ok(r#"{"type":"signal","ts":2000,"name":"funding_rate","value":"0.0001","market":"X-PERP"}"#.into());
    run.ok(r#"{"type":"signal","ts":2000,"name":"iv_index","value":"-80.5"}"#.into());
    run.ok(r#"{"type":"signal","ts":2500,"name":"funding_rate","value":"0.0003","market":"X-PERP"}"#.into());
    assert_ne!(run.engine.state_hash(), hash, "signals are part of the state");
    assert_eq!(run.engine.last_ts(), 2500, "a signal moves the clock");
    assert_eq!(run.engine.health("alice").unwrap(), health, "a signal never changes margin");
    let dump = serde_json::to_value(run.engine.dump()).unwrap();
    assert_eq!(dump["markets"]["X-PERP"]["signals"]["funding_rate"]["value"], "0.0003");
    assert_eq!(dump["markets"]["X-PERP"]["signals"]["funding_rate"]["ts"], 2500);
    assert_eq!(dump["signals"]["iv_index"]["value"], "-80.5");
    for i in 1..64 {
        run.ok(format!(r#"{{"type":"signal","ts":2500,"name":"s{i:02}","value":"{i}","market":"X-PERP"}}"#));
    }
    let refused = run.refused(r#"{"type":"signal","ts":2500,"name":"one-more","value":"1","market":"X-PERP"}"#.into());
    assert_eq!(refused, "too_many_signals");
    run.ok(r#"{"type":"signal","ts":2500,"name":"s01","value":"2","market":"X-PERP"}"#.into());
    // Replay from the same lines gives the same hash (the signal lines are state).
    let snapshot: Engine = serde_json::from_str(&serde_json::to_string(&run.engine).unwrap()).unwrap();
    let restored = Engine::from_snapshot(snapshot).unwrap();
    assert_eq!(restored.state_hash(), run.engine.state_hash());
}

/// A position whose liquidation price (target rates) lies in a cliff range pays the
/// concentration add-on on new exposure; outside every range it does not; nobody is liquidated.
#[test]
fn the_concentration_addon_charges_positions_liquidated_inside_a_cliff() {
    // alice: equity 600 on 1 long at 10,000, MM 5%: liquidation at 9,400 / 0.95 = 9,894.73...
    let mut run = Run::new(&config("0.05", None, ""));
    let out = run.params(r#""cliff_ranges":[{"from":"9800","to":"9900"}],"concentration_addon_rate":"0.02""#);
    assert!(!Run::liquidated(&out));
    let health = run.engine.health("alice").unwrap();
    assert_eq!((health.maintenance_margin, health.initial_margin), (q("500"), q("700")));
    let more =
        r#"{"type":"trade","ts":1000,"market":"X-PERP","buyer":"alice","seller":"bob","size":"0.001","price":"10000"}"#;
    assert_eq!(run.refused(more.into()), "insufficient_margin");
    run.params(r#""cliff_ranges":[{"from":"9000","to":"9800"}]"#);
    assert_eq!(run.engine.health("alice").unwrap().initial_margin, q("500"), "outside every range: no add-on");
    run.ok(more.into());
}

/// With cliff ranges and a rebate rate, the `params` event offers one incentive per range; an
/// auction take filled inside a range earns rebate x notional from the insurance fund (value
/// moved: the fund falls by what the bidder receives), capped at the fund.
#[test]
fn backstop_rebates_are_offered_per_cliff_and_paid_from_the_fund() {
    let mut run = Run::new(&config("0.05", None, ""));
    run.ok(r#"{"type":"fund_deposit","ts":1000,"amount":"1000"}"#.into());
    run.ok(r#"{"type":"deposit","ts":1000,"account":"carol","asset":"USDC","amount":"100000"}"#.into());
    let out = run.params(
        r#""cliff_ranges":[{"from":"9000","to":"9600"},{"from":"12000","to":"13000"}],"incentive_rebate_rate":"0.01""#,
    );
    let offers: Vec<_> =
        out.iter().filter(|e| e.type_name() == "liquidity_incentive").map(|e| e.to_json_line()).collect();
    assert_eq!(offers.len(), 2, "{out:?}");
    assert!(offers[0].contains(r#""from":"9000","market":"X-PERP","rebate_rate":"0.01","to":"9600""#), "{}", offers[0]);
    // alice is liquidated at 9,450; the inventory's auction sells from 1% above mark.
    let mut liquidated = Vec::new();
    for source in ["s1", "s2", "s3"] {
        let tick = format!(r#"{{"type":"price","ts":1001,"market":"X-PERP","source":"{source}","price":"9450"}}"#);
        liquidated.extend(run.ok(tick));
    }
    assert!(Run::liquidated(&liquidated), "{liquidated:?}");
    let auction = liquidated
        .iter()
        .find_map(|e| match &e.kind {
            EffectKind::AuctionStarted { auction, .. } => Some(auction.clone()),
            _ => None,
        })
        .expect("an auction starts");
    let fund = run.engine.insurance_fund();
    let carol = run.engine.account("carol").unwrap().settlement;
    let take = format!(r#"{{"type":"auction_take","ts":1000,"auction":"{auction}","bidder":"carol","size":"0.1"}}"#);
    let out = run.ok(take);
    let (price, rebate) = out
        .iter()
        .find_map(|e| match &e.kind {
            EffectKind::AuctionFill { price, rebate, .. } => Some((*price, *rebate)),
            _ => None,
        })
        .expect("a fill");
    assert_eq!(price, solvent_core::Price::parse("9544.5").unwrap(), "1% above the 9,450 mark");
    let expected = q("9.5445"); // 0.01 x 0.1 x 9,544.5
    assert_eq!(rebate, Some(expected));
    let inventory_pnl = out
        .iter()
        .find_map(|e| match &e.kind {
            EffectKind::AuctionFill { inventory_pnl, .. } => Some(*inventory_pnl),
            _ => None,
        })
        .unwrap();
    let fund_after = run.engine.insurance_fund();
    assert_eq!(fund_after, fund.checked_add(inventory_pnl).unwrap().checked_sub(expected).unwrap());
    let carol_after = run.engine.account("carol").unwrap().settlement;
    assert_eq!(carol_after, carol.checked_add(expected).unwrap(), "the bidder receives what the fund paid");
}

//! The liquidation waterfall on the real `apply` path, with hand-computed numbers.

use solvent_core::effect::EffectKind;
use solvent_core::{Config, Effect, Engine, Price, Quote, Size};

/// A one-market config: one tier at `mm` / `pen`, im_factor `im`, ADL on or off.
fn one_tier_config(mm: &str, pen: &str, im: &str, adl: bool) -> Config {
    let toml = format!(
        r#"
settlement_asset = "USDC"
max_accounts = 1000
[[markets]]
name = "X-PERP"
tier_basis = "size"
tier_mode = "marginal"
im_factor = "{im}"
liquidation_buffer = "0"
sources = ["s1", "s2", "s3"]
quorum = 2
max_age_ms = 3600000
max_deviation = "0.5"
max_jump = "10"
adl_enabled = {adl}
tiers = [ {{ from = "0", mm_rate = "{mm}", penalty_rate = "{pen}" }} ]
"#
    );
    Config::from_toml(&toml).unwrap()
}

struct Run {
    engine: Engine,
    seq: u64,
    ts: u64,
    effects: Vec<Effect>,
}

impl Run {
    fn new(config: &Config) -> Run {
        Run { engine: Engine::new(config), seq: 0, ts: 1_000, effects: Vec::new() }
    }

    fn line(&mut self, text: String) -> Vec<Effect> {
        self.seq += 1;
        let mut out = Vec::new();
        self.engine.apply_line(self.seq, text.as_bytes(), &mut out);
        assert!(out.iter().all(|e| e.rejection_kind().is_none()), "{text}: {out:?}");
        self.effects.extend(out.iter().cloned());
        out
    }

    /// Move time on by a second and set every source of `market` to `price`.
    fn price(&mut self, market: &str, price: &str) -> Vec<Effect> {
        self.ts += 1_000;
        let mut out = self.line(format!(r#"{{"type":"clock","ts":{}}}"#, self.ts));
        for source in ["s1", "s2", "s3"] {
            out.extend(self.line(format!(
                r#"{{"type":"price","ts":{},"market":"{market}","source":"{source}","price":"{price}"}}"#,
                self.ts
            )));
        }
        out
    }

    fn deposit(&mut self, account: &str, amount: &str) {
        self.line(format!(
            r#"{{"type":"deposit","ts":{},"account":"{account}","asset":"USDC","amount":"{amount}"}}"#,
            self.ts
        ));
    }

    fn trade(&mut self, market: &str, buyer: &str, seller: &str, size: &str, price: &str) {
        self.line(format!(
            r#"{{"type":"trade","ts":{},"market":"{market}","buyer":"{buyer}","seller":"{seller}","size":"{size}","price":"{price}"}}"#,
            self.ts
        ));
    }
}

fn q(text: &str) -> Quote {
    Quote::parse(text).unwrap()
}

fn liquidations(effects: &[Effect]) -> Vec<(String, Size, Quote, bool)> {
    effects
        .iter()
        .filter_map(|e| match &e.kind {
            EffectKind::Liquidation { account, closed_size, penalty, full, .. } => {
                Some((account.clone(), *closed_size, *penalty, *full))
            }
            _ => None,
        })
        .collect()
}

/// One tier at 10% MM and 1% penalty, buffer 0: an account 10 short of MM at a price of 100
/// closes exactly 10 / (100 x (10% - 1%)) = 1.1111.. of size (rounded up to 1e-8).
#[test]
fn ten_short_of_mm_at_100_closes_1_11111112() {
    let mut run = Run::new(&one_tier_config("0.10", "0.01", "1.5", true));
    run.price("X-PERP", "110");
    run.deposit("alice", "1990");
    run.deposit("bob", "100000");
    run.trade("X-PERP", "alice", "bob", "100", "110");
    let out = run.price("X-PERP", "100");
    let health = run.engine.health("alice").unwrap();
    let liq = liquidations(&out);
    assert_eq!(liq, vec![("alice".to_string(), Size::parse("1.11111112").unwrap(), q("1.11111112"), false)]);
    // Before: equity 990, MM 1,000. After: equity 990 - 1.11111112, MM (100 - 1.11111112) x 10.
    assert_eq!(health.equity, q("988.88888888"));
    assert_eq!(health.maintenance_margin, q("988.8888888"));
    assert!(health.equity >= health.maintenance_margin);
    assert_eq!(run.engine.insurance_fund(), q("1.11111112"));
    let inventory = &run.engine.markets()[0].inventory;
    assert_eq!(inventory.size, Size::parse("1.11111112").unwrap());
    assert_eq!(inventory.cost, Size::parse("1.11111112").unwrap().mul_price(Price::from_int(100).unwrap()));
    let started = out.iter().any(|e| matches!(&e.kind, EffectKind::AuctionStarted { side, .. } if side == "sell"));
    assert!(started, "the inventory goes to auction: {out:?}");
}

/// Five sources of BTC-PERP at `price`, a second later.
fn five(run: &mut Run, price: &str) -> Vec<Effect> {
    run.ts += 1_000;
    let mut out = run.line(format!(r#"{{"type":"clock","ts":{}}}"#, run.ts));
    for source in ["s1", "s2", "s3", "s4", "s5"] {
        out.extend(run.line(format!(
            r#"{{"type":"price","ts":{},"market":"BTC-PERP","source":"{source}","price":"{price}"}}"#,
            run.ts
        )));
    }
    out
}

/// The embedded default with alice long 300 BTC from 10,000 on 400,000 USDC; `rules_off` first
/// switches BTC-PERP's venue rules off (buffer 0, no minimum, chunks or backstop).
fn alice_long_300(rules_off: bool) -> Run {
    let mut run = Run::new(&Config::embedded_default());
    if rules_off {
        run.line(format!(
            r#"{{"type":"params","ts":{},"market":"BTC-PERP","liquidation_buffer":"0","min_liquidation_notional":"0","liquidation_chunk_notional":"0","backstop_mm_fraction":"0","dust_equity":"0"}}"#,
            run.ts
        ));
    }
    five(&mut run, "10000");
    run.deposit("alice", "400000");
    run.deposit("bob", "1000000");
    run.trade("BTC-PERP", "alice", "bob", "300", "10000");
    run
}

/// The worked example: 300 BTC long from 10,000 with 400,000 USDC; liquidation price about 9,163. At 9,150
/// the deficit is MM - equity = 148,687.5 - 145,000 = 3,687.5; the top bracket (250-300 BTC,
/// 10% MM, 2.5% penalty) releases (10% - 2.5%) x 9,150 = 686.25 per BTC, so 5.37340620 BTC
/// (3,687.5 / 686.25 rounded up) close, all from the top bracket. The venue rules are off here:
/// this is the exact solve alone (the next test has them on).
#[test]
fn design_example_partially_liquidated_highest_bracket_first() {
    let mut run = alice_long_300(true);
    let dump = run.engine.account_dump("alice").unwrap();
    let liquidation_price = dump.positions["BTC-PERP"].liquidation_price.unwrap();
    assert!(liquidation_price > Price::from_int(9_162).unwrap() && liquidation_price < Price::from_int(9_164).unwrap());
    assert!(liquidations(&five(&mut run, "9170")).is_empty(), "above the liquidation price nothing happens");
    let out = five(&mut run, "9150");
    let liq = liquidations(&out);
    assert_eq!(liq.len(), 1, "{out:?}");
    let (account, closed, penalty, full) = &liq[0];
    assert_eq!((account.as_str(), *full), ("alice", false));
    assert_eq!(*closed, Size::parse("5.3734062").unwrap());
    assert_eq!(
        *penalty,
        Size::parse("5.3734062")
            .unwrap()
            .mul_price(Price::from_int(9_150).unwrap())
            .mul_rate(solvent_core::Rate::parse("0.025").unwrap(), solvent_core::Round::Up)
            .unwrap()
    );
    let health = run.engine.health("alice").unwrap();
    assert!(health.equity >= health.maintenance_margin, "{health:?}");
    assert_eq!(run.engine.account("alice").unwrap().positions[0].size, Size::parse("294.6265938").unwrap());
}

/// The same position under the embedded default's venue rules (Hyperliquid chunks): at 9,150 it
/// is worth 2,745,000 > 100,000, so one chunk of 20% x 300 = 60 BTC closes (50 from the 10%
/// bracket, 10 from the 5% one): penalty (50 x 2.5% + 10 x 1%) x 9,150 = 12,352.5, equity
/// 145,000 - 12,352.5 = 132,647.5 against MM (50 x 2.5% + 190 x 5%) x 9,150 = 98,362.5. A second
/// later at 8,990 the account is under MM again (94,247.5 < 96,642.5) but above 1/3 of it: the
/// 30 s cooldown holds it. Once the cooldown is over, the next chunk is again 60 (20% of the
/// episode's peak of 300), not 20% of 240.
#[test]
fn large_position_is_liquidated_in_chunks_with_a_cooldown() {
    let mut run = alice_long_300(false);
    let out = five(&mut run, "9150");
    let chunk_ts = run.ts;
    assert_eq!(liquidations(&out), vec![("alice".to_string(), Size::from_int(60).unwrap(), q("12352.5"), false)]);
    let health = run.engine.health("alice").unwrap();
    assert_eq!((health.equity, health.maintenance_margin), (q("132647.5"), q("98362.5")));
    let dump = run.engine.market_dump("BTC-PERP").unwrap();
    assert_eq!(dump.liquidation_episodes["alice"].peak_size, Size::from_int(300).unwrap());
    assert_eq!(dump.liquidation_episodes["alice"].cooldown_until_ms, chunk_ts + 30_000);
    let held = five(&mut run, "8990");
    assert!(liquidations(&held).is_empty(), "the cooldown holds: {held:?}");
    let health = run.engine.health("alice").unwrap();
    assert_eq!((health.equity, health.maintenance_margin), (q("94247.5"), q("96642.5")));
    run.ts = chunk_ts + 29_000;
    let out = five(&mut run, "8990");
    assert_eq!(liquidations(&out), vec![("alice".to_string(), Size::from_int(60).unwrap(), q("5394"), false)]);
    assert_eq!(run.engine.account("alice").unwrap().positions[0].size, Size::from_int(180).unwrap());
}

/// The safety rule of the cooldown: an account that falls under MM x 1/3 (the embedded
/// default's backstop threshold; Hyperliquid uses 2/3) is not protected by it. After the 60 BTC
/// chunk at 9,150, a fall to 8,700 within the cooldown leaves equity 132,647.5 - 240 x 450 =
/// 24,647.5 under 1/3 x MM (50 x 2.5% + 190 x 5%) x 8,700 / 3 = 31,175: the whole 240 BTC close at
/// once, penalty (50 x 0.5% + 190 x 1%) x 8,700 = 18,705.
#[test]
fn below_the_backstop_threshold_the_cooldown_does_not_protect_the_account() {
    let mut run = alice_long_300(false);
    assert_eq!(liquidations(&five(&mut run, "9150")).len(), 1);
    let out = five(&mut run, "8700");
    assert_eq!(liquidations(&out), vec![("alice".to_string(), Size::from_int(240).unwrap(), q("18705"), true)]);
    let health = run.engine.health("alice").unwrap();
    assert_eq!(health.equity, q("5942.5"));
    assert!(run.engine.market_dump("BTC-PERP").unwrap().liquidation_episodes.is_empty(), "the episode ends");
}

/// dYdX's minimum liquidation notional (1,000 USDC in the embedded default) with Drift's buffer
/// (MM x 1.02): carl is long 2 BTC from 10,000 on 1,000 USDC. At 9,740 his equity is 480 < MM
/// 2 x 9,740 x 2.5% = 487. The restoring slice is (487 x 1.02 - 480) / ((2.5% x 1.02 - 0.5%) x
/// 9,740) = 0.0838 BTC, worth 816; the minimum raises it to 1,000 / 9,740 = 0.10266941 BTC
/// (rounded up), and it stays a partial (1.897 BTC, worth 18,477, remain).
#[test]
fn minimum_notional_raises_a_sliver() {
    let mut run = Run::new(&Config::embedded_default());
    five(&mut run, "10000");
    run.deposit("carl", "1000");
    run.deposit("bob", "1000000");
    run.trade("BTC-PERP", "carl", "bob", "2", "10000");
    let out = five(&mut run, "9740");
    let liq = liquidations(&out);
    assert_eq!(liq.len(), 1, "{out:?}");
    let (_, closed, penalty, full) = &liq[0];
    assert!(!full);
    let notional = closed.mul_price(Price::from_int(9_740).unwrap());
    assert!(notional >= q("1000"), "{notional}");
    assert_eq!(*closed, Size::parse("0.10266941").unwrap());
    assert_eq!(
        *penalty,
        notional.mul_rate(solvent_core::Rate::parse("0.005").unwrap(), solvent_core::Round::Up).unwrap()
    );
}

/// A gap through the bankruptcy price: the account's negative equity is paid by the fund.
#[test]
fn gap_through_bankruptcy_is_covered_by_the_fund() {
    let mut run = Run::new(&one_tier_config("0.10", "0.01", "2", true));
    run.price("X-PERP", "100");
    for (name, amount) in [("carol", "20"), ("dave", "20000"), ("bob", "1000000")] {
        run.deposit(name, amount);
    }
    run.trade("X-PERP", "bob", "dave", "1000", "100");
    run.trade("X-PERP", "carol", "bob", "1", "100");
    // A squeeze to 112 partially liquidates short dave: his penalty seeds the fund.
    assert_eq!(liquidations(&run.price("X-PERP", "112")).len(), 1);
    run.price("X-PERP", "100");
    let fund_before_gap = run.engine.insurance_fund();
    assert!(fund_before_gap > q("300"), "{fund_before_gap}");
    // A gap from 100 to 60: carol (1 long from 100, 20 of collateral) ends at equity -20.
    let out = run.price("X-PERP", "60");
    let bankruptcies: Vec<_> = out
        .iter()
        .filter_map(|e| match &e.kind {
            EffectKind::Bankruptcy { account, deficit, covered_by_fund } => {
                Some((account.clone(), *deficit, *covered_by_fund))
            }
            _ => None,
        })
        .collect();
    assert_eq!(bankruptcies, vec![("carol".to_string(), q("20"), q("20"))], "{out:?}");
    assert!(run.engine.account("carol").unwrap().positions.is_empty());
    assert_eq!(run.engine.health("carol").unwrap().equity, Quote::ZERO);
    // The fund's balance is told by the insurance effects: -20 for carol, plus the inventory's
    // netting result (dave's short taken at 112 nets against carol's long at 60).
    let moves = out.iter().filter_map(|e| match &e.kind {
        EffectKind::Insurance { amount, .. } => Some(*amount),
        _ => None,
    });
    let expected = moves.fold(fund_before_gap, |fund, amount| fund.checked_add(amount).unwrap());
    assert_eq!(run.engine.insurance_fund(), expected);
    assert!(!out.iter().any(|e| matches!(e.kind, EffectKind::Adl { .. } | EffectKind::SocializedLoss { .. })));
}

/// With the fund empty, ADL closes the top-ranked opposite positions at the bankruptcy price.
#[test]
fn empty_fund_deleverages_the_top_ranked_shorts_at_the_bankruptcy_price() {
    let mut run = Run::new(&one_tier_config("0.10", "0.0", "2", true));
    run.price("X-PERP", "100");
    for (name, amount) in [("alice", "2000"), ("bob", "100000"), ("cat", "3000"), ("dan", "100000")] {
        run.deposit(name, amount);
    }
    // Penalty rate 0: the fund stays empty. Alice long 100 against bob (50, low leverage) and
    // cat (50, high leverage): cat ranks first.
    run.trade("X-PERP", "alice", "bob", "50", "100");
    run.trade("X-PERP", "alice", "cat", "50", "100");
    assert_eq!(run.engine.insurance_fund(), Quote::ZERO);
    // Gap to 70: alice's equity = 2,000 - 3,000 = -1,000; bankruptcy price = 70 + 1,000 / 100 = 80.
    let out = run.price("X-PERP", "70");
    let adl: Vec<_> = out
        .iter()
        .filter_map(|e| match &e.kind {
            EffectKind::Adl { account, counterparty, size, price, .. } => {
                Some((account.clone(), counterparty.clone(), *size, *price))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        adl,
        vec![
            // `size` is what left each short's position, in its sign.
            ("cat".to_string(), "alice".to_string(), Size::from_int(-50).unwrap(), Price::from_int(80).unwrap()),
            ("bob".to_string(), "alice".to_string(), Size::from_int(-50).unwrap(), Price::from_int(80).unwrap()),
        ]
    );
    assert!(run.engine.account("alice").unwrap().positions.is_empty());
    assert_eq!(run.engine.health("alice").unwrap().equity, Quote::ZERO);
    // Each short bought back at 80 instead of the mark 70: 50 x 10 = 500 each less profit.
    assert_eq!(run.engine.account("cat").unwrap().settlement, q("4000"));
    assert_eq!(run.engine.account("bob").unwrap().settlement, q("101000"));
    assert!(!out.iter().any(|e| matches!(e.kind, EffectKind::SocializedLoss { .. })));
}

/// With ADL off, the loss is shared pro rata to equity by accounts with positions; an account
/// with no position pays nothing.
#[test]
fn adl_off_socializes_the_loss_pro_rata_and_spares_depositors() {
    let mut run = Run::new(&one_tier_config("0.10", "0.0", "2", false));
    run.price("X-PERP", "100");
    for (name, amount) in [("alice", "2000"), ("bob", "30000"), ("cat", "10000"), ("saver", "50000")] {
        run.deposit(name, amount);
    }
    run.trade("X-PERP", "alice", "bob", "50", "100");
    run.trade("X-PERP", "alice", "cat", "50", "100");
    let out = run.price("X-PERP", "70");
    let social: Vec<_> = out
        .iter()
        .filter_map(|e| match &e.kind {
            EffectKind::SocializedLoss { amount, accounts, bankrupt } => Some((*amount, *accounts, bankrupt.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(social, vec![(q("1000"), 2, "alice".to_string())]);
    assert!(!out.iter().any(|e| matches!(e.kind, EffectKind::Adl { .. })));
    // Equity before the share: bob 30,000 + 1,500 = 31,500; cat 10,000 + 1,500 = 11,500.
    // Shares of 1,000 by equity: bob 1,000 x 31,500 / 43,000, cat the rest.
    let bob_share = q("1000").mul_ratio_quote(q("31500"), q("43000"), solvent_core::Round::Down).unwrap();
    let bob = run.engine.account("bob").unwrap().settlement;
    let cat = run.engine.account("cat").unwrap().settlement;
    assert!(
        bob == q("30000").checked_sub(bob_share).unwrap()
            || bob == q("30000").checked_sub(bob_share).unwrap().checked_sub(Quote::from_raw(1)).unwrap()
    );
    assert_eq!(
        q("30000").checked_sub(bob).unwrap().checked_add(q("10000").checked_sub(cat).unwrap()).unwrap(),
        q("1000")
    );
    assert_eq!(run.engine.account("saver").unwrap().settlement, q("50000"), "no position, no share");
    assert_eq!(run.engine.health("alice").unwrap().equity, Quote::ZERO);
    // The positions went to the inventory at mark and are being auctioned.
    assert_eq!(run.engine.markets()[0].inventory.size, Size::from_int(100).unwrap());
}

impl Run {
    fn refused(&mut self, text: String) -> String {
        self.seq += 1;
        let hash = self.engine.state_hash();
        let mut out = Vec::new();
        self.engine.apply_line(self.seq, text.as_bytes(), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(self.engine.state_hash(), hash, "a refused event changes nothing");
        out[0].rejection_kind().expect("refused").to_string()
    }
}

/// The inventory's Dutch auction: price relative to the live mark, decaying from 1% better to
/// 3% worse over a minute; partial takes; gains and losses to the fund; re-auction on expiry.
#[test]
fn dutch_auction_decays_fills_partially_and_re_auctions() {
    let mut run = Run::new(&one_tier_config("0.10", "0.01", "1.5", true));
    run.price("X-PERP", "110");
    run.deposit("alice", "1990");
    run.deposit("bob", "100000");
    run.deposit("mm1", "1000");
    run.deposit("poor", "0.01");
    run.trade("X-PERP", "alice", "bob", "100", "110");
    let out = run.price("X-PERP", "100");
    let start = out
        .iter()
        .find_map(|e| match &e.kind {
            EffectKind::AuctionStarted { auction, side, size, start_price, floor_price, duration_ms, .. } => {
                Some((auction.clone(), side.clone(), *size, *start_price, *floor_price, *duration_ms, e.ts))
            }
            _ => None,
        })
        .expect("auction started");
    let (id, side, size, start_price, floor_price, duration_ms, start_ts) = start;
    assert_eq!((id.as_str(), side.as_str(), size), ("1", "sell", Size::parse("1.11111112").unwrap()));
    assert_eq!(
        (start_price, floor_price, duration_ms),
        (Price::from_int(101).unwrap(), Price::from_int(97).unwrap(), 60_000)
    );
    let take = |ts: u64, bidder: &str, size: &str| {
        format!(r#"{{"type":"auction_take","ts":{ts},"auction":"1","bidder":"{bidder}","size":"{size}"}}"#)
    };
    // Half way through: 1% - 4% x 0.5 = -1%, i.e. 99 at a mark of 100.
    let text = take(start_ts + 30_000, "mm1", "0.5");
    let out = run.line(text);
    let fill = out
        .iter()
        .find_map(|e| match &e.kind {
            EffectKind::AuctionFill { price, remaining, inventory_pnl, .. } => {
                Some((*price, *remaining, *inventory_pnl))
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(fill, (Price::from_int(99).unwrap(), Size::parse("0.61111112").unwrap(), q("-0.5")));
    assert_eq!(run.engine.insurance_fund(), q("0.61111112"), "1.11111112 of penalty less 0.5 of auction loss");
    assert_eq!(run.engine.account("mm1").unwrap().positions[0].size, Size::parse("0.5").unwrap());
    // Refusals: too large, unknown auction, a taker below initial margin.
    let ts = start_ts + 31_000;
    assert_eq!(run.refused(take(ts, "mm1", "5")), "auction_size_exceeded");
    assert_eq!(
        run.refused(format!(r#"{{"type":"auction_take","ts":{ts},"auction":"42","bidder":"mm1","size":"0.1"}}"#)),
        "unknown_auction"
    );
    assert_eq!(run.refused(take(ts, "poor", "0.6")), "insufficient_margin");
    // The price follows the live mark: at 110, 40 s in, 110 x (1.01 - 0.04 x 40/60), with the
    // decay rounded down to 8 decimals (the factor is 0.98333334: the taker pays the rounding).
    run.ts = start_ts + 39_000;
    run.price("X-PERP", "110");
    let out = run.line(take(start_ts + 40_000, "mm1", "0.1"));
    let price = out.iter().find_map(|e| match &e.kind {
        EffectKind::AuctionFill { price, .. } => Some(*price),
        _ => None,
    });
    assert_eq!(price, Some(Price::parse("108.1666674").unwrap()));
    // After the minute the remainder is re-auctioned under a new id.
    let out = run.line(format!(r#"{{"type":"clock","ts":{}}}"#, start_ts + 60_000));
    let kinds: Vec<&str> = out.iter().map(|e| e.type_name()).collect();
    assert_eq!(kinds, vec!["auction_ended", "auction_started"], "{out:?}");
    assert!(
        matches!(&out[1].kind, EffectKind::AuctionStarted { auction, size, .. } if auction == "2" && *size == Size::parse("0.51111112").unwrap())
    );
    let dump = run.engine.dump();
    assert_eq!(dump.markets["X-PERP"].auction.as_ref().map(|a| a.id.as_str()), Some("2"));
}

/// The ADL queue shown in the dump: five lights, highest score first.
#[test]
fn adl_quantiles_rank_profit_times_leverage() {
    let mut run = Run::new(&one_tier_config("0.10", "0.0", "2", true));
    run.price("X-PERP", "100");
    for (name, amount) in
        [("alice", "100000"), ("bob", "100000"), ("cat", "3000"), ("dan", "50000"), ("eve", "10000"), ("fay", "5000")]
    {
        run.deposit(name, amount);
    }
    for short in ["bob", "cat", "dan", "eve", "fay"] {
        run.trade("X-PERP", "alice", short, "10", "100");
    }
    run.price("X-PERP", "90");
    let dump = run.engine.dump();
    let lights: Vec<(String, Option<u8>)> = ["cat", "fay", "eve", "dan", "bob"]
        .iter()
        .map(|n| (n.to_string(), dump.accounts[*n].positions["X-PERP"].adl_quantile))
        .collect();
    // Same profit everywhere (10 x 10); leverage = notional / equity ranks cat (least equity) first.
    assert_eq!(
        lights,
        vec![
            ("cat".to_string(), Some(5)),
            ("fay".to_string(), Some(4)),
            ("eve".to_string(), Some(3)),
            ("dan".to_string(), Some(2)),
            ("bob".to_string(), Some(1)),
        ]
    );
    assert_eq!(dump.accounts["alice"].positions["X-PERP"].adl_quantile, Some(5), "alone on her side");
    assert_eq!(run.engine.account_dump("cat").unwrap().positions["X-PERP"].adl_quantile, Some(5));
}

/// Regression: an event that only moves time (here a deposit) re-judges markets and then runs
/// the waterfall, so no live account is left below maintenance after it.
#[test]
fn a_deposit_that_moves_time_also_runs_the_waterfall() {
    let mut run = Run::new(&one_tier_config("0.10", "0.01", "2", true));
    run.price("X-PERP", "100");
    run.deposit("alice", "2000");
    run.deposit("bob", "100000");
    run.trade("X-PERP", "alice", "bob", "100", "100");
    run.line(format!(r#"{{"type":"params","ts":{},"market":"X-PERP","max_jump":"0.1"}}"#, run.ts));
    // All sources fall 30% at once (ticks 1 ms later): the clamp holds the index at 90 (alice
    // is still healthy).
    for source in ["s1", "s2", "s3"] {
        run.line(format!(
            r#"{{"type":"price","ts":{},"market":"X-PERP","source":"{source}","price":"70"}}"#,
            run.ts + 1
        ));
    }
    assert_eq!(run.engine.markets()[0].index_price, Some(Price::from_int(90).unwrap()));
    assert!(liquidations(&run.effects).is_empty());
    // Three seconds later a deposit is the next event: the clamp window has grown, the index
    // reaches 70, and alice (equity -1,000) must be handled inside this very event.
    run.ts += 3_000;
    run.seq += 1;
    let mut out = Vec::new();
    let text = format!(r#"{{"type":"deposit","ts":{},"account":"carol","asset":"USDC","amount":"1"}}"#, run.ts);
    run.engine.apply_line(run.seq, text.as_bytes(), &mut out);
    assert_eq!(run.engine.markets()[0].index_price, Some(Price::from_int(70).unwrap()));
    assert!(
        out.iter().any(|e| matches!(&e.kind, EffectKind::Bankruptcy { account, .. } if account == "alice")),
        "{out:?}"
    );
    for account in run.engine.accounts() {
        let health = run.engine.health(&account.name).unwrap();
        assert!(!health.below_maintenance(), "{} left below MM: {health:?}", account.name);
    }
}

/// Regression: a loss that nobody can absorb becomes protocol bad debt once, with one alert,
/// instead of being raised again at every later event.
#[test]
fn an_unabsorbable_loss_becomes_bad_debt_once() {
    let mut run = Run::new(&one_tier_config("0.10", "0.0", "2", true));
    run.price("X-PERP", "100");
    run.deposit("alice", "2000");
    run.deposit("bob", "100000");
    run.trade("X-PERP", "alice", "bob", "100", "100");
    // A reducing trade far from mark realizes a loss beyond alice's collateral; nobody else
    // holds a position, so nobody can absorb it. (The default band of 10% around the mark would
    // refuse a fill at half the mark: this test widens it to reach the bad-debt path.)
    run.line(format!(r#"{{"type":"params","ts":{},"market":"X-PERP","max_trade_deviation":"0.5"}}"#, run.ts));
    let out = run.line(format!(
        r#"{{"type":"trade","ts":{},"market":"X-PERP","buyer":"bob","seller":"alice","size":"100","price":"50"}}"#,
        run.ts
    ));
    let kinds: Vec<&str> = out.iter().map(|e| e.type_name()).collect();
    assert_eq!(kinds, vec!["bankruptcy", "alert", "alert"], "{out:?}");
    // The bad debt puts the protocol's net position below zero: the second alert says so.
    assert!(matches!(&out[2].kind, EffectKind::Alert { alert, .. } if alert == "protocol_insolvent"), "{out:?}");
    assert_eq!(run.engine.bad_debt(), q("3000"));
    assert_eq!(run.engine.protocol_book().unwrap().net_position, q("-3000"));
    assert_eq!(run.engine.health("alice").unwrap().equity, Quote::ZERO);
    let later = run.line(format!(r#"{{"type":"clock","ts":{}}}"#, run.ts + 1_000));
    assert!(later.is_empty(), "nothing is raised again: {later:?}");
}

/// Regression: an auction whose inventory flipped side by netting ends at once; a take on it is
/// refused, and so is an id spelt with a leading zero.
#[test]
fn a_take_on_a_flipped_auction_is_refused() {
    let mut run = Run::new(&one_tier_config("0.10", "0.01", "1.5", true));
    run.price("X-PERP", "110");
    for (name, amount) in [("alice", "1990"), ("bob", "100000"), ("shorty", "1650"), ("mm1", "100000")] {
        run.deposit(name, amount);
    }
    run.trade("X-PERP", "alice", "bob", "100", "110");
    run.trade("X-PERP", "bob", "shorty", "100", "110");
    run.price("X-PERP", "100"); // alice partially liquidated: inventory long, auction 1 sells
    assert!(run.engine.markets()[0].inventory.size.is_positive());
    let out = run.price("X-PERP", "122"); // shorty liquidated: inventory nets to short
    assert!(run.engine.markets()[0].inventory.size.is_negative(), "{out:?}");
    let ended = out.iter().any(|e| matches!(&e.kind, EffectKind::AuctionEnded { auction, reason, .. } if auction == "1" && reason == "flipped"));
    assert!(ended, "{out:?}");
    let ts = run.ts;
    let take = |id: &str| format!(r#"{{"type":"auction_take","ts":{ts},"auction":"{id}","bidder":"mm1","size":"1"}}"#);
    assert_eq!(run.refused(take("1")), "unknown_auction");
    assert_eq!(run.refused(take("02")), "unknown_auction");
    let live = run.engine.markets()[0].auction.unwrap();
    assert!(!live.selling && live.id == 2);
}

/// The crash of `serve --demo` (crates/node/src/demo.rs), rebuilt tick for tick as events with
/// a `clock` per tick: 5 sources every 250 ms, BTC 10,000 and ETH 500 falling 30% over 30 s from
/// 5 s, whale 300 BTC on 400k, carol 50 BTC on 100k, degen 40 BTC on 60k, dave 800 ETH on 50k.
/// Without the venue rules it liquidated 1,028 times (whale 314), with penalties down to
/// 0.0000055. With the embedded default: no account more than 5 times, and no partial close
/// worth less than the minimum notional (so no penalty under 0.5% of it).
#[test]
fn demo_crash_takes_a_handful_of_liquidations_none_under_the_minimum() {
    const M: u64 = u64::MAX;
    let mut jitter = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        jitter ^= (jitter << 13) & M;
        jitter ^= jitter >> 7;
        jitter ^= (jitter << 17) & M;
        (jitter >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    };
    let t0 = 1_700_000_000_000u64;
    let mut lines = vec![format!(r#"{{"type":"clock","ts":{t0}}}"#)];
    let deposit = |ts: u64, a: &str, n: u64| {
        format!(r#"{{"type":"deposit","ts":{ts},"account":"{a}","asset":"USDC","amount":"{n}"}}"#)
    };
    let trade = |ts: u64, m: &str, b: &str, s: &str, size: &str, p: f64| {
        format!(
            r#"{{"type":"trade","ts":{ts},"market":"{m}","buyer":"{b}","seller":"{s}","size":"{size}","price":"{p:.2}"}}"#
        )
    };
    let mut step = 0;
    for k in 0..240u64 {
        let (elapsed, ts) = (k as f64 * 0.25, t0 + k * 250);
        let factor = 1.0 - 0.30 * ((elapsed - 5.0) / 30.0).clamp(0.0, 1.0);
        lines.push(format!(r#"{{"type":"clock","ts":{ts}}}"#));
        for (market, base) in [("BTC-PERP", 10_000.0), ("ETH-PERP", 500.0)] {
            for source in ["s1", "s2", "s3", "s4", "s5"] {
                let mut price = base * factor * (1.0 + 0.0005 * next());
                if (12.0..24.0).contains(&elapsed) && source == "s5" {
                    price *= 1.05;
                }
                lines.push(format!(
                    r#"{{"type":"price","ts":{ts},"market":"{market}","source":"{source}","price":"{price:.2}"}}"#
                ));
            }
        }
        let script: [(f64, Vec<String>); 4] = [
            (
                1.0,
                [
                    ("mm1", 5_000_000),
                    ("mm2", 1_000_000),
                    ("whale", 400_000),
                    ("carol", 100_000),
                    ("degen", 60_000),
                    ("dave", 50_000),
                ]
                .iter()
                .map(|(a, n)| deposit(ts, a, *n))
                .collect(),
            ),
            (
                2.0,
                vec![
                    trade(ts, "BTC-PERP", "whale", "mm1", "300", 10_000.0),
                    trade(ts, "BTC-PERP", "carol", "mm1", "50", 10_000.0),
                    trade(ts, "BTC-PERP", "degen", "mm1", "40", 10_000.0),
                    trade(ts, "ETH-PERP", "dave", "mm1", "800", 500.0),
                ],
            ),
            (
                18.0,
                vec![format!(r#"{{"type":"withdraw","ts":{ts},"account":"whale","asset":"USDC","amount":"100000"}}"#)],
            ),
            (40.0, vec![trade(ts, "BTC-PERP", "mm2", "mm1", "1", 10_000.0 * factor)]),
        ];
        while step < script.len() && script[step].0 <= elapsed {
            lines.extend(script[step].1.iter().cloned());
            step += 1;
        }
    }
    let mut engine = Engine::new(&Config::embedded_default());
    let mut effects = Vec::new();
    for (seq, line) in lines.iter().enumerate() {
        engine.apply_line(seq as u64 + 1, line.as_bytes(), &mut effects);
    }
    let minimum = engine.markets()[0].params.rules.min_liquidation_notional;
    let mut per_account = std::collections::BTreeMap::<String, u32>::new();
    for effect in &effects {
        if let EffectKind::Liquidation { account, closed_size, price, full, .. } = &effect.kind {
            *per_account.entry(account.clone()).or_default() += 1;
            let notional = closed_size.checked_abs().unwrap().mul_price(*price);
            assert!(*full || notional >= minimum, "a partial close under the minimum: {}", effect.to_json_line());
        }
    }
    let accounts: Vec<&str> = per_account.keys().map(String::as_str).collect();
    assert_eq!(accounts, ["carol", "dave", "degen", "whale"], "every leveraged long is liquidated");
    assert!(per_account.values().all(|&n| n <= 5), "{per_account:?}");
}

/// The protocol's book: a takeover nobody buys puts the inventory at the protocol's risk; when
/// the mark falls under its cost by more than the fund holds, the net position (fund + inventory
/// PnL at mark - bad debt) goes negative with one `protocol_insolvent` alert, stays silent while
/// it stays negative, and says `protocol_solvent` once a fund deposit puts it back above zero.
#[test]
fn the_protocol_net_position_counts_the_inventory_at_mark_and_alerts_once_per_crossing() {
    let mut run = Run::new(&one_tier_config("0.10", "0.0", "1.5", true));
    run.price("X-PERP", "100");
    run.deposit("alice", "150");
    run.deposit("bob", "100000");
    run.trade("X-PERP", "alice", "bob", "10", "100");
    // At 90 alice has equity 50 against MM 90: the smallest slice restoring MM (no penalty, no
    // buffer) is q with 0.1 x 90 x (10 - q) <= 50, q = 4.4444444444.. rounded up to 1e-8.
    let out = run.price("X-PERP", "90");
    assert!(out.iter().any(|e| e.type_name() == "liquidation"), "{out:?}");
    let book = run.engine.protocol_book().unwrap();
    let inventory = &book.inventory["X-PERP"];
    assert_eq!(inventory.size, Size::parse("4.44444445").unwrap());
    assert_eq!(inventory.cost_basis, q("400.0000005"));
    assert_eq!((inventory.unrealized_pnl, book.net_position, book.solvent), (Quote::ZERO, Quote::ZERO, true));
    run.deposit("alice", "1000");
    let alerts = |out: &[Effect]| -> Vec<String> {
        out.iter()
            .filter_map(|e| match &e.kind {
                EffectKind::Alert { alert, .. } => Some(alert.clone()),
                _ => None,
            })
            .collect()
    };
    // At 89 the inventory is 4.44444445 under its cost and the fund holds nothing.
    let out = run.price("X-PERP", "89");
    assert_eq!(alerts(&out), vec!["protocol_insolvent"], "{out:?}");
    let book = run.engine.protocol_book().unwrap();
    assert_eq!(
        (book.inventory_unrealized_pnl, book.net_position, book.solvent),
        (q("-4.44444445"), q("-4.44444445"), false)
    );
    assert_eq!(book.inventory_notional, q("395.55555605"));
    let out = run.price("X-PERP", "88");
    assert!(alerts(&out).is_empty(), "one alert per crossing: {out:?}");
    assert_eq!(run.engine.protocol_net_position().unwrap(), q("-8.8888889"));
    let out = run.line(format!(r#"{{"type":"fund_deposit","ts":{},"amount":"10"}}"#, run.ts));
    assert_eq!(alerts(&out), vec!["protocol_solvent"], "{out:?}");
    assert_eq!(run.engine.protocol_book().unwrap().net_position, q("1.1111111"));
    // The dump carries the same book, and the market its inventory's cost and PnL.
    let dump = serde_json::to_value(run.engine.dump()).unwrap();
    assert_eq!(dump["protocol"]["net_position"], "1.1111111");
    assert_eq!(dump["protocol"]["inventory"]["X-PERP"]["cost_basis"], "400.0000005");
    assert_eq!(dump["markets"]["X-PERP"]["inventory_unrealized_pnl"], "-8.8888889");
}

/// The per-event caps (dYdX's per-block limits): at most 900 USDC of one account's position and
/// 1,350 USDC of the market are liquidated per event, the rest waits for later events, and a
/// capped account is taken up again at the next event until it is restored.
/// alice and bob are each long 100 at 100 on 1,500; at 90 each has equity 500 against MM 900 and
/// needs 44.44444445 closed (no penalty, no buffer). Per event alice (first by name) gets her
/// 900 (10 at 90) and bob what is left of the market's 1,350 (5); alice's last slice is the exact
/// restoring one, 4.44444445.
#[test]
fn per_event_caps_spread_a_liquidation_over_events() {
    let mut run = Run::new(&one_tier_config("0.10", "0.0", "1.5", true));
    run.price("X-PERP", "100");
    for (name, amount) in [("alice", "1500"), ("bob", "1500"), ("carol", "100000")] {
        run.deposit(name, amount);
    }
    run.trade("X-PERP", "alice", "carol", "100", "100");
    run.trade("X-PERP", "bob", "carol", "100", "100");
    let caps = r#""max_account_liquidation_notional":"900","max_event_liquidation_notional":"1350""#;
    run.line(format!(r#"{{"type":"params","ts":{},"market":"X-PERP",{caps}}}"#, run.ts));
    let closed = |out: &[Effect]| -> Vec<(String, Size)> {
        out.iter()
            .filter_map(|e| match &e.kind {
                EffectKind::Liquidation { account, closed_size, .. } => Some((account.clone(), *closed_size)),
                _ => None,
            })
            .collect()
    };
    let s = |text: &str| Size::parse(text).unwrap();
    let pair = |a: &str, b: &str| vec![("alice".to_string(), s(a)), ("bob".to_string(), s(b))];
    // The second tick moves the index to 90 (median of 90, 90, 100); the third is another event.
    let out = run.price("X-PERP", "90");
    let mut per_event: Vec<Vec<(String, Size)>> = Vec::new();
    let mut event: Vec<(String, Size)> = Vec::new();
    let mut seq = None;
    for e in out.iter().filter(|e| matches!(e.kind, EffectKind::Liquidation { .. })) {
        if seq.is_some_and(|s| s != e.seq) {
            per_event.push(std::mem::take(&mut event));
        }
        seq = Some(e.seq);
        event.extend(closed(std::slice::from_ref(e)));
    }
    per_event.push(event);
    assert_eq!(per_event, vec![pair("10", "5"), pair("10", "5")], "{out:?}");
    let alice = run.engine.account_id("alice").unwrap();
    let market = run.engine.market_id("X-PERP").unwrap();
    assert_eq!(run.engine.event_liquidated_notional(alice, market), (q("900"), q("1350")));
    assert!(run.engine.health("alice").unwrap().below_maintenance(), "held by the cap until the next event");
    let mut later = Vec::new();
    for _ in 0..5 {
        run.ts += 1_000;
        later.push(closed(&run.line(format!(r#"{{"type":"clock","ts":{}}}"#, run.ts))));
    }
    let alone = |a: &str, size: &str| vec![(a.to_string(), s(size))];
    let expected = vec![
        pair("10", "5"),
        pair("10", "5"),
        pair("4.44444445", "10"),
        alone("bob", "10"),
        alone("bob", "4.44444445"),
    ];
    assert_eq!(later, expected);
    for name in ["alice", "bob"] {
        let health = run.engine.health(name).unwrap();
        assert!(!health.below_maintenance(), "{name} restored: {health:?}");
        assert_eq!(run.engine.account(name).unwrap().size(market), s("55.55555555"));
    }
    // Refused bounds name the field and change nothing.
    let before = run.engine.state_hash();
    let mut out = Vec::new();
    let bad = format!(r#"{{"type":"params","ts":{},"market":"X-PERP","max_event_liquidation_notional":"-1"}}"#, run.ts);
    run.engine.apply_line(999, bad.as_bytes(), &mut out);
    assert!(
        matches!(&out[0].kind, EffectKind::Rejected { error, message } if error == "params_out_of_bounds" && message.contains("max_event_liquidation_notional")),
        "{out:?}"
    );
    assert_eq!(run.engine.state_hash(), before);
}

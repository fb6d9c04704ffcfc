//! `examples/black_thursday.jsonl`: a 12-13 March 2020-shaped crash (BTC 7,900 -> ~4,000 over a
//! day, with a 25-minute oracle outage at 02:16-02:40 UTC on the 13th, as BitMEX's), replayed by
//! the real binary; the effects must tell the whole waterfall in order.
//!
//! The file is generated here, against the engine itself so that backstop makers can answer the
//! auctions it starts. Regenerate after a deliberate change with
//! `SOLVENT_REGENERATE=1 cargo test -p solvent-cli --test black_thursday`.

use solvent_core::effect::EffectKind;
use solvent_core::{Config, Engine};
use std::path::PathBuf;

const T0_MS: u64 = 1_583_971_200_000; // 2020-03-12T00:00:00Z
const STEP_MS: u64 = 5 * 60 * 1_000;
const OUTAGE_START_MS: u64 = T0_MS + (24 * 60 + 136) * 60 * 1_000; // 13 Mar 02:16
const OUTAGE_END_MS: u64 = T0_MS + (24 * 60 + 161) * 60 * 1_000; // 13 Mar 02:41

/// (minutes since T0, BTC, ETH): anchors of the path, linear between them.
const KNOTS: [(u64, f64, f64); 9] = [
    (0, 7_900.0, 195.0),
    (600, 7_400.0, 180.0),
    (720, 6_500.0, 150.0),
    (840, 5_800.0, 130.0),
    (1_080, 5_600.0, 125.0),
    (1_440 + 60, 5_300.0, 120.0),
    (1_440 + 135, 5_000.0, 115.0),
    (1_440 + 161, 4_100.0, 95.0),
    (1_440 + 360, 4_500.0, 110.0),
];

fn price_at(minute: u64, pick: fn(&(u64, f64, f64)) -> f64) -> String {
    let i = KNOTS.iter().rposition(|a| a.0 <= minute).unwrap();
    let (a, b) = (KNOTS[i], KNOTS[(i + 1).min(KNOTS.len() - 1)]);
    let t = if b.0 == a.0 { 0.0 } else { (minute - a.0) as f64 / (b.0 - a.0) as f64 };
    format!("{:.2}", pick(&a) + (pick(&b) - pick(&a)) * t.min(1.0))
}

struct Generator {
    engine: Engine,
    lines: Vec<String>,
    pending_takes: Vec<(u64, String, String, String)>, // (ts, auction, bidder, size)
}

impl Generator {
    fn push(&mut self, line: String) {
        let mut out = Vec::new();
        self.engine.apply_line(self.lines.len() as u64 + 1, line.as_bytes(), &mut out);
        assert!(out.iter().all(|e| e.rejection_kind().is_none()), "{line}: {out:?}");
        for effect in &out {
            if let EffectKind::AuctionStarted { auction, size, market, .. } = &effect.kind {
                // Backstop makers answer after 20 s: mm1 takes half, mm2 the rest 15 s later.
                let half = solvent_core::Size::from_raw(size.raw() / 2);
                let bidder = if market == "BTC-PERP" { ("mm1", "mm2") } else { ("mm3", "mm3") };
                self.pending_takes.push((effect.ts + 20_000, auction.clone(), bidder.0.into(), half.to_string()));
                let rest = size.checked_sub(half).unwrap();
                self.pending_takes.push((effect.ts + 35_000, auction.clone(), bidder.1.into(), rest.to_string()));
            }
        }
        self.lines.push(line);
    }

    fn flush_takes(&mut self, until_ms: u64) {
        self.pending_takes.sort();
        while let Some(take) = self.pending_takes.first().cloned() {
            if take.0 > until_ms {
                break;
            }
            self.pending_takes.remove(0);
            let (ts, auction, bidder, size) = take;
            let live = self.engine.markets().iter().any(|m| m.auction.is_some_and(|a| a.id.to_string() == auction));
            let remaining = self
                .engine
                .markets()
                .iter()
                .find(|m| m.auction.is_some_and(|a| a.id.to_string() == auction))
                .map(|m| m.inventory.size.checked_abs().unwrap());
            let Some(remaining) = remaining.filter(|_| live) else { continue };
            let size = solvent_core::Size::parse(&size).unwrap().min(remaining);
            if size.is_zero() {
                continue;
            }
            self.push(format!(
                r#"{{"type":"auction_take","ts":{ts},"auction":"{auction}","bidder":"{bidder}","size":"{size}"}}"#
            ));
        }
    }
}

fn generate() -> Vec<String> {
    let mut g =
        Generator { engine: Engine::new(&Config::embedded_default()), lines: Vec::new(), pending_takes: Vec::new() };
    g.push(format!(r#"{{"type":"clock","ts":{T0_MS}}}"#));
    // ETH-PERP runs without ADL: its bankruptcies end in socialized loss. The file samples
    // prices every 5 minutes, so sources may be up to 10 minutes old before they count as stale.
    g.push(format!(r#"{{"type":"params","ts":{T0_MS},"market":"ETH-PERP","adl_enabled":false,"max_age_ms":600000}}"#));
    g.push(format!(r#"{{"type":"params","ts":{T0_MS},"market":"BTC-PERP","max_age_ms":600000}}"#));
    for market in ["BTC-PERP", "ETH-PERP"] {
        let price = if market == "BTC-PERP" { "7900" } else { "195" };
        for source in ["s1", "s2", "s3", "s4", "s5"] {
            g.push(format!(
                r#"{{"type":"price","ts":{T0_MS},"market":"{market}","source":"{source}","price":"{price}"}}"#
            ));
        }
    }
    let deposits = [
        ("whale", "700000"),
        ("degen", "40000"),
        ("late_long", "40000"),
        ("bear_hi", "60000"),
        ("bear_lo", "3000000"),
        ("mm1", "5000000"),
        ("mm2", "5000000"),
        ("mm3", "2000000"),
        ("eth_long", "14000"),
        ("eth_late", "6000"),
        ("eth_bear", "400000"),
        ("saver", "100000"),
    ];
    // The venue's insurance fund starts with 25,000 USDC of capital.
    g.push(format!(r#"{{"type":"fund_deposit","ts":{T0_MS},"amount":"25000"}}"#));
    for (account, amount) in deposits {
        g.push(format!(
            r#"{{"type":"deposit","ts":{T0_MS},"account":"{account}","asset":"USDC","amount":"{amount}"}}"#
        ));
    }
    let trade = |g: &mut Generator, ts: u64, market: &str, buyer: &str, seller: &str, size: &str, price: &str| {
        g.push(format!(
            r#"{{"type":"trade","ts":{ts},"market":"{market}","buyer":"{buyer}","seller":"{seller}","size":"{size}","price":"{price}"}}"#
        ));
    };
    trade(&mut g, T0_MS, "BTC-PERP", "whale", "bear_lo", "400", "7900");
    trade(&mut g, T0_MS, "BTC-PERP", "degen", "bear_hi", "40", "7900");
    trade(&mut g, T0_MS, "ETH-PERP", "eth_long", "eth_bear", "1200", "195");
    let end_ms = T0_MS + (1_440 + 360) * 60 * 1_000;
    let mut ts = T0_MS;
    while ts < end_ms {
        ts += STEP_MS;
        if ts == T0_MS + (1_440 + 60) * 60 * 1_000 {
            // 13 Mar 01:00: a late long buys the dip at 20x, right before the outage.
            trade(&mut g, ts - STEP_MS, "BTC-PERP", "late_long", "bear_lo", "100", "5300");
            trade(&mut g, ts - STEP_MS, "ETH-PERP", "eth_late", "eth_bear", "1000", "120");
        }
        g.flush_takes(ts);
        g.push(format!(r#"{{"type":"clock","ts":{ts}}}"#));
        let outage = (OUTAGE_START_MS..OUTAGE_END_MS).contains(&ts);
        let minute = (ts - T0_MS) / 60_000;
        for (market, pick) in [("BTC-PERP", (|a: &(u64, f64, f64)| a.1) as fn(&_) -> f64), ("ETH-PERP", |a| a.2)] {
            let sources: &[&str] = if outage { &["s5"] } else { &["s1", "s2", "s3", "s4", "s5"] };
            for source in sources {
                // During the outage only s5 still reports, and it reports nonsense.
                let price = if outage { "1".to_string() } else { price_at(minute, pick) };
                g.push(format!(
                    r#"{{"type":"price","ts":{ts},"market":"{market}","source":"{source}","price":"{price}"}}"#
                ));
            }
        }
    }
    g.flush_takes(end_ms);
    g.lines
}

fn example_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/black_thursday.jsonl")
}

#[test]
fn example_file_is_what_the_generator_makes() {
    let generated = generate().join("\n") + "\n";
    if std::env::var_os("SOLVENT_REGENERATE").is_some() {
        std::fs::write(example_path(), &generated).unwrap();
    }
    let committed =
        std::fs::read_to_string(example_path()).expect("examples/black_thursday.jsonl (SOLVENT_REGENERATE=1 makes it)");
    assert!(committed == generated, "examples/black_thursday.jsonl is stale: regenerate with SOLVENT_REGENERATE=1");
}

#[test]
fn replay_tells_the_waterfall_in_order() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_solvent"))
        .args(["replay", "--strict", "--events"])
        .arg(example_path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let effects: Vec<serde_json::Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let first =
        |kind: &str| effects.iter().position(|e| e["type"] == kind).unwrap_or_else(|| panic!("no {kind} effect"));
    let partial =
        effects.iter().position(|e| e["type"] == "liquidation" && e["full"] == false).expect("a partial liquidation");
    let penalty =
        effects.iter().position(|e| e["type"] == "insurance" && e["reason"] == "liquidation_penalty").unwrap();
    let started = first("auction_started");
    let filled = first("auction_fill");
    let frozen = first("oracle_frozen");
    // Markets start frozen and thaw at their first quorum: the thaw that matters follows the freeze.
    let thawed =
        frozen + effects[frozen..].iter().position(|e| e["type"] == "oracle_thawed").expect("a thaw after the outage");
    let bankrupt = first("bankruptcy");
    let adl = first("adl");
    let social = first("socialized_loss");
    assert!(partial < started && penalty < started && started < filled, "liquidate, then auction, then fill");
    assert!(filled < frozen && frozen < thawed, "the outage comes after the first auctions");
    assert!(thawed < bankrupt && bankrupt < adl, "the gap after the outage bankrupts the late long, then ADL");
    assert!(thawed < social, "ETH bankruptcies without ADL are socialized");
    // Nothing is liquidated while frozen: no liquidation between freeze and thaw of BTC-PERP.
    let btc_frozen = effects.iter().position(|e| e["type"] == "oracle_frozen" && e["market"] == "BTC-PERP").unwrap();
    let btc_thawed = btc_frozen
        + effects[btc_frozen..].iter().position(|e| e["type"] == "oracle_thawed" && e["market"] == "BTC-PERP").unwrap();
    assert!(!effects[btc_frozen..btc_thawed].iter().any(|e| e["type"] == "liquidation" && e["market"] == "BTC-PERP"));
    let adl_effect = &effects[adl];
    assert_eq!(adl_effect["account"], "bear_hi", "the most profitable x leveraged short goes first");
    crash_shows_a_handful_of_liquidations_and_auctions(&effects);
}

/// The venue rules of the embedded default (buffer, minimum notional, 20% chunks, backstop):
/// at most 5 `liquidation` effects per account and market, and at most one live auction per
/// market at any time. The exact totals are those of the committed file.
fn crash_shows_a_handful_of_liquidations_and_auctions(effects: &[serde_json::Value]) {
    let mut per_position = std::collections::BTreeMap::<(String, String), u32>::new();
    let mut live = std::collections::BTreeMap::<String, String>::new();
    let (mut liquidations, mut auctions) = (0, 0);
    for e in effects {
        let text = |key: &str| e[key].as_str().unwrap_or_default().to_string();
        match e["type"].as_str() {
            Some("liquidation") => {
                liquidations += 1;
                *per_position.entry((text("account"), text("market"))).or_default() += 1;
            }
            Some("auction_started") => {
                auctions += 1;
                let previous = live.insert(text("market"), text("auction"));
                assert!(previous.is_none(), "a second live auction in {}: {e}", text("market"));
            }
            Some("auction_ended") => {
                assert_eq!(live.remove(&text("market")), Some(text("auction")), "{e}");
            }
            _ => {}
        }
    }
    let most = per_position.values().max().copied().unwrap_or(0);
    assert!(most <= 5, "a position was liquidated {most} times: {per_position:?}");
    assert_eq!(per_position[&("whale".to_string(), "BTC-PERP".to_string())], 5, "five 20% chunks of 400 BTC");
    assert_eq!((liquidations, auctions), (21, 21), "liquidation and auction_started effects");
    assert!(live.is_empty(), "every auction ends: {live:?}");
}

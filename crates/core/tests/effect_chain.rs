//! The effect hash chain: every effect of an accepted event passes the one sink and is folded into
//! the chain, refusals are not, and the chain head is part of the state hash.

use solvent_core::effect::{chain_link, CHAIN_GENESIS, EFFECT_ENCODING_VERSION};
use solvent_core::{Config, Effect, EffectKind, Engine, Price, Quote, Size};

fn black_thursday() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/black_thursday.jsonl");
    std::fs::read_to_string(path).expect("the example ships with the repository")
}

/// Folding the emitted effects (refusals left out) from genesis gives the engine's head after
/// every line: no effect reaches the output without passing the chain, and none is chained twice.
#[test]
fn chain_head_is_the_fold_of_every_emitted_effect() {
    let mut engine = Engine::new(&Config::embedded_default());
    let mut head = CHAIN_GENESIS;
    let mut out = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    for (i, line) in black_thursday().lines().enumerate() {
        out.clear();
        let hash_before = engine.state_hash();
        let head_before = engine.effect_chain_head();
        engine.apply_line(i as u64 + 1, line.as_bytes(), &mut out);
        for effect in &out {
            kinds.insert(effect.type_name());
            if effect.rejection_kind().is_none() {
                head = chain_link(&head, effect);
            }
        }
        assert_eq!(engine.effect_chain_head(), head, "line {}", i + 1);
        if out.iter().any(|e| e.rejection_kind().is_none()) {
            assert_ne!(head, head_before, "line {}: chained effects move the head", i + 1);
            assert_ne!(engine.state_hash(), hash_before, "line {}: the head is hashed", i + 1);
        }
    }
    for kind in ["liquidation", "adl", "socialized_loss", "auction_fill", "insurance", "bankruptcy"] {
        assert!(kinds.contains(kind), "the crash emits {kind}");
    }
}

#[test]
fn a_refused_line_leaves_the_chain_and_the_hash_alone() {
    let mut engine = Engine::new(&Config::embedded_default());
    let mut out = Vec::new();
    engine.apply_line(1, br#"{"type":"deposit","ts":1,"account":"a","asset":"USDC","amount":"10"}"#, &mut out);
    let (head, hash) = (engine.effect_chain_head(), engine.state_hash());
    engine.apply_line(2, br#"{"type":"withdraw","ts":2,"account":"a","asset":"USDC","amount":"11"}"#, &mut out);
    assert_eq!(out.last().and_then(|e| e.rejection_kind()), Some("insufficient_balance"));
    assert_eq!((engine.effect_chain_head(), engine.state_hash()), (head, hash));
}

fn liquidation() -> Effect {
    Effect::new(
        7,
        1_000,
        EffectKind::Liquidation {
            account: "alice".into(),
            market: "BTC-PERP".into(),
            closed_size: Size::from_raw(-150_000_000),
            price: Price::from_raw(950_000_000_000),
            penalty: Quote::from_raw(5),
            full: false,
            equity_before: Quote::from_raw(-1),
            maintenance_margin_before: Quote::from_raw(2),
            equity_after: Quote::from_raw(3),
            maintenance_margin_after: Quote::from_raw(4),
        },
    )
}

/// The documented layout, byte for byte (docs/proofs.md shows the same example).
#[test]
fn liquidation_encoding_is_the_documented_layout() {
    let bytes = liquidation().canonical_bytes();
    let mut expected = vec![EFFECT_ENCODING_VERSION];
    let str = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    str(&mut expected, "liquidation");
    expected.extend_from_slice(&7u64.to_le_bytes());
    expected.extend_from_slice(&1_000u64.to_le_bytes());
    str(&mut expected, "alice");
    str(&mut expected, "BTC-PERP");
    expected.extend_from_slice(&(-150_000_000i64).to_le_bytes());
    expected.extend_from_slice(&950_000_000_000i64.to_le_bytes());
    expected.extend_from_slice(&5i128.to_le_bytes());
    expected.push(0);
    for q in [-1i128, 2, 3, 4] {
        expected.extend_from_slice(&q.to_le_bytes());
    }
    assert_eq!(bytes, expected);
}

/// Every field is in the encoding: changing any one changes the bytes and the link.
#[test]
fn every_field_moves_the_link() {
    let base = liquidation();
    let link = chain_link(&CHAIN_GENESIS, &base);
    for field in 0..12 {
        let mut changed = base.clone();
        let EffectKind::Liquidation {
            account,
            market,
            closed_size,
            price,
            penalty,
            full,
            equity_before,
            maintenance_margin_before,
            equity_after,
            maintenance_margin_after,
        } = &mut changed.kind
        else {
            unreachable!("built as a liquidation")
        };
        let bump = |q: &mut Quote| *q = Quote::from_raw(q.raw() + 1);
        match field {
            0 => changed.seq += 1,
            1 => changed.ts += 1,
            2 => account.push('x'),
            3 => market.push('x'),
            4 => *closed_size = Size::from_raw(closed_size.raw() + 1),
            5 => *price = Price::from_raw(price.raw() + 1),
            6 => bump(penalty),
            7 => *full = !*full,
            8 => bump(equity_before),
            9 => bump(maintenance_margin_before),
            10 => bump(equity_after),
            _ => bump(maintenance_margin_after),
        }
        assert_ne!(chain_link(&CHAIN_GENESIS, &changed), link, "field {field}");
    }
    assert_ne!(chain_link(&[1; 32], &base), link, "the previous head is linked");
}

/// A link is BLAKE3 over the domain tag, the previous head and the canonical bytes, however the
/// bytes are fed to the hasher: short effects, and names long enough to overflow its buffer.
#[test]
fn a_link_is_blake3_of_domain_head_and_encoding() {
    let previous = [7u8; 32];
    for name_len in [1usize, 100, 300, 511, 512, 513, 2_000] {
        let mut effect = liquidation();
        if let EffectKind::Liquidation { account, .. } = &mut effect.kind {
            *account = "a".repeat(name_len);
        }
        let mut bytes = solvent_core::effect::CHAIN_DOMAIN.to_vec();
        bytes.extend_from_slice(&previous);
        bytes.extend_from_slice(&effect.canonical_bytes());
        assert_eq!(chain_link(&previous, &effect), *blake3::hash(&bytes).as_bytes(), "name of {name_len} bytes");
    }
}

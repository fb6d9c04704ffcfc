//! Zero-knowledge margin health: a healthy account with three positions proves it; the verifier
//! sees commitments only; an unhealthy one cannot (the prover refuses, forged openings fail); a
//! proof is bound to the signed root; every byte of a proof file matters.

use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::SigningKey;
use solvent_core::{Config, Engine};
use solvent_proofs::health::{self, HealthProof};
use solvent_proofs::liabilities::{statement_from_engine, Proven, Root};

fn key() -> SigningKey {
    SigningKey::from_bytes(&[11; 32])
}

fn prices(ts: u64, market: &str, price: &str) -> Vec<String> {
    (1..=5)
        .map(|s| format!(r#"{{"type":"price","ts":{ts},"market":"{market}","source":"s{s}","price":"{price}"}}"#))
        .collect()
}

/// alice: long 300 BTC, short 2,000 ETH, long 30,000 SOL (each across several tier brackets).
fn events() -> Vec<String> {
    let mut lines = vec![r#"{"type":"clock","ts":1000}"#.to_string()];
    for (market, price) in [("BTC-PERP", "10000"), ("ETH-PERP", "500"), ("SOL-PERP", "20")] {
        lines.extend(prices(1000, market, price));
    }
    lines.extend([
        r#"{"type":"deposit","ts":2000,"account":"alice","asset":"USDC","amount":"600000"}"#.to_string(),
        r#"{"type":"deposit","ts":2000,"account":"alice","asset":"BTC","amount":"2"}"#.to_string(),
        r#"{"type":"deposit","ts":2000,"account":"bob","asset":"USDC","amount":"5000000"}"#.to_string(),
        r#"{"type":"trade","ts":3000,"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"300","price":"10000"}"#
            .to_string(),
        r#"{"type":"trade","ts":3000,"market":"ETH-PERP","buyer":"bob","seller":"alice","size":"2000","price":"500"}"#
            .to_string(),
        r#"{"type":"trade","ts":3000,"market":"SOL-PERP","buyer":"alice","seller":"bob","size":"30000","price":"20"}"#
            .to_string(),
    ]);
    lines
}

fn engine_after(lines: &[String]) -> Engine {
    let mut engine = Engine::new(&Config::embedded_default());
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        engine.apply_line(i as u64 + 1, line.as_bytes(), &mut out);
        assert!(out.iter().all(|e| e.rejection_kind().is_none()), "line {}: {:?}", i + 1, out);
    }
    engine
}

fn root_and_leaf(engine: &Engine, account: &str) -> (Root, [u8; 32]) {
    let statement = statement_from_engine(engine).unwrap();
    let proven = Proven::new(&statement, &key()).unwrap();
    let index = statement.balances.iter().position(|(n, _)| n == account).unwrap();
    (proven.root.clone(), proven.leaf_of(&statement, index).hash)
}

#[test]
fn a_healthy_account_with_three_positions_proves_it() {
    let engine = engine_after(&events());
    let alice = engine.account("alice").unwrap();
    assert_eq!(alice.positions.len(), 3);
    let (root, leaf) = root_and_leaf(&engine, "alice");
    let proof = health::prove(&engine, "alice", &root, leaf, &key()).unwrap();
    health::verify(&proof, &root, &key().verifying_key()).unwrap();
    // The file holds commitments, public marks and tiers, and no size, cost or balance.
    let text = proof.to_json();
    for secret in ["\"300\"", "30000000000", "60000000000000000000000", "-2000"] {
        assert!(!text.contains(secret), "{secret} leaks");
    }
    let again = HealthProof::from_json(&text).unwrap();
    health::verify(&again, &root, &key().verifying_key()).unwrap();
    // The split matches the engine's marginal table: MM' is the engine's MM exactly.
    let (markets, hidden) = health::account_values(&engine, "alice").unwrap();
    let margin = health::margin_of(&markets, &hidden).unwrap();
    let h = engine.health("alice").unwrap();
    let exact = (h.equity.raw() - h.maintenance_margin.raw()) * 100_000_000;
    assert!((margin - exact).abs() < 4 * 100_000_000, "{margin} vs {exact}");
}

#[test]
fn a_proof_is_bound_to_its_signed_root_and_key() {
    let engine = engine_after(&events());
    let (root, leaf) = root_and_leaf(&engine, "alice");
    let proof = health::prove(&engine, "alice", &root, leaf, &key()).unwrap();
    let mut later = engine.clone();
    later.apply_line(
        99,
        br#"{"type":"deposit","ts":4000,"account":"bob","asset":"USDC","amount":"1"}"#,
        &mut Vec::new(),
    );
    let (other_root, _) = root_and_leaf(&later, "alice");
    assert!(health::verify(&proof, &other_root, &key().verifying_key()).unwrap_err().contains("signed root"));
    let stranger = SigningKey::from_bytes(&[12; 32]).verifying_key();
    assert!(health::verify(&proof, &root, &stranger).unwrap_err().contains("signature"));
    assert!(health::prove(&later, "alice", &root, leaf, &key()).unwrap_err().contains("not of this state"));
}

/// carol holds 10 BTC as collateral and is long 1,000 ETH; ETH's sources fall silent (the market
/// freezes, so its liquidations pause) while BTC falls to 1,200: carol is below maintenance.
fn frozen_and_unhealthy() -> (Engine, String) {
    let mut lines = vec![r#"{"type":"clock","ts":1000}"#.to_string()];
    lines.extend(prices(1000, "BTC-PERP", "10000"));
    lines.extend(prices(1000, "ETH-PERP", "500"));
    lines.extend([
        r#"{"type":"deposit","ts":2000,"account":"carol","asset":"BTC","amount":"10"}"#.to_string(),
        r#"{"type":"deposit","ts":2000,"account":"dave","asset":"USDC","amount":"5000000"}"#.to_string(),
        r#"{"type":"trade","ts":3000,"market":"ETH-PERP","buyer":"carol","seller":"dave","size":"1000","price":"500"}"#
            .to_string(),
    ]);
    for second in 4..=60u64 {
        lines.push(format!(r#"{{"type":"clock","ts":{}}}"#, second * 1000));
        lines.extend(prices(second * 1000, "BTC-PERP", "1200"));
    }
    let engine = engine_after(&lines);
    assert!(engine.markets().iter().any(|m| &*m.name == "ETH-PERP" && m.frozen), "ETH is frozen");
    (engine, "carol".to_string())
}

/// An account below maintenance: the prover refuses; the engine's true commitments with forged
/// openings (any claimed margin, or a smaller position) do not verify.
#[test]
fn an_unhealthy_account_cannot_prove_health() {
    let (engine, alice) = frozen_and_unhealthy();
    let alice = alice.as_str();
    let (root, leaf) = root_and_leaf(&engine, alice);
    assert!(health::prove(&engine, alice, &root, leaf, &key()).unwrap_err().contains("below maintenance"));
    let (markets, hidden) = health::account_values(&engine, alice).unwrap();
    let statement = health::Statement { seq: root.seq, state_hash: root.state_hash, root: root.root, leaf, markets };
    let (commitments, openings) = health::commit(&statement.markets, hidden).unwrap();
    assert!(openings.margin < 0);
    assert!(health::prove_ranges(&statement, &commitments, &openings).unwrap_err().contains("below the maintenance"));
    let engine_sig = health::engine_sign(&statement, &commitments, &key());
    let forge = |claimed: u128, blinds: [Scalar; 2]| {
        let part = health::prove_ranges_claiming(&statement, &commitments, &openings, claimed, blinds).unwrap();
        let proof = HealthProof {
            statement: statement.clone(),
            commitments: commitments.clone(),
            engine_sig,
            margin_lo: part.margin_lo,
            margin_hi: part.margin_hi,
            range_proof: part.range_proof,
        };
        health::verify(&proof, &root, &key().verifying_key())
    };
    let lo = Scalar::from(7u64);
    let hi = (openings.blind_margin - lo) * Scalar::from(1u128 << 64).invert();
    // Limb blindings that satisfy the margin relation, with a positive claimed value.
    assert!(forge(1, [lo, hi]).unwrap_err().contains("margin commitment"));
    // The two's complement of the true (negative) margin as limbs.
    assert!(forge(openings.margin as u128, [lo, hi]).is_err());
    // Lying about a position instead: its commitment was signed with the true size.
    let mut lying = openings.clone();
    let held = lying.hidden.positions.iter().position(|p| p.0 > 0 || p.1 > 0).unwrap();
    let position = &mut lying.hidden.positions[held];
    if position.0 > 0 {
        position.0 -= 1;
    } else {
        position.1 -= 1;
    }
    lying.margin = 0;
    let part = health::prove_ranges(&statement, &commitments, &lying).unwrap();
    let proof = HealthProof {
        statement: statement.clone(),
        commitments: commitments.clone(),
        engine_sig,
        margin_lo: part.margin_lo,
        margin_hi: part.margin_hi,
        range_proof: part.range_proof,
    };
    assert!(health::verify(&proof, &root, &key().verifying_key()).is_err());
}

#[test]
fn every_byte_of_a_health_proof_matters() {
    let engine = engine_after(&events());
    let (root, leaf) = root_and_leaf(&engine, "alice");
    let text = health::prove(&engine, "alice", &root, leaf, &key()).unwrap().to_json();
    let body = text.trim_end().as_bytes();
    let public = key().verifying_key();
    let mut refused = 0;
    // Every byte of the public part, and a stride through the range proof (each check costs a
    // verification).
    let proof_at = text.find("\"range_proof\":\"").unwrap() + 15;
    let positions: Vec<usize> = (0..proof_at).chain((proof_at..body.len()).step_by(97)).collect();
    for i in positions {
        let mut changed = body.to_vec();
        changed[i] ^= 0x01;
        let Ok(changed) = String::from_utf8(changed) else { continue };
        let outcome = HealthProof::from_json(&changed).and_then(|p| health::verify(&p, &root, &public));
        assert!(outcome.is_err(), "byte {i}: {changed}");
        refused += 1;
    }
    assert!(refused > 1_000, "{refused}");
}

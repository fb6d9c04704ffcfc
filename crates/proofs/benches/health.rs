//! Zero-knowledge margin health of an account with three positions (BTC, ETH, SOL, each across
//! several tier brackets), side by side with a plain dalek aggregated range proof over the same
//! number of 64-bit values. Figures and proof sizes: docs/performance.md.

use bulletproofs::{BulletproofGens, PedersenGens, RangeProof};
use criterion::{criterion_group, criterion_main, Criterion};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::SigningKey;
use merlin::Transcript;
use solvent_core::{Config, Engine};
use solvent_proofs::health;
use solvent_proofs::liabilities::{statement_from_engine, Proven};

fn engine() -> Engine {
    let mut lines = vec![r#"{"type":"clock","ts":1000}"#.to_string()];
    for (market, price) in [("BTC-PERP", "10000"), ("ETH-PERP", "500"), ("SOL-PERP", "20")] {
        for s in 1..=5 {
            lines
                .push(format!(r#"{{"type":"price","ts":1000,"market":"{market}","source":"s{s}","price":"{price}"}}"#));
        }
    }
    lines.extend([
        r#"{"type":"deposit","ts":2000,"account":"alice","asset":"USDC","amount":"600000"}"#.to_string(),
        r#"{"type":"deposit","ts":2000,"account":"bob","asset":"USDC","amount":"5000000"}"#.to_string(),
        r#"{"type":"trade","ts":3000,"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"300","price":"10000"}"#
            .to_string(),
        r#"{"type":"trade","ts":3000,"market":"ETH-PERP","buyer":"bob","seller":"alice","size":"2000","price":"500"}"#
            .to_string(),
        r#"{"type":"trade","ts":3000,"market":"SOL-PERP","buyer":"alice","seller":"bob","size":"30000","price":"20"}"#
            .to_string(),
    ]);
    let mut engine = Engine::new(&Config::embedded_default());
    for (i, line) in lines.iter().enumerate() {
        engine.apply_line(i as u64 + 1, line.as_bytes(), &mut Vec::new());
    }
    engine
}

fn bench(c: &mut Criterion) {
    let engine = engine();
    let key = SigningKey::from_bytes(&[2; 32]);
    let statement = statement_from_engine(&engine).unwrap();
    let proven = Proven::new(&statement, &key).unwrap();
    let index = statement.balances.iter().position(|(n, _)| n == "alice").unwrap();
    let leaf = proven.leaf_of(&statement, index).hash;
    let proof = health::prove(&engine, "alice", &proven.root, leaf, &key).unwrap();
    let values = health::range_values(&proof.statement);
    eprintln!(
        "health proof: {} markets, {values} range values of 64 bits, range proof {} bytes, file {} bytes",
        proof.statement.markets.len(),
        proof.range_proof.to_bytes().len(),
        proof.to_json().len()
    );
    let public = key.verifying_key();
    let mut group = c.benchmark_group("health");
    group.sample_size(20);
    group.bench_function("prove_3_positions", |b| {
        b.iter(|| health::prove(&engine, "alice", &proven.root, leaf, &key).unwrap())
    });
    group.bench_function("verify_3_positions", |b| b.iter(|| health::verify(&proof, &proven.root, &public).unwrap()));
    // The reference: the same number of 64-bit values in one plain aggregated proof.
    let pc = PedersenGens::default();
    let bp = BulletproofGens::new(64, values);
    let secrets: Vec<u64> = (0..values as u64).map(|i| i * 1_000_003).collect();
    let blindings: Vec<Scalar> = (0..values as u64).map(|i| Scalar::from(i + 17)).collect();
    let (plain, commitments) =
        RangeProof::prove_multiple(&bp, &pc, &mut Transcript::new(b"plain"), &secrets, &blindings, 64).unwrap();
    eprintln!("plain aggregated proof of {values} x 64 bits: {} bytes", plain.to_bytes().len());
    group.bench_function("plain_dalek_prove_same_bits", |b| {
        b.iter(|| {
            RangeProof::prove_multiple(&bp, &pc, &mut Transcript::new(b"plain"), &secrets, &blindings, 64).unwrap()
        })
    });
    group.bench_function("plain_dalek_verify_same_bits", |b| {
        b.iter(|| plain.verify_multiple(&bp, &pc, &mut Transcript::new(b"plain"), &commitments, 64).unwrap())
    });
    let one = BulletproofGens::new(64, 1);
    let (single, single_commitment) =
        RangeProof::prove_single(&one, &pc, &mut Transcript::new(b"one"), 42, &Scalar::from(5u64), 64).unwrap();
    group.bench_function("plain_dalek_prove_one_64_bit", |b| {
        b.iter(|| {
            RangeProof::prove_single(&one, &pc, &mut Transcript::new(b"one"), 42, &Scalar::from(5u64), 64).unwrap()
        })
    });
    group.bench_function("plain_dalek_verify_one_64_bit", |b| {
        b.iter(|| single.verify_single(&one, &pc, &mut Transcript::new(b"one"), &single_commitment, 64).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

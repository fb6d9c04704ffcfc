//! Proof of liabilities at venue scale: a 1M-account Merkle-sum tree (salts, leaves, levels) on
//! one core, and checking one inclusion proof. Figures: docs/performance.md.

use criterion::{criterion_group, criterion_main, Criterion};
use ed25519_dalek::SigningKey;
use solvent_proofs::liabilities::{leaf, salt, salt_key, Proven, Statement, Tree};
use std::hint::black_box;

const ACCOUNTS: usize = 1_000_000;

fn statement() -> Statement {
    let mut balances: Vec<(String, u128)> =
        (0..ACCOUNTS).map(|i| (format!("acct-{i:07}"), (i as u128 * 7_919 % 100_003) * 10u128.pow(16))).collect();
    balances.sort_unstable();
    Statement { seq: 1, state_hash: [7; 32], balances }
}

fn bench(c: &mut Criterion) {
    let st = statement();
    let key = SigningKey::from_bytes(&[1; 32]);
    let mut group = c.benchmark_group("liabilities");
    group.sample_size(10);
    group.bench_function("build_1m_accounts_salts_leaves_tree", |b| {
        b.iter(|| {
            let skey = salt_key(&key);
            let leaves = st.balances.iter().map(|(n, v)| leaf(n, &salt(&skey, st.seq, n), *v)).collect();
            black_box(Tree::build(leaves).unwrap().root())
        })
    });
    let proven = Proven::new(&st, &key).unwrap();
    let root_text = proven.root.to_json(&key);
    let proof_text = proven.inclusion(&st, 123_456).to_json();
    let public = key.verifying_key();
    group.sample_size(100);
    group.bench_function("verify_one_inclusion_with_root_signature", |b| {
        b.iter(|| {
            let root = solvent_proofs::liabilities::Root::from_json_verified(&root_text, &public).unwrap();
            let proof = solvent_proofs::liabilities::Inclusion::from_json(&proof_text).unwrap();
            proof.verify(&root).unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

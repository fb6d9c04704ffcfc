//! What the effect chain adds to an event and what signing an order costs: one chain link of a
//! liquidation effect (on the engine's path for every effect), one ed25519 order signature and
//! one EIP-712 signature (off it, in `solvent sign`), and checking each.

use criterion::{criterion_group, criterion_main, Criterion};
use ed25519_dalek::SigningKey;
use solvent_core::effect::{chain_link, CHAIN_GENESIS};
use solvent_core::{Effect, EffectKind, Price, Quote, Size};
use solvent_proofs::{eip712, order};
use std::hint::black_box;

fn liquidation() -> Effect {
    Effect::new(
        1_234_567,
        1_700_000_000_000,
        EffectKind::Liquidation {
            account: "acct-0123456".into(),
            market: "BTC-PERP".into(),
            closed_size: Size::from_raw(-150_000_000),
            price: Price::from_raw(950_000_000_000),
            penalty: Quote::from_raw(5_000_000_000_000_000_000),
            full: false,
            equity_before: Quote::from_raw(1_000_000_000_000_000_000_000),
            maintenance_margin_before: Quote::from_raw(1_100_000_000_000_000_000_000),
            equity_after: Quote::from_raw(900_000_000_000_000_000_000),
            maintenance_margin_after: Quote::from_raw(880_000_000_000_000_000_000),
        },
    )
}

fn bench(c: &mut Criterion) {
    let effect = liquidation();
    let key = SigningKey::from_bytes(&[4; 32]);
    let evm = eip712::key(&key).unwrap();
    let (hash, chain) = ([1u8; 32], [2u8; 32]);
    let mut group = c.benchmark_group("orders");
    group.bench_function("chain_link_liquidation", |b| {
        b.iter(|| chain_link(black_box(&CHAIN_GENESIS), black_box(&effect)))
    });
    group.bench_function("ed25519_sign_order", |b| b.iter(|| order::sign(&key, black_box(&effect), &hash, &chain)));
    let signature = order::sign(&key, &effect, &hash, &chain);
    let public = key.verifying_key();
    group.bench_function("ed25519_check_order", |b| {
        b.iter(|| order::check(&public, &effect, &hash, &chain, &signature))
    });
    let digest = eip712::digest(&effect, &hash, &chain).unwrap();
    group.bench_function("eip712_sign_order", |b| {
        b.iter(|| eip712::sign(&evm, &eip712::digest(black_box(&effect), &hash, &chain).unwrap()).unwrap())
    });
    let evm_sig = eip712::sign(&evm, &digest).unwrap();
    group.bench_function("eip712_recover_order", |b| b.iter(|| eip712::recover(black_box(&digest), &evm_sig)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

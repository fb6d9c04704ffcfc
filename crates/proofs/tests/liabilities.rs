//! Proof of liabilities: every account's proof verifies against the signed root; any changed byte
//! of a root or a proof fails; a negative balance cannot enter; sums cannot wrap.

use ed25519_dalek::SigningKey;
use solvent_proofs::liabilities::{fold_path, leaf, parent, prove, Inclusion, Node, Root, Statement, Tree};

fn key() -> SigningKey {
    SigningKey::from_bytes(&[5; 32])
}

fn statement(n: usize) -> Statement {
    let mut balances: Vec<(String, u128)> =
        (0..n).map(|i| (format!("acct-{i:04}"), (i as u128 * 7_919) % 10_007)).collect();
    balances.sort();
    Statement { seq: 42, state_hash: [9; 32], balances }
}

#[test]
fn every_proof_verifies_for_every_tree_shape() {
    for n in 1..=17 {
        let st = statement(n);
        let (root, _, proofs) = prove(&st, &key()).unwrap();
        let text = root.to_json(&key());
        let parsed = Root::from_json_verified(&text, &key().verifying_key()).unwrap();
        assert_eq!(parsed, root);
        assert_eq!(root.total, st.balances.iter().map(|b| b.1).sum::<u128>());
        for proof in &proofs {
            let again = Inclusion::from_json(&proof.to_json()).unwrap();
            assert_eq!(&again, proof);
            again.verify(&parsed).unwrap_or_else(|e| panic!("{n} accounts, {}: {e}", proof.account));
        }
    }
}

#[test]
fn every_byte_of_a_root_and_a_proof_matters() {
    let (root, _, proofs) = prove(&statement(11), &key()).unwrap();
    let root_text = root.to_json(&key());
    let proof_text = proofs[6].to_json();
    let public = key().verifying_key();
    let check = |root_text: &str, proof_text: &str| -> Result<(), String> {
        let root = Root::from_json_verified(root_text, &public)?;
        Inclusion::from_json(proof_text)?.verify(&root)
    };
    check(&root_text, &proof_text).unwrap();
    let mut refused = 0;
    for (which, text) in [("root", &root_text), ("proof", &proof_text)] {
        let body = text.trim_end().as_bytes();
        for i in 0..body.len() {
            for change in [0x01u8, 0x20] {
                let mut changed = body.to_vec();
                changed[i] ^= change;
                let Ok(changed) = String::from_utf8(changed) else { continue };
                let outcome = if which == "root" { check(&changed, &proof_text) } else { check(&root_text, &changed) };
                let error = outcome.expect_err(&format!("{which} byte {i} ^ {change:#x}: {changed}"));
                assert!(error.starts_with(which) || which == "proof", "{which}: {error}");
                refused += 1;
            }
        }
    }
    assert!(refused > 1_000);
}

#[test]
fn a_proof_for_another_root_or_another_account_fails() {
    let (root, _, proofs) = prove(&statement(9), &key()).unwrap();
    let mut other = statement(9);
    other.balances[3].1 += 1;
    let (other_root, _, _) = prove(&other, &key()).unwrap();
    assert!(proofs[0].verify(&other_root).is_err(), "a changed balance elsewhere moves the root");
    let mut moved = proofs[2].clone();
    moved.index = 3;
    assert!(moved.verify(&root).is_err());
    let mut richer = proofs[2].clone();
    richer.balance += 1;
    assert!(richer.verify(&root).unwrap_err().contains("does not lead"));
}

/// The attack a plain Merkle-sum tree with signed or wrapping sums allows: a sibling subtree whose
/// sum is "negative" hides the account's balance. Sums here are unsigned and never wrap, so the
/// total a verifier sees is at least its own balance plus every sibling sum.
#[test]
fn no_negative_leaf_or_wrapping_sum() {
    let salt = [1; 32];
    let mine = leaf("me", &salt, 100);
    let forged_sibling = Node { hash: [2; 32], sum: u128::MAX - 99 }; // -100 mod 2^128
    assert_eq!(parent(&mine, &forged_sibling), None, "a wrapping sum is refused");
    assert!(fold_path(mine, 0, 2, &[(forged_sibling, false)]).unwrap_err().contains("overflows"));
    let huge = Statement { seq: 1, state_hash: [0; 32], balances: vec![("a".into(), u128::MAX), ("b".into(), 1)] };
    assert!(prove(&huge, &key()).is_err(), "the prover refuses a total that does not fit");
    let tree = Tree::build(vec![mine, leaf("you", &salt, 5)]).unwrap();
    assert_eq!(tree.root().sum, 105);
}

#[test]
fn negative_equity_counts_as_zero_and_salts_hide_names() {
    let dump = r#"{"seq":3,"state_hash":"0000000000000000000000000000000000000000000000000000000000000001",
        "accounts":{"bob":{"equity":"-12.5"},"alice":{"equity":"1.25"}}}"#;
    let st = solvent_proofs::liabilities::statement_from_dump(dump).unwrap();
    assert_eq!(st.balances, vec![("alice".to_string(), 12_500_000_000_000_000), ("bob".to_string(), 0)]);
    let (root, _, proofs) = prove(&st, &key()).unwrap();
    assert_eq!(root.total, 12_500_000_000_000_000);
    assert_ne!(proofs[0].salt, proofs[1].salt);
    let mut later = prove(&Statement { seq: 4, ..st }, &key()).unwrap().2;
    assert_ne!(later.remove(0).salt, proofs[0].salt, "salts change with the seq");
}

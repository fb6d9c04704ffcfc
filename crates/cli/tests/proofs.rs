//! `solvent keygen`, `sign`, `verify`, `prove liabilities` and `verify inclusion` end to end on
//! the Black Thursday example: valid files verify; a changed byte names its file and line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn solvent(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_solvent"));
    for arg in args {
        command.arg(arg);
    }
    command.env_remove("SOLVENT_ENGINE_KEY").output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/black_thursday.jsonl")
}

fn keygen(dir: &Path) -> (PathBuf, PathBuf) {
    let out = solvent(&[&"keygen", &"--out", &dir.join("engine")]);
    assert!(out.status.success(), "{}", text(&out));
    let again = solvent(&[&"keygen", &"--out", &dir.join("engine")]);
    assert!(!again.status.success(), "keygen never overwrites a key");
    (dir.join("engine.key"), dir.join("engine.pub"))
}

#[test]
fn sign_then_verify_and_a_changed_byte_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = keygen(dir.path());
    let effects = dir.path().join("effects.jsonl");
    let signed = solvent(&[&"sign", &"--events", &example(), &"--key", &secret, &"--out", &effects]);
    assert!(signed.status.success(), "{}", text(&signed));
    let verify =
        |file: &Path| solvent(&[&"verify", &"--events", &example(), &"--effects", &file, &"--pubkey", &public]);
    let ok = verify(&effects);
    assert!(ok.status.success() && text(&ok).starts_with("ok: 4627 events"), "{}", text(&ok));
    let mut bytes = std::fs::read(&effects).unwrap();
    let line = 3;
    let offset: usize = bytes.split(|&b| b == b'\n').take(line - 1).map(|l| l.len() + 1).sum::<usize>() + 40;
    bytes[offset] ^= 0x01;
    let changed = dir.path().join("changed.jsonl");
    std::fs::write(&changed, &bytes).unwrap();
    let bad = verify(&changed);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains(&format!("changed.jsonl: effects line {line}: ")), "{}", text(&bad));
}

#[test]
fn liabilities_root_and_inclusion() {
    let dir = tempfile::tempdir().unwrap();
    let (_, public) = keygen(dir.path());
    let state = dir.path().join("state.json");
    let replay =
        solvent(&[&"replay", &"--events", &example(), &"--out", &dir.path().join("fx"), &"--state-out", &state]);
    assert!(replay.status.success(), "{}", text(&replay));
    let out = dir.path().join("pol");
    let key = std::fs::read_to_string(dir.path().join("engine.key")).unwrap();
    let mut prove = Command::new(env!("CARGO_BIN_EXE_solvent"));
    prove.args(["prove", "liabilities", "--state"]).arg(&state).arg("--out").arg(&out);
    let missing = prove.env_remove("SOLVENT_ENGINE_KEY").output().unwrap();
    assert!(text(&missing).contains("SOLVENT_ENGINE_KEY"), "no key, a clear message: {}", text(&missing));
    let proved = prove.env("SOLVENT_ENGINE_KEY", key.trim()).output().unwrap();
    assert!(proved.status.success(), "{}", text(&proved));
    let root = out.join("root.json");
    let proof = out.join("inclusion/whale.json");
    let check = |proof: &Path, root: &Path| {
        solvent(&[&"verify", &"inclusion", &"--proof", &proof, &"--root", &root, &"--pubkey", &public])
    };
    let ok = check(&proof, &root);
    assert!(ok.status.success() && text(&ok).starts_with("ok: whale"), "{}", text(&ok));
    for (file, name) in [(&root, "root.json"), (&proof, "whale.json")] {
        let mut bytes = std::fs::read(file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        let changed = dir.path().join(format!("changed-{name}"));
        std::fs::write(&changed, &bytes).unwrap();
        let bad = if name == "root.json" { check(&proof, &changed) } else { check(&changed, &root) };
        assert!(!bad.status.success(), "{name}");
        assert!(text(&bad).contains(&format!("changed-{name}: ")), "{}", text(&bad));
    }
}

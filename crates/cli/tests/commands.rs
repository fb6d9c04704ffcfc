//! One binary: the service's tools are `solvent` commands, and the shell completions and the
//! manual come from the same clap definitions as the parser.

use std::io::Write;
use std::process::{Command, Stdio};

fn solvent(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_solvent"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn solvent");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (output.status.success(), text(output.stdout), text(output.stderr))
}

const COMMANDS: [&str; 9] =
    ["replay", "serve", "token", "export-journal", "completions", "man", "stress", "bench", "config"];

#[test]
fn token_prints_the_hash_the_server_compares() {
    let (ok, out, err) = solvent(&["token"], "s3cret\n");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("token_blake3: {}", solvent_node::auth::hash_token("s3cret")));
    let (ok, out, err) = solvent(&["token", "--generate"], "");
    assert!(ok, "{err}");
    let token = out.lines().next().and_then(|l| l.strip_prefix("token:")).unwrap().trim().to_string();
    assert_eq!(token.len(), 48, "{out}");
    assert!(out.contains(&solvent_node::auth::hash_token(&token)), "{out}");
}

#[test]
fn completions_know_every_command_and_serve_bench() {
    for shell in ["bash", "zsh", "fish"] {
        let (ok, out, err) = solvent(&["completions", shell], "");
        assert!(ok, "{shell}: {err}");
        for command in COMMANDS {
            assert!(out.contains(command), "{shell} completion lacks {command}");
        }
        assert!(out.contains("server-config") && out.contains("single-clients"), "{shell}");
    }
    let (ok, _, err) = solvent(&["completions", "tcsh"], "");
    assert!(!ok && err.contains("invalid value"), "{err}");
}

#[test]
fn the_manual_lists_every_command_and_writes_one_page_each() {
    let (ok, out, err) = solvent(&["man"], "");
    assert!(ok, "{err}");
    let out = out.replace("\\-", "-");
    assert!(out.contains(".TH solvent 1"), "{out}");
    for command in COMMANDS {
        assert!(out.contains(command), "the manual lacks {command}");
    }
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = solvent(&["man", "--out-dir", dir.path().to_str().unwrap()], "");
    assert!(ok, "{err}");
    for page in ["solvent.1", "solvent-serve.1", "solvent-serve-bench.1", "solvent-export-journal.1"] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}");
    }
}

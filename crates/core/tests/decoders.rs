//! Property tests of everything that reads untrusted bytes in the core: the event parser (fast
//! path and field table), `apply_line` on any line, and the configuration loader. Zero panics;
//! a refused line leaves the state hash unchanged. (Coverage-guided fuzzing of the same entry
//! points: `fuzz/`, see docs/security.md.)

use proptest::prelude::*;
use solvent_core::event::ParsedLine;
use solvent_core::{Config, Engine, DEFAULT_CONFIG_TOML};

const VALID_LINES: [&str; 8] = [
    r#"{"type":"deposit","ts":2000,"account":"alice","asset":"USDC","amount":"400000"}"#,
    r#"{"type":"withdraw","ts":2000,"account":"alice","asset":"USDC","amount":"5"}"#,
    r#"{"type":"price","ts":2000,"market":"BTC-PERP","source":"s1","price":"10000","conf":"1"}"#,
    r#"{"type":"trade","ts":2000,"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"1","price":"10000"}"#,
    r#"{"type":"auction_take","ts":2000,"auction":"1","bidder":"alice","size":"1"}"#,
    r#"{"type":"clock","ts":2000}"#,
    r#"{"type":"params","ts":2000,"market":"BTC-PERP","tiers":[{"from":"0","mm_rate":"0.01","penalty_rate":"0.001"}]}"#,
    r#"{"type":"fund_deposit","ts":2000,"amount":"7"}"#,
];

fn engine() -> Engine {
    let mut engine = Engine::new(&Config::embedded_default());
    let mut out = Vec::new();
    for (i, line) in [
        r#"{"type":"clock","ts":1000}"#,
        r#"{"type":"price","ts":1000,"market":"BTC-PERP","source":"s1","price":"10000"}"#,
        r#"{"type":"price","ts":1000,"market":"BTC-PERP","source":"s2","price":"10000"}"#,
        r#"{"type":"price","ts":1000,"market":"BTC-PERP","source":"s3","price":"10000"}"#,
        r#"{"type":"deposit","ts":1000,"account":"bob","asset":"USDC","amount":"100000"}"#,
    ]
    .iter()
    .enumerate()
    {
        engine.apply_line(i as u64 + 1, line.as_bytes(), &mut out);
    }
    engine
}

/// A valid line with `edits` byte edits (replace, insert, delete) at chosen places.
fn mutated(base: &str, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut bytes = base.as_bytes().to_vec();
    for &(at, kind, byte) in edits {
        let at = at % (bytes.len() + 1);
        match kind % 3 {
            0 if at < bytes.len() => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            _ if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_parse_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = ParsedLine::parse(&bytes);
    }

    #[test]
    fn mutated_lines_apply_without_panic_and_refusals_change_nothing(
        which in 0..VALID_LINES.len(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6),
    ) {
        let line = mutated(VALID_LINES[which], &edits);
        let mut engine = engine();
        let before = engine.state_hash();
        let mut out = Vec::new();
        engine.apply_line(100, &line, &mut out);
        if out.iter().any(|e| e.rejection_kind().is_some()) {
            prop_assert_eq!(engine.state_hash(), before, "a refused line changes nothing");
        }
    }

    #[test]
    fn mutated_configs_load_or_refuse_without_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8),
    ) {
        let text = mutated(DEFAULT_CONFIG_TOML, &edits);
        if let Ok(text) = std::str::from_utf8(&text) {
            if let Ok(config) = Config::from_toml(text) {
                let _ = Engine::new(&config); // an accepted config builds an engine
            }
        }
    }

    #[test]
    fn any_text_as_config_is_refused_without_panic(text in "\\PC{0,200}") {
        let _ = Config::from_toml(&text);
    }
}

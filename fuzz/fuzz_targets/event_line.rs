//! Any bytes as an input line: parse, apply to a priced engine; a refusal changes nothing.
#![no_main]
use libfuzzer_sys::fuzz_target;
use solvent_core::{Config, Engine};

fuzz_target!(|data: &[u8]| {
    let mut engine = Engine::new(&Config::embedded_default());
    let mut out = Vec::new();
    for (i, line) in [
        r#"{"type":"clock","ts":1000}"#,
        r#"{"type":"price","ts":1000,"market":"BTC-PERP","source":"s1","price":"10000"}"#,
        r#"{"type":"price","ts":1000,"market":"BTC-PERP","source":"s2","price":"10000"}"#,
        r#"{"type":"price","ts":1000,"market":"BTC-PERP","source":"s3","price":"10000"}"#,
        r#"{"type":"deposit","ts":1000,"account":"alice","asset":"USDC","amount":"100000"}"#,
    ]
    .iter()
    .enumerate()
    {
        engine.apply_line(i as u64 + 1, line.as_bytes(), &mut out);
    }
    let before = engine.state_hash();
    out.clear();
    engine.apply_line(100, data, &mut out);
    if out.iter().any(|e| e.rejection_kind().is_some()) {
        assert_eq!(engine.state_hash(), before);
    }
});

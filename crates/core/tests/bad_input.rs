//! Hostile and malformed input: every line of the corpus gets its typed error through the real
//! `apply_line` path, nothing panics, and the state hash does not move.

use solvent_core::{Config, Effect, Engine};

/// A state with prices, three funded accounts, an open position and an emptied account.
fn base_engine() -> Engine {
    let mut engine = Engine::new(&Config::embedded_default());
    let mut setup: Vec<String> = Vec::new();
    for source in ["s1", "s2", "s3", "s4", "s5"] {
        setup.push(format!(r#"{{"type":"price","ts":1000,"market":"BTC-PERP","source":"{source}","price":"10000"}}"#));
    }
    let rest = [
        r#"{"type":"deposit","ts":2000,"account":"alice","asset":"USDC","amount":"400000"}"#,
        r#"{"type":"deposit","ts":2000,"account":"bob","asset":"USDC","amount":"1000000"}"#,
        r#"{"type":"deposit","ts":2000,"account":"empty","asset":"USDC","amount":"5"}"#,
        r#"{"type":"withdraw","ts":2000,"account":"empty","asset":"USDC","amount":"5"}"#,
        r#"{"type":"trade","ts":3000,"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"300","price":"10000"}"#,
        r#"{"type":"clock","ts":4000}"#,
    ];
    setup.extend(rest.iter().map(|s| s.to_string()));
    for source in ["s1", "s2", "s3", "s4", "s5"] {
        setup.push(format!(r#"{{"type":"price","ts":4000,"market":"BTC-PERP","source":"{source}","price":"10500"}}"#));
    }
    let mut out = Vec::new();
    for (i, line) in setup.iter().enumerate() {
        engine.apply_line(i as u64 + 1, line.as_bytes(), &mut out);
    }
    assert!(out.iter().all(|e| e.rejection_kind().is_none()), "setup must be accepted: {out:?}");
    assert_eq!(engine.markets()[0].mark_price, Some(solvent_core::Price::from_int(10500).unwrap()));
    engine
}

fn corpus() -> Vec<(Vec<u8>, &'static str)> {
    let text: &[(&str, &str)] = &[
        ("{", "invalid_json"),
        ("not json at all", "invalid_json"),
        (r#"{"type":"clock","ts":5000} trailing"#, "invalid_json"),
        ("\u{feff}{\"type\":\"clock\",\"ts\":5000}", "invalid_json"),
        ("[]", "not_an_object"),
        (r#""a string""#, "not_an_object"),
        ("42", "not_an_object"),
        ("{}", "missing_field"),
        (r#"{"type":"teleport","ts":5000}"#, "unknown_type"),
        (r#"{"type":7,"ts":5000}"#, "invalid_field_type"),
        (r#"{"type":"clock","ts":5000,"ts":6000}"#, "duplicate_field"),
        (r#"{"type":"clock","ts":5000,"colour":"red"}"#, "unknown_field"),
        (r#"{"type":"clock","ts":5000,"x\u0000":1}"#, "unknown_field"),
        (r#"{"type":"deposit","ts":5000,"account":"alice","asset":"DOGE","amount":"1"}"#, "unknown_asset"),
        (r#"{"type":"price","ts":5000,"market":"XRP-PERP","source":"s1","price":"1"}"#, "unknown_market"),
        (r#"{"type":"price","ts":5000,"market":"BTC-PERP","source":"s9","price":"1"}"#, "unknown_source"),
        (r#"{"type":"price","ts":4000,"market":"BTC-PERP","source":"s1","price":"10500"}"#, "replayed"),
        (r#"{"type":"price","ts":3999,"market":"BTC-PERP","source":"s1","price":"10500"}"#, "replayed"),
        (r#"{"type":"price","ts":9000,"market":"BTC-PERP","source":"s1","price":"10500"}"#, "future_ts"),
        (r#"{"type":"deposit","ts":5000,"account":"alice","asset":"USDC"}"#, "missing_field"),
        (r#"{"type":"deposit","ts":5000,"account":"alice","asset":"USDC","amount":"0"}"#, "non_positive"),
        (r#"{"type":"deposit","ts":5000,"account":"alice","asset":"USDC","amount":"-5"}"#, "non_positive"),
        (
            r#"{"type":"deposit","ts":5000,"account":"alice","asset":"USDC","amount":"1234567890123456789012345678901234567890"}"#,
            "number_overflow",
        ),
        (r#"{"type":"deposit","ts":5000,"account":"alice","asset":"USDC","amount":"1e6"}"#, "exponent_notation"),
        (r#"{"type":"deposit","ts":5000,"account":"alice","asset":"USDC","amount":"NaN"}"#, "not_a_number"),
        (r#"{"type":"deposit","ts":5000,"account":"alice","asset":"USDC","amount":""}"#, "empty_number"),
        (
            r#"{"type":"deposit","ts":5000,"account":"alice","asset":"USDC","amount":"1.00000000000000001"}"#,
            "too_many_decimals",
        ),
        (r#"{"type":"deposit","ts":5000,"account":"alice","asset":"BTC","amount":"0.000000001"}"#, "too_many_decimals"),
        (r#"{"type":"deposit","ts":5000,"account":"alice","asset":"USDC","amount":100}"#, "invalid_field_type"),
        (r#"{"type":"deposit","ts":5000,"account":"alice","asset":"USDC","amount":"1,000"}"#, "malformed_number"),
        (r#"{"type":"price","ts":5000,"market":"BTC-PERP","source":"s1","price":"--1"}"#, "sign_error"),
        (r#"{"type":"price","ts":5000,"market":"BTC-PERP","source":"s1","price":"+5"}"#, "sign_error"),
        (r#"{"type":"price","ts":5000,"market":"BTC-PERP","source":"s1","price":7900.5}"#, "invalid_field_type"),
        (
            r#"{"type":"price","ts":5000,"market":"BTC-PERP","source":"s1","price":"10000","sig":"zz"}"#,
            "invalid_field_type",
        ),
        (r#"{"type":"clock","ts":-1}"#, "invalid_field_type"),
        (r#"{"type":"clock","ts":"5000"}"#, "invalid_field_type"),
        (r#"{"type":"clock","ts":18446744073709551616}"#, "invalid_field_type"),
        (r#"{"type":"clock","ts":3999}"#, "time_backwards"),
        (r#"{"type":"deposit","ts":5000,"account":"has space","asset":"USDC","amount":"1"}"#, "invalid_id"),
        (r#"{"type":"deposit","ts":5000,"account":"","asset":"USDC","amount":"1"}"#, "invalid_id"),
        (
            r#"{"type":"trade","ts":5000,"market":"BTC-PERP","buyer":"alice","seller":"alice","size":"1","price":"10000"}"#,
            "self_trade",
        ),
        (
            r#"{"type":"trade","ts":5000,"market":"BTC-PERP","buyer":"ghost","seller":"bob","size":"1","price":"10000"}"#,
            "unknown_account",
        ),
        (
            r#"{"type":"trade","ts":5000,"market":"BTC-PERP","buyer":"empty","seller":"bob","size":"1","price":"10000"}"#,
            "insufficient_margin",
        ),
        (
            r#"{"type":"trade","ts":5000,"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"1000","price":"10000"}"#,
            "insufficient_margin",
        ),
        (
            r#"{"type":"trade","ts":5000,"market":"SOL-PERP","buyer":"alice","seller":"bob","size":"1","price":"100"}"#,
            "no_mark_price",
        ),
        (
            r#"{"type":"trade","ts":5000,"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"0","price":"100"}"#,
            "non_positive",
        ),
        (
            r#"{"type":"trade","ts":5000,"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"99999999999","price":"100"}"#,
            "number_overflow",
        ),
        (r#"{"type":"withdraw","ts":5000,"account":"alice","asset":"USDC","amount":"500000"}"#, "insufficient_balance"),
        (
            r#"{"type":"withdraw","ts":5000,"account":"alice","asset":"USDC","amount":"100000"}"#,
            "withdrawal_exceeds_free_collateral",
        ),
        (r#"{"type":"withdraw","ts":5000,"account":"ghost","asset":"USDC","amount":"1"}"#, "unknown_account"),
        (r#"{"type":"auction_take","ts":5000,"auction":"7","bidder":"bob","size":"1"}"#, "unknown_auction"),
        (
            r#"{"type":"collateral_take","ts":5000,"asset":"BTC","bidder":"bob","size":"1"}"#,
            "collateral_holdings_exceeded",
        ),
        (r#"{"type":"collateral_take","ts":5000,"asset":"USDC","bidder":"bob","size":"1"}"#, "not_collateral_asset"),
        (r#"{"type":"collateral_take","ts":5000,"asset":"DOGE","bidder":"bob","size":"1"}"#, "unknown_asset"),
        (r#"{"type":"collateral_take","ts":5000,"asset":"BTC","bidder":"bob","size":"0"}"#, "non_positive"),
        (
            r#"{"type":"collateral_take","ts":5000,"asset":"BTC","bidder":"bob","size":"0.000000001"}"#,
            "too_many_decimals",
        ),
        (r#"{"type":"collateral_take","ts":5000,"asset":"BTC","bidder":"bob"}"#, "missing_field"),
        (
            r#"{"type":"params","ts":5000,"market":"BTC-PERP","tiers":[{"from":"0","mm_rate":"0.05","penalty_rate":"0.01"},{"from":"10","mm_rate":"0.01","penalty_rate":"0.005"}]}"#,
            "invalid_params",
        ),
        (r#"{"type":"params","ts":5000,"market":"BTC-PERP","tier_basis":"notional"}"#, "invalid_params"),
        (r#"{"type":"params","ts":5000,"market":"BTC-PERP","im_factor":"0.5"}"#, "invalid_params"),
        (r#"{"type":"params","ts":5000,"market":"BTC-PERP","quorum":9}"#, "invalid_params"),
        (r#"{"type":"params","ts":5000,"market":"BTC-PERP","tiers":"flat"}"#, "invalid_field_type"),
        (r#"{"type":"params","ts":5000,"market":"NOPE","im_factor":"2"}"#, "unknown_market"),
        (r#"{"type":"params","ts":5000,"market":"BTC-PERP","im_addon_rate":"2"}"#, "params_out_of_bounds"),
        (r#"{"type":"params","ts":5000,"market":"BTC-PERP","oi_cap":"-1"}"#, "params_out_of_bounds"),
        (
            r#"{"type":"params","ts":5000,"market":"BTC-PERP","cliff_ranges":[{"from":"7000","to":"6000"}]}"#,
            "params_out_of_bounds",
        ),
        (r#"{"type":"params","ts":5000,"market":"BTC-PERP","cliff_ranges":[{"from":"1"}]}"#, "invalid_field_type"),
        (r#"{"type":"signal","ts":5000,"name":"funding_rate","value":"high"}"#, "malformed_number"),
        (r#"{"type":"signal","ts":5000,"name":"funding_rate","value":0.5}"#, "invalid_field_type"),
        (r#"{"type":"signal","ts":5000,"name":"funding_rate"}"#, "missing_field"),
        (r#"{"type":"signal","ts":5000,"name":"bad name","value":"1"}"#, "invalid_id"),
        (r#"{"type":"signal","ts":5000,"name":"iv","value":"1","market":"NOPE"}"#, "unknown_market"),
        (r#"{"type":"signal","ts":1,"name":"iv","value":"1"}"#, "time_backwards"),
        (r#"{"type":"margin_model","ts":5000,"account":"nobody","model":"portfolio"}"#, "unknown_account"),
        (r#"{"type":"margin_model","ts":5000,"account":"alice","model":"spread"}"#, "invalid_field_type"),
        (r#"{"type":"margin_model","ts":5000,"account":"alice"}"#, "missing_field"),
        (r#"{"type":"margin_model","ts":5000,"account":"bad name","model":"portfolio"}"#, "invalid_id"),
        (r#"{"type":"asset_status","ts":5000,"asset":"DOGE","status":"normal"}"#, "unknown_asset"),
        (r#"{"type":"asset_status","ts":5000,"asset":"BTC","status":"halted"}"#, "unknown_asset_status"),
        (r#"{"type":"asset_status","ts":5000,"asset":"USDC","status":"depegged"}"#, "invalid_field_type"),
        (r#"{"type":"asset_status","ts":5000,"asset":"BTC"}"#, "missing_field"),
        (r#"{"type":"asset_status","ts":5000,"asset":"bad name","status":"normal"}"#, "invalid_id"),
        (r#"{"type":"asset_status","ts":1,"asset":"BTC","status":"depegged"}"#, "time_backwards"),
        (r#"{"type":"margin_model","ts":1,"account":"alice","model":"portfolio"}"#, "time_backwards"),
        // alice's 300 BTC alone need IM 2 x 0.5 x 16% of 3.15 M under portfolio margin.
        (r#"{"type":"margin_model","ts":5000,"account":"alice","model":"portfolio"}"#, "margin_model_refused"),
        (r#"{"type":"params","ts":5000,"market":"BTC-PERP","pm_buckets":8}"#, "params_out_of_bounds"),
        (r#"{"type":"params","ts":5000,"market":"BTC-PERP","pm_range":"1.5"}"#, "params_out_of_bounds"),
        (r#"{"type":"params","ts":5000,"market":"BTC-PERP","pm_im_factor":"0.5"}"#, "params_out_of_bounds"),
        (r#"{"type":"params","ts":5000,"market":"BTC-PERP","pm_correlation":"-0.1"}"#, "params_out_of_bounds"),
    ];
    let mut corpus: Vec<(Vec<u8>, &'static str)> = text.iter().map(|(l, k)| (l.as_bytes().to_vec(), *k)).collect();
    let long_id =
        format!(r#"{{"type":"deposit","ts":5000,"account":"{}","asset":"USDC","amount":"1"}}"#, "a".repeat(100));
    corpus.push((long_id.into_bytes(), "invalid_id"));
    corpus.push((b"{\"type\":\"clock\",\"ts\":5000,\"x\":\"\xff\xfe\"}".to_vec(), "invalid_utf8"));
    let nested = format!(r#"{{"type":"clock","ts":5000,"x":{}{}}}"#, "[".repeat(1000), "]".repeat(1000));
    corpus.push((nested.into_bytes(), "invalid_json"));
    let mut ten_mb = br#"{"type":"clock","ts":5000,"pad":""#.to_vec();
    ten_mb.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    ten_mb.extend_from_slice(br#""}"#);
    corpus.push((ten_mb, "line_too_long"));
    corpus
}

#[test]
fn every_hostile_line_is_rejected_with_its_kind_and_changes_nothing() {
    let corpus = corpus();
    assert!(corpus.len() >= 30, "the corpus keeps at least 30 lines");
    let mut engine = base_engine();
    let hash_before = engine.state_hash();
    let dump_before = serde_json::to_string(&engine.dump().accounts).unwrap();
    for (i, (line, kind)) in corpus.iter().enumerate() {
        let mut out: Vec<Effect> = Vec::new();
        engine.apply_line(100 + i as u64, line, &mut out);
        let shown = String::from_utf8_lossy(&line[..line.len().min(120)]).into_owned();
        assert_eq!(out.len(), 1, "line {shown}: exactly one effect, got {out:?}");
        let expected_type =
            if matches!(*kind, "unknown_source" | "replayed" | "future_ts") { "oracle_rejected" } else { "rejected" };
        assert_eq!(out[0].type_name(), expected_type, "line {shown}");
        assert_eq!(out[0].rejection_kind(), Some(*kind), "line {shown}: {:?}", out[0].kind);
        assert_eq!(out[0].seq, 100 + i as u64);
        assert_eq!(engine.state_hash(), hash_before, "line {shown} changed the state");
    }
    assert_eq!(serde_json::to_string(&engine.dump().accounts).unwrap(), dump_before);
    // The engine still works after the barrage.
    let mut out = Vec::new();
    engine.apply_line(999, br#"{"type":"deposit","ts":6000,"account":"alice","asset":"USDC","amount":"1"}"#, &mut out);
    assert!(out.is_empty(), "{out:?}");
    assert_ne!(engine.state_hash(), hash_before);
}

#[test]
fn rejected_effect_reports_the_events_own_ts_when_it_parsed() {
    let mut engine = base_engine();
    let mut out = Vec::new();
    engine.apply_line(
        50,
        br#"{"type":"withdraw","ts":7000,"account":"alice","asset":"USDC","amount":"100000"}"#,
        &mut out,
    );
    assert_eq!(out[0].ts, 7000);
    let line = out[0].to_json_line();
    assert!(
        line.starts_with(r#"{"type":"rejected","seq":50,"ts":7000,"error":"withdrawal_exceeds_free_collateral""#),
        "{line}"
    );
}

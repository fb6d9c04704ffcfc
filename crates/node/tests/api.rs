//! The HTTP API on a real (in-process) server over loopback: responses, auth, limits, reads.

mod support;

use serde_json::Value;
use support::*;

fn seed_market(addr: std::net::SocketAddr) {
    for (token, source) in [(ORACLE_S1, "s1"), (ORACLE_S2_S3, "s2"), (ORACLE_S2_S3, "s3")] {
        let (status, body) = post(addr, token, &price(1000, "BTC-PERP", source, "10000"));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["results"][0]["accepted"], true, "{body}");
    }
}

/// The market at 10,000, then alice long 300 BTC on 400,000 against bob (1,000,000).
fn alice_long_300_against_bob(addr: std::net::SocketAddr) {
    seed_market(addr);
    post(addr, TREASURY, &deposit(0, "alice", "400000"));
    post(addr, TREASURY, &deposit(0, "bob", "1000000"));
    let trade =
        r#"{"type":"trade","ts":0,"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"300","price":"10000"}"#;
    let (status, body) = post(addr, MATCHER, trade);
    assert_eq!((status, &body["results"][0]["accepted"]), (200, &Value::Bool(true)), "{body}");
}

#[test]
fn batch_post_answers_each_line_with_seq_outcome_and_effects() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), test_section());
    let addr = server.local_addr();
    let body = [
        deposit(0, "alice", "1000"),
        String::new(),
        r#"{"type":"deposit","ts":0,"account":"alice"}"#.to_string(),
        r#"{"type":"withdraw","ts":0,"account":"alice","asset":"USDC","amount":"5000"}"#.to_string(),
        "not json".to_string(),
    ]
    .join("\n");
    let (status, response) = post(addr, TREASURY, &body);
    assert_eq!(status, 200, "{response}");
    let results = response["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "the blank line gets no result: {response}");
    assert_eq!((results[0]["line"].as_u64(), results[0]["seq"].as_u64()), (Some(1), Some(1)));
    assert_eq!(results[0]["accepted"], true);
    assert_eq!(results[0]["effects"], Value::Array(vec![]));
    assert_eq!((results[1]["line"].as_u64(), results[1]["seq"].clone()), (Some(3), Value::Null));
    assert_eq!(results[1]["error"], "missing_field", "unparseable lines are not journaled");
    assert_eq!(results[2]["seq"].as_u64(), Some(2));
    assert_eq!(results[2]["accepted"], false);
    assert_eq!(results[2]["error"], "insufficient_balance");
    assert_eq!(results[2]["effects"][0]["type"], "rejected");
    assert_eq!(results[2]["effects"][0]["seq"].as_u64(), Some(2));
    assert_eq!(results[3]["error"], "invalid_json");
    assert_eq!((response["accepted"].as_u64(), response["rejected"].as_u64()), (Some(1), Some(3)));
    assert_eq!(response["head_seq"].as_u64(), Some(2));
    assert_eq!(usdc_balance(addr, "alice").as_deref(), Some("1000"));
    server.shutdown().unwrap();
    let (replayed_hash, lines) = replay_journal(dir.path(), None);
    assert_eq!(lines.len(), 2, "the journal holds exactly the parsed events");
    let restarted = start(dir.path(), test_section());
    assert_eq!(state(restarted.local_addr()), (2, replayed_hash));
}

#[test]
fn a_single_pretty_printed_json_event_is_one_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), test_section());
    let body = "{\n  \"type\": \"deposit\",\n  \"ts\": 0,\n  \"account\": \"bob\",\n  \"asset\": \"USDC\",\n  \"amount\": \"7\"\n}\n";
    let (status, response) = post_with(server.local_addr(), Some(TREASURY), body, "application/json");
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["results"][0]["accepted"], true, "{response}");
    assert_eq!(usdc_balance(server.local_addr(), "bob").as_deref(), Some("7"));
}

#[test]
fn missing_wrong_and_wrong_role_tokens_get_401_403_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), test_section());
    let addr = server.local_addr();
    seed_market(addr);
    assert_eq!(post(addr, TREASURY, &deposit(0, "alice", "100")).0, 200);
    let before = state(addr);
    let refused: [(Option<&str>, String, u16); 8] = [
        (None, deposit(0, "alice", "1"), 401),
        (Some("not-a-token"), deposit(0, "alice", "1"), 401),
        (Some(VIEWER), deposit(0, "alice", "1"), 403),
        (Some(ORACLE_S1), deposit(0, "alice", "1"), 403),
        (Some(ORACLE_S1), price(1100, "BTC-PERP", "s2", "10001"), 403),
        (Some(MATCHER), r#"{"type":"params","ts":0,"market":"BTC-PERP","im_factor":"3"}"#.to_string(), 403),
        (Some(BACKSTOP), r#"{"type":"auction_take","ts":0,"auction":"1","bidder":"mm2","size":"1"}"#.to_string(), 403),
        // One forbidden line refuses the whole batch: the allowed deposit is not journaled either.
        (Some(TREASURY), format!("{}\n{}", deposit(0, "alice", "1"), price(1100, "BTC-PERP", "s1", "1")), 403),
    ];
    for (token, body, expected) in refused {
        let (status, response) = post_with(addr, token, &body, "application/x-ndjson");
        assert_eq!(status, expected, "{token:?} {body}: {response}");
        let kind = if expected == 401 { "unauthorized" } else { "forbidden" };
        assert_eq!(response["error"], kind, "{response}");
        assert!(response["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(state(addr), before, "a refused request changes nothing");
    }
    for path in ["/v1/state", "/v1/markets", "/v1/accounts/alice", "/v1/insurance"] {
        assert_eq!(get(addr, None, path).0, 401, "{path} needs a token");
        assert_eq!(get(addr, Some("wrong"), path).0, 401, "{path} needs a valid token");
    }
    assert_eq!(post(addr, ORACLE_S1, &price(1100, "BTC-PERP", "s1", "10001")).0, 200, "bound source is allowed");
}

#[test]
fn reads_health_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), test_section());
    let addr = server.local_addr();
    alice_long_300_against_bob(addr);
    let (status, account) = get(addr, Some(VIEWER), "/v1/accounts/alice");
    assert_eq!(status, 200);
    assert_eq!(account["maintenance_margin"], "162500", "the worked example: {account}");
    assert_eq!(account["positions"]["BTC-PERP"]["size"], "300");
    let (status, missing) = get(addr, Some(VIEWER), "/v1/accounts/nobody");
    assert_eq!((status, &missing["error"]), (404, &Value::from("unknown_account")));
    let (_, markets) = get(addr, Some(MATCHER), "/v1/markets");
    assert_eq!(markets["markets"]["BTC-PERP"]["mark_price"], "10000", "{markets}");
    assert_eq!(markets["markets"]["BTC-PERP"]["open_interest"], "300");
    // alice: 300 long at 10,000 on 400,000: below maintenance under 2,600,000 / 283.75 = 9,163
    // (equity 300 p - 2,600,000 against MM 16.25 p): first at -9%. bob (short) only beyond +26%.
    let (status, map) = get(addr, Some(VIEWER), "/v1/markets/BTC-PERP/liquidation_map?step=0.01&range=0.2");
    assert_eq!(status, 200, "{map}");
    assert_eq!((map["down"].as_array().map(Vec::len), map["up"].as_array().map(Vec::len)), (Some(20), Some(20)));
    let buckets = map["down"].as_array().unwrap();
    let hit: Vec<&Value> = buckets.iter().filter(|b| b["accounts"] != 0).collect();
    assert_eq!(hit.len(), 1, "{map}");
    assert_eq!((&hit[0]["move"], &hit[0]["size"]), (&Value::from("-0.09"), &Value::from("300")), "{map}");
    let (status, error) = get(addr, Some(VIEWER), "/v1/markets/BTC-PERP/liquidation_map?step=0");
    assert_eq!((status, &error["error"]), (400, &Value::from("params_out_of_bounds")));
    let (status, error) = get(addr, Some(VIEWER), "/v1/markets/NOPE/liquidation_map");
    assert_eq!((status, &error["error"]), (404, &Value::from("unknown_market")));
    let (_, insurance) = get(addr, Some(VIEWER), "/v1/insurance");
    assert!(insurance["insurance_fund"].is_string(), "{insurance}");
    let (status, health) = get(addr, None, "/v1/health");
    assert_eq!((status, &health["ready"], health["seq"].as_u64()), (200, &Value::Bool(true), Some(6)));
    let (status, metrics) = get(addr, None, "/metrics");
    let text = metrics.as_str().unwrap_or_default().to_string();
    assert_eq!(status, 200);
    for name in [
        "solvent_events_total",
        "solvent_fsync_latency_seconds_bucket",
        "solvent_apply_latency_seconds",
        "solvent_group_commit_batch_events",
    ] {
        assert!(text.contains(name), "metrics lack {name}:\n{text}");
    }
    assert_eq!(get(addr, None, "/v1/nope").1["error"], "not_found");
    assert_eq!(get(addr, None, "/v1/events").1["error"], "method_not_allowed");
    assert_eq!(get(addr, Some(VIEWER), "/v1/stream").1["error"], "websocket_required");
}

#[test]
fn body_size_event_count_and_rate_limits() {
    let dir = tempfile::tempdir().unwrap();
    let section = ServerSectionBuilder::limits(4096, 3, 2.0);
    let server = start(dir.path(), section);
    let addr = server.local_addr();
    let before = state(addr);
    let big = "x".repeat(5000);
    let (status, body) = post(addr, TREASURY, &big);
    assert_eq!((status, &body["error"]), (413, &Value::from("payload_too_large")));
    let four = (0..4).map(|i| deposit(0, "a", &format!("{}", i + 1))).collect::<Vec<_>>().join("\n");
    let (status, body) = post(addr, TREASURY, &four);
    assert_eq!((status, &body["error"]), (413, &Value::from("too_many_events")));
    // The bucket holds 2 requests at 2/s: the state reads above used the viewer's bucket.
    let (status, body) = post(addr, TREASURY, &deposit(0, "a", "1"));
    assert_eq!((status, &body["error"]), (429, &Value::from("rate_limited")), "{body}");
    assert_eq!(get(addr, Some(VIEWER), "/v1/state").1["seq"].as_u64(), Some(before.0));
}

#[test]
fn a_batch_of_megabytes_is_accepted_up_to_the_configured_limit() {
    let dir = tempfile::tempdir().unwrap();
    let section = solvent_node::ServerSection { max_events_per_request: 40_000, ..test_section() };
    let server = start(dir.path(), section);
    let body = (0..30_000).map(|i| deposit(0, &format!("bulk-account-{:06}", i % 5000), "1")).collect::<Vec<_>>();
    let body = body.join("\n");
    assert!(body.len() > 2 << 20, "above axum's default 2 MiB extractor limit: {} bytes", body.len());
    let (status, response) = post(server.local_addr(), TREASURY, &body);
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["accepted"].as_u64(), Some(30_000));
    assert_eq!(state(server.local_addr()).0, 30_000);
}

/// Small constructors for special server sections.
struct ServerSectionBuilder;

impl ServerSectionBuilder {
    fn limits(max_body_bytes: usize, max_events_per_request: usize, burst: f64) -> solvent_node::ServerSection {
        solvent_node::ServerSection {
            max_body_bytes,
            max_events_per_request,
            rate_limit_per_sec: 0.001,
            rate_limit_burst: burst,
            ..test_section()
        }
    }
}

/// A deposit stamped u64::MAX (or an hour ahead) is refused before it is journaled; the honest
/// event after it is accepted.
#[test]
fn an_event_stamped_ahead_of_the_wall_clock_is_refused_before_journaling() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), test_section());
    let addr = server.local_addr();
    let wall_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    for ts in [u64::MAX, wall_ms + 3_600_000] {
        let (status, response) = post(addr, TREASURY, &deposit(ts, "alice", "1"));
        assert_eq!(status, 200, "{response}");
        assert_eq!(response["results"][0]["error"], "ts_ahead_of_wall_clock", "{response}");
        assert_eq!(response["results"][0]["seq"], Value::Null, "not journaled: {response}");
    }
    let (_, response) = post(addr, TREASURY, &deposit(wall_ms, "alice", "1"));
    assert_eq!(response["results"][0]["accepted"], true, "{response}");
    server.shutdown().unwrap();
    let (_, lines) = replay_journal(dir.path(), None);
    assert_eq!(lines.len(), 1, "only the honest event was journaled");
}

#[test]
fn the_openapi_description_is_served_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), test_section());
    let (status, spec) = get(server.local_addr(), None, "/v1/openapi.json");
    assert_eq!(status, 200, "{spec}");
    assert_eq!(spec, serde_json::from_str::<Value>(solvent_node::http::OPENAPI_JSON).unwrap());
    assert!(spec["paths"]["/v1/accounts/{id}"]["get"].is_object(), "{spec}");
    server.shutdown().unwrap();
}

/// The protocol's book over HTTP: a takeover puts inventory on the protocol's book, and
/// `GET /v1/protocol`, `GET /v1/insurance` and the metrics show its cost basis, its PnL at mark
/// and the net position (fund + inventory PnL - bad debt), from one published view.
#[test]
fn the_protocol_book_is_served_with_its_inventory_and_net_position() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), test_section());
    let addr = server.local_addr();
    alice_long_300_against_bob(addr);
    let (_, book) = get(addr, Some(VIEWER), "/v1/protocol");
    assert_eq!((&book["net_position"], &book["solvent"]), (&Value::from("0"), &Value::Bool(true)), "{book}");
    assert_eq!(book["inventory"], serde_json::json!({}), "no inventory yet: {book}");
    // BTC at 9,000: alice (equity 100,000 < MM 146,250) loses a first 20% chunk, 60 BTC, taken
    // over by the protocol at mark.
    for (ts, level) in [(2_000, "9500"), (3_000, "9000")] {
        assert_eq!(post(addr, ADMIN, &format!(r#"{{"type":"clock","ts":{ts}}}"#)).0, 200);
        for (token, source) in [(ORACLE_S1, "s1"), (ORACLE_S2_S3, "s2"), (ORACLE_S2_S3, "s3")] {
            assert_eq!(post(addr, token, &price(ts, "BTC-PERP", source, level)).0, 200);
        }
    }
    let (status, book) = get(addr, Some(VIEWER), "/v1/protocol");
    assert_eq!(status, 200, "{book}");
    let inventory = &book["inventory"]["BTC-PERP"];
    assert_eq!((&inventory["size"], &inventory["cost_basis"]), (&Value::from("60"), &Value::from("540000")), "{book}");
    assert_eq!((&inventory["mark_price"], &inventory["unrealized_pnl"]), (&Value::from("9000"), &Value::from("0")));
    assert!(inventory["auction"].is_string(), "the inventory is auctioned: {book}");
    let fund = book["insurance_fund"].as_str().unwrap().to_string();
    assert_ne!(fund, "0", "the chunk's penalty went to the fund: {book}");
    assert_eq!((&book["net_position"], &book["solvent"]), (&Value::from(fund.as_str()), &Value::Bool(true)));
    let (_, insurance) = get(addr, Some(VIEWER), "/v1/insurance");
    assert_eq!((&insurance["net_position"], &insurance["bad_debt"]), (&Value::from(fund.as_str()), &Value::from("0")));
    let metrics = get(addr, None, "/metrics").1.as_str().unwrap_or_default().to_string();
    assert!(metrics.contains(r#"solvent_inventory_cost_basis{market="BTC-PERP"} 540000"#), "{metrics}");
    assert!(metrics.contains("solvent_protocol_net_position "), "{metrics}");
}

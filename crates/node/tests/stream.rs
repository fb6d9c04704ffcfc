//! `/v1/stream`: effects from any seq, regenerated from the journal past the in-memory ring, then
//! live, without gaps or duplicates, and resumable.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::*;
use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

fn connect(addr: SocketAddr, from_seq: Option<u64>) -> Socket {
    let query = from_seq.map_or(String::new(), |s| format!("?from_seq={s}"));
    let mut request = format!("ws://{addr}/v1/stream{query}").into_client_request().unwrap();
    request.headers_mut().insert("Authorization", format!("Bearer {VIEWER}").parse().unwrap());
    let (socket, _) = tungstenite::connect(request).expect("websocket handshake");
    if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    }
    socket
}

/// The next JSON message (skipping pings).
fn next_message(socket: &mut Socket) -> Value {
    loop {
        match socket.read().expect("a message within the timeout") {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Effects by seq, as the POST answers reported them.
type Expected = BTreeMap<u64, Value>;

/// Post `rounds` batches mixing deposits (no effects) and withdrawals of unknown accounts (one
/// `rejected` effect each); record the effects of every event that had any.
fn post_rounds(addr: SocketAddr, rounds: usize, expected: &mut Expected) {
    for round in 0..rounds {
        let body = (0..10)
            .map(|i| {
                if (round + i) % 3 == 0 {
                    format!(r#"{{"type":"withdraw","ts":0,"account":"ghost-{i}","asset":"USDC","amount":"1"}}"#)
                } else {
                    deposit(0, "alice", "1")
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let (status, response) = post(addr, TREASURY, &body);
        assert_eq!(status, 200, "{response}");
        for result in response["results"].as_array().unwrap() {
            if !result["effects"].as_array().unwrap().is_empty() {
                expected.insert(result["seq"].as_u64().unwrap(), result["effects"].clone());
            }
        }
    }
}

/// Read `effects` messages until `until_seq` has been seen; returns (seq, effects) in order.
fn read_until(socket: &mut Socket, until_seq: u64) -> Vec<(u64, Value)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while seen.last().is_none_or(|(seq, _)| *seq < until_seq) {
        assert!(Instant::now() < deadline, "stream stalled after {seen:?}");
        let message = next_message(socket);
        if message["kind"] == "effects" {
            seen.push((message["seq"].as_u64().unwrap(), message["effects"].clone()));
        }
    }
    seen
}

#[test]
fn replay_from_seq_1_past_the_ring_then_live_has_no_gaps_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let section = solvent_node::ServerSection { stream_ring_effects: 20, ..test_section() };
    let server = start(dir.path(), section);
    let addr = server.local_addr();
    let mut expected = Expected::new();
    post_rounds(addr, 30, &mut expected);
    let mut socket = connect(addr, Some(1));
    let poster = std::thread::spawn(move || {
        let mut more = Expected::new();
        post_rounds(addr, 30, &mut more);
        more
    });
    let more = poster.join().unwrap();
    expected.extend(more);
    let last = *expected.keys().last().unwrap();
    let seen = read_until(&mut socket, last);
    let seen_seqs: Vec<u64> = seen.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seen_seqs, expected.keys().copied().collect::<Vec<_>>(), "every seq once, in order");
    for (seq, effects) in &seen {
        assert_eq!(effects, &expected[seq], "seq {seq}: regenerated or live effects equal the originals");
    }
}

#[test]
fn a_client_resumes_with_from_seq_and_misses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let section = solvent_node::ServerSection { stream_ring_effects: 15, ..test_section() };
    let server = start(dir.path(), section);
    let addr = server.local_addr();
    let mut expected = Expected::new();
    post_rounds(addr, 10, &mut expected);
    let seqs: Vec<u64> = expected.keys().copied().collect();
    let mut first = connect(addr, Some(1));
    let part_one = read_until(&mut first, seqs[7]);
    first.close(None).unwrap();
    post_rounds(addr, 10, &mut expected);
    let mut second = connect(addr, Some(part_one.last().unwrap().0 + 1));
    let part_two = read_until(&mut second, *expected.keys().last().unwrap());
    let all: Vec<u64> = part_one.iter().chain(&part_two).map(|(seq, _)| *seq).collect();
    assert_eq!(all, expected.keys().copied().collect::<Vec<_>>());
}

#[test]
fn live_only_subscribers_get_caught_up_then_new_effects() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), test_section());
    let addr = server.local_addr();
    let mut expected = Expected::new();
    post_rounds(addr, 2, &mut expected);
    let mut socket = connect(addr, None);
    let caught_up = next_message(&mut socket);
    assert_eq!(caught_up["kind"], "caught_up");
    assert_eq!(caught_up["head_seq"].as_u64(), Some(20));
    let mut later = Expected::new();
    post_rounds(addr, 1, &mut later);
    let seen = read_until(&mut socket, *later.keys().last().unwrap());
    assert_eq!(seen.iter().map(|(s, _)| *s).collect::<Vec<_>>(), later.keys().copied().collect::<Vec<_>>());
    let mut bad = format!("ws://{addr}/v1/stream?from_seq=abc").into_client_request().unwrap();
    bad.headers_mut().insert("Authorization", format!("Bearer {VIEWER}").parse().unwrap());
    assert!(tungstenite::connect(bad).is_err(), "an invalid from_seq is refused before the upgrade");
    let unauthenticated = format!("ws://{addr}/v1/stream").into_client_request().unwrap();
    assert!(tungstenite::connect(unauthenticated).is_err(), "the stream needs a token");
}

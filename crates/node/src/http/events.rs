//! `POST /v1/events`: one event (`Content-Type: application/json`) or a batch as JSON Lines.
//!
//! Every line is parsed first: the token must be allowed to post every parsed event, or the whole
//! request is refused (403) and nothing is journaled. A line that does not parse is answered as
//! rejected with its error kind and no seq (it is not journaled). The other lines are journaled
//! together, and the answer comes only once they are durable: per line its seq, whether it was
//! accepted (or rejected with the engine's stable error kind), and its effects. A line whose `ts`
//! is more than `max_ts_ahead_ms` ahead of the server's wall clock is answered as rejected
//! (`ts_ahead_of_wall_clock`, no seq) and not journaled.

use super::{json_ok, ApiError, App};
use crate::auth::authorize_event;
use crate::stream::SeqEffects;
use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use solvent_core::{Effect, EffectKind, Event};
use std::sync::Arc;

#[derive(Serialize)]
struct LineResult<'a> {
    /// 1-based line number in the request body.
    line: usize,
    seq: Option<u64>,
    accepted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    effects: &'a [Effect],
}

#[derive(Serialize)]
struct PostResponse<'a> {
    head_seq: u64,
    accepted: usize,
    rejected: usize,
    results: Vec<LineResult<'a>>,
}

enum Slot {
    Journaled { line: usize, index: usize },
    Invalid { line: usize, kind: &'static str, message: String },
}

fn is_single_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")))
}

/// Split the body into lines. A single JSON document may span lines: raw newlines cannot occur
/// inside JSON strings, so replacing them with spaces keeps its meaning and makes it one line.
fn body_lines(body: &[u8], single_json: bool) -> Vec<Vec<u8>> {
    if single_json {
        let line: Vec<u8> = body.iter().map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }).collect();
        return vec![line];
    }
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    body.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec()).collect()
}

pub async fn post_events(State(app): State<App>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let token = app.authenticate(&headers)?;
    let limit = app.settings.max_body_bytes;
    let bytes = to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("body exceeds {limit} bytes"))
    })?;
    let lines = body_lines(&bytes, is_single_json(&headers));
    let max_events = app.settings.max_events_per_request;
    if lines.len() > max_events {
        let message = format!("{} lines; at most {max_events} events per request", lines.len());
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_many_events", message));
    }
    let (slots, to_journal) = classify(&app, token, lines)?;
    let outcomes = if to_journal.is_empty() { Vec::new() } else { app.sequencer.submit(to_journal).await? };
    Ok(respond(app.shared.hub.head_seq(), &slots, &outcomes))
}

/// Parse and authorize each line; the lines to journal and where each answer goes.
fn classify(app: &App, token: usize, lines: Vec<Vec<u8>>) -> Result<(Vec<Slot>, Vec<Vec<u8>>), ApiError> {
    let entry = app.auth.token(token);
    let now_ms = wall_clock_ms();
    let mut slots = Vec::with_capacity(lines.len());
    let mut to_journal = Vec::with_capacity(lines.len());
    for (i, line) in lines.into_iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match Event::parse_line(&line) {
            Ok(event) => {
                authorize_event(entry, &event).map_err(|e| {
                    ApiError::new(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        format!("line {}: {e}; nothing was journaled", i + 1),
                    )
                })?;
                if let Some(message) = ahead_of_wall_clock(event.ts(), now_ms, app.settings.max_ts_ahead_ms) {
                    slots.push(Slot::Invalid { line: i + 1, kind: TS_AHEAD_KIND, message });
                    continue;
                }
                slots.push(Slot::Journaled { line: i + 1, index: to_journal.len() });
                to_journal.push(line);
            }
            Err(error) => slots.push(Slot::Invalid { line: i + 1, kind: error.kind(), message: error.to_string() }),
        }
    }
    Ok((slots, to_journal))
}

/// Error kind of an event stamped too far ahead of the server's wall clock.
pub const TS_AHEAD_KIND: &str = "ts_ahead_of_wall_clock";

fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Pure leaf: why an event stamped `ts` is refused at wall clock `now_ms`, if it is. Every event
/// type is checked (a price tick too: the engine bounds it against its own clock, which a
/// hostile clock event would have moved).
pub fn ahead_of_wall_clock(ts: u64, now_ms: u64, max_ts_ahead_ms: u64) -> Option<String> {
    let limit_ms = now_ms.saturating_add(max_ts_ahead_ms);
    (ts > limit_ms).then(|| {
        format!("ts {ts} is more than {max_ts_ahead_ms} ms ahead of the server's wall clock {now_ms}; nothing was journaled")
    })
}

/// The stable error kind and message when the effects report that event `seq` was refused.
fn rejection(seq: u64, effects: &[Effect]) -> Option<(&str, &str)> {
    effects.iter().filter(|e| e.seq == seq).find_map(|e| match &e.kind {
        EffectKind::Rejected { error, message } => Some((error.as_str(), message.as_str())),
        EffectKind::OracleRejected { reason, message, event_refused: true, .. } => {
            Some((reason.as_str(), message.as_str()))
        }
        _ => None,
    })
}

fn respond(head_seq: u64, slots: &[Slot], outcomes: &[Arc<SeqEffects>]) -> Response {
    let mut results = Vec::with_capacity(slots.len());
    for slot in slots {
        let result = match slot {
            Slot::Journaled { line, index } => {
                let outcome = &outcomes[*index];
                let refused = rejection(outcome.seq, &outcome.effects);
                LineResult {
                    line: *line,
                    seq: Some(outcome.seq),
                    accepted: refused.is_none(),
                    error: refused.map(|r| r.0),
                    message: refused.map(|r| r.1),
                    effects: &outcome.effects,
                }
            }
            Slot::Invalid { line, kind, message } => LineResult {
                line: *line,
                seq: None,
                accepted: false,
                error: Some(kind),
                message: Some(message),
                effects: &[],
            },
        };
        results.push(result);
    }
    let accepted = results.iter().filter(|r| r.accepted).count();
    let head_seq = outcomes.iter().map(|o| o.seq).max().unwrap_or(0).max(head_seq);
    json_ok(&PostResponse { head_seq, accepted, rejected: results.len() - accepted, results })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ts_beyond_the_wall_clock_plus_tolerance_is_refused() {
        assert_eq!(ahead_of_wall_clock(1_005, 1_000, 5), None);
        assert!(ahead_of_wall_clock(1_006, 1_000, 5).unwrap().contains("more than 5 ms ahead"));
        assert!(ahead_of_wall_clock(u64::MAX, u64::MAX - 1, 5).is_none(), "no overflow at the top");
        assert!(ahead_of_wall_clock(u64::MAX, 1_000, u64::MAX - 2_000).is_some());
    }

    #[test]
    fn lines_and_single_documents() {
        assert_eq!(body_lines(b"a\r\nb\n", false), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(body_lines(b"{\n \"x\": 1\n}\n", true), vec![b"{  \"x\": 1 } ".to_vec()]);
        assert_eq!(body_lines(b"", false), vec![Vec::<u8>::new()]);
    }
}

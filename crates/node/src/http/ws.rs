//! `GET /v1/stream?from_seq=N`: a WebSocket of effects.
//!
//! Each text message is one JSON object:
//! - `{"kind":"effects","seq":S,"effects":[...]}`: all effects of event S (events without effects
//!   send nothing), in seq order, each seq once;
//! - `{"kind":"caught_up","head_seq":H}`: once, when everything up to H has been sent;
//! - `{"kind":"error","error":"<kind>","message":"...","resume_from_seq":R}`: then the server
//!   closes; reconnect with `from_seq=R` to continue without a gap.
//!
//! Without `from_seq` the stream starts with the next event. Seqs older than the in-memory ring
//! are regenerated from the journal (snapshot + re-application), so any `from_seq >= 1` works.

use super::{ApiError, App};
use crate::stream::{self, SeqEffects, Subscription};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

/// Regenerated effect sets buffered between the journal reader and the socket.
const REGENERATION_BUFFER: usize = 256;

pub async fn stream(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let (headers, by_protocol) = with_protocol_token(headers);
    app.authenticate(&headers)?;
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "websocket_required",
            format!("{rejection}: connect with a WebSocket client"),
        )
    })?;
    let from_seq = match query.get("from_seq") {
        None => None,
        Some(text) => Some(text.parse::<u64>().map_err(|_| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_from_seq", format!("from_seq {text:?} is not an integer"))
        })?),
    };
    let upgrade = if by_protocol { upgrade.protocols([BEARER_PROTOCOL]) } else { upgrade };
    Ok(upgrade.on_upgrade(move |socket| serve_socket(app, socket, from_seq)))
}

/// Browsers cannot set headers on a WebSocket: they may send the token as the second of the
/// subprotocols `bearer, <token>` (`new WebSocket(url, ["bearer", token])`), checked exactly
/// like an `Authorization: Bearer` header (which wins when both are present).
const BEARER_PROTOCOL: &str = "bearer";

fn with_protocol_token(mut headers: HeaderMap) -> (HeaderMap, bool) {
    if headers.contains_key(axum::http::header::AUTHORIZATION) {
        return (headers, false);
    }
    let token = headers.get(axum::http::header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok()).and_then(|v| {
        let mut parts = v.split(',').map(str::trim);
        (parts.next() == Some(BEARER_PROTOCOL)).then(|| parts.next()).flatten().map(str::to_string)
    });
    match token.and_then(|t| axum::http::HeaderValue::from_str(&format!("Bearer {t}")).ok()) {
        Some(value) => {
            headers.insert(axum::http::header::AUTHORIZATION, value);
            (headers, true)
        }
        None => (headers, false),
    }
}

fn effects_message(item: &SeqEffects) -> Message {
    let body = json!({ "kind": "effects", "seq": item.seq, "effects": item.effects });
    Message::Text(body.to_string().into())
}

async fn send_error(socket: &mut WebSocket, kind: &str, message: &str, resume_from_seq: u64) {
    let body = json!({ "kind": "error", "error": kind, "message": message, "resume_from_seq": resume_from_seq });
    let _ = socket.send(Message::Text(body.to_string().into())).await;
    let _ = socket.send(Message::Close(None)).await;
}

/// Sends each seq at most once and in increasing order.
struct Cursor {
    next_seq: u64,
}

impl Cursor {
    async fn send(&mut self, socket: &mut WebSocket, item: &SeqEffects) -> Result<(), ()> {
        if item.seq < self.next_seq {
            return Ok(());
        }
        socket.send(effects_message(item)).await.map_err(|_| ())?;
        self.next_seq = item.seq + 1;
        Ok(())
    }
}

async fn serve_socket(app: App, mut socket: WebSocket, from_seq: Option<u64>) {
    let subscription = app.shared.hub.subscribe(from_seq);
    let mut cursor = Cursor { next_seq: subscription.from_seq };
    let Subscription { regenerate, history, live, head_seq, .. } = subscription;
    if let Some((start, end)) = regenerate {
        if let Err(message) = send_regenerated(&app, &mut socket, &mut cursor, start, end).await {
            send_error(&mut socket, "regeneration_failed", &message, cursor.next_seq).await;
            return;
        }
        cursor.next_seq = cursor.next_seq.max(end);
    }
    for item in &history {
        if cursor.send(&mut socket, item).await.is_err() {
            return;
        }
    }
    cursor.next_seq = cursor.next_seq.max(head_seq + 1);
    let caught_up = json!({ "kind": "caught_up", "head_seq": head_seq }).to_string();
    if socket.send(Message::Text(caught_up.into())).await.is_err() {
        return;
    }
    forward_live(&mut socket, &mut cursor, live, app.stopping.clone()).await;
}

async fn forward_live(
    socket: &mut WebSocket,
    cursor: &mut Cursor,
    mut live: broadcast::Receiver<Arc<SeqEffects>>,
    stopping: tokio::sync::watch::Receiver<bool>,
) {
    let stop = until_stopping(stopping);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => {
                send_error(socket, "shutting_down", "the server is stopping", cursor.next_seq).await;
                return;
            }
            received = live.recv() => match received {
                Ok(item) => {
                    if cursor.send(socket, &item).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let message = "this client fell too far behind the live stream";
                    send_error(socket, "lagged", message, cursor.next_seq).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => {
                    send_error(socket, "shutting_down", "the server is stopping", cursor.next_seq).await;
                    return;
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Resolves once the server starts shutting down.
async fn until_stopping(mut stopping: tokio::sync::watch::Receiver<bool>) {
    loop {
        if *stopping.borrow_and_update() {
            return;
        }
        if stopping.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Re-apply the journal on a blocking thread and forward the effects of `[start, end)`.
async fn send_regenerated(
    app: &App,
    socket: &mut WebSocket,
    cursor: &mut Cursor,
    start: u64,
    end: u64,
) -> Result<(), String> {
    let (sender, mut receiver) = mpsc::channel::<SeqEffects>(REGENERATION_BUFFER);
    let data_dir = app.data_dir.clone();
    let config = app.config.clone();
    let task = tokio::task::spawn_blocking(move || {
        stream::regenerate(&data_dir, &config, start, end, &mut |item| match sender.blocking_send(item) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        })
    });
    while let Some(item) = receiver.recv().await {
        if cursor.send(socket, &item).await.is_err() {
            drop(receiver);
            let _ = task.await;
            return Err("client went away".into());
        }
    }
    match task.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(join) => Err(format!("regeneration task failed: {join}")),
    }
}

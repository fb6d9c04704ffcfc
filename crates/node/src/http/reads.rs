//! Read routes: accounts, markets, insurance fund, state hash, health, metrics.

use super::{json_ok, ApiError, App};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

fn seq_header(mut response: Response, seq: u64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&seq.to_string()) {
        response.headers_mut().insert("x-solvent-seq", value);
    }
    response
}

/// `GET /v1/accounts/{id}`: the account as in the state dump; its seq in `x-solvent-seq`.
pub async fn account(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    app.authenticate(&headers)?;
    let view = app.shared.view.load();
    let seq = view.seq();
    let dump = if view.engine().accounts().len() > INLINE_RANKING_ACCOUNTS {
        tokio::task::spawn_blocking(move || view.account_dump(&id).ok_or(id)).await.map_err(internal)?
    } else {
        view.account_dump(&id).ok_or(id)
    };
    match dump {
        Ok(dump) => Ok(seq_header(json_ok(&dump), seq)),
        Err(id) => {
            let error = solvent_core::Error::UnknownAccount(id);
            Err(ApiError::new(StatusCode::NOT_FOUND, error.kind(), error.to_string()))
        }
    }
}

/// `GET /v1/markets`: `{"seq":..,"markets":{name: market dump}}`.
pub async fn markets(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    app.authenticate(&headers)?;
    let view = app.shared.view.load();
    let engine = view.engine();
    let markets: BTreeMap<&str, _> =
        engine.markets().iter().filter_map(|m| Some((&*m.name, engine.market_dump(&m.name)?))).collect();
    Ok(json_ok(&json!({ "seq": engine.last_seq(), "markets": markets })))
}

/// `GET /v1/markets/{market}/liquidation_map?step=0.005&range=0.5`: the notional that would be
/// liquidated at each price level (`solvent_core::liquidation_map`); a pass over the accounts, so
/// it runs off the async workers. 404 for an unknown market, 400 for a bad `step` or `range`,
/// 409 before the market's first mark.
pub async fn liquidation_map(
    State(app): State<App>,
    headers: HeaderMap,
    Path(market): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    use solvent_core::liquidation_map::{DEFAULT_MAP_RANGE, DEFAULT_MAP_STEP};
    app.authenticate(&headers)?;
    let rate = |name: &'static str, default: solvent_core::Rate| match query.get(name) {
        None => Ok(default),
        Some(text) => solvent_core::Rate::parse(text).map_err(|source| {
            let error = solvent_core::Error::InvalidNumber { field: name.into(), source };
            ApiError::new(StatusCode::BAD_REQUEST, error.kind(), error.to_string())
        }),
    };
    let (step, range) = (rate("step", DEFAULT_MAP_STEP)?, rate("range", DEFAULT_MAP_RANGE)?);
    // From the immutable view of the last published seq, off the async workers: the map is one
    // pass over the accounts, and it never holds up the sequencer.
    let view = app.shared.view.load();
    let computed = tokio::task::spawn_blocking(move || {
        let engine = view.engine();
        (engine.last_seq(), engine.liquidation_map(&market, step, range))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    match computed {
        (seq, Ok(map)) => Ok(seq_header(json_ok(&map), seq)),
        (_, Err(error)) => {
            let status = match error {
                solvent_core::Error::UnknownMarket(_) => StatusCode::NOT_FOUND,
                solvent_core::Error::NoMarkPrice(_) => StatusCode::CONFLICT,
                _ => StatusCode::BAD_REQUEST,
            };
            Err(ApiError::new(status, error.kind(), error.to_string()))
        }
    }
}

/// `GET /v1/insurance`: the insurance fund, fees collected, bad debt and the protocol's net
/// position (decimal strings).
pub async fn insurance(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    app.authenticate(&headers)?;
    let view = app.shared.view.load();
    let engine = view.engine();
    let body = json!({
        "seq": engine.last_seq(),
        "insurance_fund": engine.insurance_fund(),
        "fees_collected": engine.fees_collected(),
        "bad_debt": engine.bad_debt(),
        "net_position": engine.protocol_net_position().ok(),
    });
    Ok(json_ok(&body))
}

/// `GET /v1/protocol`: the protocol's own book from one view: fund, bad debt, fees, the
/// liquidation inventory per market (size, cost basis, entry, mark, notional, unrealized PnL,
/// live auction) and the net position, the headline solvency figure.
pub async fn protocol(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    app.authenticate(&headers)?;
    let view = app.shared.view.load();
    let book = view
        .engine()
        .protocol_book()
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "overflow", "the protocol's book overflows"))?;
    let mut body = serde_json::to_value(&book)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    body["seq"] = json!(view.seq());
    Ok(seq_header(json_ok(&body), view.seq()))
}

/// `GET /v1/state`: seq, engine clock and state hash of the current view (hashing is O(state):
/// done once per view, off the async workers).
pub async fn state(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    app.authenticate(&headers)?;
    let view = app.shared.view.load();
    let hashed = if view.has_state_hash() {
        view
    } else {
        tokio::task::spawn_blocking(move || {
            view.state_hash();
            view
        })
        .await
        .map_err(internal)?
    };
    let engine = hashed.engine();
    let body = json!({
        "seq": hashed.seq(),
        "ts": engine.last_ts(),
        "state_hash": hashed.state_hash(),
        "accounts": engine.accounts().len(),
    });
    Ok(json_ok(&body))
}

/// Books larger than this rank their holders for ADL off the async workers (once per view).
const INLINE_RANKING_ACCOUNTS: usize = 10_000;

fn internal(error: tokio::task::JoinError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", error.to_string())
}

/// `GET /v1/health`: 200 when ready (journal writable), 503 when not; no token needed.
pub async fn health(State(app): State<App>) -> Response {
    let failure = app.shared.journal_failure();
    let body = json!({
        "live": true,
        "ready": failure.is_none(),
        "seq": app.shared.head_seq.load(Ordering::SeqCst),
        "snapshot_seq": app.shared.snapshot_seq.load(Ordering::SeqCst),
        "journal": failure.map_or_else(|| "ok".to_string(), |f| format!("failed: {f}")),
    });
    let status = if body["ready"] == json!(true) { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text format; no token needed (the server listens on loopback).
pub async fn metrics() -> Response {
    match crate::telemetry::metrics_handle() {
        Some(handle) => {
            handle.run_upkeep();
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
        }
        None => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics_unavailable",
            "another metrics recorder is installed",
        )
        .into_response(),
    }
}

/// `GET /v1/dashboard`: what the dashboard shows, from one view: markets (mark, index, frozen,
/// open interest, inventory, every source's status and counters), the fund, fees, bad debt, and
/// the accounts nearest to liquidation.
pub async fn dashboard(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    app.authenticate(&headers)?;
    let view = app.shared.view.load();
    let body = if view.engine().accounts().len() > INLINE_RANKING_ACCOUNTS {
        tokio::task::spawn_blocking(move || dashboard_body(&view)).await.map_err(internal)?
    } else {
        dashboard_body(&view)
    };
    Ok(json_ok(&body))
}

fn dashboard_body(view: &crate::view::View) -> serde_json::Value {
    let engine = view.engine();
    let markets: BTreeMap<&str, _> =
        engine.markets().iter().filter_map(|m| Some((&*m.name, engine.market_dump(&m.name)?))).collect();
    json!({
        "seq": view.seq(),
        "ts": engine.last_ts(),
        "insurance_fund": engine.insurance_fund(),
        "fees_collected": engine.fees_collected(),
        "bad_debt": engine.bad_debt(),
        "protocol": engine.protocol_book().ok(),
        "accounts": engine.accounts().len(),
        "markets": markets,
        "nearest_liquidation": view.nearest_liquidation(),
    })
}

/// `GET /`: the dashboard page (no token: it holds no data; it asks for a viewer token).
pub async fn dashboard_page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], DASHBOARD_HTML)
        .into_response()
}

/// The dashboard: one self-contained page (inline CSS, JS and SVG; no request leaves the server).
pub const DASHBOARD_HTML: &str = include_str!("dashboard/index.html");

//! The HTTP API (axum): routes, shared state, authentication helpers and JSON errors.
//!
//! | route | role | what |
//! | --- | --- | --- |
//! | `POST /v1/events` | per event type | one event (`application/json`) or JSON Lines |
//! | `GET /v1/accounts/{id}` | any token | the state-dump shape of one account |
//! | `GET /v1/markets` | any token | every market as in the state dump |
//! | `GET /v1/markets/{market}/liquidation_map?step=..&range=..` | any token | the market's liquidation map |
//! | `GET /v1/insurance` | any token | insurance fund and fees collected |
//! | `GET /v1/state` | any token | seq, ts and state hash |
//! | `GET /v1/health` | none | liveness and readiness |
//! | `GET /metrics` | none | Prometheus text |
//! | `GET /v1/stream?from_seq=N` | any token | WebSocket of effects, resumable |

mod events;
mod reads;
mod ws;

use crate::auth::{AuthError, Authenticator};
use crate::sequencer::{SequencerHandle, Shared, SubmitError};
use crate::settings::ServerSection;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use solvent_core::Config;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything a handler needs.
pub struct AppState {
    pub sequencer: SequencerHandle,
    pub shared: Arc<Shared>,
    pub auth: Authenticator,
    pub settings: ServerSection,
    pub config: Arc<Config>,
    pub data_dir: PathBuf,
    /// Becomes `true` when the server starts shutting down (open streams then close).
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

pub type App = Arc<AppState>;

pub fn router(app: App) -> Router {
    Router::new()
        .route("/v1/events", post(events::post_events))
        .route("/v1/accounts/{id}", get(reads::account))
        .route("/v1/markets", get(reads::markets))
        .route("/v1/markets/{market}/liquidation_map", get(reads::liquidation_map))
        .route("/v1/insurance", get(reads::insurance))
        .route("/v1/state", get(reads::state))
        .route("/v1/health", get(reads::health))
        .route("/metrics", get(reads::metrics))
        .route("/v1/stream", get(ws::stream))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route; see docs/serve.md for the API")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "wrong method for this route; see docs/serve.md",
    )
}

/// A JSON error: `{"error":"<kind>","message":"..."}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError { status, kind: kind.into(), message: message.into() }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> ApiError {
        let (status, kind) = match &error {
            AuthError::Missing | AuthError::Invalid => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AuthError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AuthError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        };
        ApiError::new(status, kind, error.to_string())
    }
}

impl From<SubmitError> for ApiError {
    fn from(error: SubmitError) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.kind(), error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::counter!(crate::telemetry::HTTP_REJECTIONS_TOTAL, "error" => self.kind.clone()).increment(1);
        let body = serde_json::json!({ "error": self.kind, "message": self.message });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl AppState {
    /// Authenticate and take one request from the token's rate bucket: the token's index.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<usize, ApiError> {
        let header = headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
        let index = self.auth.authenticate(header)?;
        self.auth.check_rate(index)?;
        Ok(index)
    }
}

/// A JSON body with status 200.
pub fn json_ok<T: serde::Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()).into_response(),
    }
}

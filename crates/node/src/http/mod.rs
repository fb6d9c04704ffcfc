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
//! | `GET /v1/dashboard` | any token | what the dashboard shows, from one view |
//! | `GET /` | none | the dashboard page (asks for a viewer token) |
//! | `GET /v1/openapi.json` | none | the OpenAPI description (`openapi.json`), tested against [`routes`] |

mod events;
mod reads;
mod ws;

use crate::auth::{AuthError, Authenticator};
use crate::sequencer::{SequencerHandle, Shared, SubmitError};
use crate::settings::ServerSection;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
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

/// The OpenAPI description served at `/v1/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// Every route: (method, path, handler). The router is built from this list and the test
/// `openapi_describes_every_route` compares it with [`OPENAPI_JSON`], so they cannot drift.
pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<App>)> {
    vec![
        ("post", "/v1/events", post(events::post_events)),
        ("get", "/v1/accounts/{id}", get(reads::account)),
        ("get", "/v1/markets", get(reads::markets)),
        ("get", "/v1/markets/{market}/liquidation_map", get(reads::liquidation_map)),
        ("get", "/v1/insurance", get(reads::insurance)),
        ("get", "/v1/protocol", get(reads::protocol)),
        ("get", "/v1/state", get(reads::state)),
        ("get", "/v1/health", get(reads::health)),
        ("get", "/metrics", get(reads::metrics)),
        ("get", "/v1/stream", get(ws::stream)),
        ("get", "/v1/openapi.json", get(openapi)),
        ("get", "/v1/dashboard", get(reads::dashboard)),
        ("get", "/", get(reads::dashboard_page)),
    ]
}

pub fn router(app: App) -> Router {
    let mut router = Router::new();
    for (_, path, handler) in routes() {
        router = router.route(path, handler);
    }
    router.fallback(not_found).method_not_allowed_fallback(method_not_allowed).with_state(app)
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn openapi_describes_every_route() {
        let spec: serde_json::Value = serde_json::from_str(OPENAPI_JSON).expect("openapi.json is JSON");
        assert_eq!(spec["openapi"], "3.1.0");
        let mut described = BTreeSet::new();
        for (path, item) in spec["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                described.insert((method.clone(), path.clone()));
            }
        }
        let served: BTreeSet<(String, String)> =
            routes().into_iter().map(|(method, path, _)| (method.to_string(), path.to_string())).collect();
        assert_eq!(served.len(), routes().len(), "a route appears twice");
        let undocumented: Vec<_> = served.difference(&described).collect();
        let stale: Vec<_> = described.difference(&served).collect();
        assert!(undocumented.is_empty(), "routes missing from openapi.json: {undocumented:?}");
        assert!(stale.is_empty(), "openapi.json describes routes the server does not have: {stale:?}");
        for (method, path) in &described {
            let operation = &spec["paths"][path][method];
            assert!(operation["summary"].is_string() && operation["responses"].is_object(), "{method} {path}");
            let params: Vec<&str> = path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).collect();
            for name in params {
                let declared = operation["parameters"].as_array().into_iter().flatten();
                assert!(
                    declared.clone().any(|p| p["name"] == name && p["in"] == "path"),
                    "{method} {path}: path parameter {name} not declared"
                );
            }
        }
    }
}

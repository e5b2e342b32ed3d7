//! The daemon's control API: JSON over HTTP/1.1, served on the Unix socket (always) and on a
//! loopback address (`--http`). It starts and stops named recordings, takes marks, and
//! answers with the current figures and the rolling verdict; it never runs anything for a
//! caller. A malformed request gets a 4xx and `{"error": "..."}`. `/metrics` is served on
//! its own listener (`--metrics-listen`). docs/daemon.md documents every route.
use std::time::Duration;

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Path, State, rejection::JsonRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;

use super::hub::{HubError, Shared};

/// Longest mark text, bytes.
pub const MAX_MARK: usize = 1024;
/// Largest request body, bytes.
const MAX_BODY: usize = 16 * 1024;

#[derive(Clone)]
struct Api {
    hub: Shared,
    /// How long `stop` waits for the interval under way to be written.
    stop_wait: Duration,
}

/// An error answer: a status and one sentence.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    pub fn status(&self) -> StatusCode {
        self.0
    }

    pub fn message(&self) -> &str {
        &self.1
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        let status = match &e {
            HubError::BadName(_) => StatusCode::BAD_REQUEST,
            HubError::Open(_) | HubError::Exists(_) => StatusCode::CONFLICT,
            HubError::Unknown(_) => StatusCode::NOT_FOUND,
            HubError::Create { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

fn bad_json(e: JsonRejection) -> ApiError {
    ApiError(e.status(), format!("malformed request: {}", e.body_text()))
}

fn to_json(value: &impl serde::Serialize) -> Result<Json<serde_json::Value>, ApiError> {
    serde_json::to_value(value)
        .map(Json)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

fn locked(api: &Api) -> Result<std::sync::MutexGuard<'_, super::hub::Hub>, ApiError> {
    api.hub.lock().map_err(|_| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the daemon's state is unavailable".into(),
        )
    })
}

/// The control routes (Unix socket and `--http`).
pub fn router(hub: Shared, interval: Duration) -> Router {
    let api = Api {
        hub,
        stop_wait: interval * 2 + Duration::from_secs(5),
    };
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/figures", get(figures))
        .route("/v1/verdict", get(verdict))
        .route("/v1/recordings", post(start))
        .route("/v1/recordings/{name}/stop", post(stop))
        .route("/v1/marks", post(mark))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "no such route (see docs/daemon.md: /v1/status, /v1/figures, /v1/verdict, /v1/recordings, /v1/marks)".into(),
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this route".into())
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}

/// `/metrics` only.
pub fn metrics_router(hub: Shared) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "only /metrics here".into()) })
        .with_state(hub)
}

async fn metrics(State(hub): State<Shared>) -> Response {
    let text = match hub.lock() {
        Ok(h) => h.metrics.encode(),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn status(State(api): State<Api>) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(locked(&api)?.status()))
}

async fn figures(State(api): State<Api>) -> Result<Json<serde_json::Value>, ApiError> {
    locked(&api)?.figures().map(Json).ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "no interval read yet: ask again after the first interval".into(),
        )
    })
}

async fn verdict(State(api): State<Api>) -> Result<Json<serde_json::Value>, ApiError> {
    let hub = locked(&api)?;
    let rolling = hub.rolling().ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "no verdict yet: ask again after the first interval".into(),
        )
    })?;
    to_json(rolling)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    name: String,
}

async fn start(
    State(api): State<Api>,
    body: Result<Json<StartBody>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(body) = body.map_err(bad_json)?;
    let path = locked(&api)?.start(&body.name)?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "name": body.name, "path": path })),
    ))
}

async fn stop(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let rx = locked(&api)?.stop(&name)?;
    match tokio::time::timeout(api.stop_wait, rx).await {
        Ok(Ok(stopped)) => to_json(&stopped),
        _ => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the recording did not end in time: the daemon is stopping or stalled".into(),
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkBody {
    text: String,
}

async fn mark(
    State(api): State<Api>,
    body: Result<Json<MarkBody>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(body) = body.map_err(bad_json)?;
    let text = check_mark(&body.text)?;
    if !locked(&api)?.mark(text.clone()) {
        return Err(ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "more than {} marks wait for the next interval",
                crate::session::MARKS_PER_INTERVAL
            ),
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "text": text })),
    ))
}

/// A mark is one line of at most [`MAX_MARK`] bytes, not blank.
pub fn check_mark(text: &str) -> Result<String, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "a mark needs a text".into(),
        ));
    }
    if text.len() > MAX_MARK {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("a mark is at most {MAX_MARK} bytes ({} given)", text.len()),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "a mark is one line without control characters".into(),
        ));
    }
    Ok(text.to_string())
}

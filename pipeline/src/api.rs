//! The HTTP API: stream status and control, health, and Prometheus metrics.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/healthz` | alive |
//! | GET | `/metrics` | Prometheus text format |
//! | GET | `/api/v1/streams` | every stream's status |
//! | POST | `/api/v1/streams` | add a stream (body: a `[[streams]]` entry as JSON) |
//! | GET | `/api/v1/streams/{id}` | one stream's status |
//! | PUT | `/api/v1/streams/{id}` | change a stream (restarts only it) |
//! | DELETE | `/api/v1/streams/{id}` | stop and remove a stream |

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::config::StreamConfig;
use crate::metrics::Metrics;
use crate::streams::{ManageError, StreamManager, StreamRegistry};

/// Stream definitions are small; anything larger is a mistake or an attack.
const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct ApiState {
    pub registry: StreamRegistry,
    pub manager: StreamManager,
    pub metrics: Metrics,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/streams", get(list_streams).post(add_stream))
        .route(
            "/api/v1/streams/{id}",
            get(get_stream).put(replace_stream).delete(remove_stream),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    ApiError(status, message.into()).into_response()
}

/// An error answer: a status and a message, sent as `{"error": "..."}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl IntoResponse for ManageError {
    fn into_response(self) -> Response {
        let status = match self {
            ManageError::Exists(_) => StatusCode::CONFLICT,
            ManageError::NotFound(_) => StatusCode::NOT_FOUND,
            ManageError::Invalid(_) => StatusCode::BAD_REQUEST,
        };
        error(status, self.to_string())
    }
}

/// A stream definition from a request body, with a JSON error naming what is wrong.
fn stream_body(body: Result<Json<StreamConfig>, JsonRejection>) -> Result<StreamConfig, ApiError> {
    body.map(|Json(config)| config).map_err(|rejection| {
        let status = match rejection {
            JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError(
            status,
            format!("invalid stream definition: {}", rejection.body_text()),
        )
    })
}

async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn list_streams(State(state): State<ApiState>) -> Response {
    Json(json!({ "streams": state.registry.list() })).into_response()
}

async fn get_stream(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    match state.registry.get(&id) {
        Some(status) => Json(status).into_response(),
        None => ManageError::NotFound(id).into_response(),
    }
}

async fn add_stream(
    State(state): State<ApiState>,
    body: Result<Json<StreamConfig>, JsonRejection>,
) -> Response {
    let config = match stream_body(body) {
        Ok(config) => config,
        Err(error) => return error.into_response(),
    };
    let id = config.id.clone();
    match state.manager.add(config).await {
        Ok(()) => (StatusCode::CREATED, Json(state.registry.get(&id))).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn replace_stream(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    body: Result<Json<StreamConfig>, JsonRejection>,
) -> Response {
    let config = match stream_body(body) {
        Ok(config) => config,
        Err(error) => return error.into_response(),
    };
    if config.id != id {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "the body's id `{}` differs from the path's `{id}`",
                config.id
            ),
        );
    }
    match state.manager.replace(config).await {
        Ok(()) => Json(state.registry.get(&id)).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn remove_stream(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    match state.manager.remove(&id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error.into_response(),
    }
}

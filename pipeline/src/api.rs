//! The HTTP API: stream status, health and Prometheus metrics.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::metrics::Metrics;
use crate::streams::StreamRegistry;

#[derive(Clone)]
pub struct ApiState {
    pub registry: StreamRegistry,
    pub metrics: Metrics,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/streams", get(list_streams))
        .route("/api/v1/streams/{id}", get(get_stream))
        .with_state(state)
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
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no stream with id `{id}`") })),
        )
            .into_response(),
    }
}

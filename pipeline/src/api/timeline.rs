//! A camera's timeline: what it recorded, its gaps, tracks, alerts and captions over a time
//! range, each with its clip where there is video (`query::timeline`); and its newest
//! caption, which the console shows on the camera's tile.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/api/v1/streams/{camera}/timeline?start=&end=` | items `{kind, start, end, label, clip?, id?}` sorted by start; RFC 3339 times, default the last hour, at most 24 h |
//! | GET | `/api/v1/streams/{camera}/captions/latest` | the camera's newest caption (`argus.caption.v1`, or null) |

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::json;

use super::error::error;
use super::ApiState;
use crate::query::timeline::TimeRange;

pub(super) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/streams/{camera}/timeline", get(timeline))
        .route(
            "/api/v1/streams/{camera}/captions/latest",
            get(latest_caption),
        )
}

#[derive(serde::Deserialize)]
struct TimelineQuery {
    start: Option<String>,
    end: Option<String>,
}

async fn timeline(
    State(state): State<ApiState>,
    Path(camera): Path<String>,
    query: Result<Query<TimelineQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "the range is ?start=RFC3339&end=RFC3339 (both optional)",
        );
    };
    let range = match TimeRange::parse(query.start.as_deref(), query.end.as_deref(), Utc::now()) {
        Ok(range) => range,
        Err(reason) => return error(StatusCode::BAD_REQUEST, reason),
    };
    if let Some(refusal) = unknown_camera(&state, &camera).await {
        return refusal;
    }
    match state.timeline.read(&camera, range).await {
        Ok(timeline) => Json(timeline).into_response(),
        Err(problem) => unavailable(problem),
    }
}

/// `GET /api/v1/streams/{camera}/captions/latest`.
async fn latest_caption(State(state): State<ApiState>, Path(camera): Path<String>) -> Response {
    if let Some(refusal) = unknown_camera(&state, &camera).await {
        return refusal;
    }
    match state.timeline.latest_caption(&camera).await {
        Ok(caption) => Json(json!({ "camera": camera, "caption": caption })).into_response(),
        Err(problem) => unavailable(problem),
    }
}

fn unavailable(problem: redis::RedisError) -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("Redis is not reachable: {problem}"),
    )
}

/// The 404 (or 503) for a camera that runs nowhere here and has nothing stored, if it is one.
async fn unknown_camera(state: &ApiState, camera: &str) -> Option<Response> {
    if state.registry.get(camera).is_some() {
        return None;
    }
    match state.timeline.has_history(camera).await {
        Ok(true) => None,
        Ok(false) => Some(error(
            StatusCode::NOT_FOUND,
            format!("no stream `{camera}` runs here and nothing is stored for it"),
        )),
        Err(problem) => Some(unavailable(problem)),
    }
}

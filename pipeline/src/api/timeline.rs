//! A camera's timeline: what it recorded, its gaps, tracks, alerts and captions over a time
//! range, each with its clip where there is video (`query::timeline`).
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/api/v1/streams/{camera}/timeline?start=&end=` | items `{kind, start, end, label, clip?, id?}` sorted by start; RFC 3339 times, default the last hour, at most 24 h |

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;

use super::error::error;
use super::ApiState;
use crate::query::timeline::TimeRange;

pub(super) fn router() -> Router<ApiState> {
    Router::new().route("/api/v1/streams/{camera}/timeline", get(timeline))
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
    let unavailable = |problem: redis::RedisError| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Redis is not reachable: {problem}"),
        )
    };
    if state.registry.get(&camera).is_none() {
        match state.timeline.has_history(&camera).await {
            Ok(true) => {}
            Ok(false) => {
                return error(
                    StatusCode::NOT_FOUND,
                    format!("no stream `{camera}` runs here and nothing is stored for it"),
                )
            }
            Err(problem) => return unavailable(problem),
        }
    }
    match state.timeline.read(&camera, range).await {
        Ok(timeline) => Json(timeline).into_response(),
        Err(problem) => unavailable(problem),
    }
}

//! Stream status and control, and the live results.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/api/v1/streams` | every stream's status |
//! | POST | `/api/v1/streams` | add a stream (body: a `[[streams]]` entry as JSON) |
//! | GET | `/api/v1/streams/{id}` | one stream's status |
//! | PUT | `/api/v1/streams/{id}` | change a stream (restarts only it) |
//! | DELETE | `/api/v1/streams/{id}` | stop and remove a stream |
//! | GET | `/api/v1/streams/{id}/thumbnail.jpg` | the latest analysed frame, 320 px wide |
//! | GET | `/api/v1/events` | server-sent events: every result as it is published (`result`) |
//!
//! In scale-out mode (`cluster.enabled`), POST, PUT and DELETE write the camera's definition to
//! the control topic and answer `202 Accepted` with its partition: whichever worker owns that
//! partition runs it. GET lists the streams this worker runs.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::error::{error, ApiError};
use super::ApiState;
use crate::cluster::ClusterError;
use crate::config::StreamConfig;
use crate::stream::{validate, ManageError};

pub(super) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/streams", get(list_streams).post(add_stream))
        .route(
            "/api/v1/streams/{id}",
            get(get_stream).put(replace_stream).delete(remove_stream),
        )
        .route("/api/v1/streams/{id}/thumbnail.jpg", get(thumbnail))
        .route("/api/v1/events", get(events))
}

impl IntoResponse for ClusterError {
    fn into_response(self) -> Response {
        let status = match self {
            ClusterError::Exists(_) => StatusCode::CONFLICT,
            ClusterError::NotFound(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        error(status, self.to_string())
    }
}

/// The answer to a change made through the control topic.
fn accepted(id: &str, partition: i32) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "partition": partition, "placement": "control-topic" })),
    )
        .into_response()
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

async fn thumbnail(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    match state.registry.thumbnail(&id) {
        Some(jpeg) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            jpeg.as_ref().clone(),
        )
            .into_response(),
        None if state.registry.get(&id).is_some() => error(
            StatusCode::NOT_FOUND,
            format!("stream `{id}` has no analysed frame yet"),
        ),
        None => ManageError::NotFound(id).into_response(),
    }
}

/// Server-sent events from the Redis notification channels: one `result` event per published
/// frame result, for the console's live feed (and any other browser client).
async fn events(State(state): State<ApiState>) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures::StreamExt;
    match state.redis.subscribe_results().await {
        Ok(results) => {
            let events = results.map(|(_camera, json)| {
                Ok::<_, std::convert::Infallible>(Event::default().event("result").data(json))
            });
            Sse::new(events)
                .keep_alive(KeepAlive::default())
                .into_response()
        }
        Err(failure) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "live results need Redis, which is unavailable: {}",
                crate::redact::redact_text(&failure.to_string())
            ),
        ),
    }
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
    if let Some(directory) = &state.directory {
        if let Err(error) = validate(&config) {
            return error.into_response();
        }
        return match directory.add(config).await {
            Ok(partition) => accepted(&id, partition),
            Err(error) => error.into_response(),
        };
    }
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
    if let Some(directory) = &state.directory {
        if let Err(error) = validate(&config) {
            return error.into_response();
        }
        return match directory.replace(config).await {
            Ok(partition) => accepted(&id, partition),
            Err(error) => error.into_response(),
        };
    }
    match state.manager.replace(config).await {
        Ok(()) => Json(state.registry.get(&id)).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn remove_stream(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    if let Some(directory) = &state.directory {
        return match directory.remove(&id).await {
            Ok(()) => StatusCode::ACCEPTED.into_response(),
            Err(error) => error.into_response(),
        };
    }
    match state.manager.remove(&id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error.into_response(),
    }
}

//! Each camera's zones and lines, changed while its stream runs, and what it tracks now.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/api/v1/streams/{camera}/zones` | the camera's zones (`origin`: `config` or `api`) |
//! | PUT | `/api/v1/streams/{camera}/zones/{id}` | add or replace a zone (body: `points`, optional `dwell_s`, `classes`) |
//! | DELETE | `/api/v1/streams/{camera}/zones/{id}` | remove a zone added through the API |
//! | GET | `/api/v1/streams/{camera}/lines` | the camera's lines |
//! | PUT | `/api/v1/streams/{camera}/lines/{id}` | add or replace a line (body: `from`, `to`, optional `classes`) |
//! | DELETE | `/api/v1/streams/{camera}/lines/{id}` | remove a line added through the API |
//! | GET | `/api/v1/streams/{camera}/objects` | the latest tracked objects (`argus.objects.v1`, or null), zones and lines: what the console draws |
//!
//! Changes take effect on the next frame the objects stage looks at, without restarting the
//! stream, and are kept in Redis across restarts (`query::zones`). Zones and lines from the
//! configuration are listed but read-only (409): the configuration file stays their truth.
//! A body may repeat the path's `camera` and `id`, as a `[[objects.zones]]` entry has them,
//! but must then agree with it.
//!
//! They are kept whether or not `objects.enabled` is on, so a camera's zones can be drawn
//! before its detector runs; `/objects` then answers `"objects": null`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::error::{error, ApiError};
use super::ApiState;
use crate::objects::book::{BookError, Drawn};
use crate::objects::zones::{LineConfig, ZoneConfig};
use crate::query::zones::ZoneStoreError;

pub(super) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/streams/{camera}/zones", get(list_zones))
        .route(
            "/api/v1/streams/{camera}/zones/{id}",
            axum::routing::put(put_zone).delete(remove_zone),
        )
        .route("/api/v1/streams/{camera}/lines", get(list_lines))
        .route(
            "/api/v1/streams/{camera}/lines/{id}",
            axum::routing::put(put_line).delete(remove_line),
        )
        .route("/api/v1/streams/{camera}/objects", get(latest_objects))
}

/// A zone as a request body: `[[objects.zones]]` with `camera` and `id` optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneBody {
    camera: Option<String>,
    id: Option<String>,
    points: Vec<[f32; 2]>,
    #[serde(default)]
    dwell_s: Option<f64>,
    #[serde(default)]
    classes: Vec<String>,
}

/// A line as a request body: `[[objects.lines]]` with `camera` and `id` optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineBody {
    camera: Option<String>,
    id: Option<String>,
    from: [f32; 2],
    to: [f32; 2],
    #[serde(default)]
    classes: Vec<String>,
}

impl IntoResponse for ZoneStoreError {
    fn into_response(self) -> Response {
        let status = match self {
            ZoneStoreError::Refused(BookError::Invalid(_)) => StatusCode::BAD_REQUEST,
            ZoneStoreError::Refused(BookError::Configured { .. }) => StatusCode::CONFLICT,
            ZoneStoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        error(status, self.to_string())
    }
}

/// The body, or a 400 naming what is wrong with it (413 past the API's body limit).
fn body<T>(kind: &str, body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(body)| body).map_err(|rejection| {
        let status = match rejection {
            JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError(status, format!("invalid {kind}: {}", rejection.body_text()))
    })
}

/// A `camera` or `id` repeated in the body must be the path's.
fn same_as_path(what: &str, path: &str, body: Option<String>) -> Result<(), ApiError> {
    match body {
        Some(body) if body != path => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("the {what} in the path is `{path}` but the body says `{body}`"),
        )),
        _ => Ok(()),
    }
}

/// An answer with a camera's zones, lines and objects. Typed, not `json!`: a `Value` would
/// widen the f32 coordinates to f64 and show 0.2 as 0.20000000298023224.
#[derive(Serialize)]
struct CameraAnswer {
    camera: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    zones: Option<Vec<Drawn<ZoneConfig>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lines: Option<Vec<Drawn<LineConfig>>>,
    /// Only in `/objects`, where null says there is none yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    objects: Option<serde_json::Value>,
}

async fn list_zones(State(state): State<ApiState>, Path(camera): Path<String>) -> Response {
    let drawn = state.zones.book().camera(&camera);
    Json(CameraAnswer {
        camera,
        zones: Some(drawn.zones),
        lines: None,
        objects: None,
    })
    .into_response()
}

async fn list_lines(State(state): State<ApiState>, Path(camera): Path<String>) -> Response {
    let drawn = state.zones.book().camera(&camera);
    Json(CameraAnswer {
        camera,
        zones: None,
        lines: Some(drawn.lines),
        objects: None,
    })
    .into_response()
}

/// `PUT /api/v1/streams/{camera}/zones/{id}`: 200 with the zone as stored.
async fn put_zone(
    State(state): State<ApiState>,
    Path((camera, id)): Path<(String, String)>,
    zone: Result<Json<ZoneBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let zone = body("zone", zone)?;
    same_as_path("camera", &camera, zone.camera)?;
    same_as_path("zone id", &id, zone.id)?;
    let zone = ZoneConfig {
        id,
        camera,
        points: zone.points,
        dwell_s: zone.dwell_s,
        classes: zone.classes,
    };
    match state.zones.put_zone(zone.clone()).await {
        Ok(()) => Ok(Json(zone).into_response()),
        Err(problem) => Ok(problem.into_response()),
    }
}

/// `PUT /api/v1/streams/{camera}/lines/{id}`: 200 with the line as stored.
async fn put_line(
    State(state): State<ApiState>,
    Path((camera, id)): Path<(String, String)>,
    line: Result<Json<LineBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let line = body("line", line)?;
    same_as_path("camera", &camera, line.camera)?;
    same_as_path("line id", &id, line.id)?;
    let line = LineConfig {
        id,
        camera,
        from: line.from,
        to: line.to,
        classes: line.classes,
    };
    match state.zones.put_line(line.clone()).await {
        Ok(()) => Ok(Json(line).into_response()),
        Err(problem) => Ok(problem.into_response()),
    }
}

async fn remove_zone(
    State(state): State<ApiState>,
    Path((camera, id)): Path<(String, String)>,
) -> Response {
    match state.zones.remove_zone(&camera, &id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            format!("camera `{camera}` has no zone `{id}`"),
        ),
        Err(problem) => problem.into_response(),
    }
}

async fn remove_line(
    State(state): State<ApiState>,
    Path((camera, id)): Path<(String, String)>,
) -> Response {
    match state.zones.remove_line(&camera, &id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            format!("camera `{camera}` has no line `{id}`"),
        ),
        Err(problem) => problem.into_response(),
    }
}

/// `GET /api/v1/streams/{camera}/objects`: the camera's latest tracked objects as the objects
/// sink stored them (null before the first detection, or with objects off), and its zones and
/// lines.
async fn latest_objects(State(state): State<ApiState>, Path(camera): Path<String>) -> Response {
    let key = format!("{}:objects:{camera}:latest", state.redis.key_prefix());
    let stored: redis::RedisResult<Option<String>> = async {
        let mut connection = state.redis.connection().await?;
        redis::AsyncCommands::get(&mut connection, key).await
    }
    .await;
    let objects = match stored {
        Ok(stored) => stored.and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok()),
        Err(problem) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Redis is not reachable: {problem}"),
            )
        }
    };
    let drawn = state.zones.book().camera(&camera);
    Json(CameraAnswer {
        camera,
        zones: Some(drawn.zones),
        lines: Some(drawn.lines),
        // Parsed from the sink's text, so its numbers keep their written form.
        objects: Some(objects.unwrap_or(serde_json::Value::Null)),
    })
    .into_response()
}

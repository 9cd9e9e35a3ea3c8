//! Alerts raised on captioned chunks and on tracked objects, and the rules that raise them.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/api/v1/alerts?camera=ID&limit=50` | the camera's newest alerts, newest first |
//! | GET | `/api/v1/alerts/rules` | the rules in force |
//! | POST | `/api/v1/alerts/rules` | add a rule (body: an `[[alerts.rules]]` entry as JSON) |
//! | DELETE | `/api/v1/alerts/rules/{id}` | remove a rule |
//! | POST | `/api/v1/alerts/{id}/ack` | acknowledge an alert (body, optional: `{"by": "...", "note": "..."}`) |
//!
//! An acknowledgement answers 201 with `{"id", "acknowledged": {at, by, note}}` when taken,
//! 200 with the standing one when the alert was acknowledged before (the first stands, and is
//! published once), 404 for an alert not (or no longer) listed, 400 for a malformed id or body.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;

use super::error::{error, ApiError};
use super::ApiState;
use crate::captions::alerts::AlertRule;
use crate::query::alerts::{AckError, AlertBook, RuleError};

pub(super) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/alerts", get(recent_alerts))
        .route(
            "/api/v1/alerts/rules",
            get(list_alert_rules).post(add_alert_rule),
        )
        .route("/api/v1/alerts/rules/{id}", delete(remove_alert_rule))
        .route("/api/v1/alerts/{id}/ack", post(acknowledge))
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AckBody {
    by: Option<String>,
    note: Option<String>,
}

/// `POST /api/v1/alerts/{id}/ack`, `id` being the alert's `message_id`.
async fn acknowledge(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let book = match alert_book(&state) {
        Ok(book) => book,
        Err(error) => return error.into_response(),
    };
    let Ok(alert_id) = uuid::Uuid::parse_str(&id) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("`{id}` is not an alert id (the alert's message_id, a UUID)"),
        );
    };
    let body: AckBody = if body.iter().all(u8::is_ascii_whitespace) {
        AckBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(problem) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("invalid acknowledgement: {problem} (expected {{\"by\": \"...\", \"note\": \"...\"}}, both optional)"),
                )
            }
        }
    };
    match book.acknowledge(alert_id, body.by, body.note).await {
        Ok(acked) => {
            let status = if acked.new {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let answer = json!({ "id": alert_id, "acknowledged": acked.acknowledged });
            (status, Json(answer)).into_response()
        }
        Err(problem @ AckError::Unknown(_)) => error(StatusCode::NOT_FOUND, problem.to_string()),
        Err(problem @ AckError::Invalid(_)) => error(StatusCode::BAD_REQUEST, problem.to_string()),
        Err(problem @ AckError::Redis(_)) => {
            error(StatusCode::SERVICE_UNAVAILABLE, problem.to_string())
        }
    }
}

fn alert_book(state: &ApiState) -> Result<&AlertBook, ApiError> {
    state.alerts.as_ref().ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "alert rules are checked on captioned chunks and tracked objects, and both are off \
             (captions.enabled = false, objects.enabled = false)"
                .into(),
        )
    })
}

/// `GET /api/v1/alerts/rules`: the rules in force (configured and added through the API).
async fn list_alert_rules(State(state): State<ApiState>) -> Response {
    match alert_book(&state) {
        Ok(book) => Json(json!({ "rules": book.alert_rules() })).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `POST /api/v1/alerts/rules` with a rule as in `[[alerts.rules]]`.
async fn add_alert_rule(
    State(state): State<ApiState>,
    body: Result<Json<AlertRule>, JsonRejection>,
) -> Response {
    let book = match alert_book(&state) {
        Ok(book) => book,
        Err(error) => return error.into_response(),
    };
    let rule = match body {
        Ok(Json(rule)) => rule,
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid alert rule: {}", rejection.body_text()),
            )
        }
    };
    let id = rule.id.clone();
    match book.add_alert_rule(rule).await {
        Ok(()) => (StatusCode::CREATED, Json(json!({ "id": id }))).into_response(),
        Err(problem @ RuleError::Invalid(_)) => error(StatusCode::BAD_REQUEST, problem.to_string()),
        Err(problem @ RuleError::Exists(_)) => error(StatusCode::CONFLICT, problem.to_string()),
    }
}

async fn remove_alert_rule(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    match alert_book(&state) {
        Ok(book) if book.remove_alert_rule(&id).await => StatusCode::NO_CONTENT.into_response(),
        Ok(_) => error(StatusCode::NOT_FOUND, format!("no alert rule `{id}`")),
        Err(problem) => problem.into_response(),
    }
}

#[derive(serde::Deserialize)]
struct AlertsQuery {
    camera: String,
    #[serde(default = "default_alerts_limit")]
    limit: usize,
}

fn default_alerts_limit() -> usize {
    50
}

/// `GET /api/v1/alerts?camera=ID&limit=50`: the camera's newest alerts, newest first.
async fn recent_alerts(
    State(state): State<ApiState>,
    query: Result<Query<AlertsQuery>, QueryRejection>,
) -> Response {
    let book = match alert_book(&state) {
        Ok(book) => book,
        Err(error) => return error.into_response(),
    };
    let Ok(Query(query)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "give the camera: /api/v1/alerts?camera=ID[&limit=N]",
        );
    };
    match book
        .recent_alerts(&query.camera, query.limit.min(1000))
        .await
    {
        Ok(alerts) => Json(json!({ "camera": query.camera, "alerts": alerts })).into_response(),
        Err(problem) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Redis is not reachable: {problem}"),
        ),
    }
}

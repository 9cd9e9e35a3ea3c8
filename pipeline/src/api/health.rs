//! Health and metrics, for Kubernetes probes, load balancers and Prometheus.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/healthz` | alive |
//! | GET | `/readyz` | ready: Kafka and Redis answer, models and the moment index loaded (503 names what is not, with the index's `loaded`/`total`) |
//! | GET | `/metrics` | Prometheus text format |

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::ApiState;
use crate::query::moments::MomentSearch;

pub(super) fn router() -> Router<ApiState> {
    Router::new()
        .route("/healthz", get(alive))
        .route("/readyz", get(readiness))
        .route("/metrics", get(metrics))
}

/// [`super::ApiSlot`] answers `/healthz` with this too, from the first moment of a start.
pub(super) async fn alive() -> &'static str {
    "ok\n"
}

/// Ready when the broker and Redis answer; the models are loaded before the API starts.
/// Argus keeps analysing while either is away (results wait on disk or in the retry buffer),
/// so this only tells a load balancer or Kubernetes where results are flowing now.
async fn readiness(State(state): State<ApiState>) -> Response {
    let timeout = std::time::Duration::from_secs(2);
    let (kafka, redis) = tokio::join!(
        state.kafka.broker_reachable(timeout),
        tokio::time::timeout(timeout, state.redis.ping())
    );
    let redis = match redis {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no answer within 2 s".to_string()),
    };
    let index_loading = state.moments.as_ref().and_then(MomentSearch::loading);
    let moment_index = match (&state.moments, index_loading) {
        (None, _) => json!("disabled"),
        (Some(_), None) => json!("ok"),
        (Some(_), Some((loaded, total))) => {
            json!({ "loading": true, "loaded": loaded, "total": total })
        }
    };
    let ready = kafka.is_ok() && redis.is_ok() && index_loading.is_none();
    let describe = |result: &Result<(), String>| match result {
        Ok(()) => "ok".to_string(),
        Err(error) => crate::redact::redact_text(error),
    };
    let body = json!({
        "ready": ready,
        "kafka": describe(&kafka),
        "redis": describe(&redis),
        "models": "ok",
        "moment_index": moment_index,
        "kafka_spilled_messages": state.kafka.spilled(),
        "redis_pending_writes": state.redis.pending(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
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

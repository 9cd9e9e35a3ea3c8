//! The HTTP API: stream status and control, health, and Prometheus metrics.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/` | the operator console (stream grid, live results) |
//! | GET | `/healthz` | alive |
//! | GET | `/readyz` | ready: Kafka and Redis answer, models and the moment index loaded (503 names what is not, with the index's `loaded`/`total`) |
//! | GET | `/metrics` | Prometheus text format |
//! | GET | `/api/v1/streams` | every stream's status |
//! | POST | `/api/v1/streams` | add a stream (body: a `[[streams]]` entry as JSON) |
//! | GET | `/api/v1/streams/{id}` | one stream's status |
//! | PUT | `/api/v1/streams/{id}` | change a stream (restarts only it) |
//! | DELETE | `/api/v1/streams/{id}` | stop and remove a stream |
//! | GET | `/api/v1/streams/{id}/thumbnail.jpg` | the latest analysed frame, 320 px wide |
//! | GET, PUT, DELETE | `/api/v1/streams/{id}/zones[/{zone}]`, `/lines[/{line}]` | the camera's zones and lines (`zones`) |
//! | GET | `/api/v1/streams/{id}/objects` | the latest tracked objects, zones and lines |
//! | GET | `/api/v1/streams/{id}/timeline?start=&end=` | recorded spans, gaps, tracks, alerts and captions over a range, with clip links (`timeline`) |
//! | GET | `/api/v1/events` | server-sent events: every result as it is published (`result`) |
//! | GET | `/api/v1/moments?q=TEXT` | moments matching a text query (`camera`, `since`, `until`, `limit`, `rerank=true`) |
//! | POST | `/api/v1/moments/by-image` | moments that look like the image in the body (same filters) |
//! | GET | `/api/v1/moments/cameras` | indexed cameras, their window counts and time spans |
//! | GET | `/api/v1/moments/thumbnails/{camera}/{start_ms}.jpg` | a window's thumbnail |
//! | GET | `/api/v1/moments/clip?camera=…&start_ms=…&end_ms=…` | redirects (308) to `/api/v1/clips` (kept for old links) |
//! | GET, HEAD | `/api/v1/clips?camera=…&start=…&end=…` | the video of any recorded span (MP4, remuxed; `Range` → 206) |
//!
//! Each resource has its own router in its own module, whose documentation lists its routes
//! (`health`, `console`, `streams`, `zones`, `timeline`, `moments`, `questions`, `alerts`,
//! `clips`); [`router`] merges them
//! and applies the access guard, the body limit and CORS once, to all of them.
//!
//! Access (tokens, rate limit, CORS) is in [`crate::access`]: changes need the API token.
//!
//! In scale-out mode (`cluster.enabled`), POST, PUT and DELETE write the camera's definition to
//! the control topic and answer `202 Accepted` with its partition: whichever worker owns that
//! partition runs it. GET lists the streams this worker runs.

mod alerts;
mod clips;
mod console;
mod error;
mod health;
mod moments;
mod questions;
mod streams;
mod timeline;
mod zones;

use std::sync::{Arc, OnceLock};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower::ServiceExt;

use crate::access::{self, Access};
use crate::cluster::peers::Peers;
use crate::cluster::CameraDirectory;
use crate::metrics::Metrics;
use crate::publish::{KafkaPublisher, RedisState};
use crate::query::alerts::AlertBook;
use crate::query::clips::Clips;
use crate::query::moments::MomentSearch;
use crate::query::questions::Questions;
use crate::query::timeline::TimelineReader;
use crate::query::zones::ZoneStore;
use crate::stream::{StreamManager, StreamRegistry};

/// Stream definitions are small; anything larger is a mistake or an attack.
const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct ApiState {
    pub registry: StreamRegistry,
    pub manager: StreamManager,
    pub metrics: Metrics,
    /// Set in scale-out mode: stream changes go to the control topic.
    pub directory: Option<CameraDirectory>,
    /// Set in scale-out mode: moment queries go to every worker.
    pub peers: Option<Peers>,
    pub kafka: KafkaPublisher,
    pub redis: RedisState,
    pub access: Access,
    pub cors_origins: Vec<String>,
    /// Unset when `moments.enabled` is false.
    pub moments: Option<MomentSearch>,
    /// Unset when `captions.enabled` is false.
    pub questions: Option<Questions>,
    /// Unset when `captions.enabled` and `objects.enabled` are both false: rules are checked
    /// on captioned chunks and on tracked objects.
    pub alerts: Option<AlertBook>,
    /// Each camera's zones and lines (configured, and drawn through the API).
    pub zones: ZoneStore,
    /// Clips of recorded spans.
    pub clips: Clips,
    /// Each camera's timeline (recordings, gaps, tracks, alerts, captions).
    pub timeline: TimelineReader,
}

/// The HTTP server as it runs from the first moment of a start, before the models are loaded
/// and the moment index is read: Kubernetes probes and users get an answer at once.
/// `/healthz` answers `ok`; everything else answers 503 "starting" until [`ApiSlot::install`]
/// hands over the full API, which then serves every request.
#[derive(Clone, Default)]
pub struct ApiSlot(Arc<OnceLock<Router>>);

impl ApiSlot {
    pub fn install(&self, api: Router) {
        if self.0.set(api).is_err() {
            tracing::warn!("the API was installed twice; the first one stays");
        }
    }

    /// Serve this with `into_make_service_with_connect_info::<SocketAddr>()`; the client
    /// address reaches the full API's rate limit through the request's extensions.
    pub fn router(&self) -> Router {
        let slot = self.clone();
        Router::new()
            .route("/healthz", get(health::alive))
            .fallback(move |request: Request| {
                let slot = slot.clone();
                async move {
                    match slot.0.get() {
                        Some(api) => match api.clone().oneshot(request).await {
                            Ok(response) => response,
                            Err(never) => match never {},
                        },
                        None => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            Json(json!({
                                "ready": false,
                                "error": "Argus is starting: loading models and connecting to Kafka and Redis",
                            })),
                        )
                            .into_response(),
                    }
                }
            })
    }
}

/// The API; serve it with `into_make_service_with_connect_info::<SocketAddr>()` (the rate
/// limit is per client address).
pub fn router(state: ApiState) -> Router {
    // Merged, not nested: every sub-router names its full paths, as the access guard and the
    // path constants it shares with `access` and `moments::search` do, and nesting would
    // strip the prefix from the URI its handlers see.
    let router = Router::new()
        .merge(health::router())
        .merge(console::router())
        .merge(streams::router())
        .merge(moments::router())
        .merge(questions::router())
        .merge(alerts::router())
        .merge(zones::router())
        .merge(clips::router())
        .merge(timeline::router())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.access.clone(),
            access::guard,
        ));
    let router = match access::cors(&state.cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.with_state(state)
}

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
//! | GET | `/api/v1/events` | server-sent events: every result as it is published (`result`) |
//! | GET | `/api/v1/moments?q=TEXT` | moments matching a text query (`camera`, `since`, `until`, `limit`, `rerank=true`) |
//! | POST | `/api/v1/moments/by-image` | moments that look like the image in the body (same filters) |
//! | GET | `/api/v1/moments/cameras` | indexed cameras, their window counts and time spans |
//! | GET | `/api/v1/moments/thumbnails/{camera}/{start_ms}.jpg` | a window's thumbnail |
//! | GET | `/api/v1/moments/clip?camera=…&start_ms=…&end_ms=…` | a moment's video (WebM), from recordings |
//!
//! Access (tokens, rate limit, CORS) is in [`crate::access`]: changes need the API token.
//!
//! In scale-out mode (`cluster.enabled`), POST, PUT and DELETE write the camera's definition to
//! the control topic and answer `202 Accepted` with its partition: whichever worker owns that
//! partition runs it. GET lists the streams this worker runs.

use std::sync::{Arc, OnceLock};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower::ServiceExt;

use crate::access::{self, Access};
use crate::captions::alerts::AlertRule;
use crate::captions::questions::{QuestionError, QuestionRequest};
use crate::captions::{Captioner, RuleError};
use crate::cluster::{CameraDirectory, ClusterError};
use crate::config::StreamConfig;
use crate::metrics::Metrics;
use crate::moments::query::{FilterRequest, QueryError};
use crate::moments::search::{SearchAnswer, SearchError};
use crate::moments::MomentSearch;
use crate::publish::{KafkaPublisher, RedisState};
use crate::streams::{validate, ManageError, StreamManager, StreamRegistry};

/// Stream definitions are small; anything larger is a mistake or an attack.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Query images: a full-HD JPEG is well under this.
const MAX_IMAGE_BYTES: usize = 8 * 1024 * 1024;

#[derive(Clone)]
pub struct ApiState {
    pub registry: StreamRegistry,
    pub manager: StreamManager,
    pub metrics: Metrics,
    /// Set in scale-out mode: stream changes go to the control topic.
    pub directory: Option<CameraDirectory>,
    pub kafka: KafkaPublisher,
    pub redis: RedisState,
    pub access: Access,
    pub cors_origins: Vec<String>,
    /// Unset when `moments.enabled` is false.
    pub moments: Option<MomentSearch>,
    /// Unset when `captions.enabled` is false.
    pub captions: Option<Captioner>,
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
            .route("/healthz", get(|| async { "ok\n" }))
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
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/", get(console_page))
        .route("/console.js", get(console_script))
        .route("/console.css", get(console_style))
        .route("/api/v1/events", get(events))
        .route("/api/v1/streams/{id}/thumbnail.jpg", get(thumbnail))
        .route("/api/v1/moments", get(moments_by_text))
        .route(
            access::SEARCH_BY_IMAGE_PATH,
            axum::routing::post(moments_by_image).layer(DefaultBodyLimit::max(MAX_IMAGE_BYTES)),
        )
        .route("/api/v1/moments/cameras", get(moment_cameras))
        .route(access::QUESTIONS_PATH, axum::routing::post(ask_question))
        .route("/api/v1/alerts", get(recent_alerts))
        .route(
            "/api/v1/alerts/rules",
            get(list_alert_rules).post(add_alert_rule),
        )
        .route(
            "/api/v1/alerts/rules/{id}",
            axum::routing::delete(remove_alert_rule),
        )
        .route(crate::moments::search::CLIP_PATH, get(moment_clip))
        .route(
            "/api/v1/moments/thumbnails/{camera}/{file}",
            get(moment_thumbnail),
        )
        .route("/readyz", get(readiness))
        .route("/metrics", get(metrics))
        .route("/api/v1/streams", get(list_streams).post(add_stream))
        .route(
            "/api/v1/streams/{id}",
            get(get_stream).put(replace_stream).delete(remove_stream),
        )
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

/// The console is three static files compiled into the binary; the page may load scripts,
/// styles and images from Argus only.
const CONSOLE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn console_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONSOLE_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn console_page() -> Response {
    console_file(
        "text/html; charset=utf-8",
        include_str!("../../console/index.html"),
    )
}

async fn console_script() -> Response {
    console_file(
        "text/javascript; charset=utf-8",
        include_str!("../../console/console.js"),
    )
}

async fn console_style() -> Response {
    console_file(
        "text/css; charset=utf-8",
        include_str!("../../console/console.css"),
    )
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
                crate::ingest::redact_text(&failure.to_string())
            ),
        ),
    }
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
        Err(error) => crate::ingest::redact_text(error),
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

/// Filters and options of a moment query, from the query string.
#[derive(serde::Deserialize)]
struct MomentParams {
    q: Option<String>,
    /// One camera, or several separated by commas.
    camera: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    /// Re-score the best moments with the LLM (text queries; slower: about a second per
    /// query on a CPU).
    #[serde(default)]
    rerank: bool,
}

impl MomentParams {
    fn filters(&self) -> FilterRequest {
        FilterRequest {
            cameras: self
                .camera
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(str::to_owned)
                .collect(),
            since: self.since.clone(),
            until: self.until.clone(),
        }
    }
}

impl IntoResponse for SearchError {
    fn into_response(self) -> Response {
        let status = match &self {
            SearchError::Query(QueryError::UnknownCamera(_)) => StatusCode::NOT_FOUND,
            SearchError::Query(QueryError::TooLong(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            SearchError::Query(QueryError::BadImage(_)) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            SearchError::Query(_) => StatusCode::BAD_REQUEST,
            SearchError::NoClip(_) => StatusCode::NOT_FOUND,
            SearchError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            SearchError::Loading { loaded, total } => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "2")],
                    Json(json!({
                        "error": self.to_string(),
                        "loading": { "loaded": loaded, "total": total },
                    })),
                )
                    .into_response()
            }
            SearchError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        error(status, self.to_string())
    }
}

impl IntoResponse for QuestionError {
    fn into_response(self) -> Response {
        let status = match &self {
            QuestionError::Empty | QuestionError::BadRange(_) => StatusCode::BAD_REQUEST,
            QuestionError::TooLong(_) => StatusCode::PAYLOAD_TOO_LARGE,
            QuestionError::UnknownCamera(_) => StatusCode::NOT_FOUND,
            QuestionError::OutsideVideo { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            QuestionError::Disabled | QuestionError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            QuestionError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "question failed");
        }
        error(status, self.to_string())
    }
}

/// `POST /api/v1/questions` `{"camera", "question", "from"?, "to"?}`: the answer, after
/// self-correction when the controller asked for it; `answers` holds every published
/// revision, the first one first.
async fn ask_question(
    State(state): State<ApiState>,
    body: Result<Json<QuestionRequest>, JsonRejection>,
) -> Response {
    let Some(captions) = &state.captions else {
        return QuestionError::Disabled.into_response();
    };
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => {
            let status = match rejection {
                JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            return error(
                status,
                format!("invalid question: {}", rejection.body_text()),
            );
        }
    };
    match captions.ask(request).await {
        Ok(answers) => {
            let last = answers.last().expect("at least one answer");
            Json(json!({
                "text": last.text,
                "revision": last.revision,
                "missing": last.missing,
                "answers": answers,
            }))
            .into_response()
        }
        Err(error) => error.into_response(),
    }
}

fn captioner(state: &ApiState) -> Result<&Captioner, ApiError> {
    state.captions.as_ref().ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "alert rules are checked on captioned chunks (captions.enabled = false)".into(),
        )
    })
}

/// `GET /api/v1/alerts/rules`: the rules in force (configured and added through the API).
async fn list_alert_rules(State(state): State<ApiState>) -> Response {
    match captioner(&state) {
        Ok(captions) => Json(json!({ "rules": captions.alert_rules() })).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `POST /api/v1/alerts/rules` with a rule as in `[[alerts.rules]]`.
async fn add_alert_rule(
    State(state): State<ApiState>,
    body: Result<Json<AlertRule>, JsonRejection>,
) -> Response {
    let captions = match captioner(&state) {
        Ok(captions) => captions,
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
    match captions.add_alert_rule(rule).await {
        Ok(()) => (StatusCode::CREATED, Json(json!({ "id": id }))).into_response(),
        Err(problem @ RuleError::Invalid(_)) => error(StatusCode::BAD_REQUEST, problem.to_string()),
        Err(problem @ RuleError::Exists(_)) => error(StatusCode::CONFLICT, problem.to_string()),
    }
}

async fn remove_alert_rule(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    match captioner(&state) {
        Ok(captions) if captions.remove_alert_rule(&id).await => {
            StatusCode::NO_CONTENT.into_response()
        }
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
    let captions = match captioner(&state) {
        Ok(captions) => captions,
        Err(error) => return error.into_response(),
    };
    let Ok(Query(query)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "give the camera: /api/v1/alerts?camera=ID[&limit=N]",
        );
    };
    match captions
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

fn moment_search(state: &ApiState) -> Result<&MomentSearch, ApiError> {
    state.moments.as_ref().ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the moment index is disabled (moments.enabled = false)".into(),
        )
    })
}

fn moment_params(
    params: Result<Query<MomentParams>, QueryRejection>,
) -> Result<MomentParams, ApiError> {
    params.map(|Query(params)| params).map_err(|rejection| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("invalid moment query: {}", rejection.body_text()),
        )
    })
}

fn search_answer(answer: Result<SearchAnswer, SearchError>) -> Response {
    match answer {
        Ok(answer) => Json(answer).into_response(),
        Err(error) => {
            if matches!(error, SearchError::Internal(_)) {
                tracing::error!(%error, "moment query failed");
            }
            error.into_response()
        }
    }
}

async fn moments_by_text(
    State(state): State<ApiState>,
    params: Result<Query<MomentParams>, QueryRejection>,
) -> Response {
    let (search, params) = match (moment_search(&state), moment_params(params)) {
        (Ok(search), Ok(params)) => (search, params),
        (Err(error), _) | (_, Err(error)) => return error.into_response(),
    };
    let text = params.q.as_deref().unwrap_or("");
    search_answer(
        search
            .by_text(text, &params.filters(), params.limit, params.rerank)
            .await,
    )
}

async fn moments_by_image(
    State(state): State<ApiState>,
    params: Result<Query<MomentParams>, QueryRejection>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let (search, params) = match (moment_search(&state), moment_params(params)) {
        (Ok(search), Ok(params)) => (search, params),
        (Err(error), _) | (_, Err(error)) => return error.into_response(),
    };
    if params.rerank {
        // Said, not ignored: the LLM reads text evidence, which an image query has none of.
        return error(
            StatusCode::BAD_REQUEST,
            "rerank applies to text queries only",
        );
    }
    let image = match body {
        Ok(image) => image,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the image is larger than {} MiB", MAX_IMAGE_BYTES >> 20),
            )
        }
    };
    search_answer(
        search
            .by_image(&image, &params.filters(), params.limit)
            .await,
    )
}

#[derive(serde::Deserialize)]
struct ClipParams {
    camera: String,
    start_ms: i64,
    end_ms: i64,
}

async fn moment_clip(
    State(state): State<ApiState>,
    params: Result<Query<ClipParams>, QueryRejection>,
) -> Response {
    let search = match moment_search(&state) {
        Ok(search) => search,
        Err(error) => return error.into_response(),
    };
    let params = match params {
        Ok(Query(params)) => params,
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid clip request: {}", rejection.body_text()),
            )
        }
    };
    match search
        .clip(&params.camera, params.start_ms, params.end_ms)
        .await
    {
        Ok(webm) => (
            [
                (header::CONTENT_TYPE, "video/webm"),
                (header::CACHE_CONTROL, "max-age=3600"),
            ],
            webm,
        )
            .into_response(),
        Err(error) => {
            if matches!(error, SearchError::Internal(_)) {
                tracing::error!(%error, "clip failed");
            }
            error.into_response()
        }
    }
}

async fn moment_cameras(State(state): State<ApiState>) -> Response {
    match moment_search(&state) {
        Ok(search) => Json(json!({ "cameras": search.coverage() })).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn moment_thumbnail(
    State(state): State<ApiState>,
    Path((camera, file)): Path<(String, String)>,
) -> Response {
    let search = match moment_search(&state) {
        Ok(search) => search,
        Err(error) => return error.into_response(),
    };
    let Some(start_ms) = file
        .strip_suffix(".jpg")
        .and_then(|start| start.parse::<i64>().ok())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {start_ms}.jpg, the window's start in milliseconds",
        );
    };
    match search.store.thumbnail(&camera, start_ms).await {
        Ok(Some(jpeg)) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "max-age=86400"),
            ],
            jpeg,
        )
            .into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no thumbnail for camera `{camera}` at {start_ms}"),
        ),
        Err(failure) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("thumbnails need Redis, which is unavailable: {failure}"),
        ),
    }
}

//! Searching the moment index: by text, by image, and the windows' thumbnails and clips.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/api/v1/moments?q=TEXT` | moments matching a text query (`camera`, `since`, `until`, `limit`, `rerank=true`) |
//! | POST | `/api/v1/moments/by-image` | moments that look like the image in the body (same filters; reads: the read token suffices) |
//! | GET | `/api/v1/moments/cameras` | indexed cameras, their window counts and time spans |
//! | GET | `/api/v1/moments/thumbnails/{camera}/{start_ms}.jpg` | a window's thumbnail |
//! | GET | `/api/v1/moments/clip?camera=…&start_ms=…&end_ms=…` | redirects (308) to `/api/v1/clips` (links given before it existed) |
//!
//! In scale-out (`cluster.enabled`), each worker indexes the cameras it runs, and the three
//! queries above cover every worker's cameras: the worker asked passes them on to the others
//! (`cluster::peers`) and merges the answers, saying which workers answered (`workers`) and
//! whether any did not (`partial`). `scope=local` asks for this worker's cameras only.

use axum::extract::rejection::QueryRejection;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, OriginalUri, Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::DateTime;
use serde_json::json;

use super::error::{error, ApiError};
use super::ApiState;
use crate::access;
use crate::cluster::peers::{self, PeerRequest, Peers};
use crate::moments::query::{FilterRequest, QueryError};
use crate::query::moments::MomentSearch;
use crate::query::moments::{SearchAnswer, SearchError};
use crate::recordings::clip_link;

/// Where moments' clips were served before `/api/v1/clips`: `?camera=…&start_ms=…&end_ms=…`.
const OLD_CLIP_PATH: &str = "/api/v1/moments/clip";

/// Query images: a full-HD JPEG is well under this.
const MAX_IMAGE_BYTES: usize = 8 * 1024 * 1024;

pub(super) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/moments", get(moments_by_text))
        .route(
            access::SEARCH_BY_IMAGE_PATH,
            post(moments_by_image).layer(DefaultBodyLimit::max(MAX_IMAGE_BYTES)),
        )
        .route("/api/v1/moments/cameras", get(moment_cameras))
        .route(
            "/api/v1/moments/thumbnails/{camera}/{file}",
            get(moment_thumbnail),
        )
        .route(OLD_CLIP_PATH, get(moment_clip))
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
    /// `local`: this worker's cameras only; `cluster` (the default): every worker's.
    #[serde(default)]
    scope: Scope,
}

#[derive(serde::Deserialize, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Scope {
    Local,
    #[default]
    Cluster,
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

fn moment_search(state: &ApiState) -> Result<&MomentSearch, ApiError> {
    state.moments.as_ref().ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the moment index is disabled (moments.enabled = false)".into(),
        )
    })
}

fn moment_params<T>(params: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
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

/// The other workers to ask as well, unless the query is for this worker's cameras only.
fn peers_to_ask<'a>(state: &'a ApiState, scope: &Scope) -> Option<&'a Peers> {
    state.peers.as_ref().filter(|_| *scope == Scope::Cluster)
}

/// This worker's answer merged with the other workers' (asked at the same time). A camera
/// unknown here is no error while another worker knows it; a failure of this worker's own
/// search is.
async fn with_peers(
    peers: &Peers,
    own: impl std::future::Future<Output = Result<SearchAnswer, SearchError>>,
    request: PeerRequest,
    limit: usize,
) -> Response {
    let started = Instant::now();
    let (own, theirs) = tokio::join!(own, peers.ask_others(&request));
    let took_ms = started.elapsed().as_secs_f64() * 1e3;
    let own = match own {
        Ok(answer) => serde_json::to_value(answer).expect("an answer serialises"),
        Err(SearchError::Query(QueryError::UnknownCamera(camera))) => {
            let known_elsewhere = theirs
                .iter()
                .any(|answer| matches!(&answer.reply, Ok((status, _)) if status.is_success()));
            if !known_elsewhere {
                return search_answer(Err(QueryError::UnknownCamera(camera).into()));
            }
            json!({ "moments": [], "candidates": 0, "method": "exact" })
        }
        Err(error) => return search_answer(Err(error)),
    };
    let mut merged = peers::merge_moments(peers.url(), own, took_ms, theirs, limit);
    merged["took_ms"] = json!(started.elapsed().as_secs_f64() * 1e3);
    Json(merged).into_response()
}

fn peer_request(
    method: Method,
    uri: &OriginalUri,
    headers: HeaderMap,
    body: Option<axum::body::Bytes>,
) -> PeerRequest {
    PeerRequest {
        method,
        path_and_query: uri
            .0
            .path_and_query()
            .map_or_else(|| uri.0.path().to_owned(), |p| p.as_str().to_owned()),
        headers,
        body,
    }
}

async fn moments_by_text(
    State(state): State<ApiState>,
    uri: OriginalUri,
    headers: HeaderMap,
    params: Result<Query<MomentParams>, QueryRejection>,
) -> Response {
    let (search, params) = match (moment_search(&state), moment_params(params)) {
        (Ok(search), Ok(params)) => (search, params),
        (Err(error), _) | (_, Err(error)) => return error.into_response(),
    };
    let text = params.q.as_deref().unwrap_or("");
    let filters = params.filters();
    let own = search.by_text(text, &filters, params.limit, params.rerank);
    match peers_to_ask(&state, &params.scope) {
        Some(peers) => {
            let request = peer_request(Method::GET, &uri, headers, None);
            with_peers(peers, own, request, params.limit.unwrap_or(10)).await
        }
        None => search_answer(own.await),
    }
}

async fn moments_by_image(
    State(state): State<ApiState>,
    uri: OriginalUri,
    headers: HeaderMap,
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
    let filters = params.filters();
    let own = search.by_image(&image, &filters, params.limit);
    match peers_to_ask(&state, &params.scope) {
        Some(peers) => {
            let request = peer_request(Method::POST, &uri, headers, Some(image.clone()));
            with_peers(peers, own, request, params.limit.unwrap_or(10)).await
        }
        None => search_answer(own.await),
    }
}

#[derive(serde::Deserialize)]
struct ClipParams {
    camera: String,
    start_ms: i64,
    end_ms: i64,
    access_token: Option<String>,
}

/// Old clip links (in stored answers and bookmarks) go to `/api/v1/clips`, which serves
/// every span; the read token given in the link goes along.
async fn moment_clip(params: Result<Query<ClipParams>, QueryRejection>) -> Response {
    let params = match params {
        Ok(Query(params)) => params,
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid clip request: {}", rejection.body_text()),
            )
        }
    };
    let time = |ms: i64| DateTime::from_timestamp_millis(ms).ok_or(ms);
    let (start, end) = match (time(params.start_ms), time(params.end_ms)) {
        (Ok(start), Ok(end)) => (start, end),
        (Err(ms), _) | (_, Err(ms)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("{ms} is not a time in Unix milliseconds"),
            )
        }
    };
    let mut location = clip_link(&params.camera, start, end);
    if let Some(token) = params.access_token {
        location.push('&');
        location.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .append_pair("access_token", &token)
                .finish(),
        );
    }
    Redirect::permanent(&location).into_response()
}

#[derive(serde::Deserialize)]
struct CamerasParams {
    #[serde(default)]
    scope: Scope,
}

async fn moment_cameras(
    State(state): State<ApiState>,
    uri: OriginalUri,
    headers: HeaderMap,
    params: Result<Query<CamerasParams>, QueryRejection>,
) -> Response {
    let (search, params) = match (moment_search(&state), moment_params(params)) {
        (Ok(search), Ok(params)) => (search, params),
        (Err(error), _) | (_, Err(error)) => return error.into_response(),
    };
    let own = json!({ "cameras": search.coverage() });
    match state
        .peers
        .as_ref()
        .filter(|_| params.scope == Scope::Cluster)
    {
        Some(peers) => {
            let theirs = peers
                .ask_others(&peer_request(Method::GET, &uri, headers, None))
                .await;
            Json(peers::merge_cameras(peers.url(), own, theirs)).into_response()
        }
        None => Json(own).into_response(),
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
            format!("the thumbnail could not be read: {failure}"),
        ),
    }
}

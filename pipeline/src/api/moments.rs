//! Searching the moment index: by text, by image, and the windows' thumbnails and clips.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/api/v1/moments?q=TEXT` | moments matching a text query (`camera`, `since`, `until`, `limit`, `rerank=true`) |
//! | POST | `/api/v1/moments/by-image` | moments that look like the image in the body (same filters; reads: the read token suffices) |
//! | GET | `/api/v1/moments/cameras` | indexed cameras, their window counts and time spans |
//! | GET | `/api/v1/moments/thumbnails/{camera}/{start_ms}.jpg` | a window's thumbnail |
//! | GET | `/api/v1/moments/clip?camera=…&start_ms=…&end_ms=…` | redirects (308) to `/api/v1/clips` (links given before it existed) |

use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::DateTime;
use serde_json::json;

use super::error::{error, ApiError};
use super::ApiState;
use crate::access;
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
            format!("the thumbnail could not be read: {failure}"),
        ),
    }
}

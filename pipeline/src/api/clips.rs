//! Clips of any span of a camera's video.
//!
//! | method | path | |
//! |---|---|---|
//! | GET, HEAD | `/api/v1/clips?camera=…&start=…&end=…` | the video of `[start, end)` (RFC 3339 or Unix milliseconds): MP4 remuxed from the recording, or WebM for a recorded file whose codec MP4 cannot hold; `Range` requests answer `206` |
//!
//! Errors: `400` for a malformed time, an empty or reversed span, or one longer than
//! `record.max_clip_s`; `404` for an unknown camera, or a known one without video there
//! (the reason: not recorded, deleted by retention, a gap).

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::error::error;
use super::ApiState;
use crate::query::clips::ClipRequestError;
use crate::recordings::CLIPS_PATH;

pub(super) fn router() -> Router<ApiState> {
    Router::new().route(CLIPS_PATH, get(clip))
}

#[derive(serde::Deserialize)]
struct ClipParams {
    camera: Option<String>,
    start: Option<String>,
    end: Option<String>,
}

impl IntoResponse for ClipRequestError {
    fn into_response(self) -> Response {
        let status = match &self {
            ClipRequestError::Reversed { .. } | ClipRequestError::TooLong { .. } => {
                StatusCode::BAD_REQUEST
            }
            ClipRequestError::UnknownCamera(_) | ClipRequestError::NoVideo { .. } => {
                StatusCode::NOT_FOUND
            }
            ClipRequestError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ClipRequestError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        error(status, self.to_string())
    }
}

/// RFC 3339 (`2026-12-07T10:00:00Z`), or Unix milliseconds.
fn parse_time(name: &str, value: Option<&str>) -> Result<DateTime<Utc>, String> {
    let value = value.ok_or_else(|| format!("`{name}` is missing"))?;
    if let Ok(time) = DateTime::parse_from_rfc3339(value) {
        return Ok(time.with_timezone(&Utc));
    }
    value
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| {
            format!(
                "`{name}` = `{value}` is not a time: give RFC 3339 (2026-12-07T10:00:00Z) or \
                 Unix milliseconds"
            )
        })
}

async fn clip(State(state): State<ApiState>, request: Request) -> Response {
    let params = match Query::<ClipParams>::try_from_uri(request.uri()) {
        Ok(Query(params)) => params,
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid clip request: {}", rejection.body_text()),
            )
        }
    };
    let Some(camera) = params.camera.filter(|c| !c.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "`camera` is missing");
    };
    let (start, end) = match (
        parse_time("start", params.start.as_deref()),
        parse_time("end", params.end.as_deref()),
    ) {
        (Ok(start), Ok(end)) => (start, end),
        (Err(message), _) | (_, Err(message)) => return error(StatusCode::BAD_REQUEST, message),
    };
    let file = match state.clips.clip(&camera, start, end).await {
        Ok(file) => file,
        Err(refused) => return refused.into_response(),
    };
    // tower-http serves the file: Range (206, Content-Range, 416), If-Range, HEAD,
    // Last-Modified, which a `<video>` needs to seek.
    let response = match ServeFile::new(&file.path).oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if response.status() == StatusCode::NOT_FOUND {
        // The cache pruned it between the cut and now: rare, and a retry cuts it again.
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the clip was evicted from the clip cache while being served; retry",
        );
    }
    let mut response = response.map(axum::body::Body::new);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.content_type),
    );
    // A span still being recorded can grow: kept briefly, then revalidated (Last-Modified).
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=60"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc_3339_or_unix_milliseconds() {
        let expected = DateTime::from_timestamp_millis(1_796_637_600_250).unwrap();
        assert_eq!(
            parse_time("start", Some("2026-12-07T10:00:00.250Z")),
            Ok(expected)
        );
        assert_eq!(
            parse_time("start", Some("2026-12-07T11:00:00.250+01:00")),
            Ok(expected)
        );
        assert_eq!(parse_time("start", Some("1796637600250")), Ok(expected));
        let wrong = parse_time("end", Some("yesterday")).unwrap_err();
        assert!(
            wrong.contains("`end` = `yesterday` is not a time"),
            "{wrong}"
        );
        assert_eq!(
            parse_time("end", None).unwrap_err(),
            "`end` is missing".to_owned()
        );
    }
}

//! Who may call the HTTP API, and how often.
//!
//! - Calls that change something (`POST`, `PUT`, `DELETE`, …) need `Authorization: Bearer
//!   <http.api_token>`; with no token configured they are refused, so a fresh install cannot be
//!   reconfigured by whoever reaches its port.
//! - Reading `/api/…` is open unless `http.read_token` is set; then it needs that token (or
//!   the API token), in the header or as `?access_token=` (for the console's feed and images). `/healthz`, `/readyz` and `/metrics` stay open for probes and Prometheus.
//! - Each client address gets `http.rate_limit_per_second` requests to `/api/…` (bursts of
//!   twice that); more are answered `429` with `Retry-After`.
//! - Cross-origin browser calls are allowed only from `http.cors_origins` (none by default).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::json;
use subtle::ConstantTimeEq;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::HttpConfig;

/// The access rules of one Argus; cheap to clone.
#[derive(Clone)]
pub struct Access {
    api_token: Option<String>,
    read_token: Option<String>,
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl Access {
    pub fn new(config: &HttpConfig) -> Self {
        let per_second = NonZeroU32::new(config.rate_limit_per_second.max(1)).expect("at least 1");
        let burst = NonZeroU32::new(config.rate_limit_per_second.max(1).saturating_mul(2))
            .expect("at least 1");
        let limiter = Arc::new(RateLimiter::keyed(
            Quota::per_second(per_second).allow_burst(burst),
        ));
        // Forget idle clients now and then, so the table stays as small as the active set.
        let cleaned = Arc::downgrade(&limiter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(limiter) = cleaned.upgrade() else {
                    return;
                };
                limiter.retain_recent();
            }
        });
        let token = |value: &Option<String>| value.clone().filter(|t| !t.is_empty());
        Self {
            api_token: token(&config.api_token),
            read_token: token(&config.read_token),
            limiter,
        }
    }

    /// The bearer token of a request; reads may also pass it as `?access_token=` because
    /// browsers' `EventSource` and `<img>` cannot set headers.
    fn presented(request: &Request) -> Option<String> {
        let header = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if let Some(token) = header {
            return Some(token.to_owned());
        }
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            return None;
        }
        url::form_urlencoded::parse(request.uri().query()?.as_bytes())
            .find(|(key, _)| key == "access_token")
            .map(|(_, value)| value.into_owned())
    }

    fn matches(expected: &Option<String>, presented: Option<&str>) -> bool {
        match (expected, presented) {
            (Some(expected), Some(presented)) => {
                expected.as_bytes().ct_eq(presented.as_bytes()).into()
            }
            _ => false,
        }
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let mut response = (status, Json(json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// POSTs that only read (a search by image, a question about the video): they need the
/// read token, not the API token.
pub const SEARCH_BY_IMAGE_PATH: &str = "/api/v1/moments/by-image";
pub const QUESTIONS_PATH: &str = "/api/v1/questions";

/// Middleware: rate limit and tokens for `/api/…`.
pub async fn guard(
    State(access): State<Access>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    if let Err(not_until) = access.limiter.check_key(&client.ip()) {
        let wait = not_until
            .wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ))
            .as_secs()
            .max(1);
        let mut response = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests from this address (http.rate_limit_per_second)",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return response;
    }
    let presented = Access::presented(&request);
    let presented = presented.as_deref();
    // A search by image and a question send a POST body, but read.
    let reading = matches!(*request.method(), Method::GET | Method::HEAD)
        || (request.method() == Method::POST
            && [SEARCH_BY_IMAGE_PATH, QUESTIONS_PATH].contains(&request.uri().path()));
    if reading {
        let open = access.read_token.is_none();
        if open
            || Access::matches(&access.read_token, presented)
            || Access::matches(&access.api_token, presented)
        {
            return next.run(request).await;
        }
        return refuse(
            StatusCode::UNAUTHORIZED,
            "reading the API needs `Authorization: Bearer <http.read_token>`",
        );
    }
    if access.api_token.is_none() {
        return refuse(
            StatusCode::FORBIDDEN,
            "changes through the API are disabled: set http.api_token (ARGUS_HTTP__API_TOKEN)",
        );
    }
    if Access::matches(&access.api_token, presented) {
        return next.run(request).await;
    }
    if Access::matches(&access.read_token, presented) {
        return refuse(
            StatusCode::FORBIDDEN,
            "the read token cannot change anything",
        );
    }
    refuse(
        StatusCode::UNAUTHORIZED,
        "this call needs `Authorization: Bearer <http.api_token>`",
    )
}

/// CORS: browsers may call the API from `origins` only; none by default (no CORS headers).
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
    )
}

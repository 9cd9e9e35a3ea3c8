//! API access: tokens for changes and (optionally) for reading, a per-client rate limit, CORS
//! closed unless configured, and secrets that never show.

use std::time::Duration;

use argus_e2e::*;

fn request(
    method: &str,
    url: &str,
    token: Option<&str>,
    origin: Option<&str>,
) -> (u16, ureq::http::HeaderMap) {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    if let Some(token) = token {
        builder = builder.header("Authorization", format!("Bearer {token}"));
    }
    if let Some(origin) = origin {
        builder = builder
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST");
    }
    let body = if method == "POST" {
        r#"{"id": "sec", "uri": "test:smpte?width=160&height=120&fps=2", "sample_fps": 0.5}"#
    } else {
        ""
    };
    let request = builder
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .unwrap();
    let response = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .run(request)
        .expect("the API answers");
    (response.status().as_u16(), response.headers().clone())
}

fn start(dir: &std::path::Path, http_extra: &str, name: &str) -> (Argus, String) {
    let services = services();
    let http_port = free_port();
    let text = format!(
        "streams = []\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n{http_extra}\n\
         [kafka]\nbrokers = \"{}\"\n[kafka.topics]\nframe_results = \"{topic}\"\nstream_events = \"{topic}.events\"\n\
         [kafka.spill]\npath = \"{}\"\n[redis]\nurl = \"{}\"\nkey_prefix = \"{}\"\n",
        services.kafka_brokers,
        dir.join("kafka-spill.redb").display(),
        services.redis_url,
        unique("argus-test"),
        topic = unique("argus.test.security"),
    );
    let config = dir.join("argus.toml");
    std::fs::write(&config, text).unwrap();
    let http = format!("http://127.0.0.1:{http_port}");
    let argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join(format!("security.{name}.argus.log")),
        http.clone(),
    );
    wait_until(Duration::from_secs(60), "the API", || argus.is_up());
    (argus, http)
}

#[test]
fn changes_need_the_api_token_and_reading_needs_the_read_token_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let (mut argus, http) = start(
        dir.path(),
        "api_token = \"admin-tok\"\nread_token = \"viewer-tok\"",
        "tokens",
    );
    let streams = format!("{http}/api/v1/streams");
    assert_eq!(request("POST", &streams, None, None).0, 401, "no token");
    assert_eq!(
        request("POST", &streams, Some("wrong"), None).0,
        401,
        "wrong token"
    );
    assert_eq!(
        request("POST", &streams, Some("viewer-tok"), None).0,
        403,
        "the read token cannot change"
    );
    assert_eq!(
        request("POST", &streams, Some("admin-tok"), None).0,
        201,
        "the API token can"
    );
    assert_eq!(
        request("DELETE", &format!("{streams}/sec"), None, None).0,
        401
    );

    assert_eq!(
        request("GET", &streams, None, None).0,
        401,
        "reading needs a token when one is set"
    );
    assert_eq!(request("GET", &streams, Some("viewer-tok"), None).0, 200);
    assert_eq!(request("GET", &streams, Some("admin-tok"), None).0, 200);
    for open in ["/healthz", "/readyz", "/metrics"] {
        let status = request("GET", &format!("{http}{open}"), None, None).0;
        assert!(
            status == 200 || status == 503,
            "{open} stays open: {status}"
        );
    }
    assert_eq!(
        request("DELETE", &format!("{streams}/sec"), Some("admin-tok"), None).0,
        204
    );

    // Tokens never show: not in the log, not in `argus config`.
    assert_eq!(argus.terminate(), 0);
    let shown = std::process::Command::new(argus_binary())
        .arg("--config")
        .arg(dir.path().join("argus.toml"))
        .arg("config")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(shown.contains("api_token = \"***\""), "{shown}");
    for (what, text) in [("log", argus.logs()), ("argus config", shown)] {
        assert!(
            !text.contains("admin-tok") && !text.contains("viewer-tok"),
            "a token shows in the {what}"
        );
    }
}

#[test]
fn without_an_api_token_the_api_is_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let (argus, http) = start(dir.path(), "", "read-only");
    let streams = format!("{http}/api/v1/streams");
    assert_eq!(request("POST", &streams, Some("anything"), None).0, 403);
    assert_eq!(
        request("GET", &streams, None, None).0,
        200,
        "reading is open by default"
    );
    assert!(argus.logs().contains("the API is read-only"));
}

#[test]
fn cors_is_closed_unless_an_origin_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let (_closed, http) = start(dir.path(), "api_token = \"t\"", "cors-closed");
    let (_, headers) = request(
        "OPTIONS",
        &format!("{http}/api/v1/streams"),
        None,
        Some("https://evil.example"),
    );
    assert!(
        headers.get("access-control-allow-origin").is_none(),
        "{headers:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let (_open, http) = start(
        dir.path(),
        "api_token = \"t\"\ncors_origins = [\"https://ops.example\"]",
        "cors-open",
    );
    let (_, headers) = request(
        "OPTIONS",
        &format!("{http}/api/v1/streams"),
        None,
        Some("https://ops.example"),
    );
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap()),
        Some("https://ops.example")
    );
    let (_, headers) = request(
        "OPTIONS",
        &format!("{http}/api/v1/streams"),
        None,
        Some("https://evil.example"),
    );
    assert!(
        headers.get("access-control-allow-origin").is_none(),
        "{headers:?}"
    );
}

#[test]
fn a_client_past_the_rate_limit_gets_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let (_argus, http) = start(dir.path(), "rate_limit_per_second = 5", "rate-limit");
    let streams = format!("{http}/api/v1/streams");
    let statuses: Vec<(u16, ureq::http::HeaderMap)> = (0..40)
        .map(|_| request("GET", &streams, None, None))
        .collect();
    let limited: Vec<_> = statuses
        .iter()
        .filter(|(status, _)| *status == 429)
        .collect();
    assert!(statuses[0].0 == 200, "the first requests pass");
    assert!(
        !limited.is_empty(),
        "40 quick requests exceed 5/s with bursts of 10"
    );
    assert!(limited[0].1.get("retry-after").is_some());
    // Probes are not limited.
    assert_eq!(
        request("GET", &format!("{http}/healthz"), None, None).0,
        200
    );
}

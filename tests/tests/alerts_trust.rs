//! Alerts an operator can trust, end to end on the real broker and Redis: a question rule on
//! a camera showing one sign per chunk fires on the chunk with its sign and on no other, and
//! says why; a repeat within a rule's cooldown is not published, and is counted; an operator
//! acknowledges an alert, which is stored, listed and published once.

use std::time::Duration;

use argus_e2e::*;

const CHUNK_S: u32 = 5;
const START: &str = "2026-01-01T10:00:00Z";
/// One sign per chunk; the question asks for the second.
const SIGNS: [&str; 3] = ["NO PARKING", "WET FLOOR CAUTION", "HIGH VOLTAGE"];
const WET_CHUNK: &str = "2026-01-01T10:00:05Z";

/// POST with the given `Authorization` (none: no header) and a raw body.
fn post(url: &str, authorization: Option<&str>, body: &str) -> (u16, serde_json::Value) {
    let mut request = ureq::post(url).config().http_status_as_error(false).build();
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let response = request
        .header("Content-Type", "application/json")
        .send(body)
        .expect("the API answers");
    let status = response.status().as_u16();
    let answer = response
        .into_body()
        .read_json()
        .unwrap_or(serde_json::Value::Null);
    (status, answer)
}

#[test]
fn a_question_rule_fires_on_the_chunk_with_its_sign_only_and_its_ack_is_stored_and_published() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("signs.mp4");
    make_signs_video(&video, &SIGNS, CHUNK_S);
    let topic = unique("argus.test.trust");
    let (v1_topic, v2_topic, acks_topic) = (
        format!("{topic}.alerts"),
        format!("{topic}.alerts-v2"),
        format!("{topic}.acks"),
    );
    let http_port = free_port();
    let http = format!("http://127.0.0.1:{http_port}");
    let config = write_config(
        dir.path(),
        &services,
        &topic,
        &unique("argus-test-trust"),
        http_port,
        &[],
    );
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[kafka.spill]",
        &format!(
            "alerts = \"{v1_topic}\"\nalerts_v2 = \"{v2_topic}\"\nalert_acks = \"{acks_topic}\"\n\
             moments = \"{topic}.moments\"\n[kafka.spill]"
        ),
    );
    // The moment index runs: its embedder checks the question against the signs.
    std::fs::write(
        &config,
        format!(
            "streams = []\n{text}\
             [captions]\nenabled = true\nchunk_s = {CHUNK_S}.0\nmax_new_tokens = 16\n\
             [[alerts.rules]]\nid = \"wet-floor\"\ncameras = [\"hall\"]\ncooldown_s = 0\n\
             when = {{ kind = \"question\", question = \"Is there a wet floor warning sign?\" }}\n\
             [[alerts.rules]]\nid = \"any-text\"\ncameras = [\"hall\"]\ncooldown_s = 60\n\
             when = {{ kind = \"text\", pattern = \"[A-Z]\" }}\n"
        ),
    )
    .unwrap();
    let mut argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("alerts_trust.argus.log"),
        http.clone(),
    );
    wait_until(Duration::from_secs(90), "the API", || argus.is_up());
    let body = serde_json::json!({
        "id": "hall", "uri": format!("file://{}", video.display()), "start_time": START
    });
    let (status, answer) = argus.post_json("/api/v1/streams", &body);
    assert_eq!(status, 201, "{answer}");
    wait_for_streams(&argus, Duration::from_secs(300), "the recording", |s| {
        stream(s, "hall").is_some_and(|s| s["state"] == "finished")
    });

    // Listed: the question rule on the wet floor chunk only; the text rule on the first chunk,
    // and its two repeats within its 60 s cooldown counted, not published.
    let listed = argus.get_json("/api/v1/alerts?camera=hall").unwrap();
    let alerts = listed["alerts"].as_array().unwrap().clone();
    let fired = |rule: &str| -> Vec<String> {
        let mut starts: Vec<String> = (alerts.iter())
            .filter(|a| a["rule_id"] == rule)
            .map(|a| a["start"].as_str().unwrap().to_owned())
            .collect();
        starts.sort();
        starts
    };
    assert_eq!(fired("wet-floor"), [WET_CHUNK], "{listed:#}");
    assert_eq!(fired("any-text"), [START], "{listed:#}");
    assert_eq!(alerts.len(), 2, "{listed:#}");
    assert_eq!(
        argus.metric(
            "argus_alerts_suppressed_total",
            &["stream=\"hall\"", "rule=\"any-text\""]
        ),
        Some(2.0)
    );
    assert_eq!(
        argus.metric(
            "argus_alerts_suppressed_total",
            &["stream=\"hall\"", "rule=\"wet-floor\""]
        ),
        Some(0.0),
        "a rule without a cooldown repeats nothing"
    );
    let wet = alerts.iter().find(|a| a["rule_id"] == "wet-floor").unwrap();
    assert_eq!(wet["acknowledged"], serde_json::Value::Null);
    assert_eq!(
        wet["trigger"],
        "question: Is there a wet floor warning sign?"
    );
    let evidence: Vec<&str> = (wet["decided_by"].as_array().unwrap().iter())
        .map(|d| d["evidence"].as_str().unwrap())
        .collect();
    assert!(evidence.contains(&"text_match"), "{wet:#}");
    assert!(evidence.contains(&"embedding"), "{wet:#}");
    let reason = wet["reason"].as_str().unwrap();
    assert!(reason.contains("wet, floor"), "{reason}");
    let confidence = wet["confidence"].as_f64().unwrap();
    assert!(
        (0.0..=1.0).contains(&confidence) && confidence > 0.5,
        "{wet:#}"
    );
    assert!(wet["thumbnail_jpeg"].as_str().unwrap().starts_with("/9j/"));
    let id = wet["message_id"].as_str().unwrap().to_owned();

    // Acknowledgement: a change, so it needs the API token; unknown and malformed ids and
    // bodies are refused with the reason; the first acknowledgement stands.
    let ack_url = format!("{http}/api/v1/alerts/{id}/ack");
    let body = r#"{"by": "dana", "note": "mopped up"}"#;
    assert_eq!(post(&ack_url, None, body).0, 401, "no token");
    assert_eq!(
        post(&ack_url, Some("Bearer wrong"), body).0,
        401,
        "a wrong token"
    );
    let unknown = format!("{http}/api/v1/alerts/01890a5d-ac96-774b-bcce-b302099a8057/ack");
    let (status, answer) = post(&unknown, Some(&bearer()), body);
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("no alert"));
    let (status, answer) = post(
        &format!("{http}/api/v1/alerts/not-an-id/ack"),
        Some(&bearer()),
        "",
    );
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = post(&ack_url, Some(&bearer()), r#"{"by": 3}"#);
    assert_eq!(status, 400, "{answer}");
    let (status, first) = post(&ack_url, Some(&bearer()), body);
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["acknowledged"]["by"], "dana");
    assert_eq!(first["acknowledged"]["note"], "mopped up");
    let (status, again) = post(&ack_url, Some(&bearer()), "");
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again["acknowledged"], first["acknowledged"],
        "the first stands"
    );
    let listed = argus.get_json("/api/v1/alerts?camera=hall").unwrap();
    let wet = (listed["alerts"].as_array().unwrap().iter())
        .find(|a| a["message_id"] == id.as_str())
        .unwrap();
    assert_eq!(wet["acknowledged"], first["acknowledged"]);
    let text_alert = (listed["alerts"].as_array().unwrap().iter())
        .find(|a| a["rule_id"] == "any-text")
        .unwrap();
    assert_eq!(text_alert["acknowledged"], serde_json::Value::Null);
    assert_eq!(argus.terminate(), 0, "log:\n{}", argus.logs());

    // Published: the same two alerts, valid in both versions; one acknowledgement.
    let v2 = consume(
        &services.kafka_brokers,
        &v2_topic,
        Duration::from_secs(15),
        |got| got.len() > 2,
    );
    assert_eq!(v2.len(), 2, "one per firing, no repeat");
    let validator = schema_version("alert", 2);
    for message in &v2 {
        if let Err(error) = validator.validate(&message.payload) {
            panic!("alert.v2: {error}\n{}", message.payload);
        }
        assert!(message.payload["reason"].is_string(), "{}", message.payload);
    }
    let v1 = consume(
        &services.kafka_brokers,
        &v1_topic,
        Duration::from_secs(10),
        |got| got.len() > 2,
    );
    assert_eq!(v1.len(), 2);
    let validator = schema("alert");
    for message in &v1 {
        if let Err(error) = validator.validate(&message.payload) {
            panic!("alert.v1: {error}\n{}", message.payload);
        }
    }
    let acks = consume(
        &services.kafka_brokers,
        &acks_topic,
        Duration::from_secs(10),
        |got| got.len() > 1,
    );
    assert_eq!(acks.len(), 1, "published once");
    let ack = &acks[0];
    if let Err(error) = schema("alert-ack").validate(&ack.payload) {
        panic!("alert-ack.v1: {error}\n{}", ack.payload);
    }
    assert_eq!(ack.key, "hall");
    assert_eq!(ack.payload["alert_id"], id.as_str());
    assert_eq!(ack.payload["rule_id"], "wet-floor");
    assert_eq!(ack.payload["acknowledged"], first["acknowledged"]);
    assert_eq!(
        ack.headers.get("schema").map(String::as_str),
        Some("argus.alert-ack.v1")
    );
}

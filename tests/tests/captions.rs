//! Chunk captions with CyberV self-correction, end to end on the real broker and Redis: a
//! recording with on-screen text is cut into chunks, SmolLM2 captions each from the
//! perception results, and the controller's verdict decides whether a revision follows.
//!
//! The controller's threshold θ makes the two cases certain whatever the small model writes:
//! at θ = 1 the best answer must score more than n (more than perfect), so every first
//! caption is corrected; at θ = 0 any answer is accepted, so none is.

use std::collections::BTreeMap;
use std::time::Duration;

use argus_e2e::*;

const SECONDS: u32 = 20;
const CHUNK_S: i64 = 10;
const SEGMENTS: i64 = 5;
/// The recordings' start (on a chunk boundary). The question test records the camera again
/// a minute later, leaving 40 s without video between the two.
const START: &str = "2026-01-01T10:00:00Z";
const SECOND_START: &str = "2026-01-01T10:01:00Z";

struct Run {
    captions: Vec<Received>,
    redis_entries: Vec<serde_json::Value>,
    /// The camera's moment windows in Redis.
    windows: Vec<serde_json::Value>,
}

/// Captions a 20 s recording showing "GATE 3" with the controller's threshold `threshold`.
/// Reads the captions topic until `enough` messages or for `wait`. `captions` is more of
/// the `[captions]` section.
fn caption_recording(
    camera: &str,
    threshold: f64,
    captions: &str,
    enough: usize,
    wait: Duration,
) -> Run {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("gate.mp4");
    make_text_video(&video, "GATE 3", SECONDS);
    let topic = unique("argus.test.captions");
    let captions_topic = format!("{topic}.captions");
    let key_prefix = unique("argus-test-captions");
    let http_port = free_port();
    // A recorded start on a chunk boundary: 20 s are exactly two chunks.
    let streams = format!(
        "[[streams]]\nid = \"{camera}\"\nuri = \"file://{}\"\nsample_fps = 1.0\nstart_time = \"{START}\"\n",
        video.display()
    );
    let config = write_config_toml(
        dir.path(),
        &services,
        &topic,
        &key_prefix,
        http_port,
        &streams,
    );
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[kafka.spill]",
        &format!("captions = \"{captions_topic}\"\n[kafka.spill]"),
    );
    std::fs::write(
        &config,
        format!(
            "{text}[captions]\nenabled = true\nchunk_s = {CHUNK_S}.0\nsegments = {SEGMENTS}\n\
             threshold = {threshold}\nmax_new_tokens = 24\n{captions}"
        ),
    )
    .unwrap();

    let mut argus = Argus::start(
        &config,
        &["--exit-when-done"],
        artifacts_dir().join(format!("captions.{camera}.argus.log")),
        format!("http://127.0.0.1:{http_port}"),
    );
    let code = argus.wait(Duration::from_secs(300));
    assert_eq!(code, 0, "argus failed; log:\n{}", argus.logs());

    let captions = consume(&services.kafka_brokers, &captions_topic, wait, |got| {
        got.len() >= enough
    });
    let validator = schema("caption");
    for message in &captions {
        if let Err(error) = validator.validate(&message.payload) {
            panic!(
                "caption does not match schemas/caption.v1.json: {error}\n{}",
                message.payload
            );
        }
        assert_eq!(message.key, camera, "key = camera id");
        assert_eq!(message.headers["schema"], "argus.caption.v1");
        // A file stream is its camera's recording: each chunk links to its clip.
        let clip = message.payload["clip"].as_str().unwrap_or_default();
        assert!(
            clip.starts_with(&format!("/api/v1/clips?camera={camera}&start=")),
            "{}",
            message.payload
        );
    }

    let mut redis = redis::Client::open(services.redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let stored: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{key_prefix}:captions:{camera}"))
        .arg(0)
        .arg(-1)
        .query(&mut redis)
        .unwrap();
    let window_keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{key_prefix}:moments:{camera}:*"))
        .query(&mut redis)
        .unwrap();
    let windows = window_keys
        .iter()
        // `{prefix}:moments:{camera}:{start_ms}` (other keys beside them).
        .filter(|key| {
            key.rsplit(':')
                .next()
                .is_some_and(|s| s.parse::<i64>().is_ok())
        })
        .map(|key| {
            let value: Vec<u8> = redis::cmd("GET").arg(key).query(&mut redis).unwrap();
            argus_e2e::StoredWindow::decode(&value).to_v1_json()
        })
        .collect();
    Run {
        captions,
        redis_entries: stored
            .iter()
            .map(|json| serde_json::from_str(json).unwrap())
            .collect(),
        windows,
    }
}

fn millis(value: &serde_json::Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

/// Every chunk has a first caption the controller did not accept and a revision linked to it,
/// whose key frames lie in the key segments the sensor reading named.
fn assert_revised_per_chunk(run: &Run, chunks: usize) {
    let mut by_chunk: BTreeMap<i64, Vec<&serde_json::Value>> = BTreeMap::new();
    for message in &run.captions {
        by_chunk
            .entry(millis(&message.payload["start"]))
            .or_default()
            .push(&message.payload);
    }
    assert_eq!(by_chunk.len(), chunks, "one caption pair per chunk");
    for (start, messages) in &by_chunk {
        assert_eq!(
            messages.len(),
            2,
            "first caption and revision: {messages:?}"
        );
        // One key, one partition: the revision is read after the caption it corrects.
        let (first, revision) = (messages[0], messages[1]);
        assert_eq!(first["revision"], 1);
        assert_eq!(first["accepted"], false);
        assert!(first["supersedes"].is_null());
        let required = first["sensor"]["required"].as_f64().unwrap();
        assert!((required - 2.0).abs() < 1e-6, "n · θ = 2 · 1: {first}");
        assert_eq!(first["sensor"]["candidates"].as_array().unwrap().len(), 2);
        let key_segments: Vec<i64> = first["sensor"]["key_segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_i64().unwrap())
            .collect();
        assert_eq!(key_segments.len(), 2, "{first}");
        // Perception reached the prompt: the on-screen text is in the evidence.
        assert!(
            first["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .any(|line| line["text"].as_str().unwrap().contains("GATE")),
            "{first}"
        );

        assert_eq!(revision["revision"], 2);
        assert_eq!(revision["supersedes"], first["message_id"]);
        assert_eq!(
            revision["sensor"], first["sensor"],
            "the reading that triggered it"
        );
        let key_frames = revision["key_frames"].as_array().unwrap();
        assert!(!key_frames.is_empty(), "{revision}");
        let segment_ms = CHUNK_S * 1000 / SEGMENTS;
        for frame in key_frames {
            let offset = millis(frame) - start;
            assert!(
                (0..CHUNK_S * 1000).contains(&offset),
                "{frame} outside the chunk"
            );
            assert!(
                key_segments.contains(&(offset / segment_ms)),
                "key frame {frame} is not in a key segment {key_segments:?}"
            );
        }
        let marked = revision["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|line| line["key_frame"] == true)
            .count();
        assert_eq!(marked, key_frames.len(), "{revision}");
    }
}

#[test]
fn a_caption_the_controller_does_not_accept_is_revised_on_the_topic() {
    let chunks = (SECONDS as i64 / CHUNK_S) as usize;
    let run = caption_recording(
        "gate-corrected",
        1.0,
        "",
        2 * chunks,
        Duration::from_secs(30),
    );
    assert_revised_per_chunk(&run, chunks);
    assert!(run.captions.iter().all(|m| m.payload["model"]
        .as_str()
        .unwrap()
        .starts_with("video-qa/")));
    // Redis keeps one caption per chunk: the revision.
    assert_eq!(run.redis_entries.len(), chunks);
    assert!(run.redis_entries.iter().all(|c| c["revision"] == 2));
}

#[test]
fn the_full_model_path_captions_from_frames_and_is_corrected_the_same_way() {
    // The tiny seeded vision tower + CCAM + Llama in the real formats: its words mean
    // nothing, but every step a real checkpoint takes runs, and the revision links the same.
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../operators/tests/fixtures/video-llm-tiny")
        .canonicalize()
        .unwrap();
    let chunks = (SECONDS as i64 / CHUNK_S) as usize;
    let run = caption_recording(
        "gate-frames",
        1.0,
        &format!("video_model = \"{}\"\n", model.display()),
        2 * chunks,
        Duration::from_secs(30),
    );
    assert_revised_per_chunk(&run, chunks);
    assert!(
        run.captions
            .iter()
            .all(|m| m.payload["model"] == "video-llm/video-llm-tiny"),
        "captions from frames name the video model"
    );
}

#[test]
fn a_caption_the_controller_accepts_triggers_no_revision() {
    let chunks = (SECONDS as i64 / CHUNK_S) as usize;
    // Everything is on the topic once Argus has exited: reading a while for one message more
    // than the chunks would find a revision.
    let run = caption_recording(
        "gate-accepted",
        0.0,
        "",
        chunks + 1,
        Duration::from_secs(10),
    );
    assert_eq!(run.captions.len(), chunks, "no revisions");
    for message in &run.captions {
        let caption = &message.payload;
        assert_eq!(caption["revision"], 1);
        assert_eq!(caption["accepted"], true);
        assert!(caption["supersedes"].is_null());
        assert!(caption["sensor"]["key_segments"]
            .as_array()
            .unwrap()
            .is_empty());
        assert!(caption["key_frames"].as_array().unwrap().is_empty());
        assert!(!caption["text"].as_str().unwrap().is_empty());
    }
    assert_eq!(run.redis_entries.len(), chunks);
    assert!(run.redis_entries.iter().all(|c| c["revision"] == 1));
    // Captions join the moment index: each 2 s window carries its chunk's caption.
    assert_eq!(
        run.windows.len(),
        SECONDS as usize / 2,
        "the recording's windows"
    );
    for window in &run.windows {
        let caption = run
            .captions
            .iter()
            .find(|c| {
                millis(&c.payload["start"]) <= millis(&window["start"])
                    && millis(&window["start"]) < millis(&c.payload["end"])
            })
            .expect("a caption covers every window");
        let text = caption.payload["text"].as_str().unwrap();
        if text != "unknown" {
            assert_eq!(window["caption"], text, "{window}");
            assert!(window["text_embedding"].is_array());
        }
    }
}

fn question(camera: &str, text: &str, from: &str, to: &str) -> serde_json::Value {
    serde_json::json!({ "camera": camera, "question": text, "from": from, "to": to })
}

#[test]
fn questions_are_answered_from_the_stored_chunks_and_gaps_are_named() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("gate.mp4");
    make_text_video(&video, "GATE 3", SECONDS);
    let topic = unique("argus.test.questions");
    let answers_topic = format!("{topic}.answers");
    let key_prefix = unique("argus-test-questions");
    let http_port = free_port();
    let config = write_config(dir.path(), &services, &topic, &key_prefix, http_port, &[]);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[kafka.spill]",
        &format!("answers = \"{answers_topic}\"\n[kafka.spill]"),
    );
    // No streams at start (not even the built-in sample video): they come through the API.
    std::fs::write(
        &config,
        format!(
            "streams = []\n{text}[moments]\nenabled = false\n\
             [captions]\nenabled = true\nchunk_s = {CHUNK_S}.0\nmax_new_tokens = 24\n"
        ),
    )
    .unwrap();
    let mut argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("captions.questions.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    wait_until(Duration::from_secs(60), "the API", || argus.is_up());
    let uri = format!("file://{}", video.display());
    // The same camera recorded twice, a minute apart.
    for start in [START, SECOND_START] {
        let body = serde_json::json!({ "id": "yard", "uri": uri, "start_time": start });
        let (status, answer) = argus.post_json("/api/v1/streams", &body);
        assert_eq!(status, 201, "{answer}; log:\n{}", argus.logs());
        wait_for_streams(
            &argus,
            Duration::from_secs(240),
            "the recording's captions",
            |s| stream(s, "yard").is_some_and(|s| s["state"] == "finished"),
        );
        assert_eq!(argus.delete("/api/v1/streams/yard"), 204);
    }

    // Over the first recording: answered by the model from the stored observations.
    let (status, answer) = argus.post_json(
        "/api/v1/questions",
        &question(
            "yard",
            "What text is on screen?",
            START,
            "2026-01-01T10:00:20Z",
        ),
    );
    assert_eq!(status, 200, "{answer}; log:\n{}", argus.logs());
    assert!(!answer["text"].as_str().unwrap().is_empty(), "{answer}");
    assert!(answer["missing"].as_array().unwrap().is_empty(), "{answer}");
    let answers = answer["answers"].as_array().unwrap();
    assert!(
        !answers[0]["sensor"].is_null(),
        "the model was asked: {answer}"
    );
    assert!(answers[0]["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .any(|line| line["text"].as_str().unwrap().contains("GATE")));

    // Between the recordings: no video, said without asking the model.
    let (status, gap) = argus.post_json(
        "/api/v1/questions",
        &question(
            "yard",
            "Was anyone at the gate?",
            "2026-01-01T10:00:25Z",
            "2026-01-01T10:00:55Z",
        ),
    );
    assert_eq!(status, 200, "{gap}");
    assert!(
        gap["text"].as_str().unwrap().contains("video is missing"),
        "{gap}"
    );
    assert!(gap["answers"][0]["sensor"].is_null());
    // Across both: the gap is named and shown to the model as "no video".
    let (status, across) = argus.post_json(
        "/api/v1/questions",
        &question(
            "yard",
            "Was anyone at the gate?",
            START,
            "2026-01-01T10:01:20Z",
        ),
    );
    assert_eq!(status, 200, "{across}");
    let missing = across["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{across}");
    assert_eq!(
        millis(&missing[0]["start"]),
        millis(&serde_json::json!("2026-01-01T10:00:20Z"))
    );
    assert_eq!(
        millis(&missing[0]["end"]),
        millis(&serde_json::json!(SECOND_START))
    );
    assert!(across["answers"][0]["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .any(|line| line["text"].as_str().unwrap().starts_with("no video")));

    // Bad questions: clear 4xx answers.
    let bad = [
        (question("yard", "   ", START, SECOND_START), 400, "empty"),
        (
            question("yard", &"why ".repeat(25_000), START, SECOND_START),
            413,
            "limit",
        ),
        (
            question("yard", "Was anyone there?", SECOND_START, START),
            400,
            "before",
        ),
        (
            question(
                "yard",
                "Was anyone there?",
                "2025-06-01T00:00:00Z",
                "2025-06-01T00:10:00Z",
            ),
            422,
            "outside",
        ),
        (
            question("nowhere", "Was anyone there?", START, SECOND_START),
            404,
            "nowhere",
        ),
    ];
    for (body, expected, says) in bad {
        let (status, answer) = argus.post_json("/api/v1/questions", &body);
        assert_eq!(status, expected, "{answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{expected}: {message}");
    }
    let (status, _) = argus.post_json(
        "/api/v1/questions",
        &serde_json::json!({ "camera": "yard" }),
    );
    assert_eq!(status, 400, "a body without a question");

    let code = argus.terminate();
    assert_eq!(code, 0, "log:\n{}", argus.logs());
    // Every answer went to the answers topic, valid against its schema.
    let published = consume(
        &services.kafka_brokers,
        &answers_topic,
        Duration::from_secs(30),
        |got| got.len() >= 3,
    );
    assert!(published.len() >= 3);
    let validator = schema("answer");
    for message in &published {
        if let Err(error) = validator.validate(&message.payload) {
            panic!(
                "answer does not match schemas/answer.v1.json: {error}\n{}",
                message.payload
            );
        }
        assert_eq!(message.key, "yard");
    }
}

#[test]
fn alert_rules_fire_on_the_chunks_that_satisfy_them_only() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let text_video = dir.path().join("gate.mp4");
    make_text_video(&text_video, "GATE 3", SECONDS);
    let moving_video = dir.path().join("ball.mp4");
    make_moving_video(&moving_video, SECONDS);
    let topic = unique("argus.test.alerts");
    let alerts_topic = format!("{topic}.alerts");
    let alerts_v2_topic = format!("{topic}.alerts-v2");
    let key_prefix = unique("argus-test-alerts");
    let http_port = free_port();
    let config = write_config(dir.path(), &services, &topic, &key_prefix, http_port, &[]);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[kafka.spill]",
        &format!("alerts = \"{alerts_topic}\"\nalerts_v2 = \"{alerts_v2_topic}\"\n[kafka.spill]"),
    );
    std::fs::write(
        &config,
        format!(
            "streams = []\n{text}[moments]\nenabled = false\n\
             [captions]\nenabled = true\nchunk_s = {CHUNK_S}.0\nmax_new_tokens = 16\n\
             [[alerts.rules]]\nid = \"gate-text\"\ncameras = [\"dock\"]\ncooldown_s = 0\n\
             when = {{ kind = \"text\", pattern = \"(?i)gate\\\\s*3\" }}\n\
             [[alerts.rules]]\nid = \"moving\"\ncameras = [\"dock\"]\ncooldown_s = 0\n\
             when = {{ kind = \"motion\", min_level = 0.002 }}\n\
             [[alerts.rules]]\nid = \"moving-once\"\ncameras = [\"dock\"]\n\
             when = {{ kind = \"motion\", min_level = 0.002 }}\n\
             [[alerts.rules]]\nid = \"other-camera\"\ncameras = [\"lobby\"]\n\
             when = {{ kind = \"text\", pattern = \"(?i)gate\" }}\n"
        ),
    )
    .unwrap();
    let start_argus = |log: &str| {
        let argus = Argus::start(
            &config,
            &[],
            artifacts_dir().join(log),
            format!("http://127.0.0.1:{http_port}"),
        );
        wait_until(Duration::from_secs(60), "the API", || argus.is_up());
        argus
    };
    let mut argus = start_argus("captions.alerts.argus.log");

    // Rules through the API: added (kept in Redis), refused when invalid or taken.
    let exit_rule = serde_json::json!({
        "id": "exit-text", "cameras": ["dock"], "when": { "kind": "text", "pattern": "EXIT" }
    });
    let (status, answer) = argus.post_json("/api/v1/alerts/rules", &exit_rule);
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = argus.post_json("/api/v1/alerts/rules", &exit_rule);
    assert_eq!(status, 409, "{answer}");
    let bad = serde_json::json!({ "id": "bad", "when": { "kind": "text", "pattern": "(" } });
    let (status, answer) = argus.post_json("/api/v1/alerts/rules", &bad);
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("invalid pattern"),
        "{answer}"
    );
    assert_eq!(argus.delete("/api/v1/alerts/rules/nope"), 404);
    let rules = argus.get_json("/api/v1/alerts/rules").unwrap();
    assert_eq!(rules["rules"].as_array().unwrap().len(), 5, "{rules}");

    // The camera shows "GATE 3" on a still picture, then (a minute later) a moving ball.
    for (video, start) in [(&text_video, START), (&moving_video, SECOND_START)] {
        let body = serde_json::json!({
            "id": "dock", "uri": format!("file://{}", video.display()), "start_time": start
        });
        let (status, answer) = argus.post_json("/api/v1/streams", &body);
        assert_eq!(status, 201, "{answer}");
        wait_for_streams(&argus, Duration::from_secs(240), "the recording", |s| {
            stream(s, "dock").is_some_and(|s| s["state"] == "finished")
        });
        assert_eq!(argus.delete("/api/v1/streams/dock"), 204);
    }
    let recent = argus.get_json("/api/v1/alerts?camera=dock").unwrap();
    assert_eq!(recent["alerts"].as_array().unwrap().len(), 5, "{recent}");
    let (status, _) = argus.get_status("/api/v1/alerts");
    assert_eq!(status, 400, "the camera is required");
    assert_eq!(argus.terminate(), 0, "log:\n{}", argus.logs());

    let alerts = consume(
        &services.kafka_brokers,
        &alerts_topic,
        Duration::from_secs(15),
        |got| got.len() > 5,
    );
    let validator = schema("alert");
    let mut fired: Vec<(String, String)> = alerts
        .iter()
        .map(|message| {
            if let Err(error) = validator.validate(&message.payload) {
                panic!(
                    "alert does not match schemas/alert.v1.json: {error}\n{}",
                    message.payload
                );
            }
            let alert = &message.payload;
            assert_eq!(message.key, "dock");
            assert!(!alert["evidence"].as_array().unwrap().is_empty(), "{alert}");
            let thumbnail = alert["thumbnail_jpeg"].as_str().expect("a thumbnail");
            assert!(thumbnail.starts_with("/9j/"), "a base64 JPEG");
            (
                alert["rule_id"].as_str().unwrap().to_owned(),
                alert["start"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    fired.sort();
    let expected: Vec<(String, String)> = [
        ("gate-text", "2026-01-01T10:00:00Z"),
        ("gate-text", "2026-01-01T10:00:10Z"),
        ("moving", "2026-01-01T10:01:00Z"),
        ("moving", "2026-01-01T10:01:10Z"),
        // The default cooldown (60 s) keeps it quiet on the next chunk.
        ("moving-once", "2026-01-01T10:01:00Z"),
    ]
    .iter()
    .map(|(rule, start)| (rule.to_string(), start.to_string()))
    .collect();
    assert_eq!(
        fired, expected,
        "each rule fires on its chunks and no others"
    );
    // Version 2 carries the same alerts (chunk alerts go out in both while v1 is deprecated).
    let v2 = consume(
        &services.kafka_brokers,
        &alerts_v2_topic,
        Duration::from_secs(15),
        |got| got.len() >= alerts.len(),
    );
    let validator = schema_version("alert", 2);
    for message in &v2 {
        if let Err(error) = validator.validate(&message.payload) {
            panic!(
                "alert does not match schemas/alert.v2.json: {error}\n{}",
                message.payload
            );
        }
    }
    let ids = |messages: &[Received]| {
        let mut ids: Vec<String> = messages
            .iter()
            .map(|m| m.payload["message_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&v2), ids(&alerts), "the same alerts in both versions");

    // A rule added through the API survives a restart.
    let mut argus = start_argus("captions.alerts-restarted.argus.log");
    let rules = argus.get_json("/api/v1/alerts/rules").unwrap();
    assert!(
        rules["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "exit-text"),
        "{rules}"
    );
    assert_eq!(argus.terminate(), 0);
}

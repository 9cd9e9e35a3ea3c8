//! The operator timeline, through the API and in a real browser (headless Chromium via
//! playwright-core).
//!
//! A live camera (`dock`) has a history in Redis, stored as the service stores it: two
//! recorded segments (real MP4 files) with a gap between them, a track, an alert and two
//! captions; each is checked against its message schema where it has one. The API lists them
//! over a range, sorted, with clip links where there is video and none over the gap; it
//! refuses malformed, reversed and too long ranges (400) and unknown cameras (404). In the
//! console the camera's tile shows its newest caption, the timeline shows every kind, clicking
//! an item sets the player's source to its clip (and plays it where the clips endpoint serves
//! it), and the alerts list acknowledges the alert (where the acknowledgement endpoint exists).
//! The screenshot is kept as a test artifact.

use std::process::Command;
use std::time::Duration;

use argus_e2e::*;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

const CAMERA: &str = "dock";
const ALERT_ID: &str = "0192f2c4-5b1e-7a00-8000-00000000a1e7";
const NEWEST_CAPTION: &str = "The loading dock is empty.";

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The stored history, as the sinks write it: (key suffix, score or None for a list, JSON).
fn history(base: DateTime<Utc>, video: [&std::path::Path; 2]) -> Vec<(String, Option<i64>, Value)> {
    let s = |seconds: i64| base + chrono::Duration::seconds(seconds);
    let evidence = |at, text: &str| json!({"at": time(at), "text": text, "confidence": 0.9, "key_frame": false});
    let caption = |id: &str, start, end, text: &str| {
        json!({
            "schema_version": 1, "message_id": id, "camera_id": CAMERA, "source": "test:ball",
            "start": time(start), "end": time(end), "text": text, "revision": 1,
            "supersedes": null, "accepted": true,
            "sensor": {"candidates": [], "answers": [], "required": 0.0, "segment_drift": [], "key_segments": []},
            "key_frames": [], "evidence": [evidence(start, "LOADING DOCK")], "model": "test",
            "latency_ms": 12.0, "produced_at": time(end),
        })
    };
    let segment = |start, end, path: &std::path::Path| json!({"camera": CAMERA, "start": time(start), "end": time(end), "path": path, "bytes": std::fs::metadata(path).unwrap().len()});
    let track = |id: u64, first, last| {
        json!({
            "track_id": id, "class": "person", "first_seen": time(first), "last_seen": time(last),
            "first_ground": [0.1, 0.9], "last_ground": [0.8, 0.9],
            "movement": {"moving": {"direction": "left to right"}}, "sightings": 7,
        })
    };
    let ms = |t: DateTime<Utc>| Some(t.timestamp_millis());
    vec![
        (
            "recordings:dock:segments".into(),
            ms(s(0)),
            segment(s(0), s(20), video[0]),
        ),
        (
            "recordings:dock:segments".into(),
            ms(s(50)),
            segment(s(50), s(70), video[1]),
        ),
        (
            "streams:dock:gaps".into(),
            ms(s(50)),
            json!({
                "schema_version": 1, "message_id": "0192f2c4-5b1e-7a00-8000-0000000000a9",
                "camera_id": CAMERA, "source": "test:ball",
                "event": {"kind": "gap", "start": time(s(20)), "end": time(s(50)), "reason": "rtsp connection lost"},
                "at": time(s(50)),
            }),
        ),
        ("objects:dock:tracks".into(), ms(s(9)), track(3, s(2), s(9))),
        // Long before the range asked for: left off.
        (
            "objects:dock:tracks".into(),
            ms(s(-7200)),
            track(1, s(-7210), s(-7200)),
        ),
        (
            "alerts:camera:dock".into(),
            None,
            json!({
                "schema_version": 2, "message_id": ALERT_ID, "camera_id": CAMERA, "source": "test:ball",
                "rule_id": "dock-sign", "kind": "text", "start": time(s(10)), "end": time(s(15)),
                "evidence": [evidence(s(12), "LOADING DOCK")], "answer": null, "thumbnail_jpeg": null,
                "produced_at": time(s(16)),
            }),
        ),
        (
            "captions:dock".into(),
            ms(s(0)),
            caption(
                "0192f2c4-5b1e-7a00-8000-0000000000c1",
                s(0),
                s(10),
                "A person walks past the loading dock sign.",
            ),
        ),
        (
            "captions:dock".into(),
            ms(s(50)),
            caption(
                "0192f2c4-5b1e-7a00-8000-0000000000c2",
                s(50),
                s(60),
                NEWEST_CAPTION,
            ),
        ),
        // A camera that runs nowhere but has a history.
        (
            "captions:archive".into(),
            ms(s(0)),
            json!({"start": time(s(0)), "end": time(s(10)), "text": "an old caption"}),
        ),
    ]
}

#[test]
fn the_timeline_lists_a_cameras_history_and_the_console_plays_and_acknowledges_it() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let key_prefix = unique("argus-test");
    let config = write_config_toml(
        dir.path(),
        &services,
        &unique("argus.test.timeline"),
        &key_prefix,
        http_port,
        &format!(
            "[[streams]]\nid = \"{CAMERA}\"\nuri = \"test:ball?width=320&height=180&fps=5\"\nsample_fps = 1.0\n"
        ),
    );

    // Two recorded segments: real video files, as the recorder leaves them.
    let videos = [dir.path().join("dock-0.mp4"), dir.path().join("dock-1.mp4")];
    for video in &videos {
        make_text_video(video, "LOADING DOCK", 20);
    }
    let base = DateTime::<Utc>::from_timestamp(Utc::now().timestamp() - 20 * 60, 0).unwrap();
    let history = history(base, [&videos[0], &videos[1]]);
    let schemas = [
        ("captions:", schema("caption")),
        ("alerts:", schema_version("alert", 2)),
        ("streams:", schema("stream-event")),
    ];
    let mut redis = redis::Client::open(services.redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    for (suffix, score, value) in &history {
        if let Some((_, validator)) = schemas
            .iter()
            .find(|(prefix, _)| suffix.starts_with(prefix) && !suffix.ends_with("archive"))
        {
            let errors: Vec<String> = validator
                .iter_errors(value)
                .map(|e| e.to_string())
                .collect();
            assert!(
                errors.is_empty(),
                "seeded {suffix} fits its schema: {errors:?}"
            );
        }
        let key = format!("{key_prefix}:{suffix}");
        let command = match score {
            Some(score) => redis::cmd("ZADD")
                .arg(&key)
                .arg(score)
                .arg(value.to_string())
                .clone(),
            None => redis::cmd("LPUSH").arg(&key).arg(value.to_string()).clone(),
        };
        let _: () = command.query(&mut redis).unwrap();
    }
    let _: () = redis::cmd("SADD")
        .arg(format!("{key_prefix}:recordings:cameras"))
        .arg(CAMERA)
        .query(&mut redis)
        .unwrap();
    // Alerts are found by id alone through the hash of listed alerts' cameras and rules, as
    // `publish::alerts` keeps it (what acknowledging an alert looks up).
    let _: () = redis::cmd("HSET")
        .arg(format!("{key_prefix}:alerts:ids"))
        .arg(ALERT_ID)
        .arg(format!("{CAMERA}\ndock-sign"))
        .query(&mut redis)
        .unwrap();

    let url = format!("http://127.0.0.1:{http_port}");
    // Objects on, slowly: alerts are listed where rules are checked (captions or objects).
    let argus = Argus::start_with_env(
        &config,
        &[],
        &[
            ("ARGUS_OBJECTS__ENABLED", "true"),
            ("ARGUS_OBJECTS__FPS", "0.5"),
        ],
        artifacts_dir().join("console_timeline.argus.log"),
        url.clone(),
    );
    wait_until(Duration::from_secs(60), "the API", || argus.is_up());

    // The API: the range, sorted, with clips where there is video.
    let range = format!(
        "start={}&end={}",
        time(base - chrono::Duration::minutes(5)),
        time(base + chrono::Duration::minutes(5))
    );
    let (status, answer) = argus.get_status(&format!("/api/v1/streams/{CAMERA}/timeline?{range}"));
    assert_eq!(status, 200, "{answer}");
    let items = answer["items"].as_array().expect("items").clone();
    let starts: Vec<&str> = items.iter().map(|i| i["start"].as_str().unwrap()).collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted, "items are sorted by start: {answer:#}");
    let of_kind =
        |kind: &str| -> Vec<&Value> { items.iter().filter(|i| i["kind"] == kind).collect() };
    let recordings = of_kind("recording");
    assert_eq!(
        recordings.len(),
        2,
        "two recorded spans around the gap: {answer:#}"
    );
    assert_eq!(recordings[0]["start"], time(base));
    assert_eq!(
        recordings[0]["end"],
        time(base + chrono::Duration::seconds(20))
    );
    let gaps = of_kind("gap");
    assert_eq!(gaps.len(), 1, "{answer:#}");
    assert_eq!(gaps[0]["label"], "no video: rtsp connection lost");
    assert!(
        gaps[0].get("clip").is_none(),
        "a gap has no video: {answer:#}"
    );
    let objects = of_kind("object");
    assert_eq!(
        objects.len(),
        1,
        "the old track is outside the range: {answer:#}"
    );
    assert_eq!(objects[0]["label"], "#3 person, moving left to right");
    let alerts = of_kind("alert");
    assert_eq!(alerts.len(), 1, "{answer:#}");
    assert_eq!(alerts[0]["id"], ALERT_ID);
    // Without a reason of its own, the alert says what satisfied its rule.
    assert_eq!(alerts[0]["label"], "dock-sign: LOADING DOCK");
    let captions = of_kind("caption");
    assert_eq!(captions.len(), 2, "{answer:#}");
    for item in objects
        .iter()
        .chain(&alerts)
        .chain(&captions)
        .chain(&recordings)
    {
        let clip = item["clip"]
            .as_str()
            .unwrap_or_else(|| panic!("a clip for {item}"));
        assert!(
            clip.starts_with("/api/v1/clips?camera=dock&start="),
            "{clip}"
        );
    }
    assert_eq!(
        alerts[0]["clip"],
        format!(
            "/api/v1/clips?camera=dock&start={}&end={}",
            time(base + chrono::Duration::seconds(10)).replace(':', "%3A"),
            time(base + chrono::Duration::seconds(15)).replace(':', "%3A")
        )
    );
    // By default, the last hour: the history is 20 minutes old.
    let (status, recent) = argus.get_status(&format!("/api/v1/streams/{CAMERA}/timeline"));
    assert_eq!(status, 200, "{recent}");
    let recent = recent["items"].as_array().unwrap();
    assert!(recent.iter().any(|i| i["id"] == ALERT_ID), "{recent:?}");
    assert_eq!(
        recent.iter().filter(|i| i["kind"] == "recording").count(),
        2
    );
    assert!(!recent
        .iter()
        .any(|i| i["label"].as_str().unwrap().starts_with("#1 ")));

    // Bad input: 400 with the reason; unknown cameras: 404; a camera with only a history: 200.
    for (query, reason) in [
        ("start=yesterday", "`start` must be an RFC 3339 time"),
        ("end=2026-12-07%2010:00", "`end` must be an RFC 3339 time"),
        (
            "start=2026-12-07T10:00:00Z&end=2026-12-07T09:00:00Z",
            "reversed",
        ),
        (
            "start=2026-12-01T00:00:00Z&end=2026-12-03T00:00:00Z",
            "at most 24 h",
        ),
    ] {
        let (status, answer) =
            argus.get_status(&format!("/api/v1/streams/{CAMERA}/timeline?{query}"));
        assert_eq!(status, 400, "{query}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(reason), "{query}: {error}");
    }
    let (status, answer) = argus.get_status("/api/v1/streams/nowhere/timeline");
    assert_eq!(status, 404, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("nowhere"),
        "{answer}"
    );
    let (status, _) = argus.get_status("/api/v1/streams/nowhere/captions/latest");
    assert_eq!(status, 404);
    let (status, answer) = argus.get_status(&format!("/api/v1/streams/archive/timeline?{range}"));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["items"][0]["label"], "an old caption");
    let (status, answer) = argus.get_status(&format!("/api/v1/streams/{CAMERA}/captions/latest"));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["caption"]["text"], NEWEST_CAPTION);

    // The console.
    let screenshot = artifacts_dir().join("console_timeline.png");
    let _ = std::fs::remove_file(&screenshot);
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console/check_timeline.mjs");
    let output = Command::new("node")
        .arg(&script)
        .args([&url, TEST_API_TOKEN])
        .arg(&screenshot)
        .args([CAMERA, ALERT_ID, NEWEST_CAPTION])
        .output()
        .expect("node runs (deploy/setup.sh installs it with playwright-core)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    assert!(
        output.status.success(),
        "{report}\nArgus log:\n{}",
        argus.logs()
    );
    assert!(report.contains("tile caption ok: "), "{report}");
    assert!(report.contains("timeline ok: "), "{report}");
    assert!(report.contains("player src ok: "), "{report}");
    assert!(report.contains("alerts ok: "), "{report}");
    let png = std::fs::read(&screenshot).expect("a screenshot");
    assert_eq!(&png[1..4], b"PNG");
    assert!(png.len() > 10_000, "the screenshot shows a page");
}

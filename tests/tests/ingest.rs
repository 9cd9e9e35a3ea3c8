//! Ingest under real conditions: many RTSP cameras at once, a camera that goes away and comes
//! back, analysis slower than the video, streams changed at run time, and hostile sources.

use std::time::{Duration, Instant};

use argus_e2e::*;

fn analysed(streams: &[serde_json::Value], id: &str) -> u64 {
    stream(streams, id)
        .and_then(|s| s["frames_analysed"].as_u64())
        .unwrap_or(0)
}

fn state(streams: &[serde_json::Value], id: &str) -> String {
    stream(streams, id)
        .and_then(|s| s["state"].as_str())
        .unwrap_or("absent")
        .to_string()
}

#[test]
fn eight_rtsp_cameras_are_analysed_at_once() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let mounts: Vec<String> = (0..8).map(|i| format!("/cam{i}")).collect();
    let server = RtspServer::serve_live(&mounts.iter().map(String::as_str).collect::<Vec<_>>(), 0);
    let streams_toml: String = mounts
        .iter()
        .enumerate()
        .map(|(i, mount)| {
            format!(
                "[[streams]]\nid = \"cam{i}\"\nuri = \"{}\"\nsample_fps = 1.0\n",
                server.url(mount)
            )
        })
        .collect();
    let topic = unique("argus.test.eight");
    let http_port = free_port();
    let config = write_config_toml(
        dir.path(),
        &services,
        &topic,
        &unique("argus-test"),
        http_port,
        &streams_toml,
    );
    let mut argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("eight_cameras.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    let streams = wait_for_streams(
        &argus,
        Duration::from_secs(90),
        "every camera's frames",
        |streams| streams.len() == 8 && (0..8).all(|i| analysed(streams, &format!("cam{i}")) >= 2),
    );
    for i in 0..8 {
        let camera = stream(&streams, &format!("cam{i}")).unwrap();
        assert_eq!(camera["state"], "running", "{camera}");
        assert!(
            camera["decoder"]
                .as_str()
                .is_some_and(|d| d.contains("264")),
            "the H.264 decoder is shown: {camera}"
        );
    }
    assert_eq!(argus.terminate(), 0);
    let messages = consume(
        &services.kafka_brokers,
        &topic,
        Duration::from_secs(30),
        |got| (0..8).all(|i| got.iter().any(|m| m.key == format!("cam{i}"))),
    );
    for i in 0..8 {
        assert!(
            messages.iter().any(|m| m.key == format!("cam{i}")),
            "no Kafka results for cam{i}"
        );
    }
}

#[test]
fn a_camera_that_goes_away_is_reconnected_and_the_gap_published() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let server = RtspServer::serve_live(&["/door"], 0);
    let port = server.port;
    let streams_toml = format!(
        "[[streams]]\nid = \"door\"\nuri = \"rtsp://127.0.0.1:{port}/door\"\nsample_fps = 2.0\nstall_timeout_s = 2.0\n\
         [streams.reconnect]\ninitial_delay_ms = 200\nmax_delay_ms = 500\n"
    );
    let topic = unique("argus.test.reconnect");
    let http_port = free_port();
    let config = write_config_toml(
        dir.path(),
        &services,
        &topic,
        &unique("argus-test"),
        http_port,
        &streams_toml,
    );
    let mut argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("reconnect.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    wait_for_streams(&argus, Duration::from_secs(60), "the camera to run", |s| {
        analysed(s, "door") >= 2
    });

    let went_away = chrono::Utc::now();
    drop(server);
    wait_for_streams(
        &argus,
        Duration::from_secs(30),
        "the stream to notice the outage",
        |s| state(s, "door") == "reconnecting",
    );
    std::thread::sleep(Duration::from_secs(3));
    let server = RtspServer::serve_live(&["/door"], port);
    let returned = Instant::now();
    let returned_at = chrono::Utc::now();
    let streams = wait_for_streams(
        &argus,
        Duration::from_secs(30),
        "the stream to run again",
        |s| state(s, "door") == "running",
    );
    let recovery = returned.elapsed();
    assert!(
        recovery <= Duration::from_secs(3),
        "running again {recovery:?} after the camera returned"
    );
    assert!(
        stream(&streams, "door").unwrap()["reconnects"]
            .as_u64()
            .unwrap()
            >= 1
    );

    // The operator timeline shows the gap, from the record Redis keeps of it.
    let mut timeline = serde_json::Value::Null;
    wait_until(Duration::from_secs(10), "the gap on the timeline", || {
        timeline = argus
            .get_json("/api/v1/streams/door/timeline")
            .unwrap_or_default();
        timeline["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["kind"] == "gap"))
    });

    assert_eq!(argus.terminate(), 0);
    drop(server);
    let events = consume(
        &services.kafka_brokers,
        &format!("{topic}.events"),
        Duration::from_secs(20),
        |got| {
            got.iter().any(|m| m.payload["event"]["kind"] == "gap")
                && got.iter().any(|m| m.payload["event"]["state"] == "stopped")
        },
    );
    let validator = schema("stream-event");
    for event in &events {
        assert!(validator.is_valid(&event.payload), "{}", event.payload);
        assert_eq!(event.key, "door");
    }
    let gaps: Vec<_> = events
        .iter()
        .filter(|m| m.payload["event"]["kind"] == "gap")
        .collect();
    assert_eq!(
        gaps.len(),
        1,
        "exactly one gap: {:?}",
        gaps.iter().map(|g| &g.payload).collect::<Vec<_>>()
    );
    let time = |field: &str| -> chrono::DateTime<chrono::Utc> {
        gaps[0].payload["event"][field]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (start, end) = (time("start"), time("end"));
    let shown: Vec<_> = timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "gap")
        .collect();
    assert_eq!(shown.len(), 1, "{timeline}");
    let at = |field: &str| -> chrono::DateTime<chrono::Utc> {
        shown[0][field].as_str().unwrap().parse().unwrap()
    };
    assert!(
        (at("start") - start).abs() < chrono::Duration::milliseconds(1)
            && (at("end") - end).abs() < chrono::Duration::milliseconds(1),
        "the timeline's gap is the published one: {timeline} vs {start} - {end}"
    );
    assert!(shown[0].get("clip").is_none(), "{timeline}");
    assert!(
        start <= went_away + chrono::Duration::milliseconds(1500),
        "gap starts at the last frame before the outage: {start} vs {went_away}"
    );
    assert!(
        start >= went_away - chrono::Duration::seconds(3),
        "{start} vs {went_away}"
    );
    assert!(
        end >= returned_at - chrono::Duration::milliseconds(500)
            && end <= returned_at + chrono::Duration::seconds(4),
        "gap ends with the first frame after: {end} vs {returned_at}"
    );
    let states: Vec<&str> = events
        .iter()
        .filter_map(|m| m.payload["event"]["state"].as_str())
        .collect();
    assert!(
        states.windows(2).any(|w| w == ["reconnecting", "running"]),
        "{states:?}"
    );
}

#[test]
fn live_frames_are_dropped_behind_a_slow_operator_but_file_frames_never() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("ten-fps.mp4");
    make_text_video(&video, "NO FRAME LOST", 4);
    // OCR of a 1280x720 frame takes far longer than the 100 ms a 10 fps source leaves it.
    let streams_toml = format!(
        "[[streams]]\nid = \"live\"\nuri = \"test:smpte?width=1280&height=720&fps=10\"\nsample_fps = 10.0\nqueue_size = 2\n\
         [[streams]]\nid = \"file\"\nuri = \"file://{}\"\nsample_fps = 10.0\n",
        video.display()
    );
    let topic = unique("argus.test.slow");
    let http_port = free_port();
    let config = write_config_toml(
        dir.path(),
        &services,
        &topic,
        &unique("argus-test"),
        http_port,
        &streams_toml,
    );
    let mut argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("slow_operator.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    let streams = wait_for_streams(
        &argus,
        Duration::from_secs(180),
        "the file to finish",
        |s| state(s, "file") == "finished",
    );
    let live = stream(&streams, "live").unwrap();
    let file = stream(&streams, "file").unwrap();
    assert!(
        live["frames_dropped"].as_u64().unwrap() > 0,
        "live frames are dropped and counted: {live}"
    );
    assert_eq!(file["frames_dropped"], 0, "{file}");
    assert_eq!(
        file["frames_analysed"], 40,
        "every sampled frame of the 4 s file: {file}"
    );
    let metrics = ureq::get(&format!("http://127.0.0.1:{http_port}/metrics"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert!(
        metrics.lines().any(
            |l| l.starts_with("argus_frames_dropped_total{stream=\"live\"}") && !l.ends_with(" 0")
        ),
        "drops are exported"
    );
    assert_eq!(argus.terminate(), 0);
    let messages = consume(
        &services.kafka_brokers,
        &topic,
        Duration::from_secs(30),
        |got| got.iter().filter(|m| m.key == "file").count() >= 40,
    );
    let sequences: Vec<u64> = messages
        .iter()
        .filter(|m| m.key == "file")
        .map(|m| m.payload["frame"]["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(sequences, (0..40).collect::<Vec<_>>());
}

#[test]
fn streams_are_added_changed_and_removed_at_run_time() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("argus.test.runtime");
    let http_port = free_port();
    let config = write_config_toml(
        dir.path(),
        &services,
        &topic,
        &unique("argus-test"),
        http_port,
        "[[streams]]\nid = \"steady\"\nuri = \"test:ball?width=320&height=240&fps=5\"\nsample_fps = 2.0\n",
    );
    let mut argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("runtime.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    let api = format!("http://127.0.0.1:{http_port}/api/v1/streams");
    wait_for_streams(&argus, Duration::from_secs(60), "the first stream", |s| {
        analysed(s, "steady") >= 1
    });

    let post = |body: serde_json::Value| {
        ureq::post(&api)
            .header("Authorization", &bearer())
            .config()
            .http_status_as_error(false)
            .build()
            .send_json(body)
            .unwrap()
    };
    let created = post(
        serde_json::json!({"id": "added", "uri": "test:smpte?width=320&height=240&fps=5", "sample_fps": 2.0}),
    );
    assert_eq!(created.status(), 201);
    let streams = wait_for_streams(&argus, Duration::from_secs(30), "the added stream", |s| {
        analysed(s, "added") >= 2
    });
    let steady_before = analysed(&streams, "steady");

    assert_eq!(
        post(serde_json::json!({"id": "added", "uri": "test:smpte"})).status(),
        409,
        "duplicate id"
    );
    let invalid = post(serde_json::json!({"id": "bad", "uri": "rtsp//nope"}));
    assert_eq!(invalid.status(), 400);
    assert!(invalid
        .into_body()
        .read_to_string()
        .unwrap()
        .contains("is not a valid URI"));
    assert_eq!(
        post(serde_json::json!({"id": "x", "urii": "test:smpte"})).status(),
        400,
        "unknown field"
    );
    let huge = "x".repeat(100 * 1024);
    assert_eq!(
        post(serde_json::json!({"id": "big", "uri": huge})).status(),
        413,
        "oversized request"
    );

    let changed = ureq::put(&format!("{api}/added"))
        .header("Authorization", &bearer())
        .send_json(serde_json::json!({"id": "added", "uri": "test:snow?width=320&height=240&fps=5", "sample_fps": 1.0}))
        .unwrap();
    assert_eq!(changed.status(), 200);
    let mismatched = ureq::put(&format!("{api}/added"))
        .header("Authorization", &bearer())
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(serde_json::json!({"id": "other", "uri": "test:snow"}))
        .unwrap();
    assert_eq!(mismatched.status(), 400);

    let deleted = ureq::delete(&format!("{api}/added"))
        .header("Authorization", &bearer())
        .call()
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = ureq::delete(&format!("{api}/added"))
        .header("Authorization", &bearer())
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(gone.status(), 404);

    let streams = wait_for_streams(
        &argus,
        Duration::from_secs(30),
        "the steady stream to go on",
        |s| stream(s, "added").is_none() && analysed(s, "steady") >= steady_before + 2,
    );
    let steady = stream(&streams, "steady").unwrap();
    assert_eq!(
        steady["state"], "running",
        "untouched by the changes: {steady}"
    );
    assert_eq!(steady["reconnects"], 0);
    assert_eq!(argus.terminate(), 0);
}

#[test]
fn hostile_sources_fail_clearly_while_others_continue() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let corrupted = dir.path().join("corrupted.mp4");
    make_text_video(&corrupted, "CORRUPTED", 4);
    let mut bytes = std::fs::read(&corrupted).unwrap();
    let (from, to) = (bytes.len() / 3, bytes.len() / 2);
    for (i, byte) in bytes[from..to].iter_mut().enumerate() {
        *byte = (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1];
    }
    std::fs::write(&corrupted, &bytes).unwrap();
    let unsupported = dir.path().join("unsupported.mkv");
    make_unsupported_codec_video(&unsupported);
    let server = RtspServer::serve_live(&["/secret"], 0);
    let password = "p@ss:w0rd/with#chars";
    let encoded = "p%40ss%3Aw0rd%2Fwith%23chars";
    let secret_uri = format!("rtsp://viewer:{encoded}@127.0.0.1:{}/secret", server.port);

    let streams_toml = format!(
        "[[streams]]\nid = \"empty\"\nuri = \"file://{}\"\n\
         [[streams]]\nid = \"corrupted\"\nuri = \"file://{}\"\n\
         [[streams]]\nid = \"huge\"\nuri = \"test:smpte?width=7680&height=4320&fps=1\"\n\
         [[streams]]\nid = \"secret\"\nuri = \"{secret_uri}\"\n\
         [[streams]]\nid = \"unsupported\"\nuri = \"file://{}\"\n",
        empty.display(),
        corrupted.display(),
        unsupported.display()
    );
    let topic = unique("argus.test.hostile");
    let http_port = free_port();
    let config = write_config_toml(
        dir.path(),
        &services,
        &topic,
        &unique("argus-test"),
        http_port,
        &streams_toml,
    );
    let mut argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("hostile.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    let streams = wait_for_streams(
        &argus,
        Duration::from_secs(120),
        "every stream to settle",
        |s| {
            state(s, "empty") == "failed"
                && matches!(state(s, "corrupted").as_str(), "finished" | "failed")
                && analysed(s, "huge") >= 1
                && analysed(s, "secret") >= 2
        },
    );
    let empty_status = stream(&streams, "empty").unwrap();
    assert!(
        empty_status["error"].as_str().unwrap().contains("is empty"),
        "{empty_status}"
    );
    let unsupported_status = stream(&streams, "unsupported").unwrap();
    let error = unsupported_status["error"].as_str().unwrap();
    assert!(
        error.starts_with("stream `unsupported`: ")
            && error.contains("no decoder available for video/x-unknown"),
        "an unsupported codec is named as such: {unsupported_status}"
    );
    let corrupted_status = stream(&streams, "corrupted").unwrap();
    if corrupted_status["state"] == "failed" {
        assert!(
            corrupted_status["error"]
                .as_str()
                .unwrap()
                .starts_with("stream `corrupted`: "),
            "{corrupted_status}"
        );
    }
    assert_eq!(state(&streams, "secret"), "running");
    assert_eq!(state(&streams, "huge"), "running");
    assert_eq!(argus.terminate(), 0);

    let messages = consume(
        &services.kafka_brokers,
        &topic,
        Duration::from_secs(30),
        |got| got.iter().any(|m| m.key == "huge"),
    );
    let huge = messages.iter().find(|m| m.key == "huge").unwrap();
    assert_eq!(
        huge.payload["frame"]["width"], 1280,
        "an 8K source is scaled down inside GStreamer"
    );
    assert_eq!(huge.payload["frame"]["height"], 720);

    let logs = argus.logs();
    let shown = serde_json::to_string(&streams).unwrap();
    for secret in [password, encoded, "w0rd"] {
        assert!(!logs.contains(secret), "`{secret}` leaked into the log");
        assert!(!shown.contains(secret), "`{secret}` leaked into the API");
        assert!(
            !messages
                .iter()
                .any(|m| m.payload.to_string().contains(secret)),
            "`{secret}` leaked into Kafka"
        );
    }
    drop(server);
}

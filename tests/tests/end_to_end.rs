//! A video with known on-screen words, served over RTSP and read from a file, goes through
//! the real `argus` binary; the words must come back on the real Kafka topic and in Redis.

use std::time::Duration;

use argus_e2e::*;

const RTSP_WORDS: &str = "GATE 3 OPEN";
const FILE_WORDS: &str = "TRUCK 42";
const SECONDS: u32 = 6;

#[test]
fn ocr_words_from_rtsp_and_file_reach_kafka_and_redis() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let rtsp_video = dir.path().join("gate.mp4");
    let file_video = dir.path().join("truck.mp4");
    make_text_video(&rtsp_video, RTSP_WORDS, SECONDS);
    make_text_video(&file_video, FILE_WORDS, SECONDS);
    let server = RtspServer::serve_file(&rtsp_video, "/gate");
    let gate_url = server.url("/gate");

    let topic = unique("argus.test.frame-results");
    let prefix = unique("argus-test");
    let http_port = free_port();
    let file_uri = format!("file://{}", file_video.display());
    let config = write_config(
        dir.path(),
        &services,
        &topic,
        &prefix,
        http_port,
        &[
            ("gate-rtsp", gate_url.as_str()),
            ("truck-file", file_uri.as_str()),
        ],
    );
    let mut argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("end_to_end.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    // A camera is never "finished" (when its stream ends, Argus reconnects), so the test
    // stops Argus once the file is done and the camera has been read a few times.
    wait_for_streams(
        &argus,
        Duration::from_secs(240),
        "both streams' results",
        |streams| {
            let field = |id: &str, key: &str| stream(streams, id).map(|s| s[key].clone());
            field("truck-file", "state") == Some("finished".into())
                && field("gate-rtsp", "frames_analysed").and_then(|n| n.as_u64()) >= Some(3)
        },
    );
    let code = argus.terminate();
    let logs = argus.logs();
    assert_eq!(code, 0, "argus failed; log:\n{logs}");

    let messages = consume(
        &services.kafka_brokers,
        &topic,
        Duration::from_secs(60),
        |got| {
            let count = |camera: &str| got.iter().filter(|m| m.key == camera).count();
            count("truck-file") >= SECONDS as usize && count("gate-rtsp") >= 3
        },
    );
    let schema = schema("frame-result");
    for message in &messages {
        if let Err(error) = schema.validate(&message.payload) {
            panic!(
                "message does not match schemas/frame-result.v1.json: {error}\n{}",
                message.payload
            );
        }
        assert_eq!(
            message.payload["camera_id"],
            message.key.as_str(),
            "key = camera id"
        );
        assert_eq!(
            message.headers.get("schema").map(String::as_str),
            Some("argus.frame-result.v1")
        );
        assert_eq!(
            message.headers.get("content-type").map(String::as_str),
            Some("application/json")
        );
        assert_eq!(
            message.headers.get("message-id").map(String::as_str),
            message.payload["message_id"].as_str()
        );
    }

    // The file is read completely and nothing is dropped: one result per second of video, in order.
    let file_sequences: Vec<u64> = messages
        .iter()
        .filter(|m| m.key == "truck-file")
        .map(|m| m.payload["frame"]["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(
        file_sequences,
        (0..SECONDS as u64).collect::<Vec<_>>(),
        "log:\n{logs}"
    );

    let text_of = |camera: &str| -> Vec<String> {
        messages
            .iter()
            .filter(|m| m.key == camera)
            .map(|m| m.payload["text"].as_str().unwrap().to_uppercase())
            .collect()
    };
    let read_all = |texts: &[String], words: &str| {
        texts
            .iter()
            .filter(|text| words.split(' ').all(|word| text.contains(word)))
            .count()
    };
    let rtsp_texts = text_of("gate-rtsp");
    let file_texts = text_of("truck-file");
    assert!(
        rtsp_texts.len() >= 3,
        "too few RTSP results: {rtsp_texts:?}\n{logs}"
    );
    assert!(
        read_all(&rtsp_texts, RTSP_WORDS) * 2 >= rtsp_texts.len(),
        "the RTSP stream's words were not read: {rtsp_texts:?}"
    );
    assert!(
        read_all(&file_texts, FILE_WORDS) * 2 >= file_texts.len(),
        "the file's words were not read: {file_texts:?}"
    );
    assert!(
        rtsp_texts.iter().all(|text| !text.contains("TRUCK")),
        "streams must not mix: {rtsp_texts:?}"
    );

    // Redis holds each camera's latest result.
    let client = redis::Client::open(services.redis_url.as_str()).unwrap();
    let mut redis = client.get_connection().unwrap();
    let latest: String = redis::cmd("GET")
        .arg(format!("{prefix}:camera:truck-file:latest"))
        .query(&mut redis)
        .unwrap();
    let latest: serde_json::Value = serde_json::from_str(&latest).unwrap();
    assert_eq!(latest["camera_id"], "truck-file");
    assert_eq!(
        latest["frame"]["sequence"],
        SECONDS as u64 - 1,
        "the last frame is the latest"
    );
    assert!(latest["text"]
        .as_str()
        .unwrap()
        .to_uppercase()
        .contains("TRUCK"));
    drop(server);
}

/// What `make run` does: the built-in defaults analyse the sample video (Debian's vtest.avi,
/// 79.5 s at 10 fps) at 1 fps, and track its people at 5 fps; here Kafka, Redis and the HTTP port are moved by environment
/// variables, which also checks that overrides reach the configuration.
#[test]
fn the_built_in_defaults_analyse_the_sample_video() {
    let services = services();
    let topic = unique("argus.test.sample");
    let prefix = unique("argus-test");
    let http_port = free_port();
    let listen = format!("127.0.0.1:{http_port}");
    let mut argus = Argus::start_with_defaults(
        &["--exit-when-done"],
        &[
            ("ARGUS_KAFKA__BROKERS", services.kafka_brokers.as_str()),
            ("ARGUS_KAFKA__TOPICS__FRAME_RESULTS", topic.as_str()),
            ("ARGUS_REDIS__URL", services.redis_url.as_str()),
            ("ARGUS_REDIS__KEY_PREFIX", prefix.as_str()),
            ("ARGUS_HTTP__LISTEN", listen.as_str()),
        ],
        artifacts_dir().join("sample_video.argus.log"),
        format!("http://{listen}"),
    );
    let code = argus.wait(Duration::from_secs(300));
    assert_eq!(code, 0, "log:\n{}", argus.logs());

    let messages = consume(
        &services.kafka_brokers,
        &topic,
        Duration::from_secs(60),
        |got| got.len() >= 80,
    );
    assert_eq!(
        messages.len(),
        80,
        "one result per second of the 79.5 s video"
    );
    assert!(messages.iter().all(|m| m.key == "sample-street"));
    // Frames are sampled at the objects' 5 fps; OCR reads every fifth, on the second.
    let sequences: Vec<i64> = messages
        .iter()
        .map(|m| m.payload["frame"]["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(sequences[0], 0);
    assert!(
        sequences.windows(2).all(|pair| pair[1] - pair[0] == 5),
        "frame results 5 sampled frames apart: {sequences:?}"
    );
    let client = redis::Client::open(services.redis_url.as_str()).unwrap();
    let mut redis = client.get_connection().unwrap();
    let latest: String = redis::cmd("GET")
        .arg(format!("{prefix}:camera:sample-street:latest"))
        .query(&mut redis)
        .unwrap();
    let latest: serde_json::Value = serde_json::from_str(&latest).unwrap();
    assert_eq!(latest["frame"]["sequence"], 79 * 5);
    assert_eq!(
        latest["frame"]["width"], 768,
        "vtest.avi is 768x576: under max_width, not scaled"
    );
    // The people on the street were tracked.
    let objects: String = redis::cmd("GET")
        .arg(format!("{prefix}:objects:sample-street:latest"))
        .query(&mut redis)
        .unwrap();
    let objects: serde_json::Value = serde_json::from_str(&objects).unwrap();
    assert!(
        objects["objects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["class"] == "person"),
        "{objects}"
    );
}

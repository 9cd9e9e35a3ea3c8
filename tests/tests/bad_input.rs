//! Bad sources, each beside a good one: every bad stream fails with a clear error that names
//! it, through the API and the log, while the good stream is analysed to its end. A camera
//! that cannot be reached is not failed but retried (forever by default), its error shown.

use std::time::Duration;

use argus_e2e::*;

#[test]
fn bad_sources_fail_clearly_and_the_good_stream_keeps_running() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();

    let good = dir.path().join("good.mp4");
    make_text_video(&good, "OK", 4);
    let garbage = dir.path().join("garbage.mp4");
    std::fs::write(
        &garbage,
        (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let truncated = dir.path().join("truncated.mp4");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let closed_port = free_port();

    let good_uri = format!("file://{}", good.display());
    let garbage_uri = format!("file://{}", garbage.display());
    let truncated_uri = format!("file://{}", truncated.display());
    let unreachable_uri = format!("rtsp://viewer:hunter2-secret@127.0.0.1:{closed_port}/live");
    let topic = unique("argus.test.bad-input");
    let http_port = free_port();
    let config = write_config(
        dir.path(),
        &services,
        &topic,
        &unique("argus-test"),
        http_port,
        &[
            ("good", good_uri.as_str()),
            ("missing-file", "/definitely/not/here.mp4"),
            ("malformed-uri", "rtsp//camera-without-scheme-separator"),
            ("unreachable-rtsp", unreachable_uri.as_str()),
            ("garbage-file", garbage_uri.as_str()),
            ("truncated-file", truncated_uri.as_str()),
        ],
    );
    let mut argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("bad_input.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );

    // Watch the API until every stream has settled.
    let streams = wait_for_streams(
        &argus,
        Duration::from_secs(120),
        "every stream to settle",
        |streams| {
            let state_of = |id: &str| {
                stream(streams, id)
                    .and_then(|s| s["state"].as_str())
                    .unwrap_or("")
            };
            streams.len() == 6
                && state_of("unreachable-rtsp") == "reconnecting"
                && streams
                    .iter()
                    .filter(|s| s["id"] != "unreachable-rtsp")
                    .all(|s| matches!(s["state"].as_str(), Some("finished" | "failed")))
        },
    );
    let state = |id: &str| streams.iter().find(|s| s["id"] == id).unwrap().clone();

    let good_state = state("good");
    assert_eq!(good_state["state"], "finished", "{good_state}");
    assert_eq!(good_state["frames_analysed"], 4, "{good_state}");

    let expectations: [(&str, &[&str]); 5] = [
        ("missing-file", &["/definitely/not/here.mp4 does not exist"]),
        ("malformed-uri", &["is not a valid URI"]),
        ("unreachable-rtsp", &["Could not"]),
        ("garbage-file", &["Could not determine type of stream"]),
        // GStreamer's demuxer says so, or now and then hangs without a word: then the
        // first-frame deadline (`stall_timeout_s`) says it.
        (
            "truncated-file",
            &["no playable streams", "no video decoded in 10 s"],
        ),
    ];
    for (id, phrases) in expectations {
        let status = state(id);
        let expected = if id == "unreachable-rtsp" {
            "reconnecting"
        } else {
            "failed"
        };
        assert_eq!(status["state"], expected, "{status}");
        let error = status["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with(&format!("stream `{id}`: ")),
            "the error names the stream: {error}"
        );
        assert!(
            phrases.iter().any(|phrase| error.contains(phrase)),
            "{id}: expected one of {phrases:?} in `{error}`"
        );
    }

    // The good stream's results all reached Kafka.
    let messages = consume(
        &services.kafka_brokers,
        &topic,
        Duration::from_secs(30),
        |got| got.len() >= 4,
    );
    assert_eq!(messages.iter().filter(|m| m.key == "good").count(), 4);

    let metrics = ureq::get(&format!("http://127.0.0.1:{http_port}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert_eq!(argus.terminate(), 0, "a clean shutdown after SIGTERM");
    let logs = argus.logs();
    assert!(
        !metrics.contains("hunter2-secret"),
        "password leaked into the metrics"
    );
    for (id, _) in expectations {
        assert!(
            logs.contains(&format!("stream `{id}`")),
            "the log names `{id}`:\n{logs}"
        );
    }
    // The RTSP password appears nowhere: not in the log, the metrics or the API.
    assert!(
        !logs.contains("hunter2-secret"),
        "password leaked into the log:\n{logs}"
    );
    assert!(
        !serde_json::to_string(&streams)
            .unwrap()
            .contains("hunter2-secret"),
        "password leaked into the API"
    );
    assert!(state("unreachable-rtsp")["source"]
        .as_str()
        .unwrap()
        .contains("viewer:***@"));
}

//! The topics as a contract, checked by a Kafka client that is not ours: the documented
//! example consumer (Python, confluent-kafka) validates every message against its JSON Schema
//! and the header and key rules.

use std::process::Command;
use std::time::Duration;

use argus_e2e::*;

#[test]
fn a_confluent_kafka_consumer_validates_every_message_against_the_schemas() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("contract.mp4");
    make_text_video(&video, "GATE 3", 3);
    let topic = unique("argus.test.contract");
    let http_port = free_port();
    let config = write_config(
        dir.path(),
        &services,
        &topic,
        &unique("argus-test"),
        http_port,
        &[("gate3", video.to_str().unwrap())],
    );
    let mut argus = Argus::start(
        &config,
        &["--exit-when-done"],
        artifacts_dir().join("contract.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    assert_eq!(argus.wait(Duration::from_secs(120)), 0, "{}", argus.logs());

    let venv = std::env::var("ARGUS_VENV").expect("ARGUS_VENV is set by deploy/env.sh");
    let consumer = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/consumer.py");
    let output = Command::new(format!("{venv}/bin/python"))
        .arg(&consumer)
        .args(["--brokers", &services.kafka_brokers])
        .args(["--topic", &topic, "--topic", &format!("{topic}.events")])
        .args(["--idle", "8", "--quiet"])
        .output()
        .expect("the example consumer runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{report}");
    let valid: u64 = report
        .split("summary: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // Three 1-fps frame results and at least the starting/running/finished events.
    assert!(valid >= 5, "{report}");
    assert!(report.contains(", 0 invalid"), "{report}");
}

//! Object alert rules on the sample street camera (`vtest.avi`), with captions off: people
//! crossing the middle of the view fire a line rule once per track, a rule with a long
//! cooldown fires once, and a rule the service cannot check is refused with the reason.

use std::collections::BTreeSet;
use std::time::Duration;

use argus_e2e::*;

const VTEST: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";

#[test]
fn people_crossing_a_line_fire_each_rule_once_per_track_and_within_its_cooldown() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("argus.test.object-alerts-frames");
    let events_topic = unique("argus.test.object-alerts-events");
    let alerts_topic = unique("argus.test.object-alerts");
    let prefix = unique("argus-test-object-alerts");
    let http_port = free_port();
    let settings = "[moments]\nenabled = false\n\
         [objects]\nenabled = true\nfps = 4.0\n\
         [[objects.lines]]\nid = \"middle\"\ncamera = \"street\"\nfrom = [0.5, 0.0]\nto = [0.5, 1.0]\n\
         [[alerts.rules]]\nid = \"walkers\"\ncameras = [\"street\"]\ncooldown_s = 0\n\
         when = { kind = \"object\", class = \"person\", line = \"middle\" }\n";
    let config = write_config_toml(dir.path(), &services, &topic, &prefix, http_port, settings);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[kafka.spill]",
        &format!(
            "object_events = \"{events_topic}\"\nalerts_v2 = \"{alerts_topic}\"\n[kafka.spill]"
        ),
    );
    std::fs::write(&config, text).unwrap();
    let mut argus = Argus::start_with_env(
        &config,
        &[],
        &[("ARGUS_CAPTIONS__ENABLED", "false")],
        artifacts_dir().join("object_alerts.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    wait_until(Duration::from_secs(120), "the API", || argus.is_up());

    // Rules through the API, with captions off: an object rule is taken, one that cannot be
    // checked is refused with the reason.
    let once = serde_json::json!({
        "id": "first-walker", "cameras": ["street"], "cooldown_s": 3600,
        "when": { "kind": "object", "class": "person", "line": "middle" }
    });
    let (status, answer) = argus.post_json("/api/v1/alerts/rules", &once);
    assert_eq!(status, 201, "{answer}");
    for (bad, says) in [
        (
            serde_json::json!({ "id": "unicorns", "when": { "kind": "object", "class": "unicorn" } }),
            "class `unicorn` is not a COCO class",
        ),
        (
            serde_json::json!({ "id": "dogs", "when": { "kind": "object", "class": "dog" } }),
            "the detector does not report `dog`",
        ),
        (
            serde_json::json!({ "id": "exit", "when": { "kind": "text", "pattern": "EXIT" } }),
            "captions.enabled is false",
        ),
        (
            serde_json::json!({ "id": "turn", "when": { "kind": "object", "class": "person",
                                                         "line": "middle", "direction": "up" } }),
            "unknown variant `up`",
        ),
    ] {
        let (status, answer) = argus.post_json("/api/v1/alerts/rules", &bad);
        assert_eq!(status, 400, "{bad}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{bad}: {answer}");
    }
    let rules = argus.get_json("/api/v1/alerts/rules").unwrap();
    assert_eq!(rules["rules"].as_array().unwrap().len(), 2, "{rules}");

    let street = serde_json::json!({
        "id": "street", "uri": format!("file://{VTEST}"), "sample_fps": 1.0,
        "start_time": "2026-01-01T10:00:00Z"
    });
    let (status, answer) = argus.post_json("/api/v1/streams", &street);
    assert_eq!(status, 201, "{answer}");
    wait_for_streams(
        &argus,
        Duration::from_secs(400),
        "the street video read",
        |streams| stream(streams, "street").is_some_and(|s| s["state"] == "finished"),
    );
    let counted = |rule: &str| {
        argus
            .metric("argus_alerts_fired_total", &["street", rule])
            .unwrap_or(0.0)
    };
    let (walkers_counted, first_counted) = (counted("walkers"), counted("first-walker"));
    let held_back = |rule: &str| {
        argus
            .metric("argus_alerts_suppressed_total", &["street", rule])
            .unwrap_or(-1.0)
    };
    let (walkers_held, first_held) = (held_back("walkers"), held_back("first-walker"));
    let crossings = argus
        .metric("argus_object_events_total", &["street", "line_crossed"])
        .unwrap_or(0.0);
    let recent = argus
        .get_json("/api/v1/alerts?camera=street&limit=1000")
        .unwrap();
    let recent = recent["alerts"].as_array().unwrap().len();
    assert_eq!(argus.terminate(), 0, "log:\n{}", argus.logs());

    // Which person tracks crossed the middle line, from the object events.
    let events = consume(
        &services.kafka_brokers,
        &events_topic,
        Duration::from_secs(60),
        |got| {
            let crossed = got.iter().filter(|m| m.payload["kind"] == "line_crossed");
            crossed.count() as f64 >= crossings
        },
    );
    let crossed: BTreeSet<u64> = events
        .iter()
        .filter(|m| {
            m.payload["kind"] == "line_crossed"
                && m.payload["line"] == "middle"
                && m.payload["class"] == "person"
        })
        .map(|m| m.payload["track_id"].as_u64().unwrap())
        .collect();
    assert!(
        crossed.len() >= 2,
        "people walk across the middle of vtest.avi: {crossed:?}"
    );

    let expected = walkers_counted + first_counted;
    let alerts = consume(
        &services.kafka_brokers,
        &alerts_topic,
        Duration::from_secs(30),
        |got| got.len() as f64 >= expected,
    );
    let validator = schema_version("alert", 2);
    let mut walkers: Vec<Vec<u64>> = Vec::new();
    let mut first: Vec<Vec<u64>> = Vec::new();
    for message in &alerts {
        let alert = &message.payload;
        if let Err(error) = validator.validate(alert) {
            panic!("alert does not match schemas/alert.v2.json: {error}\n{alert}");
        }
        assert_eq!(message.key, "street");
        assert_eq!(alert["kind"], "object", "{alert}");
        assert!(
            alert["thumbnail_jpeg"]
                .as_str()
                .unwrap()
                .starts_with("/9j/"),
            "a base64 JPEG"
        );
        let tracks: Vec<u64> = (alert["track_ids"].as_array().unwrap().iter())
            .map(|t| t.as_u64().unwrap())
            .collect();
        let reason = alert["reason"].as_str().unwrap();
        assert!(reason.contains(" crossed line middle "), "{alert}");
        assert_eq!(alert["decided_by"][0]["evidence"], "objects", "{alert}");
        let confidence = alert["confidence"].as_f64().unwrap();
        assert!(confidence > 0.0 && confidence <= 1.0, "{alert}");
        for line in alert["evidence"].as_array().unwrap() {
            let text = line["text"].as_str().unwrap();
            assert!(
                text.starts_with("person ") && text.contains(" crossed line middle "),
                "{alert}"
            );
        }
        match alert["rule_id"].as_str().unwrap() {
            "walkers" => walkers.push(tracks),
            "first-walker" => first.push(tracks),
            other => panic!("rule {other} fired: {alert}"),
        }
    }
    assert_eq!(alerts.len() as f64, expected, "argus_alerts_fired_total");
    assert_eq!(recent, alerts.len(), "the newest alerts in Redis");

    // Without a cooldown, every track that crossed fires the rule, each once.
    let mut fired = BTreeSet::new();
    for tracks in &walkers {
        for track in tracks {
            assert!(
                fired.insert(*track),
                "track {track} fired twice: {walkers:?}"
            );
        }
    }
    assert_eq!(fired, crossed, "alerts against the line crossings");
    // With an hour's cooldown, the first crossing fires it and nothing after does.
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0], walkers[0], "the same first crossing");
    // Every other crossing track is a repeat held back by the cooldown, counted once each.
    let others = crossed.iter().filter(|t| !first[0].contains(t)).count();
    assert_eq!(first_held, others as f64, "argus_alerts_suppressed_total");
    assert_eq!(walkers_held, 0.0, "no cooldown, nothing held back");
}

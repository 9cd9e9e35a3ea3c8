//! People on the sample street camera (`vtest.avi`), through the real `argus` binary with
//! the converted NanoDet detector: person tracks and their events reach the real Kafka
//! topics, valid against their schemas, and the metrics account for every frame.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use argus_e2e::*;

const VTEST: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";

#[test]
fn people_on_the_street_camera_are_tracked_and_counted_across_a_line() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("argus.test.objects-frames");
    let objects_topic = unique("argus.test.objects");
    let events_topic = unique("argus.test.object-events");
    let prefix = unique("argus-test");
    let http_port = free_port();
    let streams = format!(
        "[[streams]]\nid = \"street\"\nuri = \"file://{VTEST}\"\nsample_fps = 1.0\n\
         [objects]\nenabled = true\nfps = 4.0\n\
         [[objects.lines]]\nid = \"middle\"\ncamera = \"street\"\nfrom = [0.5, 0.0]\nto = [0.5, 1.0]\n\
         [[objects.zones]]\nid = \"left-pavement\"\ncamera = \"street\"\n\
         points = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]\n"
    );
    let config = write_config_toml(dir.path(), &services, &topic, &prefix, http_port, &streams);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[kafka.spill]",
        &format!(
            "objects = \"{objects_topic}\"\nobject_events = \"{events_topic}\"\n[kafka.spill]"
        ),
    );
    std::fs::write(&config, text).unwrap();
    let mut argus = Argus::start_with_env(
        &config,
        &[],
        &[("ARGUS_CAPTIONS__ENABLED", "false")],
        artifacts_dir().join("objects.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    wait_for_streams(
        &argus,
        Duration::from_secs(400),
        "the street video read",
        |streams| stream(streams, "street").map(|s| s["state"].clone()) == Some("finished".into()),
    );
    // Objects are looked at four times as often as OCR reads the frame (objects.fps against
    // sample_fps): every such frame is either run through the detector or skipped, and
    // counted.
    let analysed = argus
        .metric("argus_frames_analysed_total", &["street"])
        .unwrap();
    let detected = argus
        .metric("argus_object_detections_total", &["street"])
        .unwrap();
    let skipped_rate = argus
        .metric("argus_object_detections_skipped_total", &["street", "rate"])
        .unwrap_or(0.0);
    let skipped_still = argus
        .metric(
            "argus_object_detections_skipped_total",
            &["street", "no_motion"],
        )
        .unwrap_or(0.0);
    let looked_at = detected + skipped_still;
    assert_eq!(skipped_rate, 0.0, "frames are sampled at objects.fps");
    assert!(
        (looked_at - 4.0 * analysed).abs() <= 4.0,
        "{looked_at} frames looked at for objects ({detected} detected, {skipped_still} \
         skipped: no motion) against {analysed} analysed for OCR at a quarter of the rate"
    );
    assert!(
        detected >= looked_at * 0.5,
        "people walk all the time: {detected} of {looked_at}"
    );
    // Moment windows carry what the tracks did, so a search for people walking finds them,
    // with the matching groups as evidence.
    let found = argus
        .get_json("/api/v1/moments?q=people+walking&camera=street&limit=5")
        .unwrap();
    let moments = found["moments"].as_array().expect("moments");
    assert!(!moments.is_empty(), "no moment for people walking: {found}");
    let groups: Vec<String> = moments
        .iter()
        .filter_map(|m| m["evidence"]["objects"].as_array())
        .flatten()
        .filter_map(|g| g.as_str().map(str::to_owned))
        .collect();
    assert!(
        groups
            .iter()
            .any(|g| g.contains("people walking") || g.contains("person walking")),
        "evidence: {found}"
    );
    let code = argus.terminate();
    let logs = argus.logs();
    assert_eq!(code, 0, "argus failed; log:\n{logs}");

    let frames = consume(
        &services.kafka_brokers,
        &objects_topic,
        Duration::from_secs(60),
        |got| got.len() as f64 >= detected,
    );
    let frame_schema = schema("objects");
    let mut person_tracks = BTreeSet::new();
    let mut most_in_a_frame = 0;
    for message in &frames {
        if let Err(error) = frame_schema.validate(&message.payload) {
            panic!(
                "objects message does not match schemas/objects.v1.json: {error}\n{}",
                message.payload
            );
        }
        assert_eq!(message.key, "street");
        assert_eq!(
            message.headers.get("schema").map(String::as_str),
            Some("argus.objects.v1")
        );
        let people: Vec<u64> = message.payload["objects"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["class"] == "person")
            .map(|o| o["track_id"].as_u64().unwrap())
            .collect();
        most_in_a_frame = most_in_a_frame.max(people.len());
        person_tracks.extend(people);
    }
    assert_eq!(
        frames.len() as f64,
        detected,
        "one message per detected frame"
    );
    // vtest.avi shows five to ten pedestrians at a time, over 80 s.
    assert!(
        most_in_a_frame >= 4,
        "at most {most_in_a_frame} people in one frame"
    );
    assert!(person_tracks.len() >= 8, "person tracks: {person_tracks:?}");

    let events = consume(
        &services.kafka_brokers,
        &events_topic,
        Duration::from_secs(60),
        // One camera's events come in order: once as many tracks ended as started (people
        // and the parked vehicles), every end is in.
        |got| {
            let count = |kind: &str| got.iter().filter(|m| m.payload["kind"] == kind).count();
            count("track_ended") >= person_tracks.len()
                && count("track_ended") == count("track_started")
        },
    );
    let event_schema = schema("object-event");
    let mut kinds: HashMap<String, usize> = HashMap::new();
    let mut started = BTreeSet::new();
    let mut ended = BTreeSet::new();
    for message in &events {
        if let Err(error) = event_schema.validate(&message.payload) {
            panic!(
                "object event does not match schemas/object-event.v1.json: {error}\n{}",
                message.payload
            );
        }
        // The file is the camera's recording: every event links to its clip.
        let clip = message.payload["clip"].as_str().unwrap_or_default();
        assert!(
            clip.starts_with("/api/v1/clips?camera="),
            "{}",
            message.payload
        );
        let kind = message.payload["kind"].as_str().unwrap().to_owned();
        let track = message.payload["track_id"].as_u64().unwrap();
        match kind.as_str() {
            "track_started" => assert!(started.insert(track), "track {track} started twice"),
            "track_ended" => assert!(ended.insert(track), "track {track} ended twice"),
            _ => {}
        }
        *kinds.entry(kind).or_default() += 1;
    }
    // Every track starts once and ends once: at the end of the recording at the latest.
    assert_eq!(started, ended, "events: {kinds:?}");
    assert!(person_tracks.is_subset(&started), "events: {kinds:?}");
    // People walk along the pavement across the middle of the view, both ways.
    assert!(
        kinds.get("line_crossed").copied().unwrap_or(0) >= 2,
        "events: {kinds:?}"
    );
    assert_eq!(
        kinds.get("zone_entered").copied().unwrap_or(0),
        kinds.get("zone_left").copied().unwrap_or(0),
        "every track that entered the zone left it (or ended): {kinds:?}"
    );
}

/// With objects on, a detector that is missing or is not a model stops Argus at start with
/// the file named, before any stream runs: a service that silently saw nothing would be worse.
#[test]
fn a_missing_or_corrupt_detector_fails_at_start_naming_the_file() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("detectors");
    std::fs::create_dir_all(&models).unwrap();
    let streams = format!(
        "[[streams]]\nid = \"street\"\nuri = \"file://{VTEST}\"\n\
         [objects]\nenabled = true\nmodel = \"{}\"\n",
        models.display()
    );
    let config = write_config_toml(
        dir.path(),
        &services,
        &unique("argus.test.objects-broken"),
        &unique("argus-test"),
        free_port(),
        &streams,
    );
    let model = models.join("nanodet.onnx");
    let start = |what: &str| {
        let output = std::process::Command::new(argus_binary())
            .arg("--config")
            .arg(&config)
            .args(["run", "--exit-when-done"])
            .env("ARGUS_MOMENTS__ENABLED", "false")
            .env("ARGUS_CAPTIONS__ENABLED", "false")
            .output()
            .expect("argus runs");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!output.status.success(), "{what}: argus started:\n{stderr}");
        assert!(
            stderr.contains(&model.display().to_string()),
            "{what}: the error does not name {}:\n{stderr}",
            model.display()
        );
        stderr
    };
    let missing = start("missing");
    assert!(missing.contains("deploy/setup.sh"), "{missing}");
    std::fs::write(&model, b"not an ONNX model").unwrap();
    start("corrupt");
}

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
        "[[streams]]\nid = \"street\"\nuri = \"file://{VTEST}\"\nsample_fps = 2.0\n\
         [objects]\nenabled = true\nfps = 2.0\n\
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
        &[
            ("ARGUS_MOMENTS__ENABLED", "false"),
            ("ARGUS_CAPTIONS__ENABLED", "false"),
        ],
        artifacts_dir().join("objects.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    wait_for_streams(
        &argus,
        Duration::from_secs(400),
        "the street video read",
        |streams| stream(streams, "street").map(|s| s["state"].clone()) == Some("finished".into()),
    );
    // Every analysed frame is either run through the detector or skipped, and counted.
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
    assert_eq!(
        detected + skipped_rate + skipped_still,
        analysed,
        "detected {detected}, skipped {skipped_rate} (rate) + {skipped_still} (no motion)"
    );
    assert!(
        detected >= analysed * 0.5,
        "people walk all the time: {detected} of {analysed}"
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
        |got| {
            got.iter()
                .filter(|m| m.payload["kind"] == "track_ended")
                .count()
                >= person_tracks.len()
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

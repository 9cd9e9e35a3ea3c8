//! An alert on a live camera an operator can act on: the sample street (`vtest.avi`, as H.264)
//! served by an in-process RTSP camera, recorded in 10 s segments, with an object rule on
//! people. The alert carries a clip link, the clip plays, and the same rule inside its cooldown
//! fires no second alert while more people walk by.

use std::path::Path;
use std::time::Duration;

use argus_e2e::*;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_pbutils as pbutils;

const VTEST: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";

/// vtest.avi re-encoded as H.264 in MP4 with a key frame every second (10 frames), as a
/// camera sends it.
fn street_as_h264(path: &Path) {
    gst::init().unwrap();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={VTEST} ! decodebin ! videoconvert ! video/x-raw,format=I420 \
         ! x264enc speed-preset=ultrafast key-int-max=10 ! h264parse ! mp4mux \
         ! filesink location=\"{}\"",
        path.display()
    ))
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let end = pipeline.bus().unwrap().timed_pop_filtered(
        gst::ClockTime::from_seconds(300),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(end.map(|m| m.type_()), Some(gst::MessageType::Eos));
}

#[test]
fn an_alert_on_a_live_camera_links_a_clip_that_plays_and_is_not_repeated_in_its_cooldown() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let street = dir.path().join("street.mp4");
    street_as_h264(&street);
    let camera = RtspServer::serve_file(&street, "/street");

    let alerts_topic = unique("argus.test.live-alert");
    let prefix = unique("argus-test-live-alert");
    let http_port = free_port();
    let recordings = dir.path().join("recordings");
    let settings = format!(
        "[moments]\nenabled = false\n\
         [objects]\nenabled = true\nfps = 4.0\n\
         [record]\nmode = \"continuous\"\nsegment_s = 10.0\ndir = \"{}\"\n\
         [[alerts.rules]]\nid = \"someone\"\ncameras = [\"street\"]\ncooldown_s = 3600\n\
         when = {{ kind = \"object\", class = \"person\" }}\n\
         [[streams]]\nid = \"street\"\nuri = \"{}\"\nsample_fps = 1.0\n",
        recordings.display(),
        camera.url("/street"),
    );
    let config = write_config_toml(
        dir.path(),
        &services,
        &unique("argus.test.live-alert-frames"),
        &prefix,
        http_port,
        &settings,
    );
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[kafka.spill]",
        &format!("alerts_v2 = \"{alerts_topic}\"\n[kafka.spill]"),
    );
    std::fs::write(&config, text).unwrap();
    let mut argus = Argus::start_with_env(
        &config,
        &[],
        &[("ARGUS_CAPTIONS__ENABLED", "false")],
        artifacts_dir().join("live_alert_clip.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    wait_until(Duration::from_secs(120), "the API", || argus.is_up());

    let alerts = consume(
        &services.kafka_brokers,
        &alerts_topic,
        Duration::from_secs(120),
        |got| !got.is_empty(),
    );
    assert_eq!(alerts.len(), 1, "log:\n{}", argus.logs());
    let alert = &alerts[0].payload;
    if let Err(error) = schema_version("alert", 2).validate(alert) {
        panic!("alert does not match schemas/alert.v2.json: {error}\n{alert}");
    }
    assert_eq!(alert["rule_id"], "someone", "{alert}");
    let clip = alert["clip"]
        .as_str()
        .unwrap_or_else(|| panic!("the alert has a clip link: {alert}"));
    assert!(clip.starts_with("/api/v1/clips?"), "{alert}");

    // The clip answers once the segment holding its span has closed (10 s segments).
    let file = dir.path().join("alert-clip.mp4");
    wait_until(Duration::from_secs(60), "the alert's clip", || {
        let Ok(mut response) = ureq::get(&format!("{}{clip}", argus.http))
            .header("Authorization", &bearer())
            .call()
        else {
            return false;
        };
        let body = response.body_mut().read_to_vec().unwrap();
        std::fs::write(&file, body).unwrap();
        true
    });
    let discoverer = pbutils::Discoverer::new(gst::ClockTime::from_seconds(20)).unwrap();
    let info = discoverer
        .discover_uri(&format!("file://{}", file.display()))
        .expect("the clip is a video GStreamer reads");
    let duration = info.duration().expect("the clip has a duration");
    assert!(
        duration >= gst::ClockTime::from_seconds(1),
        "the clip plays for {duration}"
    );
    assert!(!info.video_streams().is_empty(), "the clip has video");

    // More people walk by for another 30 s: the rule is in its hour's cooldown.
    std::thread::sleep(Duration::from_secs(30));
    let later = consume(
        &services.kafka_brokers,
        &alerts_topic,
        Duration::from_secs(10),
        |got| got.len() > 1,
    );
    assert_eq!(
        later.len(),
        1,
        "one alert in the cooldown: {:?}",
        later.iter().map(|m| &m.payload).collect::<Vec<_>>()
    );
    let suppressed = argus
        .metric("argus_alerts_suppressed_total", &["street", "someone"])
        .unwrap_or(0.0);
    assert!(suppressed >= 1.0, "the repeats are counted as suppressed");
    assert_eq!(argus.terminate(), 0, "log:\n{}", argus.logs());
}

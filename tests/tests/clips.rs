//! `GET /api/v1/clips` with the real binary: clips of a recorded file (indexed with `argus
//! index`) and of a camera's recorded segments, range requests, and every refusal with its
//! reason.
//!
//! The segments here are written by the test (`splitmuxsink`, as the recorder writes them)
//! and listed in the Redis index the way the recorder lists them: a test setup for the clip
//! path, not a stand-in for the recorder, whose own test records a live camera.

use std::path::{Path, PathBuf};
use std::time::Duration;

use argus_e2e::*;
use gstreamer as gst;
use gstreamer::prelude::*;

/// The recorded file's first frame (wall-clock).
const START: &str = "2026-12-07T10:00:00Z";
const START_MS: i64 = 1_796_637_600_000;
/// The segments' first frame.
const SEGMENTS_MS: i64 = START_MS + 3_600_000;

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn clip_path(camera: &str, start: &str, end: &str) -> String {
    format!("/api/v1/clips?camera={camera}&start={start}&end={end}")
}

/// GET with any status: status, headers we look at, body.
fn get(url: &str, range: Option<&str>) -> (u16, ureq::http::HeaderMap, Vec<u8>) {
    let mut request = ureq::get(url);
    if let Some(range) = range {
        request = request.header("Range", range);
    }
    let mut response = request
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .expect("the API answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .body_mut()
        .with_config()
        .limit(100 << 20)
        .read_to_vec()
        .unwrap();
    (status, headers, body)
}

/// The clip's length as GStreamer's discoverer reads it, and the size of a decoded frame.
fn plays(clip: &[u8], dir: &Path, name: &str) -> (Duration, (i32, i32)) {
    let file = dir.join(name);
    std::fs::write(&file, clip).unwrap();
    let discoverer = gstreamer_pbutils::Discoverer::new(gst::ClockTime::from_seconds(20)).unwrap();
    let uri = gst::glib::filename_to_uri(&file, None).unwrap();
    let info = discoverer.discover_uri(&uri).expect("the clip is readable");
    let length = Duration::from_nanos(info.duration().expect("a duration").nseconds());

    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! decodebin ! videoconvert ! video/x-raw,format=RGB \
         ! appsink name=out sync=false",
        file.display()
    ))
    .unwrap();
    let out = pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name("out")
        .unwrap()
        .downcast::<gstreamer_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let frame = out
        .try_pull_sample(gst::ClockTime::from_seconds(20))
        .expect("a frame decodes");
    pipeline.set_state(gst::State::Null).unwrap();
    let caps = frame.caps().unwrap().structure(0).unwrap().to_owned();
    (
        length,
        (caps.get("width").unwrap(), caps.get("height").unwrap()),
    )
}

/// 30 s of 640x360 H.264 at 10 fps, a key frame each second, as 10 s MP4 segments.
fn record_segments(dir: &Path) -> Vec<PathBuf> {
    gst::init().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc pattern=ball num-buffers=300 ! video/x-raw,width=640,height=360,framerate=10/1 \
         ! timeoverlay ! video/x-raw,format=I420 \
         ! x264enc speed-preset=ultrafast tune=zerolatency key-int-max=10 ! h264parse \
         ! splitmuxsink max-size-time=10000000000 muxer-factory=mp4mux location=\"{}/%03d.mp4\"",
        dir.display()
    ))
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    for message in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match message.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(error) => panic!("{}", error.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Lists segments in the recordings index as the recorder does
/// (`pipeline/src/recordings/index.rs`): JSON scored by start, and the camera in the set.
fn index_segments(
    redis: &mut redis::Connection,
    prefix: &str,
    camera: &str,
    segments: &[(&Path, i64, i64)],
) {
    for (path, start_ms, end_ms) in segments {
        let json = serde_json::json!({
            "camera": camera,
            "start": rfc3339(*start_ms),
            "end": rfc3339(*end_ms),
            "path": path,
            "bytes": std::fs::metadata(path).unwrap().len(),
        });
        let _: () = redis::cmd("ZADD")
            .arg(format!("{prefix}:recordings:{camera}:segments"))
            .arg(start_ms)
            .arg(json.to_string())
            .query(redis)
            .unwrap();
    }
    let _: () = redis::cmd("SADD")
        .arg(format!("{prefix}:recordings:cameras"))
        .arg(camera)
        .query(redis)
        .unwrap();
}

#[test]
fn clips_are_served_from_recordings_with_ranges_and_every_refusal_says_why() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("argus-test-clips");
    let http_port = free_port();
    let video = dir.path().join("gate.mp4");
    make_text_video(&video, "GATE 3", 12);
    // Two cameras the service runs, offline now (nothing answers at that address): `offline`
    // was never recorded; `dock` was, earlier. Both are configured, so the start-up
    // reconciliation keeps `dock`'s segments (it deletes those of cameras that no longer exist).
    let config = write_config(
        dir.path(),
        &services,
        &unique("argus.test.clips"),
        &prefix,
        http_port,
        &[
            ("offline", "rtsp://127.0.0.1:9/none"),
            ("dock", "rtsp://127.0.0.1:9/dock"),
        ],
    );
    let output = argus_command(&config)
        .args(["index", video.to_str().unwrap(), "--camera", "gate"])
        .args(["--start", START])
        .output()
        .expect("argus index runs");
    assert!(
        output.status.success(),
        "argus index failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Segments of camera `dock`: 0–10 s, 10–20 s, then a gap, then 30 s on (the third file
    // listed late: the camera was offline 20–30 s). Before them, retention deleted video.
    let files = record_segments(&dir.path().join("recordings/dock"));
    assert_eq!(files.len(), 3, "{files:?}");
    let mut redis = redis::Client::open(services.redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let at = |s: i64| SEGMENTS_MS + s * 1000;
    index_segments(
        &mut redis,
        &prefix,
        "dock",
        &[
            (&files[0], at(0), at(10)),
            (&files[1], at(10), at(20)),
            (&files[2], at(30), at(40)),
        ],
    );
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}:recordings:dock:deleted_until"))
        .arg(at(-60))
        .query(&mut redis)
        .unwrap();

    let http = format!("http://127.0.0.1:{http_port}");
    let argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("clips.argus.log"),
        http.clone(),
    );
    wait_until(Duration::from_secs(60), "the API", || argus.is_up());

    // A clip of the recorded file: 2 s to 7 s. H.264, so remuxed into MP4; it plays.
    let path = clip_path("gate", &rfc3339(START_MS + 2000), &rfc3339(START_MS + 7000));
    let (status, headers, mp4) = get(&format!("{http}{path}"), None);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&mp4));
    assert_eq!(headers["content-type"], "video/mp4");
    assert_eq!(headers["accept-ranges"], "bytes");
    let (length, size) = plays(&mp4, dir.path(), "gate-clip.mp4");
    assert!(
        (length.as_secs_f64() - 5.0).abs() <= 1.0,
        "a 5 s span: {length:?}"
    );
    assert_eq!(size, (1280, 720));

    // A range of it: 206, the bytes asked for, and where they are in the whole.
    let (status, headers, part) = get(&format!("{http}{path}"), Some("bytes=100-1099"));
    assert_eq!(status, 206);
    assert_eq!(
        headers["content-range"],
        format!("bytes 100-1099/{}", mp4.len()).as_str()
    );
    assert_eq!(part, mp4[100..1100]);
    // Unix milliseconds are times too; the same span is the same clip.
    let (status, _, same) = get(
        &format!(
            "{http}{}",
            clip_path(
                "gate",
                &(START_MS + 2000).to_string(),
                &(START_MS + 7000).to_string()
            )
        ),
        Some(&format!("bytes={}-", mp4.len() - 10)),
    );
    assert_eq!(status, 206);
    assert_eq!(same, mp4[mp4.len() - 10..]);

    // Old moment clip links redirect here: the same clip.
    let (status, headers, old) = get(
        &format!(
            "{http}/api/v1/moments/clip?camera=gate&start_ms={}&end_ms={}",
            START_MS + 2000,
            START_MS + 7000
        ),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "video/mp4");
    assert_eq!(old, mp4);

    // A clip of segments, 5 s to 15 s: across the boundary at 10 s, within a GOP (1 s) of
    // its length.
    let (status, headers, mp4) = get(
        &format!(
            "{http}{}",
            clip_path("dock", &rfc3339(at(5)), &rfc3339(at(15)))
        ),
        None,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&mp4));
    assert_eq!(headers["content-type"], "video/mp4");
    let (length, size) = plays(&mp4, dir.path(), "dock-clip.mp4");
    assert!(
        (length.as_secs_f64() - 10.0).abs() <= 1.0,
        "a 10 s span: {length:?}"
    );
    assert_eq!(size, (640, 360));

    // Refusals, each with its reason.
    let refused = |path: &str, status: u16, says: &str| {
        let (got, answer) = argus.get_status(path);
        let error = answer["error"].as_str().unwrap_or_default();
        assert_eq!(got, status, "{path}: {answer}");
        assert!(
            error.contains(says),
            "{path}: `{error}` should say `{says}`"
        );
    };
    let t = |ms: i64| rfc3339(ms);
    refused(
        &clip_path("gate", &t(START_MS + 7000), &t(START_MS + 2000)),
        400,
        "empty or reversed",
    );
    refused(
        &clip_path("gate", &t(START_MS), &t(START_MS)),
        400,
        "empty or reversed",
    );
    refused(
        &clip_path("gate", &t(START_MS), &t(START_MS + 601_000)),
        400,
        "at most 600 s (record.max_clip_s)",
    );
    refused(
        &clip_path("gate", "yesterday", &t(START_MS)),
        400,
        "`start` = `yesterday` is not a time",
    );
    refused(
        &format!("/api/v1/clips?camera=gate&start={}", t(START_MS)),
        400,
        "`end` is missing",
    );
    refused(
        &clip_path("nobody", &t(START_MS), &t(START_MS + 5000)),
        404,
        "unknown camera `nobody`",
    );
    refused(
        &clip_path("offline", &t(START_MS), &t(START_MS + 5000)),
        404,
        "not recorded",
    );
    refused(&clip_path("dock", &t(at(22)), &t(at(28))), 404, "(a gap)");
    refused(
        &clip_path("dock", &t(at(-100)), &t(at(-90))),
        404,
        "deleted by retention",
    );
    refused(
        &clip_path("gate", &t(START_MS + 60_000), &t(START_MS + 65_000)),
        404,
        "does not cover this span",
    );
    assert!(argus.is_up(), "Argus still serves");
}

//! Recording of live cameras, end to end: a real in-process RTSP camera, the real `argus`
//! binary, the segment index in real Redis and the files on disk, read back by GStreamer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use argus_e2e::{
    artifacts_dir, free_port, services, unique, wait_for_streams, write_config_toml, Argus,
    RtspServer, Services,
};
use chrono::{DateTime, Utc};
use gstreamer as gst;
use gstreamer::prelude::*;

/// One entry of the segment index (`recordings/index.rs`).
#[derive(Debug, Clone, serde::Deserialize)]
struct Segment {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    path: PathBuf,
    bytes: u64,
}

fn redis(services: &Services) -> redis::Connection {
    redis::Client::open(services.redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// The camera's segments in the index, oldest first.
fn indexed(services: &Services, prefix: &str, camera: &str) -> Vec<Segment> {
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{prefix}:recordings:{camera}:segments"))
        .arg(0)
        .arg(-1)
        .query(&mut redis(services))
        .unwrap();
    members
        .iter()
        .map(|json| serde_json::from_str(json).unwrap())
        .collect()
}

/// The segment files in a camera's folder.
fn files(folder: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .map(|entry| entry.unwrap().path())
                .filter(|path| path.extension().is_some_and(|e| e == "mp4"))
                .collect()
        })
        .unwrap_or_default()
}

/// The `[record]` section plus one live camera `cam` at `url`, sampled at 1 fps.
fn config(
    dir: &Path,
    services: &Services,
    prefix: &str,
    http_port: u16,
    record: &str,
    url: &str,
) -> PathBuf {
    let toml = format!("{record}\n[[streams]]\nid = \"cam\"\nuri = \"{url}\"\nsample_fps = 1.0\n");
    write_config_toml(
        dir,
        services,
        &unique("argus.test.recording"),
        prefix,
        http_port,
        &toml,
    )
}

fn start(config: &Path, http_port: u16, log: &str) -> Argus {
    Argus::start(
        config,
        &[],
        artifacts_dir().join(log),
        format!("http://127.0.0.1:{http_port}"),
    )
}

fn running(argus: &Argus) {
    wait_for_streams(argus, Duration::from_secs(60), "the camera to run", |s| {
        s.iter()
            .any(|s| s["id"] == "cam" && s["state"] == "running")
    });
}

/// GStreamer's discoverer's duration of a file, and whether a frame of it decodes.
fn play(path: &Path) -> (Duration, u64) {
    gst::init().unwrap();
    let discoverer = gstreamer_pbutils::Discoverer::new(gst::ClockTime::from_seconds(10)).unwrap();
    let uri = format!("file://{}", path.display());
    let info = discoverer
        .discover_uri(&uri)
        .unwrap_or_else(|e| panic!("{} does not play: {e}", path.display()));
    let duration = Duration::from_nanos(info.duration().unwrap().nseconds());
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! decodebin ! videoconvert ! video/x-raw,format=I420 ! fakesink name=out",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let frames = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = frames.clone();
    pipeline
        .by_name("out")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    let end = pipeline.bus().unwrap().timed_pop_filtered(
        gst::ClockTime::from_seconds(60),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(
        end.map(|m| m.type_()),
        Some(gst::MessageType::Eos),
        "{} decodes to its end",
        path.display()
    );
    (duration, frames.load(std::sync::atomic::Ordering::Relaxed))
}

fn seconds(d: chrono::Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

#[test]
fn a_live_camera_recorded_for_two_minutes_gives_segments_that_match_the_index_and_play() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let recordings = dir.path().join("recordings");
    let server = RtspServer::serve_live(&["/cam"], 0);
    let prefix = unique("argus-test-recording");
    let http_port = free_port();
    let record = format!(
        "[record]\nmode = \"continuous\"\ndir = \"{}\"\nsegment_s = 30.0\n\
         [record.retention]\nmin_free_bytes = 0\ninterval_s = 5\n",
        recordings.display()
    );
    let config = config(
        dir.path(),
        &services,
        &prefix,
        http_port,
        &record,
        &server.url("/cam"),
    );
    let mut argus = start(&config, http_port, "recording_two_minutes.argus.log");
    running(&argus);
    let recording_since = Utc::now();
    // Two minutes and a half segment: the last one is cut short by the stop.
    std::thread::sleep(Duration::from_secs(135));
    // A graceful stop closes the open segment: cut short, it still plays and is indexed.
    let stopped = Utc::now();
    assert_eq!(argus.terminate(), 0, "log:\n{}", argus.logs());

    let segments = indexed(&services, &prefix, "cam");
    let on_disk = files(&recordings.join("cam"));
    let listed: BTreeSet<PathBuf> = segments.iter().map(|s| s.path.clone()).collect();
    assert_eq!(listed, on_disk, "the index lists exactly the files on disk");
    assert!(
        segments.len() >= 5,
        "2 minutes in 30 s segments, plus the one cut short: {segments:#?}"
    );
    for segment in &segments {
        let span = seconds(segment.end - segment.start);
        assert_eq!(
            std::fs::metadata(&segment.path).unwrap().len(),
            segment.bytes,
            "{segment:?}"
        );
        let (duration, frames) = play(&segment.path);
        assert!(
            (duration.as_secs_f64() - span).abs() <= 1.0,
            "{}: the discoverer reads {duration:?}, the index spans {span} s",
            segment.path.display()
        );
        // 5 fps camera.
        assert!(
            frames as f64 >= span * 5.0 * 0.9,
            "{}: {frames} frames decode from {span} s",
            segment.path.display()
        );
    }
    for pair in segments.windows(2) {
        let step = seconds(pair[1].start - pair[0].end);
        assert!(
            (-0.001..0.5).contains(&step),
            "consecutive segments meet, without overlap: {pair:#?}"
        );
        let span = seconds(pair[0].end - pair[0].start);
        assert!(
            (29.0..32.0).contains(&span),
            "a full segment is 30 s (to the key frame after): {span}"
        );
    }
    let first = segments.first().unwrap();
    let last = segments.last().unwrap();
    assert!(
        seconds(first.start - recording_since).abs() < 10.0,
        "recording starts with the stream: {} vs {recording_since}",
        first.start
    );
    assert!(
        seconds(stopped - last.end).abs() < 3.0,
        "the last segment runs until the stop: {} vs {stopped}",
        last.end
    );
    assert!(seconds(last.end - first.start) >= 130.0);
    assert!(
        seconds(last.end - last.start) < 25.0,
        "the last segment was cut short by the stop: {last:?}"
    );
}

#[test]
fn retention_with_a_tiny_budget_deletes_the_oldest_segments_first() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let recordings = dir.path().join("recordings");
    let server = RtspServer::serve_live(&["/cam"], 0);
    let prefix = unique("argus-test-recording");
    let http_port = free_port();
    let budget = 60_000;
    let record = format!(
        "[record]\nmode = \"continuous\"\ndir = \"{}\"\nsegment_s = 2.0\n\
         [record.retention]\nmax_bytes_per_camera = {budget}\nmin_free_bytes = 0\ninterval_s = 1\n",
        recordings.display()
    );
    let config = config(
        dir.path(),
        &services,
        &prefix,
        http_port,
        &record,
        &server.url("/cam"),
    );
    let mut argus = start(&config, http_port, "recording_retention.argus.log");
    running(&argus);
    let deleted = || {
        argus
            .metric(
                "argus_recording_segments_deleted_total",
                &["reason=\"camera_budget\""],
            )
            .unwrap_or(0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while deleted() < 3.0 {
        assert!(
            Instant::now() < deadline,
            "retention deleted no segments; log:\n{}",
            argus.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(argus.terminate(), 0);

    let segments = indexed(&services, &prefix, "cam");
    let listed: BTreeSet<PathBuf> = segments.iter().map(|s| s.path.clone()).collect();
    assert_eq!(
        listed,
        files(&recordings.join("cam")),
        "the index and the disk agree"
    );
    assert!(!segments.is_empty(), "the newest segments are kept");
    // Retention ran every second; the last segments closed at the stop may add one over.
    let bytes: u64 = segments.iter().map(|s| s.bytes).sum();
    let largest = segments.iter().map(|s| s.bytes).max().unwrap();
    assert!(
        bytes <= budget + 2 * largest,
        "{bytes} bytes kept against a budget of {budget}"
    );
    // What retention deleted is older than everything kept: the index says so for the spans
    // before the oldest kept segment.
    let deleted_until: i64 = redis::cmd("GET")
        .arg(format!("{prefix}:recordings:cam:deleted_until"))
        .query(&mut redis(&services))
        .unwrap();
    let oldest = segments.first().unwrap();
    assert!(
        deleted_until <= oldest.start.timestamp_millis() + 1,
        "deleted until {deleted_until}, the oldest kept starts at {}",
        oldest.start
    );
    // Files named by their start: every deleted one is older than the oldest kept.
    let oldest_name: i64 = oldest
        .path
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        deleted_until > oldest_name - 10_000,
        "the deleted spans end where the kept ones begin"
    );
}

/// A tmpfs of the test's own, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, bytes: u64) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("tmpfs")
            .arg(at)
            .status()
            .expect("`mount` runs");
        assert!(
            status.success(),
            "mounting a {bytes}-byte tmpfs at {} failed: the disk floor test needs root \
             (CAP_SYS_ADMIN) to make a small filesystem",
            at.display()
        );
        Self(at.to_owned())
    }

    fn free(&self) -> u64 {
        let output = std::process::Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.0)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn below_the_disk_floor_recording_pauses_and_analysis_goes_on() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("small"), 24 << 20);
    let recordings = disk.0.join("recordings");
    let server = RtspServer::serve_live(&["/cam"], 0);
    let prefix = unique("argus-test-recording");
    let http_port = free_port();
    let floor: u64 = 8 << 20;
    let record = format!(
        "[record]\nmode = \"continuous\"\ndir = \"{}\"\nsegment_s = 2.0\n\
         [record.retention]\nmin_free_bytes = {floor}\ninterval_s = 1\n",
        recordings.display()
    );
    let config = config(
        dir.path(),
        &services,
        &prefix,
        http_port,
        &record,
        &server.url("/cam"),
    );
    let argus = start(&config, http_port, "recording_disk_floor.argus.log");
    running(&argus);
    let metric = |name: &str, labels: &[&str]| argus.metric(name, labels).unwrap_or(0.0);
    argus_e2e::wait_until(Duration::from_secs(30), "a first segment", || {
        metric("argus_recording_segments_total", &["camera=\"cam\""]) >= 1.0
    });
    assert_eq!(metric("argus_recording_paused", &[]), 0.0);

    // Fill the disk to just above the floor: the camera's own video takes it below.
    let filler = disk.0.join("filler");
    let fill = disk.free().saturating_sub(floor + 100_000);
    std::fs::write(&filler, vec![1u8; fill as usize]).unwrap();
    argus_e2e::wait_until(Duration::from_secs(60), "recording to pause", || {
        metric("argus_recording_paused", &[]) == 1.0
    });
    assert!(argus.logs().contains("recording paused"), "the log says so");
    // The segment open when it paused is closed and indexed just after.
    std::thread::sleep(Duration::from_secs(2));
    let written = metric("argus_recording_segments_total", &["camera=\"cam\""]);
    let analysed = metric("argus_frames_analysed_total", &["stream=\"cam\""]);
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        metric("argus_frames_analysed_total", &["stream=\"cam\""]) >= analysed + 3.0,
        "analysis goes on while recording is paused"
    );
    assert_eq!(
        metric("argus_recording_segments_total", &["camera=\"cam\""]),
        written,
        "no segment is written while paused"
    );
    assert!(disk.free() > floor / 2, "the disk did not fill up");
    let streams = argus.get_json("/api/v1/streams").unwrap();
    assert_eq!(streams["streams"][0]["state"], "running", "{streams}");

    // Room again: recording resumes at a key frame.
    std::fs::remove_file(&filler).unwrap();
    argus_e2e::wait_until(Duration::from_secs(30), "recording to resume", || {
        metric("argus_recording_paused", &[]) == 0.0
    });
    argus_e2e::wait_until(Duration::from_secs(30), "a segment after resuming", || {
        metric("argus_recording_segments_total", &["camera=\"cam\""]) > written
    });
    drop(argus);
    // Every segment written around the pause plays.
    for segment in indexed(&services, &prefix, "cam") {
        let (_, frames) = play(&segment.path);
        assert!(frames > 0, "{segment:?}");
    }
}

#[test]
fn at_start_up_the_index_and_the_disk_are_reconciled_and_removed_cameras_cleaned_up() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let recordings = dir.path().join("recordings");
    let server = RtspServer::serve_live(&["/cam"], 0);
    let prefix = unique("argus-test-recording");
    let http_port = free_port();
    let record = format!(
        "[record]\nmode = \"continuous\"\ndir = \"{}\"\nsegment_s = 2.0\n\
         [record.retention]\nmin_free_bytes = 0\ninterval_s = 60\n",
        recordings.display()
    );
    let config = config(
        dir.path(),
        &services,
        &prefix,
        http_port,
        &record,
        &server.url("/cam"),
    );
    let mut argus = start(&config, http_port, "recording_reconcile_1.argus.log");
    running(&argus);
    argus_e2e::wait_until(Duration::from_secs(30), "three segments", || {
        indexed(&services, &prefix, "cam").len() >= 3
    });
    // Killed: the segment being written is left unindexed, without its MP4 index.
    argus.kill();
    let segments = indexed(&services, &prefix, "cam");
    let folder = recordings.join("cam");
    let unindexed_at_kill: Vec<PathBuf> = files(&folder)
        .into_iter()
        .filter(|path| !segments.iter().any(|s| &s.path == path))
        .collect();
    // One indexed file lost, one playable file the index does not know (a crash between
    // closing and indexing), and a camera that is no longer configured.
    std::fs::remove_file(&segments[0].path).unwrap();
    let stray = folder.join("1700000000000.mp4");
    std::fs::copy(&segments[1].path, &stray).unwrap();
    let gone = recordings.join("gone");
    std::fs::create_dir_all(&gone).unwrap();
    let gone_file = gone.join("1700000000000.mp4");
    std::fs::copy(&segments[1].path, &gone_file).unwrap();
    let gone_entry = serde_json::json!({
        "camera": "gone", "start": "2023-11-14T22:13:20Z", "end": "2023-11-14T22:13:22Z",
        "path": gone_file, "bytes": 1
    });
    let _: () = redis::pipe()
        .cmd("ZADD")
        .arg(format!("{prefix}:recordings:gone:segments"))
        .arg(1_700_000_000_000i64)
        .arg(gone_entry.to_string())
        .cmd("SADD")
        .arg(format!("{prefix}:recordings:cameras"))
        .arg("gone")
        .query(&mut redis(&services))
        .unwrap();

    let _argus = start(&config, http_port, "recording_reconcile_2.argus.log");
    argus_e2e::wait_until(
        Duration::from_secs(60),
        "the removed camera's recordings to be cleaned up",
        || !gone.exists() && indexed(&services, &prefix, "gone").is_empty(),
    );
    argus_e2e::wait_until(
        Duration::from_secs(30),
        "the stray file to be indexed",
        || {
            indexed(&services, &prefix, "cam")
                .iter()
                .any(|s| s.path == stray)
        },
    );
    let after = indexed(&services, &prefix, "cam");
    assert!(
        !after.iter().any(|s| s.path == segments[0].path),
        "the entry of the lost file is removed"
    );
    let stray_entry = after.iter().find(|s| s.path == stray).unwrap();
    assert_eq!(stray_entry.start.timestamp_millis(), 1_700_000_000_000);
    assert!(
        (seconds(stray_entry.end - stray_entry.start)
            - seconds(segments[1].end - segments[1].start))
        .abs()
            <= 1.0,
        "indexed with the duration the discoverer reads: {stray_entry:?}"
    );
    for path in unindexed_at_kill {
        assert!(
            !path.exists() || after.iter().any(|s| s.path == path),
            "{} (cut off by the kill) is deleted, or indexed if it plays",
            path.display()
        );
    }
    let cameras: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{prefix}:recordings:cameras"))
        .query(&mut redis(&services))
        .unwrap();
    assert!(!cameras.contains(&"gone".to_string()), "{cameras:?}");
}

#[test]
fn events_mode_keeps_the_segments_near_motion_and_deletes_the_rest() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let recordings = dir.path().join("recordings");
    let moving = RtspServer::serve_live(&["/moving"], 0);
    let still = RtspServer::serve_pattern("/still", "black");
    let prefix = unique("argus-test-recording");
    let http_port = free_port();
    let toml = format!(
        "[record]\nmode = \"events\"\ndir = \"{}\"\nsegment_s = 2.0\npre_roll_s = 0.0\npost_roll_s = 0.0\n\
         events_include_motion = true\n[record.retention]\nmin_free_bytes = 0\ninterval_s = 60\n\
         [[streams]]\nid = \"moving\"\nuri = \"{}\"\nsample_fps = 1.0\n\
         [[streams]]\nid = \"still\"\nuri = \"{}\"\nsample_fps = 1.0\n",
        recordings.display(),
        moving.url("/moving"),
        still.url("/still"),
    );
    let config = write_config_toml(
        dir.path(),
        &services,
        &unique("argus.test.recording"),
        &prefix,
        http_port,
        &toml,
    );
    let argus = start(&config, http_port, "recording_events.argus.log");
    wait_for_streams(&argus, Duration::from_secs(60), "both cameras", |s| {
        s.iter().filter(|s| s["state"] == "running").count() == 2
    });
    let started = Utc::now();
    // A segment without a mark is decided a minute after it ends (marks may come late).
    argus_e2e::wait_until(
        Duration::from_secs(120),
        "the still camera's unmarked segments to be deleted",
        || {
            argus
                .metric(
                    "argus_recording_segments_deleted_total",
                    &["reason=\"events\""],
                )
                .unwrap_or(0.0)
                >= 3.0
        },
    );
    // Every segment that ended 66 s ago has been decided (a minute, plus the 5 s between
    // decisions); give the cameras time to have some.
    let wait = (started + chrono::Duration::seconds(80) - Utc::now())
        .to_std()
        .unwrap_or_default();
    std::thread::sleep(wait);
    let decided = Utc::now() - chrono::Duration::seconds(66);
    let moving_kept = indexed(&services, &prefix, "moving");
    let still_kept = indexed(&services, &prefix, "still");
    assert!(
        moving_kept
            .iter()
            .any(|s| s.end < decided && s.start < started + chrono::Duration::seconds(5)),
        "the moving camera's early segments are kept: {moving_kept:#?}"
    );
    assert!(
        still_kept.iter().all(|s| s.end >= decided),
        "the still camera keeps no decided segment: {still_kept:#?}"
    );
    for (camera, kept) in [("moving", &moving_kept), ("still", &still_kept)] {
        let listed: BTreeSet<PathBuf> = kept.iter().map(|s| s.path.clone()).collect();
        let on_disk = files(&recordings.join(camera));
        // The segment open now is on disk and not yet indexed.
        assert!(
            listed.is_subset(&on_disk) && on_disk.len() <= listed.len() + 1,
            "{camera}: index {listed:?}, disk {on_disk:?}"
        );
    }
}

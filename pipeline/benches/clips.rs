//! What a clip costs: remuxing recorded segments (`recordings::clip::remux`, what
//! `/api/v1/clips` does for H.264/H.265) against decoding and encoding the same span
//! (`moments::clip::cut`, the WebM path other codecs take), on the same recording.
//!
//! The recording: 60 s of 1280x720 at 25 fps, H.264 (x264 ultrafast, zerolatency, a key
//! frame each second), written by `splitmuxsink` into 10 s MP4 segments as a camera's
//! recording is, and the same frames as one MP4 for the encoder. Rounds interleave the
//! variants; medians are reported.
//!
//! ```sh
//! source deploy/env.sh && cargo bench -p argus-pipeline --bench clips
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use argus::recordings::clip::{remux, Source};
use chrono::{DateTime, Utc};
use gstreamer as gst;
use gstreamer::prelude::*;

const ROUNDS: usize = 5;

fn run(description: &str) {
    let pipeline = gst::parse::launch(description).expect("valid pipeline");
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    for message in bus.iter_timed(gst::ClockTime::from_seconds(600)) {
        match message.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(error) => panic!("{}", error.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

fn record(dir: &Path) -> (Vec<PathBuf>, PathBuf) {
    let whole = dir.join("whole.mp4");
    run(&format!(
        "videotestsrc pattern=ball num-buffers=1500 \
         ! video/x-raw,format=I420,width=1280,height=720,framerate=25/1 \
         ! x264enc speed-preset=ultrafast tune=zerolatency key-int-max=25 ! h264parse ! tee name=t \
         t. ! queue ! splitmuxsink max-size-time=10000000000 muxer-factory=mp4mux \
              location=\"{dir}/segment-%03d.mp4\" \
         t. ! queue ! mp4mux ! filesink location=\"{whole}\"",
        dir = dir.display(),
        whole = whole.display(),
    ));
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().contains("segment-"))
        .collect();
    segments.sort();
    (segments, whole)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn main() {
    gst::init().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (segments, whole) = record(dir.path());
    assert_eq!(segments.len(), 6, "{segments:?}");
    let t0: DateTime<Utc> = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let sources: Vec<Source> = segments
        .iter()
        .enumerate()
        .map(|(n, path)| Source {
            path: path.clone(),
            start: t0 + chrono::Duration::seconds(10 * n as i64),
        })
        .collect();
    let at = |s: i64| t0 + chrono::Duration::milliseconds(s);
    let out = dir.path().join("clip.mp4");

    let mut remux_10 = Vec::new();
    let mut remux_50 = Vec::new();
    let mut encode_10 = Vec::new();
    for _ in 0..ROUNDS {
        // 15.5 s to 25.5 s: two segments.
        let started = Instant::now();
        let cut = remux(&sources, at(15_500), at(25_500), &out).unwrap();
        remux_10.push(started.elapsed());
        assert_eq!(cut.frames, 263);
        // 5 s to 55 s: all six.
        let started = Instant::now();
        remux(&sources, at(5_000), at(55_000), &out).unwrap();
        remux_50.push(started.elapsed());
        let started = Instant::now();
        let webm = argus::moments::clip::cut(
            &whole,
            Duration::from_millis(15_500),
            Duration::from_secs(10),
        )
        .unwrap();
        encode_10.push(started.elapsed());
        assert!(webm.len() > 10_000);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (r10, r50, e10) = (median(remux_10), median(remux_50), median(encode_10));
    println!("clips of 720p25 H.264, median of {ROUNDS} interleaved rounds:");
    println!("  remux 10 s (2 segments)        {:8.1} ms", ms(r10));
    println!("  remux 50 s (6 segments)        {:8.1} ms", ms(r50));
    println!(
        "  decode + WebM encode 10 s      {:8.1} ms  ({:.0}x the remux)",
        ms(e10),
        ms(e10) / ms(r10)
    );
}

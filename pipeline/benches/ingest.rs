//! Ingest benchmarks.
//!
//!     source deploy/env.sh && cargo bench -p argus-pipeline --bench ingest [-- --files-only]
//!
//! 1. Decode + sample throughput of Argus's GStreamer pipeline on a file, as a ratio against
//!    the bare decoder (`gst-launch-1.0 filesrc ! decodebin ! fakesink`) on the same file in
//!    the same run. Argus does more than the baseline (rate sampling, colour conversion and
//!    scaling of the kept frames, copying them out to Rust), so the ratio says how much of the
//!    decoder's own speed survives that work. The goal is ≥ 0.9.
//! 2. Concurrent 720p25 H.264 RTSP cameras sampled at 1 fps: for growing N, whether every
//!    camera's frames are all decoded in real time, and CPU and memory per camera. The cameras
//!    are served from this process (pre-encoded file, no encoding: `filesrc ! qtdemux !
//!    rtph264pay`), so their small serving cost is included in the CPU figure.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argus::config::{DropPolicy, RtspTransport};
use argus::ingest::{self, Decoder, DecoderSettings, FrameQueue, Source};
use futures::StreamExt;
use gstreamer as gst;

const SECONDS: u32 = 60;
const FPS: u32 = 25;
/// Paired runs: the machine is shared and noisy, so each run times the baseline and Argus
/// back to back (alternating which goes first) and the figure is the median of the per-run
/// ratios.
const RUNS: usize = 7;

fn main() {
    ingest::init().expect("GStreamer");
    let dir = std::env::temp_dir().join(format!("argus-bench-ingest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let video = dir.join("720p25.mp4");
    println!("encoding {SECONDS} s of 1280x720 {FPS} fps H.264 ...");
    encode(&video);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut baseline = Vec::new();
    let mut argus_1fps = Vec::new();
    let mut argus_full = Vec::new();
    let mut paired = Vec::new();
    for run in 0..RUNS {
        if run % 2 == 0 {
            baseline.push(gst_launch_decode(&video));
            argus_1fps.push(runtime.block_on(argus_decode(&video, 1.0)));
        } else {
            argus_1fps.push(runtime.block_on(argus_decode(&video, 1.0)));
            baseline.push(gst_launch_decode(&video));
        }
        argus_full.push(runtime.block_on(argus_decode(&video, FPS as f64)));
        paired.push(baseline[run].as_secs_f64() / argus_1fps[run].as_secs_f64());
        println!(
            "run {}: gst-launch {:.2} s, argus 1 fps {:.2} s (ratio {:.2}), argus {FPS} fps {:.2} s",
            run + 1,
            baseline[run].as_secs_f64(),
            argus_1fps[run].as_secs_f64(),
            paired[run],
            argus_full[run].as_secs_f64()
        );
    }
    paired.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "1 fps throughput vs gst-launch, median of {RUNS} paired runs: {:.2} (range {:.2}-{:.2})",
        paired[RUNS / 2],
        paired[0],
        paired[RUNS - 1]
    );
    let (base, one, full) = (median(baseline), median(argus_1fps), median(argus_full));
    let frames = (SECONDS * FPS) as f64;
    println!();
    println!("| pipeline | median time | decoded frames/s | throughput vs gst-launch |");
    println!("|---|---|---|---|");
    for (name, time) in [
        ("gst-launch-1.0 filesrc ! decodebin ! fakesink", base),
        ("argus ingest, sampling 1 fps (BGR, copied to Rust)", one),
        (
            "argus ingest, every frame (25 fps, BGR, copied to Rust)",
            full,
        ),
    ] {
        println!(
            "| {name} | {:.2} s | {:.0} | {:.2} |",
            time.as_secs_f64(),
            frames / time.as_secs_f64(),
            base.as_secs_f64() / time.as_secs_f64()
        );
    }
    println!();
    // `cargo bench --bench ingest -- --files-only` stops here.
    if !std::env::args().any(|arg| arg == "--files-only") {
        concurrent_cameras(&video, &runtime);
    }
    std::fs::remove_dir_all(dir).ok();
}

const CAMERA_SECONDS: u64 = 12;

fn concurrent_cameras(video: &Path, runtime: &tokio::runtime::Runtime) {
    use gstreamer_rtsp_server as rtsp;
    use gstreamer_rtsp_server::prelude::*;

    let context = gst::glib::MainContext::new();
    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service("0");
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(&format!(
        "( filesrc location=\"{}\" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )",
        video.display()
    ));
    // One media per client: each camera is an independent stream, as with real cameras.
    factory.set_shared(false);
    server.mount_points().unwrap().add_factory("/cam", factory);
    let _source = server.attach(Some(&context)).unwrap();
    let port = server.bound_port();
    let main_loop = gst::glib::MainLoop::new(Some(&context), false);
    let serving = main_loop.clone();
    let thread = std::thread::spawn(move || serving.run());

    println!("| cameras | decoded fps per camera (min / expected 25) | all frames decoded | CPU per camera (cores) | memory per camera (MiB) |");
    println!("|---|---|---|---|---|");
    for cameras in [1usize, 4, 8, 16, 24, 32, 40] {
        let (cpu_before, rss_before) = process_usage();
        let started = Instant::now();
        let (counts, (cpu_after, rss_after)) = runtime.block_on(run_cameras(port, cameras));
        let elapsed = started.elapsed().as_secs_f64();
        let min_fps = counts
            .iter()
            .map(|&n| n as f64 / CAMERA_SECONDS as f64)
            .fold(f64::INFINITY, f64::min);
        // Real time, less one GOP of start-up (the first key frame) per camera.
        let kept_up = counts
            .iter()
            .all(|&n| n as f64 >= (CAMERA_SECONDS as f64 - 2.0) * FPS as f64);
        println!(
            "| {cameras} | {min_fps:.1} | {} | {:.2} | {:.0} |",
            if kept_up { "yes" } else { "no" },
            (cpu_after - cpu_before) / elapsed / cameras as f64,
            (rss_after.saturating_sub(rss_before)) as f64 / 1048576.0 / cameras as f64,
        );
        if !kept_up {
            break;
        }
    }
    main_loop.quit();
    let _ = thread.join();
}

/// Runs `cameras` RTSP streams through Argus's decoder at 1 fps sampling for
/// `CAMERA_SECONDS`; the frames each decoded, and the process's usage while they still run.
async fn run_cameras(port: i32, cameras: usize) -> (Vec<u64>, (f64, u64)) {
    let mut running = Vec::new();
    for camera in 0..cameras {
        let source = Source::parse(&format!("rtsp://127.0.0.1:{port}/cam")).unwrap();
        let queue = Arc::new(FrameQueue::new(
            4,
            DropPolicy::DropOldest,
            prometheus::IntCounter::new("dropped", "bench").unwrap(),
        ));
        let settings = DecoderSettings {
            stream_id: Arc::from(format!("cam{camera}").as_str()),
            sample_fps: 1.0,
            max_width: 1280,
            start_time: chrono::Utc::now(),
            rtsp_transport: RtspTransport::Tcp,
            sequence: Arc::new(AtomicU64::new(0)),
        };
        let decoded = prometheus::IntCounter::new("decoded", "bench").unwrap();
        let decoder = Decoder::start(&source, settings, queue.clone(), decoded.clone()).unwrap();
        let drain = queue.clone();
        let drainer = tokio::spawn(async move { while drain.pop().await.is_some() {} });
        running.push((decoder, queue, decoded, drainer));
    }
    tokio::time::sleep(Duration::from_secs(CAMERA_SECONDS)).await;
    let counts: Vec<u64> = running
        .iter()
        .map(|(_, _, decoded, _)| decoded.get())
        .collect();
    let usage = process_usage();
    for (decoder, queue, _, drainer) in running {
        drop(decoder);
        queue.close();
        let _ = drainer.await;
    }
    (counts, usage)
}

/// CPU seconds used by this process so far, and its resident memory in bytes.
fn process_usage() -> (f64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields after the command name: utime is the 12th, stime the 13th (0-based 11, 12).
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let rss_pages = fields
        .get(21)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    (cpu, rss_pages * 4096)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn encode(path: &Path) {
    let status = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            &format!("num-buffers={}", SECONDS * FPS),
            "pattern=ball",
        ])
        .args([
            "!",
            &format!("video/x-raw,width=1280,height=720,framerate={FPS}/1"),
        ])
        .args([
            "!",
            "x264enc",
            "speed-preset=ultrafast",
            "key-int-max=50",
            "!",
            "h264parse",
            "!",
            "mp4mux",
        ])
        .args(["!", "filesink", &format!("location={}", path.display())])
        .status()
        .expect("gst-launch-1.0 runs");
    assert!(status.success());
}

fn gst_launch_decode(path: &Path) -> Duration {
    let started = Instant::now();
    let status = Command::new("gst-launch-1.0")
        .args(["-q", "filesrc", &format!("location={}", path.display())])
        .args(["!", "decodebin", "!", "fakesink", "sync=false"])
        .status()
        .expect("gst-launch-1.0 runs");
    assert!(status.success());
    started.elapsed()
}

async fn argus_decode(path: &Path, sample_fps: f64) -> Duration {
    let source = Source::parse(&path.display().to_string()).unwrap();
    let queue = Arc::new(FrameQueue::new(
        2,
        DropPolicy::DropOldest,
        prometheus::IntCounter::new("dropped", "bench").unwrap(),
    ));
    let settings = DecoderSettings {
        stream_id: Arc::from("bench"),
        sample_fps,
        max_width: 1280,
        start_time: chrono::Utc::now(),
        rtsp_transport: RtspTransport::Tcp,
        sequence: Arc::new(AtomicU64::new(0)),
    };
    let decoded = prometheus::IntCounter::new("decoded", "bench").unwrap();
    let started = Instant::now();
    let decoder = Decoder::start(&source, settings, queue.clone(), decoded.clone()).unwrap();
    let mut bus = decoder.bus().stream();
    let mut frames = 0u64;
    loop {
        tokio::select! {
            Some(_) = queue.pop() => frames += 1,
            Some(message) = bus.next() => match message.view() {
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(error) => panic!("{}", error.error()),
                _ => {}
            },
        }
    }
    while queue.try_pop().is_some() {
        frames += 1;
    }
    let elapsed = started.elapsed();
    assert_eq!(decoded.get(), (SECONDS * FPS) as u64, "every frame decoded");
    assert_eq!(
        frames,
        (SECONDS as f64 * sample_fps) as u64,
        "every sampled frame delivered"
    );
    elapsed
}

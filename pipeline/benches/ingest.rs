//! Ingest benchmarks.
//!
//!     source deploy/env.sh && cargo bench -p argus-pipeline --bench ingest \
//!         [-- [--files-only] [--video PATH]]
//!
//! 1. Decode + sample throughput of Argus's GStreamer pipeline on a file, as a ratio against
//!    the bare decoder (`filesrc ! decodebin ! fakesink`, built in this process and timed the
//!    same way, warm against warm) on the same file in the same run. Argus does more than the baseline (rate sampling, colour conversion and
//!    scaling of the kept frames, copying them out to Rust), so the ratio says how much of the
//!    decoder's own speed survives that work. The goal is ≥ 0.9. The CPU time of both is
//!    printed too: on a shared machine it moves less than wall time. The input is generated
//!    (60 s of 720p25 H.264, 8-bit 4:2:0 as cameras send it); `--video PATH` uses yours (an
//!    MP4 with H.264 when the camera part runs too).
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
use argus::source::{self, Decoder, DecoderSettings, FrameQueue, Source};
use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;

const SECONDS: u32 = 60;
const FPS: u32 = 25;
/// Paired runs: the machine is shared and noisy, so each run times the baseline and Argus
/// back to back (alternating which goes first) and the figure is the median of the per-run
/// ratios.
const RUNS: usize = 9;

/// Wall-clock time and CPU time (all threads) of one decode.
#[derive(Clone, Copy)]
struct Timing {
    wall: f64,
    cpu: f64,
}

fn main() {
    source::init().expect("GStreamer");
    let dir = std::env::temp_dir().join(format!("argus-bench-ingest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // `-- --video PATH` benches the decode of your own recording instead of the generated one.
    let args: Vec<String> = std::env::args().collect();
    let chosen = args
        .iter()
        .position(|arg| arg == "--video")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from);
    let generated = dir.join("720p25.mp4");
    let video = match chosen {
        Some(path) => {
            assert!(path.is_file(), "--video {}: no such file", path.display());
            println!("input: {}", path.display());
            path
        }
        None => {
            println!("encoding {SECONDS} s of 1280x720 {FPS} fps H.264 (8-bit 4:2:0) ...");
            encode(&generated);
            generated.clone()
        }
    };

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut baseline = Vec::new();
    let mut argus_1fps = Vec::new();
    let mut argus_full = Vec::new();
    let decoded_frames = std::cell::Cell::new(None);
    for run in 0..RUNS {
        let argus_run = |fps: f64| {
            let (timing, decoded, delivered) = runtime.block_on(argus_decode(&video, fps));
            // Every run decodes the whole file, whatever the sampling rate.
            assert_eq!(decoded_frames.get().unwrap_or(decoded), decoded);
            decoded_frames.set(Some(decoded));
            if video == generated {
                assert_eq!(decoded, (SECONDS * FPS) as u64, "every frame decoded");
                let expected = (SECONDS as f64 * fps) as u64;
                assert_eq!(delivered, expected, "every sampled frame delivered");
            }
            timing
        };
        let bare_run = |decoded_frames: Option<u64>| {
            let (timing, decoded) = runtime.block_on(bare_decode(&video));
            assert_eq!(
                Some(decoded),
                decoded_frames,
                "the bare decoder decoded the frames Argus did"
            );
            timing
        };
        if run % 2 == 0 {
            // Argus first in even runs, so `decoded_frames` is known for the check.
            let one = argus_run(1.0);
            baseline.push(bare_run(decoded_frames.get()));
            argus_1fps.push(one);
        } else {
            baseline.push(bare_run(decoded_frames.get()));
            argus_1fps.push(argus_run(1.0));
        }
        argus_full.push(argus_run(FPS as f64));
        let (base, one, full) = (baseline[run], argus_1fps[run], argus_full[run]);
        println!(
            "run {}: bare decoder {:.2} s ({:.2} s CPU), argus 1 fps {:.2} s ({:.2} s CPU), \
             ratio {:.2} (CPU x{:.2}), argus {FPS} fps {:.2} s",
            run + 1,
            base.wall,
            base.cpu,
            one.wall,
            one.cpu,
            base.wall / one.wall,
            one.cpu / base.cpu,
            full.wall,
        );
    }
    let paired = |argus: &[Timing], ratio: fn(&Timing, &Timing) -> f64| {
        summary(
            baseline
                .iter()
                .zip(argus)
                .map(|(b, a)| ratio(b, a))
                .collect(),
        )
    };
    let frames = decoded_frames.get().unwrap_or(0) as f64;
    println!();
    println!("Median of {RUNS} paired runs (min-max), {frames} frames decoded per run:");
    println!();
    println!("| pipeline | median wall time | decoded frames/s | throughput vs bare decoder | CPU time vs bare decoder |");
    println!("|---|---|---|---|---|");
    let median_wall = |runs: &[Timing]| summary(runs.iter().map(|t| t.wall).collect()).0;
    println!(
        "| bare decoder in-process (filesrc ! decodebin ! fakesink) | {:.2} s | {:.0} | 1 | 1 |",
        median_wall(&baseline),
        frames / median_wall(&baseline)
    );
    for (name, runs) in [
        (
            "argus ingest, sampling 1 fps (BGR, copied to Rust)",
            &argus_1fps,
        ),
        (
            "argus ingest, every frame (25 fps, BGR, copied to Rust)",
            &argus_full,
        ),
    ] {
        let (throughput, low, high) = paired(runs, |base, argus| base.wall / argus.wall);
        let (cpu, cpu_low, cpu_high) = paired(runs, |base, argus| argus.cpu / base.cpu);
        println!(
            "| {name} | {:.2} s | {:.0} | {throughput:.2} ({low:.2}-{high:.2}) | {cpu:.2} ({cpu_low:.2}-{cpu_high:.2}) |",
            median_wall(runs),
            frames / median_wall(runs),
        );
    }
    println!();
    // `cargo bench --bench ingest -- --files-only` stops here.
    if !args.iter().any(|arg| arg == "--files-only") {
        concurrent_cameras(&video, &runtime);
    }
    std::fs::remove_dir_all(dir).ok();
}

/// Median, minimum and maximum.
fn summary(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(|a, b| a.total_cmp(b));
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

/// Each step starts its cameras, lets them settle (RTSP setup, first key frame: GOP = 2 s),
/// then measures them over a window.
const CAMERA_SETTLE: Duration = Duration::from_secs(4);
const CAMERA_WINDOW: Duration = Duration::from_secs(10);
/// A camera keeps up when it decodes at least this share of its frame rate over the window.
const KEEPS_UP: f64 = 0.98;

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

    let (_, idle_rss) = process_usage();
    println!(
        "Cameras settle {} s, then are measured over {} s; one keeps up when it decodes ≥ {:.0}% \
         of its {FPS} fps there.",
        CAMERA_SETTLE.as_secs(),
        CAMERA_WINDOW.as_secs(),
        KEEPS_UP * 100.0
    );
    println!();
    println!("| cameras | decoded fps per camera (min / mean, of {FPS}) | all keep up | CPU per camera (cores) | memory per camera (MiB) |");
    println!("|---|---|---|---|---|");
    for cameras in [
        1usize, 4, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 96, 112, 128,
    ] {
        let step = runtime.block_on(run_cameras(port, cameras));
        let window = CAMERA_WINDOW.as_secs_f64();
        let rates: Vec<f64> = step.decoded.iter().map(|&n| n as f64 / window).collect();
        let min_fps = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let mean_fps = rates.iter().sum::<f64>() / cameras as f64;
        let kept_up = min_fps >= KEEPS_UP * FPS as f64;
        println!(
            "| {cameras} | {min_fps:.1} / {mean_fps:.1} | {} | {:.3} | {:.1} |",
            if kept_up { "yes" } else { "no" },
            step.cpu_seconds / window / cameras as f64,
            step.rss.saturating_sub(idle_rss) as f64 / 1048576.0 / cameras as f64,
        );
        if !kept_up {
            break;
        }
    }
    main_loop.quit();
    let _ = thread.join();
}

/// What one step of the camera benchmark measured over its window.
struct CameraStep {
    /// Frames each camera decoded in the window.
    decoded: Vec<u64>,
    /// CPU seconds the process used in the window.
    cpu_seconds: f64,
    /// Resident memory at the end of the window, in bytes.
    rss: u64,
}

/// Runs `cameras` RTSP streams through Argus's decoder at 1 fps sampling and measures them
/// over `CAMERA_WINDOW` after `CAMERA_SETTLE`.
async fn run_cameras(port: i32, cameras: usize) -> CameraStep {
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
            record: None,
        };
        let decoded = prometheus::IntCounter::new("decoded", "bench").unwrap();
        let decoder = Decoder::start(&source, settings, queue.clone(), decoded.clone()).unwrap();
        let drain = queue.clone();
        let drainer = tokio::spawn(async move { while drain.pop().await.is_some() {} });
        running.push((decoder, queue, decoded, drainer));
    }
    let counts = |running: &[(Decoder, Arc<FrameQueue>, prometheus::IntCounter, _)]| {
        running
            .iter()
            .map(|(_, _, decoded, _)| decoded.get())
            .collect::<Vec<u64>>()
    };
    tokio::time::sleep(CAMERA_SETTLE).await;
    let (settled, (cpu_settled, _)) = (counts(&running), process_usage());
    tokio::time::sleep(CAMERA_WINDOW).await;
    let (ended, (cpu_ended, rss)) = (counts(&running), process_usage());
    for (decoder, queue, _, drainer) in running {
        drop(decoder);
        queue.close();
        let _ = drainer.await;
    }
    CameraStep {
        decoded: ended.iter().zip(&settled).map(|(e, s)| e - s).collect(),
        cpu_seconds: cpu_ended - cpu_settled,
        rss,
    }
}

/// CPU seconds used by this process so far, and its resident memory in bytes.
fn process_usage() -> (f64, u64) {
    let (own, _, rss) = proc_stat();
    (own, rss)
}

/// CPU seconds used by this process's own threads and by its finished children, and its
/// resident memory in bytes, from `/proc/self/stat`.
fn proc_stat() -> (f64, f64, u64) {
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
    // Fields after the command name (0-based): utime 11, stime 12, cutime 13, cstime 14,
    // rss 21; times in clock ticks (100 per second on Linux).
    let own = (ticks(11) + ticks(12)) / 100.0;
    let children = (ticks(13) + ticks(14)) / 100.0;
    let rss_pages = fields
        .get(21)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    (own, children, rss_pages * 4096)
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
            // 8-bit 4:2:0, what cameras send; left open, x264enc would pick 10-bit 4:4:4.
            &format!("video/x-raw,format=I420,width=1280,height=720,framerate={FPS}/1"),
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

/// The bare decoder, `filesrc ! decodebin ! fakesink`, built with `gst::parse::launch` in this
/// process and timed exactly as Argus's decoder is: from building the pipeline to the
/// end-of-stream on its bus, read the same way, with the clock stopped before teardown. (An
/// earlier version ran `gst-launch-1.0` as a process, which also timed process start, the
/// plugin registry and teardown, and favoured Argus.) The frames it decoded, counted at the
/// sink, must equal Argus's: both did the same work.
async fn bare_decode(path: &Path) -> (Timing, u64) {
    let (cpu_before, _, _) = proc_stat();
    let started = Instant::now();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! decodebin ! fakesink name=sink sync=false",
        path.display()
    ))
    .expect("the bare decoder pipeline")
    .dynamic_cast::<gst::Pipeline>()
    .expect("parse::launch of a chain gives a pipeline");
    let decoded = Arc::new(AtomicU64::new(0));
    let counted = decoded.clone();
    pipeline
        .by_name("sink")
        .and_then(|sink| sink.static_pad("sink"))
        .expect("fakesink has a sink pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    let mut bus = pipeline.bus().expect("a pipeline has a bus").stream();
    pipeline.set_state(gst::State::Playing).unwrap();
    while let Some(message) = bus.next().await {
        match message.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(error) => panic!("{}", error.error()),
            _ => {}
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let (cpu_after, _, _) = proc_stat();
    pipeline.set_state(gst::State::Null).unwrap();
    let timing = Timing {
        wall,
        cpu: cpu_after - cpu_before,
    };
    (timing, decoded.load(std::sync::atomic::Ordering::Relaxed))
}

/// Decodes the whole file through Argus's ingest at `sample_fps`: the time it took, the
/// frames decoded and the sampled frames delivered.
async fn argus_decode(path: &Path, sample_fps: f64) -> (Timing, u64, u64) {
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
        record: None,
    };
    let decoded = prometheus::IntCounter::new("decoded", "bench").unwrap();
    let (cpu_before, _, _) = proc_stat();
    let started = Instant::now();
    let decoder = Decoder::start(&source, settings, queue.clone(), decoded.clone()).unwrap();
    let mut bus = decoder.messages();
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
    let wall = started.elapsed().as_secs_f64();
    let (cpu_after, _, _) = proc_stat();
    drop(decoder);
    let timing = Timing {
        wall,
        cpu: cpu_after - cpu_before,
    };
    (timing, decoded.get(), frames)
}

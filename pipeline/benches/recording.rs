//! What recording costs: 8 RTSP cameras (720p25 H.264) decoded and sampled by Argus's own
//! decoder, with recording on and off, alternating in one run. The cameras are served by a
//! child process (this benchmark run again with `ARGUS_BENCH_RTSP_PORT_FILE` set), so the
//! encoder's CPU is not in the measured process: only the decoders' (and the recording
//! branches') CPU time is read from `/proc/self/stat`.
//!
//! `source deploy/env.sh && cargo bench -p argus-pipeline --bench recording --profile dev`

use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

use argus::source::{
    Container, Decoder, DecoderSettings, DropPolicy, FrameQueue, RecordSettings, RtspTransport,
    Source,
};
use gstreamer as gst;

const CAMERAS: usize = 8;
/// Six rounds: a camera's decode is about 0.03 cores here, and one 20 s window's CPU time
/// varies by ±5 % on this shared box, as much as the effect measured.
const ROUNDS: usize = 6;
/// RTSP setup and the first key frame (GOP = 2 s) before a window is measured.
const SETTLE: Duration = Duration::from_secs(5);
const WINDOW: Duration = Duration::from_secs(20);

fn main() {
    if let Ok(port_file) = std::env::var("ARGUS_BENCH_RTSP_PORT_FILE") {
        return serve(Path::new(&port_file));
    }
    argus::source::init().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("port");
    let mut server = Command::new(std::env::current_exe().unwrap())
        .env("ARGUS_BENCH_RTSP_PORT_FILE", &port_file)
        .spawn()
        .unwrap();
    let port = wait_for_port(&port_file, &mut server);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!(
        "{CAMERAS} RTSP cameras, 1280x720 25 fps H.264 (x264 ultrafast, 2 Mbit/s, GOP 2 s), served by a \
         child process; Argus's decoder samples 1 fps. Load average before: {}",
        load()
    );
    println!(
        "Each window: {} s after {} s to settle; rounds alternate on/off.",
        WINDOW.as_secs(),
        SETTLE.as_secs()
    );
    println!();
    println!("| round | recording | decoded fps per camera | CPU per camera (cores) | written per camera (MB/s) |");
    println!("|---|---|---|---|---|");
    let mut cpu = [Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        for recording in [round % 2 == 1, round % 2 == 0] {
            let record_dir = dir.path().join(format!("round{round}-{recording}"));
            let (seconds, bytes, decoded) =
                runtime.block_on(run_cameras(port, recording.then_some(record_dir.as_path())));
            let fps = decoded as f64 / WINDOW.as_secs_f64() / CAMERAS as f64;
            let per_camera = seconds / WINDOW.as_secs_f64() / CAMERAS as f64;
            let rate = bytes as f64 / WINDOW.as_secs_f64() / CAMERAS as f64 / 1e6;
            cpu[recording as usize].push(per_camera);
            println!(
                "| {} | {} | {fps:.1} | {per_camera:.4} | {rate:.3} |",
                round + 1,
                if recording { "on" } else { "off" }
            );
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (off, on) = (mean(&cpu[0]), mean(&cpu[1]));
    // Each round's on/off pair ran back to back, so the load drifts less within a pair than
    // across the run: the median of the pairs' differences is the figure least moved by it.
    let mut paired: Vec<f64> = cpu[1]
        .iter()
        .zip(&cpu[0])
        .map(|(on, off)| (on / off - 1.0) * 100.0)
        .collect();
    paired.sort_by(f64::total_cmp);
    let median = (paired[(paired.len() - 1) / 2] + paired[paired.len() / 2]) / 2.0;
    println!();
    println!(
        "Mean CPU per camera: off {off:.4} cores, on {on:.4} cores: recording adds {:+.4} cores, {:+.1} %; \
         median of the rounds' paired differences {median:+.1} % (goal < 5 %). Load average after: {}",
        on - off,
        (on / off - 1.0) * 100.0,
        load()
    );
    let _ = server.kill();
    let _ = server.wait();
}

/// Runs the cameras for one window; the process's CPU seconds in it, the bytes recorded and
/// the frames decoded.
async fn run_cameras(port: u16, record: Option<&Path>) -> (f64, u64, u64) {
    let mut running = Vec::new();
    for camera in 0..CAMERAS {
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
            record: record.map(|dir| RecordSettings {
                dir: dir.join(format!("cam{camera}")),
                segment: Duration::from_secs(60),
                container: Container::Mp4,
                paused: Arc::new(AtomicBool::new(false)),
                on_segment: Arc::new(|_| {}),
            }),
        };
        let decoded = prometheus::IntCounter::new("decoded", "bench").unwrap();
        let decoder = Decoder::start(&source, settings, queue.clone(), decoded.clone()).unwrap();
        let drain = queue.clone();
        let drainer = tokio::spawn(async move { while drain.pop().await.is_some() {} });
        running.push((decoder, queue, drainer, decoded));
    }
    let frames = |running: &[(Decoder, Arc<FrameQueue>, _, prometheus::IntCounter)]| {
        running
            .iter()
            .map(|(_, _, _, decoded)| decoded.get())
            .sum::<u64>()
    };
    tokio::time::sleep(SETTLE).await;
    let (cpu_settled, bytes_settled, frames_settled) =
        (cpu_seconds(), record.map_or(0, dir_bytes), frames(&running));
    tokio::time::sleep(WINDOW).await;
    let (cpu_ended, bytes_ended, frames_ended) =
        (cpu_seconds(), record.map_or(0, dir_bytes), frames(&running));
    for (decoder, queue, drainer, _) in running {
        tokio::task::spawn_blocking(move || drop(decoder))
            .await
            .unwrap();
        queue.close();
        let _ = drainer.await;
    }
    (
        cpu_ended - cpu_settled,
        bytes_ended.saturating_sub(bytes_settled),
        frames_ended - frames_settled,
    )
}

/// CPU seconds this process's threads have used, from `/proc/self/stat` (utime + stime, in
/// clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
}

/// Bytes of the files under `dir` (one folder per camera); an open MP4 segment grows as its
/// data is written (its index comes at the end).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(cameras) = std::fs::read_dir(dir) else {
        return 0;
    };
    cameras
        .filter_map(Result::ok)
        .filter_map(|camera| std::fs::read_dir(camera.path()).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|file| file.metadata().ok())
        .map(|meta| meta.len())
        .sum()
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn wait_for_port(port_file: &Path, server: &mut Child) -> u16 {
    for _ in 0..200 {
        if let Ok(Ok(port)) = std::fs::read_to_string(port_file).map(|p| p.trim().parse()) {
            return port;
        }
        assert!(
            server.try_wait().unwrap().is_none(),
            "the RTSP server exited"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the RTSP server did not start");
}

/// The child process: one live 720p25 camera at /cam, encoded once and shared by every
/// client (the encoder's cost stays here, out of the measurement).
fn serve(port_file: &Path) {
    use gstreamer_rtsp_server as rtsp;
    use gstreamer_rtsp_server::prelude::*;
    gst::init().unwrap();
    let context = gst::glib::MainContext::new();
    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service("0");
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(
        // Scrolling colour bars: every frame changes, so the encoder spends its 2 Mbit/s as a
        // camera's does (a ball on black would need a tenth of that).
        "( videotestsrc is-live=true pattern=smpte horizontal-speed=4 \
         ! video/x-raw,format=I420,width=1280,height=720,framerate=25/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=2000 key-int-max=50 \
         ! rtph264pay name=pay0 pt=96 config-interval=1 )",
    );
    factory.set_shared(true);
    server.mount_points().unwrap().add_factory("/cam", factory);
    let _source = server.attach(Some(&context)).unwrap();
    std::fs::write(port_file, server.bound_port().to_string()).unwrap();
    gst::glib::MainLoop::new(Some(&context), false).run();
}

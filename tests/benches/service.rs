//! The service-level benchmark (issue 20): what a camera costs in the whole service, against
//! the OCR pipeline a user would write in Python, in one run.
//!
//!     source deploy/env.sh && deploy/services.sh start test
//!     ARGUS_TEST_KAFKA_BROKERS=127.0.0.1:19092 ARGUS_TEST_REDIS_URL=redis://127.0.0.1:16379 \
//!         cargo bench -p argus-e2e --bench service -- [--cameras 1,4,8] [--settle 15] \
//!         [--seconds 40] [--captions] [--spinning]
//!
//! Inputs: N in-process RTSP cameras (1280x720, 25 fps, H.264 8-bit 4:2:0, a key frame each
//! 2 s), even ones showing `vtest.avi` (a street, made 720p25), odd ones a text sign over
//! a moving ball (a fixed view with text and something moving). Each run gets fresh cameras that start at the video's beginning.
//!
//! Sides, each a whole process (or N of them) measured over the same window after the same
//! settling time, alternating which goes first:
//! - **argus, OCR** — the real binary on its embedded defaults with the objects stage off:
//!   OCR at 1 fps of what changed (`ocr.read_changes_only`, the default), moment windows
//!   (text embeddings), results to Kafka and Redis;
//! - **argus, OCR of whole frames** — the same with `ocr.read_changes_only = false`;
//! - **python, OCR** — `ocr_baseline.py`, one process per camera: OpenCV capture and the same
//!   PP-OCRv4 ONNX files through onnxruntime (RapidOCR), OCR at 1 fps, results kept in memory;
//! - **argus, defaults** — the embedded defaults: OCR plus object tracking at 5 fps;
//! - **argus, defaults + captions** with `--captions`;
//! - **argus, OCR of changes, ONNX Runtime's threads spinning** (`ocr.spin_wait = true`,
//!   ONNX Runtime's own default; Argus's is false) with `--spinning`.
//!
//! Reported per side: OCR'd frames per second and per core (the ratio is against Python on the
//! same cameras), cores and resident memory per camera, frames dropped, and latency p50/p99.
//! Argus's latency is glass to Kafka: a frame result's `wall_time` (the camera's RTCP clock,
//! or arrival) to its receipt by a consumer polling the topic on this machine (after the
//! broker's acknowledgement, by one fetch). Python's is from when the frame arrived to its
//! OCR result. The words read on the text cameras are compared: both sides must read the same.
//! The broker's and Redis's own CPU are not counted (Python publishes nothing).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use argus_e2e::{
    artifacts_dir, free_port, services, unique, wait_for_streams, write_config_toml, Argus,
    RtspServer, Services,
};
use gstreamer as gst;
use gstreamer::prelude::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const SIGN: &str = "LOADING DOCK 7\nNO PARKING";

/// The Python peer's packages, pinned: RapidOCR and the onnxruntime Argus loads.
const PYTHON_PACKAGES: &[&str] = &[
    "rapidocr-onnxruntime==1.4.4",
    "opencv-python==5.1.0.95",
    "onnxruntime==1.32.0",
];

struct Options {
    cameras: Vec<usize>,
    settle: Duration,
    window: Duration,
    captions: bool,
    spinning: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    ArgusWholeFrames,
    ArgusChangesSpinning,
    ArgusOcr,
    Python,
    ArgusDefaults,
    ArgusCaptions,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::ArgusWholeFrames => {
                "argus, OCR of whole frames (objects off, read_changes_only = false)"
            }
            Side::ArgusChangesSpinning => {
                "argus, OCR of changes only, ONNX Runtime threads spinning (spin_wait = true)"
            }
            Side::ArgusOcr => "argus, OCR (objects off; changes only, the default)",
            Side::Python => "python, OCR (OpenCV + RapidOCR)",
            Side::ArgusDefaults => "argus, defaults (OCR + objects at 5 fps)",
            Side::ArgusCaptions => "argus, defaults + captions",
        }
    }
}

/// What one side did over the window.
struct Measured {
    ocr_frames: usize,
    cpu_s: f64,
    rss_bytes: u64,
    dropped: f64,
    latencies: Vec<f64>,
    words: BTreeSet<String>,
    /// Argus's OCR reads by kind (whole / changed areas / unchanged) and the share of the
    /// frames' pixels its detector saw.
    reads: String,
}

fn main() {
    let options = parse_options();
    gst::init().unwrap();
    let services = services();
    let inputs = artifacts_dir().join("bench-inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    let street = make_input(&inputs.join("vtest-720p25.mp4"), Input::Street);
    let text = make_input(&inputs.join("sign-720p25.mp4"), Input::Sign);
    let python = python_peer();
    println!(
        "Cameras: 1280x720 25 fps H.264 over RTSP (even: vtest.avi, odd: a sign), 1 fps OCR. \
         Window {} s after {} s to settle. Load average before: {}",
        options.window.as_secs(),
        options.settle.as_secs(),
        load()
    );
    println!();
    println!(
        "| cameras | side | OCR'd frames/s per camera | cores per camera | frames per core | vs python | memory per camera (MB) | dropped | latency p50 / p99 (s) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (round, &n) in options.cameras.iter().enumerate() {
        let cameras: Vec<&Path> = (0..n)
            .map(|i| {
                if i % 2 == 0 {
                    street.as_path()
                } else {
                    text.as_path()
                }
            })
            .collect();
        let mut sides = vec![Side::ArgusWholeFrames, Side::Python, Side::ArgusOcr];
        if round % 2 == 1 {
            sides.reverse();
        }
        sides.push(Side::ArgusDefaults);
        if options.spinning {
            sides.push(Side::ArgusChangesSpinning);
        }
        if options.captions {
            sides.push(Side::ArgusCaptions);
        }
        let mut python_per_core = None;
        let mut words: Vec<(Side, BTreeSet<String>)> = Vec::new();
        let mut rows = Vec::new();
        for side in sides {
            let measured = match side {
                Side::Python => run_python(&python, &cameras, &options),
                _ => run_argus(side, &services, &cameras, &options),
            };
            let per_core = measured.ocr_frames as f64 / measured.cpu_s;
            if side == Side::Python {
                python_per_core = Some(per_core);
            }
            words.push((side, measured.words.clone()));
            rows.push((side, measured, per_core));
        }
        for (side, measured, per_core) in rows {
            let window = options.window.as_secs_f64();
            let ratio = python_per_core.map_or("".into(), |p| format!("{:.2}x", per_core / p));
            println!(
                "| {n} | {} | {:.2} | {:.3} | {per_core:.2} | {ratio} | {:.0} | {:.0} | {:.2} / {:.2} |",
                format_args!("{}{}", side.name(), if measured.reads.is_empty() { String::new() } else { format!(" ({})", measured.reads) }),
                measured.ocr_frames as f64 / window / n as f64,
                measured.cpu_s / window / n as f64,
                measured.rss_bytes as f64 / n as f64 / 1e6,
                measured.dropped,
                percentile(&measured.latencies, 0.5),
                percentile(&measured.latencies, 0.99),
            );
        }
        if let Some((_, python_words)) = words.iter().find(|(s, _)| *s == Side::Python) {
            for (side, argus_words) in words.iter().filter(|(s, _)| *s != Side::Python) {
                println!(
                    "|  | words: {} read {} of python's {}; only argus {:?}; only python {:?} |  |  |  |  |  |  |  |",
                    side.name(),
                    argus_words.intersection(python_words).count(),
                    python_words.len(),
                    argus_words.difference(python_words).collect::<Vec<_>>(),
                    python_words.difference(argus_words).collect::<Vec<_>>(),
                );
            }
        }
    }
    println!();
    println!("Load average after: {}", load());
}

fn parse_options() -> Options {
    let mut options = Options {
        cameras: vec![1, 4, 8],
        settle: Duration::from_secs(15),
        window: Duration::from_secs(40),
        captions: false,
        spinning: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--cameras" => {
                options.cameras = value()
                    .split(',')
                    .map(|n| n.parse().expect("--cameras 1,4,8"))
                    .collect()
            }
            "--settle" => options.settle = Duration::from_secs(value().parse().unwrap()),
            "--seconds" => options.window = Duration::from_secs(value().parse().unwrap()),
            "--captions" => options.captions = true,
            "--spinning" => options.spinning = true,
            "--bench" => {}
            other => panic!("unknown option {other}; see the header of tests/benches/service.rs"),
        }
    }
    options
}

/// Runs Argus on `cameras` and measures it over the window.
fn run_argus(side: Side, services: &Services, cameras: &[&Path], options: &Options) -> Measured {
    let servers: Vec<RtspServer> = cameras
        .iter()
        .map(|video| RtspServer::serve_file(video, "/cam"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("argus.bench.service");
    let streams: String = servers
        .iter()
        .enumerate()
        .map(|(i, server)| {
            format!(
                "[[streams]]\nid = \"cam{i}\"\nuri = \"{}\"\nsample_fps = 1.0\n",
                server.url("/cam")
            )
        })
        .collect();
    let http_port = free_port();
    let config = write_config_toml(
        dir.path(),
        services,
        &topic,
        &unique("argus-bench"),
        http_port,
        &streams,
    );
    let env: Vec<(&str, &str)> = match side {
        Side::ArgusWholeFrames => vec![
            ("ARGUS_OBJECTS__ENABLED", "false"),
            ("ARGUS_OCR__READ_CHANGES_ONLY", "false"),
        ],
        Side::ArgusChangesSpinning => vec![
            ("ARGUS_OBJECTS__ENABLED", "false"),
            ("ARGUS_OCR__SPIN_WAIT", "true"),
        ],
        Side::ArgusOcr => vec![("ARGUS_OBJECTS__ENABLED", "false")],
        Side::ArgusCaptions => vec![("ARGUS_CAPTIONS__ENABLED", "true")],
        _ => vec![],
    };
    let mut argus = Argus::start_with_env(
        &config,
        &[],
        &env,
        artifacts_dir().join("bench-service.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    wait_for_streams(
        &argus,
        Duration::from_secs(180),
        "every camera running",
        |s| s.len() == cameras.len() && s.iter().all(|s| s["state"] == "running"),
    );
    let results = Results::follow(&services.kafka_brokers, &topic);
    std::thread::sleep(options.settle);
    let dropped = |argus: &Argus| {
        argus
            .metric("argus_frames_dropped_total", &[])
            .unwrap_or(0.0)
    };
    let (cpu_start, dropped_start, window_start) = (
        process_cpu_s(argus.pid()),
        dropped(&argus),
        SystemTime::now(),
    );
    std::thread::sleep(options.window);
    let (cpu_end, dropped_end, window_end) = (
        process_cpu_s(argus.pid()),
        dropped(&argus),
        SystemTime::now(),
    );
    let rss_bytes = argus.rss_bytes();
    let read = |kind: &str| {
        argus
            .metric("argus_ocr_reads_total", &[&format!("read=\"{kind}\"")])
            .unwrap_or(0.0)
    };
    let (whole, areas, nothing) = (
        read("whole") as u64,
        read("areas") as u64,
        read("nothing") as u64,
    );
    let pixels = argus
        .metric("argus_ocr_pixels_read_total", &[])
        .unwrap_or(0.0);
    let reads = format!(
        "{whole} whole, {areas} areas, {nothing} nothing; {:.0} % of the pixels",
        100.0 * pixels / ((whole + areas + nothing) as f64 * 1280.0 * 720.0)
    );
    // Results of the window's last frames are still on their way.
    std::thread::sleep(Duration::from_secs(10));
    argus.terminate();
    let received = results.stop();
    let in_window: Vec<&Received> = received
        .iter()
        .filter(|r| r.wall_time >= window_start && r.wall_time < window_end)
        .collect();
    Measured {
        ocr_frames: in_window.len(),
        cpu_s: cpu_end - cpu_start,
        rss_bytes,
        dropped: dropped_end - dropped_start,
        latencies: in_window
            .iter()
            .map(|r| {
                r.received
                    .duration_since(r.wall_time)
                    .unwrap_or_default()
                    .as_secs_f64()
            })
            .collect(),
        words: in_window.iter().flat_map(|r| r.words.clone()).collect(),
        reads,
    }
}

/// Runs one Python process per camera, all at once, and adds up what they measured.
fn run_python(python: &Path, cameras: &[&Path], options: &Options) -> Measured {
    let servers: Vec<RtspServer> = cameras
        .iter()
        .map(|video| RtspServer::serve_file(video, "/cam"))
        .collect();
    let models = PathBuf::from(std::env::var("ARGUS_MODEL_DIR").expect("source deploy/env.sh"))
        .join("pp-ocrv4");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/ocr_baseline.py");
    let children: Vec<_> = servers
        .iter()
        .map(|server| {
            Command::new(python)
                .arg(&script)
                .args(["--url", &server.url("/cam")])
                .arg("--det")
                .arg(models.join("ch_PP-OCRv4_det_infer.onnx"))
                .arg("--rec")
                .arg(models.join("ch_PP-OCRv4_rec_infer.onnx"))
                .args(["--settle", &options.settle.as_secs().to_string()])
                .args(["--seconds", &options.window.as_secs().to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("the Python peer starts")
        })
        .collect();
    let mut total = Measured {
        ocr_frames: 0,
        cpu_s: 0.0,
        rss_bytes: 0,
        dropped: 0.0,
        latencies: Vec::new(),
        words: BTreeSet::new(),
        reads: String::new(),
    };
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "the Python peer failed");
        let report: serde_json::Value = serde_json::from_slice(
            output
                .stdout
                .split(|b| *b == b'\n')
                .rfind(|line| !line.is_empty())
                .expect("the Python peer reports"),
        )
        .unwrap();
        total.ocr_frames += report["frames_ocr"].as_u64().unwrap() as usize;
        total.cpu_s += report["cpu_s"].as_f64().unwrap();
        total.rss_bytes += report["rss_bytes"].as_u64().unwrap();
        // A reader that falls behind keeps every frame and adds delay instead: its drops are
        // the frames it did not read in real time.
        let expected = 25.0 * options.window.as_secs_f64();
        total.dropped += (expected - report["frames_read"].as_f64().unwrap()).max(0.0);
        total.latencies.extend(
            report["latencies_s"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|l| l.as_f64()),
        );
        total.words.extend(
            report["words"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|w| w.as_str().map(str::to_owned)),
        );
    }
    total
}

/// A frame result read back from Kafka.
struct Received {
    wall_time: SystemTime,
    received: SystemTime,
    words: BTreeSet<String>,
}

/// A consumer reading the results topic from its beginning on a thread, noting when each
/// result arrives.
struct Results {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Received>>,
}

impl Results {
    fn follow(brokers: &str, topic: &str) -> Self {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", unique("argus-bench"))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .unwrap();
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        for partition in 0..metadata.topics()[0].partitions().len() as i32 {
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&assignment).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut received = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) else {
                    continue;
                };
                let at = SystemTime::now();
                let Ok(result) =
                    serde_json::from_slice::<serde_json::Value>(message.payload().unwrap_or(&[]))
                else {
                    continue;
                };
                let Some(wall_time) = result["frame"]["wall_time"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                else {
                    continue;
                };
                received.push(Received {
                    wall_time: wall_time.into(),
                    received: at,
                    words: result["ocr"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|line| line["text"].as_str())
                        .flat_map(words)
                        .collect(),
                });
            }
            received
        });
        Self { stop, thread }
    }

    fn stop(self) -> Vec<Received> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Upper-cased runs of ASCII letters and digits, as the Python side splits them.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect()
}

enum Input {
    Street,
    Sign,
}

/// Encodes a camera's video once (kept between runs): 80-90 s of 1280x720 25 fps H.264, 8-bit
/// 4:2:0, a key frame every 2 s, as cameras send it.
fn make_input(path: &Path, input: Input) -> PathBuf {
    if path.exists() {
        return path.to_owned();
    }
    let source = match input {
        // vtest.avi (768x576, 10 fps, 79.5 s): scaled, its frames repeated to 25 fps.
        Input::Street => {
            let vtest =
                PathBuf::from(std::env::var("ARGUS_SAMPLE_DIR").expect("source deploy/env.sh"))
                    .join("vtest.avi");
            format!(
                "filesrc location=\"{}\" ! decodebin ! videoconvert ! videoscale ! videorate",
                vtest.display()
            )
        }
        Input::Sign => format!(
            "videotestsrc pattern=ball num-buffers=2250 \
             ! textoverlay text=\"{SIGN}\" font-desc=\"Sans Bold 48\" valignment=center \
               halignment=center shaded-background=true ! videoconvert"
        ),
    };
    println!("encoding {} ...", path.display());
    let partial = path.with_extension("partial.mp4");
    let pipeline = gst::parse::launch(&format!(
        "{source} ! video/x-raw,format=I420,width=1280,height=720,framerate=25/1 \
         ! x264enc speed-preset=veryfast bitrate=2000 key-int-max=50 \
         ! video/x-h264,profile=high ! h264parse ! mp4mux ! filesink location=\"{}\"",
        partial.display()
    ))
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    for message in bus.iter_timed(gst::ClockTime::NONE) {
        match message.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(error) => panic!("encoding {}: {error:?}", path.display()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    std::fs::rename(&partial, path).unwrap();
    path.to_owned()
}

/// The Python peer's interpreter: a virtual environment in the cache with the pinned packages,
/// made on first use.
fn python_peer() -> PathBuf {
    let cache = PathBuf::from(std::env::var("ARGUS_CACHE").expect("source deploy/env.sh"));
    let venv = cache.join("bench-venv");
    let python = venv.join("bin/python");
    let ready = venv.join(".argus-packages");
    if std::fs::read_to_string(&ready).ok().as_deref() != Some(&PYTHON_PACKAGES.join("\n")) {
        println!(
            "installing the Python peer's packages into {} ...",
            venv.display()
        );
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap();
        assert!(status.success(), "python3 -m venv failed");
        let status = Command::new(&python)
            .args(["-m", "pip", "install", "-q"])
            .args(PYTHON_PACKAGES)
            .status()
            .unwrap();
        assert!(status.success(), "pip install {PYTHON_PACKAGES:?} failed");
        std::fs::write(&ready, PYTHON_PACKAGES.join("\n")).unwrap();
    }
    python
}

/// CPU seconds (user + system, every thread) a process has used, from `/proc/PID/stat`.
fn process_cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

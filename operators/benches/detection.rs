//! The COCO detector (issue 17): the Rust operator against the same ONNX model run from
//! Python's onnxruntime, on real frames.
//!
//! ```sh
//! source deploy/env.sh
//! cargo bench -p argus-operators --bench detection                # both models
//! cargo bench -p argus-operators --bench detection -- nanodet     # or one
//! ```
//!
//! Frames: the first 30 of `vtest.avi` at one every two seconds (a fixed camera over a street),
//! decoded with GStreamer and scaled by it to the size each model's letterbox fits them to
//! (416×312 for NanoDet, 512×384 for CenterNet, from 768×576). Both sides then letterbox
//! without resampling: OpenCV's fixed-point bilinear and torch's float one differ by a grey
//! level here and there, enough to move a score across the threshold on 2 frames of 30, and
//! the detection counts must match exactly before times are compared. The resize left out
//! costs both sides alike, well under a millisecond.
//!
//! For each model both sides run every frame, warm, with the default configuration and ONNX
//! Runtime's default thread count; the baseline is
//! detection_onnxruntime.py (beside this file, run with the venv's Python), which does the same
//! letterbox, decoding and NMS in numpy. Rounds of the two sides interleave, and each side's
//! per-frame times are summarised by their median; a speed ratio is printed only when both
//! sides found the same number of objects in every frame.

use std::error::Error;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use argus_operators::detection::{Architecture, Detector, DetectorConfig};
use argus_operators::BgrImage;
use serde::Deserialize;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const FRAMES: usize = 30;
const ROUNDS: usize = 5;

fn main() -> Result<()> {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| f == name);
    let cache = PathBuf::from(std::env::var("ARGUS_CACHE")?);
    let models = PathBuf::from(std::env::var("ARGUS_MODEL_DIR")?).join("coco-detectors");
    println!(
        "argus detection bench: {} cores visible, {FRAMES} frames of vtest.avi, \
         {ROUNDS} interleaved rounds, load average at start {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    let mut report = String::from(
        "| model | Rust operator ms/frame | Python onnxruntime ms/frame | Python / Rust | persons (mean per frame) | all detections |\n\
         |---|---|---|---|---|---|\n",
    );
    // each model's letterbox fits a 4:3 frame of this size to its input without resampling
    for (architecture, width, height) in [
        (Architecture::NanoDet, 416, 312),
        (Architecture::CenterNet, 512, 384),
    ] {
        if wanted(architecture.name()) {
            let raw = std::env::temp_dir().join(format!(
                "argus-detection-bench-{}-{}.bgr",
                std::process::id(),
                architecture.name()
            ));
            let row = decode_frames(&raw, width, height)
                .and_then(|frames| compare(architecture, &models, &cache, &raw, &frames));
            std::fs::remove_file(&raw).ok();
            report += &row?;
        }
    }
    println!("\n{report}");
    println!("load average at end {}", load_average());
    Ok(())
}

fn compare(
    architecture: Architecture,
    models: &Path,
    cache: &Path,
    raw: &Path,
    frames: &[BgrImage],
) -> Result<String> {
    let config = DetectorConfig {
        architecture,
        ..DetectorConfig::default()
    };
    let mut detector = Detector::load(models, config.clone())?;
    for frame in &frames[..3] {
        detector.detect(frame)?;
    }
    let mut python = Baseline::start(
        architecture,
        &models.join(architecture.file_name()),
        cache,
        raw,
        &frames[0],
        &config,
    )?;
    let (mut rust_ms, mut python_ms) = (Vec::new(), Vec::new());
    let (mut rust_counts, mut persons) = (Vec::new(), 0usize);
    for round in 0..ROUNDS {
        rust_counts.clear();
        persons = 0;
        for frame in frames {
            let started = Instant::now();
            let found = detector.detect(frame)?;
            rust_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            rust_counts.push(found.len());
            persons += found.iter().filter(|d| d.class == "person").count();
        }
        let reply = python.round()?;
        python_ms.extend(&reply.ms);
        if reply.counts != rust_counts {
            let differing: Vec<String> = rust_counts
                .iter()
                .zip(&reply.counts)
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .map(|(i, (a, b))| format!("frame {i}: Rust {a}, Python {b}"))
                .collect();
            return Ok(format!(
                "| {} | {:.1} | {:.1} | not compared: detection counts differ in round {round} ({}) | | |\n",
                architecture.name(),
                median(&rust_ms),
                median(&python_ms),
                differing.join("; ")
            ));
        }
    }
    let (rust, baseline) = (median(&rust_ms), median(&python_ms));
    println!(
        "{}: Rust {rust:.1} ms/frame, Python onnxruntime {baseline:.1} ms/frame ({})",
        architecture.name(),
        python.versions
    );
    Ok(format!(
        "| {} | {rust:.1} | {baseline:.1} | {:.2} | {persons} ({:.1}) | {} |\n",
        architecture.name(),
        baseline / rust,
        persons as f64 / frames.len() as f64,
        rust_counts.iter().sum::<usize>()
    ))
}

/// detection_onnxruntime.py, running beside the bench and driven one round at a time.
struct Baseline {
    _child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    versions: String,
}

#[derive(Deserialize)]
struct Round {
    ms: Vec<f64>,
    counts: Vec<usize>,
}

impl Baseline {
    fn start(
        architecture: Architecture,
        model: &Path,
        cache: &Path,
        raw: &Path,
        frame: &BgrImage,
        config: &DetectorConfig,
    ) -> Result<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/detection_onnxruntime.py");
        let mut child = Command::new(cache.join("venv/bin/python"))
            .arg(script)
            .arg("--model")
            .arg(model)
            .args(["--architecture", architecture.name()])
            .arg("--frames")
            .arg(raw)
            .args(["--width", &frame.width().to_string()])
            .args(["--height", &frame.height().to_string()])
            .args(["--score-threshold", &config.score_threshold.to_string()])
            .args(["--nms-iou", &config.nms_iou.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let input = child.stdin.take().ok_or("no stdin for the Python side")?;
        let mut output =
            BufReader::new(child.stdout.take().ok_or("no stdout for the Python side")?);
        let mut versions = String::new();
        output.read_line(&mut versions)?;
        if versions.is_empty() {
            return Err("detection_onnxruntime.py ended before it was ready".into());
        }
        Ok(Self {
            _child: child,
            input,
            output,
            versions: versions.trim().to_owned(),
        })
    }

    fn round(&mut self) -> Result<Round> {
        writeln!(self.input, "run")?;
        let mut line = String::new();
        self.output.read_line(&mut line)?;
        if line.is_empty() {
            return Err("detection_onnxruntime.py ended early".into());
        }
        Ok(serde_json::from_str(&line)?)
    }
}

/// The first FRAMES frames of vtest.avi at one every two seconds, scaled to width x height,
/// also left in `raw` for the Python side. One more is decoded than used: the frame videorate
/// emits as the stream ends varies from run to run.
fn decode_frames(raw: &Path, width: u32, height: u32) -> Result<Vec<BgrImage>> {
    let samples = std::env::var("ARGUS_SAMPLE_DIR")
        .unwrap_or_else(|_| "/usr/share/doc/opencv-doc/examples/data".into());
    let video = Path::new(&samples).join("vtest.avi");
    let status = Command::new("gst-launch-1.0")
        .arg("-q")
        .arg("filesrc")
        .arg(format!("location={}", video.display()))
        .args(["!", "decodebin", "!", "videorate", "!"])
        .arg("video/x-raw,framerate=1/2")
        .args(["!", "videoconvert", "!", "videoscale", "!"])
        .arg(format!(
            "video/x-raw,format=BGR,width={width},height={height}"
        ))
        .args(["!", "identity"])
        .arg(format!("eos-after={}", FRAMES + 1))
        .args(["!", "filesink"])
        .arg(format!("location={}", raw.display()))
        .status()?;
    if !status.success() {
        return Err(format!(
            "gst-launch-1.0 failed to decode {}: {status}",
            video.display()
        )
        .into());
    }
    let mut bytes = std::fs::read(raw)?;
    let frame_len = (width * height * 3) as usize;
    if bytes.len() < FRAMES * frame_len {
        return Err(format!(
            "decoded {} bytes of {}, expected {FRAMES} frames",
            bytes.len(),
            video.display()
        )
        .into());
    }
    bytes.truncate(FRAMES * frame_len);
    std::fs::write(raw, &bytes)?;
    bytes
        .chunks_exact(frame_len)
        .map(|frame| Ok(BgrImage::new(width, height, frame.to_vec())?))
        .collect()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

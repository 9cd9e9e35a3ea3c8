//! Question rules benchmark: precision and recall of alert question rules on a labelled set,
//! with the LLM alone (before issue 18) and with the checked evidence (after).
//!
//!     source deploy/env.sh
//!     cargo bench -p argus-pipeline --bench alert_questions --profile dev [-- --read-changes-only]
//!
//! `--read-changes-only` reads text as the service does with `ocr.read_changes_only = true`
//! (each video a camera of its own, with its own change gate).
//!
//! The set is `tests/data/alerts/question-rules.json`: videos (generated here: one sign per
//! chunk over a still test pattern, a moving ball, the still pattern; and Debian
//! opencv-doc's `vtest.avi`, a street with pedestrians) and text-on-screen, object and
//! motion questions, each labelled with the chunks where the answer is yes; every other
//! chunk is a negative.
//!
//! Each video goes through the service's path: Argus's ingest, the objects stage
//! (`ObjectTracking`, when the COCO detector is installed) at objects.fps, PP-OCRv4 and motion
//! at 1 fps, 10 s chunks. Each rule is judged on each chunk by the captioning model as the
//! service judges it (`CaptionWorker::judge_question`): the LLM's CyberV answer (with the
//! correction round when the controller does not accept) and the evidence checks with the
//! moment index's embedder. Before: the rule fires on the LLM's yes, as it did. After: it
//! fires as [`argus::captions::trust::decide`] says, with the LLM's answer only when the
//! evidence asks for it (as the service asks).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argus::captions::chunk::{Chunk, ChunkBuilder, ChunkFrame};
use argus::captions::trust;
use argus::config::{AnalysisConfig, CaptionsConfig, ModelsConfig, ObjectsConfig};
use argus::metrics::Metrics;
use argus::objects::book::ZoneBook;
use argus::objects::FrameObjects;
use argus::operators::captioning::CaptionWorker;
use argus::operators::detector::ObjectDetector;
use argus::operators::embedder::Embedder;
use argus::operators::objects::ObjectTracking;
use argus::operators::ocr::OcrReader;
use argus::source::{self, Recording};
use argus::stream::{ObjectAnalyser, Pace};
use argus_operators::motion::{MotionConfig, MotionDetector};
use argus_operators::ocr::OcrConfig;
use argus_operators::tagging::ImageTagger;
use argus_operators::video_qa::GroundedQa;
use chrono::{DateTime, TimeZone, Utc};
use gstreamer as gst;
use serde::Deserialize;

const SAMPLE_FPS: f64 = 1.0;

#[derive(Deserialize)]
struct Set {
    chunk_s: u32,
    videos: Vec<VideoSpec>,
    rules: Vec<RuleSpec>,
}

#[derive(Deserialize)]
struct VideoSpec {
    name: String,
    /// One sign per chunk ("" for none).
    #[serde(default)]
    signs: Vec<String>,
    /// A `videotestsrc` pattern, for `seconds`.
    pattern: Option<String>,
    /// A file in `$ARGUS_SAMPLE_DIR`, its first `seconds`.
    file: Option<String>,
    seconds: Option<u32>,
}

#[derive(Deserialize)]
struct RuleSpec {
    kind: String,
    question: String,
    /// `video#chunk`.
    positive: Vec<String>,
}

fn model_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("ARGUS_MODEL_DIR").expect("source deploy/env.sh first"))
}

/// Writes a test video: `signs` one after another for `seconds_each` each over the SMPTE
/// pattern, or `pattern` alone for `seconds`; 1280x720 at 10 fps, H.264 in MP4.
fn generate(path: &Path, spec: &VideoSpec, seconds_each: u32) {
    use gst::prelude::*;
    let (pattern, frames) = match &spec.pattern {
        Some(pattern) => (pattern.as_str(), spec.seconds.unwrap_or(20) * 10),
        None => ("smpte", seconds_each * 10 * spec.signs.len() as u32),
    };
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc pattern={pattern} num-buffers={frames} \
         ! video/x-raw,width=1280,height=720,framerate=10/1 \
         ! textoverlay name=overlay text=\"\" font-desc=\"Sans Bold 56\" shaded-background=true valignment=center halignment=center \
         ! videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=ultrafast key-int-max=10 ! h264parse ! mp4mux \
         ! filesink location=\"{}\"",
        path.display()
    ))
    .expect("valid video pipeline");
    let overlay = pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name("overlay")
        .unwrap();
    let (signs, frames_each) = (spec.signs.clone(), seconds_each * 10);
    let frame = std::sync::atomic::AtomicU32::new(0);
    let drawn = overlay.clone();
    // The sign changes between frames: set before textoverlay draws each one.
    overlay
        .static_pad("video_sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let n = frame.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let sign = signs
                .get((n / frames_each) as usize)
                .map_or("", String::as_str);
            drawn.set_property("text", sign);
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    for message in bus.iter_timed(gst::ClockTime::from_seconds(120)) {
        match message.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(error) => panic!("encoding failed: {}", error.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

/// The first `seconds` of `path` at `fps`, through Argus's ingest.
async fn decode(path: &Path, start: DateTime<Utc>, fps: f64, seconds: u32) -> Vec<source::Frame> {
    let end = start + chrono::Duration::seconds(i64::from(seconds));
    let mut recording = Recording::open(path, fps, 1280, start).unwrap();
    let mut frames = Vec::new();
    while let Some(frame) = recording.next().await.unwrap() {
        if frame.wall_time >= end {
            break;
        }
        frames.push(frame);
    }
    frames
}

/// Every frame through the service's objects stage, one camera, in order.
async fn track(
    objects: &ObjectTracking,
    frames: &[source::Frame],
) -> Vec<Option<Arc<FrameObjects>>> {
    let mut tracked = Vec::new();
    for frame in frames {
        let image = Arc::new(frame.image.clone());
        let seen = objects.observe("bench", frame.wall_time, image).await;
        tracked.push(seen.map(Arc::new));
    }
    objects.finish("bench").await;
    tracked
}

/// The chunks as the captions sink cuts them: OCR and motion at [`SAMPLE_FPS`], each frame
/// with the objects tracked since the one before.
fn chunks(
    camera: &str,
    frames: Vec<source::Frame>,
    objects: &[Option<Arc<FrameObjects>>],
    frames_fps: f64,
    chunk_s: u32,
    ocr: &mut OcrReader,
) -> Vec<Chunk> {
    let mut motion = MotionDetector::new(MotionConfig::default());
    let mut builder = ChunkBuilder::new("bench", "file", f64::from(chunk_s));
    let mut chunks = Vec::new();
    let mut sampled = Pace::new(SAMPLE_FPS, frames_fps);
    let mut tracked_since: Vec<Arc<FrameObjects>> = Vec::new();
    for (index, frame) in frames.into_iter().enumerate() {
        tracked_since.extend(objects.get(index).cloned().flatten());
        if !sampled.due(frame.wall_time) {
            continue;
        }
        let image = Arc::new(frame.image);
        let (lines, _) = ocr
            .read(&[(Arc::from(camera), image.clone())])
            .unwrap()
            .pop()
            .expect("one reading per frame");
        chunks.extend(builder.push(ChunkFrame::observe(
            frame.wall_time,
            image,
            &lines,
            std::mem::take(&mut tracked_since),
            &mut motion,
        )));
    }
    chunks.extend(builder.flush());
    chunks
}

#[derive(Default, Clone, Copy)]
struct Counts {
    tp: usize,
    fp: usize,
    fn_: usize,
    tn: usize,
}

impl Counts {
    fn add(&mut self, fired: bool, positive: bool) {
        match (fired, positive) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }

    fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    fn row(&self) -> String {
        format!(
            "{:.2} | {:.2} | {}/{}/{}/{}",
            self.precision(),
            self.recall(),
            self.tp,
            self.fp,
            self.fn_,
            self.tn
        )
    }
}

/// `n / d`, 1 when there is nothing to count (no firing: no false alarm).
fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 {
        1.0
    } else {
        n as f64 / d as f64
    }
}

fn main() {
    source::init().unwrap();
    let set: Set = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/alerts/question-rules.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("argus-bench-alerts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let samples = std::env::var_os("ARGUS_SAMPLE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/doc/opencv-doc/examples/data"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let models = model_dir();
    let read_changes_only = std::env::args().any(|a| a == "--read-changes-only");
    println!("<!-- OCR: read_changes_only = {read_changes_only} -->");
    let mut ocr = OcrReader::load(
        &models,
        OcrConfig {
            read_changes_only,
            ..OcrConfig::default()
        },
        Metrics::new(),
    )
    .unwrap();
    let llm_dir = models.join("smollm2-135m-instruct-hf");
    let config = CaptionsConfig {
        chunk_s: f64::from(set.chunk_s),
        max_new_tokens: 16,
        ..CaptionsConfig::default()
    };
    let embedder = Embedder::start(&models.join("all-minilm-l6-v2")).unwrap();
    let mut worker = CaptionWorker::new(
        GroundedQa::load(&llm_dir, tch::Device::Cpu).unwrap(),
        None,
        ImageTagger::load(&models.join("efficientnet-lite0")).unwrap(),
        config,
    )
    .with_embedder(Some(embedder));
    let objects_config = ObjectsConfig::default();
    let objects = {
        let dir = objects_config.model_dir(&ModelsConfig {
            dir: Some(models.clone()),
        });
        if dir.join("nanodet.onnx").exists() {
            let _guard = runtime.enter();
            let metrics = Metrics::new();
            let detector = ObjectDetector::start(
                &dir,
                objects_config.detector.clone(),
                &AnalysisConfig::default(),
                metrics.clone(),
            )
            .unwrap();
            let zones = ZoneBook::new(&objects_config.zones, &objects_config.lines);
            Some(ObjectTracking::new(
                &objects_config,
                detector,
                zones,
                metrics,
            ))
        } else {
            println!(
                "no detector in {}: object questions are checked without the objects stage\n",
                dir.display()
            );
            None
        }
    };
    let frames_fps = if objects.is_some() {
        objects_config.fps
    } else {
        SAMPLE_FPS
    };
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap();

    let mut videos: Vec<(String, Vec<Chunk>)> = Vec::new();
    for spec in &set.videos {
        let (path, seconds) = match &spec.file {
            Some(file) => (samples.join(file), spec.seconds.unwrap_or(30)),
            None => {
                let path = dir.join(format!("{}.mp4", spec.name));
                generate(&path, spec, set.chunk_s);
                let seconds = match &spec.pattern {
                    Some(_) => spec.seconds.unwrap_or(20),
                    None => set.chunk_s * spec.signs.len() as u32,
                };
                (path, seconds)
            }
        };
        let frames = runtime.block_on(decode(&path, start, frames_fps, seconds));
        let tracked = match &objects {
            Some(objects) => runtime.block_on(track(objects, &frames)),
            None => Vec::new(),
        };
        let chunks = chunks(
            &spec.name,
            frames,
            &tracked,
            frames_fps,
            set.chunk_s,
            &mut ocr,
        );
        println!(
            "<!-- {}: {} chunks; OCR per chunk: {:?} -->",
            spec.name,
            chunks.len(),
            chunks
                .iter()
                .map(|c| trust::ocr_lines(c)
                    .into_iter()
                    .map(|(t, _)| t)
                    .collect::<Vec<_>>())
                .collect::<Vec<_>>()
        );
        videos.push((spec.name.clone(), chunks));
    }

    let (mut before, mut after): (BTreeMap<String, Counts>, BTreeMap<String, Counts>) =
        Default::default();
    let (mut asked, mut llm_needed) = (0, 0);
    let mut llm_time = Duration::ZERO;
    let mark = |fired: bool, positive: bool| match (fired, positive) {
        (true, true) => "TP",
        (true, false) => "**FP**",
        (false, true) => "**FN**",
        (false, false) => "TN",
    };
    println!();
    println!("| rule | chunk | label | LLM alone | with evidence | decided by |");
    println!("|---|---|---|---|---|---|");
    for rule in &set.rules {
        for (video, chunks) in &videos {
            for (index, chunk) in chunks.iter().enumerate() {
                let positive = rule.positive.contains(&format!("{video}#{index}"));
                let started = Instant::now();
                let (checks, llm) = worker.judge_question(chunk, &rule.question).unwrap();
                llm_time += started.elapsed();
                asked += 1;
                let needs = trust::needs_llm(&checks);
                llm_needed += usize::from(needs);
                let decision = trust::decide(&checks, needs.then_some(&llm));
                let was = llm.fires_alone();
                for (counts, fired) in [(&mut before, was), (&mut after, decision.fire)] {
                    counts
                        .entry(rule.kind.clone())
                        .or_default()
                        .add(fired, positive);
                    counts.entry("all".into()).or_default().add(fired, positive);
                }
                // Every firing and every error, not the agreeing negatives.
                if was || decision.fire || positive {
                    let by: Vec<String> = (decision.decided_by.iter())
                        .map(|d| format!("{} {:.3}", d.evidence, d.score))
                        .collect();
                    println!(
                        "| {} | {video}#{index} | {} | {} | {} | {} |",
                        rule.question,
                        if positive { "yes" } else { "no" },
                        mark(was, positive),
                        mark(decision.fire, positive),
                        by.join(", ")
                    );
                }
            }
        }
    }
    println!();
    println!("| rule kind | LLM alone: precision | recall | TP/FP/FN/TN | with evidence: precision | recall | TP/FP/FN/TN |");
    println!("|---|---|---|---|---|---|---|");
    for (kind, was) in &before {
        println!("| {kind} | {} | {} |", was.row(), after[kind].row());
    }
    println!();
    println!(
        "rule × chunk judgements: {asked}; the evidence needed the LLM on {llm_needed} \
         ({:.0}%); mean time per judgement with the LLM always asked: {:.2} s",
        100.0 * llm_needed as f64 / asked as f64,
        llm_time.as_secs_f64() / asked as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
}

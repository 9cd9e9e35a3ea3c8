//! Video Q&A benchmark: accuracy of answers with and without CyberV self-correction on real
//! and generated video with known answers, and the latency each costs.
//!
//!     source deploy/env.sh
//!     cargo bench -p argus-pipeline --bench questions --profile dev
//!
//! Videos: Debian opencv-doc's `vtest.avi` (a fixed camera over a street, people walking),
//! generated text-overlay videos with known words on a still test pattern, and a moving ball.
//! Each is decoded by Argus's own ingest at 1 fps (first 20 s), read by PP-OCRv4, the motion
//! detector and EfficientNet-Lite0 exactly as the service does, cut into 10 s chunks stored as
//! their observations, and asked questions whose answers are known from how the video was
//! made: "What text is on screen?" (the overlay's words), "Is anything moving?", "Is there
//! text on screen?".
//!
//! Without self-correction: one greedy answer (what a plain pipeline publishes). With it: the
//! CyberV round (n = 2, θ = 0.5), and when the controller does not accept, the correction on
//! the key segments' dense observations; the published answer is the last one. Latency is
//! per question, the same process and model for both, so the ratio is what counts.
//!
//! When the COCO detector is installed (`$ARGUS_MODEL_DIR/coco-detectors`), frames are
//! decoded at objects.fps and go through the service's objects stage (`ObjectTracking`: the
//! detector on its worker, the tracker, colours) as `objects.enabled` runs it: observation
//! lines then say what the tracks did, and each track is recorded as the objects sink records
//! it. A count question ("How many people walked past?") is then counted from the tracks, the
//! count joins the evidence as the service adds it, and its answer is right when it states
//! that count (the published one falls back to the counted sentence, as the service's does).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argus::captions::chunk::{Chunk, ChunkBuilder, ChunkFrame};
use argus::captions::questions::question_evidence;
use argus::config::{AnalysisConfig, CaptionsConfig, ModelsConfig, ObjectsConfig};
use argus::messages::{Caption, SensorSummary};
use argus::metrics::Metrics;
use argus::objects::book::ZoneBook;
use argus::objects::counting::CountQuestion;
use argus::objects::tracks::{TrackRecord, TrackRecorder};
use argus::objects::FrameObjects;
use argus::operators::captioning::{AnswerStep, CaptionWorker, Draft};
use argus::operators::detector::ObjectDetector;
use argus::operators::objects::ObjectTracking;
use argus::sinks::captions::caption_message;
use argus::source::{self, Recording};
use argus::stream::{ObjectAnalyser, Pace};
use argus_operators::llm::Sampling;
use argus_operators::motion::{MotionConfig, MotionDetector};
use argus_operators::ocr::{OcrConfig, PpOcr};
use argus_operators::tagging::ImageTagger;
use argus_operators::video_qa::{answer_key, echoes_prompt, Evidence, GroundedQa, Task};
use chrono::{DateTime, TimeZone, Utc};
use gstreamer as gst;

const SECONDS: f64 = 20.0;
const CHUNK_S: f64 = 10.0;
const SEGMENTS: usize = 5;
/// The stream's sample_fps: OCR, motion and the chunks' frames.
const SAMPLE_FPS: f64 = 1.0;

/// What a question's answer must say.
enum Expect {
    Yes,
    No,
    /// Every word of it, in any case, anywhere in the answer.
    Words(&'static str),
    /// A count: with the objects stage, the count of the tracks asked for; without it,
    /// anything but a copy of the prompt (its times, header or observation lines), where a
    /// small model tends to echo its input.
    Count,
}

struct Video {
    name: &'static str,
    path: PathBuf,
    questions: Vec<(&'static str, Expect)>,
}

fn model_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("ARGUS_MODEL_DIR").expect("source deploy/env.sh first"))
}

/// Runs a GStreamer pipeline that writes a test video to its end.
fn encode(description: &str) {
    use gst::prelude::*;
    let pipeline = gst::parse::launch(description).expect("valid video pipeline");
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

/// 20 s of a still test pattern with `text` over it; `pattern=ball` and no text for motion.
fn test_video(path: &Path, pattern: &str, text: Option<&str>) {
    let overlay = text
        .map(|text| {
            format!(
                "! textoverlay text=\"{text}\" font-desc=\"Sans Bold 56\" shaded-background=true "
            )
        })
        .unwrap_or_default();
    encode(&format!(
        "videotestsrc pattern={pattern} num-buffers=200 \
         ! video/x-raw,width=1280,height=720,framerate=10/1 {overlay}\
         ! videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=ultrafast key-int-max=10 ! h264parse ! mp4mux \
         ! filesink location=\"{}\"",
        path.display()
    ));
}

fn videos(dir: &Path) -> Vec<Video> {
    let samples = std::env::var_os("ARGUS_SAMPLE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/doc/opencv-doc/examples/data"));
    let mut videos = vec![
        Video {
            name: "vtest.avi (street)",
            path: samples.join("vtest.avi"),
            questions: vec![
                ("Is anything moving?", Expect::Yes),
                ("Is there text on screen?", Expect::No),
                ("How many people walked past?", Expect::Count),
            ],
        },
        Video {
            name: "moving ball",
            path: {
                let path = dir.join("ball.mp4");
                test_video(&path, "ball", None);
                path
            },
            questions: vec![
                ("Is anything moving?", Expect::Yes),
                ("Is there text on screen?", Expect::No),
            ],
        },
    ];
    for words in ["GATE 3", "LOADING DOCK", "EXIT", "NO PARKING"] {
        videos.push(Video {
            name: words,
            path: {
                let path = dir.join(format!("{}.mp4", words.replace(' ', "-")));
                test_video(&path, "smpte", Some(words));
                path
            },
            questions: vec![
                ("What text is on screen?", Expect::Words(words)),
                ("Is there text on screen?", Expect::Yes),
                ("Is anything moving?", Expect::No),
            ],
        });
    }
    videos
}

/// The first [`SECONDS`] of `path` at `fps`, through Argus's ingest.
async fn decode(path: &Path, start: DateTime<Utc>, fps: f64) -> Vec<source::Frame> {
    let end = start + chrono::Duration::milliseconds((SECONDS * 1000.0) as i64);
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

/// What the objects stage tracked over a video: per frame, and each track as the objects
/// sink records it.
#[derive(Default)]
struct Tracked {
    frames: Vec<Option<Arc<FrameObjects>>>,
    records: Vec<TrackRecord>,
}

/// Every frame through the service's objects stage, one camera, in order, then its end.
async fn track(objects: &ObjectTracking, frames: &[source::Frame]) -> Tracked {
    let mut recorder = TrackRecorder::default();
    let mut tracked = Tracked::default();
    for frame in frames {
        let image = Arc::new(frame.image.clone());
        let seen = objects.observe("bench", frame.wall_time, image).await;
        if let Some(seen) = &seen {
            tracked
                .records
                .extend(recorder.observe(seen, frame.wall_time));
        }
        tracked.frames.push(seen.map(Arc::new));
    }
    tracked
        .records
        .extend(recorder.end(&objects.finish("bench").await));
    tracked
}

/// The chunks of `frames` as the service stores them: cut by the captions sink's chunking,
/// with the evidence lines of their first caption from the captioning model's own first look
/// (the caption text itself is not needed: questions read the evidence). Frames come at
/// objects.fps when objects are tracked; OCR and the chunks take them at [`SAMPLE_FPS`], each
/// with the objects seen since the one before, as the captions sink keeps them.
fn stored_chunks(
    frames: Vec<source::Frame>,
    objects: &[Option<Arc<FrameObjects>>],
    frames_fps: f64,
    ocr: &mut PpOcr,
    captioner: &mut CaptionWorker,
) -> Vec<Caption> {
    let mut motion = MotionDetector::new(MotionConfig::default());
    let mut builder = ChunkBuilder::new("bench", "file", CHUNK_S);
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut sampled = Pace::new(SAMPLE_FPS, frames_fps);
    let mut tracked_since: Vec<Arc<FrameObjects>> = Vec::new();
    for (index, frame) in frames.into_iter().enumerate() {
        tracked_since.extend(objects.get(index).cloned().flatten());
        if !sampled.due(frame.wall_time) {
            continue;
        }
        let lines = ocr.recognize(&frame.image).unwrap();
        let image = Arc::new(frame.image);
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
        .iter()
        .map(|chunk| {
            let draft = Draft {
                camera: chunk.camera.clone(),
                source: chunk.source.clone(),
                start: chunk.start,
                end: chunk.end,
                text: String::new(),
                accepted: true,
                sensor: SensorSummary {
                    candidates: vec![],
                    answers: vec![],
                    required: 0.0,
                    segment_drift: vec![],
                    key_segments: vec![],
                },
                key_frames: vec![],
                evidence: captioner.first_look(chunk).unwrap(),
                compute: Duration::ZERO,
                candidates: 0,
            };
            caption_message(draft, 1, None, "")
        })
        .collect()
}

fn correct(task: &Task, answer: &str, expect: &Expect, evidence: &Evidence) -> bool {
    match expect {
        Expect::Yes => answer_key(task, answer, evidence) == "yes",
        Expect::No => answer_key(task, answer, evidence) == "no",
        Expect::Count => !answer.trim().is_empty() && !echoes_prompt(answer, evidence, task),
        Expect::Words(words) => {
            let said = answer.to_uppercase();
            words.split_whitespace().all(|w| said.contains(w))
        }
    }
}

fn main() {
    source::init().unwrap();
    let dir = std::env::temp_dir().join(format!("argus-bench-questions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let models = model_dir();
    let mut ocr = PpOcr::load(&models.join("pp-ocrv4"), OcrConfig::default()).unwrap();
    let llm_dir = models.join("smollm2-135m-instruct-hf");
    let plain = GroundedQa::load(&llm_dir, tch::Device::Cpu).unwrap();
    let config = CaptionsConfig {
        chunk_s: CHUNK_S,
        segments: SEGMENTS,
        max_new_tokens: 32,
        ..CaptionsConfig::default()
    };
    let mut cyberv = CaptionWorker::new(
        GroundedQa::load(&llm_dir, tch::Device::Cpu).unwrap(),
        None,
        ImageTagger::load(&models.join("efficientnet-lite0")).unwrap(),
        config.clone(),
    );
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap();
    let end = start + chrono::Duration::milliseconds((SECONDS * 1000.0) as i64);
    // The objects stage as the service runs it, where the detector is installed.
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
                "no detector in {}: questions without the objects stage\n",
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
    let (mut counted, mut counted_by_model, mut counted_by_greedy) = (0, 0, 0);

    let (mut asked, mut plain_right, mut cyberv_right, mut corrected) = (0, 0, 0, 0);
    let (mut fixed, mut broken) = (0, 0);
    let (mut plain_time, mut cyberv_time) = (Duration::ZERO, Duration::ZERO);
    println!("| video | question | expected | greedy answer | self-corrected answer |");
    println!("|---|---|---|---|---|");
    for video in videos(&dir) {
        let frames = runtime.block_on(decode(&video.path, start, frames_fps));
        let tracked = match &objects {
            Some(objects) => runtime.block_on(track(objects, &frames)),
            None => Tracked::default(),
        };
        let chunks = stored_chunks(frames, &tracked.frames, frames_fps, &mut ocr, &mut cyberv);
        for (question, expect) in &video.questions {
            let task = Task::Question(question.to_string());
            // A count question is counted from the tracks, as `query::questions` counts it.
            let mut question_evidence = question_evidence("bench", &chunks, start, end);
            let count = CountQuestion::parse(question)
                .filter(|_| objects.is_some())
                .map(|asked| asked.count(&tracked.records, start, end));
            if let Some(count) = &count {
                question_evidence.add_track_count(count);
                let people = tracked.records.iter().filter(|r| r.class == "person");
                println!(
                    "<!-- {}: {} person tracks; {} -->",
                    video.name,
                    people.count(),
                    count.observation()
                );
            }
            let started = Instant::now();
            let greedy = plain
                .answer(
                    &question_evidence.evidence,
                    &task,
                    Sampling::Greedy,
                    config.max_new_tokens,
                )
                .unwrap();
            plain_time += started.elapsed();

            let started = Instant::now();
            let mut published = String::new();
            let mut revised = false;
            cyberv
                .answer(question, &question_evidence, |step| match step {
                    AnswerStep::First { round, .. } => published = round.text,
                    AnswerStep::Revision(round) => {
                        published = round.text;
                        revised = true;
                    }
                })
                .unwrap();
            cyberv_time += started.elapsed();

            let (before, after) = match &count {
                Some(count) => {
                    let (text, answer) = count.publish(published);
                    published = text;
                    counted += 1;
                    counted_by_model += usize::from(answer.phrased_by_model);
                    counted_by_greedy += usize::from(count.stated_by(&greedy.text));
                    if !answer.phrased_by_model {
                        published.push_str(" (counted sentence)");
                    }
                    (count.stated_by(&greedy.text), count.stated_by(&published))
                }
                None => (
                    correct(&task, &greedy.text, expect, &question_evidence.evidence),
                    correct(&task, &published, expect, &question_evidence.evidence),
                ),
            };
            asked += 1;
            plain_right += usize::from(before);
            cyberv_right += usize::from(after);
            corrected += usize::from(revised);
            fixed += usize::from(!before && after);
            broken += usize::from(before && !after);
            let expected = match expect {
                Expect::Yes => "yes".to_string(),
                Expect::No => "no".to_string(),
                Expect::Words(words) => format!("\"{words}\""),
                Expect::Count => match &count {
                    Some(count) => format!("{} (tracks)", count.count),
                    None => "no echo".to_string(),
                },
            };
            let mark = |ok: bool| if ok { "✓" } else { "✗" };
            println!(
                "| {} | {question} | {expected} | {} {} | {} {}{} |",
                video.name,
                mark(before),
                greedy.text.replace('\n', " ").replace('|', "/"),
                mark(after),
                published.replace('\n', " ").replace('|', "/"),
                if revised { " (revised)" } else { "" },
            );
        }
    }
    let per = |total: Duration| total.as_secs_f64() / asked as f64;
    println!();
    println!("questions: {asked}");
    println!(
        "accuracy: greedy {plain_right}/{asked} ({:.0}%), with self-correction {cyberv_right}/{asked} ({:.0}%)",
        100.0 * plain_right as f64 / asked as f64,
        100.0 * cyberv_right as f64 / asked as f64
    );
    println!("corrections triggered: {corrected}/{asked}; fixed {fixed}, broke {broken}");
    if counted > 0 {
        println!(
            "count questions from the tracks: {counted}; the greedy answer stated the count in \
             {counted_by_greedy}, the self-corrected one in {counted_by_model} (the others \
             publish the counted sentence)"
        );
    }
    println!(
        "latency per question: greedy {:.2} s, with self-correction {:.2} s ({:.2}x)",
        per(plain_time),
        per(cyberv_time),
        cyberv_time.as_secs_f64() / plain_time.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

//! COCO detection on real frames of Debian opencv-doc's `vtest.avi` (a fixed camera over a
//! pedestrian street), with the models `deploy/setup.sh` converts. The frames are decoded with
//! GStreamer's command-line tool: OpenCV's `videoio` is not among this crate's features.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use argus_operators::detection::{Architecture, Detection, Detector, DetectorConfig};
use argus_operators::BgrImage;

const WIDTH: u32 = 768;
const HEIGHT: u32 = 576;

fn model_dir() -> PathBuf {
    let root =
        std::env::var_os("ARGUS_MODEL_DIR").expect("ARGUS_MODEL_DIR is set by deploy/env.sh");
    PathBuf::from(root).join("coco-detectors")
}

/// The first `count` frames of vtest.avi at one frame every two seconds (the same ones on
/// every run).
fn street_frames(count: usize) -> Vec<BgrImage> {
    let dir = std::env::var_os("ARGUS_SAMPLE_DIR")
        .expect("ARGUS_SAMPLE_DIR is set by deploy/env.sh (Debian package opencv-doc)");
    let video = Path::new(&dir).join("vtest.avi");
    // tests run in parallel: each call decodes into a file of its own
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let raw = std::env::temp_dir().join(format!(
        "argus-detection-{}-{}.bgr",
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    let status = Command::new("gst-launch-1.0")
        .arg("-q")
        .arg("filesrc")
        .arg(format!("location={}", video.display()))
        .args(["!", "decodebin", "!", "videorate", "!"])
        .arg("video/x-raw,framerate=1/2")
        .args(["!", "videoconvert", "!", "videoscale", "!"])
        .arg(format!(
            "video/x-raw,format=BGR,width={WIDTH},height={HEIGHT}"
        ))
        .args(["!", "identity"])
        .arg(format!("eos-after={}", count + 1))
        .args(["!", "filesink"])
        .arg(format!("location={}", raw.display()))
        .status()
        .expect("gst-launch-1.0 (Debian gstreamer1.0-tools, installed by deploy/setup.sh)");
    assert!(status.success(), "decoding {}: {status}", video.display());
    let bytes = std::fs::read(&raw).unwrap();
    std::fs::remove_file(&raw).ok();
    let frame_len = (WIDTH * HEIGHT * 3) as usize;
    // The frame videorate emits as the stream ends varies from run to run (and `eos-after`
    // sometimes lets more through): one frame more is decoded than is used.
    assert!(bytes.len() >= count * frame_len, "{count} frames decoded");
    bytes
        .chunks_exact(frame_len)
        .take(count)
        .map(|frame| BgrImage::new(WIDTH, HEIGHT, frame.to_vec()).unwrap())
        .collect()
}

fn config(architecture: Architecture) -> DetectorConfig {
    DetectorConfig {
        architecture,
        ..DetectorConfig::default()
    }
}

fn people(detections: &[Detection]) -> Vec<&Detection> {
    detections.iter().filter(|d| d.class == "person").collect()
}

#[test]
fn pedestrians_are_found_by_both_detectors() {
    // 14 s in: nine people walk or stand in view, one of them half behind a sign
    let frame = street_frames(8).pop().unwrap();
    for architecture in [Architecture::NanoDet, Architecture::CenterNet] {
        let mut detector = Detector::load(&model_dir(), config(architecture)).unwrap();
        let started = Instant::now();
        let found = detector.detect(&frame).unwrap();
        println!("{architecture:?} ({:?}): {found:#?}", started.elapsed());
        let persons = people(&found);
        assert!(
            persons.len() >= 3,
            "{architecture:?} found {} people",
            persons.len()
        );
        for detection in &found {
            let (b, p) = (detection.bbox, detection.pixels);
            assert!(0.0 <= b.x1 && b.x1 < b.x2 && b.x2 <= 1.0, "{detection:?}");
            assert!(0.0 <= b.y1 && b.y1 < b.y2 && b.y2 <= 1.0, "{detection:?}");
            assert!((p.x2 / WIDTH as f32 - b.x2).abs() < 1e-5, "{detection:?}");
            assert!(detection.score >= DetectorConfig::default().score_threshold);
        }
        // people standing in a street are taller than wide, and far smaller than the frame
        for person in persons {
            let (w, h) = (
                person.pixels.x2 - person.pixels.x1,
                person.pixels.y2 - person.pixels.y1,
            );
            assert!(h > w && h < HEIGHT as f32 / 2.0, "{person:?}");
        }
        assert!(
            found.windows(2).all(|w| w[0].score >= w[1].score),
            "most confident first"
        );
    }
}

#[test]
fn a_batch_detects_the_same_as_frames_one_by_one() {
    let frames = street_frames(3);
    let mut detector = Detector::load(&model_dir(), DetectorConfig::default()).unwrap();
    let one_by_one: Vec<Vec<Detection>> = frames
        .iter()
        .map(|frame| detector.detect(frame).unwrap())
        .collect();
    let batch = detector
        .detect_batch(&frames.iter().collect::<Vec<_>>())
        .unwrap();
    assert_eq!(batch, one_by_one);
    assert!(detector.detect_batch(&[]).unwrap().is_empty());
}

#[test]
fn the_class_filter_and_threshold_are_honoured() {
    let frame = street_frames(8).pop().unwrap();
    let only_people = DetectorConfig {
        classes: vec!["person".into()],
        score_threshold: 0.6,
        ..DetectorConfig::default()
    };
    let mut detector = Detector::load(&model_dir(), only_people).unwrap();
    let found = detector.detect(&frame).unwrap();
    assert!(!found.is_empty());
    assert!(found.iter().all(|d| d.class == "person" && d.score >= 0.6));
}

#[test]
fn a_missing_model_names_the_file_and_the_fix() {
    let message = Detector::load(Path::new("/nonexistent/models"), DetectorConfig::default())
        .err()
        .expect("loading from a missing folder must fail")
        .to_string();
    assert!(
        message.contains("/nonexistent/models/nanodet.onnx") && message.contains("deploy/setup.sh"),
        "{message}"
    );
}

#[test]
fn a_model_of_the_other_architecture_is_a_clear_error() {
    let nanodet = model_dir().join("nanodet.onnx");
    let message = Detector::load(&nanodet, config(Architecture::CenterNet))
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.contains("nanodet.onnx") && message.contains("holds a nanodet model"),
        "{message}"
    );
    // any ONNX model without the converter's metadata: the PP-OCR detector setup installs
    let ocr = model_dir().join("../pp-ocrv4/ch_PP-OCRv4_det_infer.onnx");
    let message = Detector::load(&ocr, DetectorConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.contains("ch_PP-OCRv4_det_infer.onnx")
            && message.contains("no `architecture` metadata"),
        "{message}"
    );
}

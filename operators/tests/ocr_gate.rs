//! Reading only what changed ([`argus_operators::ocr::gate`]) against reading every frame
//! whole, frame by frame, with the PP-OCRv4 models `deploy/setup.sh` ships: on a generated
//! scene (still signs, a counter that changes, a box that walks across a sign) and on the
//! real street camera (`vtest.avi`).

use std::path::PathBuf;

use argus_operators::ocr::gate::{ReadPlan, TextGate};
use argus_operators::ocr::{OcrConfig, PpOcr, ReadJob, TextLine};
use argus_operators::BgrImage;
use opencv::core::{Mat, Point, Rect, Scalar, CV_8UC3};
use opencv::imgproc;
use opencv::prelude::*;

fn model_dir() -> PathBuf {
    let root =
        std::env::var_os("ARGUS_MODEL_DIR").expect("ARGUS_MODEL_DIR is set by deploy/env.sh");
    PathBuf::from(root).join("pp-ocrv4")
}

/// Frame `i` of the generated scene: 1280x720, three still signs, a bay counter that changes
/// every third frame, and a dark box that walks left to right across the middle sign.
fn scene(i: i32) -> BgrImage {
    let mut frame =
        Mat::new_rows_cols_with_default(720, 1280, CV_8UC3, Scalar::all(190.0)).unwrap();
    let mut text = |text: &str, x: i32, y: i32, scale: f64| {
        imgproc::put_text(
            &mut frame,
            text,
            Point::new(x, y),
            imgproc::FONT_HERSHEY_DUPLEX,
            scale,
            Scalar::all(15.0),
            2,
            imgproc::LINE_AA,
            false,
        )
        .unwrap();
    };
    text("GATE 3 OPEN", 60, 90, 1.6);
    text("EXIT", 560, 380, 1.6);
    text("NO PARKING", 900, 650, 1.4);
    text(&format!("BAY {}", 1 + i / 3), 60, 650, 0.9);
    let walker = Rect::new(-100 + i * 70, 300, 70, 160);
    imgproc::rectangle(
        &mut frame,
        walker,
        Scalar::new(60.0, 40.0, 30.0, 0.0),
        imgproc::FILLED,
        imgproc::LINE_8,
        0,
    )
    .unwrap();
    BgrImage::new(1280, 720, frame.data_bytes().unwrap().to_vec()).unwrap()
}

/// vtest.avi (768x576) at 1 fps, as the service samples it, decoded by `gst-launch-1.0` into
/// raw BGR files (OpenCV here is built without video input).
fn street(frames: usize) -> Vec<BgrImage> {
    let dir = std::env::var("ARGUS_SAMPLE_DIR").expect("ARGUS_SAMPLE_DIR is set by deploy/env.sh");
    let video = PathBuf::from(dir).join("vtest.avi");
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("gst-launch-1.0")
        .arg("-q")
        .args([
            "filesrc",
            &format!("location={}", video.display()),
            "!",
            "decodebin",
        ])
        .args([
            "!",
            "videorate",
            "drop-only=true",
            "!",
            "video/x-raw,framerate=1/1",
        ])
        .args([
            "!",
            "videoconvert",
            "!",
            "video/x-raw,format=BGR,width=768,height=576",
        ])
        .args(["!", "multifilesink"])
        .arg(format!("location={}/%03d.bgr", out.path().display()))
        .status()
        .expect("gst-launch-1.0 runs");
    assert!(status.success(), "decoding {} failed", video.display());
    (0..frames)
        .map_while(|i| std::fs::read(out.path().join(format!("{i:03}.bgr"))).ok())
        .map(|data| BgrImage::new(768, 576, data).unwrap())
        .collect()
}

fn texts(lines: &[TextLine]) -> Vec<String> {
    let mut texts: Vec<String> = lines.iter().map(|l| l.text.to_uppercase()).collect();
    texts.sort();
    texts
}

/// One frame's sorted texts, read whole and through the gate.
type Readings = (Vec<String>, Vec<String>);

/// Reads `frames` whole and through a gate; per frame both readings' sorted texts, and the
/// share of the pixels the gated detector saw.
fn both_ways(frames: &[BgrImage]) -> (Vec<Readings>, f64) {
    let mut ocr = PpOcr::load(&model_dir(), OcrConfig::default()).unwrap();
    let mut gate = TextGate::new(OcrConfig::default().full_read_every);
    let (mut seen, mut total) = (0u64, 0u64);
    let mut readings = Vec::new();
    for frame in frames {
        let whole = ocr.recognize(frame).unwrap();
        let plan = gate.plan(frame).unwrap();
        let areas = match &plan {
            ReadPlan::Whole => None,
            ReadPlan::Areas(areas) => Some(areas.as_slice()),
        };
        let reading = ocr
            .read_batch(&[ReadJob {
                image: frame,
                areas,
            }])
            .unwrap()
            .pop()
            .unwrap();
        seen += reading.pixels;
        total += frame.width() as u64 * frame.height() as u64;
        gate.settle(reading.whole, &reading.lines);
        let gated = reading.lines;
        readings.push((texts(&whole), texts(&gated)));
    }
    (readings, seen as f64 / total as f64)
}

#[test]
fn the_gate_reads_the_generated_scene_as_whole_frames_do_from_a_fraction_of_its_pixels() {
    let frames: Vec<BgrImage> = (0..24).map(scene).collect();
    let (readings, share) = both_ways(&frames);
    let same = readings
        .iter()
        .filter(|(whole, gated)| whole == gated)
        .count();
    for (i, (whole, gated)) in readings.iter().enumerate() {
        if whole != gated {
            eprintln!("frame {i}: whole {whole:?}, gated {gated:?}");
        }
    }
    eprintln!(
        "generated scene: {same} of {} frames read the same; {:.0} % of the pixels",
        readings.len(),
        share * 100.0
    );
    // Every value of the counter is read on its frames: a small change is not missed.
    for (i, (_, gated)) in readings.iter().enumerate() {
        let bay = format!("BAY {}", 1 + i / 3);
        assert!(gated.contains(&bay), "frame {i}: {bay} not in {gated:?}");
    }
    assert!(same >= readings.len() - 1, "{same} of {}", readings.len());
    assert!(
        share < 0.4,
        "the gate read {:.0} % of the pixels",
        share * 100.0
    );
}

#[test]
fn on_the_street_camera_the_gate_reads_what_whole_frames_read() {
    let frames = street(40);
    assert_eq!(frames.len(), 40);
    let (readings, share) = both_ways(&frames);
    let (mut both, mut whole_only, mut gated_only) = (0usize, 0usize, 0usize);
    for (i, (whole, gated)) in readings.iter().enumerate() {
        let common = whole.iter().filter(|t| gated.contains(t)).count();
        both += common;
        whole_only += whole.len() - common;
        gated_only += gated.len() - common;
        if whole != gated {
            eprintln!("frame {i}: whole {whole:?}, gated {gated:?}");
        }
    }
    eprintln!(
        "vtest.avi: {both} lines read both ways, {whole_only} only whole, {gated_only} only gated; {:.0} % of the pixels",
        share * 100.0
    );
    // The street has no legible text: what either way reads is the detector's noise (a line
    // of CJK on a shop front now and then, on different frames). The gate must not add to it.
    assert!(
        whole_only + gated_only <= frames.len() / 10,
        "{whole_only} lines only whole, {gated_only} only gated"
    );
    assert!(
        share < 0.7,
        "the gate read {:.0} % of the pixels",
        share * 100.0
    );
}

/// One sign after another over a still test pattern, five frames each at 1 fps, through
/// H.264 and back (as `tests/src/lib.rs`'s `make_signs_video` makes a camera for question
/// rules), decoded by `gst-launch-1.0` into raw BGR.
fn signs(signs: &[&str]) -> Vec<BgrImage> {
    let out = tempfile::tempdir().unwrap();
    let mut frames = Vec::new();
    for (k, sign) in signs.iter().enumerate() {
        let status = std::process::Command::new("gst-launch-1.0")
            .arg("-q")
            .args(["videotestsrc", "pattern=smpte", "num-buffers=5"])
            .args(["!", "video/x-raw,width=1280,height=720,framerate=1/1"])
            .args(["!", "textoverlay", &format!("text={sign}")])
            .args(["font-desc=Sans Bold 56", "shaded-background=true"])
            .args(["valignment=center", "halignment=center"])
            .args(["!", "videoconvert", "!", "video/x-raw,format=I420"])
            .args(["!", "x264enc", "speed-preset=ultrafast", "!", "avdec_h264"])
            .args(["!", "videoconvert", "!", "video/x-raw,format=BGR"])
            .args(["!", "multifilesink"])
            .arg(format!("location={}/{k}-%02d.bgr", out.path().display()))
            .status()
            .expect("gst-launch-1.0 runs");
        assert!(status.success(), "rendering {sign} failed");
        for i in 0..5 {
            let data = std::fs::read(out.path().join(format!("{k}-{i:02}.bgr"))).unwrap();
            frames.push(BgrImage::new(1280, 720, data).unwrap());
        }
    }
    frames
}

#[test]
fn signs_that_change_are_read_as_whole_frames_read_them() {
    let frames = signs(&["NO PARKING", "WET FLOOR CAUTION", "HIGH VOLTAGE"]);
    let (readings, share) = both_ways(&frames);
    for (i, (whole, gated)) in readings.iter().enumerate() {
        eprintln!("frame {i}: whole {whole:?}, gated {gated:?}");
    }
    eprintln!("signs: {:.0} % of the pixels", share * 100.0);
    let same = readings
        .iter()
        .filter(|(whole, gated)| whole == gated)
        .count();
    assert_eq!(same, readings.len());
}

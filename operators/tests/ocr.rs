//! PP-OCRv4 on frames with text rendered by OpenCV, using the models `deploy/setup.sh` ships.

use std::path::PathBuf;

use argus_operators::ocr::{OcrConfig, PpOcr};
use argus_operators::BgrImage;
use opencv::core::{Mat, Point, Scalar, CV_8UC3};
use opencv::imgproc;
use opencv::prelude::*;

fn model_dir() -> PathBuf {
    let root =
        std::env::var_os("ARGUS_MODEL_DIR").expect("ARGUS_MODEL_DIR is set by deploy/env.sh");
    PathBuf::from(root).join("pp-ocrv4")
}

/// A grey 640x360 frame with black text lines drawn at the given positions.
fn frame_with_text(lines: &[(&str, i32, i32)]) -> BgrImage {
    let mut frame = Mat::new_rows_cols_with_default(360, 640, CV_8UC3, Scalar::all(200.0)).unwrap();
    for (text, x, y) in lines {
        imgproc::put_text(
            &mut frame,
            text,
            Point::new(*x, *y),
            imgproc::FONT_HERSHEY_DUPLEX,
            1.4,
            Scalar::all(10.0),
            3,
            imgproc::LINE_AA,
            false,
        )
        .unwrap();
    }
    BgrImage::new(640, 360, frame.data_bytes().unwrap().to_vec()).unwrap()
}

#[test]
fn reads_rendered_words_in_reading_order() {
    let mut ocr = PpOcr::load(&model_dir(), OcrConfig::default()).unwrap();
    let lines = ocr
        .recognize(&frame_with_text(&[
            ("GATE 3 OPEN", 40, 100),
            ("TRUCK 42", 60, 250),
        ]))
        .unwrap();
    let texts: Vec<String> = lines.iter().map(|l| l.text.to_uppercase()).collect();
    assert_eq!(texts.len(), 2, "expected two lines, got {lines:?}");
    assert!(
        texts[0].contains("GATE") && texts[0].contains("OPEN"),
        "{texts:?}"
    );
    assert!(
        texts[1].contains("TRUCK") && texts[1].contains("42"),
        "{texts:?}"
    );
    assert!(
        lines[0].quad[0][1] < lines[1].quad[0][1],
        "reading order: top line first"
    );
    for line in &lines {
        assert!(line.score > 0.8, "{line:?}");
        // boxes stay inside the frame
        assert!(line
            .quad
            .iter()
            .all(|p| p[0] >= 0.0 && p[0] < 640.0 && p[1] >= 0.0 && p[1] < 360.0));
    }
}

#[test]
fn a_blank_frame_has_no_text() {
    let mut ocr = PpOcr::load(&model_dir(), OcrConfig::default()).unwrap();
    assert!(ocr.recognize(&frame_with_text(&[])).unwrap().is_empty());
}

#[test]
fn a_missing_model_names_the_file() {
    let error = PpOcr::load(
        std::path::Path::new("/nonexistent/models"),
        OcrConfig::default(),
    )
    .err()
    .expect("loading from a missing folder must fail");
    let message = error.to_string();
    assert!(
        message.contains("/nonexistent/models/ch_PP-OCRv4_det_infer.onnx"),
        "{message}"
    );
}

#[test]
fn a_model_that_is_not_onnx_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("argus-bad-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("ch_PP-OCRv4_det_infer.onnx"),
        b"definitely not a protobuf",
    )
    .unwrap();
    let message = PpOcr::load(&dir, OcrConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.contains("could not load model") && message.contains("ch_PP-OCRv4_det_infer.onnx"),
        "{message}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_batch_reads_the_same_as_frames_one_by_one() {
    let mut ocr = PpOcr::load(&model_dir(), OcrConfig::default()).unwrap();
    let frames = [
        frame_with_text(&[("CAMERA ONE", 40, 100)]),
        frame_with_text(&[]),
        frame_with_text(&[("LANE 7", 200, 200), ("EXIT", 60, 300)]),
    ];
    let one_by_one: Vec<_> = frames.iter().map(|f| ocr.recognize(f).unwrap()).collect();
    let batch = ocr
        .recognize_batch(&frames.iter().collect::<Vec<_>>())
        .unwrap();
    assert_eq!(batch.len(), 3);
    for (single, batched) in one_by_one.iter().zip(&batch) {
        let texts = |lines: &[argus_operators::ocr::TextLine]| {
            lines.iter().map(|l| l.text.clone()).collect::<Vec<_>>()
        };
        assert_eq!(texts(single), texts(batched));
        for (a, b) in single.iter().zip(batched) {
            assert_eq!(a.quad, b.quad);
            // Recognition pads each line to the widest line of its batch, which moves the
            // character probabilities a little; the text and boxes must not change.
            assert!((a.score - b.score).abs() < 0.02, "{a:?} vs {b:?}");
        }
    }
    assert!(batch[0][0].text.contains("CAMERA"));
    assert!(batch[1].is_empty());
    assert_eq!(batch[2].len(), 2);
}

//! EfficientNet-Lite0 ImageNet tags on real photographs from Debian's opencv-doc package,
//! using the model `deploy/setup.sh` converts.

use std::path::{Path, PathBuf};
use std::time::Instant;

use argus_operators::tagging::{ImageTagger, Tag};
use argus_operators::BgrImage;

fn model_dir() -> PathBuf {
    let root =
        std::env::var_os("ARGUS_MODEL_DIR").expect("ARGUS_MODEL_DIR is set by deploy/env.sh");
    PathBuf::from(root).join("efficientnet-lite0")
}

fn sample(name: &str) -> BgrImage {
    let dir = std::env::var_os("ARGUS_SAMPLE_DIR")
        .expect("ARGUS_SAMPLE_DIR is set by deploy/env.sh (Debian package opencv-doc)");
    let path = Path::new(&dir).join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    BgrImage::decode(&bytes).unwrap()
}

/// Photographs with one obvious ImageNet class, and that class's name.
const PHOTOS: [(&str, &str); 3] = [
    ("baboon.jpg", "baboon"),
    ("squirrel_cls.jpg", "fox squirrel"),
    ("butterfly.jpg", "monarch"),
];

fn describe(tags: &[Tag]) -> String {
    tags.iter()
        .map(|t| format!("{} {:.3}", t.label, t.score))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn photographs_are_tagged_with_their_class() {
    let mut tagger = ImageTagger::load(&model_dir()).unwrap();
    for (file, class) in PHOTOS {
        let frame = sample(file);
        let started = Instant::now();
        let tags = tagger.tag(&frame, 5).unwrap();
        println!("{file} ({:?}): {}", started.elapsed(), describe(&tags));
        assert_eq!(tags.len(), 5);
        assert!(
            tags.iter().any(|t| t.label == class),
            "{file}: {class} not in the top 5: {}",
            describe(&tags)
        );
        assert!(
            tags.windows(2).all(|w| w[0].score >= w[1].score),
            "most likely first"
        );
        let total: f32 = tags.iter().map(|t| t.score).sum();
        assert!(tags.iter().all(|t| t.score > 0.0) && total <= 1.0 + 1e-5);
    }
}

#[test]
fn a_batch_tags_the_same_as_frames_one_by_one() {
    let mut tagger = ImageTagger::load(&model_dir()).unwrap();
    let frames: Vec<BgrImage> = PHOTOS.iter().map(|(file, _)| sample(file)).collect();
    let one_by_one: Vec<Vec<Tag>> = frames
        .iter()
        .map(|frame| tagger.tag(frame, 5).unwrap())
        .collect();
    let batch = tagger
        .tag_batch(&frames.iter().collect::<Vec<_>>(), 5)
        .unwrap();
    assert_eq!(batch.len(), frames.len());
    for (single, batched) in one_by_one.iter().zip(&batch) {
        let labels = |tags: &[Tag]| tags.iter().map(|t| t.label.clone()).collect::<Vec<_>>();
        assert_eq!(labels(single), labels(batched));
        for (a, b) in single.iter().zip(batched) {
            assert!((a.score - b.score).abs() < 1e-4, "{a:?} vs {b:?}");
        }
    }
    assert!(tagger.tag_batch(&[], 5).unwrap().is_empty());
}

#[test]
fn top_k_is_honoured() {
    let mut tagger = ImageTagger::load(&model_dir()).unwrap();
    let frame = sample("baboon.jpg");
    assert!(tagger.tag(&frame, 0).unwrap().is_empty());
    assert_eq!(tagger.tag(&frame, 1).unwrap()[0].label, "baboon");
    let all = tagger.tag(&frame, 5000).unwrap();
    assert_eq!(all.len(), 1000, "at most one tag per ImageNet class");
    let total: f32 = all.iter().map(|t| t.score).sum();
    assert!((total - 1.0).abs() < 1e-3, "probabilities sum to {total}");
}

#[test]
fn a_missing_model_names_the_file_and_the_fix() {
    let message = ImageTagger::load(Path::new("/nonexistent/models"))
        .err()
        .expect("loading from a missing folder must fail")
        .to_string();
    assert!(
        message.contains("/nonexistent/models/efficientnet-lite0.onnx")
            && message.contains("deploy/setup.sh"),
        "{message}"
    );
}

#[test]
fn a_model_without_labels_is_a_clear_error() {
    // Any ONNX model without the metadata that deploy/convert_efficientnet_lite0.py writes:
    // the PP-OCR detector that setup also installs.
    let dir = std::env::temp_dir().join(format!("argus-tagger-no-labels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let detector = model_dir().join("../pp-ocrv4/ch_PP-OCRv4_det_infer.onnx");
    std::fs::copy(&detector, dir.join("efficientnet-lite0.onnx")).unwrap();
    let message = ImageTagger::load(&dir).err().unwrap().to_string();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        message.contains("no `labels` metadata") && message.contains("efficientnet-lite0.onnx"),
        "{message}"
    );
}

//! CLIP and SigLIP image-text embeddings (Hugging Face checkpoints through `tch`, an ONNX
//! export through ONNX Runtime), checked against tiny seeded two-tower models and the
//! embeddings `transformers` computed from them: reference/make_image_text_reference.py.
//!
//! Frames come in two groups. The "exact" ones need no resampling (already the model's size,
//! or only a centre crop away), so the preprocessing must match the processor to float
//! precision and the embeddings to 1e-4. The "resized" ones (odd sizes) go through OpenCV's
//! resize (area filter when shrinking, bicubic when enlarging), which is not the processor's
//! antialiased bicubic (Pillow / torchvision) pixel for pixel, so they are held to a cosine
//! with `transformers`' embedding instead.

use std::fs;
use std::path::{Path, PathBuf};

use argus_operators::image_text::{ImageTextEncoder, ImageTextFamily};
use argus_operators::{BgrImage, OperatorError};
use tch::{Device, Kind, Tensor};

/// float32 against the float64 reference: anything above this is a real difference.
const TOLERANCE: f32 = 1e-4;
/// Cosine with `transformers` for resampled frames (OpenCV vs antialiased bicubic).
const RESIZED_COSINE: f32 = 0.99;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference")
}

fn reference(name: &str) -> Tensor {
    Tensor::read_safetensors(reference_dir().join("image_text_reference.safetensors"))
        .unwrap()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} is not in the reference"))
        .1
}

fn meta() -> serde_json::Value {
    let text = fs::read_to_string(reference_dir().join("image_text_reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn texts() -> Vec<String> {
    meta()["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

/// The seeded frames of `group` ("exact.clip", "exact.siglip" or "resized").
fn images(group: &str) -> Vec<BgrImage> {
    let count = meta()[format!("images.{group}")].as_u64().unwrap();
    (0..count)
        .map(|i| {
            let pixels = reference(&format!("images.{group}.{i}"));
            let (height, width, _) = pixels.size3().unwrap();
            let data = Vec::<u8>::try_from(&pixels.flatten(0, -1)).unwrap();
            BgrImage::new(width as u32, height as u32, data).unwrap()
        })
        .collect()
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    Vec::<Vec<f32>>::try_from(&t.to_kind(Kind::Float)).unwrap()
}

fn max_abs_error(ours: &[Vec<f32>], theirs: &[Vec<f32>]) -> f32 {
    assert_eq!(ours.len(), theirs.len());
    ours.iter()
        .zip(theirs)
        .flat_map(|(a, b)| {
            assert_eq!(a.len(), b.len());
            a.iter().zip(b).map(|(x, y)| (x - y).abs())
        })
        .fold(0.0, f32::max)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn load(name: &str) -> ImageTextEncoder {
    ImageTextEncoder::load(&fixture(name), Device::Cpu).unwrap()
}

fn embed_images(model: &mut ImageTextEncoder, group: &str) -> Vec<Vec<f32>> {
    let images = images(group);
    let refs: Vec<&BgrImage> = images.iter().collect();
    model.embed_images(&refs).unwrap()
}

fn embed_texts(model: &mut ImageTextEncoder) -> Vec<Vec<f32>> {
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    model.embed_texts(&refs).unwrap()
}

/// Exact frames and texts against the reference; returns the worst error.
fn check_against_reference(model: &mut ImageTextEncoder, family: &str, exact: &str) -> f32 {
    let texts = embed_texts(model);
    let images = embed_images(model, exact);
    for embedding in texts.iter().chain(&images) {
        assert_eq!(embedding.len(), model.dimension());
        assert!(
            (dot(embedding, embedding) - 1.0).abs() < 1e-5,
            "not unit length"
        );
    }
    let text_error = max_abs_error(&texts, &rows(&reference(&format!("{family}.text"))));
    let image_error = max_abs_error(&images, &rows(&reference(&format!("{family}.{exact}"))));
    assert!(
        text_error <= TOLERANCE,
        "{family} texts: max abs error {text_error}"
    );
    assert!(
        image_error <= TOLERANCE,
        "{family} images: max abs error {image_error}"
    );
    println!(
        "{} ({family}): max abs error against transformers: texts {text_error:e}, images \
         {image_error:e}",
        model.name()
    );
    text_error.max(image_error)
}

/// The least cosine between our embeddings of the resized frames and `transformers`'.
fn resized_cosine(model: &mut ImageTextEncoder, family: &str) -> f32 {
    let ours = embed_images(model, "resized");
    let theirs = rows(&reference(&format!("{family}.resized")));
    let worst = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| dot(a, b))
        .fold(f32::INFINITY, f32::min);
    println!(
        "{} ({family}): least cosine for resized frames: {worst}",
        model.name()
    );
    worst
}

fn close(a: f32, b: f64) -> bool {
    (f64::from(a) - b).abs() <= 1e-4 * b.abs().max(1.0)
}

#[test]
fn clip_checkpoint_matches_transformers() {
    let mut model = load("clip-pair-tiny");
    assert_eq!(model.family(), ImageTextFamily::Clip);
    // The top-level projection_dim, not the text config's own (512).
    assert_eq!(model.dimension(), 16);
    assert_eq!(model.name(), "clip-pair-tiny");
    assert!(close(
        model.logit_scale(),
        meta()["clip.logit_scale"].as_f64().unwrap()
    ));
    assert_eq!(model.logit_bias(), 0.0);
    check_against_reference(&mut model, "clip", "exact.clip");
    assert!(resized_cosine(&mut model, "clip") > RESIZED_COSINE);
}

#[test]
fn siglip_checkpoint_matches_transformers() {
    let mut model = load("siglip-pair-tiny");
    assert_eq!(model.family(), ImageTextFamily::Siglip);
    assert_eq!(model.dimension(), 32);
    assert!(close(
        model.logit_scale(),
        meta()["siglip.logit_scale"].as_f64().unwrap()
    ));
    assert!(close(
        model.logit_bias(),
        meta()["siglip.logit_bias"].as_f64().unwrap()
    ));
    check_against_reference(&mut model, "siglip", "exact.siglip");
    assert!(resized_cosine(&mut model, "siglip") > RESIZED_COSINE);
}

#[test]
fn clip_onnx_export_matches_transformers() {
    let mut model = load("clip-pair-tiny-onnx");
    assert_eq!(model.family(), ImageTextFamily::Clip);
    assert_eq!(model.dimension(), 16);
    // The export's config.json carries the learned scale.
    assert!(close(
        model.logit_scale(),
        meta()["clip.logit_scale"].as_f64().unwrap()
    ));
    assert_eq!(model.logit_bias(), 0.0);
    check_against_reference(&mut model, "clip", "exact.clip");
    assert!(resized_cosine(&mut model, "clip") > RESIZED_COSINE);
}

#[test]
fn texts_embed_the_same_alone_as_in_a_batch() {
    // CLIP pads a batch to its longest text, SigLIP every text to one length: neither may
    // change a text's embedding. The reference batch is ordered differently from ours.
    for name in ["clip-pair-tiny", "siglip-pair-tiny", "clip-pair-tiny-onnx"] {
        let mut model = load(name);
        let batch = embed_texts(&mut model);
        for (text, expected) in texts().iter().zip(&batch) {
            let alone = model.embed_texts(&[text]).unwrap();
            let error = max_abs_error(&alone, std::slice::from_ref(expected));
            assert!(error <= 1e-5, "{name}: {text:?} alone differs by {error}");
        }
        assert!(model.embed_texts(&[]).unwrap().is_empty());
        assert!(model.embed_images(&[]).unwrap().is_empty());
    }
}

#[test]
fn clip_ranks_frames_for_each_text_as_transformers_does() {
    let rank = |texts: &[Vec<f32>], images: &[Vec<f32>]| -> Vec<Vec<usize>> {
        texts
            .iter()
            .map(|t| {
                let mut order: Vec<usize> = (0..images.len()).collect();
                order.sort_by(|&a, &b| dot(t, &images[b]).total_cmp(&dot(t, &images[a])));
                order
            })
            .collect()
    };
    let theirs = rank(
        &rows(&reference("clip.text")),
        &rows(&reference("clip.exact.clip")),
    );
    for name in ["clip-pair-tiny", "clip-pair-tiny-onnx"] {
        let mut model = load(name);
        let texts = embed_texts(&mut model);
        let images = embed_images(&mut model, "exact.clip");
        assert_eq!(rank(&texts, &images), theirs, "{name}");
    }
}

#[test]
fn onnx_folders_without_a_learned_scale_fall_back_to_clips_trained_one() {
    let dir = scratch("onnx-scale");
    copy_dir(&fixture("clip-pair-tiny-onnx"), &dir, &[]);
    let mut config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    config.as_object_mut().unwrap().remove("logit_scale");
    fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let model = ImageTextEncoder::load(&dir, Device::Cpu).unwrap();
    assert_eq!(model.logit_scale(), 100.0);
    assert_eq!(model.logit_bias(), 0.0);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_name_what_is_wrong() {
    // No tokenizer.json.
    let dir = scratch("no-tokenizer");
    copy_dir(&fixture("clip-pair-tiny"), &dir, &["tokenizer.json"]);
    match ImageTextEncoder::load(&dir, Device::Cpu) {
        Err(error @ OperatorError::MissingModel { .. }) => {
            let message = error.to_string();
            assert!(message.contains("tokenizer.json"), "{message}");
            assert!(
                message.contains("needs config.json and tokenizer.json"),
                "{message}"
            );
        }
        other => panic!("expected MissingModel, got {:?}", other.err()),
    }
    fs::remove_dir_all(&dir).unwrap();

    // An ONNX folder missing one of its graphs.
    let dir = scratch("no-text-graph");
    copy_dir(&fixture("clip-pair-tiny-onnx"), &dir, &["text_model.onnx"]);
    match ImageTextEncoder::load(&dir, Device::Cpu) {
        Err(OperatorError::MissingModel { path, hint }) => {
            assert!(path.ends_with("onnx/text_model.onnx"), "{path:?}");
            assert!(
                hint.contains("vision_model.onnx and text_model.onnx"),
                "{hint}"
            );
        }
        other => panic!("expected MissingModel, got {:?}", other.err()),
    }
    fs::remove_dir_all(&dir).unwrap();

    // Neither weights nor graphs.
    let dir = scratch("no-weights");
    copy_dir(&fixture("clip-pair-tiny"), &dir, &["model.safetensors"]);
    match ImageTextEncoder::load(&dir, Device::Cpu) {
        Err(OperatorError::MissingModel { path, .. }) => {
            assert!(path.ends_with("model.safetensors"), "{path:?}")
        }
        other => panic!("expected MissingModel, got {:?}", other.err()),
    }
    fs::remove_dir_all(&dir).unwrap();

    // An unknown model type.
    let dir = scratch("unknown-type");
    copy_dir(&fixture("siglip-pair-tiny"), &dir, &[]);
    let config = fs::read_to_string(dir.join("config.json"))
        .unwrap()
        .replace(r#""model_type": "siglip""#, r#""model_type": "blip""#);
    fs::write(dir.join("config.json"), config).unwrap();
    match ImageTextEncoder::load(&dir, Device::Cpu) {
        Err(OperatorError::UnsupportedModel { message, .. }) => {
            assert!(message.contains("\"blip\""), "{message}")
        }
        other => panic!("expected UnsupportedModel, got {:?}", other.err()),
    }
    fs::remove_dir_all(&dir).unwrap();

    // A head tensor of the wrong shape.
    let dir = scratch("bad-probe");
    copy_dir(&fixture("siglip-pair-tiny"), &dir, &["model.safetensors"]);
    let mut tensors =
        Tensor::read_safetensors(fixture("siglip-pair-tiny").join("model.safetensors")).unwrap();
    let bad = "vision_model.head.probe";
    for (name, tensor) in &mut tensors {
        if name == bad {
            *tensor = Tensor::zeros([1, 2, 32], (Kind::Float, Device::Cpu));
        }
    }
    Tensor::write_safetensors(&tensors, dir.join("model.safetensors")).unwrap();
    match ImageTextEncoder::load(&dir, Device::Cpu) {
        Err(OperatorError::TensorShape { name, actual, .. }) => {
            assert_eq!(name, bad);
            assert_eq!(actual, [1, 2, 32]);
        }
        other => panic!("expected TensorShape, got {:?}", other.err()),
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn encoders_can_move_to_a_worker_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<ImageTextEncoder>();
}

fn scratch(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("argus-image-text-{label}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

/// Copies the folder `from` into `to`, leaving out files named in `skip`.
fn copy_dir(from: &Path, to: &Path, skip: &[&str]) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if skip.iter().any(|s| name == **s) {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(&name), skip);
        } else {
            fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

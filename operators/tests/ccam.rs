//! The Video-CCAM projector against an independent plain-PyTorch implementation of the same
//! rules on a tiny seeded checkpoint (reference/make_vision_reference.py), plus its streaming
//! and causal properties.

use std::fs;
use std::path::{Path, PathBuf};

use argus_operators::ccam::{query_block, Ccam};
use argus_operators::OperatorError;
use tch::{Device, Kind, Tensor};

/// float32 against the float64 reference: anything above this is a real difference.
const TOLERANCE: f64 = 1e-4;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ccam-tiny")
}

fn reference() -> (Vec<Tensor>, Tensor) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/ccam_reference.safetensors");
    let tensors = Tensor::read_safetensors(path).unwrap();
    let get = |name: &str| {
        tensors
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} is not in the reference"))
            .1
            .shallow_clone()
    };
    let frames = (0..4).map(|i| get(&format!("frame.{i}"))).collect();
    (frames, get("output"))
}

fn max_abs_error(ours: &Tensor, theirs: &Tensor) -> f64 {
    assert_eq!(ours.size(), theirs.size());
    (ours.to_kind(Kind::Double) - theirs.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

fn ccam() -> Ccam {
    Ccam::load(&fixture(), Device::Cpu).unwrap()
}

#[test]
fn blocks_follow_the_documented_rule() {
    // 10 queries over 4 frames: [0, 2), [2, 5), [5, 7), [7, 10).
    let blocks: Vec<_> = (0..4).map(|k| query_block(10, 4, k)).collect();
    assert_eq!(blocks, [0..2, 2..5, 5..7, 7..10]);
    // Fewer queries than frames: some blocks are empty, none overlap.
    let blocks: Vec<_> = (0..4).map(|k| query_block(2, 4, k)).collect();
    assert_eq!(blocks, [0..0, 0..1, 1..1, 1..2]);
}

#[test]
fn batch_matches_the_reference() {
    let (frames, expected) = reference();
    let model = ccam();
    let output = model.project(&frames).unwrap();
    assert_eq!(output.size(), [10, 12]);
    let error = max_abs_error(&output, &expected);
    assert!(error <= TOLERANCE, "max abs error {error}");
    println!("CCAM max abs error against the reference: {error:e}");
}

#[test]
fn streaming_equals_batch() {
    let (frames, _) = reference();
    let model = ccam();
    let batch = model.project(&frames).unwrap();
    let mut stream = model.stream(frames.len()).unwrap();
    for (k, frame) in frames.iter().enumerate() {
        let block = stream.push(frame).unwrap();
        let rows = query_block(10, 4, k as i64);
        let expected = batch.narrow(0, rows.start, rows.end - rows.start);
        let error = max_abs_error(&block, &expected);
        assert!(
            error <= 1e-6,
            "block {k}: streaming differs from batch by {error}"
        );
    }
    assert!(matches!(
        stream.push(&frames[0]),
        Err(OperatorError::InvalidInput(_))
    ));
    let streamed = stream.finish().unwrap();
    assert!(max_abs_error(&streamed, &batch) <= 1e-6);

    let mut short = model.stream(4).unwrap();
    let _ = short.push(&frames[0]).unwrap();
    assert!(matches!(
        short.finish(),
        Err(OperatorError::InvalidInput(_))
    ));
}

#[test]
fn changing_a_frame_leaves_earlier_blocks_unchanged() {
    let (frames, _) = reference();
    let model = ccam();
    let original = model.project(&frames).unwrap();
    for t in 0..4_i64 {
        let mut changed: Vec<Tensor> = frames.iter().map(Tensor::shallow_clone).collect();
        changed[t as usize] = &frames[t as usize] * -2.0 + 1.0;
        let output = model.project(&changed).unwrap();
        let first_later = query_block(10, 4, t).start;
        if first_later > 0 {
            let earlier = max_abs_error(
                &output.narrow(0, 0, first_later),
                &original.narrow(0, 0, first_later),
            );
            assert_eq!(earlier, 0.0, "frame {t} changed blocks before it");
        }
        let later = max_abs_error(
            &output.narrow(0, first_later, 10 - first_later),
            &original.narrow(0, first_later, 10 - first_later),
        );
        assert!(
            later > 1e-3,
            "frame {t} did not change its own and later blocks"
        );
    }
}

#[test]
fn errors_name_what_is_wrong() {
    let dir = std::env::temp_dir().join(format!("argus-ccam-errors-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    fs::copy(
        fixture().join("ccam_config.json"),
        dir.join("ccam_config.json"),
    )
    .unwrap();
    match Ccam::load(&dir, Device::Cpu) {
        Err(OperatorError::MissingModel { path, .. }) => {
            assert!(path.ends_with("model.safetensors"))
        }
        other => panic!("expected MissingModel, got {:?}", other.err()),
    }
    let mut tensors = Tensor::read_safetensors(fixture().join("model.safetensors")).unwrap();
    for (name, tensor) in &mut tensors {
        if name == "mlp.down_proj.weight" {
            *tensor = Tensor::zeros([16, 23], (Kind::Float, Device::Cpu));
        }
    }
    Tensor::write_safetensors(&tensors, dir.join("model.safetensors")).unwrap();
    match Ccam::load(&dir, Device::Cpu) {
        Err(OperatorError::TensorShape { name, .. }) => assert_eq!(name, "mlp.down_proj.weight"),
        other => panic!("expected TensorShape, got {:?}", other.err()),
    }
    fs::remove_dir_all(&dir).unwrap();

    let model = ccam();
    let wrong = Tensor::zeros([3, 31], (Kind::Float, Device::Cpu));
    assert!(matches!(
        model.project(&[wrong]),
        Err(OperatorError::InvalidInput(_))
    ));
    assert!(matches!(
        model.project(&[]),
        Err(OperatorError::InvalidInput(_))
    ));
}

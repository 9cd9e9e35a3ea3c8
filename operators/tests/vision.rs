//! SigLIP and CLIP towers and token merging, checked against tiny seeded checkpoints that
//! `transformers` built and the outputs it (and an independent PyTorch ToMe) computed from
//! them: reference/make_vision_reference.py.

use std::fs;
use std::path::{Path, PathBuf};

use argus_operators::vision::tome::{merge_across_frames, MergeSchedule};
use argus_operators::vision::{FeatureLayer, TowerOutput, VisionTower};
use argus_operators::OperatorError;
use tch::{Device, Kind, Tensor};

/// float32 against the float64 reference: anything above this is a real difference.
const TOLERANCE: f64 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn reference(name: &str) -> Tensor {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/vision_reference.safetensors");
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} is not in the reference"))
        .1
}

fn max_abs_error(ours: &Tensor, theirs: &Tensor) -> f64 {
    assert_eq!(ours.size(), theirs.size());
    (ours.to_kind(Kind::Double) - theirs.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

fn tower(name: &str) -> VisionTower {
    VisionTower::load(&fixture(name), Device::Cpu).unwrap()
}

fn encode(tower: &VisionTower, layer: FeatureLayer, merging: &MergeSchedule) -> TowerOutput {
    tower.encode(&reference("pixels"), layer, merging).unwrap()
}

#[test]
fn siglip_hidden_states_match_transformers() {
    let model = tower("siglip-tiny");
    assert_eq!(model.config().patches(), 16);
    let mut worst = 0.0_f64;
    for i in 0..=3 {
        let out = encode(&model, FeatureLayer::Hidden(i), &MergeSchedule::None);
        assert!(out.class_token.is_none());
        let error = max_abs_error(&out.tokens, &reference(&format!("siglip.hidden.{i}")));
        assert!(error <= TOLERANCE, "layer {i}: max abs error {error}");
        worst = worst.max(error);
    }
    let second_to_last = encode(&model, FeatureLayer::Hidden(-2), &MergeSchedule::None);
    assert!(max_abs_error(&second_to_last.tokens, &reference("siglip.hidden.2")) <= TOLERANCE);
    let last = encode(&model, FeatureLayer::PostNorm, &MergeSchedule::None);
    let error = max_abs_error(&last.tokens, &reference("siglip.last"));
    assert!(error <= TOLERANCE, "post-norm: max abs error {error}");
    println!(
        "SigLIP max abs error against transformers: {:e}",
        worst.max(error)
    );
}

#[test]
fn clip_hidden_states_match_transformers() {
    // A full CLIPModel, sharded: vision_config and the index are both exercised.
    let model = tower("clip-tiny");
    let mut worst = 0.0_f64;
    for i in [0, 1, 2, 3, -1, -2] {
        let out = encode(&model, FeatureLayer::Hidden(i), &MergeSchedule::None);
        let index = if i < 0 { 4 + i } else { i };
        let theirs = reference(&format!("clip.hidden.{index}"));
        let error = max_abs_error(&out.tokens, &theirs.narrow(1, 1, 16)).max(max_abs_error(
            out.class_token.as_ref().unwrap(),
            &theirs.select(1, 0),
        ));
        assert!(error <= TOLERANCE, "layer {i}: max abs error {error}");
        worst = worst.max(error);
    }
    println!("CLIP max abs error against transformers: {worst:e}");
}

#[test]
fn tome_merges_the_same_tokens_as_the_reference() {
    let cases = [
        ("r4", MergeSchedule::Constant(4), FeatureLayer::Hidden(-2)),
        (
            "sched",
            MergeSchedule::PerLayer(vec![2, 5, 9]),
            FeatureLayer::Hidden(-1),
        ),
    ];
    let mut worst = 0.0_f64;
    for name in ["siglip", "clip"] {
        let model = tower(&format!("{name}-tiny"));
        for (label, schedule, layer) in &cases {
            let out = encode(&model, *layer, schedule);
            let key = |what: &str| reference(&format!("{name}.tome.{label}.{what}"));
            let (tokens, sizes, assignment) = (key("tokens"), key("sizes"), key("assignment"));
            let (tokens, sizes, assignment) = if name == "clip" {
                let error = max_abs_error(out.class_token.as_ref().unwrap(), &tokens.select(1, 0));
                assert!(error <= TOLERANCE, "{name} {label} class token: {error}");
                // The class token keeps size 1 and slot 0.
                assert_eq!(
                    sizes.select(1, 0),
                    Tensor::ones([3], (Kind::Float, Device::Cpu))
                );
                let count = tokens.size()[1] - 1;
                (
                    tokens.narrow(1, 1, count),
                    sizes.narrow(1, 1, count),
                    assignment.narrow(1, 1, 16) - 1,
                )
            } else {
                (tokens, sizes, assignment)
            };
            assert_eq!(
                out.assignment, assignment,
                "{name} {label}: assignments differ"
            );
            assert_eq!(out.sizes, sizes, "{name} {label}: sizes differ");
            let error = max_abs_error(&out.tokens, &tokens);
            assert!(error <= TOLERANCE, "{name} {label}: max abs error {error}");
            worst = worst.max(error);
        }
    }
    // Layer caps: 16 → 14 → 9 → 5 (r = 9 is capped at half of 9 tokens).
    let siglip = encode(
        &tower("siglip-tiny"),
        FeatureLayer::Hidden(-1),
        &MergeSchedule::PerLayer(vec![2, 5, 9]),
    );
    assert_eq!(siglip.tokens.size(), [3, 5, 32]);
    println!("ToMe max abs error against the reference: {worst:e}");
}

#[test]
fn merging_nothing_is_the_plain_model_and_sizes_add_up() {
    // r = 0 runs exactly the plain model; a merge keeps the patch count in the sizes.
    let model = tower("siglip-tiny");
    let plain = encode(&model, FeatureLayer::Hidden(-1), &MergeSchedule::None);
    let zero = encode(
        &model,
        FeatureLayer::Hidden(-1),
        &MergeSchedule::Constant(0),
    );
    assert!(max_abs_error(&plain.tokens, &zero.tokens) == 0.0);
    let merged = encode(
        &model,
        FeatureLayer::Hidden(-1),
        &MergeSchedule::Constant(1),
    );
    assert_eq!(merged.tokens.size(), [3, 13, 32]);
    assert_eq!(merged.sizes.sum(Kind::Float).double_value(&[]), 48.0);
}

#[test]
fn cross_frame_merging_matches_the_reference() {
    let tokens = reference("siglip.hidden.2");
    let sizes = Tensor::ones([3, 16], (Kind::Float, Device::Cpu));
    let out = merge_across_frames(&tokens, &sizes, 0.9).unwrap();
    let kept = reference("cross.kept").sum_dim_intlist(1, false, Kind::Int64);
    assert_eq!(
        out.kept,
        Vec::<i64>::try_from(&kept)
            .unwrap()
            .iter()
            .map(|&k| k as usize)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        out.kept,
        [16, 16, 4],
        "frame 2 repeats frame 1 below its top row"
    );
    let merged = Tensor::cat(&out.tokens, 0);
    let merged_sizes = Tensor::cat(&out.sizes, 0);
    assert_eq!(merged_sizes, reference("cross.sizes"));
    let error = max_abs_error(&merged, &reference("cross.tokens"));
    assert!(error <= TOLERANCE, "max abs error {error}");
    assert_eq!(merged_sizes.sum(Kind::Float).double_value(&[]), 48.0);
}

#[test]
fn errors_name_what_is_wrong() {
    let dir = std::env::temp_dir().join(format!("argus-vision-errors-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let source = fixture("siglip-tiny");

    // No config.json.
    match VisionTower::load(&dir, Device::Cpu) {
        Err(OperatorError::MissingModel { path, .. }) => assert!(path.ends_with("config.json")),
        other => panic!("expected MissingModel, got {:?}", other.err()),
    }

    // No weights.
    fs::copy(source.join("config.json"), dir.join("config.json")).unwrap();
    match VisionTower::load(&dir, Device::Cpu) {
        Err(OperatorError::MissingModel { path, .. }) => {
            assert!(path.ends_with("model.safetensors"))
        }
        other => panic!("expected MissingModel, got {:?}", other.err()),
    }

    // A tensor of the wrong shape.
    let mut tensors = Tensor::read_safetensors(source.join("model.safetensors")).unwrap();
    // transformers 5 saves a vision-only model without the `vision_model.` prefix.
    let bad = "encoder.layers.1.mlp.fc1.weight";
    for (name, tensor) in &mut tensors {
        if name == bad {
            *tensor = Tensor::zeros([64, 31], (Kind::Float, Device::Cpu));
        }
    }
    Tensor::write_safetensors(&tensors, dir.join("model.safetensors")).unwrap();
    match VisionTower::load(&dir, Device::Cpu) {
        Err(OperatorError::TensorShape { name, actual, .. }) => {
            assert_eq!(name, bad);
            assert_eq!(actual, [64, 31]);
        }
        other => panic!("expected TensorShape, got {:?}", other.err()),
    }

    // A missing tensor.
    tensors.retain(|(name, _)| name != bad);
    Tensor::write_safetensors(&tensors, dir.join("model.safetensors")).unwrap();
    match VisionTower::load(&dir, Device::Cpu) {
        Err(OperatorError::MissingTensor { name, .. }) => assert_eq!(name, bad),
        other => panic!("expected MissingTensor, got {:?}", other.err()),
    }

    // An unknown model type.
    let config = fs::read_to_string(source.join("config.json"))
        .unwrap()
        .replace("siglip_vision_model", "dinov2");
    fs::write(dir.join("config.json"), config).unwrap();
    match VisionTower::load(&dir, Device::Cpu) {
        Err(OperatorError::UnsupportedModel { message, .. }) => assert!(message.contains("dinov2")),
        other => panic!("expected UnsupportedModel, got {:?}", other.err()),
    }
    fs::remove_dir_all(&dir).unwrap();

    // Wrong frame size and out-of-range layer.
    let model = tower("siglip-tiny");
    let small = Tensor::zeros([1, 3, 16, 16], (Kind::Float, Device::Cpu));
    assert!(matches!(
        model.encode(&small, FeatureLayer::Hidden(-1), &MergeSchedule::None),
        Err(OperatorError::InvalidInput(_))
    ));
    assert!(matches!(
        model.encode(
            &reference("pixels"),
            FeatureLayer::Hidden(4),
            &MergeSchedule::None
        ),
        Err(OperatorError::InvalidInput(_))
    ));
}

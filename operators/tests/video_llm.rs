//! The full path (vision tower → streaming CCAM → LLM) on the tiny seeded video-LLM of
//! reference/make_video_llm_fixture.py: a CyberV round the sensor and controller can read,
//! reproducible samples, causal visual queries, denser key segments, and the refusals.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use argus_operators::ccam::query_block;
use argus_operators::llm::Sampling;
use argus_operators::self_correction::{Candidate, Controller, Sensor};
use argus_operators::video_llm::{ChunkContext, VideoLlm};
use argus_operators::video_qa::{RoundOptions, Task};
use argus_operators::{BgrImage, OperatorError};
use tch::{Device, Kind, Tensor};

/// `video_llm.json` of the fixture: the projector's 12 queries share at most 16 frames.
const QUERIES: i64 = 12;
const MAX_FRAMES: usize = 16;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn model() -> VideoLlm {
    VideoLlm::load(&fixtures().join("video-llm-tiny"), Device::Cpu).unwrap()
}

/// A 40×30 frame of seeded noise (wider than tall, as camera frames are).
fn frame(seed: u64) -> BgrImage {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data = (0..40 * 30 * 3)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 56) as u8
        })
        .collect();
    BgrImage::new(40, 30, data).unwrap()
}

/// `counts[s]` frames in segment `s`, each frame distinct.
fn segments(counts: &[usize], first_seed: u64) -> Vec<Vec<BgrImage>> {
    let mut seed = first_seed;
    counts
        .iter()
        .map(|&count| {
            (0..count)
                .map(|_| {
                    seed += 1;
                    frame(seed)
                })
                .collect()
        })
        .collect()
}

fn context() -> ChunkContext {
    ChunkContext {
        camera: "dock-2".into(),
        from: "14:03:10".into(),
        to: "14:03:20".into(),
    }
}

fn options() -> RoundOptions {
    RoundOptions {
        candidates: 3,
        max_new_tokens: 8,
        ..RoundOptions::default()
    }
}

fn assert_attention_shares(candidate: &Candidate, segments: usize) {
    assert_eq!(candidate.segment_attention.len(), segments, "{candidate:?}");
    assert!(candidate.segment_attention.iter().all(|&s| s >= 0.0));
    let total: f32 = candidate.segment_attention.iter().sum();
    assert!((total - 1.0).abs() < 1e-4, "{candidate:?}");
}

/// A folder whose parts link to `vision`, `projector` and `llm` (`None`: left out).
fn assembled(
    name: &str,
    vision: Option<PathBuf>,
    projector: Option<PathBuf>,
    llm: Option<PathBuf>,
) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("argus-video-llm-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    for (part, source) in [("vision", vision), ("projector", projector), ("llm", llm)] {
        if let Some(source) = source {
            symlink(source, dir.join(part)).unwrap();
        }
    }
    dir
}

fn tiny_part(part: &str) -> Option<PathBuf> {
    Some(fixtures().join("video-llm-tiny").join(part))
}

#[test]
fn a_round_has_a_greedy_answer_and_seeded_samples_the_controller_can_judge() {
    let model = model();
    let chunk = segments(&[2, 2, 2], 0);
    let task = Task::Question("What is happening at the dock?".into());
    let round = model
        .candidates(&chunk, &context(), &task, &options())
        .unwrap();
    assert_eq!(round.len(), 3);
    assert!(round[0].greedy && !round[1].greedy && !round[2].greedy);
    for candidate in &round {
        assert!(!candidate.token_logprobs.is_empty(), "{candidate:?}");
        assert!(candidate.token_logprobs.iter().all(|&l| l <= 0.0));
        assert!(candidate.probability() > 0.0 && candidate.probability() <= 1.0);
        assert!(!candidate.key.is_empty(), "{candidate:?}");
        assert_attention_shares(candidate, 3);
    }
    // Same seed, same round; another seed, other samples.
    let texts = |round: &[Candidate]| round.iter().map(|c| c.text.clone()).collect::<Vec<_>>();
    let again = model
        .candidates(&chunk, &context(), &task, &options())
        .unwrap();
    assert_eq!(texts(&round), texts(&again));
    assert_eq!(round, again);
    let reseeded = RoundOptions {
        seed: 7,
        ..options()
    };
    let other = model
        .candidates(&chunk, &context(), &task, &reseeded)
        .unwrap();
    assert_eq!(
        other[0], round[0],
        "the greedy answer does not depend on the seed"
    );
    assert_ne!(texts(&other[1..]), texts(&round[1..]));

    let reading = Sensor.read(&round);
    assert_eq!(reading.signals.len(), 3);
    assert_eq!(reading.segment_drift.len(), 3);
    let verdict = Controller::default().decide(&round, &reading, &[2, 1, 0]);
    let best = verdict.best().expect("a round has an answer");
    assert!(best.total > 0.0);
    assert_eq!(verdict.accepted, best.total > verdict.required);
    if !verdict.accepted {
        assert_eq!(verdict.key_segments.len(), 2);
    }
}

#[test]
fn later_frames_never_change_the_queries_of_earlier_segments() {
    let model = model();
    let chunk = segments(&[2, 3, 2], 0);
    let mut changed = segments(&[2, 3, 2], 0);
    changed[2] = vec![frame(1000), frame(1001)];
    let original = model.visual_queries(&chunk).unwrap();
    let with_changed_end = model.visual_queries(&changed).unwrap();
    assert_eq!(original.len(), 3);
    for s in 0..2 {
        assert_eq!(
            original[s], with_changed_end[s],
            "segment {s} changed with the last segment's frames"
        );
    }
    let last_change = (&original[2] - &with_changed_end[2])
        .abs()
        .max()
        .double_value(&[]);
    assert!(last_change > 1e-3, "the last segment's frames were ignored");
}

#[test]
fn segments_own_the_query_blocks_of_their_frames_and_denser_ones_own_more() {
    let model = model();
    // The correction round: segment 1 re-sampled densely, segment 3 without frames.
    let counts = [2, 6, 2, 0];
    let chunk = segments(&counts, 0);
    let total = counts.iter().sum::<usize>() as i64;
    let queries = model.visual_queries(&chunk).unwrap();
    let mut frame = 0;
    for (s, &count) in counts.iter().enumerate() {
        let owned: i64 = (frame..frame + count as i64)
            .map(|k| query_block(QUERIES, total, k).count() as i64)
            .sum();
        frame += count as i64;
        assert_eq!(queries[s].size(), [owned, 64], "segment {s}");
    }
    assert!(queries[1].size()[0] > queries[0].size()[0]);
    assert_eq!(
        queries.iter().map(|q| q.size()[0]).sum::<i64>(),
        QUERIES,
        "every query belongs to one segment"
    );
    assert_eq!(queries[0].kind(), Kind::Float);

    let answer = model
        .answer(&chunk, &context(), &Task::Caption, Sampling::Greedy, 8)
        .unwrap();
    assert!(answer.greedy);
    assert!(!answer.text.is_empty());
    assert_attention_shares(&answer, 4);
    assert_eq!(answer.segment_attention[3], 0.0, "segment 3 has no queries");
}

#[test]
fn a_clip_tower_chains_too() {
    let dir = assembled(
        "clip",
        Some(fixtures().join("clip-tiny")),
        tiny_part("projector"),
        tiny_part("llm"),
    );
    let model = VideoLlm::load(&dir, Device::Cpu).unwrap();
    // Without video_llm.json: the defaults.
    assert_eq!(model.config().tome_r, 0);
    assert_eq!(model.config().feature_layer, -2);
    let round = model
        .candidates(
            &segments(&[1, 2], 0),
            &context(),
            &Task::Caption,
            &options(),
        )
        .unwrap();
    assert_eq!(round.len(), 3);
    round.iter().for_each(|c| assert_attention_shares(c, 2));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn parts_that_do_not_chain_are_refused_naming_the_files() {
    // ccam-tiny reads 32-wide visual tokens, as the tower gives, but projects to 12, not the
    // decoder's 64.
    let dir = assembled(
        "mismatch",
        tiny_part("vision"),
        Some(fixtures().join("ccam-tiny")),
        tiny_part("llm"),
    );
    match VideoLlm::load(&dir, Device::Cpu) {
        Err(error @ OperatorError::ModelLoad { .. }) => {
            let message = error.to_string();
            for expected in [
                "output_size 12",
                "hidden_size 64",
                "projector/ccam_config.json",
                "llm/config.json",
            ] {
                assert!(message.contains(expected), "{expected:?} not in {message}");
            }
        }
        other => panic!("expected ModelLoad, got {:?}", other.err()),
    }
    fs::remove_dir_all(&dir).unwrap();

    // A projector for 16-wide visual tokens behind the 32-wide tower.
    let dir = assembled("narrow", tiny_part("vision"), None, tiny_part("llm"));
    let projector = dir.join("projector");
    fs::create_dir_all(&projector).unwrap();
    let source = tiny_part("projector").unwrap();
    let config = fs::read_to_string(source.join("ccam_config.json")).unwrap();
    fs::write(
        projector.join("ccam_config.json"),
        config.replace("\"visual_size\": 32", "\"visual_size\": 16"),
    )
    .unwrap();
    let mut tensors = Tensor::read_safetensors(source.join("model.safetensors")).unwrap();
    for (name, tensor) in &mut tensors {
        if matches!(
            name.as_str(),
            "visual_norm.weight"
                | "visual_norm.bias"
                | "cross_attn.k_proj.weight"
                | "cross_attn.v_proj.weight"
        ) {
            *tensor = tensor.narrow(-1, 0, 16).contiguous();
        }
    }
    Tensor::write_safetensors(&tensors, projector.join("model.safetensors")).unwrap();
    let error = VideoLlm::load(&dir, Device::Cpu).err().unwrap();
    let message = error.to_string();
    for expected in ["hidden_size 32", "visual_size 16", "vision/config.json"] {
        assert!(message.contains(expected), "{expected:?} not in {message}");
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_part_is_named() {
    let dir = assembled("missing", tiny_part("vision"), tiny_part("projector"), None);
    let error = VideoLlm::load(&dir, Device::Cpu).err().unwrap();
    match &error {
        OperatorError::MissingModel { path, .. } => assert_eq!(path, &dir.join("llm")),
        other => panic!("expected MissingModel, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(&format!("{} is missing", dir.join("llm").display())),
        "{message}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_settings_and_inputs_are_refused() {
    let dir = assembled(
        "settings",
        tiny_part("vision"),
        tiny_part("projector"),
        tiny_part("llm"),
    );
    fs::write(dir.join("video_llm.json"), r#"{"tome_r": -1}"#).unwrap();
    let error = VideoLlm::load(&dir, Device::Cpu).err().unwrap();
    assert!(
        error.to_string().contains("tome_r -1 is negative"),
        "{error}"
    );
    fs::write(dir.join("video_llm.json"), r#"{"feature_layer": 9}"#).unwrap();
    let error = VideoLlm::load(&dir, Device::Cpu).err().unwrap();
    assert!(error.to_string().contains("feature_layer 9"), "{error}");
    fs::write(dir.join("video_llm.json"), r#"{"tome": 2}"#).unwrap();
    let error = VideoLlm::load(&dir, Device::Cpu).err().unwrap();
    assert!(error.to_string().contains("video_llm.json"), "{error}");
    fs::remove_dir_all(&dir).unwrap();

    let model = model();
    let error = model
        .visual_queries(&segments(&[MAX_FRAMES, 1], 0))
        .unwrap_err();
    assert!(error.to_string().contains("max_frames 16"), "{error}");
    let error = model.visual_queries(&[vec![], vec![]]).unwrap_err();
    assert!(error.to_string().contains("at least one frame"), "{error}");
    let none = RoundOptions {
        candidates: 0,
        ..options()
    };
    let error = model
        .candidates(&segments(&[1], 0), &context(), &Task::Caption, &none)
        .unwrap_err();
    assert!(
        error.to_string().contains("at least one candidate"),
        "{error}"
    );
}

//! The default-path answerer on the shipped SmolLM2-135M-Instruct, read by the CyberV sensor
//! and controller: a round gives one greedy and n−1 sampled answers with probabilities and
//! per-segment attention, reproducibly, and the controller's verdict follows from them.

use std::path::PathBuf;

use argus_operators::llm::Sampling;
use argus_operators::self_correction::{Controller, Sensor};
use argus_operators::video_qa::{Evidence, GroundedQa, Observation, RoundOptions, Task};
use tch::Device;

fn smollm2() -> GroundedQa {
    let root =
        std::env::var_os("ARGUS_MODEL_DIR").expect("ARGUS_MODEL_DIR is set by deploy/env.sh");
    GroundedQa::load(
        &PathBuf::from(root).join("smollm2-135m-instruct-hf"),
        Device::Cpu,
    )
    .expect("deploy/setup.sh converts SmolLM2-135M-Instruct")
}

fn observation(segment: usize, time: &str, text: &str, confidence: f32) -> Observation {
    Observation {
        segment,
        time: time.into(),
        text: text.into(),
        confidence,
        key_frame: false,
    }
}

fn loading_dock() -> Evidence {
    Evidence {
        camera: "dock-2".into(),
        from: "14:03:10".into(),
        to: "14:03:20".into(),
        segments: 3,
        observations: vec![
            observation(0, "14:03:10", "no motion; tags: trailer truck", 0.6),
            observation(
                1,
                "14:03:14",
                "motion in 12% of the view (bottom left); text on screen: \"LOADING DOCK 4\"",
                0.9,
            ),
            observation(2, "14:03:18", "no motion", 0.5),
        ],
    }
}

#[test]
fn a_round_has_a_greedy_answer_and_seeded_samples_with_segment_attention() {
    let qa = smollm2();
    let task = Task::Question("What text is on screen?".into());
    let options = RoundOptions {
        candidates: 3,
        max_new_tokens: 24,
        ..RoundOptions::default()
    };
    let round = qa.candidates(&loading_dock(), &task, &options).unwrap();
    assert_eq!(round.len(), 3);
    assert!(round[0].greedy && !round[1].greedy && !round[2].greedy);
    for candidate in &round {
        assert!(!candidate.token_logprobs.is_empty(), "{candidate:?}");
        assert!(candidate.token_logprobs.iter().all(|&l| l <= 0.0));
        assert_eq!(candidate.segment_attention.len(), 3);
        let total: f32 = candidate.segment_attention.iter().sum();
        assert!((total - 1.0).abs() < 1e-4, "{candidate:?}");
        assert!(candidate.probability() > 0.0 && candidate.probability() <= 1.0);
    }
    // The answer copies the on-screen text, and leans on the segment that shows it more than
    // on the segment where nothing happens.
    assert!(
        round[0].text.to_uppercase().contains("LOADING DOCK"),
        "{:?}",
        round[0].text
    );
    assert!(
        round[0].segment_attention[1] > round[0].segment_attention[2],
        "{:?}",
        round[0].segment_attention
    );
    // Same seed, same round.
    let again = qa.candidates(&loading_dock(), &task, &options).unwrap();
    let texts = |r: &[argus_operators::self_correction::Candidate]| {
        r.iter().map(|c| c.text.clone()).collect::<Vec<_>>()
    };
    assert_eq!(texts(&round), texts(&again));

    let reading = Sensor.read(&round);
    assert_eq!(reading.signals.len(), 3);
    assert_eq!(reading.segment_drift.len(), 3);
    let verdict =
        Controller::default().decide(&round, &reading, &loading_dock().least_trusted_segments());
    let best = verdict.best().expect("a round has an answer");
    assert!(best.total > 0.0);
    assert_eq!(verdict.accepted, best.total > verdict.required);
    if !verdict.accepted {
        assert_eq!(verdict.key_segments.len(), 2);
    }
}

#[test]
fn the_correction_round_answers_once_with_key_frames_marked() {
    let qa = smollm2();
    let mut evidence = loading_dock();
    evidence.observations[1].key_frame = true;
    let answer = qa
        .answer(&evidence, &Task::Caption, Sampling::Greedy, 32)
        .unwrap();
    assert!(answer.greedy);
    assert!(!answer.text.is_empty());
    assert_eq!(answer.segment_attention.len(), 3);
}

#[test]
fn a_round_without_candidates_is_refused() {
    let qa = smollm2();
    let options = RoundOptions {
        candidates: 0,
        ..RoundOptions::default()
    };
    let error = qa
        .candidates(&loading_dock(), &Task::Caption, &options)
        .unwrap_err();
    assert!(
        error.to_string().contains("at least one candidate"),
        "{error}"
    );
}

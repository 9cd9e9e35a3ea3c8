//! The controller: sums each distinct answer's support over the candidates that gave it and
//! accepts the best answer when its total is above `n · θ` (`n` candidates, threshold θ).
//! Two candidates that disagree can never pass (each scores at most 1, and the default
//! `2 · 0.5` needs more), so disagreement or weak signals lead to a correction round on the
//! key segments: those the candidates' attention drifted over most, then (to fill up `k`)
//! those whose evidence the caller trusts least.

use serde::{Deserialize, Serialize};

use super::sensor::{SensorReading, SignalWeights};
use super::Candidate;

/// Below this spread a segment's attention did not really drift.
const MIN_DRIFT: f32 = 1e-3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ControllerConfig {
    /// θ: an answer is accepted when its summed support exceeds `candidates · threshold`.
    pub threshold: f32,
    /// How many segments a correction round re-samples.
    pub key_segments: usize,
    pub weights: SignalWeights,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            key_segments: 2,
            weights: SignalWeights::default(),
        }
    }
}

/// One distinct answer and its support.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnswerSupport {
    pub key: String,
    /// The text of its most probable candidate: what gets published.
    pub text: String,
    pub total: f32,
    pub candidates: usize,
}

/// What the controller decided about one round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Distinct answers, best supported first.
    pub answers: Vec<AnswerSupport>,
    /// `candidates · threshold`, the total the best answer had to exceed.
    pub required: f32,
    pub accepted: bool,
    /// When not accepted: the segments to re-sample, most suspicious first.
    pub key_segments: Vec<usize>,
}

impl Verdict {
    /// The best-supported answer (published at once, accepted or not).
    pub fn best(&self) -> Option<&AnswerSupport> {
        self.answers.first()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Controller {
    pub config: ControllerConfig,
}

impl Controller {
    pub fn new(config: ControllerConfig) -> Self {
        Self { config }
    }

    /// Decides on `candidates` as read by the sensor. `least_trusted_segments` lists segment
    /// indices weakest evidence first; it fills the key segments where attention did not
    /// single enough out (or the model path has no attention).
    pub fn decide(
        &self,
        candidates: &[Candidate],
        reading: &SensorReading,
        least_trusted_segments: &[usize],
    ) -> Verdict {
        let mut answers: Vec<AnswerSupport> = Vec::new();
        let mut best_probability: Vec<f32> = Vec::new();
        for (candidate, signals) in candidates.iter().zip(&reading.signals) {
            let score = signals.score(&self.config.weights);
            match answers.iter().position(|a| a.key == candidate.key) {
                Some(i) => {
                    answers[i].total += score;
                    answers[i].candidates += 1;
                    if signals.probability > best_probability[i] {
                        best_probability[i] = signals.probability;
                        answers[i].text = candidate.text.clone();
                    }
                }
                None => {
                    answers.push(AnswerSupport {
                        key: candidate.key.clone(),
                        text: candidate.text.clone(),
                        total: score,
                        candidates: 1,
                    });
                    best_probability.push(signals.probability);
                }
            }
        }
        answers.sort_by(|a, b| b.total.total_cmp(&a.total));
        let required = candidates.len() as f32 * self.config.threshold;
        let accepted = answers.first().is_some_and(|best| best.total > required);
        let key_segments = if accepted {
            Vec::new()
        } else {
            self.key_segments(reading, least_trusted_segments)
        };
        Verdict {
            answers,
            required,
            accepted,
            key_segments,
        }
    }

    fn key_segments(&self, reading: &SensorReading, least_trusted: &[usize]) -> Vec<usize> {
        let mut by_drift: Vec<usize> = (0..reading.segment_drift.len())
            .filter(|&s| reading.segment_drift[s] > MIN_DRIFT)
            .collect();
        by_drift.sort_by(|&a, &b| {
            reading.segment_drift[b]
                .total_cmp(&reading.segment_drift[a])
                .then(a.cmp(&b))
        });
        let mut chosen: Vec<usize> = Vec::with_capacity(self.config.key_segments);
        for segment in by_drift.into_iter().chain(least_trusted.iter().copied()) {
            if chosen.len() == self.config.key_segments {
                break;
            }
            if !chosen.contains(&segment) {
                chosen.push(segment);
            }
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::self_correction::Sensor;

    fn candidate(key: &str, logprob: f32, attention: &[f32], greedy: bool) -> Candidate {
        Candidate {
            text: format!("{key}."),
            key: key.into(),
            token_logprobs: vec![logprob; 3],
            segment_attention: attention.to_vec(),
            greedy,
        }
    }

    fn decide(candidates: &[Candidate], least_trusted: &[usize]) -> Verdict {
        Controller::default().decide(candidates, &Sensor.read(candidates), least_trusted)
    }

    #[test]
    fn agreement_with_confidence_is_accepted_without_correction() {
        let verdict = decide(
            &[
                candidate("yes", -0.05, &[0.5, 0.5], true),
                candidate("yes", -0.1, &[0.5, 0.5], false),
            ],
            &[1, 0],
        );
        assert!(verdict.accepted, "{verdict:?}");
        assert_eq!(verdict.best().unwrap().key, "yes");
        assert_eq!(verdict.best().unwrap().candidates, 2);
        assert!(verdict.key_segments.is_empty());
        assert_eq!(verdict.required, 1.0);
    }

    #[test]
    fn disagreement_is_never_accepted_and_picks_the_drifting_segments() {
        let verdict = decide(
            &[
                candidate("yes", -0.01, &[0.1, 0.8, 0.1, 0.0], true),
                candidate("no", -0.02, &[0.1, 0.1, 0.1, 0.7], false),
            ],
            &[0, 2],
        );
        assert!(!verdict.accepted);
        assert_eq!(verdict.answers.len(), 2);
        assert_eq!(verdict.best().unwrap().key, "yes");
        assert_eq!(verdict.key_segments, vec![1, 3]);
    }

    #[test]
    fn weak_agreement_passes_the_default_but_not_a_stricter_threshold() {
        // Both say "yes" but the model barely believes it and loops: each scores
        // 0.2 × (0.05 + 1 + 0 + 1 + 1) ≈ 0.61, together 1.22.
        let mut looping = candidate("yes", -3.0, &[], true);
        looping.text = "yes the gate the gate the gate ".repeat(5);
        let mut second = looping.clone();
        second.greedy = false;
        let candidates = [looping, second];
        let reading = Sensor.read(&candidates);
        assert!(
            Controller::default()
                .decide(&candidates, &reading, &[])
                .accepted
        );
        let strict = Controller::new(ControllerConfig {
            threshold: 0.7,
            ..ControllerConfig::default()
        });
        let verdict = strict.decide(&candidates, &reading, &[2, 0, 1]);
        assert!(!verdict.accepted, "{verdict:?}");
        assert_eq!(verdict.key_segments, vec![2, 0]);
    }

    #[test]
    fn the_published_text_is_the_most_probable_wording() {
        let mut sure = candidate("yes", -0.01, &[], false);
        sure.text = "Yes, a person is at the door.".into();
        let verdict = decide(&[candidate("yes", -0.5, &[], true), sure], &[]);
        assert_eq!(
            verdict.best().unwrap().text,
            "Yes, a person is at the door."
        );
    }
}

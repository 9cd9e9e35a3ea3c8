//! The sensor: five signals per candidate answer, each in `[0, 1]` with 1 meaning "looks
//! trustworthy", as CyberV's inference-time monitor reads them:
//!
//! 1. **probability**: the answer tokens' probability (geometric mean per token);
//! 2. **kept probability**: 0 when the answer is less than half as probable as the greedy
//!    one (a sampled answer the model itself does not believe), else 1;
//! 3. **no repetition**: 0 when a run of 15–29 characters repeats 5 or more times (the
//!    degenerate loop small decoders fall into), else 1;
//! 4. **attention stability**: 1 minus the attention drift, the total-variation distance
//!    between this answer's attention over the chunk's segments and the other answers'
//!    mean; answers built on different evidence drift apart;
//! 5. **rank**: `1 / rank` of the answer's probability among the candidates.
//!
//! Per segment, the drift is how much the candidates' attention to it varies: the segments
//! they disagree about most are the ones worth a closer look.

use std::collections::HashMap;

use serde::Serialize;

use super::Candidate;

/// Repetition: a substring of these lengths (in characters)...
const REPEATED_LENGTHS: std::ops::RangeInclusive<usize> = 15..=29;
/// ...seen at least this many times.
const REPEATED_TIMES: usize = 5;
/// An answer below this share of the greedy answer's probability loses its signal.
const KEPT_PROBABILITY_SHARE: f32 = 0.5;

/// The five signals of one candidate, each in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Signals {
    pub probability: f32,
    pub kept_probability: f32,
    pub no_repetition: f32,
    pub attention_stability: f32,
    pub rank: f32,
}

/// How much each signal counts; CyberV weighs them equally at 0.2, so a flawless answer
/// scores 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SignalWeights {
    pub probability: f32,
    pub kept_probability: f32,
    pub no_repetition: f32,
    pub attention_stability: f32,
    pub rank: f32,
}

impl Default for SignalWeights {
    fn default() -> Self {
        Self {
            probability: 0.2,
            kept_probability: 0.2,
            no_repetition: 0.2,
            attention_stability: 0.2,
            rank: 0.2,
        }
    }
}

impl Signals {
    /// The weighted sum of the signals: one candidate's support for its answer.
    pub fn score(&self, weights: &SignalWeights) -> f32 {
        weights.probability * self.probability
            + weights.kept_probability * self.kept_probability
            + weights.no_repetition * self.no_repetition
            + weights.attention_stability * self.attention_stability
            + weights.rank * self.rank
    }
}

/// What the sensor read from one round of candidates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensorReading {
    /// The signals of each candidate, in the candidates' order.
    pub signals: Vec<Signals>,
    /// Per segment, how far the candidates' attention to it spreads (max − min share);
    /// empty when the candidates carry no segment attention.
    pub segment_drift: Vec<f32>,
}

/// Reads [`Signals`] from candidates.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sensor;

impl Sensor {
    pub fn read(&self, candidates: &[Candidate]) -> SensorReading {
        let probabilities: Vec<f32> = candidates.iter().map(Candidate::probability).collect();
        // Without a greedy candidate the most probable one is the reference.
        let reference = candidates
            .iter()
            .position(|c| c.greedy)
            .map(|i| probabilities[i])
            .unwrap_or_else(|| probabilities.iter().copied().fold(0.0, f32::max));
        let signals = candidates
            .iter()
            .enumerate()
            .map(|(i, candidate)| Signals {
                probability: probabilities[i],
                kept_probability: if probabilities[i] >= KEPT_PROBABILITY_SHARE * reference {
                    1.0
                } else {
                    0.0
                },
                no_repetition: if has_repetition(&candidate.text) {
                    0.0
                } else {
                    1.0
                },
                attention_stability: 1.0 - attention_drift(candidates, i),
                rank: 1.0 / rank(&probabilities, i) as f32,
            })
            .collect();
        SensorReading {
            signals,
            segment_drift: segment_drift(candidates),
        }
    }
}

/// 1-based rank of candidate `i` by probability; ties share the better rank.
fn rank(probabilities: &[f32], i: usize) -> usize {
    1 + probabilities
        .iter()
        .filter(|&&p| p > probabilities[i])
        .count()
}

/// Whether `text` contains a substring of 15–29 characters at least 5 times (occurrences may overlap: a period shorter than the substring
/// is a loop all the same).
pub fn has_repetition(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    REPEATED_LENGTHS.into_iter().any(|length| {
        if chars.len() < length + REPEATED_TIMES - 1 {
            return false;
        }
        let mut counts: HashMap<&[char], usize> = HashMap::new();
        chars.windows(length).any(|window| {
            let count = counts.entry(window).or_default();
            *count += 1;
            *count >= REPEATED_TIMES
        })
    })
}

/// Total-variation distance (in `[0, 1]`) between candidate `i`'s segment attention and the
/// mean of the others'. 0 when there is nothing to compare.
fn attention_drift(candidates: &[Candidate], i: usize) -> f32 {
    let own = &candidates[i].segment_attention;
    let others: Vec<&Vec<f32>> = candidates
        .iter()
        .enumerate()
        .filter(|(j, c)| *j != i && c.segment_attention.len() == own.len())
        .map(|(_, c)| &c.segment_attention)
        .collect();
    if own.is_empty() || others.is_empty() {
        return 0.0;
    }
    let distance: f32 = (0..own.len())
        .map(|s| {
            let mean = others.iter().map(|o| o[s]).sum::<f32>() / others.len() as f32;
            (own[s] - mean).abs()
        })
        .sum();
    (0.5 * distance).clamp(0.0, 1.0)
}

/// Per segment, the spread (max − min) of the candidates' attention to it.
fn segment_drift(candidates: &[Candidate]) -> Vec<f32> {
    let Some(segments) = candidates.first().map(|c| c.segment_attention.len()) else {
        return Vec::new();
    };
    if candidates
        .iter()
        .any(|c| c.segment_attention.len() != segments)
    {
        return Vec::new();
    }
    (0..segments)
        .map(|s| {
            let shares = candidates.iter().map(|c| c.segment_attention[s]);
            let max = shares.clone().fold(f32::MIN, f32::max);
            let min = shares.fold(f32::MAX, f32::min);
            max - min
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(text: &str, logprob: f32, attention: &[f32], greedy: bool) -> Candidate {
        Candidate {
            text: text.into(),
            key: text.to_lowercase(),
            token_logprobs: vec![logprob; 4],
            segment_attention: attention.to_vec(),
            greedy,
        }
    }

    #[test]
    fn repetition_needs_five_copies_of_a_long_enough_run() {
        let phrase = "the person walks ";
        assert!(has_repetition(&phrase.repeat(5)));
        assert!(!has_repetition(&phrase.repeat(4)));
        // A short loop ("ab") repeated long enough is a loop too.
        assert!(has_repetition(&"ab".repeat(40)));
        assert!(!has_repetition(
            "A person walks left to right past the gate."
        ));
    }

    #[test]
    fn agreeing_confident_candidates_read_as_trustworthy() {
        let reading = Sensor.read(&[
            candidate("yes", -0.1, &[0.7, 0.3], true),
            candidate("yes", -0.2, &[0.65, 0.35], false),
        ]);
        let first = reading.signals[0];
        assert!((first.probability - (-0.1f32).exp()).abs() < 1e-6);
        assert_eq!(first.kept_probability, 1.0);
        assert_eq!(first.no_repetition, 1.0);
        assert!((first.attention_stability - 0.95).abs() < 1e-5);
        assert_eq!(first.rank, 1.0);
        assert_eq!(reading.signals[1].rank, 0.5);
        assert!((reading.segment_drift[0] - 0.05).abs() < 1e-5);
    }

    #[test]
    fn an_improbable_sample_loses_its_kept_probability() {
        // exp(-2) / exp(-0.1) ≈ 0.15 < 0.5
        let reading = Sensor.read(&[
            candidate("yes", -0.1, &[], true),
            candidate("no", -2.0, &[], false),
        ]);
        assert_eq!(reading.signals[1].kept_probability, 0.0);
        assert_eq!(reading.signals[0].kept_probability, 1.0);
        // No attention to compare: no drift either way.
        assert_eq!(reading.signals[1].attention_stability, 1.0);
        assert!(reading.segment_drift.is_empty());
    }

    #[test]
    fn attention_on_different_segments_is_drift() {
        let reading = Sensor.read(&[
            candidate("a", -0.1, &[1.0, 0.0, 0.0], true),
            candidate("b", -0.1, &[0.0, 0.0, 1.0], false),
        ]);
        assert_eq!(reading.signals[0].attention_stability, 0.0);
        assert_eq!(reading.segment_drift, vec![1.0, 0.0, 1.0]);
    }

    #[test]
    fn an_empty_answer_has_no_probability() {
        let reading = Sensor.read(&[candidate("", 0.0, &[], true)]);
        let mut empty = candidate("", 0.0, &[], true);
        empty.token_logprobs.clear();
        assert_eq!(empty.probability(), 0.0);
        assert_eq!(reading.signals.len(), 1);
    }
}

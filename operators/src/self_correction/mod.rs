//! Test-time self-correction as in CyberV (Meng et al., 2025, "CyberV: Cybernetics for
//! Test-time Scaling in Video Understanding"): a frozen model answers the same prompt several
//! times, a [`sensor`] reads how trustworthy those answers look, and a [`controller`] either
//! accepts the best-supported answer or asks for a second round with better evidence (the
//! segments the answers disagreed about, re-sampled densely).
//!
//! Both halves are plain computation over [`Candidate`]s, so the default path (perception
//! evidence and a small text LLM, [`crate::video_qa`]) and the full path (vision tower,
//! CCAM, LLM) share them: each only has to say which segment of the chunk every answer
//! attended to.

pub mod controller;
pub mod sensor;

pub use controller::{Controller, ControllerConfig, Verdict};
pub use sensor::{Sensor, SensorReading, SignalWeights, Signals};

use tch::Tensor;

use crate::llm::{Generation, Sampling, StopReason};
use crate::OperatorError;

/// One answer the model gave to a prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The answer as generated.
    pub text: String,
    /// The comparable form of the answer: candidates with the same key count as one answer
    /// when the controller sums their support ("Yes." and "yes, someone is there" are both
    /// `yes` for a yes/no question).
    pub key: String,
    /// Log-probability of each answer token under the model (stop token excluded).
    pub token_logprobs: Vec<f32>,
    /// The share of the answer's attention that went to each segment of the chunk
    /// (non-negative, summing to 1); empty when the model path cannot tell.
    pub segment_attention: Vec<f32>,
    /// Whether the answer was decoded greedily (the reference the others are compared to).
    pub greedy: bool,
}

impl Candidate {
    /// The answer of a `generation` decoded with `sampling`. Both model paths read one the
    /// same way and differ only in `key`, which gives the comparable form of the trimmed text,
    /// and in `segment_attention`, which turns the generation's attention and the number of
    /// answer tokens into segment shares; it is not called when the generation returned no
    /// attention or the answer is empty.
    pub fn from_generation(
        generation: &Generation,
        sampling: Sampling,
        key: impl FnOnce(&str) -> String,
        segment_attention: impl FnOnce(&Tensor, usize) -> Result<Vec<f32>, OperatorError>,
    ) -> Result<Self, OperatorError> {
        let answer_tokens = match generation.stop {
            StopReason::StopToken => generation.tokens.len() - 1,
            StopReason::MaxTokens => generation.tokens.len(),
        };
        let token_logprobs = generation.tokens[..answer_tokens]
            .iter()
            .map(|t| t.logprob)
            .collect();
        let segment_attention = match &generation.attention {
            Some(attention) if answer_tokens > 0 => segment_attention(attention, answer_tokens)?,
            _ => Vec::new(),
        };
        let text = generation.text.trim().to_string();
        Ok(Candidate {
            key: key(&text),
            text,
            token_logprobs,
            segment_attention,
            greedy: sampling == Sampling::Greedy,
        })
    }

    /// The geometric mean of the answer tokens' probabilities: the model's confidence in the
    /// answer, comparable between answers of different lengths. An empty answer has none.
    pub fn probability(&self) -> f32 {
        if self.token_logprobs.is_empty() {
            return 0.0;
        }
        let mean = self.token_logprobs.iter().sum::<f32>() / self.token_logprobs.len() as f32;
        mean.exp()
    }
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind};

    use super::*;
    use crate::llm::GeneratedToken;

    fn generation(logprobs: &[f32], stop: StopReason, attention: Option<Tensor>) -> Generation {
        Generation {
            tokens: logprobs
                .iter()
                .map(|&logprob| GeneratedToken { id: 7, logprob })
                .collect(),
            text: "  Yes.\n".into(),
            stop,
            attention,
        }
    }

    #[test]
    fn the_stop_token_is_not_part_of_the_answer() {
        let attention = Tensor::zeros([3, 1, 1, 4], (Kind::Float, Device::Cpu));
        let generation = generation(&[-0.1, -0.2, -0.3], StopReason::StopToken, Some(attention));
        let candidate = Candidate::from_generation(
            &generation,
            Sampling::Greedy,
            str::to_lowercase,
            |_, answer_tokens| Ok(vec![answer_tokens as f32]),
        )
        .unwrap();
        assert_eq!(candidate.text, "Yes.");
        assert_eq!(candidate.key, "yes.");
        assert_eq!(candidate.token_logprobs, [-0.1, -0.2]);
        assert_eq!(candidate.segment_attention, [2.0]);
        assert!(candidate.greedy);
    }

    #[test]
    fn a_cut_off_answer_keeps_every_token() {
        let generation = generation(&[-0.1, -0.2], StopReason::MaxTokens, None);
        let sampling = Sampling::Sample {
            temperature: 0.7,
            top_p: 0.9,
            seed: 1,
        };
        let candidate = Candidate::from_generation(&generation, sampling, str::to_owned, |_, _| {
            unreachable!("no attention was returned")
        })
        .unwrap();
        assert_eq!(candidate.token_logprobs, [-0.1, -0.2]);
        assert!(candidate.segment_attention.is_empty());
        assert!(!candidate.greedy);
    }

    #[test]
    fn an_empty_answer_has_no_segment_attention() {
        let attention = Tensor::zeros([1, 1, 1, 4], (Kind::Float, Device::Cpu));
        let generation = generation(&[-0.5], StopReason::StopToken, Some(attention));
        let candidate =
            Candidate::from_generation(&generation, Sampling::Greedy, str::to_owned, |_, _| {
                unreachable!("an empty answer attended to nothing")
            })
            .unwrap();
        assert!(candidate.token_logprobs.is_empty());
        assert!(candidate.segment_attention.is_empty());
    }
}

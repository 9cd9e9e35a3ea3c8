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

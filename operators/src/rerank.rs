//! Relevance of a candidate moment to an analyst's search query, judged by the LLM.
//!
//! Moment search ranks candidates by embedding similarity; the top few can be reordered by
//! the LLM. The score is query likelihood (as in UPR, Sachan et al. 2022): shown what the
//! moment showed (on-screen text, image tags, caption) and asked to write a search query
//! for it, how likely is the model to write the analyst's query? That likelihood is compared
//! with the query's likelihood when the model is shown no evidence, so words the model
//! expects anyway ("a", "the") count for nothing, and the difference (mean log-probability
//! per query token) goes through a sigmoid: 0.5 means the evidence neither raises nor lowers
//! the query's likelihood, above means it supports it.
//!
//! Why not P(yes) of a yes/no judgement: on the shipped SmolLM2-135M it was at chance for
//! every wording tried (pairwise 7–11 of 16 labelled pairs, AUC 0.40–0.59): the model puts
//! ~90% of its mass on yes/no but answers "no" whatever the evidence, while query likelihood
//! ranked all 16 pairs right. Both cost one forward pass per candidate and no generation, so
//! the score is deterministic.

use tch::{Kind, Tensor};

use crate::llm::{ChatMessage, Llm};
use crate::OperatorError;

/// What a candidate moment showed, as the reranker reads it.
#[derive(Debug, Clone, Copy, Default)]
pub struct MomentEvidence<'a> {
    /// On-screen text, one recognised line each.
    pub ocr: &'a [String],
    /// Whole-frame image tags (ImageNet classes).
    pub tags: &'a [String],
    pub caption: Option<&'a str>,
}

impl MomentEvidence<'_> {
    /// Whether there is anything to judge: blank lines, tags and captions count as nothing.
    pub fn is_empty(&self) -> bool {
        self.ocr
            .iter()
            .chain(self.tags)
            .all(|s| s.trim().is_empty())
            && self.caption.is_none_or(|c| c.trim().is_empty())
    }
}

/// The score of evidence that neither supports nor contradicts the query, and so of a
/// candidate with no evidence at all: "nothing to judge" is exactly the baseline the model's
/// likelihoods are compared with, so it is returned without running the model. Candidates
/// whose evidence speaks against the query score below it.
pub const NEUTRAL: f32 = 0.5;

// Worded for the small default model (SmolLM2-135M), in video_qa's style (a plain
// instruction, then the observations, one line per kind). Asking for a caption instead
// ("What does the camera show? Answer in a few words.") ranked 15 of 16 labelled pairs
// rather than 16; ending the query with <|im_end|> ranked 14.
const SYSTEM_PROMPT: &str = "Write a short search query for the camera observations.";

/// How well `evidence` matches `query`, in (0, 1): see the module docs. [`NEUTRAL`] without
/// running the model when there is no evidence. Two forward passes (the evidence-free
/// baseline is one); [`relevance_batch`] shares the baseline among a query's candidates.
pub fn relevance(
    llm: &Llm,
    query: &str,
    evidence: &MomentEvidence<'_>,
) -> Result<f32, OperatorError> {
    let scores = relevance_batch(llm, query, std::slice::from_ref(evidence))?;
    scores
        .first()
        .copied()
        .ok_or_else(|| inference_error("no score for the candidate".into()))
}

/// [`relevance`] of each candidate for one query, in order: one forward pass per candidate
/// with evidence, plus one for the evidence-free baseline.
pub fn relevance_batch(
    llm: &Llm,
    query: &str,
    candidates: &[MomentEvidence<'_>],
) -> Result<Vec<f32>, OperatorError> {
    let query_ids = llm.encode(query.trim())?;
    if query_ids.is_empty() {
        return Err(OperatorError::InvalidInput(
            "a relevance judgement needs a non-empty query".into(),
        ));
    }
    if candidates.iter().all(MomentEvidence::is_empty) {
        return Ok(vec![NEUTRAL; candidates.len()]);
    }
    let baseline = query_logprob(llm, &MomentEvidence::default(), &query_ids)?;
    candidates
        .iter()
        .map(|evidence| {
            if evidence.is_empty() {
                return Ok(NEUTRAL);
            }
            let support = query_logprob(llm, evidence, &query_ids)? - baseline;
            Ok(1.0 / (1.0 + (-support).exp()) as f32)
        })
        .collect()
}

/// The chat prompt the query is scored after: the evidence (or `(none)`), rendered with the
/// generation prompt so the query stands where the model's answer would start.
pub fn prompt(llm: &Llm, evidence: &MomentEvidence<'_>) -> Result<String, OperatorError> {
    llm.render_chat(
        &[
            ChatMessage::new("system", SYSTEM_PROMPT),
            ChatMessage::new("user", user_message(evidence).as_str()),
        ],
        true,
    )
}

/// The user message: one labelled line per kind of evidence, `(none)` without any.
fn user_message(evidence: &MomentEvidence<'_>) -> String {
    let mut message = String::from("Camera observations:\n");
    let ocr: Vec<String> = nonblank(evidence.ocr)
        .map(|line| format!("\"{line}\""))
        .collect();
    if !ocr.is_empty() {
        message.push_str(&format!("text on screen: {}\n", ocr.join(", ")));
    }
    let tags: Vec<&str> = nonblank(evidence.tags).collect();
    if !tags.is_empty() {
        message.push_str(&format!("tags: {}\n", tags.join(", ")));
    }
    if let Some(caption) = evidence.caption.map(str::trim).filter(|c| !c.is_empty()) {
        message.push_str(&format!("caption: {caption}\n"));
    }
    if evidence.is_empty() {
        message.push_str("(none)\n");
    }
    message
}

fn nonblank(lines: &[String]) -> impl Iterator<Item = &str> {
    lines.iter().map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// Mean log-probability per token of `query_ids` as the answer to the prompt for `evidence`.
fn query_logprob(
    llm: &Llm,
    evidence: &MomentEvidence<'_>,
    query_ids: &[u32],
) -> Result<f64, OperatorError> {
    let prompt_ids = llm.encode(&prompt(llm, evidence)?)?;
    let ids: Vec<u32> = prompt_ids.iter().chain(query_ids).copied().collect();
    let logits = llm.logits(&ids)?;
    // Row i predicts token i + 1: the rows from the prompt's last token predict the query.
    let start = prompt_ids.len() as i64 - 1;
    let targets: Vec<i64> = query_ids.iter().map(|&id| i64::from(id)).collect();
    let mean = || -> Result<f64, tch::TchError> {
        logits
            .f_narrow(0, start, targets.len() as i64)?
            .f_log_softmax(-1, Kind::Float)?
            .f_gather(1, &Tensor::f_from_slice(&targets)?.f_unsqueeze(1)?, false)?
            .f_mean(Kind::Double)?
            .f_double_value(&[])
    };
    mean().map_err(|e| inference_error(e.to_string()))
}

fn inference_error(message: String) -> OperatorError {
    OperatorError::Inference {
        model: "rerank".into(),
        message,
    }
}

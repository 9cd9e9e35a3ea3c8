//! Captions and answers about a chunk of video, written by a text LLM from what the
//! perception operators observed in it: the default path where no vision-language weights
//! are installed.
//!
//! The chunk's observations (motion, ImageNet tags, on-screen text, each stamped with its
//! time and segment) become one compact prompt that tells the model to answer from them only
//! and to say `unknown` otherwise. [`GroundedQa::candidates`] generates the CyberV round (one
//! greedy answer, the others sampled) and measures, from the decoder's attention, how much
//! each answer leaned on each segment's observations: the sensor's attention drift then points
//! at the segments worth re-sampling, and the correction round marks their observations as
//! key frames.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

use tch::{Device, Kind};

use crate::llm::{ChatMessage, GenerationOptions, Llm, Sampling};
use crate::self_correction::Candidate;
use crate::OperatorError;

/// What the answer is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// A one-sentence description of the chunk.
    Caption,
    /// A question from an operator or an alert rule.
    Question(String),
}

impl Task {
    /// The question as the model is asked it, the same on both model paths: a caption is
    /// asked for as a question, and a yes/no question gets the hint to answer with one.
    pub fn question(&self) -> String {
        match self {
            Task::Caption => CAPTION_QUESTION.to_owned(),
            Task::Question(question) if is_yes_no_question(question) => {
                format!("{} {YES_NO_HINT}", question.trim())
            }
            Task::Question(question) => question.trim().to_owned(),
        }
    }
}

/// One thing perception saw at one time of the chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Which segment of the chunk it belongs to (`0..Evidence::segments`).
    pub segment: usize,
    /// Wall-clock label, e.g. `14:03:12`.
    pub time: String,
    /// What was seen, e.g. `motion in 4% of the view (bottom left); tags: streetcar`.
    pub text: String,
    /// How sure perception was, in `[0, 1]`: the least trusted segments are re-sampled first.
    pub confidence: f32,
    /// Seen in a correction round's dense re-sampling: the prompt calls it a key frame.
    pub key_frame: bool,
}

impl Observation {
    /// The observation as one prompt line: `14:03:12 no motion`, or for a key frame
    /// `Key frame at 14:03:12: no motion`.
    pub fn line(&self) -> String {
        if self.key_frame {
            format!("Key frame at {}: {}", self.time, self.text)
        } else {
            format!("{} {}", self.time, self.text)
        }
    }
}

/// Everything the model may use about a chunk.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Evidence {
    pub camera: String,
    /// Labels of the chunk's first and last instants.
    pub from: String,
    pub to: String,
    /// How many segments the chunk is divided into (attention is measured per segment).
    pub segments: usize,
    pub observations: Vec<Observation>,
}

impl Evidence {
    /// Segment indices, least trusted first: no observation at all, then lowest mean
    /// confidence. Fills the controller's key segments when attention cannot tell.
    pub fn least_trusted_segments(&self) -> Vec<usize> {
        let mut trust: Vec<(usize, f32)> = (0..self.segments)
            .map(|segment| {
                let confidences: Vec<f32> = self
                    .observations
                    .iter()
                    .filter(|o| o.segment == segment)
                    .map(|o| o.confidence)
                    .collect();
                let mean = if confidences.is_empty() {
                    -1.0
                } else {
                    confidences.iter().sum::<f32>() / confidences.len() as f32
                };
                (segment, mean)
            })
            .collect();
        trust.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        trust.into_iter().map(|(segment, _)| segment).collect()
    }
}

/// How one CyberV round is generated.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundOptions {
    /// n: one greedy answer and `n - 1` sampled ones.
    pub candidates: usize,
    pub max_new_tokens: usize,
    pub temperature: f64,
    pub top_p: f64,
    /// Seeds the sampled answers (candidate `i` uses `seed + i`), so a round is reproducible.
    pub seed: u64,
}

impl Default for RoundOptions {
    fn default() -> Self {
        Self {
            candidates: 2,
            max_new_tokens: 40,
            temperature: 0.9,
            top_p: 0.95,
            seed: 0,
        }
    }
}

// Worded for the small default model (SmolLM2-135M): with a longer persona prompt, or a
// header line before the observations, it echoes the prompt or invents a story; asked this
// way it copies the observations. A caption is asked for as a question for the same reason.
const SYSTEM_PROMPT: &str = "Answer the question using only the camera observations. If they \
    do not contain the answer, say unknown.";
const CAPTION_QUESTION: &str = "What did the camera see? Answer in one sentence.";
const YES_NO_HINT: &str = "Answer yes or no.";

/// Answers the unknown answer key: the model declined, or the video is missing.
pub const UNKNOWN: &str = "unknown";

/// A rendered prompt and which segment each of its tokens describes.
struct Prompt {
    ids: Vec<u32>,
    /// Per token, the segment whose observation line it is part of.
    token_segments: Vec<Option<usize>>,
}

/// The default-path captioner and answerer.
pub struct GroundedQa {
    llm: Llm,
}

impl GroundedQa {
    pub fn new(llm: Llm) -> Self {
        Self { llm }
    }

    /// Loads the Llama-family checkpoint in `dir` (SmolLM2-135M-Instruct by default).
    pub fn load(dir: &Path, device: Device) -> Result<Self, OperatorError> {
        Llm::load(dir, device).map(Self::new)
    }

    /// The user message: the chunk's observations, one line each, then the question.
    pub fn user_message(evidence: &Evidence, task: &Task) -> String {
        let mut message = format!(
            "Observations from camera {}, {} to {}:\n",
            evidence.camera, evidence.from, evidence.to
        );
        if evidence.observations.is_empty() {
            message.push_str("(none)\n");
        }
        for observation in &evidence.observations {
            message.push_str(&observation.line());
            message.push('\n');
        }
        message.push_str("\nQuestion: ");
        message.push_str(&task.question());
        message
    }

    /// One CyberV round: `options.candidates` answers, the first greedy, each with its
    /// token log-probabilities and its attention per segment.
    pub fn candidates(
        &self,
        evidence: &Evidence,
        task: &Task,
        options: &RoundOptions,
    ) -> Result<Vec<Candidate>, OperatorError> {
        if options.candidates == 0 {
            return Err(OperatorError::InvalidInput(
                "a round needs at least one candidate".into(),
            ));
        }
        let prompt = self.prompt(evidence, task)?;
        (0..options.candidates)
            .map(|i| {
                let sampling = if i == 0 {
                    Sampling::Greedy
                } else {
                    Sampling::Sample {
                        temperature: options.temperature,
                        top_p: options.top_p,
                        seed: options.seed.wrapping_add(i as u64),
                    }
                };
                self.generate(&prompt, evidence, task, sampling, options.max_new_tokens)
            })
            .collect()
    }

    /// One answer with `sampling` (the correction round's low-temperature answer).
    pub fn answer(
        &self,
        evidence: &Evidence,
        task: &Task,
        sampling: Sampling,
        max_new_tokens: usize,
    ) -> Result<Candidate, OperatorError> {
        let prompt = self.prompt(evidence, task)?;
        self.generate(&prompt, evidence, task, sampling, max_new_tokens)
    }

    fn prompt(&self, evidence: &Evidence, task: &Task) -> Result<Prompt, OperatorError> {
        let user = Self::user_message(evidence, task);
        let rendered = self.llm.render_chat(
            &[
                ChatMessage::new("system", SYSTEM_PROMPT),
                ChatMessage::new("user", user.as_str()),
            ],
            true,
        )?;
        let user_start = rendered.find(&user).ok_or_else(|| {
            OperatorError::InvalidInput(
                "the chat template changed the user message; observations cannot be located".into(),
            )
        })?;
        // Byte ranges of each observation line in the rendered prompt, found in order.
        let mut spans: Vec<(Range<usize>, usize)> = Vec::new();
        let mut cursor = user_start;
        for observation in &evidence.observations {
            let line = observation.line();
            if let Some(found) = rendered[cursor..].find(&line) {
                let start = cursor + found;
                spans.push((start..start + line.len(), observation.segment));
                cursor = start + line.len();
            }
        }
        let encoding = self
            .llm
            .tokenizer()
            .encode(rendered.as_str(), false)
            .map_err(|e| OperatorError::InvalidInput(format!("tokenization failed: {e}")))?;
        let token_segments = encoding
            .get_offsets()
            .iter()
            .map(|&(start, end)| {
                spans
                    .iter()
                    .find(|(span, _)| start < span.end && end > span.start)
                    .map(|(_, segment)| *segment)
            })
            .collect();
        Ok(Prompt {
            ids: encoding.get_ids().to_vec(),
            token_segments,
        })
    }

    fn generate(
        &self,
        prompt: &Prompt,
        evidence: &Evidence,
        task: &Task,
        sampling: Sampling,
        max_new_tokens: usize,
    ) -> Result<Candidate, OperatorError> {
        let generation = self.llm.generate(
            &prompt.ids,
            &GenerationOptions {
                max_new_tokens,
                sampling,
                return_attention: evidence.segments > 0,
            },
        )?;
        Candidate::from_generation(
            &generation,
            sampling,
            |text| grounded_key(task, text, evidence),
            |attention, answer_tokens| {
                segment_attention(attention, answer_tokens, prompt, evidence.segments)
            },
        )
    }
}

/// The answer tokens' attention (mean over layers, heads and answer tokens) summed per
/// segment over the tokens of its observation lines, normalised to shares.
fn segment_attention(
    attention: &tch::Tensor,
    answer_tokens: usize,
    prompt: &Prompt,
    segments: usize,
) -> Result<Vec<f32>, OperatorError> {
    // [generated, layers, heads, prompt] → mean over the answer rows, layers and heads.
    let per_position = attention
        .f_narrow(0, 0, answer_tokens as i64)
        .and_then(|a| a.f_mean_dim([0i64, 1, 2].as_slice(), false, Kind::Float))
        .and_then(Vec::<f32>::try_from)
        .map_err(|e| OperatorError::Inference {
            model: "video_qa attention".into(),
            message: e.to_string(),
        })?;
    let mut shares = vec![0.0f32; segments];
    for (position, segment) in prompt.token_segments.iter().enumerate() {
        if let (Some(segment), Some(weight)) = (segment, per_position.get(position)) {
            if let Some(share) = shares.get_mut(*segment) {
                *share += weight;
            }
        }
    }
    let total: f32 = shares.iter().sum();
    if total > 0.0 {
        shares.iter_mut().for_each(|s| *s /= total);
    }
    Ok(shares)
}

/// Questions a plain yes or no answers ("is anyone at the door?", "was a truck there?").
pub fn is_yes_no_question(question: &str) -> bool {
    const AUXILIARIES: &[&str] = &[
        "is", "are", "was", "were", "do", "does", "did", "has", "have", "had", "can", "could",
        "will", "would", "should", "am",
    ];
    question
        .split_whitespace()
        .next()
        .map(|word| {
            word.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .is_some_and(|word| AUXILIARIES.contains(&word.as_str()))
}

/// The comparable form of an answer, so the controller sums candidates that say the same:
/// for yes/no questions `yes`, `no` or `unknown`; otherwise `unknown` when the model
/// declined, else the set of the answer's words that also occur in the observations (two
/// wordings that rest on the same observed facts are one answer; words the observations do
/// not contain cannot be told apart from invention).
pub fn answer_key(task: &Task, text: &str, evidence: &Evidence) -> String {
    let words = words(text);
    if words.first().is_some_and(|w| w == UNKNOWN) || words.is_empty() {
        return UNKNOWN.into();
    }
    if let Task::Question(question) = task {
        if is_yes_no_question(question) {
            return match words[0].as_str() {
                "yes" => "yes".into(),
                "no" => "no".into(),
                _ => UNKNOWN.into(),
            };
        }
    }
    let observed: BTreeSet<String> = evidence
        .observations
        .iter()
        .flat_map(|o| words_of(&o.text))
        .collect();
    let grounded: BTreeSet<&String> = words.iter().filter(|w| observed.contains(*w)).collect();
    grounded
        .into_iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The key of a grounded answer ([`answer_key`]), with an answer to a question that only
/// repeats its prompt ([`echoes_prompt`]) keyed as `unknown`: the controller must not count
/// copies of the input as agreeing answers.
pub fn grounded_key(task: &Task, text: &str, evidence: &Evidence) -> String {
    if matches!(task, Task::Question(_)) && echoes_prompt(text, evidence, task) {
        return UNKNOWN.into();
    }
    answer_key(task, text, evidence)
}

/// Whether an answer to a question only repeats the prompt: every piece of it (its lines, cut
/// at `;` as observation lines are) is a time, the observations' header, or part of an
/// observation line, alone or after a time. A small model asked something its observations
/// do not say ("how many people walked past?") copies its input, or splices one line's time
/// to another's content, and that must never be published as an answer.
pub fn echoes_prompt(answer: &str, evidence: &Evidence, task: &Task) -> bool {
    let prompt = squeeze(&GroundedQa::user_message(evidence, task));
    let is_time = |word: &str| {
        word.chars().any(|c| c.is_ascii_digit())
            && word
                .chars()
                .all(|c| c.is_ascii_digit() || ":-tz.+".contains(c))
    };
    let mut pieces = answer
        .split(['\n', ';'])
        .map(|piece| {
            squeeze(piece.trim_matches(|c: char| c.is_whitespace() || "-*•.,".contains(c)))
        })
        .filter(|piece| !piece.is_empty())
        .peekable();
    pieces.peek().is_some()
        && pieces.all(|piece| {
            let words: Vec<&str> = piece.split(' ').collect();
            let content = words
                .iter()
                .skip_while(|word| is_time(word))
                .copied()
                .collect::<Vec<_>>();
            // Two words or more: "no" or "three people" are answers even where the prompt
            // has them.
            content.is_empty() || (content.len() >= 2 && prompt.contains(&content.join(" ")))
        })
}

/// Lowercase, with runs of whitespace as one space: text compared as a reader sees it.
fn squeeze(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn words(text: &str) -> Vec<String> {
    words_of(text).collect()
}

/// Lowercase alphanumeric words of three letters or more (numbers of any length), the
/// function words of a caption dropped.
fn words_of(text: &str) -> impl Iterator<Item = String> + '_ {
    const STOP_WORDS: &[&str] = &[
        "the", "and", "are", "was", "were", "with", "from", "this", "that", "there", "video",
        "camera", "view", "its", "into", "onto", "for", "has", "have", "had",
    ];
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| {
            (w.len() >= 3 || w.chars().all(|c| c.is_ascii_digit()) || w == "no")
                && !STOP_WORDS.contains(&w.as_str())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence() -> Evidence {
        Evidence {
            camera: "gate-3".into(),
            from: "14:03:10".into(),
            to: "14:03:20".into(),
            segments: 3,
            observations: vec![
                Observation {
                    segment: 0,
                    time: "14:03:10".into(),
                    text: "motion in 4% of the view (bottom left); tags: streetcar".into(),
                    confidence: 0.4,
                    key_frame: false,
                },
                Observation {
                    segment: 2,
                    time: "14:03:18".into(),
                    text: "text on screen: \"GATE 3\"".into(),
                    confidence: 0.9,
                    key_frame: true,
                },
            ],
        }
    }

    #[test]
    fn the_prompt_lists_observations_and_marks_key_frames() {
        let message =
            GroundedQa::user_message(&evidence(), &Task::Question("Is the gate open?".into()));
        assert!(message.contains("14:03:10 motion in 4% of the view (bottom left)"));
        assert!(message.contains("Key frame at 14:03:18: text on screen: \"GATE 3\""));
        assert!(message.ends_with("Question: Is the gate open? Answer yes or no."));
        let caption = GroundedQa::user_message(&Evidence::default(), &Task::Caption);
        assert!(caption.contains("(none)"));
        assert!(caption.ends_with("Question: What did the camera see? Answer in one sentence."));
    }

    #[test]
    fn yes_no_answers_key_on_their_first_word() {
        let task = Task::Question("Was anyone at the door?".into());
        assert_eq!(answer_key(&task, "Yes, a person.", &evidence()), "yes");
        assert_eq!(answer_key(&task, "No.", &evidence()), "no");
        assert_eq!(answer_key(&task, "Perhaps.", &evidence()), UNKNOWN);
        assert_eq!(answer_key(&task, "Unknown.", &evidence()), UNKNOWN);
        assert!(!is_yes_no_question("What text is on screen?"));
    }

    #[test]
    fn captions_key_on_the_observed_words_they_use() {
        let a = answer_key(
            &Task::Caption,
            "A streetcar passes the gate 3 sign.",
            &evidence(),
        );
        let b = answer_key(&Task::Caption, "Streetcar moving near GATE 3.", &evidence());
        assert_eq!(a, b);
        assert_eq!(a, "3 gate streetcar");
        assert_eq!(answer_key(&Task::Caption, "", &evidence()), UNKNOWN);
    }

    #[test]
    fn segments_without_observations_are_least_trusted() {
        assert_eq!(evidence().least_trusted_segments(), vec![1, 0, 2]);
    }

    #[test]
    fn an_answer_that_only_repeats_the_prompt_is_an_echo() {
        let evidence = evidence();
        let task = Task::Question("How many people walked past?".into());
        let header = GroundedQa::user_message(&evidence, &task)
            .lines()
            .next()
            .unwrap()
            .to_owned();
        let first_line = evidence.observations[0].line();
        // A time spliced to another line's content, as SmolLM2 did on vtest.avi.
        let spliced = format!(
            "14:03:18 {}",
            evidence.observations[0].text.split(';').next().unwrap()
        );
        for echo in [
            "20:41:02\n20:41:03\n20:41:04".to_owned(),
            header.clone(),
            format!("- {first_line}\n20:41:05"),
            spliced,
        ] {
            assert!(echoes_prompt(&echo, &evidence, &task), "{echo}");
            assert_eq!(grounded_key(&task, &echo, &evidence), UNKNOWN, "{echo}");
        }
        for answer in [
            "No.",
            "Three people walked past.",
            "",
            "20:41:02 a person waves",
        ] {
            assert!(!echoes_prompt(answer, &evidence, &task), "{answer}");
        }
    }
}

//! The captioning model: tags the chunk's frames, runs the CyberV round, hands the first
//! caption over at once, and when the controller does not accept it, re-examines the key
//! segments frame by frame and hands over the revision. It also answers questions, and
//! checks the alert rules on each chunk it captions (question rules ask the same LLM).
//!
//! [`CaptionModel`] runs it on a [`ModelWorker`] (the LLM and the tagger are not `Sync`), so
//! a caption that takes seconds never blocks the async runtime or the OCR worker; questions
//! take the urgent lane, as someone waits for their answer.

use std::time::Instant;

use argus_operators::llm::Sampling;
use argus_operators::self_correction::{
    Candidate, Controller, ControllerConfig, Sensor, SensorReading, Verdict,
};
use argus_operators::tagging::{ImageTagger, Tag};
use argus_operators::video_llm::{ChunkContext, VideoLlm};
use argus_operators::video_qa::{
    answer_key, echoes_prompt, Evidence, GroundedQa, RoundOptions, Task, UNKNOWN,
};
use argus_operators::{BgrImage, OperatorError};
use chrono::{DateTime, Utc};

use super::embedder::Embedder;
use super::worker::{Batching, ModelWorker, Pending, Queues, WorkerError};
use crate::captions::alerts::{perception_reason, trigger, AlertRules, CompiledRule};
use crate::captions::chunk::Chunk;
use crate::captions::evidence::{evidence, representatives, time_label, Described};
use crate::captions::questions::QuestionEvidence;
use crate::captions::trust::{self, Check, LlmAnswer, Similarity, Topics};
use crate::config::{CaptionsConfig, ModelsConfig};
use crate::messages::{
    AlertAnswer, AnswerSummary, CandidateSummary, DecidedBy, EvidenceLine, SensorSummary,
};
use crate::metrics::Metrics;

/// Width of alert thumbnails (pixels).
const ALERT_THUMBNAIL_WIDTH: u32 = 320;

/// What the worker hands to the publisher.
pub enum Written {
    /// A round's best caption, published at once.
    First(Draft),
    /// The correction of the chunk's first caption.
    Revision(Draft),
    /// A rule fired on the chunk.
    Alert(AlertDraft),
}

/// An alert before it gets its message id.
pub struct AlertDraft {
    pub camera: String,
    pub source: String,
    pub rule_id: String,
    pub kind: &'static str,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub evidence: Vec<EvidenceLine>,
    pub answer: Option<AlertAnswer>,
    /// JPEG.
    pub thumbnail: Option<Vec<u8>>,
    /// What the rule watches for, in words.
    pub trigger: String,
    /// Why it fired, in one line.
    pub reason: String,
    pub confidence: Option<f32>,
    pub decided_by: Vec<DecidedBy>,
}

/// A chunk's observations as one round shows them to the model.
struct Look {
    evidence: Evidence,
    /// The instant of each observation.
    instants: Vec<DateTime<Utc>>,
    /// The frames shown as key frames.
    key_frames: Vec<DateTime<Utc>>,
    /// Per segment, the frames shown (indices into the chunk's frames, in time order).
    shown: Vec<Vec<usize>>,
}

/// What the caption rounds saw of a chunk, for the alert rules.
struct Seen {
    /// Tags of every frame that was tagged (each segment's representative, and the key
    /// segments' frames after a correction).
    tagged: Vec<(usize, Vec<Tag>)>,
    /// The last round's look (the closer one after a correction).
    look: Look,
}

/// A caption before it gets its message id.
pub struct Draft {
    pub camera: String,
    pub source: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub text: String,
    pub accepted: bool,
    pub sensor: SensorSummary,
    pub key_frames: Vec<DateTime<Utc>>,
    pub evidence: Vec<EvidenceLine>,
    /// Wall time this draft cost (the correction's own, for a revision).
    pub compute: std::time::Duration,
    /// Candidates generated for it.
    pub candidates: usize,
}

/// One round's published result for a question.
pub struct AnswerRound {
    pub text: String,
    pub accepted: bool,
    pub key_frames: Vec<DateTime<Utc>>,
    pub evidence: Vec<EvidenceLine>,
    pub compute: std::time::Duration,
}

/// What the worker hands over while answering a question.
pub enum AnswerStep {
    First {
        sensor: SensorSummary,
        candidates: usize,
        round: AnswerRound,
    },
    Revision(AnswerRound),
}

/// What the captioning thread is asked to do.
pub enum CaptionJob {
    /// Caption a chunk and check the rules in force on it, handing over each caption,
    /// revision and alert as it is written.
    Chunk {
        chunk: Chunk,
        rules: AlertRules,
        hand_over: Box<dyn FnMut(Written) + Send>,
    },
    /// Answer a question, handing over the first answer and its revision.
    Question {
        question: String,
        evidence: QuestionEvidence,
        hand_over: Box<dyn FnMut(AnswerStep) + Send>,
    },
}

/// Questions waiting for the LLM; more are refused as busy.
const QUESTION_QUEUE: usize = 8;

/// Handle to the captioning thread; cheap to clone.
#[derive(Clone)]
pub struct CaptionModel {
    worker: ModelWorker<CaptionJob, ()>,
}

impl CaptionModel {
    /// Loads the LLM, the tagger and (when configured) the video model, failing early with
    /// the missing file named, and starts the thread. Returns the handle and the names
    /// published in the `model` field of captions and of answers.
    pub fn start(
        config: &CaptionsConfig,
        models: &ModelsConfig,
        embedder: Option<Embedder>,
        metrics: Metrics,
    ) -> Result<(Self, ModelNames), OperatorError> {
        let llm_dir = CaptionsConfig::model_dir(&config.llm_model, models);
        let qa = GroundedQa::load(&llm_dir, tch::Device::Cpu)?;
        let tagger = ImageTagger::load(&CaptionsConfig::model_dir(&config.tag_model, models))?;
        let answers = format!("{MODEL_PREFIX}/{}", folder_name(&llm_dir));
        let (video, captions) = match &config.video_model {
            Some(dir) => {
                let dir = CaptionsConfig::model_dir(dir, models);
                tracing::info!(model = %dir.display(), "captions from frames: vision tower, CCAM, LLM");
                let video = VideoLlm::load(&dir, tch::Device::Cpu)?;
                (
                    Some(video),
                    format!("{VIDEO_MODEL_PREFIX}/{}", folder_name(&dir)),
                )
            }
            None => (None, answers.clone()),
        };
        let mut worker =
            CaptionWorker::new(qa, video, tagger, config.clone()).with_embedder(embedder);
        let worker = ModelWorker::start(
            "argus-captions",
            answers.as_str(),
            Batching::ONE,
            Queues {
                background: config.queue,
                urgent: QUESTION_QUEUE,
            },
            move |jobs: Vec<CaptionJob>| {
                for job in jobs {
                    worker.run(job, &metrics);
                }
                Ok(vec![()])
            },
        )
        .map_err(|error| OperatorError::Inference {
            model: answers.clone(),
            message: format!("cannot start its thread: {error}"),
        })?;
        Ok((Self { worker }, ModelNames { captions, answers }))
    }

    /// Queues a chunk, waiting for room (a recording can wait); the receiver tells when its
    /// captions are all handed over.
    pub async fn caption(&self, job: CaptionJob) -> Result<Pending<()>, OperatorError> {
        self.worker.queue(vec![job]).await
    }

    /// Queues a chunk if there is room; `None` when the LLM is behind.
    pub fn try_caption(&self, job: CaptionJob) -> Option<Pending<()>> {
        self.worker.try_queue(vec![job]).ok()
    }

    /// Answers a question ahead of the chunks waiting; refused as busy when too many
    /// questions wait. Returns once every step is handed over.
    pub async fn answer(&self, job: CaptionJob) -> Result<(), WorkerError> {
        self.worker.call_urgent(vec![job]).await.map(|_| ())
    }
}

/// What captions and answers name as their `model`.
pub struct ModelNames {
    pub captions: String,
    pub answers: String,
}

/// The `model` field of captions and answers written from observations, before the LLM
/// folder's name.
const MODEL_PREFIX: &str = "video-qa";
/// The `model` field of captions written from frames (the full path), before its folder's name.
const VIDEO_MODEL_PREFIX: &str = "video-llm";

fn folder_name(dir: &std::path::Path) -> String {
    dir.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

pub struct CaptionWorker {
    /// Answers from observations: questions about stored video, and chunks when no video
    /// model is configured.
    qa: GroundedQa,
    /// The full path (tower, CCAM, LLM), when configured: chunks are captioned from frames.
    video: Option<VideoLlm>,
    tagger: ImageTagger,
    controller: Controller,
    config: CaptionsConfig,
    /// The moment index's sentence embedder, when it runs: question rules are checked
    /// against the chunk's text with it.
    embedder: Option<Embedder>,
    /// Each question rule's embedding, once computed.
    questions: std::collections::HashMap<String, Vec<f32>>,
}

impl CaptionWorker {
    pub fn new(
        qa: GroundedQa,
        video: Option<VideoLlm>,
        tagger: ImageTagger,
        config: CaptionsConfig,
    ) -> Self {
        let controller = Controller::new(ControllerConfig {
            threshold: config.threshold,
            key_segments: config.key_segments,
            ..ControllerConfig::default()
        });
        Self {
            qa,
            video,
            tagger,
            controller,
            config,
            embedder: None,
            questions: std::collections::HashMap::new(),
        }
    }

    /// Checks question rules against the chunk's text with `embedder` too.
    pub fn with_embedder(mut self, embedder: Option<Embedder>) -> Self {
        self.embedder = embedder;
        self
    }

    /// Runs one job; failures are logged and counted (the chunk stays uncaptioned, the
    /// question unanswered), so one bad chunk never stops the thread.
    fn run(&mut self, job: CaptionJob, metrics: &Metrics) {
        match job {
            CaptionJob::Question {
                question,
                evidence,
                hand_over,
            } => {
                if let Err(error) = self.answer(&question, &evidence, hand_over) {
                    tracing::error!(%error, "question not answered");
                    metrics.errors.with_label_values(&["operator"]).inc();
                }
            }
            CaptionJob::Chunk {
                chunk,
                rules,
                hand_over,
            } => {
                if let Err(error) = self.caption(&chunk, &rules.snapshot(), hand_over) {
                    tracing::error!(camera = %chunk.camera, start = %chunk.start, %error, "chunk not captioned");
                    metrics.errors.with_label_values(&["operator"]).inc();
                }
            }
        }
    }

    /// Captions `chunk`, calling `hand_over` with the first caption as soon as it exists and
    /// again with the revision, if any.
    pub fn caption(
        &mut self,
        chunk: &Chunk,
        rules: &[CompiledRule],
        mut hand_over: impl FnMut(Written),
    ) -> Result<(), OperatorError> {
        let seen = self.write_caption(chunk, &mut hand_over)?;
        let rules: Vec<&CompiledRule> = rules.iter().filter(|r| r.watches(&chunk.camera)).collect();
        for rule in rules {
            if let Some(alert) = self.check_rule(chunk, rule, &seen)? {
                hand_over(Written::Alert(alert));
            }
        }
        Ok(())
    }

    /// Writes the chunk's caption (and its revision); what was seen, for the alert rules.
    /// The evidence lines a chunk's first caption carries (what questions later read from
    /// Redis), without writing the caption: the chunk's representative frames tagged and
    /// described exactly as [`CaptionWorker::caption`] shows them to the model.
    pub fn first_look(&mut self, chunk: &Chunk) -> Result<Vec<EvidenceLine>, OperatorError> {
        let look = self.described(chunk, &[], &mut Vec::new())?;
        Ok(lines(&look.evidence, &look.instants))
    }

    fn write_caption(
        &mut self,
        chunk: &Chunk,
        hand_over: &mut impl FnMut(Written),
    ) -> Result<Seen, OperatorError> {
        let started = Instant::now();
        let mut tagged = Vec::new();
        let first = self.described(chunk, &[], &mut tagged)?;
        let seed = chunk.start.timestamp_millis() as u64;
        let (round, reading, verdict) = self.chunk_round(chunk, &first, &Task::Caption, seed)?;
        let Look {
            evidence: first_evidence,
            instants: first_instants,
            shown: first_shown,
            ..
        } = first;
        let sensor = summary(&round, &reading, &verdict);
        let best = verdict
            .best()
            .map(|b| b.text.clone())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| UNKNOWN.into());
        hand_over(Written::First(Draft {
            camera: chunk.camera.clone(),
            source: chunk.source.clone(),
            start: chunk.start,
            end: chunk.end,
            text: best,
            accepted: verdict.accepted,
            sensor: sensor.clone(),
            key_frames: Vec::new(),
            evidence: lines(&first_evidence, &first_instants),
            compute: started.elapsed(),
            candidates: round.len(),
        }));
        if verdict.accepted {
            return Ok(Seen {
                tagged,
                look: Look {
                    evidence: first_evidence,
                    instants: first_instants,
                    key_frames: Vec::new(),
                    shown: first_shown,
                },
            });
        }

        let correction_started = Instant::now();
        let closer = self.described(chunk, &verdict.key_segments, &mut tagged)?;
        let text = self.chunk_correct(chunk, &closer, &Task::Caption, seed)?;
        let Look {
            evidence: corrected,
            instants,
            key_frames,
            shown,
        } = closer;
        hand_over(Written::Revision(Draft {
            camera: chunk.camera.clone(),
            source: chunk.source.clone(),
            start: chunk.start,
            end: chunk.end,
            text,
            accepted: false,
            sensor,
            key_frames,
            evidence: lines(&corrected, &instants),
            compute: correction_started.elapsed(),
            candidates: 1,
        }));
        Ok(Seen {
            tagged,
            look: Look {
                evidence: corrected,
                instants,
                key_frames: Vec::new(),
                shown,
            },
        })
    }

    /// The chunk's evidence: each segment described by its representative frame, except the
    /// `key_segments`, described frame by frame as key frames (the correction's closer look).
    /// Frames are tagged once: `tagged` remembers every frame's tags. Also returns the key
    /// frames' instants.
    fn described(
        &mut self,
        chunk: &Chunk,
        key_segments: &[usize],
        tagged: &mut Vec<(usize, Vec<Tag>)>,
    ) -> Result<Look, OperatorError> {
        let segments = self.config.segments;
        let by_segment = chunk.frames_by_segment(segments);
        let mut picks: Vec<(usize, usize, bool)> = representatives(chunk, segments)
            .into_iter()
            .enumerate()
            .filter(|(segment, _)| !key_segments.contains(segment))
            .filter_map(|(segment, frame)| frame.map(|frame| (segment, frame, false)))
            .collect();
        for &segment in key_segments {
            picks.extend(
                by_segment[segment]
                    .iter()
                    .map(|&frame| (segment, frame, true)),
            );
        }
        // With the objects stage on, tags are left out of the observations (see
        // `captions::evidence`): the tagger is not asked.
        let tracked = chunk.tracks_objects();
        let untagged: Vec<usize> = picks
            .iter()
            .map(|&(_, frame, _)| frame)
            .filter(|frame| !tracked && !tagged.iter().any(|(f, _)| f == frame))
            .collect();
        let new_tags = self.tag(chunk, untagged.iter().copied())?;
        tagged.extend(untagged.into_iter().zip(new_tags));
        let described: Vec<Described<'_>> = picks
            .iter()
            .map(|&(segment, frame, key_frame)| Described {
                segment,
                frame,
                tags: tagged
                    .iter()
                    .find(|(f, _)| *f == frame)
                    .map(|(_, tags)| tags.as_slice())
                    .unwrap_or_default(),
                key_frame,
            })
            .collect();
        let key_frames = picks
            .iter()
            .filter(|(_, _, key)| *key)
            .map(|&(_, frame, _)| chunk.frames[frame].wall_time)
            .collect();
        let mut shown = vec![Vec::new(); segments];
        for &(segment, frame, _) in &picks {
            shown[segment].push(frame);
        }
        shown.iter_mut().for_each(|frames| frames.sort_unstable());
        let (evidence, instants) = evidence(chunk, segments, &described);
        Ok(Look {
            evidence,
            instants,
            key_frames,
            shown,
        })
    }

    /// Whether `rule` fires on the chunk: a perception rule on its matching frames, a
    /// question rule when the evidence checked on the chunk and the LLM agree, or the
    /// evidence alone is decisive ([`trust`]).
    fn check_rule(
        &mut self,
        chunk: &Chunk,
        rule: &CompiledRule,
        seen: &Seen,
    ) -> Result<Option<AlertDraft>, OperatorError> {
        let Some(question) = rule.question() else {
            let tagged: Vec<(usize, &[Tag])> = seen
                .tagged
                .iter()
                .map(|(frame, tags)| (*frame, tags.as_slice()))
                .collect();
            let matching = rule.matching_frames(chunk, &tagged);
            let Some(&(first, _)) = matching.first() else {
                return Ok(None);
            };
            let evidence: Vec<EvidenceLine> = matching.into_iter().map(|(_, line)| line).collect();
            let confidence = evidence
                .iter()
                .map(|l| l.confidence)
                .fold(0.0_f32, f32::max);
            let decided_by = vec![DecidedBy {
                evidence: rule.rule.when.kind().to_owned(),
                score: confidence,
                detail: evidence[0].text.clone(),
            }];
            let reason = perception_reason(&rule.rule, &evidence, chunk.start);
            return Ok(Some(self.alert_draft(
                chunk,
                rule,
                first,
                evidence,
                None,
                reason,
                Some(confidence),
                decided_by,
            )));
        };
        let checks = self.question_checks(chunk, question, &seen.look)?;
        let asked = if trust::needs_llm(&checks) {
            Some(self.ask_llm(chunk, question, seen)?)
        } else {
            None
        };
        let decision = trust::decide(&checks, asked.as_ref().map(|(answer, _)| answer));
        if !decision.fire {
            return Ok(None);
        }
        let frame = representatives(chunk, self.config.segments)
            .into_iter()
            .flatten()
            .max_by(|&a, &b| {
                chunk.frames[a]
                    .motion
                    .level
                    .total_cmp(&chunk.frames[b].motion.level)
            })
            .unwrap_or(0);
        let answer = asked.map(|(llm, text)| AlertAnswer {
            question: question.to_owned(),
            text,
            accepted_first: llm.accepted,
        });
        Ok(Some(self.alert_draft(
            chunk,
            rule,
            frame,
            lines(&seen.look.evidence, &seen.look.instants),
            answer,
            decision.reason,
            decision.confidence,
            decision.decided_by,
        )))
    }

    #[allow(clippy::too_many_arguments)]
    fn alert_draft(
        &self,
        chunk: &Chunk,
        rule: &CompiledRule,
        frame: usize,
        evidence: Vec<EvidenceLine>,
        answer: Option<AlertAnswer>,
        reason: String,
        confidence: Option<f32>,
        decided_by: Vec<DecidedBy>,
    ) -> AlertDraft {
        AlertDraft {
            camera: chunk.camera.clone(),
            source: chunk.source.clone(),
            rule_id: rule.rule.id.clone(),
            kind: rule.rule.when.kind(),
            start: chunk.start,
            end: chunk.end,
            evidence,
            answer,
            thumbnail: chunk.frames[frame]
                .image
                .to_jpeg(ALERT_THUMBNAIL_WIDTH, 75)
                .ok(),
            trigger: trigger(&rule.rule),
            reason,
            confidence,
            decided_by,
        }
    }

    /// The evidence a question rule is checked against on the chunk ([`trust::checks`]).
    fn question_checks(
        &mut self,
        chunk: &Chunk,
        question: &str,
        look: &Look,
    ) -> Result<Vec<Check>, OperatorError> {
        let topics = Topics::of(question);
        let observations: Vec<String> = (look.evidence.observations.iter())
            .map(|o| o.text.clone())
            .collect();
        // Embedded only where a check reads it: the frames' text for a question about
        // words on screen, the observations for one about nothing measurable.
        let screens = if topics.text && !topics.terms.is_empty() {
            trust::screens(chunk)
        } else {
            Vec::new()
        };
        let observed = if topics.checkable(chunk) {
            &[][..]
        } else {
            &observations[..]
        };
        let similarity = Similarity {
            ocr: self.similarity(question, &screens)?,
            observations: self.similarity(question, observed)?,
        };
        Ok(trust::checks(&topics, chunk, &observations, similarity))
    }

    /// The best cosine similarity of `question` to one of `texts` (unit embeddings), when the
    /// embedder runs and there are texts. This thread is the captioning model's own, not the
    /// async runtime's: it waits for the embedder's worker.
    fn similarity(
        &mut self,
        question: &str,
        texts: &[String],
    ) -> Result<Option<f32>, OperatorError> {
        let Some(embedder) = self.embedder.clone() else {
            return Ok(None);
        };
        if texts.is_empty() {
            return Ok(None);
        }
        let mut inputs = texts.to_vec();
        let cached = self.questions.get(question).cloned();
        if cached.is_none() {
            inputs.push(question.to_owned());
        }
        let mut vectors = futures::executor::block_on(embedder.embed(inputs))?;
        let asked = match cached {
            Some(vector) => vector,
            None => {
                let vector = vectors.pop().unwrap_or_default();
                self.questions.insert(question.to_owned(), vector.clone());
                vector
            }
        };
        Ok(vectors
            .iter()
            .map(|v| v.iter().zip(&asked).map(|(a, b)| a * b).sum::<f32>())
            .reduce(f32::max))
    }

    /// The LLM's answer to a question rule on the chunk: a yes the controller accepted, or
    /// the correction round's answer after a second look at the key segments. Also the
    /// answer's text.
    fn ask_llm(
        &mut self,
        chunk: &Chunk,
        question: &str,
        seen: &Seen,
    ) -> Result<(LlmAnswer, String), OperatorError> {
        let task = Task::Question(question.to_owned());
        let seed = chunk.start.timestamp_millis() as u64;
        let (_, _, verdict) = self.chunk_round(chunk, &seen.look, &task, seed)?;
        let total: f32 = verdict.answers.iter().map(|a| a.total).sum();
        let support = |key: &str| {
            let yes = (verdict.answers.iter())
                .find(|a| a.key == key)
                .map_or(0.0, |a| a.total);
            if total > 0.0 {
                yes / total
            } else {
                0.0
            }
        };
        match verdict.best().map(|b| (b.key.clone(), b.text.clone())) {
            Some((key, text)) if verdict.accepted => {
                let answer = LlmAnswer {
                    yes: key == "yes",
                    support: support(&key),
                    accepted: true,
                };
                Ok((answer, text))
            }
            _ => {
                // Not trusted: a second look at the key segments.
                let mut tagged = seen.tagged.clone();
                let closer = self.described(chunk, &verdict.key_segments, &mut tagged)?;
                let text = self.chunk_correct(chunk, &closer, &task, seed)?;
                let key = answer_key(&task, &text, &closer.evidence);
                let answer = LlmAnswer {
                    yes: key == "yes",
                    support: support(&key),
                    accepted: false,
                };
                Ok((answer, text))
            }
        }
    }

    /// A question rule judged on a chunk as the service judges it, with the LLM always
    /// asked: the checks, and the LLM's answer (benchmarks compare the LLM alone with
    /// [`trust::decide`]).
    pub fn judge_question(
        &mut self,
        chunk: &Chunk,
        question: &str,
    ) -> Result<(Vec<Check>, LlmAnswer), OperatorError> {
        let mut tagged = Vec::new();
        let look = self.described(chunk, &[], &mut tagged)?;
        let seen = Seen { tagged, look };
        let checks = self.question_checks(chunk, question, &seen.look)?;
        let (answer, _) = self.ask_llm(chunk, question, &seen)?;
        Ok((checks, answer))
    }

    /// Answers `question` from `evidence`, handing over the first answer as soon as it
    /// exists and, when the controller does not accept it, the correction on the key
    /// segments' dense observations.
    pub fn answer(
        &mut self,
        question: &str,
        evidence: &QuestionEvidence,
        mut hand_over: impl FnMut(AnswerStep),
    ) -> Result<(), OperatorError> {
        let started = Instant::now();
        let task = Task::Question(question.to_owned());
        let seed = question
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        let (round, reading, verdict) = self.round(&evidence.evidence, &task, seed)?;
        hand_over(AnswerStep::First {
            sensor: summary(&round, &reading, &verdict),
            candidates: round.len(),
            round: AnswerRound {
                text: published_answer(
                    verdict.best().map(|b| b.text.clone()).unwrap_or_default(),
                    &evidence.evidence,
                    &task,
                ),
                accepted: verdict.accepted,
                key_frames: Vec::new(),
                evidence: lines(&evidence.evidence, &evidence.instants),
                compute: started.elapsed(),
            },
        });
        if verdict.accepted {
            return Ok(());
        }
        let correction_started = Instant::now();
        let (corrected, instants) = evidence.corrected(&verdict.key_segments);
        let text = published_answer(self.correct(&corrected, &task, seed)?, &corrected, &task);
        let key_frames = corrected
            .observations
            .iter()
            .zip(&instants)
            .filter(|(o, _)| o.key_frame)
            .map(|(_, at)| *at)
            .collect();
        hand_over(AnswerStep::Revision(AnswerRound {
            text,
            accepted: false,
            key_frames,
            evidence: lines(&corrected, &instants),
            compute: correction_started.elapsed(),
        }));
        Ok(())
    }

    /// A CyberV round on a chunk: from its frames on the full path, from its observations
    /// otherwise.
    fn chunk_round(
        &self,
        chunk: &Chunk,
        look: &Look,
        task: &Task,
        seed: u64,
    ) -> Result<(Vec<Candidate>, SensorReading, Verdict), OperatorError> {
        let Some(video) = &self.video else {
            return self.round(&look.evidence, task, seed);
        };
        let round = video.candidates(
            &frames_shown(chunk, look),
            &context(chunk),
            task,
            &self.round_options(seed),
        )?;
        let reading = Sensor.read(&round);
        let verdict =
            self.controller
                .decide(&round, &reading, &look.evidence.least_trusted_segments());
        Ok((round, reading, verdict))
    }

    /// The correction round's answer on a chunk (see [`CaptionWorker::chunk_round`]).
    fn chunk_correct(
        &self,
        chunk: &Chunk,
        look: &Look,
        task: &Task,
        seed: u64,
    ) -> Result<String, OperatorError> {
        let Some(video) = &self.video else {
            return self.correct(&look.evidence, task, seed);
        };
        let answer = video.answer(
            &frames_shown(chunk, look),
            &context(chunk),
            task,
            self.correction_sampling(seed),
            self.config.max_new_tokens,
        )?;
        Ok(non_empty(answer.text))
    }

    fn round_options(&self, seed: u64) -> RoundOptions {
        RoundOptions {
            candidates: self.config.candidates,
            max_new_tokens: self.config.max_new_tokens,
            temperature: self.config.temperature,
            top_p: 0.95,
            seed,
        }
    }

    fn correction_sampling(&self, seed: u64) -> Sampling {
        Sampling::Sample {
            temperature: self.config.correction_temperature,
            top_p: 0.95,
            seed,
        }
    }

    /// One CyberV round: candidates, the sensor's reading and the controller's verdict.
    fn round(
        &self,
        evidence: &Evidence,
        task: &Task,
        seed: u64,
    ) -> Result<(Vec<Candidate>, SensorReading, Verdict), OperatorError> {
        let round = self
            .qa
            .candidates(evidence, task, &self.round_options(seed))?;
        let reading = Sensor.read(&round);
        let verdict = self
            .controller
            .decide(&round, &reading, &evidence.least_trusted_segments());
        Ok((round, reading, verdict))
    }

    /// The correction round's single answer, at the low correction temperature.
    fn correct(
        &self,
        evidence: &Evidence,
        task: &Task,
        seed: u64,
    ) -> Result<String, OperatorError> {
        let answer = self.qa.answer(
            evidence,
            task,
            self.correction_sampling(seed),
            self.config.max_new_tokens,
        )?;
        Ok(non_empty(answer.text))
    }

    fn tag(
        &mut self,
        chunk: &Chunk,
        frames: impl Iterator<Item = usize>,
    ) -> Result<Vec<Vec<Tag>>, OperatorError> {
        let images: Vec<&BgrImage> = frames.map(|i| chunk.frames[i].image.as_ref()).collect();
        if images.is_empty() {
            return Ok(Vec::new());
        }
        self.tagger.tag_batch(&images, self.config.tags_per_frame)
    }
}

/// `unknown` for an empty answer.
/// The text an answer is published with: `unknown` when the model said nothing, or only
/// repeated its prompt (times, the header, observation lines); the evidence goes with it.
fn published_answer(text: String, evidence: &Evidence, task: &Task) -> String {
    if text.trim().is_empty() || echoes_prompt(&text, evidence, task) {
        UNKNOWN.into()
    } else {
        text
    }
}

fn non_empty(text: String) -> String {
    if text.is_empty() {
        UNKNOWN.to_string()
    } else {
        text
    }
}

/// The frames a look shows, per segment, for the full path.
fn frames_shown(chunk: &Chunk, look: &Look) -> Vec<Vec<BgrImage>> {
    look.shown
        .iter()
        .map(|frames| {
            frames
                .iter()
                .map(|&i| chunk.frames[i].image.as_ref().clone())
                .collect()
        })
        .collect()
}

fn context(chunk: &Chunk) -> ChunkContext {
    ChunkContext {
        camera: chunk.camera.clone(),
        from: time_label(chunk.start),
        to: time_label(chunk.end),
    }
}

fn lines(evidence: &Evidence, instants: &[DateTime<Utc>]) -> Vec<EvidenceLine> {
    evidence
        .observations
        .iter()
        .zip(instants)
        .map(|(o, at)| EvidenceLine {
            at: *at,
            text: o.text.clone(),
            confidence: o.confidence,
            key_frame: o.key_frame,
        })
        .collect()
}

fn summary(round: &[Candidate], reading: &SensorReading, verdict: &Verdict) -> SensorSummary {
    SensorSummary {
        candidates: round
            .iter()
            .zip(&reading.signals)
            .map(|(candidate, signals)| CandidateSummary {
                text: candidate.text.clone(),
                greedy: candidate.greedy,
                probability: signals.probability,
                kept_probability: signals.kept_probability,
                no_repetition: signals.no_repetition,
                attention_stability: signals.attention_stability,
                rank: signals.rank,
            })
            .collect(),
        answers: verdict
            .answers
            .iter()
            .map(|a| AnswerSummary {
                key: a.key.clone(),
                text: a.text.clone(),
                total: a.total,
                candidates: a.candidates,
            })
            .collect(),
        required: verdict.required,
        segment_drift: reading.segment_drift.clone(),
        key_segments: verdict.key_segments.clone(),
    }
}

//! The captioning thread: tags the chunk's frames, runs the CyberV round, hands the first
//! caption over at once, and when the controller does not accept it, re-examines the key
//! segments frame by frame and hands over the revision.
//!
//! It owns the LLM and the tagger (neither is `Sync`) on a thread of its own, so a caption
//! that takes seconds never blocks the async runtime or the OCR worker.

use std::time::Instant;

use argus_operators::llm::Sampling;
use argus_operators::self_correction::{
    Candidate, Controller, ControllerConfig, Sensor, SensorReading, Verdict,
};
use argus_operators::tagging::{ImageTagger, Tag};
use argus_operators::video_qa::{Evidence, GroundedQa, RoundOptions, Task, UNKNOWN};
use argus_operators::{BgrImage, OperatorError};
use chrono::{DateTime, Utc};

use super::chunk::Chunk;
use super::evidence::{evidence, representatives, Described};
use super::questions::QuestionEvidence;
use crate::config::CaptionsConfig;
use crate::publish::messages::{AnswerSummary, CandidateSummary, EvidenceLine, SensorSummary};

/// What the worker hands to the publisher.
pub enum Written {
    /// A round's best caption, published at once.
    First(Draft),
    /// The correction of the chunk's first caption.
    Revision(Draft),
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

pub struct CaptionWorker {
    qa: GroundedQa,
    tagger: ImageTagger,
    controller: Controller,
    config: CaptionsConfig,
}

impl CaptionWorker {
    pub fn new(qa: GroundedQa, tagger: ImageTagger, config: CaptionsConfig) -> Self {
        let controller = Controller::new(ControllerConfig {
            threshold: config.threshold,
            key_segments: config.key_segments,
            ..ControllerConfig::default()
        });
        Self {
            qa,
            tagger,
            controller,
            config,
        }
    }

    /// Captions `chunk`, calling `hand_over` with the first caption as soon as it exists and
    /// again with the revision, if any.
    pub fn caption(
        &mut self,
        chunk: &Chunk,
        mut hand_over: impl FnMut(Written),
    ) -> Result<(), OperatorError> {
        let started = Instant::now();
        let segments = self.config.segments;
        let picks: Vec<(usize, usize)> = representatives(chunk, segments)
            .into_iter()
            .enumerate()
            .filter_map(|(segment, frame)| frame.map(|frame| (segment, frame)))
            .collect();
        let tags = self.tag(chunk, picks.iter().map(|&(_, frame)| frame))?;
        let described: Vec<Described<'_>> = picks
            .iter()
            .zip(&tags)
            .map(|(&(segment, frame), tags)| Described {
                segment,
                frame,
                tags,
                key_frame: false,
            })
            .collect();
        let (first_evidence, first_instants) = evidence(chunk, segments, &described);
        let (round, reading, verdict) = self.round(
            &first_evidence,
            &Task::Caption,
            chunk.start.timestamp_millis() as u64,
        )?;
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
            return Ok(());
        }

        // Self-correction: every frame of the key segments, described and marked.
        let correction_started = Instant::now();
        let by_segment = chunk.frames_by_segment(segments);
        let dense: Vec<(usize, usize)> = verdict
            .key_segments
            .iter()
            .flat_map(|&segment| {
                by_segment[segment]
                    .iter()
                    .map(move |&frame| (segment, frame))
            })
            .collect();
        let dense_tags = self.tag(chunk, dense.iter().map(|&(_, frame)| frame))?;
        let mut described: Vec<Described<'_>> = described
            .into_iter()
            .filter(|d| !verdict.key_segments.contains(&d.segment))
            .collect();
        described.extend(
            dense
                .iter()
                .zip(&dense_tags)
                .map(|(&(segment, frame), tags)| Described {
                    segment,
                    frame,
                    tags,
                    key_frame: true,
                }),
        );
        let (corrected_evidence, corrected_instants) = evidence(chunk, segments, &described);
        let text = self.correct(
            &corrected_evidence,
            &Task::Caption,
            chunk.start.timestamp_millis() as u64,
        )?;
        hand_over(Written::Revision(Draft {
            camera: chunk.camera.clone(),
            source: chunk.source.clone(),
            start: chunk.start,
            end: chunk.end,
            text,
            accepted: false,
            sensor,
            key_frames: dense
                .iter()
                .map(|&(_, frame)| chunk.frames[frame].wall_time)
                .collect(),
            evidence: lines(&corrected_evidence, &corrected_instants),
            compute: correction_started.elapsed(),
            candidates: 1,
        }));
        Ok(())
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
                text: verdict
                    .best()
                    .map(|b| b.text.clone())
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| UNKNOWN.into()),
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
        let text = self.correct(&corrected, &task, seed)?;
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

    /// One CyberV round: candidates, the sensor's reading and the controller's verdict.
    fn round(
        &self,
        evidence: &Evidence,
        task: &Task,
        seed: u64,
    ) -> Result<(Vec<Candidate>, SensorReading, Verdict), OperatorError> {
        let round = self.qa.candidates(
            evidence,
            task,
            &RoundOptions {
                candidates: self.config.candidates,
                max_new_tokens: self.config.max_new_tokens,
                temperature: self.config.temperature,
                top_p: 0.95,
                seed,
            },
        )?;
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
            Sampling::Sample {
                temperature: self.config.correction_temperature,
                top_p: 0.95,
                seed,
            },
            self.config.max_new_tokens,
        )?;
        Ok(if answer.text.is_empty() {
            UNKNOWN.to_string()
        } else {
            answer.text
        })
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

//! Questions about stored video: "was the gate open at noon?" over a camera and a time range.
//!
//! The range's stored captions (Redis, written by `sinks::captions`) become the evidence
//! ([`crate::captions::questions`]); the captioning model answers ahead of the chunks waiting
//! to be captioned, with its CyberV correction published as a revision. Each answer goes to
//! the answers topic and to Redis as the camera's latest.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::captions::captions_key;
use crate::captions::evidence;
use crate::captions::questions::{question_evidence, QuestionError, QuestionRequest};
use crate::config::Config;
use crate::messages::{Answer, Caption, MissingSpan, SensorSummary};
use crate::metrics::Metrics;
use crate::operators::captioning::{AnswerRound, AnswerStep, CaptionJob, CaptionModel};
use crate::operators::worker::WorkerError;
use crate::publish::{new_trace_id, KafkaPublisher, Outgoing, RedisState};

/// A question without `from` covers this much before `to`.
const DEFAULT_QUESTION_RANGE: chrono::Duration = chrono::Duration::seconds(60);

/// Answers questions; cheap to clone.
#[derive(Clone)]
pub struct Questions {
    model: CaptionModel,
    /// The `model` field of answers.
    model_name: String,
    kafka: KafkaPublisher,
    answers_topic: String,
    redis: RedisState,
    chunk_s: f64,
    metrics: Metrics,
}

impl Questions {
    pub fn new(
        config: &Config,
        model: CaptionModel,
        model_name: String,
        kafka: KafkaPublisher,
        redis: RedisState,
        metrics: Metrics,
    ) -> Self {
        metrics
            .caption_correction_latency
            .with_label_values(&["question"]);
        Self {
            model,
            model_name,
            kafka,
            answers_topic: config.kafka.topics.answers.clone(),
            redis,
            chunk_s: config.captions.chunk_s,
            metrics,
        }
    }

    /// Answers a question about a camera and a time range from its stored chunks; the
    /// answers as published (the first, and its revision when the controller asked for one).
    pub async fn ask(&self, request: QuestionRequest) -> Result<Vec<Answer>, QuestionError> {
        request.validate()?;
        let internal = |e: redis::RedisError| QuestionError::Internal(format!("Redis: {e}"));
        let key = captions_key(self.redis.key_prefix(), &request.camera);
        let mut redis = self.redis.connection().await.map_err(internal)?;
        let first: Vec<String> = redis::AsyncCommands::zrange(&mut redis, &key, 0, 0)
            .await
            .map_err(internal)?;
        let last: Vec<String> = redis::AsyncCommands::zrange(&mut redis, &key, -1, -1)
            .await
            .map_err(internal)?;
        let (Some(first), Some(last)) = (
            first.first().and_then(|json| parse_caption(json)),
            last.first().and_then(|json| parse_caption(json)),
        ) else {
            return Err(QuestionError::UnknownCamera(request.camera));
        };
        let to = request.to.unwrap_or(last.end);
        let from = request.from.unwrap_or(to - DEFAULT_QUESTION_RANGE);
        QuestionRequest {
            from: Some(from),
            to: Some(to),
            ..request.clone()
        }
        .validate()?;
        if to <= first.start || from >= last.end {
            return Err(QuestionError::OutsideVideo {
                camera: request.camera,
                from,
                to,
                first: first.start,
                last: last.end,
            });
        }
        let chunk_ms = (self.chunk_s * 1000.0) as i64;
        let stored: Vec<String> = redis::AsyncCommands::zrangebyscore(
            &mut redis,
            &key,
            from.timestamp_millis() - chunk_ms + 1,
            to.timestamp_millis() - 1,
        )
        .await
        .map_err(internal)?;
        let chunks: Vec<Caption> = stored
            .iter()
            .filter_map(|json| parse_caption(json))
            .filter(|c| c.end > from && c.start < to)
            .collect();
        let evidence = question_evidence(&request.camera, &chunks, from, to);
        let asked = Asked {
            camera: request.camera.clone(),
            question: request.question.clone(),
            from,
            to,
            missing: evidence.missing.clone(),
        };
        if chunks.is_empty() {
            // Nothing to show the model: the answer is that the video is missing.
            let text = format!(
                "The video is missing from {} to {}.",
                evidence::time_label(from),
                evidence::time_label(to)
            );
            let answer = self.answer_message(&asked, None, round_without_model(text), 1, None);
            self.publish_answer(&answer).await;
            return Ok(vec![answer]);
        }

        let (steps, mut answered) = mpsc::unbounded_channel();
        let job = CaptionJob::Question {
            question: request.question,
            evidence,
            hand_over: Box::new(move |step| {
                let _ = steps.send(step);
            }),
        };
        // The thread hands each step over as it is written: the first answer is published
        // while the revision is still being worked on.
        let answering = self.model.answer(job);
        let publishing = async {
            let mut answers: Vec<Answer> = Vec::new();
            let mut sensor = None;
            while let Some(step) = answered.recv().await {
                let (round, revision) = match step {
                    AnswerStep::First {
                        sensor: reading,
                        candidates,
                        round,
                    } => {
                        self.count_round(&asked.camera, candidates, round.accepted);
                        sensor = Some(reading);
                        (round, 1)
                    }
                    AnswerStep::Revision(round) => {
                        self.metrics
                            .caption_correction_latency
                            .with_label_values(&["question"])
                            .observe(round.compute.as_secs_f64());
                        (round, 2)
                    }
                };
                let supersedes = answers.last().map(|a| a.message_id);
                let answer =
                    self.answer_message(&asked, sensor.clone(), round, revision, supersedes);
                self.publish_answer(&answer).await;
                answers.push(answer);
            }
            answers
        };
        let (answered, answers) = tokio::join!(answering, publishing);
        if let Err(WorkerError::Busy(_)) = answered {
            return Err(QuestionError::Busy);
        }
        if answers.is_empty() {
            return Err(QuestionError::Internal(
                "the model failed to answer (see the log)".into(),
            ));
        }
        Ok(answers)
    }

    fn count_round(&self, camera: &str, candidates: usize, accepted: bool) {
        let metrics = &self.metrics;
        metrics
            .caption_candidates
            .with_label_values(&[camera])
            .inc_by(candidates as u64);
        if !accepted {
            metrics
                .caption_corrections
                .with_label_values(&[camera])
                .inc();
        }
    }

    fn answer_message(
        &self,
        asked: &Asked,
        sensor: Option<SensorSummary>,
        round: AnswerRound,
        revision: u32,
        supersedes: Option<Uuid>,
    ) -> Answer {
        Answer {
            schema_version: Answer::SCHEMA_VERSION,
            message_id: Uuid::now_v7(),
            camera_id: asked.camera.clone(),
            question: asked.question.clone(),
            from: asked.from,
            to: asked.to,
            text: round.text,
            revision,
            supersedes,
            accepted: round.accepted,
            sensor,
            key_frames: round.key_frames,
            evidence: round.evidence,
            missing: asked.missing.clone(),
            model: self.model_name.clone(),
            latency_ms: round.compute.as_secs_f64() * 1e3,
            produced_at: Utc::now(),
        }
    }

    /// To the answers topic, and as the camera's latest answer in Redis.
    async fn publish_answer(&self, answer: &Answer) {
        let json = serde_json::to_string(answer).expect("answers serialise");
        let camera = answer.camera_id.as_str();
        let outgoing = Outgoing {
            topic: &self.answers_topic,
            key: camera,
            payload: json.clone(),
            schema_id: Answer::SCHEMA_ID,
            message_id: answer.message_id.to_string(),
            trace_id: new_trace_id(),
        };
        if let Err(error) = self.kafka.publish(outgoing).await {
            tracing::error!(camera, %error, "could not queue an answer for Kafka");
        }
        let mut pipeline = redis::pipe();
        pipeline.set(
            format!("{}:answers:{camera}:latest", self.redis.key_prefix()),
            &json,
        );
        self.redis.write_pipeline(pipeline).await;
        tracing::info!(camera, revision = answer.revision, accepted = answer.accepted, question = %answer.question, text = %answer.text, "answer");
    }
}

/// The question as resolved: camera, text, range, and the range's spans without video.
struct Asked {
    camera: String,
    question: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    missing: Vec<MissingSpan>,
}

fn round_without_model(text: String) -> AnswerRound {
    AnswerRound {
        text,
        accepted: true,
        key_frames: Vec::new(),
        evidence: Vec::new(),
        compute: Duration::ZERO,
    }
}

fn parse_caption(json: &str) -> Option<Caption> {
    serde_json::from_str(json)
        .map_err(|error| tracing::warn!(%error, "unreadable caption in Redis"))
        .ok()
}

//! Questions about stored video: "was the gate open at noon?" over a camera and a time range.
//!
//! The range's stored captions (Redis, written by `sinks::captions`) become the evidence
//! ([`crate::captions::questions`]); the captioning model answers ahead of the chunks waiting
//! to be captioned, with its CyberV correction published as a revision. Each answer goes to
//! the answers topic and to Redis as the camera's latest.
//!
//! With objects on, a count question ("how many people walked past?") is counted from the
//! track store (`objects::tracks`, written by `sinks::objects`): the count joins the evidence
//! as a line for the model to phrase, and an answer that does not state it is replaced by the
//! counted sentence (`objects::counting`).

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
use crate::objects::counting::{CountQuestion, TrackCount};
use crate::objects::tracks::{ended_tracks_key, live_tracks_key, TrackRecord};
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
    /// Objects are tracked: count questions are counted from the track store.
    counts_tracks: bool,
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
            counts_tracks: config.objects.enabled,
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
        let mut evidence = question_evidence(&request.camera, &chunks, from, to);
        let count = match CountQuestion::parse(&request.question) {
            Some(question) if self.counts_tracks && !chunks.is_empty() => {
                let records =
                    stored_tracks(&mut redis, self.redis.key_prefix(), &request.camera, from)
                        .await
                        .map_err(internal)?;
                let count = question.count(&records, from, to);
                tracing::info!(camera = %request.camera, count = count.count, "count question: {}", count.statement());
                evidence.add_track_count(&count);
                Some(count)
            }
            _ => None,
        };
        let asked = Asked {
            camera: request.camera.clone(),
            question: request.question.clone(),
            from,
            to,
            missing: evidence.missing.clone(),
            count,
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
        let (text, counted) = match &asked.count {
            Some(count) => {
                let (text, counted) = count.publish(round.text);
                (text, Some(counted))
            }
            None => (round.text, None),
        };
        Answer {
            schema_version: Answer::SCHEMA_VERSION,
            message_id: Uuid::now_v7(),
            camera_id: asked.camera.clone(),
            question: asked.question.clone(),
            from: asked.from,
            to: asked.to,
            text,
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
            counted,
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
    /// For a count question, what the track store counted.
    count: Option<TrackCount>,
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

/// The camera's tracks that may overlap a range starting at `from`: the ended ones last seen
/// since, and the live ones. Whether they overlap is [`CountQuestion::count`]'s to check.
async fn stored_tracks(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    camera: &str,
    from: DateTime<Utc>,
) -> redis::RedisResult<Vec<TrackRecord>> {
    let (ended, live): (Vec<String>, Option<String>) = redis::pipe()
        .zrangebyscore(
            ended_tracks_key(prefix, camera),
            from.timestamp_millis(),
            "+inf",
        )
        .get(live_tracks_key(prefix, camera))
        .query_async(redis)
        .await?;
    let unreadable = |error: serde_json::Error| tracing::warn!(%error, "unreadable track in Redis");
    let mut records: Vec<TrackRecord> = ended
        .iter()
        .filter_map(|json| serde_json::from_str(json).map_err(unreadable).ok())
        .collect();
    if let Some(live) = live {
        records.extend(
            serde_json::from_str::<Vec<TrackRecord>>(&live)
                .map_err(unreadable)
                .unwrap_or_default(),
        );
    }
    Ok(records)
}

fn parse_caption(json: &str) -> Option<Caption> {
    serde_json::from_str(json)
        .map_err(|error| tracing::warn!(%error, "unreadable caption in Redis"))
        .ok()
}

//! Chunk captions with test-time self-correction (CyberV), published as revisions.
//!
//! Every analysed frame joins its camera's open chunk ([`chunk`]) with its OCR lines and its
//! motion (computed here, per camera). When a chunk closes (the next chunk's first frame, the
//! clock for live cameras, or the end of a recording) it goes to the captioning thread
//! ([`worker`]), which writes the first caption from one frame per segment ([`evidence`]),
//! lets the sensor and controller judge it, and when they do not accept it re-examines the
//! key segments frame by frame and writes a revision. Both go to `kafka.topics.captions`
//! (the revision with `revision: 2` and `supersedes`) and to Redis, where each camera keeps
//! its newest captions by chunk start (`{prefix}:captions:{camera}`).

pub mod alerts;
pub mod chunk;
pub mod evidence;
pub mod questions;
pub mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argus_operators::motion::{MotionConfig, MotionDetector};
use argus_operators::ocr::TextLine;
use argus_operators::tagging::ImageTagger;
use argus_operators::video_llm::VideoLlm;
use argus_operators::video_qa::{GroundedQa, UNKNOWN};
use argus_operators::BgrImage;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use self::alerts::{AlertRule, AlertRules};
use self::chunk::{Chunk, ChunkBuilder, ChunkFrame};
use self::questions::{question_evidence, QuestionError, QuestionEvidence, QuestionRequest};
use self::worker::{AlertDraft, AnswerRound, AnswerStep, CaptionWorker, Draft, Written};
use crate::config::{CaptionsConfig, Config};
use crate::metrics::Metrics;
use crate::moments::MomentIndexer;
use crate::publish::messages::{Alert, Answer, Caption, MissingSpan, SensorSummary};
use crate::publish::{new_trace_id, KafkaPublisher, Outgoing, RedisState};

/// A live chunk is closed this long after its end even if no later frame came.
const LIVE_GRACE: Duration = Duration::from_secs(1);
/// The `model` field of captions and answers written from observations, before the LLM
/// folder's name.
const MODEL_PREFIX: &str = "video-qa";
/// The `model` field of captions written from frames (the full path), before its folder's name.
const VIDEO_MODEL_PREFIX: &str = "video-llm";

/// Per camera: its open chunk, its motion detector, and whether it is live.
struct CameraState {
    chunks: ChunkBuilder,
    motion: MotionDetector,
    live: bool,
}

/// Why a rule was not added.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("invalid alert rule: {0}")]
    Invalid(String),
    #[error("{0}")]
    Exists(String),
}

/// Handle to the captioner; cheap to clone.
#[derive(Clone)]
pub struct Captioner {
    inner: Arc<Inner>,
}

/// A chunk to caption; with `done`, the caller is told once its captions are published.
struct Job {
    chunk: Chunk,
    done: Option<oneshot::Sender<()>>,
}

/// A question for the captioning thread, which sends its answers back on `steps`.
struct QuestionJob {
    question: String,
    evidence: QuestionEvidence,
    steps: mpsc::UnboundedSender<AnswerStep>,
}

/// Questions waiting for the LLM; more are refused as busy.
const QUESTION_QUEUE: usize = 8;
/// A question without `from` covers this much before `to`.
const DEFAULT_QUESTION_RANGE: chrono::Duration = chrono::Duration::seconds(60);

/// What the publishing task receives, in the order the captioning thread wrote it.
enum ToPublish {
    Caption(Box<Written>),
    /// Everything before this is published: tell the waiting caller.
    Done(oneshot::Sender<()>),
}

struct Inner {
    config: CaptionsConfig,
    cameras: Mutex<HashMap<String, CameraState>>,
    jobs: mpsc::Sender<Job>,
    questions: mpsc::Sender<QuestionJob>,
    kafka: KafkaPublisher,
    answers_topic: String,
    redis: RedisState,
    rules: AlertRules,
    /// Redis hash of the rules added through the API (id → JSON).
    rules_key: String,
    model: String,
    metrics: Metrics,
}

impl Captioner {
    /// Loads the LLM and the tagger (failing early with the missing file named), starts the
    /// captioning thread and the task that publishes what it writes.
    /// With `moments`, every caption also joins the moment index (its chunk's windows).
    pub async fn start(
        service: &Config,
        kafka: KafkaPublisher,
        redis: RedisState,
        moments: Option<MomentIndexer>,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let (config, models) = (&service.captions, &service.models);
        let topics = &service.kafka.topics;
        for task in ["caption", "question"] {
            metrics
                .caption_correction_latency
                .with_label_values(&[task]);
        }
        let rules = AlertRules::default();
        for rule in &service.alerts.rules {
            let compiled = rule.clone().compile().map_err(anyhow::Error::msg)?;
            rules.insert(compiled, true).map_err(anyhow::Error::msg)?;
        }
        let rules_key = format!("{}:alerts:rules", redis.key_prefix());
        load_stored_rules(&redis, &rules_key, &rules).await;
        let llm_dir = CaptionsConfig::model_dir(&config.llm_model, models);
        let qa = GroundedQa::load(&llm_dir, tch::Device::Cpu)?;
        let tagger = ImageTagger::load(&CaptionsConfig::model_dir(&config.tag_model, models))?;
        let model = format!(
            "{MODEL_PREFIX}/{}",
            llm_dir.file_name().unwrap_or_default().to_string_lossy()
        );
        let video = match &config.video_model {
            Some(dir) => {
                let dir = CaptionsConfig::model_dir(dir, models);
                tracing::info!(model = %dir.display(), "captions from frames: vision tower, CCAM, LLM");
                Some((VideoLlm::load(&dir, tch::Device::Cpu)?, dir))
            }
            None => None,
        };
        let caption_model = video.as_ref().map_or_else(
            || model.clone(),
            |(_, dir)| {
                format!(
                    "{VIDEO_MODEL_PREFIX}/{}",
                    dir.file_name().unwrap_or_default().to_string_lossy()
                )
            },
        );
        let (jobs, mut queue) = mpsc::channel::<Job>(config.queue);
        let (questions, mut asked) = mpsc::channel::<QuestionJob>(QUESTION_QUEUE);
        let (written, mut to_publish) = mpsc::unbounded_channel::<ToPublish>();
        let mut worker =
            CaptionWorker::new(qa, video.map(|(video, _)| video), tagger, config.clone());
        let worker_metrics = metrics.clone();
        let worker_rules = rules.clone();
        std::thread::Builder::new()
            .name("argus-captions".into())
            .spawn(move || {
                // A runtime of its own, only to wait on both queues; questions go first, as
                // someone is waiting for the answer.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("the captioning thread's runtime");
                loop {
                    let next = runtime.block_on(async {
                        tokio::select! {
                            biased;
                            Some(question) = asked.recv() => Some(Err(question)),
                            Some(job) = queue.recv() => Some(Ok(job)),
                            else => None,
                        }
                    });
                    match next {
                        None => break,
                        Some(Err(QuestionJob { question, evidence, steps })) => {
                            let result = worker.answer(&question, &evidence, |step| {
                                let _ = steps.send(step);
                            });
                            if let Err(error) = result {
                                tracing::error!(%error, "question not answered");
                                worker_metrics.errors.with_label_values(&["operator"]).inc();
                            }
                        }
                        Some(Ok(Job { chunk, done })) => {
                            let result = worker.caption(&chunk, &worker_rules.snapshot(), |draft| {
                                let _ = written.send(ToPublish::Caption(Box::new(draft)));
                            });
                            if let Err(error) = result {
                                tracing::error!(camera = %chunk.camera, start = %chunk.start, %error, "chunk not captioned");
                                worker_metrics.errors.with_label_values(&["operator"]).inc();
                            }
                            if let Some(done) = done {
                                let _ = written.send(ToPublish::Done(done));
                            }
                        }
                    }
                }
            })?;
        let publisher = Publisher {
            kafka: kafka.clone(),
            topic: topics.captions.clone(),
            alerts_topic: topics.alerts.clone(),
            redis: redis.clone(),
            metrics: metrics.clone(),
            model: caption_model,
            moments,
            keep: config.keep_per_camera,
            first_ids: HashMap::new(),
        };
        tokio::spawn(async move {
            let mut publisher = publisher;
            while let Some(next) = to_publish.recv().await {
                match next {
                    ToPublish::Caption(written) => publisher.publish(*written).await,
                    ToPublish::Done(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        let captioner = Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                cameras: Mutex::new(HashMap::new()),
                jobs,
                questions,
                kafka,
                answers_topic: topics.answers.clone(),
                redis,
                rules,
                rules_key,
                model,
                metrics,
            }),
        };
        tokio::spawn(captioner.clone().close_elapsed_chunks());
        Ok(captioner)
    }

    /// Adds an analysed frame to its camera's chunk; a chunk this frame closes goes to the
    /// captioning thread.
    pub async fn observe(
        &self,
        camera: &str,
        source: &str,
        live: bool,
        wall_time: DateTime<Utc>,
        image: Arc<BgrImage>,
        ocr: &[TextLine],
    ) {
        let closed = {
            let mut cameras = self.inner.cameras.lock().expect("caption cameras lock");
            let state = cameras
                .entry(camera.to_owned())
                .or_insert_with(|| CameraState {
                    chunks: ChunkBuilder::new(camera, source, self.inner.config.chunk_s),
                    motion: MotionDetector::new(MotionConfig::default()),
                    live,
                });
            state.live = live;
            let motion = state.motion.observe(&image).unwrap_or_else(|error| {
                tracing::debug!(camera, %error, "no motion measure");
                Default::default()
            });
            state.chunks.push(ChunkFrame {
                wall_time,
                image,
                ocr: ocr.iter().map(|l| (l.text.clone(), l.score)).collect(),
                motion,
            })
        };
        if let Some(chunk) = closed {
            self.enqueue(chunk, live, None).await;
        }
    }

    /// Captions the camera's open chunk (its recording ended or its stream went away) and
    /// returns once every caption of the camera is published: a recording is finished only
    /// when its captions are out.
    pub async fn flush(&self, camera: &str) {
        let closed = {
            let mut cameras = self.inner.cameras.lock().expect("caption cameras lock");
            cameras
                .remove(camera)
                .and_then(|mut state| state.chunks.flush())
        };
        if let Some(chunk) = closed {
            let (done, published) = oneshot::channel();
            self.enqueue(chunk, false, Some(done)).await;
            let _ = published.await;
        }
    }

    /// A recording's chunk waits for room in the queue (the file can wait); a live chunk
    /// that finds the LLM behind is skipped and counted, so captions stay current.
    async fn enqueue(&self, chunk: Chunk, live: bool, done: Option<oneshot::Sender<()>>) {
        let camera = chunk.camera.clone();
        let job = Job { chunk, done };
        if live {
            if let Err(mpsc::error::TrySendError::Full(job)) = self.inner.jobs.try_send(job) {
                tracing::warn!(camera = %camera, start = %job.chunk.start, "captioning is behind: chunk skipped");
                self.inner
                    .metrics
                    .caption_chunks_skipped
                    .with_label_values(&[&camera])
                    .inc();
            }
        } else if self.inner.jobs.send(job).await.is_err() {
            tracing::error!(camera = %camera, "the captioning thread stopped");
        }
    }

    /// Answers a question about a camera and a time range from its stored chunks; the
    /// answers as published (the first, and its revision when the controller asked for one).
    pub async fn ask(&self, request: QuestionRequest) -> Result<Vec<Answer>, QuestionError> {
        request.validate()?;
        let internal = |e: redis::RedisError| QuestionError::Internal(format!("Redis: {e}"));
        let key = self.captions_key(&request.camera);
        let mut redis = self.inner.redis.connection().await.map_err(internal)?;
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
        let chunk_ms = (self.inner.config.chunk_s * 1000.0) as i64;
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
        self.inner
            .questions
            .try_send(QuestionJob {
                question: request.question,
                evidence,
                steps,
            })
            .map_err(|_| QuestionError::Busy)?;
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
                    self.inner
                        .metrics
                        .caption_correction_latency
                        .with_label_values(&["question"])
                        .observe(round.compute.as_secs_f64());
                    (round, 2)
                }
            };
            let supersedes = answers.last().map(|a| a.message_id);
            let answer = self.answer_message(&asked, sensor.clone(), round, revision, supersedes);
            self.publish_answer(&answer).await;
            answers.push(answer);
        }
        if answers.is_empty() {
            return Err(QuestionError::Internal(
                "the model failed to answer (see the log)".into(),
            ));
        }
        Ok(answers)
    }

    /// The rules in force.
    pub fn alert_rules(&self) -> Vec<AlertRule> {
        self.inner.rules.list()
    }

    /// Adds a rule (kept in Redis so it survives a restart).
    pub async fn add_alert_rule(&self, rule: AlertRule) -> Result<(), RuleError> {
        let json = serde_json::to_string(&rule).expect("rules serialise");
        let compiled = rule.compile().map_err(RuleError::Invalid)?;
        let id = compiled.rule.id.clone();
        self.inner
            .rules
            .insert(compiled, false)
            .map_err(RuleError::Exists)?;
        let mut pipeline = redis::pipe();
        pipeline.hset(&self.inner.rules_key, &id, json);
        self.inner.redis.write_pipeline(pipeline).await;
        tracing::info!(rule = %id, "alert rule added");
        Ok(())
    }

    /// Removes a rule; false when there is none with that id.
    pub async fn remove_alert_rule(&self, id: &str) -> bool {
        if !self.inner.rules.remove(id) {
            return false;
        }
        let mut pipeline = redis::pipe();
        pipeline.hdel(&self.inner.rules_key, id);
        self.inner.redis.write_pipeline(pipeline).await;
        tracing::info!(rule = %id, "alert rule removed");
        true
    }

    /// The camera's newest alerts, newest first.
    pub async fn recent_alerts(
        &self,
        camera: &str,
        limit: usize,
    ) -> redis::RedisResult<Vec<serde_json::Value>> {
        let mut connection = self.inner.redis.connection().await?;
        let stored: Vec<String> = redis::AsyncCommands::lrange(
            &mut connection,
            alerts_key(self.inner.redis.key_prefix(), camera),
            0,
            limit.max(1) as isize - 1,
        )
        .await?;
        Ok(stored
            .iter()
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect())
    }

    fn captions_key(&self, camera: &str) -> String {
        format!("{}:captions:{camera}", self.inner.redis.key_prefix())
    }

    fn count_round(&self, camera: &str, candidates: usize, accepted: bool) {
        let metrics = &self.inner.metrics;
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
            model: self.inner.model.clone(),
            latency_ms: round.compute.as_secs_f64() * 1e3,
            produced_at: Utc::now(),
        }
    }

    /// To the answers topic, and as the camera's latest answer in Redis.
    async fn publish_answer(&self, answer: &Answer) {
        let json = serde_json::to_string(answer).expect("answers serialise");
        let camera = answer.camera_id.as_str();
        let outgoing = Outgoing {
            topic: &self.inner.answers_topic,
            key: camera,
            payload: json.clone(),
            schema_id: Answer::SCHEMA_ID,
            message_id: answer.message_id.to_string(),
            trace_id: new_trace_id(),
        };
        if let Err(error) = self.inner.kafka.publish(outgoing).await {
            tracing::error!(camera, %error, "could not queue an answer for Kafka");
        }
        let mut pipeline = redis::pipe();
        pipeline.set(
            format!("{}:answers:{camera}:latest", self.inner.redis.key_prefix()),
            &json,
        );
        self.inner.redis.write_pipeline(pipeline).await;
        tracing::info!(camera, revision = answer.revision, accepted = answer.accepted, question = %answer.question, text = %answer.text, "answer");
    }

    /// Closes live cameras' chunks whose end is more than [`LIVE_GRACE`] past, four times a
    /// second, so a caption does not wait for the next chunk's first frame.
    async fn close_elapsed_chunks(self) {
        let mut every = tokio::time::interval(Duration::from_millis(250));
        loop {
            every.tick().await;
            let deadline = Utc::now() - chrono::Duration::from_std(LIVE_GRACE).unwrap_or_default();
            let closed: Vec<Chunk> = {
                let mut cameras = self.inner.cameras.lock().expect("caption cameras lock");
                cameras
                    .values_mut()
                    .filter(|s| s.live && s.chunks.open_until().is_some_and(|end| end <= deadline))
                    .filter_map(|s| s.chunks.flush())
                    .collect()
            };
            for chunk in closed {
                self.enqueue(chunk, true, None).await;
            }
        }
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

/// Publishes drafts in the order they were written, linking each revision to its first
/// caption's message id.
struct Publisher {
    kafka: KafkaPublisher,
    /// Captions join the moment index's windows of their chunk.
    moments: Option<MomentIndexer>,
    topic: String,
    alerts_topic: String,
    redis: RedisState,
    metrics: Metrics,
    model: String,
    keep: usize,
    /// (camera, chunk start ms) → the first caption's id, until its revision is out.
    first_ids: HashMap<(String, i64), Uuid>,
}

impl Publisher {
    async fn publish(&mut self, written: Written) {
        let (draft, revision) = match written {
            Written::First(draft) => (draft, 1),
            Written::Revision(draft) => (draft, 2),
            Written::Alert(alert) => return self.publish_alert(alert).await,
        };
        let chunk_key = (draft.camera.clone(), draft.start.timestamp_millis());
        let supersedes = if revision > 1 {
            self.first_ids.remove(&chunk_key)
        } else {
            None
        };
        let camera = draft.camera.clone();
        let metrics = &self.metrics;
        metrics
            .caption_candidates
            .with_label_values(&[&camera])
            .inc_by(draft.candidates as u64);
        if revision == 1 && !draft.accepted {
            metrics
                .caption_corrections
                .with_label_values(&[&camera])
                .inc();
        }
        if revision > 1 {
            metrics
                .caption_correction_latency
                .with_label_values(&["caption"])
                .observe(draft.compute.as_secs_f64());
        }
        let caption = caption_message(draft, revision, supersedes, &self.model);
        if revision == 1 && !caption.accepted {
            self.first_ids.insert(chunk_key, caption.message_id);
        }
        let json = serde_json::to_string(&caption).expect("captions serialise");
        let outgoing = Outgoing {
            topic: &self.topic,
            key: &camera,
            payload: json.clone(),
            schema_id: Caption::SCHEMA_ID,
            message_id: caption.message_id.to_string(),
            trace_id: new_trace_id(),
        };
        if let Err(error) = self.kafka.publish(outgoing).await {
            tracing::error!(camera = %camera, %error, "could not queue a caption for Kafka");
        }
        let start_ms = caption.start.timestamp_millis();
        let key = format!("{}:captions:{camera}", self.redis.key_prefix());
        let mut pipeline = redis::pipe();
        // One entry per chunk: a revision replaces its first caption.
        pipeline
            .atomic()
            .zrembyscore(&key, start_ms, start_ms)
            .ignore()
            .zadd(&key, &json, start_ms)
            .ignore()
            .zremrangebyrank(&key, 0, -(self.keep as isize) - 1)
            .ignore();
        self.redis.write_pipeline(pipeline).await;
        if let Some(moments) = self.moments.as_ref().filter(|_| caption.text != UNKNOWN) {
            moments
                .add_caption(&camera, caption.start, caption.end, &caption.text)
                .await;
        }
        metrics
            .captions_published
            .with_label_values(&[
                camera.as_str(),
                if revision > 1 { "revision" } else { "first" },
            ])
            .inc();
        tracing::info!(camera = %camera, start = %caption.start, revision, accepted = caption.accepted, text = %caption.text, "caption");
    }
}

impl Publisher {
    /// To the alerts topic, and the camera's newest alerts in Redis.
    async fn publish_alert(&self, draft: AlertDraft) {
        use base64::Engine as _;
        let alert = Alert {
            schema_version: Alert::SCHEMA_VERSION,
            message_id: Uuid::now_v7(),
            camera_id: draft.camera,
            source: draft.source,
            rule_id: draft.rule_id,
            kind: draft.kind.to_owned(),
            start: draft.start,
            end: draft.end,
            evidence: draft.evidence,
            answer: draft.answer,
            thumbnail_jpeg: draft
                .thumbnail
                .map(|jpeg| base64::engine::general_purpose::STANDARD.encode(jpeg)),
            produced_at: Utc::now(),
        };
        let json = serde_json::to_string(&alert).expect("alerts serialise");
        let camera = alert.camera_id.as_str();
        let outgoing = Outgoing {
            topic: &self.alerts_topic,
            key: camera,
            payload: json.clone(),
            schema_id: Alert::SCHEMA_ID,
            message_id: alert.message_id.to_string(),
            trace_id: new_trace_id(),
        };
        if let Err(error) = self.kafka.publish(outgoing).await {
            tracing::error!(camera, %error, "could not queue an alert for Kafka");
        }
        let key = alerts_key(self.redis.key_prefix(), camera);
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .lpush(&key, &json)
            .ignore()
            .ltrim(&key, 0, KEPT_ALERTS - 1)
            .ignore();
        self.redis.write_pipeline(pipeline).await;
        self.metrics
            .alerts_fired
            .with_label_values(&[camera, alert.rule_id.as_str()])
            .inc();
        tracing::warn!(camera, rule = %alert.rule_id, kind = %alert.kind, start = %alert.start, "alert");
    }
}

/// Alerts kept per camera in Redis (the newest).
const KEPT_ALERTS: isize = 1000;

fn alerts_key(prefix: &str, camera: &str) -> String {
    format!("{prefix}:alerts:camera:{camera}")
}

/// Adds the rules stored through the API to `rules` (configured ones win on the same id).
async fn load_stored_rules(redis: &RedisState, key: &str, rules: &AlertRules) {
    let stored: redis::RedisResult<HashMap<String, String>> = async {
        let mut connection = redis.connection().await?;
        redis::AsyncCommands::hgetall(&mut connection, key).await
    }
    .await;
    match stored {
        Ok(stored) => {
            for (id, json) in stored {
                match serde_json::from_str::<AlertRule>(&json)
                    .map_err(|e| e.to_string())
                    .and_then(AlertRule::compile)
                {
                    Ok(rule) => {
                        let _ = rules.insert(rule, false);
                    }
                    Err(error) => tracing::warn!(rule = %id, %error, "stored alert rule skipped"),
                }
            }
        }
        Err(error) => {
            tracing::error!(%error, "alert rules added through the API could not be loaded from Redis")
        }
    }
}

fn caption_message(draft: Draft, revision: u32, supersedes: Option<Uuid>, model: &str) -> Caption {
    let produced_at = Utc::now();
    Caption {
        schema_version: Caption::SCHEMA_VERSION,
        message_id: Uuid::now_v7(),
        camera_id: draft.camera,
        source: draft.source,
        start: draft.start,
        end: draft.end,
        text: draft.text,
        revision,
        supersedes,
        accepted: draft.accepted,
        sensor: draft.sensor,
        key_frames: draft.key_frames,
        evidence: draft.evidence,
        model: model.to_owned(),
        latency_ms: draft.compute.as_secs_f64() * 1e3,
        produced_at,
    }
}

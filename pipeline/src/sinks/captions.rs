//! The captions sink: cuts each camera's analysed frames into chunks, has the captioning
//! model caption each chunk that closes, and publishes what it writes.
//!
//! Every analysed frame joins its camera's open chunk ([`crate::captions::chunk`]) with its
//! OCR lines and its motion (computed here, per camera). When a chunk closes (the next
//! chunk's first frame, the clock for live cameras, or the end of a recording) it goes to the
//! captioning model ([`crate::operators::captioning`]). The first caption and its revision go
//! to `kafka.topics.captions` (the revision with `revision: 2` and `supersedes`) and to Redis,
//! where each camera keeps its newest captions by chunk start (`{prefix}:captions:{camera}`),
//! with the chunk's clip link when the camera has video;
//! alerts the chunk fired go to `kafka.topics.alerts` and Redis.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argus_operators::motion::{MotionConfig, MotionDetector};
use argus_operators::video_qa::UNKNOWN;
use async_trait::async_trait;
use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::moment_index::MomentIndexer;
use crate::captions::alerts::{AlertRules, Cooldowns};
use crate::captions::captions_key;
use crate::captions::chunk::{Chunk, ChunkBuilder, ChunkFrame};
use crate::config::{CaptionsConfig, Config};
use crate::messages::{Alert, Caption};
use crate::metrics::Metrics;
use crate::objects::FrameObjects;
use crate::operators::captioning::{AlertDraft, CaptionJob, CaptionModel, Draft, Written};
use crate::operators::worker::Pending;
use crate::publish::{new_trace_id, AlertPublisher, KafkaPublisher, Outgoing, RedisState};
use crate::recordings::ClipLinks;
use crate::stream::{AnalysedFrame, FinishedStream, FrameSink, OpenedStream};

/// Frames' objects kept for the next analysed frame, at most (a minute at 5 fps).
const MAX_PENDING_OBJECTS: usize = 300;

/// A live chunk is closed this long after its end even if no later frame came.
const LIVE_GRACE: Duration = Duration::from_secs(1);

/// Per camera: its open chunk, its motion detector, and whether it is live.
struct CameraState {
    chunks: ChunkBuilder,
    motion: MotionDetector,
    live: bool,
    /// What the objects stage tracked since the last analysed frame: it joins the next one.
    objects: Vec<Arc<FrameObjects>>,
}

/// What the publishing task receives, in the order the captioning model wrote it.
enum ToPublish {
    Caption(Box<Written>),
    /// Everything before this is published: tell the waiting caller.
    Done(oneshot::Sender<()>),
}

/// Cheap to clone; one per process.
#[derive(Clone)]
pub struct CaptionSink {
    inner: Arc<Inner>,
}

struct Inner {
    config: CaptionsConfig,
    cameras: Mutex<HashMap<String, CameraState>>,
    model: CaptionModel,
    rules: AlertRules,
    to_publish: mpsc::UnboundedSender<ToPublish>,
    metrics: Metrics,
}

impl CaptionSink {
    /// Starts the task that publishes what the model writes (named `model_name` in captions)
    /// and the clock that closes live chunks. With `moments`, every caption also joins the
    /// moment index (its chunk's windows). Captions of cameras with video carry their
    /// chunk's clip link (`clip_links`).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        service: &Config,
        model: CaptionModel,
        model_name: String,
        rules: AlertRules,
        alerts: AlertPublisher,
        kafka: KafkaPublisher,
        redis: RedisState,
        moments: Option<MomentIndexer>,
        clip_links: ClipLinks,
        metrics: Metrics,
    ) -> Self {
        let config = &service.captions;
        metrics
            .caption_correction_latency
            .with_label_values(&["caption"]);
        let (to_publish, mut published) = mpsc::unbounded_channel::<ToPublish>();
        let mut publisher = Publisher {
            topic: service.kafka.topics.captions.clone(),
            alerts,
            rules: rules.clone(),
            cooldowns: Cooldowns::default(),
            kafka,
            redis,
            metrics: metrics.clone(),
            model: model_name,
            moments,
            keep: config.keep_per_camera,
            first_ids: HashMap::new(),
            clip_links,
        };
        tokio::spawn(async move {
            while let Some(next) = published.recv().await {
                match next {
                    ToPublish::Caption(written) => publisher.publish(*written).await,
                    ToPublish::Done(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        let sink = Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                cameras: Mutex::new(HashMap::new()),
                model,
                rules,
                to_publish,
                metrics,
            }),
        };
        tokio::spawn(sink.clone().close_elapsed_chunks());
        sink
    }

    /// Adds an analysed frame to its camera's chunk; a chunk this frame closes goes to the
    /// captioning model.
    async fn add_frame(&self, frame: &AnalysedFrame) {
        let (camera, source, live) = (&*frame.camera, frame.source.as_str(), frame.live);
        let closed = {
            let mut cameras = self.inner.cameras.lock().expect("caption cameras lock");
            let state = cameras
                .entry(camera.to_owned())
                .or_insert_with(|| CameraState {
                    chunks: ChunkBuilder::new(camera, source, self.inner.config.chunk_s),
                    motion: MotionDetector::new(MotionConfig::default()),
                    live,
                    objects: Vec::new(),
                });
            state.live = live;
            state.objects.extend(frame.objects.clone());
            let Some(analysis) = &frame.analysis else {
                // While OCR keeps failing, no analysed frame takes these: keep the newest.
                let excess = state.objects.len().saturating_sub(MAX_PENDING_OBJECTS);
                state.objects.drain(..excess);
                return;
            };
            let objects = std::mem::take(&mut state.objects);
            state.chunks.push(ChunkFrame::observe(
                frame.wall_time,
                frame.image.clone(),
                &analysis.ocr,
                objects,
                &mut state.motion,
            ))
        };
        if let Some(chunk) = closed {
            self.enqueue(chunk, live).await;
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
            if let Some(captioned) = self.enqueue(chunk, false).await {
                let _ = captioned.await;
                // Everything written for the chunk is queued for publishing ahead of this.
                let (done, published) = oneshot::channel();
                if self.inner.to_publish.send(ToPublish::Done(done)).is_ok() {
                    let _ = published.await;
                }
            }
        }
    }

    /// A recording's chunk waits for room in the queue (the file can wait); a live chunk
    /// that finds the LLM behind is skipped and counted, so captions stay current. The
    /// receiver tells when the chunk's captions are all written.
    async fn enqueue(&self, chunk: Chunk, live: bool) -> Option<Pending<()>> {
        let (camera, start) = (chunk.camera.clone(), chunk.start);
        let to_publish = self.inner.to_publish.clone();
        let job = CaptionJob::Chunk {
            chunk,
            rules: self.inner.rules.clone(),
            hand_over: Box::new(move |written| {
                let _ = to_publish.send(ToPublish::Caption(Box::new(written)));
            }),
        };
        if live {
            let queued = self.inner.model.try_caption(job);
            if queued.is_none() {
                tracing::warn!(camera = %camera, start = %start, "captioning is behind: chunk skipped");
                self.inner
                    .metrics
                    .caption_chunks_skipped
                    .with_label_values(&[&camera])
                    .inc();
            }
            queued
        } else {
            match self.inner.model.caption(job).await {
                Ok(queued) => Some(queued),
                Err(error) => {
                    tracing::error!(camera = %camera, %error, "chunk not captioned");
                    None
                }
            }
        }
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
                self.enqueue(chunk, true).await;
            }
        }
    }
}

#[async_trait]
impl FrameSink for CaptionSink {
    async fn open(&self, stream: &OpenedStream<'_>) {
        // From the start, at 0: dashboards and the captions-behind alert see the series
        // before the first chunk closes.
        let metrics = &self.inner.metrics;
        let camera = stream.camera;
        for counter in [
            &metrics.caption_candidates,
            &metrics.caption_corrections,
            &metrics.caption_chunks_skipped,
        ] {
            counter.with_label_values(&[camera]);
        }
        for revision in ["first", "revision"] {
            metrics
                .captions_published
                .with_label_values(&[camera, revision]);
        }
    }

    async fn observe(&self, frame: &AnalysedFrame) {
        self.add_frame(frame).await;
    }

    async fn finish(&self, finished: &FinishedStream<'_>) {
        self.flush(finished.camera).await;
    }
}

/// Publishes drafts in the order they were written, linking each revision to its first
/// caption's message id.
struct Publisher {
    kafka: KafkaPublisher,
    /// Captions join the moment index's windows of their chunk.
    moments: Option<MomentIndexer>,
    topic: String,
    alerts: AlertPublisher,
    /// The rules in force, for each alert's cooldown.
    rules: AlertRules,
    cooldowns: Cooldowns,
    redis: RedisState,
    metrics: Metrics,
    model: String,
    keep: usize,
    /// (camera, chunk start ms) → the first caption's id, until its revision is out.
    first_ids: HashMap<(String, i64), Uuid>,
    /// Captions and alerts link to the clip of their chunk.
    clip_links: ClipLinks,
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
        let mut caption = caption_message(draft, revision, supersedes, &self.model);
        caption.clip = self
            .clip_links
            .link(&caption.camera_id, caption.start, caption.end);
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
        let key = captions_key(self.redis.key_prefix(), &camera);
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
    /// Publishes an alert unless its rule fired on the camera within its cooldown (an alert
    /// whose rule was removed while its chunk was checked is published: it fired).
    async fn publish_alert(&mut self, draft: AlertDraft) {
        use base64::Engine as _;
        if let Some(rule) = self.rules.get(&draft.rule_id) {
            if !self.cooldowns.fire(&rule.rule, &draft.camera, draft.start) {
                tracing::debug!(camera = %draft.camera, rule = %draft.rule_id, start = %draft.start, "alert within the rule's cooldown");
                self.alerts.suppressed(&draft.camera, &draft.rule_id);
                return;
            }
        }
        let clip = self.clip_links.link(&draft.camera, draft.start, draft.end);
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
            track_ids: None,
            answer: draft.answer,
            thumbnail_jpeg: draft
                .thumbnail
                .map(|jpeg| base64::engine::general_purpose::STANDARD.encode(jpeg)),
            produced_at: Utc::now(),
            trigger: Some(draft.trigger),
            reason: Some(draft.reason),
            confidence: draft.confidence,
            decided_by: draft.decided_by,
            clip,
        };
        self.alerts.publish(&alert).await;
    }
}

/// A draft as the captions topic and Redis carry it.
pub fn caption_message(
    draft: Draft,
    revision: u32,
    supersedes: Option<Uuid>,
    model: &str,
) -> Caption {
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
        // Set by the publisher, which knows which cameras have video.
        clip: None,
    }
}

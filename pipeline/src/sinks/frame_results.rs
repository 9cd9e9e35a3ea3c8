//! The frame-results sink: every analysed frame as a versioned message on
//! `kafka.topics.frame_results` (keyed by camera) and as the camera's latest result in Redis;
//! every stream state change and gap on `kafka.topics.stream_events`; and each camera's
//! newest gaps in Redis ([`gaps_key`]), which the operator timeline shows.

use async_trait::async_trait;
use chrono::Utc;

use crate::config::Config;
use crate::messages::{self, FrameInfo, FrameResult};
use crate::publish::{new_trace_id, KafkaPublisher, Outgoing, RedisState};
use crate::stream::{AnalysedFrame, FrameSink, StreamEvent, StreamEventKind};

/// Gaps kept per camera in Redis (the newest).
pub const KEPT_GAPS: isize = 1000;

/// A camera's newest gaps (outages): a sorted set of `argus.stream-event.v1` gap events as
/// published, scored by the gap's end (Unix ms), so the gaps that reach into a time range
/// are one `ZRANGEBYSCORE` from the range's start, however long ago they began.
pub fn gaps_key(prefix: &str, camera: &str) -> String {
    format!("{prefix}:streams:{camera}:gaps")
}

pub struct FrameResults {
    kafka: KafkaPublisher,
    redis: RedisState,
    results_topic: String,
    events_topic: String,
}

impl FrameResults {
    pub fn new(config: &Config, kafka: KafkaPublisher, redis: RedisState) -> Self {
        Self {
            kafka,
            redis,
            results_topic: config.kafka.topics.frame_results.clone(),
            events_topic: config.kafka.topics.stream_events.clone(),
        }
    }
}

#[async_trait]
impl FrameSink for FrameResults {
    async fn observe(&self, frame: &AnalysedFrame) {
        // Frames sampled only for the objects stage have no per-frame results.
        let Some(analysis) = &frame.analysis else {
            return;
        };
        let camera = &*frame.camera;
        let ocr = analysis.ocr.clone();
        let text = ocr
            .iter()
            .map(|line| line.text.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let result = FrameResult {
            schema_version: FrameResult::SCHEMA_VERSION,
            message_id: uuid::Uuid::now_v7(),
            camera_id: camera.to_owned(),
            source: frame.source.clone(),
            frame: FrameInfo {
                sequence: frame.sequence,
                pts_ns: frame.pts.map(|pts| pts.as_nanos() as u64),
                wall_time: frame.wall_time,
                clock: serde_json::to_value(frame.clock)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                width: frame.image.width(),
                height: frame.image.height(),
            },
            operator: frame.operator.into(),
            ocr,
            text,
            operator_latency_ms: analysis.latency.as_secs_f64() * 1e3,
            produced_at: Utc::now(),
        };
        let json = serde_json::to_string(&result).expect("frame results serialise");
        tracing::debug!(stream = %camera, frame = frame.sequence, text = %result.text, "frame analysed");
        let outgoing = Outgoing {
            topic: &self.results_topic,
            key: camera,
            payload: json.clone(),
            schema_id: FrameResult::SCHEMA_ID,
            message_id: result.message_id.to_string(),
            trace_id: new_trace_id(),
        };
        if let Err(error) = self.kafka.publish(outgoing).await {
            tracing::error!(stream = %camera, %error, "could not queue the result for Kafka");
        }
        self.redis.put_latest(camera, &json).await;
    }

    async fn event(&self, event: &StreamEvent) {
        let message = messages::StreamEvent {
            schema_version: messages::StreamEvent::SCHEMA_VERSION,
            message_id: uuid::Uuid::now_v7(),
            camera_id: event.camera.clone(),
            source: event.source.clone(),
            event: match &event.kind {
                StreamEventKind::State { state, error } => messages::StreamEventKind::State {
                    state: state.as_str().into(),
                    error: error.clone(),
                },
                StreamEventKind::Gap { start, end, reason } => messages::StreamEventKind::Gap {
                    start: *start,
                    end: *end,
                    reason: reason.clone(),
                },
            },
            at: event.at,
        };
        let payload = serde_json::to_string(&message).expect("stream events serialise");
        // Kafka keeps every event; Redis keeps the gaps for the timeline, which has no Kafka
        // consumer of its own.
        if let StreamEventKind::Gap { end, .. } = &event.kind {
            let key = gaps_key(self.redis.key_prefix(), &event.camera);
            let mut pipeline = redis::pipe();
            pipeline
                .atomic()
                .zadd(&key, &payload, end.timestamp_millis())
                .ignore()
                .zremrangebyrank(&key, 0, -KEPT_GAPS - 1)
                .ignore();
            self.redis.write_pipeline(pipeline).await;
        }
        let outgoing = Outgoing {
            topic: &self.events_topic,
            key: &event.camera,
            payload,
            schema_id: messages::StreamEvent::SCHEMA_ID,
            message_id: message.message_id.to_string(),
            trace_id: new_trace_id(),
        };
        if let Err(error) = self.kafka.publish(outgoing).await {
            tracing::error!(stream = %event.camera, %error, "could not queue a stream event for Kafka");
        }
    }
}

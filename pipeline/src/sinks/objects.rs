//! The objects sink: publishes what the objects stage (`operators::objects`) tracked in each
//! frame it ran the detector on, and what the tracks did.
//!
//! - `kafka.topics.objects`: each detected frame's tracks (`schemas/objects.v1.json`);
//! - `kafka.topics.object_events`: tracks started and ended, zones entered and left, dwell
//!   exceeded, lines crossed (`schemas/object-event.v1.json`);
//! - Redis: the camera's latest tracks (`{prefix}:objects:{camera}:latest`) and its zone
//!   counts (`{prefix}:objects:{camera}:zones`).

use async_trait::async_trait;
use chrono::Utc;
use uuid::Uuid;

use crate::config::Config;
use crate::messages::{ObjectEvent, ObjectsMessage, TrackedObject};
use crate::metrics::Metrics;
use crate::objects::ObjectHappening;
use crate::operators::detector::DETECTOR_OPERATOR;
use crate::publish::{new_trace_id, KafkaPublisher, Outgoing, RedisState};
use crate::stream::{AnalysedFrame, FinishedStream, FrameSink};

pub struct ObjectSink {
    kafka: KafkaPublisher,
    redis: RedisState,
    objects_topic: String,
    events_topic: String,
    metrics: Metrics,
}

impl ObjectSink {
    pub fn new(
        config: &Config,
        kafka: KafkaPublisher,
        redis: RedisState,
        metrics: Metrics,
    ) -> Self {
        Self {
            kafka,
            redis,
            objects_topic: config.kafka.topics.objects.clone(),
            events_topic: config.kafka.topics.object_events.clone(),
            metrics,
        }
    }

    async fn publish_event(&self, camera: &str, happening: &ObjectHappening) {
        let message = ObjectEvent {
            schema_version: ObjectEvent::SCHEMA_VERSION,
            message_id: Uuid::now_v7(),
            camera_id: camera.to_owned(),
            track_id: happening.object.track_id,
            class: happening.object.class.to_owned(),
            event: happening.kind.clone(),
            at: happening.at,
            produced_at: Utc::now(),
        };
        self.metrics
            .object_events
            .with_label_values(&[camera, message.event.name()])
            .inc();
        tracing::debug!(
            camera,
            track = message.track_id,
            kind = message.event.name(),
            "object event"
        );
        let outgoing = Outgoing {
            topic: &self.events_topic,
            key: camera,
            payload: serde_json::to_string(&message).expect("object events serialise"),
            schema_id: ObjectEvent::SCHEMA_ID,
            message_id: message.message_id.to_string(),
            trace_id: new_trace_id(),
        };
        if let Err(error) = self.kafka.publish(outgoing).await {
            tracing::error!(camera, %error, "could not queue an object event for Kafka");
        }
    }
}

#[async_trait]
impl FrameSink for ObjectSink {
    async fn observe(&self, frame: &AnalysedFrame) {
        let Some(objects) = &frame.objects else {
            return;
        };
        let camera = &*frame.camera;
        // Frames the detector skipped (nothing moved) changed nothing to publish.
        if objects.detected {
            let message = ObjectsMessage {
                schema_version: ObjectsMessage::SCHEMA_VERSION,
                message_id: Uuid::now_v7(),
                camera_id: camera.to_owned(),
                source: frame.source.clone(),
                wall_time: frame.wall_time,
                sequence: frame.sequence,
                width: frame.image.width(),
                height: frame.image.height(),
                objects: (objects.tracks.iter())
                    .map(|object| TrackedObject {
                        track_id: object.track_id,
                        class: object.class.to_owned(),
                        score: object.score,
                        bbox: object.bbox,
                        first_seen: object.first_seen,
                        colour: object.colour.map(str::to_owned),
                    })
                    .collect(),
                detector: DETECTOR_OPERATOR.to_owned(),
                produced_at: Utc::now(),
            };
            let json = serde_json::to_string(&message).expect("objects serialise");
            let outgoing = Outgoing {
                topic: &self.objects_topic,
                key: camera,
                payload: json.clone(),
                schema_id: ObjectsMessage::SCHEMA_ID,
                message_id: message.message_id.to_string(),
                trace_id: new_trace_id(),
            };
            if let Err(error) = self.kafka.publish(outgoing).await {
                tracing::error!(camera, %error, "could not queue objects for Kafka");
            }
            let prefix = self.redis.key_prefix();
            let mut pipeline = redis::pipe();
            pipeline.set(format!("{prefix}:objects:{camera}:latest"), &json);
            if !objects.zone_counts.is_empty() {
                pipeline.hset_multiple(
                    format!("{prefix}:objects:{camera}:zones"),
                    &objects.zone_counts,
                );
            }
            self.redis.write_pipeline(pipeline).await;
        }
        for happening in &objects.events {
            self.publish_event(camera, happening).await;
        }
    }

    async fn finish(&self, finished: &FinishedStream<'_>) {
        for happening in finished.object_events {
            self.publish_event(finished.camera, happening).await;
        }
    }
}

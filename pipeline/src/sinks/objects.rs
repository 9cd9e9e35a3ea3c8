//! The objects sink: publishes what the objects stage (`operators::objects`) tracked in each
//! frame it ran the detector on, and what the tracks did.
//!
//! - `kafka.topics.objects`: each detected frame's tracks (`schemas/objects.v1.json`);
//! - `kafka.topics.object_events`: tracks started and ended, zones entered and left, dwell
//!   exceeded, lines crossed (`schemas/object-event.v1.json`), with a clip link when the
//!   camera has video;
//! - Redis: the camera's latest tracks (`{prefix}:objects:{camera}:latest`) and its zone
//!   counts (`{prefix}:objects:{camera}:zones`);
//! - Redis, the track store count questions are answered from (`objects::tracks`): each
//!   track as it ended, by last-seen time (the newest `objects.keep_tracks_per_camera`), and
//!   the live tracks as of the latest detected frame.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::Config;
use crate::messages::{ObjectEvent, ObjectEventKind, ObjectsMessage, TrackedObject};
use crate::metrics::Metrics;
use crate::objects::tracks::{ended_tracks_key, live_tracks_key, TrackRecord, TrackRecorder};
use crate::objects::ObjectHappening;
use crate::operators::detector::DETECTOR_OPERATOR;
use crate::publish::{new_trace_id, KafkaPublisher, Outgoing, RedisState};
use crate::recordings::ClipLinks;
use crate::stream::{AnalysedFrame, FinishedStream, FrameSink};

/// An event's clip: this long before and after it, enough to see what led to it.
const EVENT_CLIP_MARGIN: chrono::Duration = chrono::Duration::seconds(5);
/// An ended track's clip: its life, and this much before and after.
const TRACK_CLIP_MARGIN: chrono::Duration = chrono::Duration::seconds(1);

/// The span an event's clip shows: around the instant it happened, or a track's life (its
/// last `max_clip` when longer, to stay within what `/api/v1/clips` serves).
fn clip_span(
    happening: &ObjectHappening,
    max_clip: chrono::Duration,
) -> (DateTime<Utc>, DateTime<Utc>) {
    match &happening.kind {
        ObjectEventKind::TrackEnded { first_seen } => {
            let end = happening.at + TRACK_CLIP_MARGIN;
            ((*first_seen - TRACK_CLIP_MARGIN).max(end - max_clip), end)
        }
        _ => (
            happening.at - EVENT_CLIP_MARGIN,
            happening.at + EVENT_CLIP_MARGIN,
        ),
    }
}

pub struct ObjectSink {
    kafka: KafkaPublisher,
    redis: RedisState,
    objects_topic: String,
    events_topic: String,
    keep_tracks: usize,
    /// Per camera, its live tracks' paths. A camera's frames come in order from its own
    /// task, and the lock is never held across a write.
    recorders: Mutex<HashMap<String, TrackRecorder>>,
    metrics: Metrics,
    clip_links: ClipLinks,
    /// `record.max_clip_s`: a long track's clip is its last stretch of this length.
    max_clip: chrono::Duration,
}

impl ObjectSink {
    pub fn new(
        config: &Config,
        kafka: KafkaPublisher,
        redis: RedisState,
        metrics: Metrics,
        clip_links: ClipLinks,
    ) -> Self {
        Self {
            kafka,
            redis,
            objects_topic: config.kafka.topics.objects.clone(),
            events_topic: config.kafka.topics.object_events.clone(),
            keep_tracks: config.objects.keep_tracks_per_camera,
            recorders: Mutex::default(),
            metrics,
            clip_links,
            max_clip: chrono::Duration::milliseconds((config.record.max_clip_s * 1e3) as i64),
        }
    }

    /// Adds the ended tracks to the camera's track store, bounded to the newest
    /// `keep_tracks`; with `live`, replaces its live tracks.
    fn store_tracks(
        &self,
        pipeline: &mut redis::Pipeline,
        camera: &str,
        ended: &[TrackRecord],
        live: Option<&[TrackRecord]>,
    ) {
        let prefix = self.redis.key_prefix();
        if !ended.is_empty() {
            let key = ended_tracks_key(prefix, camera);
            let members: Vec<(i64, String)> = ended
                .iter()
                .map(|record| {
                    let json = serde_json::to_string(record).expect("track records serialise");
                    (record.last_seen.timestamp_millis(), json)
                })
                .collect();
            pipeline
                .zadd_multiple(&key, &members)
                .ignore()
                .zremrangebyrank(&key, 0, -(self.keep_tracks as isize) - 1)
                .ignore();
        }
        if let Some(live) = live {
            let key = live_tracks_key(prefix, camera);
            if live.is_empty() {
                pipeline.del(key).ignore();
            } else {
                let json = serde_json::to_string(live).expect("track records serialise");
                pipeline.set(key, json).ignore();
            }
        }
    }

    async fn publish_event(&self, camera: &str, happening: &ObjectHappening) {
        let (clip_start, clip_end) = clip_span(happening, self.max_clip);
        let message = ObjectEvent {
            schema_version: ObjectEvent::SCHEMA_VERSION,
            message_id: Uuid::now_v7(),
            camera_id: camera.to_owned(),
            track_id: happening.object.track_id,
            class: happening.object.class.to_owned(),
            event: happening.kind.clone(),
            at: happening.at,
            produced_at: Utc::now(),
            clip: self.clip_links.link(camera, clip_start, clip_end),
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
        let (ended, live) = {
            let mut recorders = self.recorders.lock().expect("track recorders lock");
            let recorder = recorders.entry(camera.to_owned()).or_default();
            let ended = recorder.observe(objects, frame.wall_time);
            (ended, objects.detected.then(|| recorder.live()))
        };
        let mut pipeline = redis::pipe();
        pipeline.atomic();
        self.store_tracks(&mut pipeline, camera, &ended, live.as_deref());
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
            pipeline.set(format!("{prefix}:objects:{camera}:latest"), &json);
            // Replaced whole, in one transaction: a zone removed through the API loses its
            // count too, and readers never see the hash half written.
            let zones = format!("{prefix}:objects:{camera}:zones");
            pipeline.del(&zones).ignore();
            if !objects.zone_counts.is_empty() {
                pipeline
                    .hset_multiple(&zones, &objects.zone_counts)
                    .ignore();
            }
        }
        if !pipeline.is_empty() {
            self.redis.write_pipeline(pipeline).await;
        }
        for happening in &objects.events {
            self.publish_event(camera, happening).await;
        }
    }

    async fn finish(&self, finished: &FinishedStream<'_>) {
        let camera = finished.camera;
        let recorder = self
            .recorders
            .lock()
            .expect("track recorders lock")
            .remove(camera);
        // The tracks still live end with the stream: none is live any more.
        let ended = recorder.unwrap_or_default().end(finished.object_events);
        let mut pipeline = redis::pipe();
        self.store_tracks(&mut pipeline, camera, &ended, Some(&[]));
        self.redis.write_pipeline(pipeline).await;
        for happening in finished.object_events {
            self.publish_event(finished.camera, happening).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::SeenObject;

    fn happening(kind: ObjectEventKind, at: DateTime<Utc>) -> ObjectHappening {
        ObjectHappening {
            object: SeenObject {
                track_id: 1,
                class: "person",
                score: 0.9,
                bbox: [0.0, 0.0, 0.1, 0.1],
                first_seen: at,
                colour: None,
            },
            at,
            kind,
        }
    }

    #[test]
    fn an_event_clip_shows_around_it_and_a_track_clip_its_life_within_the_limit() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let s = chrono::Duration::seconds;
        let max = s(600);
        let zone = ObjectEventKind::ZoneEntered {
            zone: "dock".into(),
        };
        assert_eq!(clip_span(&happening(zone, at), max), (at - s(5), at + s(5)));
        let ended = |first_seen| ObjectEventKind::TrackEnded { first_seen };
        assert_eq!(
            clip_span(&happening(ended(at - s(30)), at), max),
            (at - s(31), at + s(1))
        );
        // An hour-long track: its last ten minutes.
        assert_eq!(
            clip_span(&happening(ended(at - s(3600)), at), max),
            (at + s(1) - max, at + s(1))
        );
    }
}

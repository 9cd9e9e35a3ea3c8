//! The objects sink: detects people and vehicles in each camera's frames (at most
//! `objects.fps`, and only where something moved), tracks them, turns their moves into zone
//! and line events, and publishes both.
//!
//! - `kafka.topics.objects`: each detected frame's tracks (`schemas/objects.v1.json`);
//! - `kafka.topics.object_events`: tracks started and ended, zones entered and left, dwell
//!   exceeded, lines crossed (`schemas/object-event.v1.json`);
//! - Redis: the camera's latest tracks (`{prefix}:objects:{camera}:latest`) and its zone
//!   counts (`{prefix}:objects:{camera}:zones`).
//!
//! A frame where less than `objects.min_motion` of the view changed since the last detection
//! is not sent to the detector, as Frigate does: the tracks are kept where they were, so a
//! parked car stays one track and raises nothing while it stands.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use argus_operators::detection::COCO_CLASSES;
use argus_operators::motion::{MotionConfig, MotionDetector};
use argus_operators::tracking::{Track, TrackInput, Tracker};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::{Config, ObjectsConfig};
use crate::messages::{ObjectEvent, ObjectEventKind, ObjectsMessage, TrackedObject};
use crate::metrics::Metrics;
use crate::objects::zones::{ground_point, Geometry, GeometryEvent};
use crate::operators::detector::{ObjectDetector, DETECTOR_OPERATOR};
use crate::publish::{new_trace_id, KafkaPublisher, Outgoing, RedisState};
use crate::stream::{AnalysedFrame, FrameSink};

/// One camera's tracker, zones and lines, and motion reference.
struct CameraObjects {
    tracker: Tracker,
    geometry: Geometry,
    motion: MotionDetector,
    /// The frame time of the last detection.
    last_detection: Option<DateTime<Utc>>,
    /// The frame times that track times (seconds) count from.
    origin: DateTime<Utc>,
}

pub struct ObjectSink {
    detector: ObjectDetector,
    config: ObjectsConfig,
    /// Per camera, locked only by that camera's stream task (its frames come in order), so
    /// one camera waiting for the detector never holds up another: their frames can share a
    /// batch.
    cameras: Mutex<HashMap<String, Arc<tokio::sync::Mutex<CameraObjects>>>>,
    kafka: KafkaPublisher,
    redis: RedisState,
    objects_topic: String,
    events_topic: String,
    metrics: Metrics,
}

impl ObjectSink {
    pub fn new(
        config: &Config,
        detector: ObjectDetector,
        kafka: KafkaPublisher,
        redis: RedisState,
        metrics: Metrics,
    ) -> Self {
        Self {
            detector,
            config: config.objects.clone(),
            cameras: Mutex::new(HashMap::new()),
            kafka,
            redis,
            objects_topic: config.kafka.topics.objects.clone(),
            events_topic: config.kafka.topics.object_events.clone(),
            metrics,
        }
    }

    fn camera_state(&self, camera: &str, origin: DateTime<Utc>) -> CameraObjects {
        CameraObjects {
            tracker: Tracker::new(self.config.tracking.clone(), self.config.fps),
            geometry: Geometry::new(
                (self.config.zones.iter())
                    .filter(|zone| zone.camera == camera)
                    .cloned()
                    .collect(),
                (self.config.lines.iter())
                    .filter(|line| line.camera == camera)
                    .cloned()
                    .collect(),
            ),
            motion: MotionDetector::new(MotionConfig::default()),
            last_detection: None,
            origin,
        }
    }

    async fn publish_event(
        &self,
        camera: &str,
        track: &Track,
        at: DateTime<Utc>,
        event: ObjectEventKind,
    ) {
        let message = ObjectEvent {
            schema_version: ObjectEvent::SCHEMA_VERSION,
            message_id: Uuid::now_v7(),
            camera_id: camera.to_owned(),
            track_id: track.id,
            class: class_name(track.class).to_owned(),
            event,
            at,
            produced_at: Utc::now(),
        };
        self.metrics
            .object_events
            .with_label_values(&[camera, message.event.name()])
            .inc();
        tracing::debug!(
            camera,
            track = track.id,
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

fn class_name(class: usize) -> &'static str {
    COCO_CLASSES.get(class).copied().unwrap_or("object")
}

/// Seconds of frame time since `origin`.
fn seconds(origin: DateTime<Utc>, at: DateTime<Utc>) -> f64 {
    (at - origin).num_microseconds().unwrap_or(0) as f64 / 1e6
}

fn time_at(origin: DateTime<Utc>, seconds: f64) -> DateTime<Utc> {
    origin + chrono::Duration::microseconds((seconds * 1e6) as i64)
}

/// A track's box in fractions of the frame.
fn normalised(track: &Track, width: f32, height: f32) -> [f32; 4] {
    let [x1, y1, x2, y2] = track.bbox;
    [
        (x1 / width).clamp(0.0, 1.0),
        (y1 / height).clamp(0.0, 1.0),
        (x2 / width).clamp(0.0, 1.0),
        (y2 / height).clamp(0.0, 1.0),
    ]
}

#[async_trait]
impl FrameSink for ObjectSink {
    async fn observe(&self, frame: &AnalysedFrame) {
        let camera = &*frame.camera;
        let camera_objects = self
            .cameras
            .lock()
            .expect("object cameras lock")
            .entry(camera.to_owned())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(
                    self.camera_state(camera, frame.wall_time),
                ))
            })
            .clone();
        let mut state = camera_objects.lock().await;
        let now = seconds(state.origin, frame.wall_time);
        let skipped = |reason: &str| {
            self.metrics
                .object_detections_skipped
                .with_label_values(&[camera, reason])
                .inc();
        };
        if let Some(last) = state.last_detection {
            if seconds(last, frame.wall_time) < 0.999 / self.config.fps {
                return skipped("rate");
            }
        }
        // Motion against the last frame looked at, measured before anything else: frame
        // differencing costs well under a millisecond at this size.
        let motion = state.motion.observe(&frame.image).unwrap_or_else(|error| {
            tracing::debug!(camera, %error, "no motion measure");
            Default::default()
        });
        // The first frame has no reference to differ from: it is always looked at.
        let first = state.last_detection.is_none();
        state.last_detection = Some(frame.wall_time);
        if self.config.min_motion > 0.0 && motion.level < self.config.min_motion && !first {
            state.tracker.unchanged(now);
            return skipped("no_motion");
        }
        let detections = match self.detector.detect(frame.image.clone()).await {
            Ok(detections) => detections,
            Err(error) => {
                tracing::error!(camera, %error, "object detection failed");
                return;
            }
        };
        self.metrics
            .object_detections
            .with_label_values(&[camera])
            .inc();
        let inputs: Vec<TrackInput> = detections
            .iter()
            .map(|d| TrackInput {
                bbox: [d.pixels.x1, d.pixels.y1, d.pixels.x2, d.pixels.y2],
                score: d.score,
                class: COCO_CLASSES
                    .iter()
                    .position(|c| *c == d.class)
                    .unwrap_or(usize::MAX),
            })
            .collect();
        let update = state.tracker.update(now, &inputs);
        let (width, height) = (frame.image.width() as f32, frame.image.height() as f32);
        let origin = state.origin;
        let mut events: Vec<(Track, DateTime<Utc>, ObjectEventKind)> = Vec::new();
        for track in &update.visible {
            if update.started.contains(&track.id) {
                events.push((
                    track.clone(),
                    frame.wall_time,
                    ObjectEventKind::TrackStarted,
                ));
            }
            let point = ground_point(normalised(track, width, height));
            for event in state.geometry.moved(track.id, point, now) {
                events.push((track.clone(), frame.wall_time, geometry_event(event)));
            }
        }
        for track in &update.ended {
            let ended_at = time_at(origin, track.last_seen);
            for event in state.geometry.ended(track.id, track.last_seen) {
                events.push((track.clone(), ended_at, geometry_event(event)));
            }
            events.push((
                track.clone(),
                ended_at,
                ObjectEventKind::TrackEnded {
                    first_seen: time_at(origin, track.first_seen),
                },
            ));
        }
        let alive: Vec<u64> = state.tracker.alive().map(|t| t.id).collect();
        let zone_counts: Vec<(String, usize)> = state
            .geometry
            .occupancy(alive.iter())
            .into_iter()
            .map(|(zone, count)| (zone.to_owned(), count))
            .collect();
        self.metrics
            .object_tracks
            .with_label_values(&[camera])
            .set(alive.len() as i64);
        drop(state);

        let message = ObjectsMessage {
            schema_version: ObjectsMessage::SCHEMA_VERSION,
            message_id: Uuid::now_v7(),
            camera_id: camera.to_owned(),
            source: frame.source.clone(),
            wall_time: frame.wall_time,
            sequence: frame.sequence,
            width: frame.image.width(),
            height: frame.image.height(),
            objects: update
                .visible
                .iter()
                .map(|track| TrackedObject {
                    track_id: track.id,
                    class: class_name(track.class).to_owned(),
                    score: track.score,
                    bbox: normalised(track, width, height),
                    first_seen: time_at(origin, track.first_seen),
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
        if !zone_counts.is_empty() {
            pipeline.hset_multiple(format!("{prefix}:objects:{camera}:zones"), &zone_counts);
        }
        self.redis.write_pipeline(pipeline).await;
        for (track, at, event) in events {
            self.publish_event(camera, &track, at, event).await;
        }
    }

    /// The camera's pipeline ended: its tracks end with it.
    async fn finish(&self, camera: &str) {
        let removed = self
            .cameras
            .lock()
            .expect("object cameras lock")
            .remove(camera);
        let Some(camera_objects) = removed else {
            return;
        };
        let mut state = camera_objects.lock().await;
        let origin = state.origin;
        let tracks: Vec<Track> = state.tracker.alive().cloned().collect();
        for track in tracks {
            let ended_at = time_at(origin, track.last_seen);
            for event in state.geometry.ended(track.id, track.last_seen) {
                self.publish_event(camera, &track, ended_at, geometry_event(event))
                    .await;
            }
            let first_seen = time_at(origin, track.first_seen);
            self.publish_event(
                camera,
                &track,
                ended_at,
                ObjectEventKind::TrackEnded { first_seen },
            )
            .await;
        }
        self.metrics
            .object_tracks
            .with_label_values(&[camera])
            .set(0);
    }
}

fn geometry_event(event: GeometryEvent) -> ObjectEventKind {
    match event {
        GeometryEvent::Entered { zone, .. } => ObjectEventKind::ZoneEntered { zone },
        GeometryEvent::Left { zone, dwell_s, .. } => ObjectEventKind::ZoneLeft { zone, dwell_s },
        GeometryEvent::DwellExceeded { zone, dwell_s, .. } => {
            ObjectEventKind::DwellExceeded { zone, dwell_s }
        }
        GeometryEvent::Crossed {
            line, direction, ..
        } => ObjectEventKind::LineCrossed {
            line,
            direction: serde_json::to_value(direction)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        },
    }
}

//! The objects stage: per camera, the COCO detector (at most `objects.fps`, and only where
//! something moved), a tracker, the camera's zones and lines, and each track's colour. Its
//! result rides on the frame ([`FrameObjects`]) to every sink: the objects sink publishes it,
//! captions and moment windows describe it, alert rules watch its events.
//!
//! A frame where less than `objects.min_motion` of the view changed since the last frame
//! looked at is not sent to the detector, as Frigate does: the tracks are kept where they
//! were, so a parked car stays one track and raises nothing while it stands. Every
//! `objects.refresh_s` the detector runs anyway.
//!
//! The zones and lines come from the [`ZoneBook`], which the API changes while streams run:
//! each frame looked at first checks the book's version (one atomic load) and, when the
//! camera's zones or lines changed, redraws its geometry (`Geometry::redraw`: stays in
//! unchanged zones go on, those in changed zones start over).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use argus_operators::detection::COCO_CLASSES;
use argus_operators::motion::{MotionConfig, MotionDetector};
use argus_operators::tracking::{Track, TrackInput, Tracker};
use argus_operators::BgrImage;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::detector::ObjectDetector;
use crate::config::ObjectsConfig;
use crate::messages::ObjectEventKind;
use crate::metrics::Metrics;
use crate::objects::book::ZoneBook;
use crate::objects::colour::{self, Votes, COLOUR_NAMES};
use crate::objects::zones::{ground_point, Geometry, GeometryEvent};
use crate::objects::{FrameObjects, ObjectHappening, SeenObject};
use crate::stream::{ObjectAnalyser, Pace};

/// One camera's tracker, zones and lines, motion reference and track colours.
struct CameraObjects {
    tracker: Tracker,
    geometry: Geometry,
    motion: MotionDetector,
    /// Which frames are due at objects.fps.
    pace: Pace,
    /// The frame time the detector last ran at.
    last_detection: Option<DateTime<Utc>>,
    /// The frame time that track times (seconds) count from.
    origin: DateTime<Utc>,
    /// Per live track, its colour votes.
    colours: HashMap<u64, Votes>,
    /// The latest frame's width and height: track boxes are in its pixels.
    frame_size: (f32, f32),
    /// The zone book's version and this camera's revision in it when `geometry` was drawn.
    zones_version: u64,
    zones_revision: u64,
}

impl CameraObjects {
    fn new(config: &ObjectsConfig, zones: &ZoneBook, camera: &str, origin: DateTime<Utc>) -> Self {
        // The version first: a change between the two reads is then seen on the next frame.
        let zones_version = zones.version();
        let drawn = zones.camera(camera);
        Self {
            tracker: Tracker::new(config.tracking.clone(), config.fps),
            geometry: Geometry::new(drawn.zone_configs(), drawn.line_configs()),
            zones_version,
            zones_revision: drawn.revision(),
            motion: MotionDetector::new(MotionConfig::default()),
            pace: Pace::new(config.fps, config.fps),
            last_detection: None,
            origin,
            colours: HashMap::new(),
            frame_size: (1.0, 1.0),
        }
    }

    /// Redraws the geometry when the camera's zones or lines changed since it was drawn.
    fn follow_zones(&mut self, book: &ZoneBook, camera: &str) {
        let changed =
            book.camera_changed(camera, &mut self.zones_version, &mut self.zones_revision);
        if let Some(drawn) = changed {
            tracing::info!(
                camera,
                zones = drawn.zones.len(),
                lines = drawn.lines.len(),
                "objects: zones and lines redrawn"
            );
            self.geometry
                .redraw(drawn.zone_configs(), drawn.line_configs());
        }
    }

    fn seen(&self, track: &Track) -> SeenObject {
        let (width, height) = self.frame_size;
        SeenObject {
            track_id: track.id,
            class: class_name(track.class),
            score: track.score,
            bbox: normalised(track, width, height),
            first_seen: time_at(self.origin, track.first_seen),
            colour: (self.colours.get(&track.id))
                .and_then(colour::commonest)
                .map(|i| COLOUR_NAMES[i]),
        }
    }

    /// Ends `track`: its zone exits, then its end, at the time it was last seen.
    fn end(&mut self, track: &Track, object: SeenObject) -> Vec<ObjectHappening> {
        let at = time_at(self.origin, track.last_seen);
        let mut ended: Vec<ObjectHappening> = (self.geometry.ended(track.id, track.last_seen))
            .into_iter()
            .map(|event| ObjectHappening {
                object: object.clone(),
                at,
                kind: geometry_event(event),
            })
            .collect();
        ended.push(ObjectHappening {
            kind: ObjectEventKind::TrackEnded {
                first_seen: object.first_seen,
            },
            object,
            at,
        });
        self.colours.remove(&track.id);
        ended
    }
}

/// The objects stage shared by every stream; cheap to clone.
#[derive(Clone)]
pub struct ObjectTracking {
    detector: ObjectDetector,
    config: Arc<ObjectsConfig>,
    zones: ZoneBook,
    /// Per camera, locked only by that camera's stream task (its frames come in order), so
    /// one camera waiting for the detector never holds up another: their frames can share a
    /// batch.
    cameras: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<CameraObjects>>>>>,
    metrics: Metrics,
}

impl ObjectTracking {
    pub fn new(
        config: &ObjectsConfig,
        detector: ObjectDetector,
        zones: ZoneBook,
        metrics: Metrics,
    ) -> Self {
        Self {
            detector,
            config: Arc::new(config.clone()),
            zones,
            cameras: Default::default(),
            metrics,
        }
    }

    fn camera_state(&self, camera: &str, origin: DateTime<Utc>) -> CameraObjects {
        CameraObjects::new(&self.config, &self.zones, camera, origin)
    }

    fn skipped(&self, camera: &str, reason: &str) {
        self.metrics
            .object_detections_skipped
            .with_label_values(&[camera, reason])
            .inc();
    }
}

#[async_trait]
impl ObjectAnalyser for ObjectTracking {
    fn fps(&self) -> f64 {
        self.config.fps
    }

    async fn observe(
        &self,
        camera: &str,
        wall_time: DateTime<Utc>,
        image: Arc<BgrImage>,
    ) -> Option<FrameObjects> {
        let camera_objects = self
            .cameras
            .lock()
            .expect("object cameras lock")
            .entry(camera.to_owned())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(
                    self.camera_state(camera, wall_time),
                ))
            })
            .clone();
        let mut state = camera_objects.lock().await;
        state.follow_zones(&self.zones, camera);
        // A frame sampled for a faster OCR rate than objects.fps.
        if !state.pace.due(wall_time) {
            self.skipped(camera, "rate");
            return None;
        }
        let now = seconds(state.origin, wall_time);
        // Motion against the last frame looked at, measured before anything else: frame
        // differencing costs well under a millisecond at this size.
        let motion = state.motion.observe(&image).unwrap_or_else(|error| {
            tracing::debug!(camera, %error, "no motion measure");
            Default::default()
        });
        // The first frame has no reference to differ from: it is always looked at. Still
        // views are looked at every refresh_s anyway.
        let due_anyway = state
            .last_detection
            .is_none_or(|last| seconds(last, wall_time) >= self.config.refresh_s);
        state.frame_size = (image.width() as f32, image.height() as f32);
        if self.config.min_motion > 0.0 && motion.level < self.config.min_motion && !due_anyway {
            state.tracker.unchanged(now);
            self.skipped(camera, "no_motion");
            let tracks = (state.tracker.alive())
                .map(|track| state.seen(track))
                .collect();
            return Some(FrameObjects {
                detected: false,
                tracks,
                events: Vec::new(),
                zone_counts: zone_counts(&state),
            });
        }
        state.last_detection = Some(wall_time);
        let detections = match self.detector.detect(image.clone()).await {
            Ok(detections) => detections,
            Err(error) => {
                tracing::error!(camera, %error, "object detection failed");
                return None;
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
        let mut events = Vec::new();
        let mut tracks = Vec::with_capacity(update.visible.len());
        for track in &update.visible {
            let (width, height) = state.frame_size;
            if let Some(measured) = colour::dominant(&image, normalised(track, width, height)) {
                state.colours.entry(track.id).or_default()[measured] += 1;
            }
            let object = state.seen(track);
            if update.started.contains(&track.id) {
                events.push(ObjectHappening {
                    object: object.clone(),
                    at: wall_time,
                    kind: ObjectEventKind::TrackStarted,
                });
            }
            let point = ground_point(object.bbox);
            for event in state.geometry.moved(track.id, object.class, point, now) {
                events.push(ObjectHappening {
                    object: object.clone(),
                    at: wall_time,
                    kind: geometry_event(event),
                });
            }
            tracks.push(object);
        }
        for track in &update.ended {
            let object = state.seen(track);
            events.extend(state.end(track, object));
        }
        self.metrics
            .object_tracks
            .with_label_values(&[camera])
            .set(state.tracker.alive().count() as i64);
        Some(FrameObjects {
            detected: true,
            tracks,
            events,
            zone_counts: zone_counts(&state),
        })
    }

    async fn finish(&self, camera: &str) -> Vec<ObjectHappening> {
        let removed = self
            .cameras
            .lock()
            .expect("object cameras lock")
            .remove(camera);
        let Some(camera_objects) = removed else {
            return Vec::new();
        };
        let mut state = camera_objects.lock().await;
        self.metrics
            .object_tracks
            .with_label_values(&[camera])
            .set(0);
        let alive: Vec<Track> = state.tracker.alive().cloned().collect();
        let mut ended = Vec::new();
        for track in alive {
            let object = state.seen(&track);
            ended.extend(state.end(&track, object));
        }
        ended
    }
}

fn zone_counts(state: &CameraObjects) -> Vec<(String, usize)> {
    let alive: Vec<u64> = state.tracker.alive().map(|t| t.id).collect();
    let mut counts: Vec<(String, usize)> = (state.geometry.occupancy(alive.iter()).into_iter())
        .map(|(zone, count)| (zone.to_owned(), count))
        .collect();
    counts.sort();
    counts
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::zones::{GeometryEvent, ZoneConfig};

    #[test]
    fn a_zone_put_in_the_book_reaches_a_running_camera() {
        // A configured zone far from where the track walks.
        let corner = ZoneConfig {
            id: "corner".into(),
            camera: "street".into(),
            points: vec![[0.8, 0.8], [1.0, 0.8], [1.0, 1.0]],
            dwell_s: None,
            classes: vec![],
        };
        let book = ZoneBook::new(&[corner], &[]);
        let mut state = CameraObjects::new(&ObjectsConfig::default(), &book, "street", Utc::now());
        assert_eq!(state.geometry.zones().len(), 1);
        state.follow_zones(&book, "street");
        assert_eq!(state.geometry.moved(1, "person", [0.3, 0.3], 0.0), vec![]);
        book.put_zone(ZoneConfig {
            id: "door".into(),
            camera: "street".into(),
            points: vec![[0.2, 0.2], [0.6, 0.2], [0.6, 0.6]],
            dwell_s: None,
            classes: vec![],
        })
        .expect("a valid zone");
        // Another camera's zone is not this camera's.
        book.put_zone(ZoneConfig {
            id: "yard".into(),
            camera: "garden".into(),
            points: vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]],
            dwell_s: None,
            classes: vec![],
        })
        .expect("a valid zone");
        state.follow_zones(&book, "street");
        assert_eq!(
            state.geometry.moved(1, "person", [0.5, 0.3], 1.0),
            vec![GeometryEvent::Entered {
                zone: "door".into(),
                track: 1
            }]
        );
        assert_eq!(state.geometry.zones().len(), 2);
        book.remove_zone("street", "door")
            .expect("drawn through the API");
        state.follow_zones(&book, "street");
        assert_eq!(state.geometry.zones().len(), 1);
        assert_eq!(state.geometry.zones()[0].id, "corner");
    }
}

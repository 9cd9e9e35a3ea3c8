//! Multi-object tracking, one [`Tracker`] per camera, in the ByteTrack manner: a
//! constant-velocity Kalman filter per track, two-stage association (high-score detections
//! first, then low-score ones against the tracks still unmatched), and track birth and death.
//!
//! The association itself is `trackforge`'s ByteTrack (MIT, pure Rust over `nalgebra`).
//! Savant's `similari` was evaluated first: it has SORT but no ByteTrack second stage, and it
//! links `pyo3` with `extension-module` unconditionally, which a Rust binary cannot link.
//! Around the association, this module keeps what Argus needs of a track and ByteTrack does
//! not: a class by vote (detectors flicker between "car" and "truck"), when it was first and
//! last seen, its path, and the moment it ends.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use trackforge::trackers::byte_track::{ByteTrack, ByteTrackParams};

/// `[objects.tracking]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerConfig {
    /// Detections at or above this score are matched first and may start tracks; those
    /// below (down to `min_score`) only keep existing tracks alive (ByteTrack's second stage).
    pub high_score: f32,
    /// Detections below this score are ignored.
    pub min_score: f32,
    /// A new track needs a detection at least this confident.
    pub new_track_score: f32,
    /// A track unseen for this long has ended (seconds).
    pub lost_after_s: f64,
    /// Points kept of each track's path (the newest).
    pub path_points: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            // ByteTrack's own defaults (0.5 and 0.6) are for detectors scoring higher than
            // NanoDet does on a small parked car (0.51) or van (0.45, as "truck") in a wide
            // street view: with them those never became tracks. Traffic cones mistaken for
            // people score 0.36–0.40 and stay below both.
            high_score: 0.4,
            min_score: 0.1,
            new_track_score: 0.45,
            lost_after_s: 3.0,
            path_points: 64,
        }
    }
}

/// One detection handed to the tracker: a box in pixels `[x1, y1, x2, y2]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackInput {
    pub bbox: [f32; 4],
    pub score: f32,
    pub class: usize,
}

/// A track as Argus reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// Stable for the track's life, unique per tracker.
    pub id: u64,
    /// The class most of its detections had (score-weighted).
    pub class: usize,
    /// The latest box, `[x1, y1, x2, y2]` in pixels.
    pub bbox: [f32; 4],
    /// The latest matched detection's score.
    pub score: f32,
    /// Times (seconds, the caller's clock) it was first and last matched.
    pub first_seen: f64,
    pub last_seen: f64,
    /// Its box centre over time, oldest first (at most `path_points`).
    pub path: Vec<(f64, [f32; 2])>,
}

/// What one frame changed.
#[derive(Debug, Default)]
pub struct TrackUpdate {
    /// Tracks matched in this frame.
    pub visible: Vec<Track>,
    /// Ids of tracks that appeared in this frame.
    pub started: Vec<u64>,
    /// Tracks not seen for `lost_after_s`: they are over.
    pub ended: Vec<Track>,
}

struct Record {
    track: Track,
    /// Score-weighted votes per class.
    votes: HashMap<usize, f32>,
}

/// One camera's tracker.
pub struct Tracker {
    association: ByteTrack,
    config: TrackerConfig,
    records: HashMap<u64, Record>,
}

impl Tracker {
    /// A tracker fed detections at `fps` frames per second (which turns `lost_after_s` into
    /// ByteTrack's count of frames).
    pub fn new(config: TrackerConfig, fps: f64) -> Self {
        let lost_frames = (config.lost_after_s * fps).ceil().max(1.0) as usize;
        let mut params = ByteTrackParams {
            track_thresh: config.high_score,
            det_thresh: config.new_track_score,
            ..ByteTrackParams::default()
        };
        params.common.max_age = lost_frames;
        Self {
            association: ByteTrack::from_params(params),
            config,
            records: HashMap::new(),
        }
    }

    /// Tracks alive (seen within `lost_after_s`), visible in the last frame or not.
    pub fn alive(&self) -> impl Iterator<Item = &Track> {
        self.records.values().map(|record| &record.track)
    }

    /// Nothing moved since the last frame (the detector was not run): every alive track is
    /// still where it was at `time`. A parked car stays one track however long it stands.
    pub fn unchanged(&mut self, time: f64) {
        for record in self.records.values_mut() {
            record.track.last_seen = time;
        }
    }

    /// Associates one frame's detections, taken at `time` (seconds, increasing).
    pub fn update(&mut self, time: f64, detections: &[TrackInput]) -> TrackUpdate {
        let kept: Vec<&TrackInput> = detections
            .iter()
            .filter(|d| d.score >= self.config.min_score && valid(&d.bbox))
            .collect();
        let input = kept
            .iter()
            .map(|d| {
                let [x1, y1, x2, y2] = d.bbox;
                ([x1, y1, x2 - x1, y2 - y1], d.score, d.class as i64)
            })
            .collect();
        let mut update = TrackUpdate::default();
        for matched in self.association.update(input) {
            // The detection it matched in this frame: the track's own class and score, not
            // the Kalman prediction's.
            let Some(detection) = matched.det_ind.and_then(|i| kept.get(i)) else {
                continue;
            };
            let centre = centre(&detection.bbox);
            let record = self.records.entry(matched.track_id).or_insert_with(|| {
                update.started.push(matched.track_id);
                Record {
                    track: Track {
                        id: matched.track_id,
                        class: detection.class,
                        bbox: detection.bbox,
                        score: detection.score,
                        first_seen: time,
                        last_seen: time,
                        path: Vec::new(),
                    },
                    votes: HashMap::new(),
                }
            });
            *record.votes.entry(detection.class).or_default() += detection.score;
            let track = &mut record.track;
            track.class = voted(&record.votes).unwrap_or(detection.class);
            track.bbox = detection.bbox;
            track.score = detection.score;
            track.last_seen = time;
            track.path.push((time, centre));
            if track.path.len() > self.config.path_points {
                let excess = track.path.len() - self.config.path_points;
                track.path.drain(..excess);
            }
            update.visible.push(track.clone());
        }
        let lost_after = self.config.lost_after_s;
        let ended: Vec<u64> = (self.records.iter())
            .filter(|(_, record)| time - record.track.last_seen > lost_after)
            .map(|(&id, _)| id)
            .collect();
        for id in ended {
            if let Some(record) = self.records.remove(&id) {
                update.ended.push(record.track);
            }
        }
        update.visible.sort_by_key(|track| track.id);
        update.ended.sort_by_key(|track| track.id);
        update
    }
}

fn valid(bbox: &[f32; 4]) -> bool {
    bbox.iter().all(|v| v.is_finite()) && bbox[2] > bbox[0] && bbox[3] > bbox[1]
}

fn centre(bbox: &[f32; 4]) -> [f32; 2] {
    [(bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0]
}

/// The class with the most score-weighted votes; ties go to the lower class id, so the
/// result does not depend on the map's order.
fn voted(votes: &HashMap<usize, f32>) -> Option<usize> {
    votes
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(&class, _)| class)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERSON: usize = 0;
    const CAR: usize = 2;
    const TRUCK: usize = 7;

    fn detection(x: f32, y: f32, score: f32, class: usize) -> TrackInput {
        TrackInput {
            bbox: [x, y, x + 40.0, y + 100.0],
            score,
            class,
        }
    }

    fn tracker() -> Tracker {
        Tracker::new(
            TrackerConfig {
                lost_after_s: 1.0,
                ..TrackerConfig::default()
            },
            5.0,
        )
    }

    #[test]
    fn two_people_walking_keep_their_ids() {
        let mut tracker = tracker();
        let mut ids = Vec::new();
        for step in 0..20 {
            let t = step as f64 / 5.0;
            let x = step as f32 * 6.0;
            let update = tracker.update(
                t,
                &[
                    detection(100.0 + x, 50.0, 0.9, PERSON),
                    detection(600.0 - x, 300.0, 0.8, PERSON),
                ],
            );
            assert_eq!(update.visible.len(), 2, "step {step}");
            let frame_ids: Vec<u64> = update.visible.iter().map(|t| t.id).collect();
            if step == 0 {
                assert_eq!(update.started.len(), 2);
                ids = frame_ids;
            } else {
                assert!(update.started.is_empty(), "step {step}");
                assert_eq!(frame_ids, ids, "step {step}");
            }
        }
        let walker = tracker.alive().find(|t| t.id == ids[0]).unwrap();
        assert_eq!(walker.path.len(), 20);
        assert!((walker.last_seen - walker.first_seen - 3.8).abs() < 1e-9);
    }

    #[test]
    fn a_low_score_detection_keeps_a_track_alive_but_cannot_start_one() {
        let mut tracker = tracker();
        let first = tracker.update(0.0, &[detection(100.0, 100.0, 0.9, PERSON)]);
        let id = first.visible[0].id;
        // Partly hidden: the detector is unsure, ByteTrack's second stage keeps the track.
        let update = tracker.update(0.2, &[detection(103.0, 100.0, 0.3, PERSON)]);
        assert_eq!(
            update.visible.iter().map(|t| t.id).collect::<Vec<_>>(),
            [id]
        );
        // Somewhere else, the same weak score starts nothing.
        let update = tracker.update(0.4, &[detection(700.0, 400.0, 0.3, PERSON)]);
        assert!(update.started.is_empty());
    }

    #[test]
    fn a_track_unseen_for_longer_than_lost_after_ends_once() {
        let mut tracker = tracker();
        let id = tracker
            .update(0.0, &[detection(100.0, 100.0, 0.9, CAR)])
            .visible[0]
            .id;
        let mut ended = Vec::new();
        for step in 1..15 {
            ended.extend(tracker.update(step as f64 * 0.2, &[]).ended);
        }
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].id, id);
        assert_eq!(tracker.alive().count(), 0);
    }

    #[test]
    fn a_parked_car_stays_one_track_and_its_class_is_the_vote() {
        let mut tracker = tracker();
        let mut started = 0;
        for step in 0..50 {
            // The detector flickers between car and truck on the same parked vehicle.
            let class = if step % 3 == 0 { TRUCK } else { CAR };
            let update = tracker.update(step as f64 * 0.2, &[detection(400.0, 200.0, 0.7, class)]);
            started += update.started.len();
        }
        assert_eq!(started, 1);
        let car = tracker.alive().next().unwrap();
        assert_eq!(car.class, CAR);
    }

    #[test]
    fn frames_without_motion_keep_tracks_alive() {
        let mut tracker = tracker();
        let id = tracker
            .update(0.0, &[detection(400.0, 200.0, 0.9, CAR)])
            .visible[0]
            .id;
        for step in 1..100 {
            tracker.unchanged(step as f64 * 0.2);
        }
        let update = tracker.update(20.0, &[detection(401.0, 200.0, 0.9, CAR)]);
        assert!(update.started.is_empty() && update.ended.is_empty());
        assert_eq!(update.visible[0].id, id);
    }

    #[test]
    fn degenerate_and_weak_boxes_are_ignored() {
        let mut tracker = tracker();
        let update = tracker.update(
            0.0,
            &[
                TrackInput {
                    bbox: [10.0, 10.0, 10.0, 50.0],
                    score: 0.9,
                    class: PERSON,
                },
                TrackInput {
                    bbox: [f32::NAN, 0.0, 5.0, 5.0],
                    score: 0.9,
                    class: PERSON,
                },
                detection(200.0, 200.0, 0.05, PERSON),
            ],
        );
        assert!(update.visible.is_empty() && update.started.is_empty());
    }
}

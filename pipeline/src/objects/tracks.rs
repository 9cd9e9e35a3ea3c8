//! The track store's records: each track as a whole (class, colour, first and last seen,
//! where it stood then, how it moved), so that "how many people walked past between 10:00 and
//! 10:05?" is answered by counting tracks rather than by a model reading frames.
//!
//! The objects sink feeds a [`TrackRecorder`] per camera with every frame and keeps its
//! records in Redis: ended tracks in a sorted set scored by last-seen time
//! ([`ended_tracks_key`]), the live ones as of the latest frame in one value
//! ([`live_tracks_key`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::activity::{track_movement, Movement};
use super::zones::ground_point;
use super::{FrameObjects, ObjectHappening, SeenObject};
use crate::messages::ObjectEventKind;

/// A camera's ended tracks: a sorted set of [`TrackRecord`] JSON scored by last-seen time
/// (ms), so a time range is one `ZRANGEBYSCORE`.
pub fn ended_tracks_key(prefix: &str, camera: &str) -> String {
    format!("{prefix}:objects:{camera}:tracks")
}

/// A camera's live tracks as of its latest detected frame: a JSON array of [`TrackRecord`].
pub fn live_tracks_key(prefix: &str, camera: &str) -> String {
    format!("{prefix}:objects:{camera}:tracks:live")
}

/// One track from its first sighting to its last (or, while it lives, its latest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackRecord {
    /// Unique per camera until Argus restarts: with `first_seen`, it names the track.
    pub track_id: u64,
    /// The COCO class the track's vote settled on.
    pub class: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colour: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Where it stood (bottom centre of its box, normalised) when first and last seen.
    pub first_ground: [f32; 2],
    pub last_ground: [f32; 2],
    /// Net movement from the first box to the last, as captions' object groups tell it.
    pub movement: Movement,
    /// Detected frames it was matched in.
    pub sightings: u32,
}

impl TrackRecord {
    /// Whether the track was in view at some time of `[from, to)`.
    pub fn overlaps(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        self.first_seen < to && self.last_seen >= from
    }

    pub fn moved(&self) -> bool {
        matches!(self.movement, Movement::Moving { .. })
    }
}

/// A live track's path so far.
#[derive(Debug, Clone)]
struct LivePath {
    latest: SeenObject,
    first_box: [f32; 4],
    last_seen: DateTime<Utc>,
    sightings: u32,
}

impl LivePath {
    fn record(&self, last_seen: DateTime<Utc>, ended: Option<&SeenObject>) -> TrackRecord {
        // The tracker's vote on class and colour at the end is its best answer; the box it
        // ends with may be a prediction, so the path keeps the last matched one.
        let object = ended.unwrap_or(&self.latest);
        TrackRecord {
            track_id: object.track_id,
            class: object.class.to_owned(),
            colour: object.colour.or(self.latest.colour).map(str::to_owned),
            first_seen: object.first_seen,
            last_seen,
            first_ground: ground_point(self.first_box),
            last_ground: ground_point(self.latest.bbox),
            movement: track_movement(self.first_box, self.latest.bbox, self.sightings),
            sightings: self.sightings,
        }
    }
}

/// One camera's live tracks, fed frame by frame in order, turned into records as they end.
#[derive(Debug, Default)]
pub struct TrackRecorder {
    live: HashMap<u64, LivePath>,
}

impl TrackRecorder {
    /// Adds a frame's tracks (only where the detector ran: a skipped frame repeats the last
    /// boxes, which is no new sighting) and returns the records of the tracks that ended in
    /// it.
    pub fn observe(&mut self, objects: &FrameObjects, at: DateTime<Utc>) -> Vec<TrackRecord> {
        if objects.detected {
            for object in &objects.tracks {
                let path = self
                    .live
                    .entry(object.track_id)
                    .or_insert_with(|| LivePath {
                        latest: object.clone(),
                        first_box: object.bbox,
                        last_seen: at,
                        sightings: 0,
                    });
                path.latest = object.clone();
                path.last_seen = at;
                path.sightings += 1;
            }
        }
        self.end(&objects.events)
    }

    /// The records of the tracks `events` end (a frame's, or those a finished stream ends),
    /// which leave the live ones.
    pub fn end(&mut self, events: &[ObjectHappening]) -> Vec<TrackRecord> {
        events
            .iter()
            .filter(|happening| matches!(happening.kind, ObjectEventKind::TrackEnded { .. }))
            .map(|happening| {
                let object = &happening.object;
                match self.live.remove(&object.track_id) {
                    Some(path) => path.record(happening.at, Some(object)),
                    // Ended before any detected frame showed it: its end is all there is.
                    None => LivePath {
                        latest: object.clone(),
                        first_box: object.bbox,
                        last_seen: happening.at,
                        sightings: 1,
                    }
                    .record(happening.at, Some(object)),
                }
            })
            .collect()
    }

    /// The live tracks as records so far, oldest first.
    pub fn live(&self) -> Vec<TrackRecord> {
        let mut records: Vec<TrackRecord> = (self.live.values())
            .map(|path| path.record(path.last_seen, None))
            .collect();
        records.sort_by_key(|r| (r.first_seen, r.track_id));
        records
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
    }

    fn seen(id: u64, class: &'static str, bbox: [f32; 4]) -> SeenObject {
        SeenObject {
            track_id: id,
            class,
            score: 0.8,
            bbox,
            first_seen: at(0),
            colour: None,
        }
    }

    fn frame(
        detected: bool,
        tracks: Vec<SeenObject>,
        events: Vec<ObjectHappening>,
    ) -> FrameObjects {
        FrameObjects {
            detected,
            tracks,
            events,
            ..Default::default()
        }
    }

    fn ended(object: SeenObject, seconds: i64) -> ObjectHappening {
        ObjectHappening {
            kind: ObjectEventKind::TrackEnded {
                first_seen: object.first_seen,
            },
            object,
            at: at(seconds),
        }
    }

    #[test]
    fn a_walker_and_a_parked_van_are_recorded_when_they_end() {
        let mut recorder = TrackRecorder::default();
        let van = [0.7, 0.6, 0.95, 0.9];
        for step in 0..5 {
            let x = step as f32 * 0.1;
            let ended = recorder.observe(
                &frame(
                    true,
                    vec![
                        seen(1, "person", [0.1 + x, 0.3, 0.15 + x, 0.5]),
                        seen(2, "truck", van),
                    ],
                    Vec::new(),
                ),
                at(step),
            );
            assert!(ended.is_empty());
        }
        // A frame the detector skipped repeats the boxes: no sighting.
        recorder.observe(
            &frame(
                false,
                vec![seen(1, "person", [0.5, 0.3, 0.55, 0.5])],
                Vec::new(),
            ),
            at(5),
        );
        let live = recorder.live();
        assert_eq!(live.len(), 2);
        assert_eq!(live[0].sightings, 5);
        assert_eq!(live[0].last_seen, at(4));

        // The walker ends with a predicted box far away and its class vote settled: the record
        // keeps the vote and the last matched box.
        let mut walker = seen(1, "person", [0.9, 0.9, 1.0, 1.0]);
        walker.colour = Some("red");
        let records = recorder.observe(&frame(true, Vec::new(), vec![ended(walker, 6)]), at(7));
        assert_eq!(records.len(), 1);
        let record = &records[0];
        assert_eq!((record.track_id, record.class.as_str()), (1, "person"));
        assert_eq!(record.colour.as_deref(), Some("red"));
        assert_eq!((record.first_seen, record.last_seen), (at(0), at(6)));
        assert_eq!(record.first_ground, [0.125, 0.5]);
        assert!((record.last_ground[0] - 0.525).abs() < 1e-6);
        assert_eq!(
            record.movement,
            Movement::Moving {
                direction: "left to right".into()
            }
        );
        assert!(record.moved());

        // The van ends with the stream.
        let van_records = recorder.end(&[ended(seen(2, "truck", van), 8)]);
        assert_eq!(van_records[0].movement, Movement::Still);
        assert!(!van_records[0].moved());
        assert!(recorder.live().is_empty());
    }

    #[test]
    fn a_track_ended_unseen_is_recorded_as_seen_once() {
        let mut recorder = TrackRecorder::default();
        let records = recorder.end(&[ended(seen(9, "car", [0.1, 0.1, 0.2, 0.2]), 3)]);
        assert_eq!(records[0].movement, Movement::Seen);
        assert_eq!(records[0].sightings, 1);
    }

    #[test]
    fn overlap_is_half_open_on_the_range() {
        let mut record =
            TrackRecorder::default().end(&[ended(seen(1, "person", [0.1, 0.1, 0.2, 0.2]), 10)]);
        let record = record.remove(0);
        // In view from 10:00:00 to 10:00:10.
        assert!(record.overlaps(at(5), at(6)));
        assert!(
            record.overlaps(at(10), at(20)),
            "last seen at the range's start"
        );
        assert!(!record.overlaps(at(11), at(20)));
        assert!(
            !record.overlaps(at(-5), at(0)),
            "first seen at the range's end"
        );
    }
}

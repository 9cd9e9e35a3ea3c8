//! What the tracks did over a span of video (a moment window, a caption chunk's segment), in
//! groups an analyst can read: "3 people walking left to right", "1 white van or truck parked
//! since 10:00:04 (bottom right)". Captions are written from these lines and moment windows
//! are embedded with them, so the LLM no longer guesses people and vehicles from ImageNet tags
//! and "people walking" finds the spans where people walked.

use std::collections::BTreeMap;

use argus_operators::motion::MotionRegion;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::FrameObjects;

/// A track moved when its ground point travelled at least this share of its box height
/// (half a stride for a person), and at least this share of the frame: box edges jitter by
/// about 1 % of the frame. Spans are short (a 2 s window, a caption segment), and the people
/// on `vtest.avi` cross its 768 px in about 15 s: with a full stride most of them stood.
const MOVED_BOX_HEIGHTS: f32 = 0.25;
const MOVED_FRAME: f32 = 0.02;

/// One track over the span.
#[derive(Debug, Clone)]
struct TrackSpan {
    class: &'static str,
    colour: Option<&'static str>,
    since: DateTime<Utc>,
    /// First and last sighting in the span: time and box.
    first: [f32; 4],
    last: [f32; 4],
    sightings: u32,
}

/// Tracks seen over a span, fed frame by frame.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    tracks: BTreeMap<u64, TrackSpan>,
    /// The detector's scores of every sighting, summed, and how many there were.
    score_sum: f32,
    sightings: u32,
}

/// How a group of tracks behaved.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Movement {
    /// Moved, mostly in this direction ("left to right", "towards the camera", ...).
    Moving { direction: String },
    /// Stayed where it was.
    Still,
    /// Seen once: no movement to tell.
    Seen,
}

/// Tracks of one class (and, for vehicles, one colour) that behaved alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectGroup {
    /// The COCO class.
    pub class: String,
    /// Vehicles' coarse colour; people's clothes are too varied to name in one word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colour: Option<String>,
    pub count: u32,
    pub movement: Movement,
    /// Where a still group stands, on a 3×3 grid ("bottom right").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    /// A still group's earliest track start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    pub track_ids: Vec<u64>,
}

impl Activity {
    /// Adds one frame's tracks.
    pub fn observe(&mut self, objects: &FrameObjects) {
        for object in &objects.tracks {
            let span = self
                .tracks
                .entry(object.track_id)
                .or_insert_with(|| TrackSpan {
                    class: object.class,
                    colour: object.colour,
                    since: object.first_seen,
                    first: object.bbox,
                    last: object.bbox,
                    sightings: 0,
                });
            // The vote may settle later in the track's life: the newest answer is the best.
            span.class = object.class;
            span.colour = object.colour.or(span.colour);
            span.last = object.bbox;
            span.sightings += 1;
            self.score_sum += object.score;
            self.sightings += 1;
        }
    }

    /// The detector's mean score over every sighting; `None` when nothing was seen.
    pub fn mean_score(&self) -> Option<f32> {
        (self.sightings > 0).then(|| self.score_sum / self.sightings as f32)
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// The tracks in groups, the largest first.
    pub fn groups(&self) -> Vec<ObjectGroup> {
        let mut groups: BTreeMap<(String, Option<String>, Movement, Option<String>), ObjectGroup> =
            BTreeMap::new();
        for (&id, span) in &self.tracks {
            let movement = movement(span);
            let place = (movement == Movement::Still).then(|| place(span.last).to_owned());
            let colour = is_vehicle(span.class)
                .then_some(span.colour)
                .flatten()
                .map(str::to_owned);
            let key = (
                span.class.to_owned(),
                colour.clone(),
                movement.clone(),
                place.clone(),
            );
            let group = groups.entry(key).or_insert_with(|| ObjectGroup {
                class: span.class.to_owned(),
                colour,
                count: 0,
                since: (movement == Movement::Still).then_some(span.since),
                movement,
                place,
                track_ids: Vec::new(),
            });
            group.count += 1;
            group.track_ids.push(id);
            if let Some(since) = &mut group.since {
                *since = (*since).min(span.since);
            }
        }
        let mut groups: Vec<ObjectGroup> = groups.into_values().collect();
        groups.sort_by(|a, b| b.count.cmp(&a.count).then(a.class.cmp(&b.class)));
        groups
    }

    /// The groups as observation lines, the largest first.
    pub fn phrases(&self) -> Vec<String> {
        self.groups().iter().map(ObjectGroup::phrase).collect()
    }
}

impl ObjectGroup {
    /// The group in words: "3 people walking left to right", "1 white van or truck parked
    /// since 10:00:04 (bottom right)".
    pub fn phrase(&self) -> String {
        let (one, many) = nouns(&self.class);
        let noun = if self.count == 1 { one } else { many };
        let mut words = vec![self.count.to_string()];
        words.extend(self.colour.clone());
        words.push(noun.to_owned());
        match &self.movement {
            Movement::Moving { direction } => {
                words.push(moving_verb(&self.class).to_owned());
                words.push(direction.clone());
            }
            Movement::Still => {
                words.push(still_verb(&self.class).to_owned());
                if let Some(since) = self.since {
                    words.push(format!("since {}", since.format("%H:%M:%S")));
                }
            }
            Movement::Seen => {}
        }
        if let Some(place) = &self.place {
            words.push(format!("({place})"));
        }
        words.join(" ")
    }
}

fn is_vehicle(class: &str) -> bool {
    matches!(class, "bicycle" | "car" | "motorcycle" | "bus" | "truck")
}

/// How a class is said, singular and plural, in captions, windows and count answers. COCO's
/// "truck" covers vans, which is what most street cameras see.
pub fn nouns(class: &str) -> (&str, &str) {
    match class {
        "person" => ("person", "people"),
        "truck" => ("van or truck", "vans or trucks"),
        "bus" => ("bus", "buses"),
        "car" => ("car", "cars"),
        "bicycle" => ("bicycle", "bicycles"),
        "motorcycle" => ("motorcycle", "motorcycles"),
        other => (other, other),
    }
}

fn moving_verb(class: &str) -> &'static str {
    match class {
        "person" => "walking",
        "car" | "truck" | "bus" | "motorcycle" => "driving",
        _ => "moving",
    }
}

fn still_verb(class: &str) -> &'static str {
    match class {
        "person" => "standing",
        "car" | "truck" | "bus" | "motorcycle" | "bicycle" => "parked",
        _ => "still",
    }
}

fn ground([x1, _, x2, y2]: [f32; 4]) -> [f32; 2] {
    [(x1 + x2) / 2.0, y2]
}

fn movement(span: &TrackSpan) -> Movement {
    track_movement(span.first, span.last, span.sightings)
}

/// How a track seen `sightings` times behaved between its `first` and `last` boxes: the
/// track store keeps each ended track's movement in the same terms as captions' groups.
pub fn track_movement(first: [f32; 4], last: [f32; 4], sightings: u32) -> Movement {
    if sightings < 2 {
        return Movement::Seen;
    }
    let [from_x, from_y] = ground(first);
    let [to_x, to_y] = ground(last);
    let (dx, dy) = (to_x - from_x, to_y - from_y);
    let height = (last[3] - last[1]).max(first[3] - first[1]);
    let threshold = (height * MOVED_BOX_HEIGHTS).max(MOVED_FRAME);
    if dx.hypot(dy) < threshold {
        return Movement::Still;
    }
    let direction = if dx.abs() >= dy.abs() {
        if dx > 0.0 {
            "left to right"
        } else {
            "right to left"
        }
    } else if dy > 0.0 {
        "towards the camera"
    } else {
        "away from the camera"
    };
    Movement::Moving {
        direction: direction.to_owned(),
    }
}

/// Where a box stands in a 3×3 grid over the frame.
fn place([x1, y1, x2, y2]: [f32; 4]) -> &'static str {
    MotionRegion {
        x: x1,
        y: y1,
        width: x2 - x1,
        height: y2 - y1,
        area: 0.0,
    }
    .place()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::super::SeenObject;
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
    }

    fn seen(
        id: u64,
        class: &'static str,
        colour: Option<&'static str>,
        bbox: [f32; 4],
    ) -> SeenObject {
        SeenObject {
            track_id: id,
            class,
            score: 0.8,
            bbox,
            first_seen: at(id as i64),
            colour,
        }
    }

    fn frame(tracks: Vec<SeenObject>) -> FrameObjects {
        FrameObjects {
            detected: true,
            tracks,
            ..Default::default()
        }
    }

    #[test]
    fn tracks_group_by_class_and_movement_into_readable_lines() {
        let mut activity = Activity::default();
        let van = [0.7, 0.6, 0.95, 0.9];
        for step in 0..5 {
            let x = step as f32 * 0.05;
            activity.observe(&frame(vec![
                // Two people walking right, one walking towards the camera.
                seen(1, "person", Some("red"), [0.1 + x, 0.3, 0.15 + x, 0.5]),
                seen(2, "person", None, [0.3 + x, 0.3, 0.35 + x, 0.5]),
                seen(3, "person", None, [0.5, 0.2 + x, 0.55, 0.3 + x]),
                // A parked white van.
                seen(4, "truck", Some("white"), van),
            ]));
        }
        // Someone seen only once.
        activity.observe(&frame(vec![seen(5, "person", None, [0.0, 0.0, 0.1, 0.2])]));
        assert_eq!(
            activity.phrases(),
            vec![
                "2 people walking left to right",
                "1 person walking towards the camera",
                "1 person",
                "1 white van or truck parked since 10:00:04 (bottom right)",
            ]
        );
        let groups = activity.groups();
        assert_eq!(groups[0].track_ids, vec![1, 2]);
        assert_eq!(groups[0].colour, None, "people's colours are not named");
    }

    #[test]
    fn jitter_smaller_than_a_stride_is_standing_still() {
        let mut activity = Activity::default();
        for step in 0..10 {
            let jitter = if step % 2 == 0 { 0.01 } else { -0.01 };
            activity.observe(&frame(vec![seen(
                7,
                "person",
                None,
                [0.4 + jitter, 0.1, 0.45 + jitter, 0.4],
            )]));
        }
        assert_eq!(
            activity.phrases(),
            vec!["1 person standing since 10:00:07 (top centre)"]
        );
    }
}

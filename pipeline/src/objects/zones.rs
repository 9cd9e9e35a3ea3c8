//! Zones and lines over a camera's view, in normalised coordinates (`[0, 1]`, x right, y
//! down), and what tracks do with them: enter and leave zones, stay in them (dwell), cross
//! lines in a direction.
//!
//! A track's position is the bottom centre of its box, where a person's feet or a vehicle's
//! wheels touch the ground, as Frigate does: a zone drawn on the floor then means "standing
//! in it", whatever the object's height.

use std::collections::{HashMap, HashSet};

use argus_operators::detection::COCO_CLASSES;
use serde::{Deserialize, Serialize};

/// `[[objects.zones]]`: a polygon on one camera's view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// Letters, digits, `-`, `_`, `.`: names the zone in events and counts.
    pub id: String,
    pub camera: String,
    /// At least 3 points `[x, y]` in `[0, 1]`, in order around the polygon, which must not
    /// cross itself.
    pub points: Vec<[f32; 2]>,
    /// A track that stays this long (seconds) raises one `dwell_exceeded` event (loitering).
    #[serde(default)]
    pub dwell_s: Option<f64>,
    /// COCO classes the zone watches ("person", "car", ...); empty watches every class.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
}

/// `[[objects.lines]]`: a segment on one camera's view that tracks are counted across.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    pub id: String,
    pub camera: String,
    pub from: [f32; 2],
    pub to: [f32; 2],
    /// COCO classes counted across the line; empty counts every class.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeometryError {
    #[error("`{0}`: ids are 1-128 letters, digits, `-`, `_` or `.`")]
    Id(String),
    #[error("zone `{0}` has {1} points; a zone needs at least 3")]
    TooFewPoints(String, usize),
    #[error("`{id}`: point [{x}, {y}] is outside the view (coordinates are in [0, 1])")]
    OutOfRange { id: String, x: f32, y: f32 },
    #[error("zone `{0}` crosses itself (its edges {1} and {2} intersect): list the points in order around it")]
    SelfIntersecting(String, usize, usize),
    #[error("line `{0}` has zero length")]
    ZeroLength(String),
    #[error(
        "`{0}`: `{1}` is not a COCO class (person, bicycle, car, motorcycle, bus, truck, ...)"
    )]
    UnknownClass(String, String),
}

/// Which way a track crossed a line, in screen terms: across a line that is more vertical
/// than horizontal, left to right or right to left; across a more horizontal one, top to
/// bottom or bottom to top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    LeftToRight,
    RightToLeft,
    TopToBottom,
    BottomToTop,
}

/// What a track did with the zones and lines.
#[derive(Debug, Clone, PartialEq)]
pub enum GeometryEvent {
    Entered {
        zone: String,
        track: u64,
    },
    Left {
        zone: String,
        track: u64,
        dwell_s: f64,
    },
    DwellExceeded {
        zone: String,
        track: u64,
        dwell_s: f64,
    },
    Crossed {
        line: String,
        track: u64,
        direction: Direction,
    },
}

fn check_id(id: &str) -> Result<(), GeometryError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    ok.then_some(())
        .ok_or_else(|| GeometryError::Id(id.to_owned()))
}

fn check_classes(id: &str, classes: &[String]) -> Result<(), GeometryError> {
    match classes.iter().find(|c| !COCO_CLASSES.contains(&c.as_str())) {
        Some(unknown) => Err(GeometryError::UnknownClass(id.to_owned(), unknown.clone())),
        None => Ok(()),
    }
}

/// Whether a filter of classes (empty: all) lets `class` through.
fn watches(classes: &[String], class: &str) -> bool {
    classes.is_empty() || classes.iter().any(|c| c == class)
}

fn check_point(id: &str, [x, y]: [f32; 2]) -> Result<(), GeometryError> {
    let inside = |v: f32| v.is_finite() && (0.0..=1.0).contains(&v);
    (inside(x) && inside(y))
        .then_some(())
        .ok_or_else(|| GeometryError::OutOfRange {
            id: id.to_owned(),
            x,
            y,
        })
}

impl ZoneConfig {
    /// Checks the zone; the error names what is wrong.
    pub fn validate(&self) -> Result<(), GeometryError> {
        check_id(&self.id)?;
        if self.points.len() < 3 {
            return Err(GeometryError::TooFewPoints(
                self.id.clone(),
                self.points.len(),
            ));
        }
        for &point in &self.points {
            check_point(&self.id, point)?;
        }
        let n = self.points.len();
        let edge = |i: usize| (self.points[i], self.points[(i + 1) % n]);
        for i in 0..n {
            // Adjacent edges share a point; only edges two or more apart may not meet.
            for j in i + 2..n {
                if i == 0 && j == n - 1 {
                    continue;
                }
                let (a, b) = edge(i);
                let (c, d) = edge(j);
                if segments_cross(a, b, c, d) {
                    return Err(GeometryError::SelfIntersecting(self.id.clone(), i, j));
                }
            }
        }
        check_classes(&self.id, &self.classes)
    }

    /// Whether `point` is inside the polygon (even-odd rule).
    pub fn contains(&self, [x, y]: [f32; 2]) -> bool {
        let mut inside = false;
        let n = self.points.len();
        for i in 0..n {
            let [xi, yi] = self.points[i];
            let [xj, yj] = self.points[(i + n - 1) % n];
            if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
                inside = !inside;
            }
        }
        inside
    }
}

impl LineConfig {
    pub fn validate(&self) -> Result<(), GeometryError> {
        check_id(&self.id)?;
        check_point(&self.id, self.from)?;
        check_point(&self.id, self.to)?;
        if self.from == self.to {
            return Err(GeometryError::ZeroLength(self.id.clone()));
        }
        check_classes(&self.id, &self.classes)
    }

    /// The direction of a move from `before` to `after`, when it crosses the line.
    pub fn crossing(&self, before: [f32; 2], after: [f32; 2]) -> Option<Direction> {
        if !segments_cross(self.from, self.to, before, after) {
            return None;
        }
        let (dx, dy) = (self.to[0] - self.from[0], self.to[1] - self.from[1]);
        Some(if dy.abs() >= dx.abs() {
            if after[0] > before[0] {
                Direction::LeftToRight
            } else {
                Direction::RightToLeft
            }
        } else if after[1] > before[1] {
            Direction::TopToBottom
        } else {
            Direction::BottomToTop
        })
    }
}

/// The sign of the turn `a → b → c`.
fn orientation(a: [f32; 2], b: [f32; 2], c: [f32; 2]) -> f32 {
    (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
}

/// Whether segments `ab` and `cd` cross properly (touching at an end does not count: a
/// track standing exactly on a line has not crossed it yet).
fn segments_cross(a: [f32; 2], b: [f32; 2], c: [f32; 2], d: [f32; 2]) -> bool {
    let (d1, d2) = (orientation(c, d, a), orientation(c, d, b));
    let (d3, d4) = (orientation(a, b, c), orientation(a, b, d));
    d1 * d2 < 0.0 && d3 * d4 < 0.0
}

/// The point of a normalised box `[x1, y1, x2, y2]` that stands for the object's position.
pub fn ground_point(bbox: [f32; 4]) -> [f32; 2] {
    [(bbox[0] + bbox[2]) / 2.0, bbox[3]]
}

/// One camera's zones and lines, and where each track was, to turn positions into events.
#[derive(Debug, Default)]
pub struct Geometry {
    zones: Vec<ZoneConfig>,
    lines: Vec<LineConfig>,
    /// Per track: its last position, and since when it is in each zone it is in.
    tracks: HashMap<u64, TrackPlace>,
}

/// A track inside a zone has left it only once it has been outside this long (seconds). A
/// passer-by in front of someone waiting merges with them into one box for a frame or two,
/// and its bottom edge steps out of the zone: without this the waiting person "left" and
/// "entered" again, and raised a second dwell event (seen on the synthetic evaluation clip).
const EXIT_AFTER_S: f64 = 1.0;

#[derive(Debug, Default)]
struct TrackPlace {
    last: Option<[f32; 2]>,
    inside: HashMap<String, f64>,
    /// Zones the track is in but was last seen outside of, since when.
    stepped_out: HashMap<String, f64>,
    /// Zones whose dwell event this track already raised, while it stays in them.
    dwelt: HashSet<String>,
}

impl Geometry {
    /// The camera's zones and lines, already validated.
    pub fn new(zones: Vec<ZoneConfig>, lines: Vec<LineConfig>) -> Self {
        Self {
            zones,
            lines,
            tracks: HashMap::new(),
        }
    }

    pub fn zones(&self) -> &[ZoneConfig] {
        &self.zones
    }

    /// Replaces the zones and lines (drawn anew through the API) without an event: tracks
    /// keep their place in the zones that did not change; in a changed zone their stay starts
    /// over (one that stands in it enters it again), and a removed zone is left silently.
    pub fn redraw(&mut self, zones: Vec<ZoneConfig>, lines: Vec<LineConfig>) {
        let unchanged: HashSet<&str> = (zones.iter())
            .filter(|zone| self.zones.contains(zone))
            .map(|zone| zone.id.as_str())
            .collect();
        for place in self.tracks.values_mut() {
            place
                .inside
                .retain(|zone, _| unchanged.contains(zone.as_str()));
            place
                .stepped_out
                .retain(|zone, _| unchanged.contains(zone.as_str()));
            place.dwelt.retain(|zone| unchanged.contains(zone.as_str()));
        }
        self.zones = zones;
        self.lines = lines;
    }

    /// A track of `class` is at `point` (normalised) at `time` (seconds).
    pub fn moved(
        &mut self,
        track: u64,
        class: &str,
        point: [f32; 2],
        time: f64,
    ) -> Vec<GeometryEvent> {
        let mut events = Vec::new();
        let place = self.tracks.entry(track).or_default();
        if let Some(before) = place.last {
            for line in self.lines.iter().filter(|l| watches(&l.classes, class)) {
                if let Some(direction) = line.crossing(before, point) {
                    events.push(GeometryEvent::Crossed {
                        line: line.id.clone(),
                        track,
                        direction,
                    });
                }
            }
        }
        place.last = Some(point);
        for zone in &self.zones {
            // A track whose class the zone does not watch (or no longer, when the vote over
            // its detections changes its class) is outside it.
            let inside = watches(&zone.classes, class) && zone.contains(point);
            match (inside, place.inside.get(&zone.id).copied()) {
                (true, Some(_)) if place.stepped_out.remove(&zone.id).is_some() => {}
                (true, None) => {
                    place.inside.insert(zone.id.clone(), time);
                    events.push(GeometryEvent::Entered {
                        zone: zone.id.clone(),
                        track,
                    });
                }
                (true, Some(since)) => {
                    let dwell_s = time - since;
                    if zone.dwell_s.is_some_and(|limit| dwell_s >= limit)
                        && place.dwelt.insert(zone.id.clone())
                    {
                        events.push(GeometryEvent::DwellExceeded {
                            zone: zone.id.clone(),
                            track,
                            dwell_s,
                        });
                    }
                }
                (false, Some(since)) => {
                    let out_since = *place.stepped_out.entry(zone.id.clone()).or_insert(time);
                    if time - out_since >= EXIT_AFTER_S {
                        place.inside.remove(&zone.id);
                        place.dwelt.remove(&zone.id);
                        place.stepped_out.remove(&zone.id);
                        events.push(GeometryEvent::Left {
                            zone: zone.id.clone(),
                            track,
                            dwell_s: out_since - since,
                        });
                    }
                }
                (false, None) => {}
            }
        }
        events
    }

    /// The track ended: it leaves every zone it was in.
    pub fn ended(&mut self, track: u64, time: f64) -> Vec<GeometryEvent> {
        let Some(place) = self.tracks.remove(&track) else {
            return Vec::new();
        };
        let mut left: Vec<(String, f64)> = place.inside.into_iter().collect();
        left.sort_by(|a, b| a.0.cmp(&b.0));
        left.into_iter()
            .map(|(zone, since)| {
                let until = place.stepped_out.get(&zone).copied().unwrap_or(time);
                GeometryEvent::Left {
                    zone,
                    track,
                    dwell_s: until - since,
                }
            })
            .collect()
    }

    /// How many of the given tracks stand in each zone now.
    pub fn occupancy<'a>(&self, tracks: impl Iterator<Item = &'a u64>) -> HashMap<&str, usize> {
        let mut counts: HashMap<&str, usize> =
            self.zones.iter().map(|z| (z.id.as_str(), 0)).collect();
        for track in tracks {
            if let Some(place) = self.tracks.get(track) {
                for zone in place.inside.keys() {
                    if let Some(count) = counts.get_mut(zone.as_str()) {
                        *count += 1;
                    }
                }
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(points: Vec<[f32; 2]>) -> ZoneConfig {
        ZoneConfig {
            id: "gate".into(),
            camera: "street".into(),
            points,
            dwell_s: Some(2.0),
            classes: Vec::new(),
        }
    }

    fn square() -> ZoneConfig {
        zone(vec![[0.2, 0.2], [0.6, 0.2], [0.6, 0.6], [0.2, 0.6]])
    }

    fn vertical_line() -> LineConfig {
        LineConfig {
            id: "kerb".into(),
            camera: "street".into(),
            from: [0.5, 0.0],
            to: [0.5, 1.0],
            classes: Vec::new(),
        }
    }

    #[test]
    fn bad_zones_and_lines_are_refused_with_the_reason() {
        assert_eq!(
            zone(vec![[0.1, 0.1], [0.2, 0.2]]).validate(),
            Err(GeometryError::TooFewPoints("gate".into(), 2))
        );
        assert!(matches!(
            zone(vec![[0.1, 0.1], [1.2, 0.2], [0.3, 0.5]]).validate(),
            Err(GeometryError::OutOfRange { .. })
        ));
        // A bow tie: the edges 0 and 2 cross.
        assert_eq!(
            zone(vec![[0.1, 0.1], [0.5, 0.5], [0.5, 0.1], [0.1, 0.5]]).validate(),
            Err(GeometryError::SelfIntersecting("gate".into(), 0, 2))
        );
        assert_eq!(square().validate(), Ok(()));
        let mut line = vertical_line();
        line.to = line.from;
        assert_eq!(
            line.validate(),
            Err(GeometryError::ZeroLength("kerb".into()))
        );
        line.id = "bad id".into();
        assert!(matches!(line.validate(), Err(GeometryError::Id(_))));
        let mut vans = square();
        vans.classes = vec!["car".into(), "van".into()];
        assert_eq!(
            vans.validate(),
            Err(GeometryError::UnknownClass("gate".into(), "van".into()))
        );
    }

    #[test]
    fn a_zone_watching_cars_ignores_people_and_a_line_counts_only_its_classes() {
        let mut cars_only = square();
        cars_only.classes = vec!["car".into()];
        let mut kerb = vertical_line();
        kerb.classes = vec!["car".into()];
        let mut geometry = Geometry::new(vec![cars_only], vec![kerb]);
        for (t, x) in [0.3f32, 0.55].into_iter().enumerate() {
            assert_eq!(geometry.moved(1, "person", [x, 0.4], t as f64), vec![]);
        }
        let events = geometry.moved(2, "car", [0.3, 0.4], 0.0);
        assert_eq!(
            events,
            vec![GeometryEvent::Entered {
                zone: "gate".into(),
                track: 2
            }]
        );
    }

    #[test]
    fn a_redraw_keeps_stays_in_unchanged_zones_and_restarts_them_in_changed_ones() {
        let mut other = square();
        other.id = "yard".into();
        let mut geometry = Geometry::new(vec![square(), other.clone()], vec![]);
        geometry.moved(1, "person", [0.3, 0.3], 0.0);
        // `yard` grows, `gate` stays as it was.
        other.points = vec![[0.1, 0.1], [0.7, 0.1], [0.7, 0.7], [0.1, 0.7]];
        geometry.redraw(vec![square(), other], vec![]);
        let events = geometry.moved(1, "person", [0.3, 0.3], 3.0);
        assert_eq!(
            events,
            vec![
                GeometryEvent::DwellExceeded {
                    zone: "gate".into(),
                    track: 1,
                    dwell_s: 3.0
                },
                GeometryEvent::Entered {
                    zone: "yard".into(),
                    track: 1
                },
            ]
        );
        // Removed: left without an event, and no longer counted.
        geometry.redraw(vec![], vec![]);
        assert_eq!(geometry.moved(1, "person", [0.3, 0.3], 4.0), vec![]);
        assert!(geometry.occupancy([1u64].iter()).is_empty());
    }

    #[test]
    fn a_point_is_inside_a_concave_zone_only_where_it_is() {
        // An L shape.
        let l = zone(vec![
            [0.1, 0.1],
            [0.3, 0.1],
            [0.3, 0.5],
            [0.6, 0.5],
            [0.6, 0.7],
            [0.1, 0.7],
        ]);
        assert_eq!(l.validate(), Ok(()));
        assert!(l.contains([0.2, 0.3]));
        assert!(l.contains([0.5, 0.6]));
        assert!(!l.contains([0.5, 0.3]), "the notch of the L");
        assert!(!l.contains([0.9, 0.9]));
    }

    #[test]
    fn crossings_have_the_direction_seen_on_screen() {
        let line = vertical_line();
        assert_eq!(
            line.crossing([0.4, 0.5], [0.6, 0.5]),
            Some(Direction::LeftToRight)
        );
        assert_eq!(
            line.crossing([0.6, 0.5], [0.4, 0.6]),
            Some(Direction::RightToLeft)
        );
        assert_eq!(line.crossing([0.1, 0.5], [0.4, 0.5]), None);
        let road = LineConfig {
            from: [0.0, 0.5],
            to: [1.0, 0.4],
            ..vertical_line()
        };
        assert_eq!(
            road.crossing([0.5, 0.2], [0.5, 0.8]),
            Some(Direction::TopToBottom)
        );
    }

    #[test]
    fn a_walk_through_a_zone_and_across_a_line_gives_each_event_once() {
        let mut geometry = Geometry::new(vec![square()], vec![vertical_line()]);
        let mut events = Vec::new();
        // Left to right at y = 0.4, one step a second: in the zone from t = 1, two seconds
        // there at t = 3, across the line (x = 0.5) between t = 3 and 4, out at t = 5, and
        // still out a second later: it has left.
        for (t, x) in [0.1f32, 0.25, 0.3, 0.35, 0.55, 0.8, 0.9]
            .into_iter()
            .enumerate()
        {
            events.extend(geometry.moved(7, "person", [x, 0.4], t as f64));
        }
        assert_eq!(
            events,
            vec![
                GeometryEvent::Entered {
                    zone: "gate".into(),
                    track: 7
                },
                GeometryEvent::DwellExceeded {
                    zone: "gate".into(),
                    track: 7,
                    dwell_s: 2.0
                },
                GeometryEvent::Crossed {
                    line: "kerb".into(),
                    track: 7,
                    direction: Direction::LeftToRight
                },
                GeometryEvent::Left {
                    zone: "gate".into(),
                    track: 7,
                    dwell_s: 4.0
                },
            ]
        );
    }

    #[test]
    fn stepping_out_of_a_zone_for_a_moment_is_not_leaving_it() {
        let mut geometry = Geometry::new(vec![square()], vec![]);
        let mut events = Vec::new();
        // Waiting inside; a passer-by's merged box puts the ground point outside for 0.4 s.
        for (t, x) in [(0.0, 0.3), (0.2, 0.7), (0.4, 0.7), (0.6, 0.3), (3.0, 0.3)] {
            events.extend(geometry.moved(4, "person", [x, 0.4], t));
        }
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| match e {
                GeometryEvent::Entered { .. } => "entered",
                GeometryEvent::Left { .. } => "left",
                GeometryEvent::DwellExceeded { .. } => "dwell",
                GeometryEvent::Crossed { .. } => "crossed",
            })
            .collect();
        assert_eq!(kinds, ["entered", "dwell"], "one entry, one dwell");
        assert_eq!(geometry.occupancy([4u64].iter())["gate"], 1);
    }

    #[test]
    fn a_track_that_ends_inside_leaves_and_counts_stop() {
        let mut geometry = Geometry::new(vec![square()], vec![]);
        geometry.moved(1, "person", [0.3, 0.3], 0.0);
        geometry.moved(2, "person", [0.9, 0.9], 0.0);
        assert_eq!(geometry.occupancy([1u64, 2].iter())["gate"], 1);
        let left = geometry.ended(1, 5.0);
        assert_eq!(
            left,
            vec![GeometryEvent::Left {
                zone: "gate".into(),
                track: 1,
                dwell_s: 5.0
            }]
        );
        assert_eq!(geometry.occupancy([1u64, 2].iter())["gate"], 0);
    }
}

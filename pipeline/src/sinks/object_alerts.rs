//! The object alerts sink: checks the object rules (`kind = "object"` in `[[alerts.rules]]`
//! and the API) on every frame the objects stage saw, and publishes what fires through the
//! shared [`AlertPublisher`] (`kafka.topics.alerts`, Redis, `argus_alerts_fired_total`).
//!
//! A rule fires on a frame when at least `min_count` tracks of its class are in view (in its
//! zone, for at least `min_dwell_s`, when it names one), or when one of them crosses its line
//! (in its direction). A track fires a rule at most once while it lives (a parked car alerts
//! once, not every minute), and after firing the rule stays quiet on the camera for its
//! `cooldown_s` of video time: a new track that would fire it meanwhile is counted once in
//! `argus_alerts_suppressed_total`, and may fire it once the cooldown is over. It does not
//! need captions.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::captions::alerts::{trigger, AlertRules, CompiledRule, Condition, Cooldowns};
use crate::captions::evidence::time_label;
use crate::messages::{Alert, DecidedBy, EvidenceLine, ObjectEventKind};
use crate::objects::{FrameObjects, SeenObject};
use crate::publish::AlertPublisher;
use crate::recordings::ClipLinks;
use crate::stream::{AnalysedFrame, FinishedStream, FrameSink};

/// An object alert's clip starts this long before what fired it held, and ends this long
/// after the frame it fired on.
const ALERT_CLIP_MARGIN: chrono::Duration = chrono::Duration::seconds(5);

/// Width of alert thumbnails (pixels), as chunk alerts have.
const THUMBNAIL_WIDTH: u32 = 320;

pub struct ObjectAlertSink {
    rules: AlertRules,
    alerts: AlertPublisher,
    /// Alerts link to the clip of their span.
    clips: ClipLinks,
    cameras: Mutex<HashMap<String, RuleWatch>>,
}

impl ObjectAlertSink {
    pub fn new(rules: AlertRules, alerts: AlertPublisher, clips: ClipLinks) -> Self {
        Self {
            rules,
            alerts,
            clips,
            cameras: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl FrameSink for ObjectAlertSink {
    async fn observe(&self, frame: &AnalysedFrame) {
        let Some(objects) = &frame.objects else {
            return;
        };
        let rules: Vec<CompiledRule> = (self.rules.snapshot().into_iter())
            .filter(|rule| !rule.on_chunks())
            .collect();
        let camera = &*frame.camera;
        let (fired, suppressed) = {
            let mut cameras = self.cameras.lock().expect("object alert cameras lock");
            let watch = cameras.entry(camera.to_owned()).or_default();
            let fired = watch.observe(camera, frame.wall_time, objects, &rules);
            (fired, std::mem::take(&mut watch.suppressed))
        };
        for rule in suppressed {
            self.alerts.suppressed(camera, &rule);
        }
        if fired.is_empty() {
            return;
        }
        // One picture for every rule the frame fired.
        let thumbnail_jpeg = frame.image.to_jpeg(THUMBNAIL_WIDTH, 75).ok().map(|jpeg| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(jpeg)
        });
        for firing in fired {
            let rule = rules.iter().find(|r| r.rule.id == firing.rule_id);
            let confidence = firing.confidence;
            let first = firing
                .evidence
                .first()
                .map(|l| l.text.clone())
                .unwrap_or_default();
            let reason = format!(
                "{first}{}, at {}",
                match firing.evidence.len() {
                    0 | 1 => String::new(),
                    n => format!(" (and {} more)", n - 1),
                },
                time_label(frame.wall_time)
            );
            let alert = Alert {
                schema_version: Alert::SCHEMA_VERSION,
                message_id: Uuid::now_v7(),
                camera_id: camera.to_owned(),
                source: frame.source.clone(),
                rule_id: firing.rule_id,
                kind: "object".to_owned(),
                start: firing.start,
                end: frame.wall_time,
                evidence: firing.evidence,
                track_ids: Some(firing.track_ids),
                answer: None,
                thumbnail_jpeg: thumbnail_jpeg.clone(),
                produced_at: Utc::now(),
                trigger: rule.map(|r| trigger(&r.rule)),
                reason: Some(reason),
                confidence: Some(confidence),
                decided_by: vec![DecidedBy {
                    evidence: "objects".into(),
                    score: confidence,
                    detail: first,
                }],
                // What fired it is often an instant (a line crossed): the clip shows the
                // seconds around it too.
                clip: self.clips.link(
                    camera,
                    firing.start - ALERT_CLIP_MARGIN,
                    frame.wall_time + ALERT_CLIP_MARGIN,
                ),
            };
            self.alerts.publish(&alert).await;
        }
    }

    /// The camera's tracks end with its stream: what the rules remember of it goes too.
    async fn finish(&self, finished: &FinishedStream<'_>) {
        self.cameras
            .lock()
            .expect("object alert cameras lock")
            .remove(finished.camera);
    }
}

/// A rule that fired on a frame.
#[derive(Debug)]
struct Firing {
    rule_id: String,
    /// The tracks that fired it, each for the first time.
    track_ids: Vec<u64>,
    /// When what fired it began: the earliest zone entry of a dwell rule, else the frame.
    start: DateTime<Utc>,
    /// One line per track (after a count line when the rule wants more than one).
    evidence: Vec<EvidenceLine>,
    /// The detector's mean score of the tracks that fired it.
    confidence: f32,
}

/// One camera's memory for the object rules: where its tracks are, which tracks fired which
/// rule, and when each rule last fired.
#[derive(Debug, Default)]
struct RuleWatch {
    /// Tracks inside at least one zone: the track as last seen, and since when it is in each.
    inside: HashMap<u64, InZones>,
    /// Per rule id, the live tracks that already fired it.
    fired: HashMap<String, HashSet<u64>>,
    /// Per rule id, the live tracks that would have fired it within its cooldown, each counted
    /// once as suppressed.
    held_back: HashMap<String, HashSet<u64>>,
    /// The rules whose repeats the last frame suppressed (once per new track held back).
    suppressed: Vec<String>,
    cooldowns: Cooldowns,
}

#[derive(Debug)]
struct InZones {
    object: SeenObject,
    since: HashMap<String, DateTime<Utc>>,
}

/// A track that satisfies a rule on a frame, and what it did.
struct Candidate<'a> {
    object: &'a SeenObject,
    /// When it entered the rule's zone.
    entered: Option<DateTime<Utc>>,
    /// The line crossing, by direction name.
    crossed: Option<&'a str>,
}

impl RuleWatch {
    /// Checks `rules` (the object rules in force) on what the objects stage saw in the
    /// camera's frame at `at`, and returns those that fire.
    fn observe(
        &mut self,
        camera: &str,
        at: DateTime<Utc>,
        objects: &FrameObjects,
        rules: &[CompiledRule],
    ) -> Vec<Firing> {
        self.follow_zones(objects);
        let mut fired = Vec::new();
        for rule in rules.iter().filter(|r| r.watches(camera) && r.in_hours(at)) {
            if let Some(firing) = self.check(camera, at, objects, rule) {
                fired.push(firing);
            }
        }
        // Ended tracks fire nothing more: forgetting them keeps the memory to live tracks.
        for happening in &objects.events {
            if let ObjectEventKind::TrackEnded { .. } = happening.kind {
                let track = happening.object.track_id;
                self.inside.remove(&track);
                for tracks in self.fired.values_mut().chain(self.held_back.values_mut()) {
                    tracks.remove(&track);
                }
            }
        }
        self.fired.retain(|_, tracks| !tracks.is_empty());
        self.held_back.retain(|_, tracks| !tracks.is_empty());
        fired
    }

    /// Zone entries and exits, from the frame's events; the tracks inside as last seen.
    fn follow_zones(&mut self, objects: &FrameObjects) {
        for happening in &objects.events {
            let track = happening.object.track_id;
            match &happening.kind {
                ObjectEventKind::ZoneEntered { zone } => {
                    let entry = self.inside.entry(track).or_insert_with(|| InZones {
                        object: happening.object.clone(),
                        since: HashMap::new(),
                    });
                    entry.since.insert(zone.clone(), happening.at);
                }
                ObjectEventKind::ZoneLeft { zone, .. } => {
                    if let Some(entry) = self.inside.get_mut(&track) {
                        entry.since.remove(zone);
                        if entry.since.is_empty() {
                            self.inside.remove(&track);
                        }
                    }
                }
                _ => {}
            }
        }
        for object in &objects.tracks {
            if let Some(entry) = self.inside.get_mut(&object.track_id) {
                entry.object = object.clone();
            }
        }
    }

    fn check(
        &mut self,
        camera: &str,
        at: DateTime<Utc>,
        objects: &FrameObjects,
        rule: &CompiledRule,
    ) -> Option<Firing> {
        let Condition::Object {
            class,
            zone,
            line,
            min_count,
            min_dwell_s,
            direction,
            ..
        } = &rule.rule.when
        else {
            return None;
        };
        let of_class = |object: &SeenObject| object.class == class;
        // Those that count towards min_count, and among them those that may fire the rule.
        let (present, candidates): (usize, Vec<Candidate<'_>>) = match (zone, line) {
            (Some(zone), _) => {
                let dwelt = |since: DateTime<Utc>| {
                    min_dwell_s.is_none_or(|dwell| seconds(at - since) >= dwell)
                };
                let inside: Vec<Candidate<'_>> = (self.inside.values())
                    .filter(|entry| of_class(&entry.object))
                    .filter_map(|entry| {
                        let since = *entry.since.get(zone)?;
                        dwelt(since).then_some(Candidate {
                            object: &entry.object,
                            entered: Some(since),
                            crossed: None,
                        })
                    })
                    .collect();
                (inside.len(), inside)
            }
            (None, Some(line)) => {
                let wanted = direction.map(direction_name);
                let crossings = (objects.events.iter())
                    .filter(|happening| of_class(&happening.object))
                    .filter_map(|happening| match &happening.kind {
                        ObjectEventKind::LineCrossed {
                            line: crossed,
                            direction,
                        } if crossed == line
                            && wanted.as_ref().is_none_or(|wanted| wanted == direction) =>
                        {
                            Some(Candidate {
                                object: &happening.object,
                                entered: None,
                                crossed: Some(direction.as_str()),
                            })
                        }
                        _ => None,
                    })
                    .collect();
                let in_view = objects.tracks.iter().filter(|o| of_class(o)).count();
                (in_view, crossings)
            }
            (None, None) => {
                let in_view: Vec<Candidate<'_>> = (objects.tracks.iter())
                    .filter(|object| of_class(object))
                    .map(|object| Candidate {
                        object,
                        entered: None,
                        crossed: None,
                    })
                    .collect();
                (in_view.len(), in_view)
            }
        };
        let already = self.fired.get(&rule.rule.id);
        let mut new: Vec<Candidate<'_>> = candidates
            .into_iter()
            .filter(|c| already.is_none_or(|fired| !fired.contains(&c.object.track_id)))
            .collect();
        if present < *min_count || new.is_empty() {
            return None;
        }
        if !self.cooldowns.fire(&rule.rule, camera, at) {
            let held = self.held_back.entry(rule.rule.id.clone()).or_default();
            let newly_held = new
                .iter()
                .filter(|c| held.insert(c.object.track_id))
                .count();
            self.suppressed
                .extend(std::iter::repeat_n(rule.rule.id.clone(), newly_held));
            return None;
        }
        new.sort_by_key(|c| c.object.track_id);
        new.dedup_by_key(|c| c.object.track_id);
        let place = match zone {
            Some(zone) => format!("in zone {zone}"),
            None => "in view".to_owned(),
        };
        let mut evidence = Vec::new();
        if *min_count > 1 {
            evidence.push(EvidenceLine {
                at,
                text: format!("{present} × {class} at once {place}"),
                confidence: 1.0,
                key_frame: false,
            });
        }
        evidence.extend(new.iter().map(|c| {
            let what = match (c.crossed, c.entered) {
                (Some(direction), _) => format!(
                    "crossed line {} {}",
                    line.as_deref().unwrap_or_default(),
                    direction.replace('_', " ")
                ),
                (None, Some(since)) if min_dwell_s.is_some() => {
                    format!("{place} for {:.0} s", seconds(at - since))
                }
                _ => place.clone(),
            };
            EvidenceLine {
                at,
                text: format!("{} {} {what}", c.object.class, c.object.track_id),
                confidence: c.object.score.clamp(0.0, 1.0),
                key_frame: false,
            }
        }));
        let start = (new.iter().filter_map(|c| c.entered))
            .filter(|_| min_dwell_s.is_some())
            .min()
            .unwrap_or(at);
        let track_ids: Vec<u64> = new.iter().map(|c| c.object.track_id).collect();
        self.fired
            .entry(rule.rule.id.clone())
            .or_default()
            .extend(&track_ids);
        let confidence = new
            .iter()
            .map(|c| c.object.score.clamp(0.0, 1.0))
            .sum::<f32>()
            / new.len() as f32;
        Some(Firing {
            rule_id: rule.rule.id.clone(),
            track_ids,
            start,
            evidence,
            confidence,
        })
    }
}

fn seconds(span: chrono::Duration) -> f64 {
    span.num_milliseconds() as f64 / 1e3
}

/// A direction as object events name it (its serde name, `left_to_right`, ...).
fn direction_name(direction: crate::objects::zones::Direction) -> String {
    serde_json::to_value(direction)
        .ok()
        .and_then(|name| name.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::captions::alerts::AlertRule;
    use crate::objects::ObjectHappening;

    fn rule(id: &str, cooldown_s: f64, when: serde_json::Value) -> CompiledRule {
        let rule: AlertRule = serde_json::from_value(serde_json::json!({
            "id": id, "cameras": ["street"], "cooldown_s": cooldown_s, "when": when
        }))
        .unwrap();
        rule.compile().unwrap()
    }

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_767_261_600 + s, 0).unwrap() // 2026-01-01T10:00:00Z
    }

    fn object(track_id: u64, class: &'static str) -> SeenObject {
        SeenObject {
            track_id,
            class,
            score: 0.8,
            bbox: [0.4, 0.4, 0.5, 0.8],
            first_seen: at(0),
            colour: None,
        }
    }

    fn happening(object: &SeenObject, s: i64, kind: ObjectEventKind) -> ObjectHappening {
        ObjectHappening {
            object: object.clone(),
            at: at(s),
            kind,
        }
    }

    fn crossed(object: &SeenObject, s: i64, direction: &str) -> ObjectHappening {
        let kind = ObjectEventKind::LineCrossed {
            line: "middle".into(),
            direction: direction.into(),
        };
        happening(object, s, kind)
    }

    fn frame(tracks: &[&SeenObject], events: Vec<ObjectHappening>) -> FrameObjects {
        FrameObjects {
            detected: true,
            tracks: tracks.iter().map(|&o| o.clone()).collect(),
            events,
            zone_counts: Vec::new(),
        }
    }

    /// The rule ids and tracks that fire on a frame at second `s`.
    fn fires(
        watch: &mut RuleWatch,
        s: i64,
        objects: &FrameObjects,
        rules: &[CompiledRule],
    ) -> Vec<(String, Vec<u64>)> {
        (watch.observe("street", at(s), objects, rules).into_iter())
            .map(|firing| (firing.rule_id, firing.track_ids))
            .collect()
    }

    fn fired(rule: &str, tracks: &[u64]) -> Vec<(String, Vec<u64>)> {
        vec![(rule.to_owned(), tracks.to_vec())]
    }

    #[test]
    fn a_line_rule_fires_once_per_track_crossing_its_way() {
        let rules = [rule(
            "walkers",
            0.0,
            serde_json::json!({ "kind": "object", "class": "person", "line": "middle",
                                "direction": "left_to_right" }),
        )];
        let (alice, bob, car) = (object(1, "person"), object(2, "person"), object(3, "car"));
        let mut watch = RuleWatch::default();
        let none = Vec::<(String, Vec<u64>)>::new();
        let wrong_way = frame(&[&alice], vec![crossed(&alice, 1, "right_to_left")]);
        assert_eq!(fires(&mut watch, 1, &wrong_way, &rules), none);
        let a_car = frame(&[&car], vec![crossed(&car, 2, "left_to_right")]);
        assert_eq!(fires(&mut watch, 2, &a_car, &rules), none, "not a person");
        let across = frame(&[&alice], vec![crossed(&alice, 3, "left_to_right")]);
        assert_eq!(
            fires(&mut watch, 3, &across, &rules),
            fired("walkers", &[1])
        );
        // Back and across again: the same track does not fire the rule twice.
        let again = frame(&[&alice], vec![crossed(&alice, 9, "left_to_right")]);
        assert_eq!(fires(&mut watch, 9, &again, &rules), none);
        let both = frame(
            &[&alice, &bob],
            vec![
                crossed(&alice, 10, "left_to_right"),
                crossed(&bob, 10, "left_to_right"),
            ],
        );
        assert_eq!(fires(&mut watch, 10, &both, &rules), fired("walkers", &[2]));
        // Walking without crossing fires nothing.
        assert_eq!(
            fires(&mut watch, 11, &frame(&[&alice, &bob], vec![]), &rules),
            none
        );
    }

    #[test]
    fn the_cooldown_keeps_a_rule_quiet_and_a_quiet_track_may_fire_later() {
        let rules = [rule(
            "anyone",
            30.0,
            serde_json::json!({ "kind": "object", "class": "person" }),
        )];
        let (alice, bob) = (object(1, "person"), object(2, "person"));
        let mut watch = RuleWatch::default();
        assert_eq!(
            fires(&mut watch, 0, &frame(&[&alice], vec![]), &rules),
            fired("anyone", &[1])
        );
        // Bob arrives within the cooldown: nothing, and he is not counted as fired...
        let together = frame(&[&alice, &bob], vec![]);
        assert!(fires(&mut watch, 10, &together, &rules).is_empty());
        assert_eq!(watch.suppressed, ["anyone"], "Bob's repeat, counted once");
        assert!(fires(&mut watch, 29, &together, &rules).is_empty());
        assert_eq!(watch.suppressed, ["anyone"], "not again for the same track");
        // ...so once it is over he fires it; Alice, who did, does not again.
        assert_eq!(
            fires(&mut watch, 30, &together, &rules),
            fired("anyone", &[2])
        );
        assert!(fires(&mut watch, 100, &together, &rules).is_empty());
    }

    #[test]
    fn an_ended_track_is_forgotten_and_a_new_one_fires() {
        let rules = [rule(
            "anyone",
            0.0,
            serde_json::json!({ "kind": "object", "class": "person" }),
        )];
        let (alice, carol) = (object(1, "person"), object(4, "person"));
        let mut watch = RuleWatch::default();
        assert_eq!(
            fires(&mut watch, 0, &frame(&[&alice], vec![]), &rules).len(),
            1
        );
        let ended = ObjectEventKind::TrackEnded { first_seen: at(0) };
        let gone = frame(&[], vec![happening(&alice, 5, ended)]);
        assert!(fires(&mut watch, 5, &gone, &rules).is_empty());
        assert!(watch.fired.is_empty(), "{watch:?}");
        assert_eq!(
            fires(&mut watch, 6, &frame(&[&carol], vec![]), &rules),
            fired("anyone", &[4])
        );
    }

    #[test]
    fn min_count_wants_that_many_in_the_zone_at_once() {
        let rules = [rule(
            "crowd",
            0.0,
            serde_json::json!({ "kind": "object", "class": "person", "zone": "door",
                                "min_count": 2 }),
        )];
        let (alice, bob, car) = (object(1, "person"), object(2, "person"), object(3, "car"));
        let entered = |o: &SeenObject, s| {
            let kind = ObjectEventKind::ZoneEntered {
                zone: "door".into(),
            };
            happening(o, s, kind)
        };
        let mut watch = RuleWatch::default();
        let one = frame(
            &[&alice, &bob, &car],
            vec![entered(&alice, 0), entered(&car, 0)],
        );
        assert!(
            fires(&mut watch, 0, &one, &rules).is_empty(),
            "one person and a car in the door, one outside"
        );
        let two = frame(&[&alice, &bob, &car], vec![entered(&bob, 1)]);
        let firing = watch.observe("street", at(1), &two, &rules);
        assert_eq!(firing.len(), 1);
        assert_eq!(firing[0].track_ids, vec![1, 2]);
        assert_eq!(
            firing[0].evidence[0].text,
            "2 × person at once in zone door"
        );
        assert_eq!(firing[0].evidence[1].text, "person 1 in zone door");
        // Bob steps out: one left, and both already fired.
        let left = ObjectEventKind::ZoneLeft {
            zone: "door".into(),
            dwell_s: 1.0,
        };
        let out = frame(&[&alice, &bob], vec![happening(&bob, 2, left)]);
        assert!(fires(&mut watch, 2, &out, &rules).is_empty());
        assert!(fires(&mut watch, 3, &frame(&[&alice, &bob], vec![]), &rules).is_empty());
    }

    #[test]
    fn a_dwell_rule_fires_once_a_track_stayed_long_enough_in_the_zone() {
        let rules = [rule(
            "parked",
            0.0,
            serde_json::json!({ "kind": "object", "class": "car", "zone": "gate",
                                "min_dwell_s": 30.0 }),
        )];
        let car = object(7, "car");
        let entered = ObjectEventKind::ZoneEntered {
            zone: "gate".into(),
        };
        let mut watch = RuleWatch::default();
        let arrives = frame(&[&car], vec![happening(&car, 100, entered)]);
        assert!(fires(&mut watch, 100, &arrives, &rules).is_empty());
        // Frames where nothing moved still carry the parked car; its dwell grows with them.
        let parked = FrameObjects {
            detected: false,
            ..frame(&[&car], vec![])
        };
        assert!(fires(&mut watch, 129, &parked, &rules).is_empty());
        let firing = watch.observe("street", at(130), &parked, &rules);
        assert_eq!(firing.len(), 1);
        assert_eq!(firing[0].start, at(100), "from when it entered");
        assert_eq!(firing[0].evidence[0].text, "car 7 in zone gate for 30 s");
        for s in [190, 250, 1000] {
            assert!(
                fires(&mut watch, s, &parked, &rules).is_empty(),
                "once per car"
            );
        }
    }

    #[test]
    fn rules_fire_only_in_their_hours_and_on_their_cameras() {
        let rules = [rule(
            "night",
            0.0,
            serde_json::json!({ "kind": "object", "class": "person", "hours": "22:00-06:00" }),
        )];
        let alice = object(1, "person");
        let mut watch = RuleWatch::default();
        let seen = frame(&[&alice], vec![]);
        // at(0) is 10:00 UTC; 13 hours later it is 23:00.
        assert!(fires(&mut watch, 0, &seen, &rules).is_empty());
        assert!(watch
            .observe("lobby", at(13 * 3600), &seen, &rules)
            .is_empty());
        assert_eq!(
            fires(&mut watch, 13 * 3600, &seen, &rules),
            fired("night", &[1])
        );
    }
}

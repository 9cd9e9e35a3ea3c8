//! Standing alert rules, checked on every chunk of the cameras they watch.
//!
//! A rule is either a condition on what perception saw (on-screen text matching a pattern, an
//! ImageNet tag, motion in a place of the view during some hours) or a yes/no question in
//! plain words ("is a vehicle blocking the gate?") that the LLM answers from the chunk's
//! observations, as VSS's alert review does. A question rule fires only on a `yes` the
//! self-correction controller accepted, or on the `yes` of the correction round: the second
//! look is what keeps a small model's false alarms down.
//!
//! Rules come from the configuration (`[[alerts.rules]]`) and from the API; those added
//! through the API are kept in Redis, so they survive a restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use argus_operators::detection::COCO_CLASSES;
use argus_operators::tagging::Tag;
use argus_operators::video_qa::is_yes_no_question;
use chrono::{DateTime, Timelike, Utc};
use regex::Regex;

use super::chunk::Chunk;
use super::evidence::time_label;
pub use crate::config::{AlertRule, Condition, RuleScope};
use crate::messages::EvidenceLine;

/// Alerts kept per camera in Redis (the newest).
pub const KEPT_ALERTS: isize = 1000;

/// The Redis list of a camera's newest alerts.
pub fn alerts_key(prefix: &str, camera: &str) -> String {
    format!("{prefix}:alerts:camera:{camera}")
}

/// The Redis hash of every listed alert's id → its camera (acknowledgements find alerts by
/// id alone).
pub fn alert_ids_key(prefix: &str) -> String {
    format!("{prefix}:alerts:ids")
}

/// The Redis hash of a camera's acknowledged alerts: id → [`crate::messages::Acknowledged`].
pub fn alert_acks_key(prefix: &str, camera: &str) -> String {
    format!("{prefix}:alerts:acks:{camera}")
}

/// A rule's cooldown is at most a day: longer is a rule that should be removed instead.
pub const MAX_COOLDOWN_S: f64 = 86_400.0;

/// An object rule counts at most this many tracks at once.
const MAX_MIN_COUNT: usize = 1000;

/// The places of the view a motion rule may name (a 3×3 grid).
pub const PLACES: [&str; 9] = [
    "top left",
    "top",
    "top right",
    "left",
    "centre",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
];

/// A rule ready to check: its pattern compiled, its hours parsed.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub rule: AlertRule,
    pattern: Option<Regex>,
    /// Minutes of the day `[start, end)`, wrapping past midnight when `start > end`.
    hours: Option<(u32, u32)>,
}

impl AlertRule {
    /// Checks the rule and prepares it, or says what is wrong with it.
    pub fn compile(self) -> Result<CompiledRule, String> {
        if !valid_id(&self.id) {
            return Err(format!(
                "rule id `{}` must be 1-128 letters, digits, `-`, `_` or `.`",
                self.id
            ));
        }
        if !(0.0..=MAX_COOLDOWN_S).contains(&self.cooldown_s) {
            return Err(format!(
                "rule `{}`: cooldown_s must be within 0..={MAX_COOLDOWN_S} (seconds)",
                self.id
            ));
        }
        let mut pattern = None;
        let mut hours = None;
        let parse_span = |span: &Option<String>| match span {
            Some(span) => parse_hours(span).map(Some).ok_or_else(|| {
                format!(
                    "rule `{}`: hours `{span}` must look like 22:00-06:00",
                    self.id
                )
            }),
            None => Ok(None),
        };
        match &self.when {
            Condition::Text { pattern: text } => {
                pattern = Some(
                    Regex::new(text)
                        .map_err(|e| format!("rule `{}`: invalid pattern: {e}", self.id))?,
                );
            }
            Condition::Tag { label, min_score } => {
                if label.trim().is_empty() || !(0.0..=1.0).contains(min_score) {
                    return Err(format!(
                        "rule `{}`: a tag rule needs a label and min_score within 0..=1",
                        self.id
                    ));
                }
            }
            Condition::Motion {
                min_level,
                place,
                hours: span,
            } => {
                if !(0.0..=1.0).contains(min_level) {
                    return Err(format!(
                        "rule `{}`: min_level must be within 0..=1",
                        self.id
                    ));
                }
                if let Some(place) = place {
                    if !PLACES.contains(&place.as_str()) {
                        return Err(format!(
                            "rule `{}`: place `{place}` is not one of {}",
                            self.id,
                            PLACES.join(", ")
                        ));
                    }
                }
                hours = parse_span(span)?;
            }
            Condition::Question { question } => {
                if !is_yes_no_question(question) || question.chars().count() > 1000 {
                    return Err(format!(
                        "rule `{}`: the question must be a yes/no question (\"is ...?\", \
                         \"are ...?\", \"was ...?\") of at most 1000 characters",
                        self.id
                    ));
                }
            }
            Condition::Object {
                class,
                zone,
                line,
                min_count,
                min_dwell_s,
                direction,
                hours: span,
            } => {
                check_object_rule(
                    &self.id,
                    class,
                    zone.as_deref(),
                    line.as_deref(),
                    *min_count,
                    *min_dwell_s,
                    direction.is_some(),
                )?;
                hours = parse_span(span)?;
            }
        }
        Ok(CompiledRule {
            rule: self,
            pattern,
            hours,
        })
    }
}

/// What is wrong with an object rule's fields, if anything. A zone or line is not looked up:
/// each camera has its own (and they change at run time), so a rule watching a zone fires
/// on the cameras that have one with that id, and nowhere else.
fn check_object_rule(
    id: &str,
    class: &str,
    zone: Option<&str>,
    line: Option<&str>,
    min_count: usize,
    min_dwell_s: Option<f64>,
    has_direction: bool,
) -> Result<(), String> {
    if !COCO_CLASSES.contains(&class) {
        return Err(format!(
            "rule `{id}`: class `{class}` is not a COCO class (person, bicycle, car, \
             motorcycle, bus, truck, ...)"
        ));
    }
    if zone.is_some() && line.is_some() {
        return Err(format!(
            "rule `{id}`: an object rule watches a zone or a line, not both"
        ));
    }
    for (what, named) in [("zone", zone), ("line", line)] {
        if named.is_some_and(|name| !valid_id(name)) {
            return Err(format!(
                "rule `{id}`: {what} `{}` must be 1-128 letters, digits, `-`, `_` or `.`",
                named.unwrap_or_default()
            ));
        }
    }
    if !(1..=MAX_MIN_COUNT).contains(&min_count) {
        return Err(format!(
            "rule `{id}`: min_count must be within 1..={MAX_MIN_COUNT}"
        ));
    }
    if let Some(dwell) = min_dwell_s {
        if zone.is_none() {
            return Err(format!(
                "rule `{id}`: min_dwell_s is the time spent in a zone: name the zone"
            ));
        }
        if !(dwell.is_finite() && dwell > 0.0) {
            return Err(format!(
                "rule `{id}`: min_dwell_s must be a positive number of seconds"
            ));
        }
    }
    if has_direction && line.is_none() {
        return Err(format!(
            "rule `{id}`: direction is the way a line is crossed: name the line"
        ));
    }
    Ok(())
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn parse_hours(span: &str) -> Option<(u32, u32)> {
    let minutes = |hm: &str| {
        let (h, m) = hm.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    let (start, end) = span.split_once('-')?;
    Some((minutes(start)?, minutes(end)?))
}

impl CompiledRule {
    pub fn watches(&self, camera: &str) -> bool {
        self.rule.cameras.is_empty() || self.rule.cameras.iter().any(|c| c == camera)
    }

    /// The question of a question rule.
    pub fn question(&self) -> Option<&str> {
        match &self.rule.when {
            Condition::Question { question } => Some(question),
            _ => None,
        }
    }

    /// For a perception rule: the frames (indices into `chunk.frames`) that satisfy it, with
    /// what each showed. `tags` are the tags of the frames that were tagged.
    pub fn matching_frames(
        &self,
        chunk: &Chunk,
        tags: &[(usize, &[Tag])],
    ) -> Vec<(usize, EvidenceLine)> {
        let line = |frame: usize, text: String, confidence: f32| {
            (
                frame,
                EvidenceLine {
                    at: chunk.frames[frame].wall_time,
                    text,
                    confidence,
                    key_frame: false,
                },
            )
        };
        match &self.rule.when {
            Condition::Text { .. } => {
                let pattern = self.pattern.as_ref().expect("compiled with its pattern");
                chunk
                    .frames
                    .iter()
                    .enumerate()
                    .filter_map(|(i, frame)| {
                        let (text, score) =
                            frame.ocr.iter().find(|(text, _)| pattern.is_match(text))?;
                        Some(line(i, format!("text on screen: \"{text}\""), *score))
                    })
                    .collect()
            }
            Condition::Tag { label, min_score } => tags
                .iter()
                .filter_map(|(frame, tags)| {
                    let tag = tags.iter().find(|t| {
                        t.score >= *min_score
                            && t.label
                                .split(',')
                                .any(|name| name.trim().eq_ignore_ascii_case(label.trim()))
                    })?;
                    Some(line(
                        *frame,
                        format!("objects: {} ({:.0}%)", tag.label, tag.score * 100.0),
                        tag.score,
                    ))
                })
                .collect(),
            Condition::Motion {
                min_level, place, ..
            } => chunk
                .frames
                .iter()
                .enumerate()
                .filter(|(_, frame)| self.in_hours(frame.wall_time))
                .filter_map(|(i, frame)| {
                    let motion = &frame.motion;
                    if motion.level < *min_level {
                        return None;
                    }
                    let largest = motion.regions.first().map(|r| r.place());
                    if place.is_some() && largest != place.as_deref() {
                        return None;
                    }
                    Some(line(
                        i,
                        format!(
                            "motion in {:.0}% of the view{}",
                            (motion.level * 100.0).max(1.0),
                            largest.map(|p| format!(" ({p})")).unwrap_or_default()
                        ),
                        motion.level.min(1.0),
                    ))
                })
                .collect(),
            Condition::Question { .. } | Condition::Object { .. } => Vec::new(),
        }
    }

    /// Whether the rule is checked on chunks (object rules are checked on frames).
    pub fn on_chunks(&self) -> bool {
        !matches!(self.rule.when, Condition::Object { .. })
    }

    /// Whether `at` falls in the rule's hours (always, for a rule without).
    pub fn in_hours(&self, at: DateTime<Utc>) -> bool {
        let Some((start, end)) = self.hours else {
            return true;
        };
        let minute = at.hour() * 60 + at.minute();
        if start <= end {
            (start..end).contains(&minute)
        } else {
            minute >= start || minute < end
        }
    }
}

/// The rules in force, shared by the API (which changes them) and the captioning thread
/// (which reads a snapshot per chunk).
#[derive(Clone, Default)]
pub struct AlertRules {
    rules: Arc<RwLock<BTreeMap<String, CompiledRule>>>,
}

impl AlertRules {
    pub fn snapshot(&self) -> Vec<CompiledRule> {
        self.rules
            .read()
            .expect("alert rules lock")
            .values()
            .cloned()
            .collect()
    }

    pub fn list(&self) -> Vec<AlertRule> {
        self.snapshot().into_iter().map(|c| c.rule).collect()
    }

    /// Adds a rule; `replace` allows an existing id (loading), otherwise it is refused.
    pub fn insert(&self, rule: CompiledRule, replace: bool) -> Result<(), String> {
        let mut rules = self.rules.write().expect("alert rules lock");
        if !replace && rules.contains_key(&rule.rule.id) {
            return Err(format!("rule `{}` exists", rule.rule.id));
        }
        rules.insert(rule.rule.id.clone(), rule);
        Ok(())
    }

    /// The rule with this id, if it is in force.
    pub fn get(&self, id: &str) -> Option<CompiledRule> {
        self.rules
            .read()
            .expect("alert rules lock")
            .get(id)
            .cloned()
    }

    pub fn remove(&self, id: &str) -> bool {
        self.rules
            .write()
            .expect("alert rules lock")
            .remove(id)
            .is_some()
    }
}

/// When each rule last fired on each camera, so that it stays quiet for its `cooldown_s`.
/// Times are video times (a chunk's start, a frame's time): a recording read faster than
/// real time keeps the same quiet spans as the live camera would.
#[derive(Debug, Default)]
pub struct Cooldowns {
    last_fired: HashMap<(String, String), DateTime<Utc>>,
}

impl Cooldowns {
    /// Whether `rule` may fire on `camera` at `at`; when it may, it counts as fired then. A
    /// camera whose video time went back (another recording under its id) starts afresh.
    pub fn fire(&mut self, rule: &AlertRule, camera: &str, at: DateTime<Utc>) -> bool {
        let key = (rule.id.clone(), camera.to_owned());
        if let Some(&last) = self.last_fired.get(&key) {
            let cooldown = chrono::Duration::milliseconds((rule.cooldown_s * 1e3) as i64);
            if last <= at && at < last + cooldown {
                return false;
            }
        }
        self.last_fired.insert(key, at);
        true
    }
}

/// What a rule watches for, in words: an alert's `trigger`.
pub fn trigger(rule: &AlertRule) -> String {
    match &rule.when {
        Condition::Text { pattern } => format!("on-screen text matching {pattern}"),
        Condition::Tag { label, min_score } => {
            format!("ImageNet tag {label} at {:.0}% or more", min_score * 100.0)
        }
        Condition::Motion {
            min_level,
            place,
            hours,
        } => format!(
            "motion in {:.1}% of the view or more{}{}",
            min_level * 100.0,
            place
                .as_ref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default(),
            hours
                .as_ref()
                .map(|h| format!(", {h} UTC"))
                .unwrap_or_default()
        ),
        Condition::Question { question } => format!("question: {question}"),
        Condition::Object {
            class,
            zone,
            line,
            min_count,
            min_dwell_s,
            direction,
            hours,
        } => {
            let mut said = format!("{min_count} × {class}");
            if let Some(zone) = zone {
                said.push_str(&format!(" in zone {zone}"));
            }
            if let Some(dwell) = min_dwell_s {
                said.push_str(&format!(" for {dwell:.0} s"));
            }
            if let Some(line) = line {
                said.push_str(&format!(" crossing line {line}"));
            }
            if let Some(direction) = direction {
                let name = serde_json::to_value(direction)
                    .ok()
                    .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
                    .unwrap_or_default();
                said.push_str(&format!(" {name}"));
            }
            if let Some(hours) = hours {
                said.push_str(&format!(", {hours} UTC"));
            }
            said
        }
    }
}

/// The one-line reason of an alert that perception evidence fired: what matched, where in
/// the span, and how many times.
pub fn perception_reason(
    rule: &AlertRule,
    evidence: &[EvidenceLine],
    start: DateTime<Utc>,
) -> String {
    let first = evidence
        .first()
        .map(|l| l.text.as_str())
        .unwrap_or("matched");
    let more = match evidence.len() {
        0 | 1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    format!(
        "{first}{more}, from {}: {}",
        time_label(start),
        trigger(rule)
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use argus_operators::motion::{Motion, MotionRegion};
    use argus_operators::BgrImage;

    use crate::objects::zones::Direction;
    use chrono::TimeZone;

    use super::super::chunk::{ChunkBuilder, ChunkFrame};
    use super::*;

    fn rule(toml_when: &str) -> Result<CompiledRule, String> {
        #[derive(serde::Deserialize)]
        struct File {
            rules: Vec<AlertRule>,
        }
        use figment::providers::{Format, Toml};
        let file: File = figment::Figment::from(Toml::string(&format!(
            "[[rules]]\nid = \"r1\"\ncameras = [\"gate\"]\nwhen = {toml_when}\n"
        )))
        .extract()
        .map_err(|e| e.to_string())?;
        file.rules.into_iter().next().unwrap().compile()
    }

    fn chunk() -> Chunk {
        let mut builder = ChunkBuilder::new("gate", "test:", 10.0);
        let frame = |s: i64, text: &str, level: f32| ChunkFrame {
            wall_time: Utc.timestamp_opt(s, 0).unwrap(),
            image: Arc::new(BgrImage::new(1, 1, vec![0, 0, 0]).unwrap()),
            ocr: if text.is_empty() {
                vec![]
            } else {
                vec![(text.to_string(), 0.9)]
            },
            motion: Motion {
                level,
                regions: vec![MotionRegion {
                    x: 0.0,
                    y: 0.7,
                    width: 0.2,
                    height: 0.2,
                    area: level,
                }],
            },
            objects: Vec::new(),
        };
        // 23:00:00 and 23:00:05 UTC
        builder.push(frame(82_800, "", 0.0));
        builder.push(frame(82_805, "GATE 3", 0.05));
        builder.flush().unwrap()
    }

    #[test]
    fn rules_are_checked_when_added() {
        assert!(rule("{ kind = \"text\", pattern = \"(?i)gate\" }").is_ok());
        let bad = [
            ("{ kind = \"text\", pattern = \"(\" }", "invalid pattern"),
            ("{ kind = \"motion\", place = \"upstairs\" }", "not one of"),
            ("{ kind = \"motion\", hours = \"late\" }", "22:00-06:00"),
            (
                "{ kind = \"question\", question = \"what is there?\" }",
                "yes/no",
            ),
            ("{ kind = \"tag\", label = \"\" }", "needs a label"),
            ("{ kind = \"smell\" }", "unknown variant"),
        ];
        for (when, says) in bad {
            let error = rule(when).unwrap_err();
            assert!(error.contains(says), "{when}: {error}");
        }
    }

    #[test]
    fn object_rules_are_checked_when_added() {
        let line = rule(
            "{ kind = \"object\", class = \"person\", line = \"kerb\", \
             direction = \"left_to_right\" }",
        )
        .unwrap();
        assert!(!line.on_chunks());
        assert!(line.matching_frames(&chunk(), &[]).is_empty());
        let Condition::Object {
            min_count,
            direction,
            ..
        } = &line.rule.when
        else {
            panic!("an object rule: {:?}", line.rule.when);
        };
        assert_eq!((*min_count, *direction), (1, Some(Direction::LeftToRight)));
        assert_eq!(line.rule.cooldown_s, 60.0, "the default cooldown");
        // A zone no camera has yet is accepted: zones are per camera and change at run time.
        assert!(rule(
            "{ kind = \"object\", class = \"car\", zone = \"nowhere\", min_dwell_s = 30.0 }"
        )
        .is_ok());
        let bad = [
            (
                "{ kind = \"object\", class = \"pedestrian\" }",
                "not a COCO class",
            ),
            (
                "{ kind = \"object\", class = \"car\", zone = \"a\", line = \"b\" }",
                "not both",
            ),
            (
                "{ kind = \"object\", class = \"car\", min_dwell_s = 5.0 }",
                "name the zone",
            ),
            (
                "{ kind = \"object\", class = \"car\", zone = \"a\", min_dwell_s = -1.0 }",
                "positive number",
            ),
            (
                "{ kind = \"object\", class = \"car\", direction = \"left_to_right\" }",
                "name the line",
            ),
            (
                "{ kind = \"object\", class = \"car\", line = \"b\", direction = \"up\" }",
                "unknown variant",
            ),
            (
                "{ kind = \"object\", class = \"car\", min_count = 0 }",
                "min_count",
            ),
            (
                "{ kind = \"object\", class = \"car\", zone = \"a b\" }",
                "zone `a b`",
            ),
            (
                "{ kind = \"object\", class = \"car\", hours = \"25:00-06:00\" }",
                "22:00-06:00",
            ),
        ];
        for (when, says) in bad {
            let error = rule(when).unwrap_err();
            assert!(error.contains(says), "{when}: {error}");
        }
    }

    #[test]
    fn a_cooldown_is_a_number_of_seconds_up_to_a_day() {
        let with_cooldown = |cooldown: f64| AlertRule {
            id: "r1".into(),
            cameras: vec![],
            cooldown_s: cooldown,
            when: Condition::Text {
                pattern: "x".into(),
            },
        };
        assert!(with_cooldown(0.0).compile().is_ok());
        for bad in [-1.0, f64::NAN, MAX_COOLDOWN_S + 1.0] {
            let error = with_cooldown(bad).compile().unwrap_err();
            assert!(error.contains("cooldown_s"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_rule_stays_quiet_on_a_camera_for_its_cooldown() {
        let text = rule("{ kind = \"text\", pattern = \"x\" }").unwrap().rule;
        let at = |s: i64| Utc.timestamp_opt(1_000_000 + s, 0).unwrap();
        let mut cooldowns = Cooldowns::default();
        assert!(cooldowns.fire(&text, "gate", at(0)));
        assert!(!cooldowns.fire(&text, "gate", at(10)), "within 60 s");
        assert!(cooldowns.fire(&text, "lobby", at(10)), "per camera");
        assert!(!cooldowns.fire(&text, "gate", at(59)));
        assert!(
            cooldowns.fire(&text, "gate", at(60)),
            "the cooldown is over"
        );
        assert!(
            !cooldowns.fire(&text, "gate", at(100)),
            "counted from the last firing"
        );
        assert!(
            cooldowns.fire(&text, "gate", at(-500)),
            "video time went back"
        );
        let eager = AlertRule {
            cooldown_s: 0.0,
            ..text
        };
        assert!(cooldowns.fire(&eager, "yard", at(0)));
        assert!(cooldowns.fire(&eager, "yard", at(0)));
    }

    #[test]
    fn a_rule_nothing_would_check_is_refused() {
        let object = rule("{ kind = \"object\", class = \"dog\" }").unwrap().rule;
        let text = rule("{ kind = \"text\", pattern = \"x\" }").unwrap().rule;
        let captions_only = RuleScope {
            chunks: true,
            object_classes: None,
        };
        assert!(captions_only.admits(&text).is_ok());
        let error = captions_only.admits(&object).unwrap_err();
        assert!(error.contains("objects.enabled is false"), "{error}");
        let objects_only = RuleScope {
            chunks: false,
            object_classes: Some(vec!["person".into(), "dog".into()]),
        };
        assert!(objects_only.admits(&object).is_ok());
        let error = objects_only.admits(&text).unwrap_err();
        assert!(error.contains("text rules") && error.contains("captions.enabled is false"));
        let no_dogs = RuleScope {
            chunks: true,
            object_classes: Some(vec!["person".into()]),
        };
        let error = no_dogs.admits(&object).unwrap_err();
        assert!(error.contains("does not report `dog`"), "{error}");
    }

    #[test]
    fn text_and_motion_rules_match_the_frames_that_satisfy_them() {
        let chunk = chunk();
        let text = rule("{ kind = \"text\", pattern = \"(?i)gate\\\\s*3\" }").unwrap();
        let matched = text.matching_frames(&chunk, &[]);
        assert_eq!(matched.len(), 1);
        assert_eq!(matched[0].0, 1);
        assert_eq!(matched[0].1.text, "text on screen: \"GATE 3\"");

        let motion =
            rule("{ kind = \"motion\", min_level = 0.02, place = \"bottom left\" }").unwrap();
        assert_eq!(motion.matching_frames(&chunk, &[]).len(), 1);
        let elsewhere = rule("{ kind = \"motion\", place = \"top right\" }").unwrap();
        assert!(elsewhere.matching_frames(&chunk, &[]).is_empty());
        // Hours wrap past midnight; 23:00 is inside 22:00-06:00 and outside 08:00-18:00.
        let night = rule("{ kind = \"motion\", hours = \"22:00-06:00\" }").unwrap();
        assert_eq!(night.matching_frames(&chunk, &[]).len(), 1);
        let day = rule("{ kind = \"motion\", hours = \"08:00-18:00\" }").unwrap();
        assert!(day.matching_frames(&chunk, &[]).is_empty());
    }

    #[test]
    fn an_alert_says_what_its_rule_watches_for_and_why_it_fired() {
        let line = rule(
            "{ kind = \"object\", class = \"person\", line = \"kerb\", \
             direction = \"left_to_right\", hours = \"22:00-06:00\" }",
        )
        .unwrap();
        assert_eq!(
            trigger(&line.rule),
            "1 × person crossing line kerb left to right, 22:00-06:00 UTC"
        );
        let text = rule("{ kind = \"text\", pattern = \"(?i)gate\\\\s*3\" }").unwrap();
        let chunk = chunk();
        let matched: Vec<EvidenceLine> = (text.matching_frames(&chunk, &[]).into_iter())
            .map(|(_, line)| line)
            .collect();
        assert_eq!(
            perception_reason(&text.rule, &matched, chunk.start),
            "text on screen: \"GATE 3\", from 23:00:00: on-screen text matching (?i)gate\\s*3"
        );
    }

    #[test]
    fn tag_rules_match_any_synonym_above_the_score() {
        let chunk = chunk();
        let tags = [Tag {
            label: "streetcar, tram".into(),
            score: 0.6,
        }];
        let tram = rule("{ kind = \"tag\", label = \"tram\" }").unwrap();
        assert_eq!(tram.matching_frames(&chunk, &[(0, &tags)]).len(), 1);
        let sure = rule("{ kind = \"tag\", label = \"tram\", min_score = 0.9 }").unwrap();
        assert!(sure.matching_frames(&chunk, &[(0, &tags)]).is_empty());
        assert!(tram.watches("gate") && !tram.watches("lobby"));
    }

    #[test]
    fn the_rule_set_refuses_a_duplicate_id_unless_replacing() {
        let rules = AlertRules::default();
        let text = || rule("{ kind = \"text\", pattern = \"x\" }").unwrap();
        rules.insert(text(), false).unwrap();
        assert!(rules.insert(text(), false).unwrap_err().contains("exists"));
        rules.insert(text(), true).unwrap();
        assert_eq!(rules.list().len(), 1);
        assert!(rules.remove("r1") && !rules.remove("r1"));
    }
}

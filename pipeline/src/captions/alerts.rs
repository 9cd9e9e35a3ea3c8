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

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use argus_operators::tagging::Tag;
use argus_operators::video_qa::is_yes_no_question;
use chrono::{DateTime, Timelike, Utc};
use regex::Regex;

use super::chunk::Chunk;
use super::evidence::time_label;
pub use crate::config::{AlertRule, Condition};
use crate::messages::EvidenceLine;

/// Alerts kept per camera in Redis (the newest).
pub const KEPT_ALERTS: isize = 1000;

/// The Redis list of a camera's newest alerts.
pub fn alerts_key(prefix: &str, camera: &str) -> String {
    format!("{prefix}:alerts:camera:{camera}")
}

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
        if self.id.is_empty()
            || self.id.len() > 128
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "rule id `{}` must be 1-128 letters, digits, `-`, `_` or `.`",
                self.id
            ));
        }
        let mut pattern = None;
        let mut hours = None;
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
                if let Some(span) = span {
                    hours = Some(parse_hours(span).ok_or_else(|| {
                        format!(
                            "rule `{}`: hours `{span}` must look like 22:00-06:00",
                            self.id
                        )
                    })?);
                }
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
        }
        Ok(CompiledRule {
            rule: self,
            pattern,
            hours,
        })
    }
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
            Condition::Question { .. } => Vec::new(),
        }
    }

    fn in_hours(&self, at: DateTime<Utc>) -> bool {
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

    pub fn remove(&self, id: &str) -> bool {
        self.rules
            .write()
            .expect("alert rules lock")
            .remove(id)
            .is_some()
    }
}

/// A one-line summary of why a rule fired, for logs.
pub fn describe(rule: &AlertRule, start: DateTime<Utc>) -> String {
    format!(
        "rule {} ({}) at {}",
        rule.id,
        rule.when.kind(),
        time_label(start)
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use argus_operators::motion::{Motion, MotionRegion};
    use argus_operators::BgrImage;
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

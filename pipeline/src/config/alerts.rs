//! `[[alerts.rules]]`: standing alert rules, as written in the configuration and sent to the
//! API. They are compiled by `captions::alerts`; chunk rules are checked by the captioning
//! model, object rules by `sinks::object_alerts`.

use serde::{Deserialize, Serialize};

use super::Config;
use crate::objects::zones::Direction;

/// Standing alert rules: chunk rules (text, tag, motion, question) are checked on every
/// captioned chunk (they need `captions.enabled`), object rules on every frame the objects
/// stage saw (they need `objects.enabled`). More can be added and removed through the API.
/// No rules by default: default.toml only shows examples, in comments, so the derived
/// default is the embedded section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    pub rules: Vec<AlertRule>,
}

/// One standing rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Letters, digits, `-`, `_`, `.`: the alert's `rule_id`.
    pub id: String,
    /// The cameras it watches; empty: every camera.
    #[serde(default)]
    pub cameras: Vec<String>,
    /// Once fired on a camera, the rule stays quiet there for this many seconds of video time.
    #[serde(default = "default_cooldown_s")]
    pub cooldown_s: f64,
    pub when: Condition,
}

/// What makes a rule fire on a chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// A line of on-screen text matches `pattern` (a regular expression; `(?i)` for any case).
    Text { pattern: String },
    /// A segment's frame is tagged `label` (ImageNet) with at least `min_score`.
    Tag {
        label: String,
        #[serde(default = "default_min_tag_score")]
        min_score: f32,
    },
    /// At least `min_level` of the view changed between frames; with `place`, the largest
    /// change is there (`"bottom left"`, `"centre"`, ...); with `hours` (`"22:00-06:00"`,
    /// UTC), only then.
    Motion {
        #[serde(default = "default_min_motion")]
        min_level: f32,
        #[serde(default)]
        place: Option<String>,
        #[serde(default)]
        hours: Option<String>,
    },
    /// A yes/no question the LLM answers from the chunk's observations.
    Question { question: String },
    /// Tracked objects of a COCO `class`: at least `min_count` at once (in `zone` when given),
    /// each there for at least `min_dwell_s` (needs `zone`), or one crossing `line` (in
    /// `direction` when given); with `hours` (`"22:00-06:00"`, UTC), only then. A track
    /// fires the rule at most once.
    Object {
        class: String,
        #[serde(default)]
        zone: Option<String>,
        #[serde(default)]
        line: Option<String>,
        #[serde(default = "default_min_count")]
        min_count: usize,
        #[serde(default)]
        min_dwell_s: Option<f64>,
        #[serde(default)]
        direction: Option<Direction>,
        #[serde(default)]
        hours: Option<String>,
    },
}

/// A minute: an object alert stands for what its evidence shows until then (a parked car,
/// a crowd at the door), and a chunk rule on a condition that lasts would otherwise fire on
/// every 10 s chunk. `cooldown_s = 0` fires every time.
fn default_cooldown_s() -> f64 {
    60.0
}

fn default_min_count() -> usize {
    1
}

fn default_min_tag_score() -> f32 {
    0.3
}

fn default_min_motion() -> f32 {
    0.01
}

impl Condition {
    pub fn kind(&self) -> &'static str {
        match self {
            Condition::Text { .. } => "text",
            Condition::Tag { .. } => "tag",
            Condition::Motion { .. } => "motion",
            Condition::Question { .. } => "question",
            Condition::Object { .. } => "object",
        }
    }
}

/// What checks alert rules in this process. A rule that nothing would check is refused, not
/// kept in silence.
#[derive(Debug, Clone)]
pub struct RuleScope {
    /// `captions.enabled`: chunk rules (text, tag, motion, question) are checked.
    pub chunks: bool,
    /// With `objects.enabled`, the classes the detector reports (`objects.detector.classes`):
    /// object rules on them are checked.
    pub object_classes: Option<Vec<String>>,
}

impl RuleScope {
    /// What checks the rules with this configuration.
    pub fn of(config: &Config) -> Self {
        Self {
            chunks: config.captions.enabled,
            object_classes: (config.objects.enabled)
                .then(|| config.objects.detector.classes.clone()),
        }
    }

    /// Whether the rule can fire here, or why not.
    pub fn admits(&self, rule: &AlertRule) -> Result<(), String> {
        let id = &rule.id;
        match (&rule.when, &self.object_classes) {
            (Condition::Object { .. }, None) => Err(format!(
                "rule `{id}`: object rules are checked on tracked objects, and objects.enabled \
                 is false"
            )),
            (Condition::Object { class, .. }, Some(classes)) if !classes.contains(class) => {
                Err(format!(
                    "rule `{id}`: the detector does not report `{class}` (objects.detector.classes: \
                     {})",
                    classes.join(", ")
                ))
            }
            (Condition::Object { .. }, Some(_)) => Ok(()),
            (chunk_rule, _) if !self.chunks => Err(format!(
                "rule `{id}`: {} rules are checked on captioned chunks, and captions.enabled is \
                 false",
                chunk_rule.kind()
            )),
            _ => Ok(()),
        }
    }
}

//! `[[alerts.rules]]`: standing alert rules, as written in the configuration and sent to the
//! API. They are checked by `captions::alerts`.

use serde::{Deserialize, Serialize};

/// Standing alert rules, checked on every chunk (they need `captions.enabled`). More can be
/// added and removed through the API.
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
        }
    }
}

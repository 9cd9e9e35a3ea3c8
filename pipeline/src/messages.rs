//! The messages Argus publishes. Each has a JSON Schema in `schemas/` at the repository
//! root; a test validates real messages against it, so the two cannot drift apart.

use argus_operators::ocr::TextLine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `schemas/frame-result.v1.json`: the analysis of one sampled frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FrameResult {
    pub schema_version: u32,
    /// Unique per message (UUIDv7, time-ordered): consumers de-duplicate on it.
    pub message_id: Uuid,
    pub camera_id: String,
    /// The stream's source with any password removed.
    pub source: String,
    pub frame: FrameInfo,
    pub operator: String,
    /// Recognised text lines, top to bottom.
    pub ocr: Vec<TextLine>,
    /// All recognised text joined by newlines, for quick filtering.
    pub text: String,
    pub operator_latency_ms: f64,
    pub produced_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FrameInfo {
    pub sequence: u64,
    /// Media timestamp in nanoseconds, when the source has one.
    pub pts_ns: Option<u64>,
    pub wall_time: DateTime<Utc>,
    /// Where `wall_time` comes from: `rtcp` (the camera's clock), `media` (recording), `arrival`.
    pub clock: String,
    pub width: u32,
    pub height: u32,
}

impl FrameResult {
    pub const SCHEMA_VERSION: u32 = 1;
    /// Sent in the `schema` header so consumers can pick a decoder without parsing.
    pub const SCHEMA_ID: &'static str = "argus.frame-result.v1";
}

/// `schemas/stream-event.v1.json`: a stream changed state, or video is missing for a span.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamEvent {
    pub schema_version: u32,
    pub message_id: Uuid,
    pub camera_id: String,
    pub source: String,
    pub event: StreamEventKind,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StreamEventKind {
    /// The stream entered `state`; `error` says why when it went down.
    State {
        state: String,
        error: Option<String>,
    },
    /// No video between `start` (the last frame before the outage) and `end` (the first after).
    Gap {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        reason: String,
    },
}

impl StreamEvent {
    pub const SCHEMA_VERSION: u32 = 1;
    pub const SCHEMA_ID: &'static str = "argus.stream-event.v1";
}

/// `schemas/caption.v1.json`: a chunk's caption. The first one goes out as soon as it is
/// written (`revision` 1); when the self-correction controller did not accept it, a second
/// one follows with `revision` 2, `supersedes` naming the first message, and the sensor
/// reading that triggered it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Caption {
    pub schema_version: u32,
    pub message_id: Uuid,
    pub camera_id: String,
    pub source: String,
    /// The chunk: `[start, end)` of video time.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub text: String,
    pub revision: u32,
    /// The message this one corrects (revision 2 and later).
    pub supersedes: Option<Uuid>,
    /// Whether the controller accepted the round that produced this text (a correction
    /// round is final, so it is published whatever its verdict).
    pub accepted: bool,
    /// The sensor and controller reading of the round this text came from.
    pub sensor: SensorSummary,
    /// The correction round only: the instants of the frames it re-examined.
    pub key_frames: Vec<DateTime<Utc>>,
    /// The observations the LLM was given, in time order.
    pub evidence: Vec<EvidenceLine>,
    pub model: String,
    /// Time the captioner spent on this text: the round's, or for a revision the
    /// correction's own (the latency a correction adds).
    pub latency_ms: f64,
    pub produced_at: DateTime<Utc>,
    /// The chunk's clip (`/api/v1/clips?...`), when the camera has recorded video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<String>,
}

/// One observation line of a caption's prompt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvidenceLine {
    /// The frame's video time (a segment's start for "no video").
    pub at: DateTime<Utc>,
    /// What perception saw, as the LLM read it after the time.
    pub text: String,
    /// How much perception trusted it, 0..1.
    pub confidence: f32,
    /// Re-examined by the correction round (shown to the LLM as "Key frame at ...").
    pub key_frame: bool,
}

/// What the CyberV sensor read and the controller decided.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SensorSummary {
    /// Per candidate: its text, probability and the five signals.
    pub candidates: Vec<CandidateSummary>,
    /// Distinct answers with their summed support, best first.
    pub answers: Vec<AnswerSummary>,
    /// The support the best answer had to exceed (n · θ).
    pub required: f32,
    /// Per segment, how far the candidates' attention to it spread.
    pub segment_drift: Vec<f32>,
    /// The segments a correction re-examined (empty when accepted).
    pub key_segments: Vec<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CandidateSummary {
    pub text: String,
    pub greedy: bool,
    pub probability: f32,
    pub kept_probability: f32,
    pub no_repetition: f32,
    pub attention_stability: f32,
    pub rank: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnswerSummary {
    pub key: String,
    pub text: String,
    pub total: f32,
    pub candidates: usize,
}

impl Caption {
    pub const SCHEMA_VERSION: u32 = 1;
    pub const SCHEMA_ID: &'static str = "argus.caption.v1";
}

/// `schemas/answer.v1.json`: an answer to a question about a camera and a time range. Like
/// captions, the first answer is published at once; a corrected one follows as `revision` 2
/// with `supersedes` naming it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    pub schema_version: u32,
    pub message_id: Uuid,
    pub camera_id: String,
    pub question: String,
    /// The range asked about: `[from, to)` of video time.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub text: String,
    pub revision: u32,
    pub supersedes: Option<Uuid>,
    /// Whether the controller accepted the round this text came from (see [`Caption`]).
    pub accepted: bool,
    /// Absent when the range had no video and the model was not asked.
    pub sensor: Option<SensorSummary>,
    pub key_frames: Vec<DateTime<Utc>>,
    pub evidence: Vec<EvidenceLine>,
    /// Spans of the range without video.
    pub missing: Vec<MissingSpan>,
    pub model: String,
    pub latency_ms: f64,
    pub produced_at: DateTime<Utc>,
    /// A count question answered from the tracks: what was counted. Absent for other
    /// questions, and where objects are off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted: Option<CountedAnswer>,
}

/// How a count question ("how many people walked past?") was answered from the track store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountedAnswer {
    /// Distinct tracks of `classes` in view during the range that did what was asked.
    pub count: u32,
    /// The COCO classes counted.
    pub classes: Vec<String>,
    /// Only tracks of this colour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colour: Option<String>,
    /// Which tracks: `moved`, `still` or `any`.
    pub movement: String,
    /// The model's answer stated the count; when it did not, `text` is the counted sentence.
    pub phrased_by_model: bool,
}

/// A span of a question's range without video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MissingSpan {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Answer {
    pub const SCHEMA_VERSION: u32 = 1;
    pub const SCHEMA_ID: &'static str = "argus.answer.v1";
}

/// `schemas/alert.v1.json`: a standing rule fired on a chunk, or (object rules) on a frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Alert {
    pub schema_version: u32,
    pub message_id: Uuid,
    pub camera_id: String,
    pub source: String,
    pub rule_id: String,
    /// `text`, `tag`, `motion`, `question` or `object`.
    pub kind: String,
    /// The chunk the rule fired on; for an object rule, from when what fired it held (the
    /// earliest zone entry of a dwell rule) to the frame it fired on.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// What satisfied the rule: the matching frames' observations, or for a question rule
    /// the observations the answer was given from, or for an object rule one line per track.
    pub evidence: Vec<EvidenceLine>,
    /// Object rules: the tracks that fired it (each fires a rule once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_ids: Option<Vec<u64>>,
    /// Question rules: the answer that fired it.
    pub answer: Option<AlertAnswer>,
    /// A JPEG of the frame that satisfied the rule (320 px wide), base64.
    pub thumbnail_jpeg: Option<String>,
    pub produced_at: DateTime<Utc>,
    /// What the rule watches for, in words ("text matching (?i)gate", "question: Is ...?").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// One line saying why it fired, for an operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How sure the firing is, 0..1: for a question rule the controller's accepted support
    /// when the LLM was asked, else the deciding evidence's score; for perception and object
    /// rules the matching observation's own confidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// The evidence that decided it, each with its score.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decided_by: Vec<DecidedBy>,
    /// A playable clip of `[start, end)`, when the camera has video for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<String>,
}

/// One piece of evidence that decided an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecidedBy {
    /// `llm`, `text_match` (question words found), `embedding` (question to observations),
    /// `ocr` (on-screen text), `objects` (tracked classes), `motion`, `tag` (ImageNet).
    pub evidence: String,
    /// Its score, 0..1.
    pub score: f32,
    /// What it saw, briefly.
    pub detail: String,
}

/// The yes that fired a question rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertAnswer {
    pub question: String,
    pub text: String,
    /// Whether the controller accepted the first round (false: the correction round's
    /// answer fired it).
    pub accepted_first: bool,
}

impl Alert {
    /// Version 2 (`schemas/alert.v2.json`) added object alerts and `track_ids`; version 1
    /// carries chunk alerts only, while it is deprecated.
    pub const SCHEMA_VERSION: u32 = 2;
    pub const SCHEMA_ID: &'static str = "argus.alert.v2";
    pub const V1_SCHEMA_ID: &'static str = "argus.alert.v1";

    /// Whether version 1 can carry it: every kind but `object`.
    pub fn fits_v1(&self) -> bool {
        self.kind != "object"
    }

    /// The alert as version 1 carries it: without the fields version 2 added since.
    pub fn as_v1(&self) -> Alert {
        Alert {
            schema_version: 1,
            track_ids: None,
            trigger: None,
            reason: None,
            confidence: None,
            decided_by: Vec::new(),
            clip: None,
            ..self.clone()
        }
    }
}

/// `schemas/alert-ack.v1.json`: an operator acknowledged an alert.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertAck {
    pub schema_version: u32,
    pub message_id: Uuid,
    /// The acknowledged alert's `message_id`.
    pub alert_id: Uuid,
    pub camera_id: String,
    pub rule_id: String,
    pub acknowledged: Acknowledged,
    pub produced_at: DateTime<Utc>,
}

/// Who acknowledged an alert, when, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acknowledged {
    pub at: DateTime<Utc>,
    pub by: Option<String>,
    pub note: Option<String>,
}

impl AlertAck {
    pub const SCHEMA_VERSION: u32 = 1;
    pub const SCHEMA_ID: &'static str = "argus.alert-ack.v1";
}

/// `schemas/objects.v1.json`: the objects tracked in one analysed frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectsMessage {
    pub schema_version: u32,
    pub message_id: Uuid,
    pub camera_id: String,
    pub source: String,
    /// The frame's time (as in `argus.frame-results.v1`).
    pub wall_time: DateTime<Utc>,
    pub sequence: u64,
    pub width: u32,
    pub height: u32,
    /// The tracks matched in this frame.
    pub objects: Vec<TrackedObject>,
    pub detector: String,
    pub produced_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrackedObject {
    /// Stable while the track lives; unique per camera until Argus restarts.
    pub track_id: u64,
    /// The COCO class, by vote over the track's detections.
    pub class: String,
    pub score: f32,
    /// `[x1, y1, x2, y2]`, fractions of the frame's width and height.
    pub bbox: [f32; 4],
    /// When the track was first seen.
    pub first_seen: DateTime<Utc>,
    /// The box's commonest coarse colour ("white", "red", ...), by vote over the track's
    /// detections; absent until one is measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colour: Option<String>,
}

impl ObjectsMessage {
    pub const SCHEMA_VERSION: u32 = 1;
    pub const SCHEMA_ID: &'static str = "argus.objects.v1";
}

/// `schemas/object-event.v1.json`: a track started or ended, entered or left a zone, stayed
/// in one, or crossed a line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectEvent {
    pub schema_version: u32,
    pub message_id: Uuid,
    pub camera_id: String,
    pub track_id: u64,
    pub class: String,
    #[serde(flatten)]
    pub event: ObjectEventKind,
    /// When it happened (the frame's time).
    pub at: DateTime<Utc>,
    pub produced_at: DateTime<Utc>,
    /// Its clip (`/api/v1/clips?...`), when the camera has recorded video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ObjectEventKind {
    TrackStarted,
    TrackEnded { first_seen: DateTime<Utc> },
    ZoneEntered { zone: String },
    ZoneLeft { zone: String, dwell_s: f64 },
    DwellExceeded { zone: String, dwell_s: f64 },
    LineCrossed { line: String, direction: String },
}

impl ObjectEventKind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::TrackStarted => "track_started",
            Self::TrackEnded { .. } => "track_ended",
            Self::ZoneEntered { .. } => "zone_entered",
            Self::ZoneLeft { .. } => "zone_left",
            Self::DwellExceeded { .. } => "dwell_exceeded",
            Self::LineCrossed { .. } => "line_crossed",
        }
    }
}

impl ObjectEvent {
    pub const SCHEMA_VERSION: u32 = 1;
    pub const SCHEMA_ID: &'static str = "argus.object-event.v1";
}

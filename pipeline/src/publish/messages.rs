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

//! `[[streams]]`: one camera or recording each.
//!
//! Unlike the sections, a stream's unset settings are not filled from default.toml: streams
//! also arrive as JSON (the API, the cluster's control topic) without the embedded file under
//! them, so their defaults stay here; default.toml's comment lists them and a test checks it.

use serde::{Deserialize, Serialize};

pub use crate::source::{DropPolicy, RtspTransport};

use super::RecordMode;

/// One camera or recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Camera id: the Kafka message key and the Redis key part. Letters, digits, `-`, `_`, `.`.
    pub id: String,
    /// `file:///path`, a plain path, `rtsp://[user:pass@]host[:port]/path`, `http(s)://...`,
    /// `v4l2:///dev/video0`, or a synthetic `test:PATTERN?width=W&height=H&fps=F`.
    pub uri: String,
    /// Frames per second handed to the operators (the rest are dropped inside GStreamer).
    #[serde(default = "default_sample_fps")]
    pub sample_fps: f64,
    /// Frames wider than this are scaled down (aspect kept) inside GStreamer.
    #[serde(default = "default_max_width")]
    pub max_width: u32,
    /// Wall-clock time of media time 0 for recorded files (RFC 3339); default: when the stream starts.
    #[serde(default)]
    pub start_time: Option<chrono::DateTime<chrono::Utc>>,
    /// RTSP transport: `tcp` (interleaved; passes NAT and firewalls) or `udp`.
    #[serde(default)]
    pub rtsp_transport: RtspTransport,
    /// Live sources: sampled frames that may wait for analysis before `drop_policy` applies.
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
    /// Live sources: which frame is dropped when analysis is behind.
    #[serde(default)]
    pub drop_policy: DropPolicy,
    #[serde(default)]
    pub reconnect: ReconnectConfig,
    /// A live stream that delivers no frame for this many seconds is treated as down; a
    /// recording that yields no first frame in this time is treated as unreadable.
    #[serde(default = "default_stall_timeout")]
    pub stall_timeout_s: f64,
    /// Live cameras: `off`, `continuous` or `events`, overriding `[record] mode` for this
    /// camera; unset: that mode. Recorded files are never re-recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<RecordMode>,
    /// Frames before this video time are decoded but not analysed: `argus index` resuming
    /// an interrupted recording. Not part of the configuration file.
    #[serde(skip)]
    pub analyse_from: Option<chrono::DateTime<chrono::Utc>>,
}

/// Reconnection of network sources: exponential backoff with jitter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconnectConfig {
    pub initial_delay_ms: u64,
    /// The backoff never waits longer than this.
    pub max_delay_ms: u64,
    /// Give up (state `failed`) after this many attempts in a row; unset: never give up.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        Self {
            initial_delay_ms: 500,
            max_delay_ms: 10_000,
            max_attempts: None,
        }
    }
}

fn default_queue_size() -> usize {
    4
}

fn default_stall_timeout() -> f64 {
    10.0
}

fn default_sample_fps() -> f64 {
    1.0
}

fn default_max_width() -> u32 {
    1280
}

impl StreamConfig {
    /// A stream with every setting at its default.
    pub fn new(id: impl Into<String>, uri: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            uri: uri.into(),
            sample_fps: default_sample_fps(),
            max_width: default_max_width(),
            start_time: None,
            rtsp_transport: RtspTransport::default(),
            queue_size: default_queue_size(),
            drop_policy: DropPolicy::default(),
            reconnect: ReconnectConfig::default(),
            stall_timeout_s: default_stall_timeout(),
            record: None,
            analyse_from: None,
        }
    }

    /// Problems with this stream alone; they fail the stream, not the service.
    pub fn problems(&self) -> Option<String> {
        // `.` and `..` would name folders other than the camera's own (its recordings).
        let id_ok = !self.id.is_empty()
            && self.id != "."
            && self.id != ".."
            && self.id.len() <= 128
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !id_ok {
            return Some(format!(
                "stream id `{}` must be 1-128 letters, digits, `-`, `_` or `.`",
                self.id
            ));
        }
        if !(self.sample_fps > 0.0 && self.sample_fps <= 120.0) {
            return Some(format!(
                "sample_fps {} must be in (0, 120]",
                self.sample_fps
            ));
        }
        if self.max_width < 32 {
            return Some(format!("max_width {} must be at least 32", self.max_width));
        }
        if self.queue_size == 0 || self.queue_size > 1024 {
            return Some(format!(
                "queue_size {} must be in 1..=1024",
                self.queue_size
            ));
        }
        if self.stall_timeout_s.is_nan() || self.stall_timeout_s < 1.0 {
            return Some(format!(
                "stall_timeout_s {} must be at least 1",
                self.stall_timeout_s
            ));
        }
        if self.reconnect.initial_delay_ms == 0
            || self.reconnect.max_delay_ms < self.reconnect.initial_delay_ms
        {
            return Some("reconnect needs 0 < initial_delay_ms <= max_delay_ms".into());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streams_record_mode_comes_from_its_json_or_is_left_to_the_record_section() {
        let stream: StreamConfig =
            serde_json::from_str(r#"{"id": "gate", "uri": "rtsp://cam/live", "record": "events"}"#)
                .unwrap();
        assert_eq!(stream.record, Some(RecordMode::Events));
        let stream: StreamConfig =
            serde_json::from_str(r#"{"id": "gate", "uri": "rtsp://cam/live"}"#).unwrap();
        assert_eq!(stream.record, None);
        let bad = serde_json::from_str::<StreamConfig>(
            r#"{"id": "gate", "uri": "rtsp://cam/live", "record": "always"}"#,
        );
        assert!(bad.unwrap_err().to_string().contains("always"));
    }

    #[test]
    fn bad_stream_ids_are_reported() {
        let stream = StreamConfig::new("gate 3!", "file:///x");
        assert!(stream.problems().unwrap().contains("gate 3!"));
    }

    #[test]
    fn the_stream_defaults_default_toml_lists_are_the_real_ones() {
        let stream = StreamConfig::new("x", "file:///x");
        for listed in [
            format!("max_width ({})", stream.max_width),
            format!("queue_size ({})", stream.queue_size),
            format!("stall_timeout_s ({})", stream.stall_timeout_s),
            format!("initial_delay_ms ({})", stream.reconnect.initial_delay_ms),
            format!("max_delay_ms ({})", stream.reconnect.max_delay_ms),
        ] {
            assert!(
                super::super::DEFAULT_CONFIG.contains(&listed),
                "default.toml should list {listed}"
            );
        }
    }
}

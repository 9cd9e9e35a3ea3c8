//! `[record]`: recording of live cameras (segments of their own encoded video), its retention
//! and disk floor, and the clips served from it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a live camera's recording keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordMode {
    /// Nothing is written.
    Off,
    /// Every segment is kept (until retention deletes it).
    Continuous,
    /// Segments are written, and kept only where they overlap an object event, an alert or
    /// (with `events_include_motion`) motion, widened by the pre- and post-roll.
    Events,
}

/// Recording of live sources: the camera's own encoded stream, remuxed into segments.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordConfig {
    /// The mode of every live camera that does not set its own (`record` on the stream).
    pub mode: RecordMode,
    /// Where segments go, one folder per camera; unset: ~/.local/state/argus/recordings.
    pub dir: Option<PathBuf>,
    /// Length of one segment (seconds); a segment ends at the first key frame after it.
    pub segment_s: f64,
    /// `mp4` or `mkv` (Matroska).
    pub format: SegmentFormat,
    /// `events` mode: video kept before and after each event (seconds).
    pub pre_roll_s: f64,
    pub post_roll_s: f64,
    /// `events` mode: motion counts as an event.
    pub events_include_motion: bool,
    pub retention: RecordRetentionConfig,
    /// Longest span `GET /api/v1/clips` serves (seconds).
    pub max_clip_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentFormat {
    Mp4,
    Mkv,
}

impl SegmentFormat {
    pub fn extension(self) -> &'static str {
        match self {
            SegmentFormat::Mp4 => "mp4",
            SegmentFormat::Mkv => "mkv",
        }
    }
}

/// How long segments are kept; the oldest go first. Unset limits do not apply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRetentionConfig {
    /// Segments older than this are deleted (seconds).
    pub max_age_s: Option<u64>,
    /// Disk budget of one camera's segments (bytes).
    pub max_bytes_per_camera: Option<u64>,
    /// Disk budget of all cameras' segments (bytes).
    pub max_bytes_total: Option<u64>,
    /// Below this much free space on the recordings' filesystem, recording pauses (and
    /// analysis goes on) until retention or the operator frees room (bytes).
    pub min_free_bytes: u64,
    /// How often retention runs (seconds).
    pub interval_s: u64,
}

/// The `[record]` section of the embedded default.toml.
impl Default for RecordConfig {
    fn default() -> Self {
        super::EMBEDDED.record.clone()
    }
}

impl RecordConfig {
    /// `dir`, or the default under the user's state folder.
    pub fn recordings_dir(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir)
                .join(".local/state/argus/recordings")
        })
    }

    pub fn problem(&self) -> Option<String> {
        if !(self.segment_s >= 1.0 && self.segment_s <= 3600.0) {
            return Some(format!(
                "record.segment_s {} must be between 1 and 3600 seconds",
                self.segment_s
            ));
        }
        if !(self.pre_roll_s >= 0.0 && self.post_roll_s >= 0.0) {
            return Some("record.pre_roll_s and record.post_roll_s must not be negative".into());
        }
        if self.max_clip_s.is_nan() || self.max_clip_s < 1.0 {
            return Some(format!(
                "record.max_clip_s {} must be at least 1 second",
                self.max_clip_s
            ));
        }
        if self.retention.interval_s == 0 {
            return Some("record.retention.interval_s must be at least 1".into());
        }
        None
    }
}

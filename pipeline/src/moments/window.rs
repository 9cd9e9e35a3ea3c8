//! Moment windows: a stream cut into fixed spans of video time, each summarised by what the
//! operators saw in it. A window is the unit the moment index stores and scores.

use std::collections::BTreeMap;

use std::sync::Arc;

use argus_operators::ocr::TextLine;
use argus_operators::BgrImage;

use crate::objects::activity::{Activity, ObjectGroup};
use crate::objects::FrameObjects;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `schemas/moment-window.v1.json`: one indexed window, published on the moments topic and
/// stored in Redis.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MomentWindow {
    pub schema_version: u32,
    pub message_id: Uuid,
    pub camera_id: String,
    /// Video time of the window: the camera's clock, or the recording's own time.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Sampled frames the window summarises.
    pub frames: u32,
    /// Distinct text lines recognised on screen, most confident first.
    pub ocr_text: Vec<String>,
    /// Labels from tagging operators; empty when none runs.
    pub tags: Vec<String>,
    /// A caption from the captioning operator, when one runs.
    pub caption: Option<String>,
    /// The objects tracked in the window, in groups ("3 people walking left to right"), when
    /// the objects stage runs (added within v1: optional).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ObjectGroup>,
    /// The model that produced `text_embedding`.
    pub embedding_model: String,
    /// Unit-length embedding of the window's text (OCR, tags, caption); absent when the
    /// window has no text at all, so empty windows never match a text query.
    pub text_embedding: Option<Vec<f32>>,
    /// MPEG-7 colour layout of the window's middle frame, for search by image.
    pub appearance: Vec<f32>,
    /// The image-text encoder that produced `visual_embedding` (added within v1: optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visual_model: Option<String>,
    /// Unit-length embedding of the middle frame in the image-text encoder's space, for
    /// text-to-image and image-to-image search; absent when no encoder is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visual_embedding: Option<Vec<f32>>,
    pub produced_at: DateTime<Utc>,
}

impl MomentWindow {
    pub const SCHEMA_VERSION: u32 = 1;
    pub const SCHEMA_ID: &'static str = "argus.moment-window.v1";

    /// The text the window is embedded from, and matched against query words.
    pub fn document(&self) -> String {
        let objects = self.object_phrases();
        let mut parts: Vec<&str> = self.ocr_text.iter().map(String::as_str).collect();
        parts.extend(self.tags.iter().map(String::as_str));
        parts.extend(objects.iter().map(String::as_str));
        parts.extend(self.caption.as_deref());
        parts.join("\n")
    }

    /// The window's objects in words, the largest group first.
    pub fn object_phrases(&self) -> Vec<String> {
        self.objects.iter().map(ObjectGroup::phrase).collect()
    }

    /// Milliseconds since the epoch of the start: the window's key within its camera.
    pub fn start_ms(&self) -> i64 {
        self.start.timestamp_millis()
    }
}

/// What a window keeps of one analysed frame.
pub struct FrameSummary<'a> {
    pub wall_time: DateTime<Utc>,
    /// `None` for a frame sampled only for the objects stage: it adds its objects, and is not
    /// counted among the window's frames.
    pub ocr: Option<&'a [TextLine]>,
    pub objects: Option<&'a FrameObjects>,
    pub appearance: Vec<f32>,
    /// A JPEG of the frame, for the window's thumbnail.
    pub thumbnail: Option<Vec<u8>>,
    /// The frame itself, kept when the window is embedded by an image-text encoder.
    pub image: Option<Arc<BgrImage>>,
}

/// A window that has all its frames, before embedding.
#[derive(Debug)]
pub struct ClosedWindow {
    pub camera_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub frames: u32,
    pub ocr_text: Vec<String>,
    pub objects: Vec<ObjectGroup>,
    pub appearance: Vec<f32>,
    pub thumbnail: Option<Vec<u8>>,
    /// The middle frame, when the frames carried their image.
    pub image: Option<Arc<BgrImage>>,
}

/// Gathers one camera's frames into consecutive windows aligned to multiples of the window
/// length (so a restarted stream, or a resumed `argus index`, produces the same windows).
pub struct WindowBuilder {
    camera_id: String,
    length: Duration,
    open: Option<OpenWindow>,
}

struct OpenWindow {
    start: DateTime<Utc>,
    frames: u32,
    /// Text line → best recognition confidence.
    lines: BTreeMap<String, f32>,
    activity: Activity,
    /// The middle frame represents the window; the first one until it is known.
    appearance: Vec<f32>,
    thumbnail: Option<Vec<u8>>,
    image: Option<Arc<BgrImage>>,
}

impl WindowBuilder {
    pub fn new(camera_id: &str, length: std::time::Duration) -> Self {
        Self {
            camera_id: camera_id.to_owned(),
            length: Duration::from_std(length).unwrap_or(Duration::seconds(2)),
            open: None,
        }
    }

    /// The start of the window `time` falls in.
    pub fn window_start(&self, time: DateTime<Utc>) -> DateTime<Utc> {
        let length = self.length.num_milliseconds().max(1);
        let ms = time.timestamp_millis();
        DateTime::from_timestamp_millis(ms - ms.rem_euclid(length)).unwrap_or(time)
    }

    /// Adds a frame; returns the previous window when this frame starts a new one.
    pub fn push(&mut self, frame: FrameSummary<'_>) -> Option<ClosedWindow> {
        let start = self.window_start(frame.wall_time);
        let closed = match &self.open {
            Some(open) if open.start != start => self.close(),
            _ => None,
        };
        let middle = start + self.length / 2;
        let open = self.open.get_or_insert_with(|| OpenWindow {
            start,
            frames: 0,
            lines: BTreeMap::new(),
            activity: Activity::default(),
            appearance: Vec::new(),
            thumbnail: None,
            image: None,
        });
        if let Some(objects) = frame.objects {
            open.activity.observe(objects);
        }
        let Some(ocr) = frame.ocr else {
            return closed;
        };
        open.frames += 1;
        for line in ocr {
            let text = line.text.trim();
            if !text.is_empty() {
                let best = open.lines.entry(text.to_owned()).or_insert(0.0);
                *best = best.max(line.score);
            }
        }
        if open.appearance.is_empty() || frame.wall_time <= middle {
            open.appearance = frame.appearance;
            if frame.thumbnail.is_some() {
                open.thumbnail = frame.thumbnail;
            }
            if frame.image.is_some() {
                open.image = frame.image;
            }
        }
        closed
    }

    /// The end of the open window, if one is open.
    pub fn open_end(&self) -> Option<DateTime<Utc>> {
        self.open.as_ref().map(|open| open.start + self.length)
    }

    /// Closes the open window (end of stream, or the stream went away).
    pub fn close(&mut self) -> Option<ClosedWindow> {
        let open = self.open.take()?;
        let mut lines: Vec<(String, f32)> = open.lines.into_iter().collect();
        lines.sort_by(|a, b| b.1.total_cmp(&a.1));
        Some(ClosedWindow {
            camera_id: self.camera_id.clone(),
            start: open.start,
            end: open.start + self.length,
            frames: open.frames,
            ocr_text: lines.into_iter().map(|(text, _)| text).collect(),
            objects: open.activity.groups(),
            appearance: open.appearance,
            thumbnail: open.thumbnail,
            image: open.image,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, score: f32) -> TextLine {
        TextLine {
            text: text.into(),
            score,
            quad: [[0.0; 2]; 4],
        }
    }

    fn at(seconds: f64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis((1_700_000_000_000.0 + seconds * 1000.0) as i64).unwrap()
    }

    fn frame(seconds: f64, lines: &[TextLine]) -> FrameSummary<'_> {
        FrameSummary {
            wall_time: at(seconds),
            ocr: Some(lines),
            objects: None,
            appearance: vec![seconds as f32],
            thumbnail: None,
            image: None,
        }
    }

    #[test]
    fn frames_fall_into_aligned_windows_with_their_text_merged() {
        let mut builder = WindowBuilder::new("gate3", std::time::Duration::from_secs(2));
        let gate = [line("GATE 3", 0.9), line("TRUCK", 0.6)];
        let truck = [line("TRUCK", 0.95)];
        assert!(builder.push(frame(0.1, &gate)).is_none());
        assert!(builder.push(frame(1.5, &truck)).is_none());
        let closed = builder
            .push(frame(2.2, &[]))
            .expect("a new window closes the first");
        assert_eq!(closed.start, at(0.0));
        assert_eq!(closed.end, at(2.0));
        assert_eq!(closed.frames, 2);
        assert_eq!(closed.ocr_text, vec!["TRUCK", "GATE 3"], "best score first");
        assert_eq!(
            closed.appearance,
            vec![0.1],
            "the last frame before the middle"
        );
        let last = builder.close().unwrap();
        assert_eq!((last.start, last.frames), (at(2.0), 1));
        assert!(last.ocr_text.is_empty());
        assert!(builder.close().is_none());
    }
}

//! Cutting a stream into chunks: every sampled frame with its perception results is kept
//! until its chunk closes, so the chunk carries all its frames (the dense set a correction
//! re-examines) while the first round describes one frame per segment.

use std::sync::Arc;

use argus_operators::motion::{Motion, MotionDetector};
use argus_operators::ocr::TextLine;
use argus_operators::BgrImage;
use chrono::{DateTime, TimeZone, Utc};

use crate::objects::activity::Activity;
use crate::objects::FrameObjects;

/// One sampled frame as the captioner keeps it.
#[derive(Clone)]
pub struct ChunkFrame {
    pub wall_time: DateTime<Utc>,
    pub image: Arc<BgrImage>,
    /// Recognised text lines with their confidence.
    pub ocr: Vec<(String, f32)>,
    pub motion: Motion,
    /// What the objects stage tracked since the camera's previous analysed frame, up to this
    /// one (it samples faster); empty when it is off.
    pub objects: Vec<Arc<FrameObjects>>,
}

impl ChunkFrame {
    /// The frame as the captions sink keeps it: its OCR lines, and its motion against the
    /// camera's previous frame (none when it cannot be measured).
    pub fn observe(
        wall_time: DateTime<Utc>,
        image: Arc<BgrImage>,
        ocr: &[TextLine],
        objects: Vec<Arc<FrameObjects>>,
        motion: &mut MotionDetector,
    ) -> Self {
        let motion = motion.observe(&image).unwrap_or_else(|error| {
            tracing::debug!(%error, "no motion measure");
            Default::default()
        });
        Self {
            wall_time,
            image,
            ocr: ocr.iter().map(|l| (l.text.clone(), l.score)).collect(),
            motion,
            objects,
        }
    }
}

/// A closed chunk: `[start, end)` of video time and its frames in order.
pub struct Chunk {
    pub camera: String,
    pub source: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub frames: Vec<ChunkFrame>,
}

impl Chunk {
    /// The segment `[0, segments)` an instant of the chunk falls in.
    pub fn segment_of(&self, at: DateTime<Utc>, segments: usize) -> usize {
        let length = (self.end - self.start).num_milliseconds().max(1);
        let offset = (at - self.start).num_milliseconds().clamp(0, length - 1);
        ((offset * segments as i64) / length) as usize
    }

    /// The start of segment `segment`.
    pub fn segment_start(&self, segment: usize, segments: usize) -> DateTime<Utc> {
        let length = (self.end - self.start).num_milliseconds();
        self.start + chrono::Duration::milliseconds(length * segment as i64 / segments as i64)
    }

    /// Whether the objects stage ran on this chunk's frames.
    pub fn tracks_objects(&self) -> bool {
        self.frames.iter().any(|frame| !frame.objects.is_empty())
    }

    /// What the tracks did over the given frames (indices into `frames`).
    pub fn activity(&self, frames: &[usize]) -> Activity {
        let mut activity = Activity::default();
        for objects in frames.iter().flat_map(|&i| &self.frames[i].objects) {
            activity.observe(objects);
        }
        activity
    }

    /// Indices of the frames in each segment.
    pub fn frames_by_segment(&self, segments: usize) -> Vec<Vec<usize>> {
        let mut by_segment = vec![Vec::new(); segments];
        for (i, frame) in self.frames.iter().enumerate() {
            by_segment[self.segment_of(frame.wall_time, segments)].push(i);
        }
        by_segment
    }
}

/// Gathers one camera's frames into chunks aligned to multiples of the chunk length.
pub struct ChunkBuilder {
    camera: String,
    source: String,
    length_ms: i64,
    open: Option<(i64, Vec<ChunkFrame>)>,
}

impl ChunkBuilder {
    pub fn new(camera: &str, source: &str, length_s: f64) -> Self {
        Self {
            camera: camera.into(),
            source: source.into(),
            length_ms: ((length_s * 1000.0).round() as i64).max(1),
            open: None,
        }
    }

    /// Adds a frame; returns the previous chunk when this frame is the first of a later
    /// one. A frame older than the open chunk (a clock step back) joins the open chunk.
    pub fn push(&mut self, frame: ChunkFrame) -> Option<Chunk> {
        let start = frame
            .wall_time
            .timestamp_millis()
            .div_euclid(self.length_ms)
            * self.length_ms;
        match &mut self.open {
            Some((open_start, frames)) if start <= *open_start => {
                frames.push(frame);
                None
            }
            _ => {
                let closed = self.flush();
                self.open = Some((start, vec![frame]));
                closed
            }
        }
    }

    /// Closes the open chunk (end of a recording, or its end time has passed on a live
    /// stream).
    pub fn flush(&mut self) -> Option<Chunk> {
        let (start, frames) = self.open.take()?;
        let at = |ms: i64| Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
        Some(Chunk {
            camera: self.camera.clone(),
            source: self.source.clone(),
            start: at(start),
            end: at(start + self.length_ms),
            frames,
        })
    }

    /// The end of the open chunk, if any.
    pub fn open_until(&self) -> Option<DateTime<Utc>> {
        self.open
            .as_ref()
            .and_then(|(start, _)| Utc.timestamp_millis_opt(start + self.length_ms).single())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ms: i64) -> ChunkFrame {
        ChunkFrame {
            wall_time: Utc.timestamp_millis_opt(ms).unwrap(),
            image: Arc::new(BgrImage::new(1, 1, vec![0, 0, 0]).unwrap()),
            ocr: Vec::new(),
            motion: Motion::default(),
            objects: Vec::new(),
        }
    }

    #[test]
    fn chunks_are_aligned_and_close_on_the_next_chunks_first_frame() {
        let mut builder = ChunkBuilder::new("cam", "test:", 10.0);
        assert!(builder.push(frame(12_000)).is_none());
        assert!(builder.push(frame(19_999)).is_none());
        assert_eq!(builder.open_until().unwrap().timestamp_millis(), 20_000);
        let chunk = builder.push(frame(20_000)).expect("closed");
        assert_eq!(chunk.start.timestamp_millis(), 10_000);
        assert_eq!(chunk.end.timestamp_millis(), 20_000);
        assert_eq!(chunk.frames.len(), 2);
        // A gap of several chunks closes the open one only.
        let chunk = builder.push(frame(55_000)).expect("closed");
        assert_eq!(chunk.start.timestamp_millis(), 20_000);
        let last = builder.flush().expect("the open chunk");
        assert_eq!(last.start.timestamp_millis(), 50_000);
        assert!(builder.flush().is_none());
    }

    #[test]
    fn frames_fall_into_segments_by_time() {
        let mut builder = ChunkBuilder::new("cam", "test:", 10.0);
        for ms in [0, 1_000, 2_500, 9_999] {
            builder.push(frame(ms));
        }
        let chunk = builder.flush().unwrap();
        assert_eq!(
            chunk.frames_by_segment(5),
            vec![vec![0, 1], vec![2], vec![], vec![], vec![3]]
        );
        assert_eq!(chunk.segment_start(2, 5).timestamp_millis(), 4_000);
    }
}

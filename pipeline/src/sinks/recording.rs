//! Marks for `events` mode recording: the moments a camera's segments are kept for. Object
//! events (tracks starting, ending, entering zones, crossing lines, dwelling) are marked as
//! they happen, and motion too when `record.events_include_motion`; alerts are marked by the
//! alert publisher (see `app`). Which cameras are in `events` mode is the recorder's business:
//! marks of other cameras are simply never asked for.
//!
//! [`RecordedFiles`] marks recorded files as having video for clips (live cameras are marked
//! by the recorder, when their recording is on).

use std::collections::HashMap;
use std::sync::Mutex;

use argus_operators::motion::{MotionConfig, MotionDetector};
use async_trait::async_trait;

use crate::recordings::{ClipLinks, RecordingMarks};
use crate::stream::{AnalysedFrame, FinishedStream, FrameSink, OpenedStream};

pub struct RecordingMarker {
    marks: RecordingMarks,
    /// Per camera, when motion counts as an event; the share of the view that must change
    /// (`objects.min_motion`, the objects stage's own "something moved").
    motion: Option<(Mutex<HashMap<String, MotionDetector>>, f32)>,
}

impl RecordingMarker {
    pub fn new(marks: RecordingMarks, include_motion: bool, min_motion: f32) -> Self {
        Self {
            marks,
            motion: include_motion.then(|| (Mutex::default(), min_motion)),
        }
    }
}

#[async_trait]
impl FrameSink for RecordingMarker {
    async fn observe(&self, frame: &AnalysedFrame) {
        let camera = frame.camera.as_ref();
        if let Some(objects) = &frame.objects {
            for event in &objects.events {
                self.marks.mark(camera, event.at, event.at);
            }
        }
        if let Some((detectors, min_motion)) = &self.motion {
            let moved = {
                let mut detectors = detectors.lock().expect("motion lock");
                let detector = detectors
                    .entry(camera.to_owned())
                    .or_insert_with(|| MotionDetector::new(MotionConfig::default()));
                detector
                    .observe(&frame.image)
                    .is_ok_and(|motion| motion.level > 0.0 && motion.level >= *min_motion)
            };
            if moved {
                self.marks.mark(camera, frame.wall_time, frame.wall_time);
            }
        }
    }

    async fn finish(&self, finished: &FinishedStream<'_>) {
        for event in finished.object_events {
            self.marks.mark(finished.camera, event.at, event.at);
        }
        if let Some((detectors, _)) = &self.motion {
            detectors
                .lock()
                .expect("motion lock")
                .remove(finished.camera);
        }
    }
}

/// A file stream is a recording of its camera: it has video to cut clips from from the moment
/// it opens, in `argus run` and `argus index` alike.
pub struct RecordedFiles(ClipLinks);

impl RecordedFiles {
    pub fn new(links: ClipLinks) -> Self {
        Self(links)
    }
}

#[async_trait]
impl FrameSink for RecordedFiles {
    async fn open(&self, stream: &OpenedStream<'_>) {
        if stream.recording.is_some() {
            self.0.set_recorded(stream.camera, true);
        }
    }

    async fn observe(&self, _frame: &AnalysedFrame) {}
}

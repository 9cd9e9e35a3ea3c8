//! Recorded video of live cameras: the segments the decoder's recording branch writes (see
//! [`crate::source::decoder`]), their index in Redis, and the links to clips of them.
//!
//! A segment is a file of the camera's own encoded stream (no decode, no encode) covering
//! `[start, end)` in wall-clock time. The index is the list of a camera's segments; what the
//! index lists is what clips are cut from, so retention deletes from both.

pub mod clip;
pub mod index;
pub mod recorder;
pub mod retention;

pub use index::{Missing, Segment, SegmentIndex};
pub use recorder::{Recorder, RecordingMarks, RecordingMetrics};

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, SecondsFormat, Utc};

/// Where clips of any recorded span are served.
pub const CLIPS_PATH: &str = "/api/v1/clips";

/// The link to the clip of `camera` from `start` to `end` (RFC 3339, millisecond precision).
pub fn clip_link(camera: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("camera", camera)
        .append_pair("start", &time(start))
        .append_pair("end", &time(end))
        .finish();
    format!("{CLIPS_PATH}?{query}")
}

/// Which cameras have video to cut clips from, for the publishers that attach clip links
/// (moments, captions, object events, alerts). Cheap to clone; shared by the whole service.
///
/// A camera has video while its recording is on (live cameras, `record.mode` not `off`) or
/// when it is a recorded file. A link is given for a span as soon as the span is over, even
/// though its segment may close up to `record.segment_s` later: the clip answers once it has.
#[derive(Clone, Default)]
pub struct ClipLinks {
    recorded: Arc<RwLock<HashSet<String>>>,
}

impl ClipLinks {
    /// Marks `camera` as having video (or not) from now on.
    pub fn set_recorded(&self, camera: &str, recorded: bool) {
        let mut cameras = self.recorded.write().expect("clip links lock");
        if recorded {
            cameras.insert(camera.to_owned());
        } else {
            cameras.remove(camera);
        }
    }

    pub fn is_recorded(&self, camera: &str) -> bool {
        self.recorded
            .read()
            .expect("clip links lock")
            .contains(camera)
    }

    /// The clip link of the span, when the camera has video.
    pub fn link(&self, camera: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Option<String> {
        self.is_recorded(camera)
            .then(|| clip_link(camera, start, end))
    }

    /// The clip link of the span when the camera has video, or when a recorded file holds
    /// the span (`in_file`: the caller looked it up in the moment store's recordings, which
    /// this module cannot read; a file indexed by `argus index` is known there only).
    pub fn link_or_file(
        &self,
        camera: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        in_file: bool,
    ) -> Option<String> {
        (in_file || self.is_recorded(camera)).then(|| clip_link(camera, start, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clip_link_names_the_camera_and_span_in_rfc_3339() {
        let start = DateTime::parse_from_rfc3339("2026-12-07T10:00:00.250Z")
            .unwrap()
            .with_timezone(&Utc);
        let end = start + chrono::Duration::seconds(10);
        assert_eq!(
            clip_link("gate 3", start, end),
            "/api/v1/clips?camera=gate+3&start=2026-12-07T10%3A00%3A00.250Z\
             &end=2026-12-07T10%3A00%3A10.250Z"
        );
    }

    #[test]
    fn clip_links_are_given_for_cameras_with_video_only() {
        let links = ClipLinks::default();
        let now = Utc::now();
        assert_eq!(links.link("gate", now, now), None);
        links.set_recorded("gate", true);
        assert!(links.link("gate", now, now).is_some());
        links.set_recorded("gate", false);
        assert_eq!(links.link("gate", now, now), None);
        assert_eq!(links.link_or_file("gate", now, now, false), None);
        assert!(links.link_or_file("gate", now, now, true).is_some());
    }
}

//! Recorded video of live cameras: the segments the decoder's recording branch writes (see
//! [`crate::source::decoder`]), their index in Redis, and the links to clips of them.
//!
//! A segment is a file of the camera's own encoded stream (no decode, no encode) covering
//! `[start, end)` in wall-clock time. The index is the list of a camera's segments; what the
//! index lists is what clips are cut from, so retention deletes from both.

pub mod index;

pub use index::{Missing, Segment, SegmentIndex};

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
}

//! Clips of any span of a camera's video, for `GET /api/v1/clips`: from its recorded
//! segments (live cameras) or from its recorded file (a file stream, or a file indexed with
//! `argus index`), cut into the clip cache and served from there.
//!
//! Segments are always remuxed (`recordings::clip`): a camera's recording is its own H.264
//! or H.265. A recorded file is remuxed too when its video is H.264 or H.265; any other codec
//! (MPEG-4 part 2, VP8, ...) cannot go into an MP4 unchanged, and its clip is encoded as WebM
//! instead (`moments::clip`, at most its first [`crate::moments::clip::MAX_CLIP`]).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::moments::store::{MomentStore, Recording};
use crate::recordings::clip::{self, ClipCache, ClipError, Source};
use crate::recordings::{Segment, SegmentIndex};
use crate::stream::StreamRegistry;

/// Why a clip is not served.
#[derive(Debug, thiserror::Error)]
pub enum ClipRequestError {
    /// HTTP 400.
    #[error("the span is empty or reversed: end {end} is not after start {start}")]
    Reversed {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// HTTP 400.
    #[error(
        "the span is {asked} s long; clips are at most {limit} s (record.max_clip_s): \
         ask for a shorter span"
    )]
    TooLong { asked: f64, limit: f64 },
    /// HTTP 404.
    #[error(
        "unknown camera `{0}`: no stream of that name, and no recorded video of it \
         (segments or an indexed file)"
    )]
    UnknownCamera(String),
    /// HTTP 404: a known camera without video there, and why.
    #[error("no video of camera `{camera}` from {start} to {end}: {reason}")]
    NoVideo {
        camera: String,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        reason: String,
    },
    /// HTTP 503.
    #[error("clips need Redis (the recordings index), which is unavailable: {0}")]
    Unavailable(String),
    /// HTTP 500.
    #[error("cutting the clip failed: {0}")]
    Failed(String),
}

/// A clip ready to serve.
#[derive(Debug)]
pub struct ClipFile {
    pub path: PathBuf,
    /// `video/mp4` (remuxed) or `video/webm` (encoded).
    pub content_type: &'static str,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct Clips {
    segments: SegmentIndex,
    files: MomentStore,
    registry: StreamRegistry,
    cache: ClipCache,
    max_clip: Duration,
}

impl Clips {
    pub fn new(
        segments: SegmentIndex,
        files: MomentStore,
        registry: StreamRegistry,
        cache: ClipCache,
        max_clip: Duration,
    ) -> Self {
        Self {
            segments,
            files,
            registry,
            cache,
            max_clip,
        }
    }

    /// The clip of `camera` from `start` to `end`, cut now or found in the cache.
    pub async fn clip(
        &self,
        camera: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<ClipFile, ClipRequestError> {
        if end <= start {
            return Err(ClipRequestError::Reversed { start, end });
        }
        let asked = (end - start).to_std().unwrap_or(Duration::MAX);
        if asked > self.max_clip {
            return Err(ClipRequestError::TooLong {
                asked: asked.as_secs_f64(),
                limit: self.max_clip.as_secs_f64(),
            });
        }
        let unavailable = |e: redis::RedisError| ClipRequestError::Unavailable(e.to_string());
        let segments = self
            .segments
            .overlapping(camera, start, end)
            .await
            .map_err(unavailable)?;
        if !segments.is_empty() {
            return self.cut_segments(camera, &segments, start, end).await;
        }
        let files = self.files.recordings(camera).await.map_err(unavailable)?;
        if let Some(file) = file_of(&files, start, end) {
            return self.cut_file(camera, file, start, end).await;
        }
        let known = self.registry.get(camera).is_some()
            || !files.is_empty()
            || self
                .segments
                .cameras()
                .await
                .map_err(unavailable)?
                .iter()
                .any(|c| c == camera);
        if !known {
            return Err(ClipRequestError::UnknownCamera(camera.to_owned()));
        }
        let reason = if files.is_empty() {
            self.segments
                .why_missing(camera, start)
                .await
                .map_err(unavailable)?
                .reason()
                .to_owned()
        } else {
            "the camera's recorded file does not cover this span".to_owned()
        };
        Err(ClipRequestError::NoVideo {
            camera: camera.to_owned(),
            start,
            end,
            reason,
        })
    }

    async fn cut_segments(
        &self,
        camera: &str,
        segments: &[Segment],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<ClipFile, ClipRequestError> {
        // The segments' sizes are in the key: a segment rewritten under its name is a new clip.
        let key = (
            camera,
            start,
            end,
            segments
                .iter()
                .map(|s| (&s.path, s.start, s.bytes))
                .collect::<Vec<_>>(),
        );
        let entry = self.cache.entry(&key, "mp4");
        if let Some(path) = self.cache.hit(&entry) {
            return Ok(mp4(path));
        }
        let sources: Vec<Source> = segments.iter().map(Source::from).collect();
        let cut = self
            .cache
            .fill(&entry, move |out| clip::remux(&sources, start, end, out))
            .await
            .map_err(|error| failed(camera, start, end, error))?;
        tracing::debug!(camera, %start, %end, first_frame = %cut.first_frame, frames = cut.frames,
            "clip remuxed from segments");
        Ok(mp4(entry))
    }

    async fn cut_file(
        &self,
        camera: &str,
        file: &Recording,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<ClipFile, ClipRequestError> {
        let recorded_at = DateTime::from_timestamp_millis(file.start_ms).unwrap_or_default();
        let bytes = std::fs::metadata(&file.path).map_or(0, |m| m.len());
        let key = (camera, start, end, &file.path, recorded_at, bytes);
        let (remuxed, encoded) = (
            self.cache.entry(&key, "mp4"),
            self.cache.entry(&key, "webm"),
        );
        if let Some(path) = self.cache.hit(&remuxed) {
            return Ok(mp4(path));
        }
        if let Some(path) = self.cache.hit(&encoded) {
            return Ok(webm(path));
        }
        let source = Source {
            path: file.path.clone(),
            start: recorded_at,
        };
        match self
            .cache
            .fill(&remuxed, move |out| clip::remux(&[source], start, end, out))
            .await
        {
            Ok(_) => return Ok(mp4(remuxed)),
            Err(ClipError::NotRemuxable(codec)) => {
                tracing::debug!(camera, codec, "clip of a recorded file encoded as WebM");
            }
            Err(error) => return Err(failed(camera, start, end, error)),
        }
        // Not H.264 or H.265: decoded and encoded, from the span's start in the file.
        let path = file.path.clone();
        let offset = (start - recorded_at).to_std().unwrap_or_default();
        let from = start.max(recorded_at);
        let length = (end - from).to_std().unwrap_or_default();
        self.cache
            .fill(&encoded, move |out| {
                let webm =
                    crate::moments::clip::cut(&path, offset, length).map_err(|e| match e {
                        crate::moments::clip::ClipError::Missing(file) => {
                            ClipError::Missing(file.into())
                        }
                        crate::moments::clip::ClipError::Empty => ClipError::Empty,
                        crate::moments::clip::ClipError::Pipeline(message) => {
                            ClipError::Pipeline(message)
                        }
                    })?;
                Ok(std::fs::write(out, webm)?)
            })
            .await
            .map_err(|error| failed(camera, start, end, error))?;
        Ok(webm(encoded))
    }
}

fn mp4(path: PathBuf) -> ClipFile {
    ClipFile {
        path,
        content_type: "video/mp4",
    }
}

fn webm(path: PathBuf) -> ClipFile {
    ClipFile {
        path,
        content_type: "video/webm",
    }
}

/// A cut that found no video there (the files are gone, or hold nothing of the span) is the
/// asker's 404; anything else is ours.
fn failed(
    camera: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    error: ClipError,
) -> ClipRequestError {
    match error {
        ClipError::Missing(_) | ClipError::Empty => ClipRequestError::NoVideo {
            camera: camera.to_owned(),
            start,
            end,
            reason: error.to_string(),
        },
        other => {
            tracing::error!(camera, %start, %end, error = %other, "clip not cut");
            ClipRequestError::Failed(other.to_string())
        }
    }
}

/// Of a camera's recorded files (oldest first), the newest one holding video of
/// `[start, end)`: it started before `end`, and `start` is before its end (when known).
fn file_of(files: &[Recording], start: DateTime<Utc>, end: DateTime<Utc>) -> Option<&Recording> {
    let (start, end) = (start.timestamp_millis(), end.timestamp_millis());
    files
        .iter()
        .rev()
        .find(|file| file.start_ms < end)
        .filter(|file| file.end_ms.is_none_or(|file_end| start < file_end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap()
    }

    fn file(start: i64, end: Option<i64>, name: &str) -> Recording {
        Recording {
            start_ms: at(start).timestamp_millis(),
            end_ms: end.map(|end| at(end).timestamp_millis()),
            path: name.into(),
        }
    }

    #[test]
    fn a_span_is_cut_from_the_newest_file_holding_it() {
        let files = [file(0, Some(10_000), "a.mp4"), file(20_000, None, "b.mp4")];
        let name = |start, end| file_of(&files, at(start), at(end)).map(|f| f.path.clone());
        assert_eq!(name(2_000, 4_000), Some("a.mp4".into()));
        assert_eq!(
            name(-5_000, 1_000),
            Some("a.mp4".into()),
            "starts before it"
        );
        assert_eq!(name(12_000, 15_000), None, "between the files");
        assert_eq!(name(15_000, 25_000), Some("b.mp4".into()));
        assert_eq!(name(90_000, 95_000), Some("b.mp4".into()), "length unknown");
        assert_eq!(name(-9_000, -1_000), None, "before the first");
    }
}

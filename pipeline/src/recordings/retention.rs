//! Retention of recorded segments, and the start-up reconciliation of the index with the
//! disk.
//!
//! Every `record.retention.interval_s`, segments past any limit are deleted, oldest first:
//! older than `max_age_s`, over a camera's `max_bytes_per_camera`, over everyone's
//! `max_bytes_total`. The file and the index entry go together, and the index remembers
//! that retention deleted the span (`why_missing`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::recorder::{camera_folders, Recorder};
use super::Segment;
use crate::config::RecordRetentionConfig;
use crate::source::segment_start;

/// Why retention deletes a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Age,
    CameraBudget,
    TotalBudget,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::Age => "age",
            Reason::CameraBudget => "camera_budget",
            Reason::TotalBudget => "total_budget",
        }
    }
}

/// The segments to delete from `cameras` (each camera's segments oldest first) at `now`.
pub fn plan(
    cameras: &[Vec<Segment>],
    now: DateTime<Utc>,
    retention: &RecordRetentionConfig,
) -> Vec<(Segment, Reason)> {
    let mut deleted = Vec::new();
    let mut kept: Vec<Segment> = Vec::new();
    for segments in cameras {
        let mut camera: Vec<&Segment> = Vec::new();
        for segment in segments {
            let too_old = retention.max_age_s.is_some_and(|max_age| {
                segment.end < now - chrono::Duration::seconds(max_age as i64)
            });
            if too_old {
                deleted.push((segment.clone(), Reason::Age));
            } else {
                camera.push(segment);
            }
        }
        let mut bytes: u64 = camera.iter().map(|s| s.bytes).sum();
        let mut first_kept = 0;
        if let Some(budget) = retention.max_bytes_per_camera {
            while bytes > budget && first_kept < camera.len() {
                bytes -= camera[first_kept].bytes;
                deleted.push((camera[first_kept].clone(), Reason::CameraBudget));
                first_kept += 1;
            }
        }
        kept.extend(camera[first_kept..].iter().map(|s| (*s).clone()));
    }
    if let Some(budget) = retention.max_bytes_total {
        kept.sort_by_key(|s| s.start);
        let mut bytes: u64 = kept.iter().map(|s| s.bytes).sum();
        for segment in kept {
            if bytes <= budget {
                break;
            }
            bytes -= segment.bytes;
            deleted.push((segment, Reason::TotalBudget));
        }
    }
    deleted
}

/// Runs retention every `interval_s`.
pub async fn run(recorder: Recorder) {
    let interval = Duration::from_secs(recorder.config().retention.interval_s);
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        if let Err(error) = apply(&recorder).await {
            tracing::warn!(%error, "recording retention skipped: the index is not readable");
        }
    }
}

/// One retention pass.
async fn apply(recorder: &Recorder) -> redis::RedisResult<()> {
    let index = recorder.index();
    let mut cameras = Vec::new();
    for camera in index.cameras().await? {
        cameras.push(index.segments(&camera).await?);
    }
    let deletions = plan(&cameras, Utc::now(), &recorder.config().retention);
    let mut by_camera: HashMap<(String, Reason), Vec<Segment>> = HashMap::new();
    for (segment, reason) in &deletions {
        by_camera
            .entry((segment.camera.clone(), *reason))
            .or_default()
            .push(segment.clone());
    }
    for ((camera, reason), segments) in by_camera {
        recorder.forget_pending(&segments);
        recorder
            .delete(&camera, &segments, reason.label(), true)
            .await;
    }
    for segments in &cameras {
        let Some(camera) = segments.first().map(|s| s.camera.clone()) else {
            continue;
        };
        let kept: u64 = segments
            .iter()
            .filter(|s| !deletions.iter().any(|(d, _)| d == *s))
            .map(|s| s.bytes)
            .sum();
        recorder.set_bytes(&camera, kept);
    }
    Ok(())
}

/// Brings the index and the disk into agreement at start-up, before this process has closed
/// a segment:
/// - index entries whose file is gone are removed;
/// - segment files the index does not list (the process died between closing a file and
///   indexing it, or while writing it) are indexed when they play, with the duration GStreamer's
///   discoverer reads, and deleted when they do not: an MP4 cut off while being written has no
///   index of its own and plays nowhere, so keeping it would only spend the disk;
/// - the segments of cameras not in `known` (removed from the configuration and the control
///   topic) are deleted with their index.
pub async fn reconcile(recorder: &Recorder, known: &HashSet<String>) -> redis::RedisResult<()> {
    let index = recorder.index();
    let dir = recorder.dir().to_owned();
    let mut cameras: HashSet<String> = index.cameras().await?.into_iter().collect();
    let folders = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || camera_folders(&dir))
            .await
            .expect("listing folders does not panic")
    };
    cameras.extend(folders.iter().cloned());
    for camera in cameras {
        let segments = index.segments(&camera).await?;
        if !known.contains(&camera) {
            tracing::info!(
                camera,
                segments = segments.len(),
                "deleting the recordings of a camera that no longer exists"
            );
            recorder
                .delete(&camera, &segments, "camera_removed", false)
                .await;
            index.forget_camera(&camera).await;
            recorder.forget_bytes(&camera);
            let folder = dir.join(&camera);
            let _ = tokio::task::spawn_blocking(move || remove_segment_folder(&folder)).await;
            continue;
        }
        let listed: HashSet<PathBuf> = segments.iter().map(|s| s.path.clone()).collect();
        let gone: Vec<Segment> = segments
            .iter()
            .filter(|s| !s.path.exists())
            .cloned()
            .collect();
        if !gone.is_empty() {
            tracing::warn!(
                camera,
                segments = gone.len(),
                "recording segments missing from disk are unlisted"
            );
            index.remove(&camera, &gone, false).await;
        }
        let started = recorder.started();
        let folder = dir.join(&camera);
        let unlisted: Vec<(PathBuf, DateTime<Utc>)> = segment_files(&folder)
            .into_iter()
            .filter(|(path, start)| !listed.contains(path) && *start < started)
            .collect();
        for (path, start) in unlisted {
            let probed = path.clone();
            let duration = tokio::task::spawn_blocking(move || playable_duration(&probed))
                .await
                .expect("discovering does not panic");
            match duration {
                Some(duration) => {
                    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    let segment = Segment {
                        camera: camera.clone(),
                        start,
                        end: start + chrono::Duration::from_std(duration).unwrap_or_default(),
                        path: path.clone(),
                        bytes,
                    };
                    tracing::info!(camera, path = %path.display(), "an unlisted recording segment is indexed");
                    index.add(&segment).await;
                }
                None => {
                    tracing::warn!(camera, path = %path.display(), "an unlisted recording segment that does not play is deleted");
                    let segment = Segment {
                        camera: camera.clone(),
                        start,
                        end: start,
                        path,
                        bytes: 0,
                    };
                    recorder
                        .delete(&camera, &[segment], "unreadable", false)
                        .await;
                }
            }
        }
    }
    Ok(())
}

/// A camera folder's segment files (named by their start), with their start.
fn segment_files(folder: &Path) -> Vec<(PathBuf, DateTime<Utc>)> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "mp4" || ext == "mkv")
        })
        .filter_map(|path| segment_start(&path).map(|start| (path, start)))
        .collect()
}

/// Removes a camera's segment files and then its folder, if nothing else is in it.
fn remove_segment_folder(folder: &Path) {
    for (path, _) in segment_files(folder) {
        let _ = std::fs::remove_file(path);
    }
    let _ = std::fs::remove_dir(folder);
}

/// The duration GStreamer's discoverer reads from a file, if it plays.
fn playable_duration(path: &Path) -> Option<Duration> {
    let discoverer =
        gstreamer_pbutils::Discoverer::new(gstreamer::ClockTime::from_seconds(10)).ok()?;
    let uri = url::Url::from_file_path(path).ok()?;
    let info = discoverer.discover_uri(uri.as_str()).ok()?;
    let duration = info.duration()?;
    (duration > gstreamer::ClockTime::ZERO && !info.video_streams().is_empty())
        .then(|| Duration::from_nanos(duration.nseconds()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn segment(camera: &str, start: i64, bytes: u64) -> Segment {
        Segment {
            camera: camera.into(),
            start: at(start),
            end: at(start + 60),
            path: format!("/r/{camera}/{start}.mp4").into(),
            bytes,
        }
    }

    fn retention(
        max_age_s: Option<u64>,
        per_camera: Option<u64>,
        total: Option<u64>,
    ) -> RecordRetentionConfig {
        RecordRetentionConfig {
            max_age_s,
            max_bytes_per_camera: per_camera,
            max_bytes_total: total,
            min_free_bytes: 0,
            interval_s: 30,
        }
    }

    fn starts(plan: &[(Segment, Reason)]) -> Vec<(String, i64, Reason)> {
        plan.iter()
            .map(|(s, r)| (s.camera.clone(), s.start.timestamp() - 1_800_000_000, *r))
            .collect()
    }

    #[test]
    fn retention_deletes_the_oldest_past_each_limit() {
        let gate = vec![
            segment("gate", 0, 100),
            segment("gate", 60, 100),
            segment("gate", 120, 100),
        ];
        let door = vec![segment("door", 30, 100), segment("door", 90, 100)];
        let cameras = [gate, door];
        let now = at(240);
        assert!(plan(&cameras, now, &retention(None, None, None)).is_empty());
        // Older than 140 s: ended before 100 s.
        assert_eq!(
            starts(&plan(&cameras, now, &retention(Some(140), None, None))),
            [
                ("gate".into(), 0, Reason::Age),
                ("door".into(), 30, Reason::Age)
            ]
        );
        assert_eq!(
            starts(&plan(&cameras, now, &retention(None, Some(150), None))),
            [
                ("gate".into(), 0, Reason::CameraBudget),
                ("gate".into(), 60, Reason::CameraBudget),
                ("door".into(), 30, Reason::CameraBudget)
            ]
        );
        // Everyone's budget: the oldest across cameras go first.
        assert_eq!(
            starts(&plan(&cameras, now, &retention(None, None, Some(250)))),
            [
                ("gate".into(), 0, Reason::TotalBudget),
                ("door".into(), 30, Reason::TotalBudget),
                ("gate".into(), 60, Reason::TotalBudget)
            ]
        );
        // Limits add up, each segment deleted once.
        assert_eq!(
            starts(&plan(
                &cameras,
                now,
                &retention(Some(140), Some(100), Some(100))
            )),
            [
                ("gate".into(), 0, Reason::Age),
                ("gate".into(), 60, Reason::CameraBudget),
                ("door".into(), 30, Reason::Age),
                ("door".into(), 90, Reason::TotalBudget)
            ]
        );
    }
}

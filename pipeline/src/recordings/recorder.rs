//! The recorder: decides which cameras record (and how), indexes the segments their
//! pipelines close, keeps only the ones near events in `events` mode, and pauses every
//! camera's recording while the disk is below its free-space floor. Retention is in
//! [`super::retention`].
//!
//! ```text
//! decoder's recording branch ──closed segment──▶ channel ──▶ index (Redis), metrics
//!                                                             └─ events mode: pending until no
//!                                                                later mark can reach it, then
//!                                                                kept or deleted
//! disk floor (every second): statvfs ──▶ paused flag read by every recording branch
//! ```

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use tokio::sync::mpsc;

use super::{ClipLinks, Segment, SegmentIndex};
use crate::config::{RecordConfig, RecordMode, SegmentFormat, StreamConfig};
use crate::source::{Container, RecordSettings, RecordedSegment, Source};
use crate::stream::StreamRecorder;

/// How often the free space is checked: often enough that a segment's worth of video cannot
/// fill the margin between checks.
const FLOOR_CHECK: Duration = Duration::from_secs(1);

/// Recording resumes once free space is this share of the floor above it, so that a camera
/// at the edge does not pause and resume with every segment.
const RESUME_MARGIN: f64 = 0.1;

/// `events` mode: marks arrive after what they mark (an alert from a caption comes once its
/// chunk is captioned); a segment is decided this long after no new mark's widened span could
/// start in it any more.
pub const MARK_DELAY: Duration = Duration::from_secs(60);

/// The recording metrics, registered in the service's registry.
#[derive(Clone)]
pub struct RecordingMetrics {
    /// 1 while recording is paused by the disk floor.
    pub paused: IntGauge,
    /// Free bytes on the recordings' filesystem, as last checked.
    pub free_bytes: IntGauge,
    pub segments_written: IntCounterVec,
    /// Bytes of each camera's indexed segments.
    pub bytes: IntGaugeVec,
    /// Segments deleted, by reason (`age`, `camera_budget`, `total_budget`, `events`,
    /// `camera_removed`, `unreadable`).
    pub segments_deleted: IntCounterVec,
}

impl RecordingMetrics {
    pub fn register(registry: &Registry) -> Self {
        let gauge = |name: &str, help: &str| {
            let gauge = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(gauge.clone()))
                .expect("unique metric");
            gauge
        };
        let paused = gauge(
            "argus_recording_paused",
            "1 while recording is paused because the recordings' disk is below record.retention.min_free_bytes.",
        );
        let free_bytes = gauge(
            "argus_recording_free_bytes",
            "Free bytes on the recordings' filesystem.",
        );
        let segments_written = IntCounterVec::new(
            Opts::new(
                "argus_recording_segments_total",
                "Recording segments written.",
            ),
            &["camera"],
        )
        .expect("valid metric");
        let bytes = IntGaugeVec::new(
            Opts::new(
                "argus_recording_bytes",
                "Bytes of a camera's recorded segments on disk.",
            ),
            &["camera"],
        )
        .expect("valid metric");
        let segments_deleted = IntCounterVec::new(
            Opts::new(
                "argus_recording_segments_deleted_total",
                "Recording segments deleted, by reason.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for metric in [
            Box::new(segments_written.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(bytes.clone()),
            Box::new(segments_deleted.clone()),
        ] {
            registry.register(metric).expect("unique metric");
        }
        Self {
            paused,
            free_bytes,
            segments_written,
            bytes,
            segments_deleted,
        }
    }
}

/// A marked span: from, to.
type Span = (DateTime<Utc>, DateTime<Utc>);

/// Marks of what `events` mode keeps: spans of object events, alerts and motion, per
/// camera. Cheap to clone; handed to whatever sees events.
#[derive(Clone, Default)]
pub struct RecordingMarks {
    spans: Arc<Mutex<HashMap<String, Vec<Span>>>>,
}

impl RecordingMarks {
    /// Something worth keeping happened on `camera` from `start` to `end`.
    pub fn mark(&self, camera: &str, start: DateTime<Utc>, end: DateTime<Utc>) {
        let mut spans = self.spans.lock().expect("marks lock");
        let camera = spans.entry(camera.to_owned()).or_default();
        // Consecutive frames of one event mark the same moment again and again.
        if let Some(last) = camera.last_mut() {
            if start <= last.1 && end >= last.0 {
                *last = (last.0.min(start), last.1.max(end));
                return;
            }
        }
        camera.push((start, end));
    }

    fn of(&self, camera: &str) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        self.spans
            .lock()
            .expect("marks lock")
            .get(camera)
            .cloned()
            .unwrap_or_default()
    }

    /// Forgets marks that ended before `before`.
    fn prune(&self, before: DateTime<Utc>) {
        let mut spans = self.spans.lock().expect("marks lock");
        for marks in spans.values_mut() {
            marks.retain(|(_, end)| *end >= before);
        }
        spans.retain(|_, marks| !marks.is_empty());
    }
}

/// What `events` mode does with a closed segment at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Delete,
    /// A mark could still arrive that reaches it.
    Wait,
}

/// `events` mode's rule: a segment is kept when it overlaps a mark widened by the pre- and
/// post-roll; without one it is deleted once no later mark can reach it: marks are at most
/// [`MARK_DELAY`] late, and a mark reaches back `pre_roll` before it starts.
pub fn verdict(
    segment: &Segment,
    marks: &[(DateTime<Utc>, DateTime<Utc>)],
    now: DateTime<Utc>,
    pre_roll: chrono::Duration,
    post_roll: chrono::Duration,
) -> Verdict {
    let reached = marks
        .iter()
        .any(|(start, end)| segment.overlaps(*start - pre_roll, *end + post_roll));
    if reached {
        Verdict::Keep
    } else if now
        > segment.end + pre_roll + chrono::Duration::from_std(MARK_DELAY).expect("a short duration")
    {
        Verdict::Delete
    } else {
        Verdict::Wait
    }
}

/// What the indexing task is sent.
enum Closed {
    /// A camera's pipeline closed a segment.
    Segment(String, RecordedSegment),
    /// Answer once everything sent before is indexed.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    config: RecordConfig,
    dir: PathBuf,
    index: SegmentIndex,
    links: ClipLinks,
    marks: RecordingMarks,
    metrics: RecordingMetrics,
    /// Set while the disk is below the floor; read by every recording branch per buffer.
    paused: Arc<AtomicBool>,
    closed: mpsc::UnboundedSender<Closed>,
    /// Each recording camera's mode, as its pipeline last started.
    modes: Mutex<HashMap<String, RecordMode>>,
    /// `events` mode's segments waiting for their verdict.
    pending: Mutex<Vec<Segment>>,
    /// When this process started: segment files named after it are being written now.
    started: DateTime<Utc>,
}

impl Recorder {
    /// Starts the recorder's tasks: indexing closed segments, the disk floor, and `events`
    /// mode's verdicts.
    pub fn start(
        config: RecordConfig,
        index: SegmentIndex,
        links: ClipLinks,
        marks: RecordingMarks,
        metrics: RecordingMetrics,
    ) -> Self {
        let dir = config.recordings_dir();
        let (closed, segments) = mpsc::unbounded_channel();
        let recorder = Self {
            inner: Arc::new(Inner {
                config,
                dir,
                index,
                links,
                marks,
                metrics,
                paused: Arc::new(AtomicBool::new(false)),
                closed,
                modes: Mutex::new(HashMap::new()),
                pending: Mutex::new(Vec::new()),
                started: Utc::now(),
            }),
        };
        tokio::spawn(recorder.clone().index_segments(segments));
        tokio::spawn(recorder.clone().watch_disk_floor());
        tokio::spawn(recorder.clone().decide_events());
        recorder
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn index(&self) -> &SegmentIndex {
        &self.inner.index
    }

    pub(super) fn config(&self) -> &RecordConfig {
        &self.inner.config
    }

    pub(super) fn started(&self) -> DateTime<Utc> {
        self.inner.started
    }

    /// Segments deleted by retention before their `events` verdict need none.
    pub(super) fn forget_pending(&self, deleted: &[Segment]) {
        self.inner
            .pending
            .lock()
            .expect("pending lock")
            .retain(|segment| !deleted.contains(segment));
    }

    /// Whether recording is paused by the disk floor.
    pub fn is_paused(&self) -> bool {
        self.inner.paused.load(Ordering::Relaxed)
    }

    /// Waits until every segment closed so far is indexed: at shutdown, after the streams
    /// have stopped (closing their last segments).
    pub async fn flush(&self) {
        let (done, flushed) = tokio::sync::oneshot::channel();
        if self.inner.closed.send(Closed::Flush(done)).is_ok() {
            let _ = flushed.await;
        }
    }

    async fn index_segments(self, mut segments: mpsc::UnboundedReceiver<Closed>) {
        while let Some(closed) = segments.recv().await {
            let (camera, recorded) = match closed {
                Closed::Segment(camera, recorded) => (camera, recorded),
                Closed::Flush(done) => {
                    let _ = done.send(());
                    continue;
                }
            };
            let segment = Segment {
                camera: camera.clone(),
                start: recorded.start,
                end: recorded.end,
                path: recorded.path,
                bytes: recorded.bytes,
            };
            tracing::debug!(camera, path = %segment.path.display(), start = %segment.start,
                end = %segment.end, bytes = segment.bytes, "segment closed");
            self.inner.index.add(&segment).await;
            let metrics = &self.inner.metrics;
            metrics.segments_written.with_label_values(&[&camera]).inc();
            metrics
                .bytes
                .with_label_values(&[&camera])
                .add(segment.bytes as i64);
            let mode = self
                .inner
                .modes
                .lock()
                .expect("modes lock")
                .get(&camera)
                .copied();
            if mode == Some(RecordMode::Events) {
                self.inner
                    .pending
                    .lock()
                    .expect("pending lock")
                    .push(segment);
            }
        }
    }

    /// Pauses every camera's recording below the floor, and resumes it above the floor plus a
    /// margin. Analysis is not touched.
    async fn watch_disk_floor(self) {
        let floor = self.inner.config.retention.min_free_bytes;
        let resume_at = floor + (floor as f64 * RESUME_MARGIN) as u64;
        let mut tick = tokio::time::interval(FLOOR_CHECK);
        let mut warned = false;
        loop {
            tick.tick().await;
            // With no camera recording there is nothing to pause, and no disk to warn about.
            if self.inner.modes.lock().expect("modes lock").is_empty() {
                self.inner.paused.store(false, Ordering::Relaxed);
                self.inner.metrics.paused.set(0);
                continue;
            }
            let dir = self.inner.dir.clone();
            let free = tokio::task::spawn_blocking(move || free_bytes(&dir))
                .await
                .expect("statvfs does not panic");
            let free = match free {
                Ok(free) => {
                    warned = false;
                    free
                }
                Err(error) => {
                    if !warned {
                        tracing::warn!(dir = %self.inner.dir.display(), %error,
                            "cannot read the recordings' free space");
                        warned = true;
                    }
                    continue;
                }
            };
            self.inner.metrics.free_bytes.set(free as i64);
            let paused = self.is_paused();
            if !paused && free < floor {
                tracing::error!(free_bytes = free, min_free_bytes = floor, dir = %self.inner.dir.display(),
                    "recording paused: the recordings' disk is below its free-space floor; analysis goes on");
                self.inner.paused.store(true, Ordering::Relaxed);
                self.inner.metrics.paused.set(1);
            } else if paused && free >= resume_at {
                tracing::info!(free_bytes = free, "recording resumes: free space is back");
                self.inner.paused.store(false, Ordering::Relaxed);
                self.inner.metrics.paused.set(0);
            }
        }
    }

    /// `events` mode: every few seconds, segments no later mark can reach are kept or
    /// deleted.
    async fn decide_events(self) {
        let config = &self.inner.config;
        let pre_roll = chrono::Duration::milliseconds((config.pre_roll_s * 1000.0) as i64);
        let post_roll = chrono::Duration::milliseconds((config.post_roll_s * 1000.0) as i64);
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            let now = Utc::now();
            let mut deleted: HashMap<String, Vec<Segment>> = HashMap::new();
            {
                let mut pending = self.inner.pending.lock().expect("pending lock");
                pending.retain(|segment| {
                    let marks = self.inner.marks.of(&segment.camera);
                    match verdict(segment, &marks, now, pre_roll, post_roll) {
                        Verdict::Wait => true,
                        Verdict::Keep => false,
                        Verdict::Delete => {
                            deleted
                                .entry(segment.camera.clone())
                                .or_default()
                                .push(segment.clone());
                            false
                        }
                    }
                });
                // Marks older than anything still pending are of no more use.
                let oldest = pending.iter().map(|s| s.start).min().unwrap_or(now);
                drop(pending);
                self.inner.marks.prune(oldest - post_roll);
            }
            for (camera, segments) in deleted {
                self.delete(&camera, &segments, "events", false).await;
            }
        }
    }

    /// Deletes segments' files and index entries, and counts them under `reason`.
    pub(super) async fn delete(
        &self,
        camera: &str,
        segments: &[Segment],
        reason: &str,
        by_retention: bool,
    ) {
        if segments.is_empty() {
            return;
        }
        let paths: Vec<PathBuf> = segments.iter().map(|s| s.path.clone()).collect();
        let removed = tokio::task::spawn_blocking(move || {
            paths
                .iter()
                .filter(|path| match std::fs::remove_file(path) {
                    Ok(()) => true,
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => true,
                    Err(error) => {
                        tracing::error!(path = %path.display(), %error, "cannot delete a recording segment");
                        false
                    }
                })
                .count()
        })
        .await
        .expect("deleting files does not panic");
        self.inner
            .index
            .remove(camera, segments, by_retention)
            .await;
        let metrics = &self.inner.metrics;
        metrics
            .segments_deleted
            .with_label_values(&[reason])
            .inc_by(removed as u64);
        let bytes: u64 = segments.iter().map(|s| s.bytes).sum();
        metrics.bytes.with_label_values(&[camera]).sub(bytes as i64);
        tracing::info!(
            camera,
            segments = segments.len(),
            bytes,
            reason,
            "recording segments deleted"
        );
    }

    /// A camera whose recordings are all gone has no bytes series any more.
    pub(super) fn forget_bytes(&self, camera: &str) {
        let _ = self.inner.metrics.bytes.remove_label_values(&[camera]);
    }

    /// Sets a camera's bytes on disk (after retention has read them all).
    pub(super) fn set_bytes(&self, camera: &str, bytes: u64) {
        self.inner
            .metrics
            .bytes
            .with_label_values(&[camera])
            .set(bytes as i64);
    }
}

impl StreamRecorder for Recorder {
    fn record(&self, stream: &StreamConfig, source: &Source) -> Option<RecordSettings> {
        let camera = stream.id.as_str();
        let links = &self.inner.links;
        let mode = stream.record.unwrap_or(self.inner.config.mode);
        match source {
            // A recorded file is its own recording: clips are cut from it (the sink
            // `sinks::RecordedFiles` marks it, in `argus index` too).
            Source::File(_) => return None,
            Source::Test(_) if mode != RecordMode::Off => {
                tracing::warn!(
                    stream = camera,
                    "recording unavailable: a test source has no encoded video to record"
                );
                links.set_recorded(camera, false);
                return None;
            }
            _ => {}
        }
        if mode == RecordMode::Off {
            links.set_recorded(camera, false);
            self.inner.modes.lock().expect("modes lock").remove(camera);
            return None;
        }
        links.set_recorded(camera, true);
        self.inner
            .modes
            .lock()
            .expect("modes lock")
            .insert(camera.to_owned(), mode);
        let closed = self.inner.closed.clone();
        let owner = camera.to_owned();
        Some(RecordSettings {
            dir: self.inner.dir.join(camera),
            segment: Duration::from_secs_f64(self.inner.config.segment_s),
            container: match self.inner.config.format {
                SegmentFormat::Mp4 => Container::Mp4,
                SegmentFormat::Mkv => Container::Matroska,
            },
            paused: self.inner.paused.clone(),
            on_segment: Arc::new(move |segment| {
                let _ = closed.send(Closed::Segment(owner.clone(), segment));
            }),
        })
    }
}

/// Free bytes for an unprivileged writer on the filesystem holding `dir` (created if need be).
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    std::fs::create_dir_all(dir)?;
    let stats = rustix::fs::statvfs(dir)?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// The cameras that have a folder of segments under `dir`.
pub(super) fn camera_folders(dir: &Path) -> HashSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.path().is_dir())
                .filter_map(|entry| entry.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn segment(start: i64, end: i64) -> Segment {
        Segment {
            camera: "gate".into(),
            start: at(start),
            end: at(end),
            path: format!("/r/gate/{start}.mp4").into(),
            bytes: 100,
        }
    }

    #[test]
    fn events_mode_keeps_segments_a_widened_mark_reaches_and_deletes_the_rest_once_no_mark_can() {
        let roll = chrono::Duration::seconds(10);
        let delay = MARK_DELAY.as_secs() as i64;
        // An object event at 125 s, marked for a second.
        let marks = [(at(125), at(126))];
        let segments = [
            segment(0, 30),
            segment(30, 60),
            segment(60, 90),
            segment(90, 120),
            segment(120, 150),
            segment(150, 180),
        ];
        // Long after: the event's segment and, through the pre-roll, the one before it are
        // kept; the post-roll (to 136 s) stays inside its own segment.
        let late = at(180 + 10 + delay + 1);
        let verdicts: Vec<Verdict> = segments
            .iter()
            .map(|s| verdict(s, &marks, late, roll, roll))
            .collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Delete,
                Verdict::Delete,
                Verdict::Delete,
                Verdict::Keep,
                Verdict::Keep,
                Verdict::Delete
            ]
        );
        // Right after a segment ends, a late mark (up to MARK_DELAY) could still reach it.
        assert_eq!(
            verdict(&segments[0], &[], at(31), roll, roll),
            Verdict::Wait
        );
        assert_eq!(
            verdict(&segments[0], &[], at(30 + 10 + delay - 1), roll, roll),
            Verdict::Wait
        );
        assert_eq!(
            verdict(&segments[0], &[], at(30 + 10 + delay + 1), roll, roll),
            Verdict::Delete
        );
        // A mark just after a segment reaches back into it through the pre-roll.
        assert_eq!(
            verdict(&segments[0], &[(at(39), at(39))], at(31), roll, roll),
            Verdict::Keep
        );
        assert_eq!(
            verdict(&segments[0], &[(at(41), at(41))], at(31), roll, roll),
            Verdict::Wait
        );
    }

    #[test]
    fn marks_of_one_event_merge_and_old_ones_are_pruned() {
        let marks = RecordingMarks::default();
        marks.mark("gate", at(0), at(1));
        marks.mark("gate", at(1), at(2));
        marks.mark("gate", at(10), at(10));
        assert_eq!(marks.of("gate"), [(at(0), at(2)), (at(10), at(10))]);
        marks.prune(at(5));
        assert_eq!(marks.of("gate"), [(at(10), at(10))]);
        assert!(marks.of("door").is_empty());
    }
}

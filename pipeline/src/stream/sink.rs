//! What a stream hands on, and to whom: the two interfaces the state machine depends on.
//!
//! A stream knows neither the models nor where results go. It asks a [`FrameAnalyser`] to
//! analyse each frame (at the stream's `sample_fps`), an [`ObjectAnalyser`] to track the
//! objects in it (at the objects' own rate), and gives every [`FrameSink`] the
//! [`AnalysedFrame`] and the stream's own [`StreamEvent`]s. What the analyser and the sinks are is decided in `app`, the one
//! place that builds and wires things; adding a sink is one module plus one line there.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use argus_operators::ocr::TextLine;
use argus_operators::{BgrImage, OperatorError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StreamState;
use crate::config::StreamConfig;
use crate::objects::{FrameObjects, ObjectHappening};
use crate::source::{FrameClock, RecordSettings, Source};

/// What the operators found in one frame.
pub struct Analysis {
    pub ocr: Vec<TextLine>,
    pub latency: Duration,
}

/// The per-frame operators, as the stream sees them.
#[async_trait]
pub trait FrameAnalyser: Send + Sync {
    /// The name results carry in their `operator` field.
    fn operator(&self) -> &'static str;

    /// Analyses one frame of `camera`; it may share a model call with other streams' frames.
    /// A camera's frames come in order, so an analyser may keep what it saw of the last one.
    async fn analyse(
        &self,
        camera: Arc<str>,
        image: Arc<BgrImage>,
    ) -> Result<Analysis, OperatorError>;
}

/// The objects stage, as the stream sees it: one tracker per camera, fed in frame order.
#[async_trait]
pub trait ObjectAnalyser: Send + Sync {
    /// Frames per second it looks at, at most: streams sample at least this fast.
    fn fps(&self) -> f64;

    /// Detects and tracks the objects in a camera's next frame; `None` when the frame comes
    /// sooner than its rate (or the detector failed, which it logs and counts).
    async fn observe(
        &self,
        camera: &str,
        wall_time: DateTime<Utc>,
        image: Arc<BgrImage>,
    ) -> Option<FrameObjects>;

    /// The camera's pipeline ended: its live tracks end with it. Returns what that raises
    /// (zones left, tracks ended).
    async fn finish(&self, camera: &str) -> Vec<ObjectHappening>;
}

/// One sampled frame and what the operators found in it.
pub struct AnalysedFrame {
    pub camera: Arc<str>,
    /// The stream's source, passwords removed.
    pub source: String,
    /// The frame's time is (nearly) now: windows and chunks may also be closed by the clock.
    pub live: bool,
    /// Position among this stream's sampled frames, from 0; continues across reconnects.
    pub sequence: u64,
    pub pts: Option<Duration>,
    pub wall_time: DateTime<Utc>,
    pub clock: FrameClock,
    pub image: Arc<BgrImage>,
    /// The frame as a small JPEG (the console's thumbnail), when it could be encoded.
    pub thumbnail: Option<Arc<[u8]>>,
    pub operator: &'static str,
    /// The per-frame operators' results; `None` on a frame sampled only for the objects
    /// stage (objects.fps is faster than the stream's sample_fps).
    pub analysis: Option<Analysis>,
    /// The objects stage's results; `None` when it is off or skipped this frame.
    pub objects: Option<Arc<FrameObjects>>,
}

/// A stream's pipeline is starting (again, after a reconnect).
pub struct OpenedStream<'a> {
    pub camera: &'a str,
    /// The recording it reads and the time of its first frame; `None` for live sources.
    pub recording: Option<(&'a Path, DateTime<Utc>)>,
}

/// Something that happened to a stream itself, rather than in its video.
#[derive(Debug, Clone)]
pub struct StreamEvent {
    pub camera: String,
    pub source: String,
    pub kind: StreamEventKind,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub enum StreamEventKind {
    State {
        state: StreamState,
        error: Option<String>,
    },
    /// The video stopped from `start` to `end` (a reconnect), for `reason`.
    Gap {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        reason: String,
    },
}

/// Where analysed frames go. A sink is called in the stream's task, frame by frame and in
/// order, so a sink that waits (a recording's chunk waiting for the LLM) slows its stream:
/// that is the backpressure that lets a recording be read no faster than it is analysed.
/// Live work that must not wait is a sink's own choice (it may skip, and count, what it
/// cannot keep up with).
#[async_trait]
pub trait FrameSink: Send + Sync {
    /// A stream's pipeline is starting; called before its first frame.
    async fn open(&self, _stream: &OpenedStream<'_>) {}

    async fn observe(&self, frame: &AnalysedFrame);

    /// A stream's state changed or its video has a gap.
    async fn event(&self, _event: &StreamEvent) {}

    /// The camera's pipeline ended (end of a recording, a disconnect, a stop): finish what
    /// is open. A recording is reported finished only once every sink has returned.
    async fn finish(&self, _finished: &FinishedStream<'_>) {}
}

/// A camera's pipeline ended.
pub struct FinishedStream<'a> {
    pub camera: &'a str,
    /// The objects still tracked when it ended: their tracks end with it.
    pub object_events: &'a [ObjectHappening],
}

/// Every sink, in the order they are called.
pub type Sinks = Arc<[Arc<dyn FrameSink>]>;

/// Recording of live cameras, as the stream sees it: how a pipeline writes its video.
pub trait StreamRecorder: Send + Sync {
    /// How `stream`'s next pipeline records, or `None` when it does not (recording off, a
    /// recorded file, a source without encoded video).
    fn record(&self, stream: &StreamConfig, source: &Source) -> Option<RecordSettings>;
}

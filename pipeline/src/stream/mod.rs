//! Streams: each camera or recording runs as a small state machine, visible through the API,
//! logs, metrics and the stream-events topic:
//!
//! ```text
//! starting ──first frame──▶ running ──EOS (recording)──▶ finished
//!    │                        │  ▲
//!    │ error / stall          │  └──first frame again (a gap event is published)
//!    ▼                        ▼
//! reconnecting ◀──────── error, stall, live EOS        (network sources only;
//!    │ backoff with jitter, then a new pipeline          others go to failed)
//!    └──max_attempts reached──▶ failed                 stop / remove ──▶ stopped
//! ```
//! A stream failing never disturbs the others: each has its own pipeline and task.
//!
//! Each sampled frame goes through the [`FrameAnalyser`] (when the stream's `sample_fps` is
//! due) and the [`ObjectAnalyser`] (when on, at its own rate), and then to every
//! [`FrameSink`], in order ([`sink`]); the stream's state changes and gaps go to the sinks as [`StreamEvent`]s.
//! What those are is wired in `app`: this module imports no operator and no sink.

mod manager;
mod pace;
mod registry;
mod runner;
pub mod sink;

pub use manager::{validate, ManageError, StreamManager};
pub use pace::Pace;
pub use registry::{StreamRegistry, StreamStatus};
pub use runner::StreamContext;
pub use sink::{
    AnalysedFrame, Analysis, FinishedStream, FrameAnalyser, FrameSink, ObjectAnalyser,
    OpenedStream, Sinks, StreamEvent, StreamEventKind, StreamRecorder,
};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    Starting,
    /// Frames are flowing.
    Running,
    /// The source went away; waiting to reconnect.
    Reconnecting,
    /// A recording was read to its end.
    Finished,
    Failed,
    /// Stopped by a shutdown or removed through the API.
    Stopped,
}

impl StreamState {
    pub const ALL: [StreamState; 6] = [
        Self::Starting,
        Self::Running,
        Self::Reconnecting,
        Self::Finished,
        Self::Failed,
        Self::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Reconnecting => "reconnecting",
            Self::Finished => "finished",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Finished | Self::Failed | Self::Stopped)
    }
}

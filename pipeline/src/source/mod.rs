//! Sources: locations parsed and checked, decoded by GStreamer into sampled BGR frames, queued
//! for analysis under each stream's backpressure policy.

pub mod decoder;
pub mod probe;
pub mod queue;
mod recording;
mod segments;
mod settings;
pub mod uri;

pub use decoder::{Decoder, DecoderError, DecoderSettings, Frame, FrameClock};
pub use queue::FrameQueue;
pub use recording::Recording;
pub use segments::{
    segment_path, segment_start, Container, RecordSettings, RecordedSegment, SegmentCallback,
};
pub use settings::{DropPolicy, RtspTransport};
pub use uri::{Source, SourceError};

/// Initialises GStreamer once per process; a clear error when the library is unusable.
pub fn init() -> Result<(), DecoderError> {
    gstreamer::init()
        .map_err(|e| DecoderError::Start(format!("GStreamer failed to initialise: {e}")))
}

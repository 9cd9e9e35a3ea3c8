//! Ingest: sources parsed and checked, decoded by GStreamer into sampled BGR frames.

pub mod decoder;
pub mod source;

pub use decoder::{Decoder, DecoderCounters, DecoderError, DecoderSettings, Frame};
pub use source::{redact_text, Source, SourceError};

/// Initialises GStreamer once per process; a clear error when the library is unusable.
pub fn init() -> Result<(), DecoderError> {
    gstreamer::init()
        .map_err(|e| DecoderError::Start(format!("GStreamer failed to initialise: {e}")))
}

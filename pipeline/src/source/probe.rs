//! What a recording holds, read before or beside its stream.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("GStreamer cannot read it: {0}")]
    Unreadable(String),
    #[error("it has no video stream")]
    NoVideo,
    #[error("its duration is unknown")]
    UnknownDuration,
}

/// The recording's length, read with GStreamer's discoverer: also the first check that the
/// file is a video GStreamer can read. Blocking (up to 30 s on a damaged file).
pub fn duration_of(uri: &str) -> Result<Duration, ProbeError> {
    let unreadable = |error: &dyn std::fmt::Display| ProbeError::Unreadable(error.to_string());
    let discoverer = gstreamer_pbutils::Discoverer::new(gstreamer::ClockTime::from_seconds(30))
        .map_err(|error| unreadable(&error))?;
    let info = discoverer
        .discover_uri(uri)
        .map_err(|error| unreadable(&error))?;
    if info.video_streams().is_empty() {
        return Err(ProbeError::NoVideo);
    }
    info.duration()
        .map(|d| Duration::from_nanos(d.nseconds()))
        .filter(|d| !d.is_zero())
        .ok_or(ProbeError::UnknownDuration)
}

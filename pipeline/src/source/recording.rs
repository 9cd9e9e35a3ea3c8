//! Reading a whole recording into memory as the service samples it: for benchmarks and
//! evaluations, which must measure the frames the service would analyse, decoded by the same
//! pipeline.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use gstreamer as gst;

use super::{Decoder, DecoderError, DropPolicy, Frame, FrameQueue, RtspTransport, Source};

/// The frames of the recording at `path` sampled at `sample_fps` (at most `max_width` wide),
/// timed from `start`, up to `length` of video when given.
pub async fn read_recording(
    path: &Path,
    sample_fps: f64,
    max_width: u32,
    start: DateTime<Utc>,
    length: Option<std::time::Duration>,
) -> Result<Vec<Frame>, DecoderError> {
    let source = Source::parse(&path.display().to_string())
        .map_err(|error| DecoderError::Start(error.to_string()))?;
    // Frames are taken as fast as they come; a small queue holds the decoder back meanwhile.
    let queue = Arc::new(FrameQueue::new(
        4,
        DropPolicy::DropOldest,
        prometheus::IntCounter::new("dropped", "frames dropped").expect("a valid counter"),
    ));
    let settings = super::DecoderSettings {
        stream_id: Arc::from("recording"),
        sample_fps,
        max_width,
        start_time: start,
        rtsp_transport: RtspTransport::Tcp,
        sequence: Arc::new(AtomicU64::new(0)),
    };
    let decoded =
        prometheus::IntCounter::new("decoded", "frames decoded").expect("a valid counter");
    let decoder = Decoder::start(&source, settings, queue.clone(), decoded)?;
    let mut bus = decoder.bus().stream();
    let end = length.map(|length| start + chrono::Duration::from_std(length).unwrap_or_default());
    let before_end = |frame: &Frame| end.is_none_or(|end| frame.wall_time < end);
    let mut frames = Vec::new();
    loop {
        tokio::select! {
            Some(frame) = queue.pop() => {
                if !before_end(&frame) {
                    break;
                }
                frames.push(frame);
            }
            Some(message) = bus.next() => match message.view() {
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(error) => {
                    return Err(DecoderError::Decode(format!("{}: {}", path.display(), error.error())));
                }
                _ => {}
            },
        }
    }
    frames.extend(std::iter::from_fn(|| queue.try_pop()).filter(|frame| before_end(frame)));
    // Stopping the pipeline joins GStreamer's threads.
    let _ = tokio::task::spawn_blocking(move || drop(decoder)).await;
    Ok(frames)
}

//! Reading a recording frame by frame as the service samples it: for evaluations and
//! benchmarks, which must see the frames the service would analyse, decoded by the same
//! pipeline.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use gstreamer as gst;

use super::{
    Decoder, DecoderError, DecoderSettings, DropPolicy, Frame, FrameQueue, RtspTransport, Source,
};

/// A recording decoded by the service's decoder.
pub struct Recording {
    // Held for its pipeline: dropping it stops decoding.
    _decoder: Decoder,
    queue: Arc<FrameQueue>,
    bus: futures::channel::mpsc::UnboundedReceiver<gst::Message>,
    ended: bool,
    path: PathBuf,
}

impl Recording {
    /// Starts decoding `path` at `sample_fps` (at most `max_width` wide), timed from `start`.
    pub fn open(
        path: &Path,
        sample_fps: f64,
        max_width: u32,
        start: DateTime<Utc>,
    ) -> Result<Self, DecoderError> {
        let source = Source::parse(&path.display().to_string())
            .map_err(|error| DecoderError::Start(error.to_string()))?;
        // A small queue holds the decoder back until frames are taken.
        let queue = Arc::new(FrameQueue::new(
            8,
            DropPolicy::DropOldest,
            prometheus::IntCounter::new("recording_dropped", "frames dropped")
                .expect("a valid counter"),
        ));
        let settings = DecoderSettings {
            stream_id: Arc::from("recording"),
            sample_fps,
            max_width,
            start_time: start,
            rtsp_transport: RtspTransport::Tcp,
            sequence: Arc::new(AtomicU64::new(0)),
            record: None,
        };
        let decoded = prometheus::IntCounter::new("recording_decoded", "frames decoded")
            .expect("a valid counter");
        let decoder = Decoder::start(&source, settings, queue.clone(), decoded)?;
        let bus = decoder.messages();
        Ok(Self {
            _decoder: decoder,
            queue,
            bus,
            ended: false,
            path: path.to_owned(),
        })
    }

    /// The next frame; `None` at the end of the recording.
    pub async fn next(&mut self) -> Result<Option<Frame>, DecoderError> {
        loop {
            if self.ended {
                // Recorded frames are pushed with backpressure before end-of-stream is
                // posted: what is left in the queue is the last of them.
                return Ok(self.queue.try_pop());
            }
            tokio::select! {
                Some(frame) = self.queue.pop() => return Ok(Some(frame)),
                Some(message) = self.bus.next() => match message.view() {
                    gst::MessageView::Eos(_) => self.ended = true,
                    gst::MessageView::Error(error) => {
                        return Err(DecoderError::Decode(format!(
                            "{}: {}",
                            self.path.display(),
                            error.error()
                        )));
                    }
                    _ => {}
                },
                else => self.ended = true,
            }
        }
    }
}

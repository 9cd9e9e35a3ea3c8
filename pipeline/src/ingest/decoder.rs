//! One stream's GStreamer pipeline: decode, sample, convert and scale, hand frames to Rust.
//!
//! ```text
//! uridecodebin ─video─▶ videorate(drop-only) ▶ videoconvert ▶ videoscale ▶ capsfilter(BGR, fps, size) ▶ appsink
//!              └other─▶ fakesink
//! ```
//! Sampling happens first so conversion and scaling only touch the frames we keep; all pixel
//! work is GStreamer's, Rust only copies the final BGR rows out of the buffer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argus_operators::BgrImage;
use chrono::{DateTime, Utc};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use prometheus::IntCounter;
use tokio::sync::mpsc;

use super::source::Source;

/// A sampled frame on its way to the operators.
pub struct Frame {
    pub stream_id: Arc<str>,
    /// Position among this stream's sampled frames, from 0.
    pub sequence: u64,
    /// Media timestamp from GStreamer, when the source has one.
    pub pts: Option<Duration>,
    /// When the frame was seen: media time from the configured start for files, arrival for live.
    pub wall_time: DateTime<Utc>,
    pub image: BgrImage,
}

/// How a stream's frames are sampled and delivered.
#[derive(Clone)]
pub struct DecoderSettings {
    pub stream_id: Arc<str>,
    pub sample_fps: f64,
    pub max_width: u32,
    /// Wall-clock time of media time 0 (recorded files).
    pub start_time: DateTime<Utc>,
}

/// Counters the decoder feeds.
#[derive(Clone)]
pub struct DecoderCounters {
    pub decoded: IntCounter,
    pub dropped: IntCounter,
}

#[derive(Debug, thiserror::Error)]
pub enum DecoderError {
    #[error("GStreamer element `{0}` is missing: install the GStreamer plugins (deploy/setup.sh)")]
    MissingElement(&'static str),
    #[error("could not build the GStreamer pipeline: {0}")]
    Build(String),
    #[error("could not start the GStreamer pipeline: {0}")]
    Start(String),
}

/// A running pipeline; dropping it stops it.
pub struct Decoder {
    pipeline: gst::Pipeline,
}

impl Decoder {
    /// Builds and starts the pipeline. Frames go to `frames`: live sources never wait for a
    /// slow consumer (a frame that finds the queue full is dropped and counted); recorded
    /// sources wait, so nothing is lost and the file is read as fast as analysis allows.
    pub fn start(
        source: &Source,
        settings: DecoderSettings,
        frames: mpsc::Sender<Frame>,
        counters: DecoderCounters,
    ) -> Result<Self, DecoderError> {
        let pipeline = gst::Pipeline::with_name(&format!("stream-{}", settings.stream_id));
        let make = |factory: &'static str| {
            gst::ElementFactory::make(factory)
                .build()
                .map_err(|_| DecoderError::MissingElement(factory))
        };
        let decode = make("uridecodebin")?;
        decode.set_property("uri", source.gstreamer_uri());
        let rate = make("videorate")?;
        rate.set_property("drop-only", true);
        let convert = make("videoconvert")?;
        let scale = make("videoscale")?;
        let filter = make("capsfilter")?;
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .enable_last_sample(false)
            .build();

        let framerate = gst::Fraction::approximate_f64(settings.sample_fps).ok_or_else(|| {
            DecoderError::Build(format!(
                "sample_fps {} is not a usable rate",
                settings.sample_fps
            ))
        })?;
        filter.set_property("caps", output_caps(framerate, None));

        pipeline
            .add_many([&decode, &rate, &convert, &scale, &filter, sink.upcast_ref()])
            .map_err(|e| DecoderError::Build(e.to_string()))?;
        gst::Element::link_many([&rate, &convert, &scale, &filter, sink.upcast_ref()])
            .map_err(|e| DecoderError::Build(e.to_string()))?;

        if let Source::Rtsp(_) = source {
            // Interleaved over the RTSP TCP connection: works through NAT and firewalls, which
            // is what cameras in the field need more than UDP's lower latency.
            decode.connect("source-setup", false, |values| {
                let element = values[1].get::<gst::Element>().ok()?;
                if element.find_property("protocols").is_some() {
                    element.set_property_from_str("protocols", "tcp");
                    element.set_property("latency", 200u32);
                }
                None
            });
        }

        let decoded = counters.decoded.clone();
        let rate_sink = rate.static_pad("sink").expect("videorate has a sink pad");
        rate_sink.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            decoded.inc();
            gst::PadProbeReturn::Ok
        });

        let max_width = settings.max_width;
        let pipeline_weak = pipeline.downgrade();
        decode.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline_weak.upgrade() else {
                return;
            };
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let is_video = caps
                .structure(0)
                .is_some_and(|s| s.name().starts_with("video/"));
            if is_video && !rate_sink.is_linked() {
                if let Some(size) = scaled_size(&caps, max_width) {
                    filter.set_property("caps", output_caps(framerate, Some(size)));
                }
                if let Err(error) = pad.link(&rate_sink) {
                    tracing::error!(?error, "could not link the decoded video");
                }
                return;
            }
            // Audio and further video tracks are decoded into nothing, so they never block the demuxer.
            let Ok(discard) = gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .property("async", false)
                .build()
            else {
                return;
            };
            if pipeline.add(&discard).is_ok() {
                let _ = discard.sync_state_with_parent();
                if let Some(discard_sink) = discard.static_pad("sink") {
                    let _ = pad.link(&discard_sink);
                }
            }
        });

        let live = source.is_live();
        let sequence = AtomicU64::new(0);
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let frame = match to_frame(&sample, &settings, &sequence, live) {
                        Ok(frame) => frame,
                        Err(error) => {
                            tracing::error!(stream = %settings.stream_id, %error, "unreadable frame");
                            return Err(gst::FlowError::Error);
                        }
                    };
                    if live {
                        match frames.try_send(frame) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => counters.dropped.inc(),
                            Err(mpsc::error::TrySendError::Closed(_)) => return Err(gst::FlowError::Flushing),
                        }
                    } else if frames.blocking_send(frame).is_err() {
                        return Err(gst::FlowError::Flushing);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );

        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| DecoderError::Start(e.to_string()))?;
        Ok(Self { pipeline })
    }

    /// The pipeline's bus, for errors and end-of-stream.
    pub fn bus(&self) -> gst::Bus {
        self.pipeline.bus().expect("a pipeline always has a bus")
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn output_caps(framerate: gst::Fraction, size: Option<(i32, i32)>) -> gst::Caps {
    let mut caps = gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::Bgr)
        .framerate(framerate);
    if let Some((width, height)) = size {
        caps = caps.width(width).height(height);
    }
    caps.build()
}

/// The output size for an input wider than `max_width`: aspect kept, even sides.
fn scaled_size(caps: &gst::CapsRef, max_width: u32) -> Option<(i32, i32)> {
    let structure = caps.structure(0)?;
    let width = structure.get::<i32>("width").ok()?;
    let height = structure.get::<i32>("height").ok()?;
    if width <= max_width as i32 {
        return None;
    }
    let scaled_width = (max_width as i32) & !1;
    let scaled_height = (((height as i64 * scaled_width as i64) / width as i64) as i32).max(2) & !1;
    Some((scaled_width, scaled_height))
}

/// Copies the BGR rows out of a sample (GStreamer pads rows to 4 bytes; we do not).
fn to_frame(
    sample: &gst::Sample,
    settings: &DecoderSettings,
    sequence: &AtomicU64,
    live: bool,
) -> Result<Frame, String> {
    let buffer = sample.buffer().ok_or("sample without a buffer")?;
    let caps = sample.caps().ok_or("sample without caps")?;
    let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| e.to_string())?;
    let video = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
        .map_err(|e| e.to_string())?;
    let (width, height) = (info.width() as usize, info.height() as usize);
    let stride = video.plane_stride()[0] as usize;
    let plane = video.plane_data(0).map_err(|e| e.to_string())?;
    let mut pixels = Vec::with_capacity(width * height * 3);
    for row in 0..height {
        pixels.extend_from_slice(&plane[row * stride..row * stride + width * 3]);
    }
    let image = BgrImage::new(width as u32, height as u32, pixels).map_err(|e| e.to_string())?;
    let pts = buffer.pts().map(|t| Duration::from_nanos(t.nseconds()));
    let wall_time = match (live, pts) {
        (false, Some(pts)) => {
            settings.start_time + chrono::Duration::from_std(pts).unwrap_or_default()
        }
        _ => Utc::now(),
    };
    Ok(Frame {
        stream_id: settings.stream_id.clone(),
        sequence: sequence.fetch_add(1, Ordering::Relaxed),
        pts,
        wall_time,
        image,
    })
}

//! One stream's GStreamer pipeline: decode, sample, convert and scale, hand frames to Rust.
//!
//! ```text
//! uridecodebin | v4l2src ! decodebin | videotestsrc
//!     ─video─▶ videorate(drop-only) ▶ videoconvertscale ▶ capsfilter(BGR, fps, size) ▶ appsink
//!     └other─▶ fakesink
//! ```
//! A recorded live camera's decodebin stops at its parsed H.264/H.265 instead, and a tee
//! hands it to a second `decodebin` (then the same chain) and to the recording branch
//! ([`super::segments`]), which writes it into segment files as it comes. Without recording
//! the pipeline is the one above.
//! Sampling happens first so conversion and scaling only touch the frames we keep; all pixel
//! work is GStreamer's, Rust only copies the final BGR rows out of the buffer. Nothing sits
//! between the decoder and the converter's allocation answer: with it, `avdec_*` decodes
//! straight into buffers the converter reads and copies no frame (blocking that answer, as an
//! earlier version did, made it copy every decoded frame). Decoders are chosen by
//! `decodebin`'s ranking, so hardware decoders win where their plugins are installed; the one
//! chosen is reported by [`Decoder::decoder_name`].
//!
//! ## Media time
//!
//! A frame's media time is its **stream time**, the buffer's PTS mapped through the segment
//! its pad delivered it in, counted for a recording from its first frame: the time a player
//! shows (OpenCV and ffmpeg read frame 0 at 0 ms). Raw PTS is not that: `qtdemux` shifts
//! the PTS of a track with composition offsets (B-frames) or an edit list by the edit's
//! media start (its segment then says `start = shift, time = 0`), and `tsdemux` counts from
//! the first PCR, a little before the first frame (mpegtsmux: 125 ms, plus the B-frame
//! delay). Recordings are stamped `start_time + media time` ([`FrameClock::Media`]); a live
//! source's media time is its stream time as it comes, and its frames keep their own clocks.
//!
//! Media time never goes back within one pipeline ([`MediaClock`]). A new segment that moves
//! it forward (a gap, a seek ahead) is followed as it is. One that moves it back (a
//! concatenated file restarting at 0, a demuxer resetting its timeline) would stamp frames
//! over the moments already indexed, so the frames after it continue from the last frame's
//! time plus one sample interval, keeping their spacing; the first such jump is logged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argus_operators::BgrImage;
use chrono::{DateTime, Utc};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use prometheus::IntCounter;
use serde::Serialize;

use super::queue::FrameQueue;
use super::segments::{self, RecordBranch, RecordSettings};
use super::settings::RtspTransport;
use super::uri::Source;

/// Where a frame's wall-clock time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameClock {
    /// The camera's own clock, from RTCP sender reports (NTP).
    Rtcp,
    /// The recording's media time from the configured start time.
    Media,
    /// When Argus received the frame.
    Arrival,
}

/// A sampled frame on its way to the operators.
pub struct Frame {
    pub stream_id: Arc<str>,
    /// Position among this stream's sampled frames, from 0; continues across reconnects.
    pub sequence: u64,
    /// Media time: the buffer's stream time, as a player shows it (see the module doc), when
    /// the source timestamps its frames.
    pub pts: Option<Duration>,
    pub wall_time: DateTime<Utc>,
    pub clock: FrameClock,
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
    pub rtsp_transport: RtspTransport,
    /// Shared across reconnects so sequence numbers keep counting.
    pub sequence: Arc<AtomicU64>,
    /// Live cameras whose encoded video is recorded; `None` for the others.
    pub record: Option<RecordSettings>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecoderError {
    #[error("GStreamer element `{0}` is missing: install the GStreamer plugins (deploy/setup.sh)")]
    MissingElement(&'static str),
    #[error("could not build the GStreamer pipeline: {0}")]
    Build(String),
    #[error("could not start the GStreamer pipeline: {0}")]
    Start(String),
    #[error("could not decode {0}")]
    Decode(String),
}

/// A running pipeline; dropping it stops it (closing its open recording segment first).
pub struct Decoder {
    pipeline: gst::Pipeline,
    decoder_name: Arc<Mutex<Option<String>>>,
    queue: Arc<FrameQueue>,
    /// The recording branch, once the camera's encoded video has appeared.
    record: BranchSlot,
    messages: Mutex<Option<futures::channel::mpsc::UnboundedReceiver<gst::Message>>>,
}

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;

impl Decoder {
    /// Builds and starts the pipeline; frames go to `queue`, pushed without waiting for live
    /// sources and with backpressure for recorded ones (see [`FrameQueue`]).
    pub fn start(
        source: &Source,
        settings: DecoderSettings,
        queue: Arc<FrameQueue>,
        decoded: IntCounter,
    ) -> Result<Self, DecoderError> {
        let pipeline = gst::Pipeline::with_name(&format!("stream-{}", settings.stream_id));
        let rate = make("videorate")?;
        rate.set_property("drop-only", true);
        let converters = converters()?;
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
        let mut chain = vec![&rate];
        chain.extend(&converters);
        chain.extend([&filter, sink.upcast_ref()]);
        pipeline
            .add_many(&chain)
            .map_err(|e| DecoderError::Build(e.to_string()))?;
        gst::Element::link_many(&chain).map_err(|e| DecoderError::Build(e.to_string()))?;

        // Where decoded video enters the sampling chain; every buffer here is a decoded frame.
        let rate_sink = rate.static_pad("sink").expect("videorate has a sink pad");
        rate_sink.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            decoded.inc();
            gst::PadProbeReturn::Ok
        });

        let decoder_name = Arc::new(Mutex::new(None));
        let chosen = decoder_name.clone();
        pipeline.connect_deep_element_added(move |_, _, element| {
            let is_video_decoder = element.factory().is_some_and(|factory| {
                let klass = factory.klass();
                klass.contains("Decoder") && klass.contains("Video")
            });
            if is_video_decoder {
                let name = element
                    .factory()
                    .map(|f| f.name().to_string())
                    .unwrap_or_default();
                *chosen.lock().expect("decoder name lock") = Some(name);
            }
        });

        let record = Arc::new(Mutex::new(None));
        add_source(
            &pipeline,
            source,
            &settings,
            Link {
                rate_sink: rate_sink.clone(),
                filter: filter.clone(),
                framerate,
                max_width: settings.max_width,
                record: settings
                    .record
                    .clone()
                    .map(|r| (settings.stream_id.clone(), r, record.clone())),
            },
        )?;

        // The bus's one synchronous handler: the recording branch hears of each file it
        // closes even while no one reads the bus (a pipeline being stopped), and every message
        // is passed on to `messages`.
        let (forward, messages) = futures::channel::mpsc::unbounded();
        let branch = record.clone();
        pipeline
            .bus()
            .expect("a pipeline always has a bus")
            .set_sync_handler(move |_, message| {
                if let Some(branch) = branch.lock().expect("record branch lock").as_ref() {
                    branch.on_message(message);
                }
                let _ = forward.unbounded_send(message.clone());
                gst::BusSyncReply::Drop
            });

        let live = source.is_live();
        let frames = queue.clone();
        let mut clock = MediaClock::new(Duration::from_secs_f64(1.0 / settings.sample_fps), !live);
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let frame = to_frame(&sample, &settings, live, &mut clock).map_err(|error| {
                        tracing::error!(stream = %settings.stream_id, %error, "unreadable frame");
                        gst::FlowError::Error
                    })?;
                    let pushed = if live {
                        queue.push_or_drop(frame)
                    } else {
                        queue.push_blocking(frame)
                    };
                    pushed.map_err(|_| gst::FlowError::Flushing)?;
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );

        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| DecoderError::Start(e.to_string()))?;
        Ok(Self {
            pipeline,
            decoder_name,
            queue: frames,
            record,
            messages: Mutex::new(Some(messages)),
        })
    }

    /// The pipeline's messages (errors, end-of-stream, warnings); taken once.
    pub fn messages(&self) -> futures::channel::mpsc::UnboundedReceiver<gst::Message> {
        self.messages
            .lock()
            .expect("messages lock")
            .take()
            .expect("a decoder's messages are taken once")
    }

    /// The video decoder `decodebin` chose (e.g. `avdec_h264`, or a hardware one), once known.
    pub fn decoder_name(&self) -> Option<String> {
        self.decoder_name.lock().expect("decoder name lock").clone()
    }
}

/// How long dropping a [`Decoder`] waits for its pipeline to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

impl Drop for Decoder {
    fn drop(&mut self) {
        // A recording's streaming thread may be waiting for room in the queue; stopping the
        // pipeline waits for that thread, so the queue must release it first.
        self.queue.close();
        let branch = self.record.lock().expect("record branch lock").clone();
        if let Some(branch) = branch {
            branch.finish();
        }
        // Stopping joins the pipeline's streaming threads, and GStreamer can hang there on a
        // damaged file: qtdemux, given an MP4 cut before its index, posts "no playable
        // streams" and then, about one time in ten, never stops. Waiting for that would freeze
        // the stream's task before it reports the error, so the pipeline stops on a thread of
        // its own and is abandoned (leaked) if it has not stopped in time.
        let pipeline = self.pipeline.clone();
        let (stopped, done) = std::sync::mpsc::channel();
        let stopper = std::thread::Builder::new()
            .name("argus-pipeline-stop".into())
            .spawn(move || {
                let _ = pipeline.set_state(gst::State::Null);
                let _ = stopped.send(());
            });
        match stopper {
            Ok(_) => {
                if done.recv_timeout(STOP_TIMEOUT).is_err() {
                    tracing::warn!(
                        pipeline = %self.pipeline.name(),
                        "a GStreamer pipeline did not stop within {} s; it is abandoned",
                        STOP_TIMEOUT.as_secs()
                    );
                }
            }
            Err(_) => {
                let _ = self.pipeline.set_state(gst::State::Null);
            }
        }
    }
}

/// The elements that turn a sampled frame into the operators' BGR at their size.
/// `videoconvertscale` (GStreamer ≥ 1.22) scales and converts in one pass: taking a 1080p I420
/// frame to 640x360 BGR costs it ~0.55 of `videoconvert ! videoscale`, which converts every
/// 1080p pixel before scaling (same cost when the size is kept). Older GStreamer gets the pair.
fn converters() -> Result<Vec<gst::Element>, DecoderError> {
    let elements = match make("videoconvertscale") {
        Ok(both) => vec![both],
        Err(_) => vec![make("videoconvert")?, make("videoscale")?],
    };
    // Conversion and scaling are single-threaded by default; at full frame rate they, not the
    // decoder, would set the pace. 0 = one thread per core.
    for element in &elements {
        if element.find_property("n-threads").is_some() {
            element.set_property("n-threads", 0u32);
        }
    }
    Ok(elements)
}

fn make(factory: &'static str) -> Result<gst::Element, DecoderError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| DecoderError::MissingElement(factory))
}

/// Where a pipeline's recording branch is kept once its encoded video has appeared.
type BranchSlot = Arc<Mutex<Option<RecordBranch>>>;

/// Where a source's video goes: the sampling chain, and the recording branch when recorded.
#[derive(Clone)]
struct Link {
    rate_sink: gst::Pad,
    filter: gst::Element,
    framerate: gst::Fraction,
    max_width: u32,
    /// The camera, how it is recorded, and where the branch goes once it exists.
    record: Option<(Arc<str>, RecordSettings, BranchSlot)>,
}

/// Adds the source part of the pipeline and links its video to the sampling chain.
fn add_source(
    pipeline: &gst::Pipeline,
    source: &Source,
    settings: &DecoderSettings,
    link: Link,
) -> Result<(), DecoderError> {
    let (rate_sink, filter, framerate) = (&link.rate_sink, &link.filter, link.framerate);
    let build_error = |e: gst::glib::BoolError| DecoderError::Build(e.to_string());
    let decodebin = match source {
        Source::Test(test) => {
            let generator = gst::ElementFactory::make("videotestsrc")
                .property("is-live", true)
                .build()
                .map_err(|_| DecoderError::MissingElement("videotestsrc"))?;
            generator.set_property_from_str("pattern", &test.pattern);
            let caps = gst::ElementFactory::make("capsfilter")
                .property(
                    "caps",
                    gst_video::VideoCapsBuilder::new()
                        .width(test.width as i32)
                        .height(test.height as i32)
                        .framerate(gst::Fraction::new(test.fps as i32, 1))
                        .build(),
                )
                .build()
                .map_err(|_| DecoderError::MissingElement("capsfilter"))?;
            pipeline
                .add_many([&generator, &caps])
                .map_err(build_error)?;
            generator.link(&caps).map_err(build_error)?;
            if let Some((width, height)) =
                scaled_dimensions(test.width as i32, test.height as i32, settings.max_width)
            {
                filter.set_property("caps", output_caps(framerate, Some((width, height))));
            }
            caps.static_pad("src")
                .expect("capsfilter has a src pad")
                .link(rate_sink)
                .map_err(|e| DecoderError::Build(e.to_string()))?;
            return Ok(());
        }
        Source::V4l2(device) => {
            let capture = gst::ElementFactory::make("v4l2src")
                .property("device", device.display().to_string())
                .build()
                .map_err(|_| DecoderError::MissingElement("v4l2src"))?;
            let decodebin = make("decodebin")?;
            pipeline
                .add_many([&capture, &decodebin])
                .map_err(build_error)?;
            capture.link(&decodebin).map_err(build_error)?;
            decodebin
        }
        Source::File(_) | Source::Rtsp(_) | Source::Http(_) => {
            let decodebin = make("uridecodebin")?;
            decodebin.set_property(
                "uri",
                source.gstreamer_uri().expect("URI sources have a URI"),
            );
            if let Source::Rtsp(_) = source {
                let transport = match settings.rtsp_transport {
                    RtspTransport::Tcp => "tcp",
                    RtspTransport::Udp => "udp",
                };
                decodebin.connect("source-setup", false, move |values| {
                    let element = values[1].get::<gst::Element>().ok()?;
                    if element.find_property("protocols").is_some() {
                        element.set_property_from_str("protocols", transport);
                        element.set_property("latency", 200u32);
                        // Puts the camera's NTP time (from RTCP sender reports) on each buffer.
                        if element
                            .find_property("add-reference-timestamp-meta")
                            .is_some()
                        {
                            element.set_property("add-reference-timestamp-meta", true);
                        }
                    }
                    None
                });
            }
            pipeline.add(&decodebin).map_err(build_error)?;
            decodebin
        }
    };
    let link = match source {
        // Recorded files are their own recording.
        Source::File(_) => Link {
            record: None,
            ..link
        },
        _ => link,
    };
    if link.record.is_some() {
        decodebin.set_property("caps", segments::stop_caps());
    }

    let pipeline_weak = pipeline.downgrade();
    decodebin.connect_pad_added(move |_, pad| {
        if let Some(pipeline) = pipeline_weak.upgrade() {
            link_pad(&pipeline, pad, &link);
        }
    });
    Ok(())
}

/// Links a decodebin's new pad: the first video to the sampling chain (through the recording
/// tee when it is encoded video being recorded), anything else to a sink that discards it.
fn link_pad(pipeline: &gst::Pipeline, pad: &gst::Pad, link: &Link) {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let is_video = caps
        .structure(0)
        .is_some_and(|s| s.name().starts_with("video/"));
    if is_video && !link.rate_sink.is_linked() {
        if let Some((camera, settings, slot)) = &link.record {
            if slot.lock().expect("record branch lock").is_some() {
                // A second video track: the first one is recorded and analysed.
                return discard(pipeline, pad);
            }
            let encoded = caps.structure(0).is_none_or(|s| s.name() != "video/x-raw");
            match segments::parser_for(&caps) {
                Some(parser) => {
                    match tee_recording(pipeline, pad, link, camera, settings, parser) {
                        Ok(branch) => *slot.lock().expect("record branch lock") = Some(branch),
                        Err(error) => {
                            tracing::error!(stream = %camera, %error, "recording unavailable")
                        }
                    }
                    return;
                }
                None if encoded => {
                    // decodebin stops only at H.264/H.265; other encodings arrive decoded.
                    tracing::warn!(stream = %camera, %caps, "recording unavailable: only H.264 and H.265 video is recorded");
                }
                None => {
                    tracing::warn!(stream = %camera,
                        "recording unavailable: the camera's video arrives decoded, with no encoded stream to record");
                }
            }
        }
        if let Some(size) = scaled_size(&caps, link.max_width) {
            link.filter
                .set_property("caps", output_caps(link.framerate, Some(size)));
        }
        if let Err(error) = pad.link(&link.rate_sink) {
            tracing::error!(?error, "could not link the decoded video");
        }
        return;
    }
    discard(pipeline, pad);
}

/// Audio and further video tracks are decoded into nothing, so they never block the demuxer.
fn discard(pipeline: &gst::Pipeline, pad: &gst::Pad) {
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
}

/// `pad` (parsed H.264/H.265) ▶ tee ▶ decodebin ▶ the sampling chain, and tee ▶ the
/// recording branch.
fn tee_recording(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    link: &Link,
    camera: &Arc<str>,
    settings: &RecordSettings,
    parser: &'static str,
) -> Result<RecordBranch, DecoderError> {
    let build_error = |e: gst::glib::BoolError| DecoderError::Build(e.to_string());
    let tee = make("tee")?;
    let decode = make("decodebin")?;
    pipeline.add_many([&tee, &decode]).map_err(build_error)?;
    let (branch, record_sink) =
        RecordBranch::add(pipeline, camera.clone(), settings.clone(), parser)?;
    // The analysis side has no queue: it is decoded on the source's thread as without
    // recording; only the recording branch has a thread of its own.
    tee.link(&decode).map_err(build_error)?;
    tee.request_pad_simple("src_%u")
        .ok_or_else(|| DecoderError::Build("tee gave no pad".into()))?
        .link(&record_sink)
        .map_err(|e| DecoderError::Build(e.to_string()))?;
    let decoded = Link {
        record: None,
        ..link.clone()
    };
    let pipeline_weak = pipeline.downgrade();
    decode.connect_pad_added(move |_, pad| {
        if let Some(pipeline) = pipeline_weak.upgrade() {
            link_pad(&pipeline, pad, &decoded);
        }
    });
    branch.sync_state()?;
    for element in [&decode, &tee] {
        element
            .sync_state_with_parent()
            .map_err(|e| DecoderError::Start(e.to_string()))?;
    }
    pad.link(&tee.static_pad("sink").expect("tee has a sink pad"))
        .map_err(|e| DecoderError::Build(e.to_string()))?;
    tracing::info!(stream = %camera, dir = %settings.dir.display(), "recording the camera's own video");
    Ok(branch)
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

fn scaled_size(caps: &gst::CapsRef, max_width: u32) -> Option<(i32, i32)> {
    let structure = caps.structure(0)?;
    let width = structure.get::<i32>("width").ok()?;
    let height = structure.get::<i32>("height").ok()?;
    scaled_dimensions(width, height, max_width)
}

/// The output size for an input wider than `max_width`: aspect kept, even sides.
fn scaled_dimensions(width: i32, height: i32, max_width: u32) -> Option<(i32, i32)> {
    if width <= max_width as i32 {
        return None;
    }
    let scaled_width = (max_width as i32) & !1;
    let scaled_height = (((height as i64 * scaled_width as i64) / width as i64) as i32).max(2) & !1;
    Some((scaled_width, scaled_height))
}

/// A pipeline's media time (see the module doc): stream time, from the first frame for a
/// recording, never going back.
#[derive(Debug)]
struct MediaClock {
    /// Where a frame after a backwards jump goes: this long after the last one.
    interval: Duration,
    /// Count from the first frame's stream time (recordings) rather than from 0 (live).
    from_first_frame: bool,
    /// The stream time that is media time 0, once the first frame set it.
    origin: Option<Duration>,
    last: Option<Duration>,
    /// Added to the time since the origin; grows at each backwards jump. Nanoseconds, signed:
    /// a file restarting at 0 restarts before the origin.
    shift_ns: i128,
    jumps: u32,
}

impl MediaClock {
    fn new(interval: Duration, from_first_frame: bool) -> Self {
        Self {
            interval,
            from_first_frame,
            origin: None,
            last: None,
            shift_ns: 0,
            jumps: 0,
        }
    }

    /// The media time of the next frame, whose stream time is `stream_time`.
    fn place(&mut self, stream_time: Duration) -> Duration {
        let first = if self.from_first_frame {
            stream_time
        } else {
            Duration::ZERO
        };
        let origin = *self.origin.get_or_insert(first);
        let since_origin = stream_time.as_nanos() as i128 - origin.as_nanos() as i128;
        let mut time = since_origin + self.shift_ns;
        if let Some(last) = self.last.filter(|&last| time < last.as_nanos() as i128) {
            time = (last + self.interval).as_nanos() as i128;
            self.shift_ns = time - since_origin;
            self.jumps += 1;
        }
        // Never negative: the first frame is 0 and later ones are not before the last.
        let time = Duration::from_nanos(u64::try_from(time).unwrap_or(0));
        self.last = Some(time);
        time
    }
}

/// The stream time of `pts` in the sample's segment: what a player shows. A PTS before the
/// segment's start (a frame decoded only as a reference, should one get through) is time 0;
/// a sample without a time segment keeps its PTS.
pub(crate) fn stream_time(sample: &gst::Sample, pts: gst::ClockTime) -> gst::ClockTime {
    let segment = sample
        .segment()
        .and_then(|segment| segment.downcast_ref::<gst::ClockTime>());
    match segment.and_then(|segment| segment.to_stream_time_full(pts)) {
        Some(gst::Signed::Positive(time)) => time,
        Some(gst::Signed::Negative(_)) => gst::ClockTime::ZERO,
        None => pts,
    }
}

/// Copies the BGR rows out of a sample (GStreamer pads rows to 4 bytes; we do not).
fn to_frame(
    sample: &gst::Sample,
    settings: &DecoderSettings,
    live: bool,
    clock: &mut MediaClock,
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
    let pts = buffer.pts().map(|pts| {
        let jumps = clock.jumps;
        let time = clock.place(Duration::from_nanos(stream_time(sample, pts).nseconds()));
        if clock.jumps == 1 && jumps == 0 {
            tracing::warn!(stream = %settings.stream_id, pts = %pts, continued_at = ?time,
                "media time went back (a new segment); frames continue after the last one");
        }
        time
    });
    let (wall_time, frame_clock) = match (live, pts) {
        (false, Some(pts)) => (
            settings.start_time + chrono::Duration::from_std(pts).unwrap_or_default(),
            FrameClock::Media,
        ),
        _ => match camera_time(buffer) {
            Some(time) => (time, FrameClock::Rtcp),
            None => (Utc::now(), FrameClock::Arrival),
        },
    };
    Ok(Frame {
        stream_id: settings.stream_id.clone(),
        sequence: settings.sequence.fetch_add(1, Ordering::Relaxed),
        pts,
        wall_time,
        clock: frame_clock,
        image,
    })
}

/// The camera's NTP capture time, when rtspsrc attached one from RTCP sender reports.
fn camera_time(buffer: &gst::BufferRef) -> Option<DateTime<Utc>> {
    buffer
        .iter_meta::<gst::meta::ReferenceTimestampMeta>()
        .find(|meta| {
            meta.reference()
                .structure(0)
                .is_some_and(|s| s.name() == "timestamp/x-ntp")
        })
        .and_then(|meta| {
            let since_1900 = meta.timestamp().nseconds();
            let unix_ns = since_1900.checked_sub(NTP_UNIX_OFFSET_S * 1_000_000_000)?;
            DateTime::from_timestamp_nanos(i64::try_from(unix_ns).ok()?).into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{DropPolicy, RecordedSegment};

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn a_recordings_media_time_counts_from_its_first_frame_and_never_goes_back() {
        // tsdemux's first frame, 125 ms after the first PCR.
        let mut clock = MediaClock::new(ms(500), true);
        let placed: Vec<Duration> = [125, 625, 1125, 7125, 7625]
            .into_iter()
            .map(|t| clock.place(ms(t)))
            .collect();
        assert_eq!(
            placed,
            [ms(0), ms(500), ms(1000), ms(7000), ms(7500)],
            "stream time from the first frame, gaps kept"
        );
        assert_eq!(clock.jumps, 0);
        // A concatenated file restarts at 0: one sample interval after the last frame, the
        // spacing of what follows kept.
        let placed: Vec<Duration> = [0, 500, 1000]
            .into_iter()
            .map(|t| clock.place(ms(t)))
            .collect();
        assert_eq!(placed, [ms(8000), ms(8500), ms(9000)]);
        // A second restart, partway back, follows the same rule.
        assert_eq!(clock.place(ms(325)), ms(9500));
        assert_eq!(clock.place(ms(825)), ms(10_000));
        assert_eq!(clock.jumps, 2);
        // A repeated time is not a jump.
        assert_eq!(clock.place(ms(825)), ms(10_000));
        assert_eq!(clock.jumps, 2);
    }

    #[test]
    fn a_live_sources_media_time_is_its_stream_time() {
        let mut clock = MediaClock::new(ms(200), false);
        assert_eq!(clock.place(ms(3000)), ms(3000));
        assert_eq!(clock.place(ms(3200)), ms(3200));
        assert_eq!(clock.place(ms(100)), ms(3400), "never back");
        assert_eq!(clock.place(ms(300)), ms(3600));
    }

    /// Encodes a small H.264 MP4 and keeps its first half: the `moov` index, written last,
    /// is cut off.
    fn truncated_mp4(dir: &std::path::Path) -> std::path::PathBuf {
        let whole = dir.join("whole.mp4");
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc num-buffers=40 ! video/x-raw,format=I420,width=320,height=240,framerate=10/1 \
             ! x264enc speed-preset=ultrafast key-int-max=10 ! h264parse ! mp4mux \
             ! filesink location=\"{}\"",
            whole.display()
        ))
        .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let bus = pipeline.bus().unwrap();
        let end = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        assert!(matches!(
            end.map(|m| m.type_()),
            Some(gst::MessageType::Eos)
        ));
        pipeline.set_state(gst::State::Null).unwrap();
        let bytes = std::fs::read(&whole).unwrap();
        let cut = dir.join("cut.mp4");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        cut
    }

    /// A live H.264 camera on 127.0.0.1 (320x240, 10 fps, a key frame a second), served on
    /// a thread of its own until the returned loop quits.
    fn rtsp_camera() -> (u32, gst::glib::MainLoop) {
        use gstreamer_rtsp_server as rtsp;
        use gstreamer_rtsp_server::prelude::*;
        let context = gst::glib::MainContext::new();
        let server = rtsp::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service("0");
        let factory = rtsp::RTSPMediaFactory::new();
        factory.set_launch(
            "( videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=10/1 \
             ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! rtph264pay name=pay0 pt=96 config-interval=1 )",
        );
        factory.set_shared(true);
        server.mount_points().unwrap().add_factory("/cam", factory);
        let source = server.attach(Some(&context)).unwrap();
        let port = server.bound_port() as u32;
        let main_loop = gst::glib::MainLoop::new(Some(&context), false);
        let serving = main_loop.clone();
        std::thread::spawn(move || {
            let _source = source;
            let _server = server;
            serving.run()
        });
        (port, main_loop)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_recorded_camera_is_analysed_and_written_in_segments_that_pause_and_resume() {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        super::super::init().unwrap();
        let (port, server) = rtsp_camera();
        let dir = tempfile::tempdir().unwrap();
        let source = Source::parse(&format!("rtsp://127.0.0.1:{port}/cam")).unwrap();
        let queue = Arc::new(FrameQueue::new(
            4,
            DropPolicy::DropOldest,
            IntCounter::new("dropped", "test").unwrap(),
        ));
        let (closed, mut segments) = tokio::sync::mpsc::unbounded_channel();
        let paused = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let settings = DecoderSettings {
            stream_id: Arc::from("cam"),
            sample_fps: 2.0,
            max_width: 320,
            start_time: Utc::now(),
            rtsp_transport: RtspTransport::Tcp,
            sequence: Arc::new(AtomicU64::new(0)),
            record: Some(RecordSettings {
                dir: dir.path().join("cam"),
                segment: Duration::from_secs(2),
                container: segments::Container::Mp4,
                paused: paused.clone(),
                on_segment: Arc::new(move |segment| {
                    let _ = closed.send(segment);
                }),
            }),
        };
        let decoded = IntCounter::new("decoded", "test").unwrap();
        let decoder = Decoder::start(&source, settings, queue.clone(), decoded).unwrap();
        for _ in 0..4 {
            tokio::time::timeout(Duration::from_secs(20), queue.pop())
                .await
                .expect("frames are analysed while the camera is recorded")
                .unwrap();
        }
        let next = |segments: &mut tokio::sync::mpsc::UnboundedReceiver<RecordedSegment>| {
            let segment = segments.try_recv();
            segment.ok()
        };
        let first = tokio::time::timeout(Duration::from_secs(20), segments.recv())
            .await
            .expect("a 2 s segment closes")
            .unwrap();
        let span = (first.end - first.start).num_milliseconds();
        assert!((1500..=3500).contains(&span), "{first:?}");
        assert!(first.bytes > 0 && first.path.is_file(), "{first:?}");

        // Paused: the open segment closes, frames still come, nothing more is written.
        paused.store(true, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(4)).await;
        while next(&mut segments).is_some() {}
        let files = std::fs::read_dir(dir.path().join("cam")).unwrap().count();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            next(&mut segments).is_none(),
            "nothing is written while paused"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("cam")).unwrap().count(),
            files
        );
        tokio::time::timeout(Duration::from_secs(5), queue.pop())
            .await
            .expect("analysis goes on while recording is paused")
            .unwrap();

        // Resumed: a new segment from the next key frame; stopping closes the open one.
        paused.store(false, std::sync::atomic::Ordering::Relaxed);
        let resumed = tokio::time::timeout(Duration::from_secs(20), segments.recv())
            .await
            .expect("recording resumes")
            .unwrap();
        assert!(resumed.start > first.end);
        tokio::time::sleep(Duration::from_secs(1)).await;
        tokio::task::spawn_blocking(move || drop(decoder))
            .await
            .unwrap();
        let last = next(&mut segments).expect("stopping closes the open segment");
        assert!(last.start >= resumed.end, "{last:?} after {resumed:?}");
        server.quit();
    }

    #[test]
    fn a_recording_cut_before_its_index_never_blocks_the_caller_that_drops_it() {
        super::super::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let source = Source::parse(&truncated_mp4(dir.path()).display().to_string()).unwrap();
        // qtdemux hangs on such a file about one time in eight (measured with gst-launch):
        // twenty tries meet that case with a probability of ~93%.
        for attempt in 0..20 {
            let queue = Arc::new(FrameQueue::new(
                2,
                DropPolicy::DropOldest,
                IntCounter::new("dropped", "test").unwrap(),
            ));
            let settings = DecoderSettings {
                stream_id: Arc::from("cut"),
                sample_fps: 1.0,
                max_width: 320,
                start_time: Utc::now(),
                rtsp_transport: RtspTransport::Tcp,
                sequence: Arc::new(AtomicU64::new(0)),
                record: None,
            };
            let decoded = IntCounter::new("decoded", "test").unwrap();
            let decoder = Decoder::start(&source, settings, queue, decoded).unwrap();
            // Mostly "no playable streams"; now and then qtdemux hangs before saying so (the
            // stream runner's first-frame deadline covers that case).
            let mut messages = decoder.messages();
            let deadline = std::time::Instant::now() + Duration::from_secs(3);
            while std::time::Instant::now() < deadline {
                match messages.try_recv() {
                    Ok(message) if message.type_() == gst::MessageType::Error => break,
                    Ok(_) => {}
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            let (dropped, done) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                drop(decoder);
                let _ = dropped.send(());
            });
            assert!(
                done.recv_timeout(STOP_TIMEOUT + Duration::from_secs(5))
                    .is_ok(),
                "attempt {attempt}: dropping the decoder returned"
            );
        }
    }
}

//! Clips of recorded files whose codec an MP4 cannot hold as it is (MPEG-4 part 2, VP8,
//! ...): the span decoded, and encoded as WebM (VP8) that every browser plays. H.264 and
//! H.265 are remuxed instead (`recordings::clip`); `query::clips` picks.
//!
//! The recordings are files indexed with `argus index` or run as file streams. Each
//! registers where its video time starts
//! ([`super::store::MomentStore::put_recording`]); a clip seeks to the span's offset in the
//! file and encodes just that span, scaled down. Offsets are media time as frames carry it
//! (see [`crate::source::decoder`]): stream time counted from the recording's first frame,
//! which the clip's pipeline reads from its own first (prerolled) frame. Demuxers take seeks
//! in stream time (`qtdemux` in the movie's time, past its edit list), but the buffers they
//! return keep their shifted PTS, so each is placed in the clip by its stream time.

use std::path::Path;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app::AppSink;

/// Longest clip served; a longer moment plays its first minute.
pub const MAX_CLIP: Duration = Duration::from_secs(60);

/// Clip width in pixels (height keeps the aspect ratio).
const CLIP_WIDTH: u32 = 480;

#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error("the recording {0} is no longer there")]
    Missing(String),
    #[error("the recording has no video at that time")]
    Empty,
    #[error("cutting the clip failed: {0}")]
    Pipeline(String),
}

fn pipeline_error(error: impl std::fmt::Display) -> ClipError {
    ClipError::Pipeline(error.to_string())
}

/// Encodes `length` of `file` from `offset` as WebM. Blocking: run it off the async runtime.
///
/// Two pipelines: one decodes and seeks (a muxer downstream would not pass the seek on, and
/// the flush would discard its header), the other encodes what the first delivers.
pub fn cut(file: &Path, offset: Duration, length: Duration) -> Result<Vec<u8>, ClipError> {
    if !file.is_file() {
        return Err(ClipError::Missing(file.display().to_string()));
    }
    let length = length.min(MAX_CLIP);
    let decoder = gst::Pipeline::new();
    let source = gst::ElementFactory::make("filesrc")
        .property("location", file.to_string_lossy().as_ref())
        .build()
        .map_err(pipeline_error)?;
    let decode = make("decodebin")?;
    let convert = make("videoconvert")?;
    let scale = make("videoscale")?;
    let size = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .field("width", CLIP_WIDTH as i32)
                .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
                .build(),
        )
        .build()
        .map_err(pipeline_error)?;
    let frames = AppSink::builder().sync(false).build();
    decoder
        .add_many([
            &source,
            &decode,
            &convert,
            &scale,
            &size,
            frames.upcast_ref(),
        ])
        .map_err(pipeline_error)?;
    source.link(&decode).map_err(pipeline_error)?;
    gst::Element::link_many([&convert, &scale, &size, frames.upcast_ref()])
        .map_err(pipeline_error)?;
    let video_in = convert
        .static_pad("sink")
        .expect("videoconvert has a sink pad");
    decode.connect_pad_added(move |_, pad| {
        let is_video = pad
            .current_caps()
            .and_then(|caps| caps.structure(0).map(|s| s.name().starts_with("video/")))
            .unwrap_or(false);
        if is_video && !video_in.is_linked() {
            let _ = pad.link(&video_in);
        }
    });
    let result = decode_span(&decoder, &frames, offset, length)
        .and_then(|(samples, from)| encode(&samples, from));
    let _ = decoder.set_state(gst::State::Null);
    result
}

fn make(factory: &str) -> Result<gst::Element, ClipError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(pipeline_error)
}

/// The raw frames of `[offset, offset + length)` in media time, and the stream time of
/// `offset`.
fn decode_span(
    pipeline: &gst::Pipeline,
    frames: &AppSink,
    offset: Duration,
    length: Duration,
) -> Result<(Vec<gst::Sample>, gst::ClockTime), ClipError> {
    let bus = pipeline.bus().expect("a pipeline has a bus");
    pipeline.set_state(gst::State::Paused).map_err(|_| {
        bus_error(&bus).unwrap_or_else(|| ClipError::Pipeline("the recording did not open".into()))
    })?;
    // Seeking needs the pipeline prerolled.
    let (result, _, _) = pipeline.state(gst::ClockTime::from_seconds(20));
    if result.is_err() {
        return Err(bus_error(&bus)
            .unwrap_or_else(|| ClipError::Pipeline("the recording did not open".into())));
    }
    // The first frame is media time 0, as when the recording was indexed.
    let first = frames
        .pull_preroll()
        .map_err(|_| ClipError::Pipeline("the recording has no first frame".into()))?;
    let origin = first
        .buffer()
        .and_then(|buffer| buffer.pts())
        .map_or(gst::ClockTime::ZERO, |pts| {
            crate::source::decoder::stream_time(&first, pts)
        });
    let from = origin + gst::ClockTime::from_nseconds(offset.as_nanos() as u64);
    let until = from + gst::ClockTime::from_nseconds(length.as_nanos() as u64);
    // No stop position in the seek: qtdemux (1.22) maps it wrongly past an edit list that
    // skips media (the clip of a trimmed MP4 ended that much early). Frames are read up to
    // `until` instead.
    pipeline
        .seek(
            1.0,
            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
            gst::SeekType::Set,
            from,
            gst::SeekType::None,
            gst::ClockTime::NONE,
        )
        .map_err(|_| ClipError::Empty)?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(pipeline_error)?;
    let mut samples = Vec::new();
    loop {
        match frames.try_pull_sample(gst::ClockTime::from_seconds(30)) {
            Some(sample) => {
                let time = sample
                    .buffer()
                    .and_then(|buffer| buffer.pts())
                    .map(|pts| crate::source::decoder::stream_time(&sample, pts));
                if time.is_some_and(|time| time >= until) {
                    break;
                }
                samples.push(sample);
            }
            None if frames.is_eos() => break,
            None => {
                return Err(bus_error(&bus)
                    .unwrap_or_else(|| ClipError::Pipeline("no video within 30 s".into())))
            }
        }
    }
    if let Some(error) = bus_error(&bus) {
        return Err(error);
    }
    if samples.is_empty() {
        return Err(ClipError::Empty);
    }
    Ok((samples, from))
}

/// VP8 in streamable WebM, timestamps starting at zero at stream time `from`.
fn encode(samples: &[gst::Sample], from: gst::ClockTime) -> Result<Vec<u8>, ClipError> {
    let caps = samples[0]
        .caps()
        .ok_or_else(|| ClipError::Pipeline("decoded frames without caps".into()))?
        .to_owned();
    let source = gstreamer_app::AppSrc::builder()
        .caps(&caps)
        .format(gst::Format::Time)
        .build();
    // Real-time deadline: a clip is wanted now, and thumbnail-sized video needs few bits.
    let encode = gst::ElementFactory::make("vp8enc")
        .property("deadline", 1i64)
        .property("cpu-used", 8i32)
        .property("target-bitrate", 600_000i32)
        .build()
        .map_err(pipeline_error)?;
    // Streamable: the muxer cannot seek back into an appsink to write its index.
    let mux = gst::ElementFactory::make("webmmux")
        .property("streamable", true)
        .build()
        .map_err(pipeline_error)?;
    let out = AppSink::builder().sync(false).build();
    let pipeline = gst::Pipeline::new();
    pipeline
        .add_many([source.upcast_ref(), &encode, &mux, out.upcast_ref()])
        .map_err(pipeline_error)?;
    gst::Element::link_many([source.upcast_ref(), &encode, &mux, out.upcast_ref()])
        .map_err(pipeline_error)?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(pipeline_error)?;
    for sample in samples {
        let Some(buffer) = sample.buffer() else {
            continue;
        };
        let mut buffer = buffer.copy();
        {
            let buffer = buffer.make_mut();
            let pts = buffer
                .pts()
                .map(|pts| crate::source::decoder::stream_time(sample, pts).saturating_sub(from));
            buffer.set_pts(pts);
            buffer.set_dts(gst::ClockTime::NONE);
        }
        source.push_buffer(buffer).map_err(pipeline_error)?;
    }
    source.end_of_stream().map_err(pipeline_error)?;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let mut clip = Vec::new();
    let result = loop {
        match out.try_pull_sample(gst::ClockTime::from_seconds(30)) {
            Some(sample) => {
                if let Some(buffer) = sample.buffer() {
                    let map = buffer.map_readable().map_err(pipeline_error)?;
                    clip.extend_from_slice(&map);
                }
            }
            None if out.is_eos() => break Ok(clip),
            None => {
                break Err(bus_error(&bus)
                    .unwrap_or_else(|| ClipError::Pipeline("the encoder stalled".into())))
            }
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn bus_error(bus: &gst::Bus) -> Option<ClipError> {
    while let Some(message) = bus.pop() {
        if let gst::MessageView::Error(error) = message.view() {
            return Some(ClipError::Pipeline(error.error().to_string()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_of_a_recording_becomes_a_playable_webm() {
        gst::init().unwrap();
        let sample = Path::new("/usr/share/doc/opencv-doc/examples/data/vtest.avi");
        let clip = cut(sample, Duration::from_secs(20), Duration::from_secs(3)).unwrap();
        assert_eq!(&clip[..4], &[0x1A, 0x45, 0xDF, 0xA3], "EBML (WebM) magic");
        assert!(clip.len() > 10_000, "{} bytes", clip.len());
        assert!(
            matches!(
                cut(sample, Duration::from_secs(3600), Duration::from_secs(3)),
                Err(ClipError::Empty)
            ),
            "past the end of the recording"
        );
        assert!(matches!(
            cut(
                Path::new("/nowhere.mp4"),
                Duration::ZERO,
                Duration::from_secs(1)
            ),
            Err(ClipError::Missing(_))
        ));
    }
}

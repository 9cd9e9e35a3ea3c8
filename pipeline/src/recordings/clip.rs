//! Clips cut from recorded video by remuxing: the camera's own encoded frames go from the
//! recorded files into one MP4, unchanged. No decoder and no encoder runs, so a clip costs a
//! file copy, whatever its length.
//!
//! A clip is read from one or more [`Source`]s (a camera's segments, or one recorded file),
//! each a file whose media time 0 (its first frame) is the wall-clock time `start`. The first
//! file is sought to the clip's start with `KEY_UNIT | SNAP_BEFORE`; the following files are
//! read from their beginning (`splitmuxsink` starts every segment on a key frame); reading
//! stops at the first frame, in decode order, shown at or after the clip's end.
//!
//! **Key-frame rounding.** A remuxed clip must start on a key frame, so it begins at the key
//! frame at or before the asked start: up to one GOP early (a camera's GOP is typically 1–2
//! s; with a GOP of 1 s a 10 s span gives a clip of 10 to 11 s). It ends at the asked end,
//! or up to the length of a run of B-frames earlier (a frame shown before the end that
//! depends on one shown after it is left out with it, so every frame in the clip decodes).
//!
//! Output: `mp4mux faststart=true` (the index first, so a browser plays while it loads),
//! behind the codec's parser only where the frames are byte-stream H.264/H.265 (as MPEG-TS
//! carries it), which the parser rewrites into MP4's form. Only H.264 and H.265 are
//! remuxed; other codecs are refused with [`ClipError::NotRemuxable`], for the caller to
//! encode instead.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app::{AppSink, AppSrc};

use super::Segment;

/// A recorded file and the wall-clock time of its first frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Source {
    pub path: PathBuf,
    pub start: DateTime<Utc>,
}

impl From<&Segment> for Source {
    fn from(segment: &Segment) -> Self {
        Self {
            path: segment.path.clone(),
            start: segment.start,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error("the recording {} is no longer there", .0.display())]
    Missing(PathBuf),
    #[error("the recorded video does not cover this span")]
    Empty,
    /// The video's codec cannot go into an MP4 unchanged.
    #[error("{0} video is not remuxed into MP4")]
    NotRemuxable(String),
    #[error("cutting the clip failed: {0}")]
    Pipeline(String),
    #[error("writing the clip failed: {0}")]
    Io(#[from] std::io::Error),
}

fn pipeline_error(error: impl std::fmt::Display) -> ClipError {
    ClipError::Pipeline(error.to_string())
}

/// What a remux wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Cut {
    /// Wall-clock time of the clip's first frame: the key frame at or before the asked start.
    pub first_frame: DateTime<Utc>,
    /// Wall-clock time of the end of its last frame.
    pub end: DateTime<Utc>,
    pub frames: usize,
}

/// Whether an MP4 holds the codec as it is (H.264 and H.265).
fn remuxable(caps: &gst::CapsRef) -> bool {
    caps.structure(0).is_some_and(|s| {
        let name = s.name();
        name == "video/x-h264" || name == "video/x-h265"
    })
}

/// The parser that puts the video in MP4's form (length-prefixed NAL units, parameter sets
/// in the header), when it is not in it already (as read from MP4 or Matroska, where it
/// goes through untouched, byte for byte).
fn mp4_form_parser(caps: &gst::CapsRef) -> Option<&'static str> {
    let structure = caps.structure(0)?;
    let format = structure
        .get::<&str>("stream-format")
        .unwrap_or("byte-stream");
    if ["avc", "avc3", "hvc1", "hev1"].contains(&format) {
        return None;
    }
    match structure.name().as_str() {
        "video/x-h264" => Some("h264parse"),
        "video/x-h265" => Some("h265parse"),
        _ => None,
    }
}

/// Writes the video of `sources` (in time order) from `start` to `end` to `out` as MP4,
/// remuxed (see the module's documentation for the key-frame rounding). Blocking: run it
/// off the async runtime.
pub fn remux(
    sources: &[Source],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    out: &Path,
) -> Result<Cut, ClipError> {
    let mut writer: Option<Writer> = None;
    let result = remux_into(sources, start, end, out, &mut writer);
    let result = match (result, writer) {
        (Ok(()), Some(writer)) => writer.finish(),
        (Ok(()), None) => Err(ClipError::Empty),
        (Err(error), Some(writer)) => {
            writer.abandon();
            Err(error)
        }
        (Err(error), None) => Err(error),
    };
    if result.is_err() {
        let _ = std::fs::remove_file(out);
    }
    result
}

fn remux_into(
    sources: &[Source],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    out: &Path,
    writer: &mut Option<Writer>,
) -> Result<(), ClipError> {
    let end_ns = nanos_since(start, end);
    for source in sources {
        let mut reader = Reader::open(source)?;
        if !remuxable(&reader.caps) {
            return Err(ClipError::NotRemuxable(caps_name(&reader.caps)));
        }
        // Nanoseconds from the clip's asked start to this file's media time 0.
        let file_offset = nanos_since(start, source.start);
        if writer.is_none() && file_offset < 0 {
            reader.seek_key_frame_before(-file_offset)?;
        }
        // Decode times must keep increasing across files: two segments' recorded times can
        // overlap by a frame, so a file that would start before the last one's end is
        // pushed just past it.
        let mut shift: Option<i64> = None;
        // Until the clip starts: the GOP being read, from its key frame. The clip starts
        // with it once a frame of the span comes (a GOP that ends before the span does not
        // start it).
        let mut gop: Vec<Frame> = Vec::new();
        while let Some(mut frame) = reader.next()? {
            // From here on, times are from the asked start.
            frame.pts += file_offset;
            frame.dts = frame.dts.map(|dts| dts + file_offset);
            if frame.pts >= end_ns {
                return Ok(());
            }
            if let Some(writer) = writer {
                push(writer, frame, &mut shift)?;
                continue;
            }
            if frame.key {
                gop.clear();
            } else if gop.is_empty() {
                // Before the first key frame nothing decodes.
                continue;
            }
            let in_span = frame.pts >= 0;
            gop.push(frame);
            if in_span {
                let writer = writer.insert(Writer::open(&reader.caps, out, start, &gop[0])?);
                for frame in gop.drain(..) {
                    push(writer, frame, &mut shift)?;
                }
            }
        }
    }
    Ok(())
}

fn push(writer: &mut Writer, frame: Frame, shift: &mut Option<i64>) -> Result<(), ClipError> {
    // Leading frames of an open GOP show before its key frame and need the GOP before it:
    // they do not decode.
    if frame.pts < writer.first_pts {
        return Ok(());
    }
    let (pts, dts) = (frame.pts, frame.dts.unwrap_or(frame.pts));
    let shift = *shift.get_or_insert_with(|| (writer.next_dts - dts).max(0));
    writer.push(frame, pts + shift, dts + shift)
}

fn nanos_since(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_nanoseconds().unwrap_or(i64::MAX)
}

fn caps_name(caps: &gst::CapsRef) -> String {
    caps.structure(0)
        .map_or_else(|| "unknown".to_owned(), |s| s.name().to_string())
}

/// An encoded frame as a file holds it, its times in nanoseconds: of media time (from the
/// file's first frame) as read, then from the clip's asked start.
struct Frame {
    buffer: gst::Buffer,
    pts: i64,
    dts: Option<i64>,
    key: bool,
}

/// One recorded file, demuxed and parsed (`parsebin`: no decoder), its first video stream
/// read through an appsink.
struct Reader {
    pipeline: gst::Pipeline,
    frames: AppSink,
    caps: gst::Caps,
    /// Stream time of the file's first frame: its media time 0.
    origin: i64,
    /// The first frame, read to find the origin, handed out first unless a seek passed it.
    first: Option<gst::Sample>,
    bus: gst::Bus,
}

/// How long a file may take to open, or to give its next frame.
const READ_TIMEOUT: gst::ClockTime = gst::ClockTime::from_seconds(20);

impl Reader {
    fn open(source: &Source) -> Result<Self, ClipError> {
        if !source.path.is_file() {
            return Err(ClipError::Missing(source.path.clone()));
        }
        let pipeline = gst::Pipeline::new();
        let file = gst::ElementFactory::make("filesrc")
            .property("location", source.path.to_string_lossy().as_ref())
            .build()
            .map_err(pipeline_error)?;
        let parse = gst::ElementFactory::make("parsebin")
            .build()
            .map_err(pipeline_error)?;
        let frames = AppSink::builder().sync(false).max_buffers(8).build();
        pipeline
            .add_many([&file, &parse, frames.upcast_ref()])
            .map_err(pipeline_error)?;
        file.link(&parse).map_err(pipeline_error)?;
        let video_in = frames
            .static_pad("sink")
            .expect("an appsink has a sink pad");
        let bin = pipeline.downgrade();
        parse.connect_pad_added(move |_, pad| {
            let is_video = pad
                .current_caps()
                .or_else(|| Some(pad.query_caps(None)))
                .and_then(|caps| caps.structure(0).map(|s| s.name().starts_with("video/")))
                .unwrap_or(false);
            if is_video && !video_in.is_linked() {
                let _ = pad.link(&video_in);
                return;
            }
            // Audio and further streams go nowhere: an unlinked pad could stop the demuxer.
            let Some(bin) = bin.upgrade() else { return };
            if let Ok(sink) = gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .build()
            {
                let _ = bin.add(&sink);
                let _ = sink.sync_state_with_parent();
                if let Some(sink_pad) = sink.static_pad("sink") {
                    let _ = pad.link(&sink_pad);
                }
            }
        });
        let bus = pipeline.bus().expect("a pipeline has a bus");
        let mut reader = Self {
            pipeline,
            frames,
            caps: gst::Caps::new_empty(),
            origin: 0,
            first: None,
            bus,
        };
        // Playing at once, not prerolled: a sink prerolls on the first frame inside the
        // segment, which with B-frames is not the file's first (its decode time is before
        // the segment's start). The appsink's small queue holds the file back meanwhile.
        reader
            .pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| reader.failure("the recording did not open"))?;
        let first = match reader.frames.try_pull_sample(READ_TIMEOUT) {
            Some(first) => first,
            None => return Err(reader.failure("the recording has no video")),
        };
        reader.caps = first
            .caps()
            .map(|caps| caps.to_owned())
            .ok_or_else(|| ClipError::Pipeline("frames without caps".into()))?;
        reader.origin = first
            .buffer()
            .and_then(|buffer| buffer.pts())
            .map_or(0, |pts| stream_time(&first, pts));
        reader.first = Some(first);
        Ok(reader)
    }

    fn failure(&self, what: &str) -> ClipError {
        bus_error(&self.bus).unwrap_or_else(|| ClipError::Pipeline(what.into()))
    }

    /// Seeks to the key frame at or before `offset` of media time.
    fn seek_key_frame_before(&mut self, offset: i64) -> Result<(), ClipError> {
        let position = gst::ClockTime::from_nseconds((self.origin + offset).max(0) as u64);
        self.pipeline
            .seek(
                1.0,
                gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT | gst::SeekFlags::SNAP_BEFORE,
                gst::SeekType::Set,
                position,
                gst::SeekType::None,
                gst::ClockTime::NONE,
            )
            .map_err(|_| ClipError::Empty)?;
        self.first = None;
        Ok(())
    }

    /// The next frame in decode order; `None` at the end of the file.
    fn next(&mut self) -> Result<Option<Frame>, ClipError> {
        let sample = match self.first.take() {
            Some(first) => first,
            None => match self.frames.try_pull_sample(READ_TIMEOUT) {
                Some(sample) => sample,
                None if self.frames.is_eos() => return Ok(None),
                None => return Err(self.failure("the recording stalled")),
            },
        };
        let Some(buffer) = sample.buffer_owned() else {
            return Ok(None);
        };
        let Some(pts) = buffer.pts() else {
            // A frame without a time cannot be placed in the clip.
            return self.next();
        };
        Ok(Some(Frame {
            pts: stream_time(&sample, pts) - self.origin,
            dts: buffer
                .dts()
                .map(|dts| stream_time(&sample, dts) - self.origin),
            key: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
            buffer,
        }))
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The stream time (nanoseconds, negative before the segment's start) of a time of a
/// sample's buffer: what a player shows, past edit lists and shifted timestamps.
fn stream_time(sample: &gst::Sample, time: gst::ClockTime) -> i64 {
    let segment = sample
        .segment()
        .and_then(|segment| segment.downcast_ref::<gst::ClockTime>());
    match segment.and_then(|segment| segment.to_stream_time_full(time)) {
        Some(gst::Signed::Positive(time)) => time.nseconds() as i64,
        Some(gst::Signed::Negative(time)) => -(time.nseconds() as i64),
        None => time.nseconds() as i64,
    }
}

/// The MP4 being written: `appsrc [! h264parse|h265parse] ! mp4mux faststart=true ! filesink`.
struct Writer {
    pipeline: gst::Pipeline,
    source: AppSrc,
    bus: gst::Bus,
    /// Clip time 0, in nanoseconds from the asked start: the first key frame's decode time
    /// (its earliest time), so no time in the clip is negative.
    zero: i64,
    /// Clip start as asked, and the first frame's time from it.
    asked_start: DateTime<Utc>,
    first_pts: i64,
    last_end: i64,
    /// The decode time the next file's first frame may have, at least.
    next_dts: i64,
    frames: usize,
}

impl Writer {
    /// Starts the clip with `first`, a key frame.
    fn open(
        caps: &gst::Caps,
        out: &Path,
        asked_start: DateTime<Utc>,
        first: &Frame,
    ) -> Result<Self, ClipError> {
        let (first_pts, first_dts) = (first.pts, first.dts);
        if !remuxable(caps) {
            return Err(ClipError::NotRemuxable(caps_name(caps)));
        }
        let source = AppSrc::builder()
            .caps(caps)
            .format(gst::Format::Time)
            // Backpressure: the reader waits for the muxer instead of queueing the file.
            .block(true)
            .max_bytes(8 << 20)
            .build();
        let mut elements = vec![source.clone().upcast::<gst::Element>()];
        if let Some(parser) = mp4_form_parser(caps) {
            elements.push(
                gst::ElementFactory::make(parser)
                    .build()
                    .map_err(pipeline_error)?,
            );
        }
        let mux = gst::ElementFactory::make("mp4mux")
            .property("faststart", true)
            .build()
            .map_err(pipeline_error)?;
        let file = gst::ElementFactory::make("filesink")
            .property("location", out.to_string_lossy().as_ref())
            .build()
            .map_err(pipeline_error)?;
        let pipeline = gst::Pipeline::new();
        pipeline.add_many(&elements).map_err(pipeline_error)?;
        pipeline.add_many([&mux, &file]).map_err(pipeline_error)?;
        gst::Element::link_many(&elements).map_err(pipeline_error)?;
        // Linked to a video pad by name: left to choose, the muxer may offer an audio one.
        let video_pad = mux
            .request_pad_simple("video_%u")
            .ok_or_else(|| ClipError::Pipeline("mp4mux has no video pad".into()))?;
        elements
            .last()
            .and_then(|last| last.static_pad("src"))
            .expect("appsrc and parsers have a src pad")
            .link(&video_pad)
            .map_err(pipeline_error)?;
        mux.link(&file).map_err(pipeline_error)?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(pipeline_error)?;
        let bus = pipeline.bus().expect("a pipeline has a bus");
        let zero = first_dts.map_or(first_pts, |dts| dts.min(first_pts));
        Ok(Self {
            pipeline,
            source,
            bus,
            zero,
            asked_start,
            first_pts,
            last_end: first_pts,
            next_dts: zero,
            frames: 0,
        })
    }

    /// Adds a frame at `pts` and `dts` (nanoseconds from the asked start).
    fn push(&mut self, frame: Frame, pts: i64, dts: i64) -> Result<(), ClipError> {
        let duration = frame.buffer.duration();
        let mut buffer = frame.buffer;
        {
            let buffer = buffer.make_mut();
            let clip_time = |t: i64| gst::ClockTime::from_nseconds((t - self.zero).max(0) as u64);
            buffer.set_pts(clip_time(pts));
            buffer.set_dts(clip_time(dts));
        }
        let length = duration.map_or(0, |d| d.nseconds() as i64);
        self.last_end = self.last_end.max(pts + length);
        self.next_dts = self.next_dts.max(dts + length.max(1));
        self.frames += 1;
        self.source.push_buffer(buffer).map_err(|_| {
            bus_error(&self.bus).unwrap_or_else(|| ClipError::Pipeline("the muxer stopped".into()))
        })?;
        Ok(())
    }

    fn finish(self) -> Result<Cut, ClipError> {
        self.source.end_of_stream().map_err(pipeline_error)?;
        let result = loop {
            match self.bus.timed_pop_filtered(
                READ_TIMEOUT,
                &[gst::MessageType::Eos, gst::MessageType::Error],
            ) {
                Some(message) => match message.view() {
                    gst::MessageView::Eos(_) => break Ok(()),
                    gst::MessageView::Error(error) => {
                        break Err(ClipError::Pipeline(error.error().to_string()))
                    }
                    _ => {}
                },
                None => break Err(ClipError::Pipeline("the muxer did not finish".into())),
            }
        };
        let _ = self.pipeline.set_state(gst::State::Null);
        result?;
        let at = |t: i64| self.asked_start + chrono::Duration::nanoseconds(t);
        Ok(Cut {
            first_frame: at(self.first_pts),
            end: at(self.last_end),
            frames: self.frames,
        })
    }

    fn abandon(self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn bus_error(bus: &gst::Bus) -> Option<ClipError> {
    while let Some(message) = bus.pop() {
        if let gst::MessageView::Error(error) = message.view() {
            return Some(ClipError::Pipeline(error.error().to_string()));
        }
    }
    None
}

/// Clips already cut, as files the HTTP layer serves with range requests (a browser asks
/// for a clip many times over while it plays and seeks). A clip's file is named by a hash
/// of what it was cut from (files and their sizes, and the span), so a cached clip is the
/// same clip; new clips are written beside under a temporary name and renamed into place.
/// Bounded: past `max_bytes` the least recently served clips are deleted.
#[derive(Clone)]
pub struct ClipCache {
    dir: PathBuf,
    max_bytes: u64,
    /// Cuts run at once, at most: each holds a blocking thread and reads the disk.
    cutting: Arc<tokio::sync::Semaphore>,
}

/// Files of an unfinished cut are older than this only when their cut died with its process.
const ABANDONED: Duration = Duration::from_secs(3600);

impl ClipCache {
    pub fn new(dir: PathBuf, max_bytes: u64, concurrent_cuts: usize) -> Self {
        Self {
            dir,
            max_bytes,
            cutting: Arc::new(tokio::sync::Semaphore::new(concurrent_cuts.max(1))),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a clip identified by `key` is (or will be) in, with `extension`.
    pub fn entry(&self, key: &impl Hash, extension: &str) -> PathBuf {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        self.dir
            .join(format!("{:016x}.{extension}", hasher.finish()))
    }

    /// The cached clip `entry`, marked as just used; `None` when it has not been cut.
    pub fn hit(&self, entry: &Path) -> Option<PathBuf> {
        let file = std::fs::File::options().append(true).open(entry).ok()?;
        // The prune keeps the most recently served.
        let _ = file.set_modified(SystemTime::now());
        Some(entry.to_owned())
    }

    /// Cuts a clip into `entry` with `cut` (blocking, given the file to write), at most
    /// `concurrent_cuts` at a time, then prunes the cache.
    pub async fn fill<T: Send + 'static>(
        &self,
        entry: &Path,
        cut: impl FnOnce(&Path) -> Result<T, ClipError> + Send + 'static,
    ) -> Result<T, ClipError> {
        let _permit = self
            .cutting
            .acquire()
            .await
            .expect("the cut semaphore is never closed");
        std::fs::create_dir_all(&self.dir)?;
        let partial = entry.with_extension(format!("{}.part", uuid::Uuid::now_v7().simple()));
        let (entry, cache) = (entry.to_owned(), self.clone());
        tokio::task::spawn_blocking(move || {
            let result = cut(&partial).and_then(|value| {
                std::fs::rename(&partial, &entry)?;
                Ok(value)
            });
            if result.is_err() {
                let _ = std::fs::remove_file(&partial);
            }
            cache.prune();
            result
        })
        .await
        .map_err(|error| ClipError::Pipeline(error.to_string()))?
    }

    /// Deletes the least recently used clips past `max_bytes`, and abandoned partial files.
    pub fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        let mut clips = Vec::new();
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            let modified = metadata.modified().unwrap_or(now);
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "part") {
                if now.duration_since(modified).unwrap_or_default() > ABANDONED {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            clips.push((modified, metadata.len(), path));
        }
        clips.sort();
        let mut total: u64 = clips.iter().map(|(_, bytes, _)| bytes).sum();
        for (_, bytes, path) in clips {
            if total <= self.max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                tracing::debug!(clip = %path.display(), "clip cache: least recently served clip deleted");
                total -= bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gstreamer_pbutils::Discoverer;

    const FPS: u32 = 25;

    /// 24 s of H.264 at 25 fps with a key frame every second, recorded by `splitmuxsink` into
    /// 8 s MP4 segments, as a camera's recording writes them.
    fn record_segments(dir: &Path) -> Vec<PathBuf> {
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc pattern=ball num-buffers={frames} \
             ! video/x-raw,width=320,height=240,framerate={FPS}/1 \
             ! timeoverlay ! video/x-raw,format=I420 ! x264enc speed-preset=ultrafast tune=zerolatency key-int-max={FPS} \
             ! h264parse ! splitmuxsink max-size-time=8000000000 muxer-factory=mp4mux \
               location=\"{dir}/segment-%03d.mp4\"",
            frames = 24 * FPS,
            dir = dir.display(),
        ))
        .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let bus = pipeline.bus().unwrap();
        for message in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
            match message.view() {
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(error) => panic!("{}", error.error()),
                _ => {}
            }
        }
        pipeline.set_state(gst::State::Null).unwrap();
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        files
    }

    fn duration(file: &Path) -> Duration {
        let discoverer = Discoverer::new(gst::ClockTime::from_seconds(10)).unwrap();
        let uri = gst::glib::filename_to_uri(file, None).unwrap();
        let info = discoverer.discover_uri(&uri).unwrap();
        Duration::from_nanos(info.duration().unwrap().nseconds())
    }

    /// The picture data of an H.264 frame in MP4's form (NAL units, each after its 4-byte
    /// length): its slices, without the parameter sets and delimiters a parser may add when
    /// the frame starts a stream.
    fn slices(frame: &[u8]) -> Vec<u8> {
        let mut picture = Vec::new();
        let mut at = 0;
        while at + 4 < frame.len() {
            let length = u32::from_be_bytes(frame[at..at + 4].try_into().unwrap()) as usize;
            let unit = &frame[at + 4..at + 4 + length];
            // 7: sequence parameter set, 8: picture parameter set, 9: access unit delimiter.
            if ![7, 8, 9].contains(&(unit[0] & 0x1f)) {
                picture.extend_from_slice(unit);
            }
            at += 4 + length;
        }
        picture
    }

    /// Every encoded frame of the files, as bytes, in decode order.
    fn encoded_frames(file: &Path) -> Vec<Vec<u8>> {
        let mut reader = Reader::open(&Source {
            path: file.to_owned(),
            start: DateTime::UNIX_EPOCH,
        })
        .unwrap();
        let mut frames = Vec::new();
        while let Some(frame) = reader.next().unwrap() {
            frames.push(frame.buffer.map_readable().unwrap().to_vec());
        }
        frames
    }

    /// Decodes the clip's first frame; its size.
    fn decode_first_frame(file: &Path) -> (i32, i32) {
        let pipeline = gst::parse::launch(&format!(
            "filesrc location=\"{}\" ! decodebin ! videoconvert ! video/x-raw,format=RGB \
             ! appsink name=out sync=false",
            file.display()
        ))
        .unwrap();
        let out = pipeline
            .downcast_ref::<gst::Bin>()
            .unwrap()
            .by_name("out")
            .unwrap()
            .downcast::<AppSink>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let sample = out
            .try_pull_sample(gst::ClockTime::from_seconds(10))
            .expect("a frame decodes");
        pipeline.set_state(gst::State::Null).unwrap();
        let caps = sample.caps().unwrap().structure(0).unwrap().to_owned();
        (caps.get("width").unwrap(), caps.get("height").unwrap())
    }

    #[test]
    fn a_span_across_segments_is_remuxed_to_within_a_gop_of_its_length() {
        gst::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = record_segments(dir.path());
        assert_eq!(files.len(), 3, "{files:?}");
        // The segments as the index lists them: each starts where the one before ended.
        let t0 = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut sources = Vec::new();
        let mut at = t0;
        for file in &files {
            sources.push(Source {
                path: file.clone(),
                start: at,
            });
            let frames = encoded_frames(file).len() as i64;
            at += chrono::Duration::milliseconds(frames * 1000 / i64::from(FPS));
        }
        // 5.5 s to 15.5 s: across the boundary at 8 s, starting between key frames.
        let (start, end) = (
            t0 + chrono::Duration::milliseconds(5500),
            t0 + chrono::Duration::milliseconds(15_500),
        );
        let out = dir.path().join("clip.mp4");
        let cut = remux(&sources[..2], start, end, &out).unwrap();
        assert_eq!(
            cut.first_frame,
            t0 + chrono::Duration::seconds(5),
            "{cut:?}"
        );
        // Frames 125 (5 s) to 387 (15.48 s).
        assert_eq!(cut.frames, 263, "{cut:?}");

        let length = duration(&out).as_secs_f64();
        assert!((length - 10.0).abs() <= 1.0, "a 10 s span: {length} s");
        assert_eq!(decode_first_frame(&out), (320, 240));
        // The moov box (the index) comes before the media: faststart.
        let mp4 = std::fs::read(&out).unwrap();
        let moov = mp4.windows(4).position(|w| w == b"moov").unwrap();
        let mdat = mp4.windows(4).position(|w| w == b"mdat").unwrap();
        assert!(moov < mdat, "moov at {moov}, mdat at {mdat}");

        // Remuxed, not re-encoded: the clip's pictures are the recording's, byte for byte
        // (x264 at another time, or any other encoder, writes other bytes).
        let recorded: std::collections::HashSet<Vec<u8>> = files[..2]
            .iter()
            .flat_map(|file| encoded_frames(file))
            .map(|frame| slices(&frame))
            .collect();
        let clipped: Vec<Vec<u8>> = encoded_frames(&out)
            .iter()
            .map(|frame| slices(frame))
            .collect();
        assert_eq!(clipped.len(), cut.frames);
        let foreign: Vec<(usize, usize)> = clipped
            .iter()
            .enumerate()
            .filter(|(_, frame)| !recorded.contains(*frame))
            .map(|(n, frame)| (n, frame.len()))
            .collect();
        assert!(
            foreign.is_empty(),
            "every frame of the clip is a recorded frame; these are not: {foreign:?}"
        );
    }

    #[test]
    fn b_frames_are_cut_in_decode_order_and_the_clip_shows_the_span_only() {
        gst::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bframes.mp4");
        // x264's own settings (B-frames) at 5 fps, a key frame at least every second.
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc pattern=ball num-buffers=60 \
             ! video/x-raw,format=I420,width=320,height=240,framerate=5/1 ! x264enc key-int-max=5 ! h264parse ! mp4mux \
             ! filesink location=\"{}\"",
            file.display()
        ))
        .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let bus = pipeline.bus().unwrap();
        for message in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
            if let gst::MessageView::Eos(_) = message.view() {
                break;
            }
        }
        pipeline.set_state(gst::State::Null).unwrap();
        let t0 = DateTime::UNIX_EPOCH;
        let out = dir.path().join("clip.mp4");
        let cut = remux(
            &[Source {
                path: file,
                start: t0,
            }],
            t0 + chrono::Duration::seconds(4),
            t0 + chrono::Duration::seconds(8),
            &out,
        )
        .unwrap();
        assert_eq!(
            cut.first_frame,
            t0 + chrono::Duration::seconds(4),
            "{cut:?}"
        );
        // Frames 20 (4 s) to 39 (7.8 s): the frame at 8 s and the ones decoded after it are
        // left out, and every frame the clip holds is shown at its time from the start.
        assert_eq!(cut.frames, 20, "{cut:?}");
        let mut reader = Reader::open(&Source {
            path: out,
            start: t0,
        })
        .unwrap();
        let mut shown = Vec::new();
        while let Some(frame) = reader.next().unwrap() {
            shown.push(frame.pts);
        }
        shown.sort();
        let expected: Vec<i64> = (0..20).map(|n| n * 200_000_000).collect();
        assert_eq!(shown, expected);
    }

    #[test]
    fn a_span_outside_the_files_is_empty_and_a_missing_file_is_named() {
        gst::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = record_segments(dir.path());
        let t0 = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let source = Source {
            path: files[0].clone(),
            start: t0,
        };
        let out = dir.path().join("clip.mp4");
        let later = t0 + chrono::Duration::seconds(60);
        let result = remux(&[source], later, later + chrono::Duration::seconds(5), &out);
        assert!(matches!(result, Err(ClipError::Empty)), "{result:?}");
        assert!(!out.exists(), "nothing is left behind");
        let gone = Source {
            path: dir.path().join("gone.mp4"),
            start: t0,
        };
        let result = remux(&[gone], t0, later, &out);
        assert!(matches!(result, Err(ClipError::Missing(_))), "{result:?}");
    }

    #[test]
    fn other_codecs_are_not_remuxed() {
        gst::init().unwrap();
        // MPEG-4 part 2 (DivX) in AVI.
        let sample = Path::new("/usr/share/doc/opencv-doc/examples/data/vtest.avi");
        let out = tempfile::tempdir().unwrap();
        let start = DateTime::UNIX_EPOCH;
        let result = remux(
            &[Source {
                path: sample.to_owned(),
                start,
            }],
            start,
            start + chrono::Duration::seconds(2),
            &out.path().join("clip.mp4"),
        );
        assert!(
            matches!(&result, Err(ClipError::NotRemuxable(codec)) if codec == "video/x-divx"),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn the_cache_keeps_the_most_recently_served_clips_within_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ClipCache::new(dir.path().join("clips"), 250, 2);
        let mut entries = Vec::new();
        for n in 0..3u32 {
            let entry = cache.entry(&n, "mp4");
            assert_eq!(cache.hit(&entry), None);
            cache
                .fill(&entry, |part| Ok(std::fs::write(part, [0u8; 100])?))
                .await
                .unwrap();
            assert!(cache.hit(&entry).is_some());
            entries.push(entry);
            // mtime granularity: the order of use must show.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // 300 bytes written, 250 allowed: the oldest went.
        assert!(!entries[0].exists());
        assert!(entries[1].exists() && entries[2].exists());
        cache.hit(&entries[1]);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let fourth = cache.entry(&3u32, "mp4");
        cache
            .fill(&fourth, |part| Ok(std::fs::write(part, [0u8; 100])?))
            .await
            .unwrap();
        assert!(entries[1].exists(), "served recently, kept");
        assert!(!entries[2].exists(), "served least recently, deleted");
        // A failed cut leaves nothing.
        let failed = cache.entry(&4u32, "mp4");
        let result: Result<(), _> = cache
            .fill(&failed, |part| {
                std::fs::write(part, b"half")?;
                Err(ClipError::Empty)
            })
            .await;
        assert!(result.is_err());
        let left: Vec<_> = std::fs::read_dir(cache.dir()).unwrap().collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }
}

//! The recording branch: a live camera's own encoded video, written into segment files
//! without decoding or encoding it.
//!
//! ```text
//! uridecodebin (stops at parsed H.264/H.265) ─▶ tee ─▶ decodebin ─▶ the sampling chain
//!                                                  └─▶ queue ─[gate]─▶ h264parse/h265parse ─▶ splitmuxsink
//! ```
//! The gate is a probe on the queue's output, run on the branch's own streaming thread: it
//! lets buffers through from a key frame on, and when recording pauses (the disk floor) it
//! ends the open segment with an end-of-stream and drops what follows. Resuming replaces the
//! ended parser and `splitmuxsink` with fresh ones and waits for the next key frame, so every
//! file starts with one and plays on its own.
//!
//! `splitmuxsink` posts a message when it opens and closes each file; the decoder's bus
//! handler passes them here ([`RecordBranch::on_message`]), and a closed file becomes a
//! [`RecordedSegment`] with wall-clock times: the messages carry the pipeline's running time,
//! which for a live source runs with the clock, so one offset (taken at the first message)
//! maps it to wall-clock time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use gstreamer as gst;
use gstreamer::prelude::*;

use super::decoder::DecoderError;

/// The container segments are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Mp4,
    Matroska,
}

impl Container {
    fn muxer(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4mux",
            Container::Matroska => "matroskamux",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::Matroska => "mkv",
        }
    }
}

/// A finished segment file.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedSegment {
    pub path: PathBuf,
    /// Wall-clock time of its first frame, and of the end of its last.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub bytes: u64,
}

/// Receives each finished segment, on a GStreamer thread: it must not block.
pub type SegmentCallback = Arc<dyn Fn(RecordedSegment) + Send + Sync>;

/// How a camera's video is recorded; `None` in the decoder settings records nothing.
#[derive(Clone)]
pub struct RecordSettings {
    /// This camera's folder; files are named by their start (Unix milliseconds).
    pub dir: PathBuf,
    /// Length of a segment; it ends at the first key frame after it.
    pub segment: Duration,
    pub container: Container,
    /// While set, nothing is written (the open segment is closed first).
    pub paused: Arc<AtomicBool>,
    pub on_segment: SegmentCallback,
}

/// Which encoded video the branch can record, and the parser the muxers want it through.
pub(super) fn parser_for(caps: &gst::CapsRef) -> Option<&'static str> {
    match caps.structure(0)?.name().as_str() {
        "video/x-h264" => Some("h264parse"),
        "video/x-h265" => Some("h265parse"),
        _ => None,
    }
}

/// What `uridecodebin`/`decodebin` stop at when a camera is recorded: parsed H.264 and H.265
/// (tapped for the recording, decoded by a second `decodebin`), or raw media as by default.
pub(super) fn stop_caps() -> gst::Caps {
    "video/x-h264, parsed=(boolean)true; video/x-h265, parsed=(boolean)true; \
     video/x-raw(ANY); audio/x-raw(ANY); text/x-raw(ANY); \
     subpicture/x-dvd; subpicture/x-dvb; subpicture/x-pgs"
        .parse()
        .expect("valid caps")
}

/// How long stopping waits for the open segment to be written out.
const FINISH_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Dropping buffers until a key frame.
    WaitingForKeyFrame,
    Recording,
    /// The writer got its end-of-stream (paused, or stopping); a new one is needed to go on.
    Ended,
    /// The pipeline is stopping: nothing more is written.
    Finished,
}

struct Writer {
    parser: gst::Element,
    sink: gst::Element,
}

struct State {
    phase: Phase,
    writer: Writer,
    /// Files open now, with the running time of their start.
    open: HashMap<String, gst::ClockTime>,
    /// The wall-clock time of running time 0, fixed at the first message so that
    /// consecutive segments meet exactly.
    origin: Option<DateTime<Utc>>,
}

/// One pipeline's recording branch; cheap to clone.
#[derive(Clone)]
pub(super) struct RecordBranch {
    shared: Arc<Shared>,
}

struct Shared {
    camera: Arc<str>,
    settings: RecordSettings,
    parser_factory: &'static str,
    pipeline: gst::glib::WeakRef<gst::Pipeline>,
    /// Holds the branch's elements. It handles their asynchronous state changes itself: a
    /// `splitmuxsink` waits for its first key frame before it is "paused", and the pipeline,
    /// told so, would wait for it with every other sink held back, the analysis included (and
    /// the key frame never comes: the source's thread is held too).
    bin: gst::Bin,
    queue: gst::Element,
    state: Mutex<State>,
    closed: Condvar,
}

impl RecordBranch {
    /// Adds a bin of `queue ! parser ! splitmuxsink` to `pipeline` and returns it with the
    /// bin's sink pad, to link to a tee.
    pub(super) fn add(
        pipeline: &gst::Pipeline,
        camera: Arc<str>,
        settings: RecordSettings,
        parser_factory: &'static str,
    ) -> Result<(Self, gst::Pad), DecoderError> {
        std::fs::create_dir_all(&settings.dir).map_err(|error| {
            DecoderError::Build(format!(
                "cannot create the recordings folder {}: {error}",
                settings.dir.display()
            ))
        })?;
        // Leaky, with room for seconds of video: a disk that stalls loses recorded video,
        // never analysis (the tee would otherwise wait for it).
        let queue = gst::ElementFactory::make("queue")
            .property("max-size-buffers", 0u32)
            .property("max-size-bytes", 0u32)
            .property("max-size-time", gst::ClockTime::from_seconds(10).nseconds())
            .build()
            .map_err(|_| DecoderError::MissingElement("queue"))?;
        queue.set_property_from_str("leaky", "downstream");
        let writer = new_writer(&settings, parser_factory)?;
        let bin = gst::Bin::builder()
            .name(format!("record-{camera}"))
            .async_handling(true)
            .build();
        let build_error = |e: gst::glib::BoolError| DecoderError::Build(e.to_string());
        bin.add_many([&queue, &writer.parser, &writer.sink])
            .map_err(build_error)?;
        gst::Element::link_many([&queue, &writer.parser, &writer.sink]).map_err(build_error)?;
        let ghost =
            gst::GhostPad::with_target(&queue.static_pad("sink").expect("queue has a sink pad"))
                .map_err(build_error)?;
        bin.add_pad(&ghost).map_err(build_error)?;
        pipeline.add(&bin).map_err(build_error)?;
        let branch = Self {
            shared: Arc::new(Shared {
                camera,
                settings,
                parser_factory,
                pipeline: pipeline.downgrade(),
                bin: bin.clone(),
                queue: queue.clone(),
                state: Mutex::new(State {
                    phase: Phase::WaitingForKeyFrame,
                    writer,
                    open: HashMap::new(),
                    origin: None,
                }),
                closed: Condvar::new(),
            }),
        };
        let gate = branch.clone();
        queue
            .static_pad("src")
            .expect("queue has a src pad")
            .add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
                move |_, info| {
                    match info.buffer() {
                        Some(buffer) => {
                            let key_frame = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
                            if gate.admit(key_frame) {
                                gst::PadProbeReturn::Ok
                            } else {
                                gst::PadProbeReturn::Drop
                            }
                        }
                        // An ended writer refuses events too, and the queue would stop on
                        // that refusal; its replacement gets the sticky ones when linked.
                        // (Handled, not Drop: the binding has already released the event,
                        // and GStreamer would release a dropped one again.)
                        None if gate.writer_open() => gst::PadProbeReturn::Ok,
                        None => gst::PadProbeReturn::Handled,
                    }
                },
            );
        let overrun_camera = branch.shared.camera.clone();
        let warned = AtomicBool::new(false);
        queue.connect("overrun", false, move |_| {
            if !warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(stream = %overrun_camera,
                    "the recording falls behind the camera (slow disk): recorded video is dropped");
            }
            None
        });
        Ok((branch, ghost.upcast()))
    }

    /// Brings the branch's elements to the pipeline's state (they are added while it plays).
    pub(super) fn sync_state(&self) -> Result<(), DecoderError> {
        self.shared
            .bin
            .sync_state_with_parent()
            .map(|_| ())
            .map_err(|e| DecoderError::Start(e.to_string()))
    }

    /// Whether the writer takes data (it has not had its end-of-stream).
    fn writer_open(&self) -> bool {
        matches!(
            self.shared.state.lock().expect("record branch lock").phase,
            Phase::WaitingForKeyFrame | Phase::Recording
        )
    }

    /// Whether the next buffer is written, moving through the phases (see the module doc).
    fn admit(&self, key_frame: bool) -> bool {
        let shared = &self.shared;
        let paused = shared.settings.paused.load(Ordering::Relaxed);
        let mut state = shared.state.lock().expect("record branch lock");
        loop {
            match state.phase {
                Phase::Finished => return false,
                Phase::Recording if paused => {
                    tracing::warn!(stream = %shared.camera, "recording paused");
                    state.phase = Phase::Ended;
                    end_writer(&state.writer);
                    return false;
                }
                Phase::Recording => return true,
                Phase::Ended if paused => return false,
                Phase::Ended => {
                    // Wait (briefly) for the ended file to be closed before its writer goes.
                    let (next, _) = shared
                        .closed
                        .wait_timeout_while(state, FINISH_TIMEOUT, |s| !s.open.is_empty())
                        .expect("record branch lock");
                    state = next;
                    match self.replace_writer(&mut state) {
                        Ok(()) => {
                            tracing::info!(stream = %shared.camera, "recording resumes at the next key frame");
                            state.phase = Phase::WaitingForKeyFrame;
                        }
                        Err(error) => {
                            tracing::error!(stream = %shared.camera, %error, "recording cannot resume");
                            state.phase = Phase::Finished;
                        }
                    }
                }
                Phase::WaitingForKeyFrame if paused || !key_frame => return false,
                Phase::WaitingForKeyFrame => {
                    state.phase = Phase::Recording;
                    return true;
                }
            }
        }
    }

    /// Swaps the ended parser and `splitmuxsink` for new ones. Runs on the branch's
    /// streaming thread, upstream of them, as GStreamer's element-replacing pattern does.
    fn replace_writer(&self, state: &mut State) -> Result<(), DecoderError> {
        let shared = &self.shared;
        let bin = &shared.bin;
        let old = &state.writer;
        shared.queue.unlink(&old.parser);
        for element in [&old.parser, &old.sink] {
            let _ = element.set_state(gst::State::Null);
            let _ = bin.remove(element);
        }
        let writer = new_writer(&shared.settings, shared.parser_factory)?;
        bin.add_many([&writer.parser, &writer.sink])
            .map_err(|e| DecoderError::Build(e.to_string()))?;
        gst::Element::link_many([&shared.queue, &writer.parser, &writer.sink])
            .map_err(|e| DecoderError::Build(e.to_string()))?;
        for element in [&writer.parser, &writer.sink] {
            element
                .sync_state_with_parent()
                .map_err(|e| DecoderError::Start(e.to_string()))?;
        }
        state.writer = writer;
        Ok(())
    }

    /// The pipeline is stopping: ends the open segment and waits (a little) for its file to
    /// be complete, so a segment cut short still plays and is indexed.
    pub(super) fn finish(&self) {
        let shared = &self.shared;
        let mut state = shared.state.lock().expect("record branch lock");
        let was = std::mem::replace(&mut state.phase, Phase::Finished);
        if was == Phase::Recording {
            end_writer(&state.writer);
        }
        let (state, timeout) = shared
            .closed
            .wait_timeout_while(state, FINISH_TIMEOUT, |s| !s.open.is_empty())
            .expect("record branch lock");
        if timeout.timed_out() {
            tracing::warn!(stream = %shared.camera, files = ?state.open.keys().collect::<Vec<_>>(),
                "a recording segment was not closed in time; it may not play");
        }
    }

    /// Handles `splitmuxsink`'s file messages; other messages are not its.
    pub(super) fn on_message(&self, message: &gst::MessageRef) {
        let gst::MessageView::Element(element) = message.view() else {
            return;
        };
        let Some(structure) = element.structure() else {
            return;
        };
        let opened = match structure.name().as_str() {
            "splitmuxsink-fragment-opened" => true,
            "splitmuxsink-fragment-closed" => false,
            _ => return,
        };
        let (Ok(location), Ok(running_time)) = (
            structure.get::<String>("location"),
            structure.get::<gst::ClockTime>("running-time"),
        ) else {
            return;
        };
        let shared = &self.shared;
        let mut state = shared.state.lock().expect("record branch lock");
        let origin = *state.origin.get_or_insert_with(|| {
            let now = shared
                .pipeline
                .upgrade()
                .and_then(|p| p.current_running_time())
                .unwrap_or(running_time);
            Utc::now() - chrono::Duration::nanoseconds(now.nseconds() as i64)
        });
        if opened {
            state.open.insert(location, running_time);
            return;
        }
        let Some(started) = state.open.remove(&location) else {
            return;
        };
        shared.closed.notify_all();
        drop(state);
        let wall =
            |time: gst::ClockTime| origin + chrono::Duration::nanoseconds(time.nseconds() as i64);
        let path = PathBuf::from(location);
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if running_time <= started || bytes == 0 {
            // A writer ended before its first frame: nothing to play.
            let _ = std::fs::remove_file(&path);
            return;
        }
        (shared.settings.on_segment)(RecordedSegment {
            path,
            start: wall(started),
            end: wall(running_time),
            bytes,
        });
    }
}

fn new_writer(
    settings: &RecordSettings,
    parser_factory: &'static str,
) -> Result<Writer, DecoderError> {
    let parser = gst::ElementFactory::make(parser_factory)
        .build()
        .map_err(|_| DecoderError::MissingElement(parser_factory))?;
    let sink = gst::ElementFactory::make("splitmuxsink")
        .property("max-size-time", settings.segment.as_nanos() as u64)
        .property("muxer-factory", settings.container.muxer())
        .build()
        .map_err(|_| DecoderError::MissingElement("splitmuxsink"))?;
    let dir = settings.dir.clone();
    let extension = settings.container.extension();
    sink.connect("format-location-full", false, move |_| {
        Some(
            segment_path(&dir, Utc::now(), extension)
                .display()
                .to_string()
                .to_value(),
        )
    });
    Ok(Writer { parser, sink })
}

/// Sends the end-of-stream that makes `splitmuxsink` finish its file.
fn end_writer(writer: &Writer) {
    if let Some(pad) = writer.parser.static_pad("sink") {
        let _ = pad.send_event(gst::event::Eos::new());
    }
}

/// `{dir}/{start in Unix ms}.{ext}`, a millisecond later while that file exists: names never
/// collide across reconnects and restarts.
pub fn segment_path(dir: &Path, start: DateTime<Utc>, extension: &str) -> PathBuf {
    let mut millis = start.timestamp_millis();
    loop {
        let path = dir.join(format!("{millis}.{extension}"));
        if !path.exists() {
            return path;
        }
        millis += 1;
    }
}

/// The start time a segment's file name gives (see [`segment_path`]).
pub fn segment_start(path: &Path) -> Option<DateTime<Utc>> {
    let millis: i64 = path.file_stem()?.to_str()?.parse().ok()?;
    DateTime::from_timestamp_millis(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_never_collide_and_give_their_start() {
        let dir = tempfile::tempdir().unwrap();
        let start = DateTime::from_timestamp_millis(1_800_000_000_123).unwrap();
        let first = segment_path(dir.path(), start, "mp4");
        assert_eq!(first, dir.path().join("1800000000123.mp4"));
        std::fs::write(&first, b"x").unwrap();
        let second = segment_path(dir.path(), start, "mp4");
        assert_eq!(second, dir.path().join("1800000000124.mp4"));
        assert_eq!(segment_start(&first), Some(start));
    }
}

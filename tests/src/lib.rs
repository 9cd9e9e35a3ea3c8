//! Harness for Argus's end-to-end tests: real GStreamer (videos with known on-screen words,
//! an in-process RTSP server on 127.0.0.1), the real `argus` binary, a real Kafka-protocol
//! broker and a real Redis, which `make test` starts and names in the environment.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub mod outage;

/// The API token every test config sets (`http.api_token`): changes through the API need it.
pub const TEST_API_TOKEN: &str = "argus-test-token";

/// The `Authorization` header value for [`TEST_API_TOKEN`].
pub fn bearer() -> String {
    format!("Bearer {TEST_API_TOKEN}")
}

/// The services `make test` started.
pub struct Services {
    pub kafka_brokers: String,
    pub redis_url: String,
}

pub fn services() -> Services {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run the end-to-end tests with `make test`, which starts Kafka and Redis")
        })
    };
    Services {
        kafka_brokers: var("ARGUS_TEST_KAFKA_BROKERS"),
        redis_url: var("ARGUS_TEST_REDIS_URL"),
    }
}

/// A name no other test (or earlier run) uses, for topics, key prefixes and files.
pub fn unique(name: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{name}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A TCP port that nothing listens on (just released by the OS).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Encodes `seconds` of 1280x720 video at 10 fps with `text` drawn in the middle, as H.264 in MP4.
pub fn make_text_video(path: &Path, text: &str, seconds: u32) {
    gst::init().unwrap();
    let description = format!(
        "videotestsrc pattern=smpte num-buffers={frames} \
         ! video/x-raw,width=1280,height=720,framerate=10/1 \
         ! textoverlay text=\"{text}\" font-desc=\"Sans Bold 56\" shaded-background=true valignment=center halignment=center \
         ! videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=ultrafast key-int-max=10 ! h264parse ! mp4mux \
         ! filesink location=\"{location}\"",
        frames = seconds * 10,
        location = path.display(),
    );
    run_to_end(&description);
}

/// Encodes one sign after another over a still test pattern, each on screen for
/// `seconds_each` (an empty sign shows the pattern alone), 1280x720 at 10 fps, H.264 in MP4:
/// a camera whose chunks each show one sign, for question rules.
pub fn make_signs_video(path: &Path, signs: &[&str], seconds_each: u32) {
    gst::init().unwrap();
    let frames_each = seconds_each * 10;
    let description = format!(
        "videotestsrc pattern=smpte num-buffers={frames} \
         ! video/x-raw,width=1280,height=720,framerate=10/1 \
         ! textoverlay name=overlay text=\"\" font-desc=\"Sans Bold 56\" shaded-background=true valignment=center halignment=center \
         ! videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=ultrafast key-int-max=10 ! h264parse ! mp4mux \
         ! filesink location=\"{location}\"",
        frames = frames_each * signs.len() as u32,
        location = path.display(),
    );
    let pipeline = gst::parse::launch(&description).expect("valid test pipeline");
    let overlay = pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name("overlay")
        .unwrap();
    let signs: Vec<String> = signs.iter().map(|s| s.to_string()).collect();
    let frame = std::sync::atomic::AtomicU32::new(0);
    let drawn = overlay.clone();
    // The text changes between frames: set before textoverlay draws each one.
    overlay
        .static_pad("video_sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let n = frame.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let sign = &signs[((n / frames_each) as usize).min(signs.len() - 1)];
            drawn.set_property("text", sign.as_str());
            gst::PadProbeReturn::Ok
        });
    play_to_end(pipeline);
}

/// Encodes `seconds` of a ball moving over a black background (no text), 1280x720 at 10 fps,
/// as H.264 in MP4.
pub fn make_moving_video(path: &Path, seconds: u32) {
    gst::init().unwrap();
    let description = format!(
        "videotestsrc pattern=ball num-buffers={frames} \
         ! video/x-raw,width=1280,height=720,framerate=10/1 \
         ! videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=ultrafast key-int-max=10 ! h264parse ! mp4mux \
         ! filesink location=\"{location}\"",
        frames = seconds * 10,
        location = path.display(),
    );
    run_to_end(&description);
}

/// How a [`make_phrase_recording`] is stored: each a file whose raw GStreamer buffer
/// timestamps differ from the time a player shows, so only stream time gets it right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeline {
    /// H.264 with B-frames (`x264enc`'s own settings, not `tune=zerolatency`) in MP4, as
    /// most NVR and phone exports: `mp4mux` writes an edit list that starts at the first
    /// frame's composition offset, and `qtdemux` shifts every PTS by it (first buffer
    /// `dts 0, pts 2 frames`; segment `start = 2 frames, time = 0`).
    Mp4BFrames,
    /// The same MP4 with its edit list moved to start `trim_s` seconds into the media, as an
    /// editor that trims without re-encoding writes it: players start at the frame there,
    /// and `qtdemux`'s segment says `start = trim_s + 2 frames, time = 0`.
    Mp4EditList { trim_s: u32 },
    /// MPEG-TS whose first PTS is past an hour (`videotestsrc timestamp-offset` of one hour;
    /// `mpegtsmux` adds its own hour: the first PTS is 7200 s, the first PCR 125 ms earlier).
    /// `tsdemux` counts from the first PCR: the first frame is at stream time 125 ms.
    MpegTsLargePts,
}

/// Frame rate of [`make_phrase_recording`]'s videos.
pub const PHRASE_FPS: u32 = 5;

/// Encodes `seconds` of 640x360 video at [`PHRASE_FPS`] on black, stored as `timeline` says,
/// with `phrase` on screen exactly for the frames `shown` (numbered from the first frame a
/// player shows, so frame `n` is at `n / PHRASE_FPS` s).
pub fn make_phrase_recording(
    path: &Path,
    timeline: Timeline,
    phrase: &str,
    seconds: u32,
    shown: std::ops::Range<u32>,
) {
    gst::init().unwrap();
    // Frames the player skips at the start.
    let hidden = match timeline {
        Timeline::Mp4EditList { trim_s } => trim_s * PHRASE_FPS,
        _ => 0,
    };
    let (offset, encoder, mux) = match timeline {
        Timeline::Mp4BFrames | Timeline::Mp4EditList { .. } => {
            (0, format!("x264enc key-int-max={PHRASE_FPS}"), "mp4mux")
        }
        // No B-frames here: their decoding delay would put the first frame later still
        // after the first PCR (525 ms, measured), and this case is about the large PTS.
        Timeline::MpegTsLargePts => (
            3_600_000_000_000u64,
            format!("x264enc speed-preset=ultrafast key-int-max={PHRASE_FPS}"),
            "mpegtsmux",
        ),
    };
    let encoded = match timeline {
        Timeline::Mp4EditList { .. } => path.with_extension("untrimmed.mp4"),
        _ => path.to_owned(),
    };
    let description = format!(
        "videotestsrc pattern=black num-buffers={frames} timestamp-offset={offset} \
         ! video/x-raw,width=640,height=360,framerate={PHRASE_FPS}/1 \
         ! textoverlay name=overlay text=\"\" font-desc=\"Sans Bold 36\" shaded-background=true valignment=center halignment=center \
         ! videoconvert ! video/x-raw,format=I420 ! {encoder} ! h264parse ! {mux} \
         ! filesink location=\"{location}\"",
        frames = (seconds * PHRASE_FPS + hidden),
        location = encoded.display(),
    );
    let pipeline = gst::parse::launch(&description).expect("valid test pipeline");
    let overlay = pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name("overlay")
        .unwrap();
    // The text changes between frames: set before textoverlay draws each one.
    let (phrase, shown) = (
        phrase.to_owned(),
        (shown.start + hidden)..(shown.end + hidden),
    );
    let frame = std::sync::atomic::AtomicU32::new(0);
    let drawn = overlay.clone();
    overlay
        .static_pad("video_sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let n = frame.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let text = if shown.contains(&n) {
                phrase.as_str()
            } else {
                ""
            };
            drawn.set_property("text", text);
            gst::PadProbeReturn::Ok
        });
    play_to_end(pipeline);
    if let Timeline::Mp4EditList { trim_s } = timeline {
        let mut bytes = std::fs::read(&encoded).unwrap();
        trim_edit_list(&mut bytes, trim_s);
        std::fs::write(path, bytes).unwrap();
        std::fs::remove_file(encoded).unwrap();
    }
}

/// Moves an MP4's (single-track, single-edit) edit list `seconds` later into the media and
/// shortens the edit to match, in place. The movie and track durations are left as they were:
/// shortened too, `qtdemux` (1.22) stops that much early (46 of 60 frames decoded, measured).
fn trim_edit_list(mp4: &mut [u8], seconds: u32) {
    fn find(data: &[u8], range: std::ops::Range<usize>, path: &[&[u8; 4]]) -> usize {
        let mut at = range.start;
        while at + 8 <= range.end {
            let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            if &data[at + 4..at + 8] == path[0] {
                return if path.len() == 1 {
                    at
                } else {
                    find(data, at + 8..at + size, &path[1..])
                };
            }
            at += size;
        }
        panic!("no {:?} box", String::from_utf8_lossy(path[0]));
    }
    let read = |data: &[u8], at: usize| u32::from_be_bytes(data[at..at + 4].try_into().unwrap());
    let whole = 0..mp4.len();
    let mvhd = find(mp4, whole.clone(), &[b"moov", b"mvhd"]);
    let mdhd = find(mp4, whole.clone(), &[b"moov", b"trak", b"mdia", b"mdhd"]);
    let elst = find(mp4, whole, &[b"moov", b"trak", b"edts", b"elst"]);
    for version in [mvhd, mdhd, elst] {
        assert_eq!(mp4[version + 8], 0, "version 0 boxes (32-bit times)");
    }
    assert_eq!(read(mp4, elst + 12), 1, "one edit");
    // Time scales follow the box header (8), version and flags (4), creation and
    // modification times (8). The edit: segment duration (movie time scale), media time
    // (media time scale).
    let segment = read(mp4, elst + 16) - seconds * read(mp4, mvhd + 20);
    let media_time = read(mp4, elst + 20) + seconds * read(mp4, mdhd + 20);
    mp4[elst + 16..elst + 20].copy_from_slice(&segment.to_be_bytes());
    mp4[elst + 20..elst + 24].copy_from_slice(&media_time.to_be_bytes());
}

/// Decodes a clip (MP4 or WebM): each frame's time as a player shows it (stream time: an
/// MP4 of B-frames starts its timestamps late and says so in its edit list) and the share
/// of bright pixels in its middle (white text on [`make_phrase_recording`]'s black shows
/// there; black frames have none).
pub fn clip_frames(clip: &[u8]) -> Vec<(Duration, f64)> {
    gst::init().unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), clip).unwrap();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! decodebin ! videoconvert \
         ! video/x-raw,format=GRAY8 ! fakesink name=out sync=false",
        file.path().display()
    ))
    .expect("valid clip pipeline");
    let out = pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name("out")
        .unwrap();
    let frames = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = frames.clone();
    out.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let (Some(buffer), Some(caps)) = (info.buffer(), pad.current_caps()) else {
                return gst::PadProbeReturn::Ok;
            };
            let size = caps.structure(0).unwrap();
            let width = size.get::<i32>("width").unwrap() as usize;
            let height = size.get::<i32>("height").unwrap() as usize;
            // GStreamer pads GRAY8 rows to 4 bytes.
            let stride = width.div_ceil(4) * 4;
            let map = buffer.map_readable().unwrap();
            let (rows, columns) = (height / 3..2 * height / 3, width / 6..5 * width / 6);
            let bright = rows
                .clone()
                .flat_map(|y| columns.clone().map(move |x| (y, x)))
                .filter(|&(y, x)| map[y * stride + x] > 160)
                .count();
            let share = bright as f64 / (rows.len() * columns.len()) as f64;
            let pts = buffer.pts().unwrap_or(gst::ClockTime::ZERO);
            let shown = pad
                .sticky_event::<gst::event::Segment>(0)
                .and_then(|event| {
                    event
                        .segment()
                        .downcast_ref::<gst::ClockTime>()
                        .and_then(|segment| segment.to_stream_time(pts))
                })
                .unwrap_or(pts);
            seen.lock()
                .unwrap()
                .push((Duration::from_nanos(shown.nseconds()), share));
            gst::PadProbeReturn::Ok
        });
    play_to_end(pipeline);
    let frames = frames.lock().unwrap().clone();
    frames
}

/// A Matroska file whose video track claims a codec no GStreamer plugin decodes: a real VP8
/// file with its codec id rewritten (same length, so the file stays well-formed).
pub fn make_unsupported_codec_video(path: &Path) {
    gst::init().unwrap();
    let vp8 = path.with_extension("vp8.mkv");
    run_to_end(&format!(
        "videotestsrc num-buffers=20 ! video/x-raw,width=320,height=240 ! vp8enc ! matroskamux ! filesink location=\"{}\"",
        vp8.display()
    ));
    let mut bytes = std::fs::read(&vp8).unwrap();
    let at = bytes
        .windows(5)
        .position(|w| w == b"V_VP8")
        .expect("a VP8 track");
    bytes[at..at + 5].copy_from_slice(b"V_QQ9");
    std::fs::write(path, bytes).unwrap();
    std::fs::remove_file(vp8).unwrap();
}

fn run_to_end(description: &str) {
    play_to_end(gst::parse::launch(description).expect("valid test pipeline"));
}

fn play_to_end(pipeline: gst::Element) {
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    for message in bus.iter_timed(gst::ClockTime::from_seconds(120)) {
        match message.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(error) => {
                panic!("test video pipeline failed: {}", error.error())
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

/// An RTSP server on 127.0.0.1 (port chosen by the OS unless given), run on its own thread.
pub struct RtspServer {
    pub port: u16,
    server: rtsp::RTSPServer,
    main_loop: glib::MainLoop,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RtspServer {
    /// Plays an MP4 file (H.264) in real time at `mount`.
    pub fn serve_file(path: &Path, mount: &str) -> Self {
        let launch = format!(
            "( filesrc location=\"{}\" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )",
            path.display()
        );
        Self::serve(&[(mount, launch)], 0)
    }

    /// A live 320x240 5 fps H.264 camera at each mount, showing a moving ball.
    pub fn serve_live(mounts: &[&str], port: u16) -> Self {
        let launch = "( videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=5/1 \
             ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=5 ! rtph264pay name=pay0 pt=96 config-interval=1 )";
        let factories: Vec<(&str, String)> = mounts
            .iter()
            .map(|mount| (*mount, launch.to_string()))
            .collect();
        Self::serve(&factories, port)
    }

    /// A live 320x240 5 fps H.264 camera showing `videotestsrc`'s `pattern` (e.g. `black`, a
    /// scene where nothing moves), at `mount`.
    pub fn serve_pattern(mount: &str, pattern: &str) -> Self {
        let launch = format!(
            "( videotestsrc is-live=true pattern={pattern} ! video/x-raw,format=I420,width=320,height=240,framerate=5/1 \
             ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=5 ! rtph264pay name=pay0 pt=96 config-interval=1 )"
        );
        Self::serve(&[(mount, launch)], 0)
    }

    fn serve(factories: &[(&str, String)], port: u16) -> Self {
        gst::init().unwrap();
        let context = glib::MainContext::new();
        let server = rtsp::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service(&port.to_string());
        let mounts = server.mount_points().unwrap();
        for (mount, launch) in factories {
            let factory = rtsp::RTSPMediaFactory::new();
            factory.set_launch(launch);
            factory.set_shared(true);
            mounts.add_factory(mount, factory);
        }
        let source = server.attach(Some(&context)).expect("RTSP server attaches");
        let port = server.bound_port() as u16;
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let running = main_loop.clone();
        let thread = std::thread::spawn(move || {
            // The server's source lives as long as the loop runs; the listening socket closes
            // when both are gone.
            let _source = source;
            running.run();
        });
        Self {
            port,
            server,
            main_loop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, mount: &str) -> String {
        format!("rtsp://127.0.0.1:{}{mount}", self.port)
    }
}

impl Drop for RtspServer {
    /// Disconnects every client and closes the listening socket, like a camera that goes away.
    fn drop(&mut self) {
        self.server.client_filter(Some(
            &mut |_: &rtsp::RTSPServer, client: &rtsp::RTSPClient| {
                client.close();
                rtsp::RTSPFilterResult::Remove
            },
        ));
        self.main_loop.quit();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The `argus` binary `make test` built.
pub fn argus_binary() -> PathBuf {
    let path = std::env::var_os("ARGUS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/argus"));
    assert!(
        path.is_file(),
        "{} does not exist: build it with `cargo build -p argus-pipeline` (make test does)",
        path.display()
    );
    path
}

/// `argus --config CONFIG`, with objects off unless the file has an `[objects]` section or
/// the test sets `ARGUS_OBJECTS__ENABLED` itself. Objects are on by default, but a test that
/// is not about them should not have the detector (5 frames a second) change what its timings
/// and frame counts measure; the tests of the built-in defaults run them on.
pub fn argus_command(config: &Path) -> Command {
    let mut command = Command::new(argus_binary());
    command.arg("--config").arg(config);
    let text = std::fs::read_to_string(config).unwrap_or_default();
    if !text.contains("[objects]") {
        command.env("ARGUS_OBJECTS__ENABLED", "false");
    }
    // Thumbnails and the saved moment index go beside the test's config (its temporary
    // folder), not into the user's state folder.
    if let Some(dir) = config.parent() {
        command.env("ARGUS_MOMENTS__DATA_DIR", moments_data_dir(dir));
    }
    command
}

/// Where [`argus_command`] has Argus keep thumbnails and the saved moment index for a
/// config in `config_dir`; under it, one folder per Redis key prefix.
pub fn moments_data_dir(config_dir: &Path) -> PathBuf {
    config_dir.join("moments-data")
}

/// A running `argus` whose stderr goes to a file the test can read.
pub struct Argus {
    child: Child,
    pub log: PathBuf,
    pub http: String,
}

impl Argus {
    pub fn start(config: &Path, args: &[&str], log: PathBuf, http: String) -> Self {
        Self::start_with_env(config, args, &[], log, http)
    }

    /// Like [`Argus::start`], with extra environment variables.
    pub fn start_with_env(
        config: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        log: PathBuf,
        http: String,
    ) -> Self {
        let mut command = argus_command(config);
        command.arg("run").args(args).envs(env.iter().copied());
        Self::spawn(command, log, http)
    }

    /// Runs `argus run ARGS` on its built-in defaults, with `env` overriding them.
    pub fn start_with_defaults(
        args: &[&str],
        env: &[(&str, &str)],
        log: PathBuf,
        http: String,
    ) -> Self {
        let mut command = Command::new(argus_binary());
        command
            .arg("run")
            .args(args)
            .envs(env.iter().copied())
            .env_remove("ARGUS_CONFIG");
        Self::spawn(command, log, http)
    }

    fn spawn(mut command: Command, log: PathBuf, http: String) -> Self {
        let child = command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .env("RUST_LOG", "info")
            .spawn()
            .expect("argus starts");
        Self { child, log, http }
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "argus did not exit within {timeout:?}; log:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET a JSON document from the API.
    pub fn get_json(&self, path: &str) -> Option<serde_json::Value> {
        let mut response = ureq::get(&format!("{}{path}", self.http)).call().ok()?;
        response.body_mut().read_json().ok()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no goodbye to the broker, as when a machine dies.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Resident memory of the process, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// The sum of a metric's samples whose labels contain every `label="value"` given.
    pub fn metric(&self, name: &str, labels: &[&str]) -> Option<f64> {
        let mut response = ureq::get(&format!("{}/metrics", self.http)).call().ok()?;
        let text = response.body_mut().read_to_string().ok()?;
        Some(metric_sum(&text, name, labels))
    }

    /// POST a JSON body; the status code and the answer.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let response = ureq::post(&format!("{}{path}", self.http))
            .header("Authorization", &bearer())
            .config()
            .http_status_as_error(false)
            .build()
            .send_json(body)
            .expect("the API answers");
        let status = response.status().as_u16();
        let answer = response
            .into_body()
            .read_json()
            .unwrap_or(serde_json::Value::Null);
        (status, answer)
    }

    /// Whether Argus serves its API with its moment index loaded. `/healthz` answers from the
    /// first moment of a start, before the models are loaded; `/readyz` names what is still
    /// loading (and, beside that, whether Kafka and Redis answer, which tests of outages
    /// look at on their own).
    pub fn is_up(&self) -> bool {
        let Ok(response) = ureq::get(&format!("{}/readyz", self.http))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
        else {
            return false;
        };
        let ready: serde_json::Value = response
            .into_body()
            .read_json()
            .unwrap_or(serde_json::Value::Null);
        ready.get("moment_index").is_some() && ready["moment_index"].get("loading").is_none()
    }

    /// GET with any status; the status code and the JSON answer (Null if not JSON).
    pub fn get_status(&self, path: &str) -> (u16, serde_json::Value) {
        let response = ureq::get(&format!("{}{path}", self.http))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .expect("the API answers");
        let status = response.status().as_u16();
        let answer = response
            .into_body()
            .read_json()
            .unwrap_or(serde_json::Value::Null);
        (status, answer)
    }

    /// DELETE; the status code.
    pub fn delete(&self, path: &str) -> u16 {
        ureq::delete(&format!("{}{path}", self.http))
            .header("Authorization", &bearer())
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .expect("the API answers")
            .status()
            .as_u16()
    }

    pub fn terminate(&mut self) -> i32 {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        self.wait(Duration::from_secs(60))
    }
}

impl Drop for Argus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sum of the samples of `name` in a Prometheus text exposition that carry every label
/// given as `key="value"`.
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `check` every 200 ms until it returns true; panics with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A message read back from Kafka.
pub struct Received {
    pub key: String,
    pub payload: serde_json::Value,
    pub headers: BTreeMap<String, String>,
}

/// Reads a topic from the beginning until `done` says enough or `timeout` passes.
pub fn consume(
    brokers: &str,
    topic: &str,
    timeout: Duration,
    done: impl Fn(&[Received]) -> bool,
) -> Vec<Received> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("argus-e2e"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions = metadata.topics()[0].partitions().len() as i32;
    assert!(partitions > 0, "topic {topic} has no partitions");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();

    let deadline = Instant::now() + timeout;
    let mut received = Vec::new();
    while Instant::now() < deadline && !done(&received) {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("kafka read");
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        received.push(Received {
            key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
            payload: serde_json::from_slice(message.payload().unwrap_or_default())
                .expect("messages are JSON"),
            headers,
        });
    }
    received
}

/// Writes an Argus config for the test services; frame results go to `topic`, stream events
/// to `{topic}.events`.
pub fn write_config(
    dir: &Path,
    services: &Services,
    topic: &str,
    key_prefix: &str,
    http_port: u16,
    streams: &[(&str, &str)],
) -> PathBuf {
    let streams_toml: String = streams
        .iter()
        .map(|(id, uri)| format!("[[streams]]\nid = \"{id}\"\nuri = \"{uri}\"\nsample_fps = 1.0\n"))
        .collect();
    write_config_toml(dir, services, topic, key_prefix, http_port, &streams_toml)
}

/// Points a config written by [`write_config`] at a moments topic of the test's own.
pub fn set_moments_topic(config: &Path, topic: &str) {
    let text = std::fs::read_to_string(config).unwrap().replace(
        "[kafka.spill]",
        &format!("moments = \"{topic}\"\n[kafka.spill]"),
    );
    std::fs::write(config, text).unwrap();
}

/// The configuration of one scale-out worker in `dir`: no streams of its own, the group
/// `group` (its topics, Redis keys and control topic `{group}.cameras` named after it) with
/// `control_partitions` partitions, a 6 s session timeout, the API on `http_port`.
pub fn write_worker_config(
    dir: &Path,
    services: &Services,
    group: &str,
    http_port: u16,
    control_partitions: i32,
) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let text = format!(
        "streams = []\n[http]\nlisten = \"127.0.0.1:{http_port}\"\napi_token = \"{TEST_API_TOKEN}\"\n\
         [kafka]\nbrokers = \"{brokers}\"\n\
         [kafka.topics]\nframe_results = \"{group}.results\"\nstream_events = \"{group}.events\"\nmoments = \"{group}.moments\"\n\
         [kafka.spill]\npath = \"{spill}\"\n\
         [redis]\nurl = \"{redis}\"\nkey_prefix = \"{group}\"\n\
         [moments]\ndata_dir = \"{data}\"\n\
         [cluster]\nenabled = true\ngroup_id = \"{group}\"\ncontrol_topic = \"{group}.cameras\"\n\
         control_partitions = {control_partitions}\nsession_timeout_ms = 6000\n",
        brokers = services.kafka_brokers,
        redis = services.redis_url,
        spill = dir.join("kafka-spill.redb").display(),
        data = dir.join("moments").display(),
    );
    let path = dir.join("argus.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Like [`write_config`], with the `[[streams]]` tables given as TOML.
pub fn write_config_toml(
    dir: &Path,
    services: &Services,
    topic: &str,
    key_prefix: &str,
    http_port: u16,
    streams_toml: &str,
) -> PathBuf {
    let text = format!(
        "[http]\nlisten = \"127.0.0.1:{http_port}\"\napi_token = \"{TEST_API_TOKEN}\"\n\
         [kafka]\nbrokers = \"{}\"\n[kafka.topics]\nframe_results = \"{topic}\"\nstream_events = \"{topic}.events\"\n\
         [kafka.spill]\npath = \"{spill}\"\n\
         [redis]\nurl = \"{}\"\nkey_prefix = \"{key_prefix}\"\n{streams_toml}",
        services.kafka_brokers,
        services.redis_url,
        spill = dir.join("kafka-spill.redb").display(),
    );
    let path = dir.join("argus.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Polls the API until `ready` accepts the stream list, or panics with the log after `timeout`.
pub fn wait_for_streams(
    argus: &Argus,
    timeout: Duration,
    what: &str,
    ready: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(answer) = argus.get_json("/api/v1/streams") {
            let streams = answer["streams"].as_array().cloned().unwrap_or_default();
            if ready(&streams) {
                return streams;
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{}",
            argus.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One stream's status out of a stream list.
pub fn stream<'a>(streams: &'a [serde_json::Value], id: &str) -> Option<&'a serde_json::Value> {
    streams.iter().find(|s| s["id"] == id)
}

/// The JSON Schema of a message kind (`frame-result`, `stream-event`), compiled.
pub fn schema(name: &str) -> jsonschema::Validator {
    schema_version(name, 1)
}

/// The validator of `schemas/{name}.v{version}.json`.
pub fn schema_version(name: &str, version: u32) -> jsonschema::Validator {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../schemas/{name}.v{version}.json"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema compiles")
}

/// Where a test leaves files worth keeping (logs), from `ARGUS_TEST_ARTIFACTS`.
pub fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("ARGUS_TEST_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A moment window as Redis keeps it (layout 2: a MessagePack map, vectors as float16
/// little-endian), read and written here as a client that is not Argus would, from the
/// field list in `pipeline/src/moments/stored.rs`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredWindow {
    pub id: serde_bytes::ByteBuf,
    pub camera: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub frames: u32,
    #[serde(default)]
    pub ocr: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub caption: Option<String>,
    #[serde(default)]
    pub objects: Vec<serde_json::Value>,
    pub model: String,
    #[serde(default)]
    pub text: Option<serde_bytes::ByteBuf>,
    pub appearance: serde_bytes::ByteBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visual_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visual: Option<serde_bytes::ByteBuf>,
    pub produced_ms: i64,
}

/// float16 little-endian, as layout 2 keeps vectors.
pub fn to_f16_bytes(values: &[f32]) -> serde_bytes::ByteBuf {
    serde_bytes::ByteBuf::from(
        values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect::<Vec<u8>>(),
    )
}

fn from_f16_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|pair| half::f16::from_le_bytes([pair[0], pair[1]]).to_f32())
        .collect()
}

impl StoredWindow {
    /// Reads a stored value; panics if it is not layout 2.
    pub fn decode(bytes: &[u8]) -> Self {
        rmp_serde::from_slice(bytes).expect("a stored window in layout 2")
    }

    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).unwrap()
    }

    pub fn text_embedding(&self) -> Option<Vec<f32>> {
        self.text.as_deref().map(|b| from_f16_bytes(b))
    }

    /// The window as published on Kafka (`schemas/moment-window.v1.json`), which is also
    /// layout 1 of the store.
    pub fn to_v1_json(&self) -> serde_json::Value {
        let time = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        let mut json = serde_json::json!({
            "schema_version": 1,
            "message_id": uuid::Uuid::from_slice(&self.id).unwrap().to_string(),
            "camera_id": self.camera,
            "start": time(self.start_ms),
            "end": time(self.end_ms),
            "frames": self.frames,
            "ocr_text": self.ocr,
            "tags": self.tags,
            "caption": self.caption,
            "embedding_model": self.model,
            "text_embedding": self.text_embedding(),
            "appearance": from_f16_bytes(&self.appearance),
            "produced_at": time(self.produced_ms),
        });
        if !self.objects.is_empty() {
            json["objects"] = self.objects.clone().into();
        }
        if let (Some(model), Some(visual)) = (&self.visual_model, &self.visual) {
            json["visual_model"] = model.clone().into();
            json["visual_embedding"] = from_f16_bytes(visual).into();
        }
        json
    }
}

//! The moment index end to end: a generated long video with known on-screen text is indexed
//! with `argus index` (OCR, windows, embeddings into Redis and Kafka), searched through the
//! API and the CLI, survives a restart of Argus, and is pruned by retention. Bad queries get
//! clear 4xx answers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use argus_e2e::*;

/// The benchmark video's recorded start, as `argus index --start` is given it.
const START: &str = "2026-01-01T00:00:00Z";
const START_MS: i64 = 1_767_225_600_000;

/// Builds the 1-minute benchmark (video, queries with their spans) with the repository's
/// generator.
fn build_benchmark(dir: &Path) -> PathBuf {
    let out = dir.join("benchmark");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("moments/build_benchmark.py");
    let status = Command::new("python3")
        .arg(script)
        .args([
            "--out",
            out.to_str().unwrap(),
            "--minutes",
            "1",
            "--seed",
            "11",
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("python3 runs");
    assert!(status.success(), "the benchmark builder failed");
    out
}

/// Runs an `argus` command to its end; (exit code, stdout, stderr).
fn argus_command(config: &Path, args: &[&str]) -> (i32, String, String) {
    argus_command_with_env(config, args, &[])
}

fn argus_command_with_env(
    config: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let output = argus_e2e::argus_command(config)
        .args(args)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .output()
        .expect("argus runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The first text query whose phrase is on screen once, and its span in seconds.
fn single_span_query(benchmark: &Path) -> (String, f64, f64) {
    let text = std::fs::read_to_string(benchmark.join("queries.jsonl")).unwrap();
    text.lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|query| query["spans"].as_array().unwrap().len() == 1)
        .map(|query| {
            let span = &query["spans"][0];
            (
                query["query"].as_str().unwrap().to_owned(),
                span[0].as_f64().unwrap(),
                span[1].as_f64().unwrap(),
            )
        })
        .expect("the benchmark has a single-span query")
}

fn seconds_of(moment: &serde_json::Value, field: &str) -> f64 {
    let time = chrono::DateTime::parse_from_rfc3339(moment[field].as_str().unwrap()).unwrap();
    (time.timestamp_millis() - START_MS) as f64 / 1e3
}

fn iou(a: (f64, f64), b: (f64, f64)) -> f64 {
    let intersection = (a.1.min(b.1) - a.0.max(b.0)).max(0.0);
    intersection / (a.1.max(b.1) - a.0.min(b.0))
}

fn search(argus: &Argus, query: &str) -> serde_json::Value {
    let (status, answer) = argus.get_status(&format!(
        "/api/v1/moments?q={}&camera=bench&limit=5",
        query.replace(' ', "+")
    ));
    assert_eq!(status, 200, "{answer}");
    answer
}

fn redis_connection(services: &Services) -> redis::Connection {
    redis::Client::open(services.redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// One camera's windows as Redis stores them (layout 2), read and rewritten as a client
/// that is not Argus would.
struct StoredWindows {
    redis: redis::Connection,
    prefix: String,
    timeline: String,
}

impl StoredWindows {
    fn of(services: &Services, key_prefix: &str, camera: &str) -> Self {
        Self {
            redis: redis_connection(services),
            prefix: key_prefix.to_owned(),
            timeline: format!("{key_prefix}:moments:{camera}"),
        }
    }

    /// The windows' start times (ms), in order.
    fn starts(&mut self) -> Vec<i64> {
        redis::cmd("ZRANGE")
            .arg(&self.timeline)
            .arg(0)
            .arg(-1)
            .query(&mut self.redis)
            .unwrap()
    }

    fn raw(&mut self, start: i64) -> Vec<u8> {
        redis::cmd("GET")
            .arg(format!("{}:{start}", self.timeline))
            .query(&mut self.redis)
            .unwrap()
    }

    fn get(&mut self, start: i64) -> StoredWindow {
        StoredWindow::decode(&self.raw(start))
    }

    /// Rewrites a window as a writer that is not this Argus (another worker) would: the
    /// value, and its entry in the store's log.
    fn put(&mut self, window: &StoredWindow) {
        let _: () = redis::pipe()
            .cmd("SET")
            .arg(format!("{}:{}", self.timeline, window.start_ms))
            .arg(window.encode())
            .ignore()
            .cmd("XADD")
            .arg(format!("{}:moments:log", self.prefix))
            .arg("*")
            .arg("put")
            .arg(format!("{} {}", window.camera, window.start_ms))
            .ignore()
            .query(&mut self.redis)
            .unwrap();
    }
}

/// Where Argus keeps a window's thumbnail (`moments::thumbnails::DiskThumbnails`).
fn thumbnail_file(config: &Path, key_prefix: &str, camera: &str, start_ms: i64) -> PathBuf {
    let day = chrono::DateTime::from_timestamp_millis(start_ms)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    moments_data_dir(config.parent().unwrap())
        .join(key_prefix)
        .join("thumbnails")
        .join(camera)
        .join(day)
        .join(format!("{start_ms}.jpg"))
}

#[test]
fn an_indexed_recording_answers_a_phrase_query_and_survives_a_restart() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let benchmark = build_benchmark(dir.path());
    let video = benchmark.join("benchmark.mkv");
    let (phrase, truth_start, truth_end) = single_span_query(&benchmark);
    let topic = unique("argus.test.moments");
    let moments_topic = format!("{topic}.moments");
    let key_prefix = unique("argus-test-moments");
    let http_port = free_port();
    let config = write_config(dir.path(), &services, &topic, &key_prefix, http_port, &[]);
    set_moments_topic(&config, &moments_topic);

    let index = [
        "index",
        video.to_str().unwrap(),
        "--camera",
        "bench",
        "--start",
        START,
    ];
    let (code, stdout, stderr) = argus_command(&config, &index);
    assert_eq!(code, 0, "argus index failed:\n{stderr}");
    assert!(stdout.contains("bench: 30 windows"), "{stdout}");
    let (code, stdout, _) = argus_command(&config, &index);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("already indexed"),
        "a finished run is not redone: {stdout}"
    );

    // Every window is published on the moments topic, valid against its schema.
    let schema = schema("moment-window");
    let published = consume(
        &services.kafka_brokers,
        &moments_topic,
        Duration::from_secs(30),
        |received| received.len() >= 30,
    );
    assert_eq!(published.len(), 30);
    for message in &published {
        assert_eq!(message.key, "bench");
        assert_eq!(message.headers["schema"], "argus.moment-window.v1");
        if let Err(error) = schema.validate(&message.payload) {
            panic!("{error}: {}", message.payload);
        }
    }
    assert!(published.iter().any(|m| m.payload["ocr_text"]
        .as_array()
        .is_some_and(|t| !t.is_empty())));

    let log = |n: u32| artifacts_dir().join(format!("moments.argus-{n}.log"));
    let http = format!("http://127.0.0.1:{http_port}");
    let mut argus = Argus::start(&config, &[], log(1), http.clone());
    wait_until(Duration::from_secs(60), "the API", || argus.is_up());
    let answer = search(&argus, &phrase);
    let top = &answer["moments"][0];
    let found = (seconds_of(top, "start"), seconds_of(top, "end"));
    assert!(
        iou(found, (truth_start, truth_end)) >= 0.5,
        "`{phrase}` is on screen {truth_start}–{truth_end} s; the top moment is {found:?}: {answer}"
    );
    assert!(
        !top["evidence"]["ocr"].as_array().unwrap().is_empty(),
        "the matching on-screen text is quoted: {top}"
    );
    let thumbnail = ureq::get(&format!("{http}{}", top["thumbnail"].as_str().unwrap()))
        .call()
        .expect("the moment's thumbnail is served");
    assert_eq!(
        thumbnail.headers()["content-type"],
        "image/jpeg",
        "thumbnail"
    );

    // The recording plays back: the moment's clip, at /api/v1/clips, is its span of the
    // recording (H.264, remuxed into MP4), and it decodes.
    let clip = top["clip"]
        .as_str()
        .expect("moments of a recording have a clip");
    assert!(
        clip.starts_with("/api/v1/clips?camera=bench&start="),
        "{clip}"
    );
    let mut response = ureq::get(&format!("{http}{clip}"))
        .call()
        .expect("the clip is served");
    assert_eq!(response.headers()["content-type"], "video/mp4");
    let mp4 = response
        .body_mut()
        .with_config()
        .limit(50 << 20)
        .read_to_vec()
        .unwrap();
    assert_eq!(&mp4[4..8], b"ftyp", "an MP4");
    let frames = clip_frames(&mp4);
    let (first, last) = (frames[0].0, frames.last().unwrap().0);
    assert!(
        (last - first).as_secs_f64() >= (found.1 - found.0) - 1.5,
        "the clip shows the moment {found:?}: frames from {first:?} to {last:?}"
    );

    // An LLM rerank re-scores the best moments from their evidence; the phrase's span stays
    // on top, and each moment shows the LLM's judgement beside its retrieval score.
    let (status, reranked) = argus.get_status(&format!(
        "/api/v1/moments?q={}&camera=bench&limit=5&rerank=true",
        phrase.replace(' ', "+")
    ));
    assert_eq!(status, 200, "{reranked}");
    let top = &reranked["moments"][0];
    let found = (seconds_of(top, "start"), seconds_of(top, "end"));
    assert!(
        iou(found, (truth_start, truth_end)) >= 0.5,
        "reranked, the top moment is {found:?}: {reranked}"
    );
    for moment in reranked["moments"].as_array().unwrap() {
        let relevance = moment["evidence"]["rerank"]
            .as_f64()
            .expect("every moment is reranked");
        assert!((0.0..=1.0).contains(&relevance), "{moment}");
    }

    // The CLI asks the same API.
    let (code, stdout, stderr) = argus_command(
        &config,
        &["moments", &phrase, "--camera", "bench", "-k", "1"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(" 1. ") && stdout.contains("bench"),
        "{stdout}"
    );

    // A stop saves the index beside the store; the restart reopens it instead of rebuilding
    // it from Redis: the same answer.
    assert_eq!(argus.terminate(), 0, "a clean stop");
    assert!(
        argus.logs().contains("moment index saved"),
        "{}",
        argus.logs()
    );
    let mut argus = Argus::start(&config, &[], log(2), http.clone());
    wait_until(Duration::from_secs(60), "the API after a restart", || {
        argus.is_up()
    });
    let again = search(&argus, &phrase);
    assert_eq!(
        again["moments"], answer["moments"],
        "the same moments after a restart"
    );
    assert!(
        argus.logs().contains("saved moment index reopened"),
        "{}",
        argus.logs()
    );

    // While Argus was down (killed: its index saved at the last stop), a worker still on an
    // older text model rewrote the windows: they carry another model's vectors, of another
    // dimension. The saved index catches up from the store's log; queries keep working, and
    // the windows are re-embedded from their stored text into the current model's space.
    argus.kill();
    let mut stored = StoredWindows::of(&services, &key_prefix, "bench");
    let starts = stored.starts();
    let current_model = stored.get(starts[0]).model;
    for &start in &starts {
        let mut window = stored.get(start);
        window.model = "an-older-model".into();
        if window.text.is_some() {
            window.text = Some(to_f16_bytes(&[1.0, 0.0, 0.0]));
        }
        stored.put(&window);
    }
    let argus = Argus::start(&config, &[], log(3), http);
    wait_until(
        Duration::from_secs(60),
        "the API after a model change",
        || argus.is_up(),
    );
    let (status, body) = argus.get_status(&format!(
        "/api/v1/moments?q={}&camera=bench&limit=5",
        phrase.replace(' ', "+")
    ));
    assert_eq!(
        status, 200,
        "no dimension mismatch while re-embedding: {body}"
    );
    wait_until(Duration::from_secs(120), "every window re-embedded", || {
        starts.iter().all(|&start| {
            let window = stored.get(start);
            window.text.is_none() || window.model == current_model
        })
    });
    let spans = |answer: &serde_json::Value| -> Vec<(f64, f64)> {
        answer["moments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (seconds_of(m, "start"), seconds_of(m, "end")))
            .collect()
    };
    // The index takes each window right after Redis does.
    wait_until(
        Duration::from_secs(30),
        "the same moments once re-embedded",
        || spans(&search(&argus, &phrase)) == spans(&answer),
    );
    let cameras = argus.get_json("/api/v1/moments/cameras").unwrap();
    let bench = cameras["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["camera_id"] == "bench")
        .cloned()
        .unwrap_or_default();
    assert_eq!(bench["windows"], 30, "all windows reloaded: {cameras}");
}

/// The tiny seeded CLIP (Hugging Face layout) that operators/tests/image_text.rs checks
/// against `transformers`: real loading and forward code, random weights.
fn tiny_clip() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../operators/tests/fixtures/clip-pair-tiny")
        .canonicalize()
        .expect("the tiny CLIP fixture exists")
        .display()
        .to_string()
}

#[test]
fn an_image_text_encoder_embeds_every_window_for_text_and_image_search() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let (text_video, ball_video) = (dir.path().join("alpha.mp4"), dir.path().join("ball.mp4"));
    make_text_video(&text_video, "ALPHA", 6);
    make_moving_video(&ball_video, 6);
    let key_prefix = unique("argus-test-visual");
    let http_port = free_port();
    let config = write_config(
        dir.path(),
        &services,
        &unique("argus.test.visual"),
        &key_prefix,
        http_port,
        &[],
    );
    let clip = tiny_clip();
    let env = [
        ("ARGUS_MOMENTS__VISUAL_MODEL", clip.as_str()),
        // No LLM there: a rerank request must fail clearly and leave search working.
        ("ARGUS_MOMENTS__RERANK_MODEL", "/nonexistent/llm"),
    ];
    // One camera, two recordings a minute apart: text on a colour-bar pattern, then a ball.
    for (video, start) in [(&text_video, START), (&ball_video, "2026-01-01T00:01:00Z")] {
        let args = [
            "index",
            video.to_str().unwrap(),
            "--camera",
            "scenes",
            "--start",
            start,
            "--fps",
            "2",
        ];
        let (code, _, stderr) = argus_command_with_env(&config, &args, &env);
        assert_eq!(code, 0, "argus index failed:\n{stderr}");
    }

    // Every stored window carries its middle frame's embedding and the model's name.
    let mut stored = StoredWindows::of(&services, &key_prefix, "scenes");
    let starts = stored.starts();
    assert_eq!(starts.len(), 6, "two recordings of 6 s in 2 s windows");
    let schema = schema("moment-window");
    for &start in &starts {
        let window = stored.get(start).to_v1_json();
        assert_eq!(window["visual_model"], "clip-pair-tiny", "{window}");
        let embedding = window["visual_embedding"].as_array().expect("embedded");
        let norm: f64 = embedding
            .iter()
            .map(|v| v.as_f64().unwrap().powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "unit length: {norm}");
        if let Err(error) = schema.validate(&window) {
            panic!("{error}: {window}");
        }
    }

    // The text recording's windows lose their visual embedding, as if stored before the
    // encoder was configured: Argus backfills them at start from their thumbnails.
    for &start in &starts[..3] {
        let mut window = stored.get(start);
        window.visual_model = None;
        window.visual = None;
        stored.put(&window);
    }

    let http = format!("http://127.0.0.1:{http_port}");
    let argus = Argus::start_with_env(
        &config,
        &[],
        &env,
        artifacts_dir().join("moments.visual.log"),
        http.clone(),
    );
    wait_until(Duration::from_secs(60), "the API", || argus.is_up());
    wait_until(
        Duration::from_secs(60),
        "visual embeddings backfilled",
        || {
            starts[..3].iter().all(|&start| {
                let window = stored.get(start).to_v1_json();
                window["visual_model"] == "clip-pair-tiny"
                    && window["visual_embedding"].as_array().is_some_and(|e| {
                        let norm: f64 = e.iter().map(|v| v.as_f64().unwrap().powi(2)).sum();
                        (norm.sqrt() - 1.0).abs() < 1e-3
                    })
            })
        },
    );

    // By image: a ball window's own thumbnail finds the ball recording, on the encoder's
    // near-identical embedding of the same frame.
    let ball_window = starts[4];
    let thumbnail = ureq::get(&format!(
        "{http}/api/v1/moments/thumbnails/scenes/{ball_window}.jpg"
    ))
    .call()
    .expect("the thumbnail is served")
    .body_mut()
    .read_to_vec()
    .unwrap();
    let mut response = ureq::post(&format!(
        "{http}/api/v1/moments/by-image?camera=scenes&limit=3"
    ))
    .send(&thumbnail[..])
    .expect("search by image");
    let answer: serde_json::Value = response.body_mut().read_json().unwrap();
    let top = &answer["moments"][0];
    assert!(
        seconds_of(top, "start") >= 60.0,
        "the ball recording comes first: {answer}"
    );
    let visual = top["evidence"]["visual"]
        .as_f64()
        .expect("the visual match is quoted");
    assert!(visual > 0.95, "the same frame matches itself: {visual}");

    // By text: the on-screen word still finds its recording, and each moment says how well
    // its frames matched the query in the image-text space.
    let answer = argus
        .get_json("/api/v1/moments?q=alpha&camera=scenes&limit=3")
        .unwrap();
    let top = &answer["moments"][0];
    assert!(seconds_of(top, "end") <= 6.0, "{answer}");
    let visual = top["evidence"]["visual"]
        .as_f64()
        .expect("text queries are scored visually too");
    assert!((0.0..=1.0).contains(&visual), "{visual}");

    let (status, answer) = argus.get_status("/api/v1/moments?q=alpha&camera=scenes&rerank=true");
    assert_eq!(status, 503, "{answer}");
    let message = answer["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("rerank model") && message.contains("/nonexistent/llm"),
        "{message}"
    );
    let (status, _) = argus.get_status("/api/v1/moments?q=alpha&camera=scenes");
    assert_eq!(status, 200, "search without rerank still answers");
}

/// Mirrors `moments::stored::REDIS_BYTES_BESIDE_VALUE`: what retention's memory budget
/// counts for each window beside its value.
const REDIS_BYTES_BESIDE_VALUE: usize = 330;

/// The camera's windows in the index, as `/api/v1/moments/cameras` reports them.
fn coverage(argus: &Argus, camera: &str) -> serde_json::Value {
    let cameras = argus.get_json("/api/v1/moments/cameras").unwrap();
    cameras["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["camera_id"] == camera)
        .cloned()
        .unwrap_or_default()
}

#[test]
fn retention_deletes_old_windows_from_redis_the_thumbnails_and_the_saved_index() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("text.mp4");
    make_text_video(&video, "RETENTION", 12);
    let topic = unique("argus.test.retention");
    let key_prefix = unique("argus-test-retention");
    let http_port = free_port();
    let http = format!("http://127.0.0.1:{http_port}");
    let config = write_config(dir.path(), &services, &topic, &key_prefix, http_port, &[]);
    let (code, _, stderr) = argus_command(
        &config,
        &[
            "index",
            video.to_str().unwrap(),
            "--camera",
            "old",
            "--start",
            START,
            "--fps",
            "1",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let mut redis = redis_connection(&services);
    let timeline = format!("{key_prefix}:moments:old");
    let mut stored = StoredWindows::of(&services, &key_prefix, "old");
    let starts = stored.starts();
    assert_eq!(starts.len(), 6, "12 s in 2 s windows");
    let thumbnail = |start: i64| thumbnail_file(&config, &key_prefix, "old", start);
    assert!(starts.iter().all(|&start| thumbnail(start).is_file()));
    let log = |n: u32| artifacts_dir().join(format!("moments.retention-{n}.log"));
    let stored_count = |redis: &mut redis::Connection| {
        redis::cmd("ZCARD")
            .arg(&timeline)
            .query::<usize>(redis)
            .unwrap()
    };

    // By count: the newest 4 stay.
    let mut argus = Argus::start_with_env(
        &config,
        &[],
        &[
            ("ARGUS_MOMENTS__RETENTION__MAX_WINDOWS", "4"),
            ("ARGUS_MOMENTS__RETENTION__INTERVAL_S", "1"),
        ],
        log(1),
        http.clone(),
    );
    // The config's default sample stream runs too (and is pruned by the same rule), so the
    // camera's own keys are what the test watches.
    wait_until(Duration::from_secs(60), "retention to run", || {
        stored_count(&mut redis) == 4
    });
    assert!(argus.metric("argus_moment_windows_expired_total", &[]) >= Some(2.0));
    assert_eq!(stored.starts(), starts[2..], "the oldest two went");
    let oldest: bool = redis::cmd("EXISTS")
        .arg(format!("{timeline}:{START_MS}"))
        .query(&mut redis)
        .unwrap();
    assert!(!oldest, "the window's own key is deleted too");
    assert!(!thumbnail(starts[0]).exists() && !thumbnail(starts[1]).exists());
    assert!(starts[2..].iter().all(|&start| thumbnail(start).is_file()));
    let old = coverage(&argus, "old");
    assert_eq!(old["windows"], 4, "{old}");
    assert_eq!(old["first_ms"], START_MS + 4000);
    let answer = argus
        .get_json("/api/v1/moments?q=retention&camera=old&limit=10")
        .unwrap();
    for moment in answer["moments"].as_array().unwrap() {
        assert!(
            seconds_of(moment, "start") >= 4.0,
            "an expired window answered: {moment}"
        );
    }
    // The stop saves the index without them.
    assert_eq!(argus.terminate(), 0);

    // By memory: a budget that holds the newest two windows (each counted as its value
    // plus what its key and entries cost). The process then crashes: its saved index is
    // the one above, with four windows, and the next start applies the deletion from the
    // store's log.
    let mut size = |start: i64| stored.raw(start).len() + REDIS_BYTES_BESIDE_VALUE;
    let budget = size(starts[5]) + size(starts[4]) + size(starts[3]) / 2;
    let mut argus = Argus::start_with_env(
        &config,
        &[],
        &[
            (
                "ARGUS_MOMENTS__RETENTION__MAX_BYTES_PER_CAMERA",
                budget.to_string().as_str(),
            ),
            ("ARGUS_MOMENTS__RETENTION__INTERVAL_S", "1"),
        ],
        log(2),
        http.clone(),
    );
    wait_until(Duration::from_secs(60), "retention by memory", || {
        stored_count(&mut redis) == 2
    });
    assert_eq!(stored.starts(), starts[4..]);
    assert!(!thumbnail(starts[2]).exists() && !thumbnail(starts[3]).exists());
    assert!(thumbnail(starts[4]).is_file() && thumbnail(starts[5]).is_file());
    wait_until(Duration::from_secs(10), "the index pruned", || {
        coverage(&argus, "old")["windows"] == 2
    });
    argus.kill();

    let argus = Argus::start(&config, &[], log(3), http);
    wait_until(Duration::from_secs(60), "the API after a crash", || {
        argus.is_up()
    });
    // Reopened with four, the log's cut takes two away.
    wait_until(Duration::from_secs(30), "the saved index caught up", || {
        coverage(&argus, "old")["windows"] == 2
    });
    assert!(
        argus.logs().contains("saved moment index reopened"),
        "{}",
        argus.logs()
    );
    assert_eq!(coverage(&argus, "old")["first_ms"], starts[4]);
}

/// Windows stored by an Argus before layout 2 (the published JSON at the window's key, its
/// JPEG at `{key}:jpg`) are rewritten at start, in the background, their thumbnails moved to
/// disk; meanwhile and after, they answer as before.
#[test]
fn windows_stored_in_layout_1_are_migrated_at_start() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("dock.mp4");
    make_text_video(&video, "LOADING DOCK OPEN", 8);
    let key_prefix = unique("argus-test-migrate");
    let http_port = free_port();
    let http = format!("http://127.0.0.1:{http_port}");
    let config = write_config(
        dir.path(),
        &services,
        &unique("argus.test.migrate"),
        &key_prefix,
        http_port,
        &[],
    );
    let index = [
        "index",
        video.to_str().unwrap(),
        "--camera",
        "legacy",
        "--start",
        START,
        "--fps",
        "1",
    ];
    let (code, _, stderr) = argus_command(&config, &index);
    assert_eq!(code, 0, "{stderr}");
    let mut stored = StoredWindows::of(&services, &key_prefix, "legacy");
    let starts = stored.starts();
    assert_eq!(starts.len(), 4, "8 s in 2 s windows");
    let thumbnail = |start: i64| thumbnail_file(&config, &key_prefix, "legacy", start);

    // Back to layout 1, as an older Argus left them.
    let mut redis = redis_connection(&services);
    for &start in &starts {
        let json = stored.get(start).to_v1_json();
        let jpeg = std::fs::read(thumbnail(start)).unwrap();
        std::fs::remove_file(thumbnail(start)).unwrap();
        let key = format!("{key_prefix}:moments:legacy:{start}");
        let _: () = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(json.to_string())
            .ignore()
            .cmd("SET")
            .arg(format!("{key}:jpg"))
            .arg(jpeg)
            .ignore()
            .query(&mut redis)
            .unwrap();
    }
    let _: () = redis::cmd("DEL")
        .arg(format!("{key_prefix}:moments:layout"))
        .query(&mut redis)
        .unwrap();

    let argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("moments.migrate.log"),
        http.clone(),
    );
    wait_until(Duration::from_secs(60), "the migration", || {
        argus.metric("argus_moment_windows_migrated_total", &[]) == Some(4.0)
    });
    assert!(
        argus.logs().contains("moment windows migrated to layout 2"),
        "{}",
        argus.logs()
    );
    for &start in &starts {
        let window = stored.get(start);
        assert_eq!((window.camera.as_str(), window.start_ms), ("legacy", start));
        let jpeg_in_redis: bool = redis::cmd("EXISTS")
            .arg(format!("{key_prefix}:moments:legacy:{start}:jpg"))
            .query(&mut redis)
            .unwrap();
        assert!(!jpeg_in_redis, "the thumbnail left Redis");
        assert!(thumbnail(start).is_file(), "the thumbnail is on disk");
    }
    let layout: String = redis::cmd("GET")
        .arg(format!("{key_prefix}:moments:layout"))
        .query(&mut redis)
        .unwrap();
    assert_eq!(layout, "2");

    let (status, answer) =
        argus.get_status("/api/v1/moments?q=loading+dock+open&camera=legacy&limit=3");
    assert_eq!(status, 200, "{answer}");
    let top = &answer["moments"][0];
    assert!(
        top["evidence"]["ocr"]
            .as_array()
            .is_some_and(|o| !o.is_empty()),
        "the migrated windows answer: {answer}"
    );
    let response = ureq::get(&format!("{http}{}", top["thumbnail"].as_str().unwrap()))
        .call()
        .expect("the moment's thumbnail is served from disk");
    assert_eq!(response.headers()["content-type"], "image/jpeg");
}

#[test]
fn bad_moment_queries_get_clear_4xx_errors() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let config = write_config(
        dir.path(),
        &services,
        &unique("argus.test.bad-moments"),
        &unique("argus-test-bad-moments"),
        http_port,
        &[],
    );
    let argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("moments.bad-queries.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    wait_until(Duration::from_secs(60), "the API", || argus.is_up());
    let long = "x".repeat(10 * 1024);
    for (path, status, says) in [
        ("/api/v1/moments?q=", 400, "the query is empty"),
        ("/api/v1/moments", 400, "the query is empty"),
        (
            &format!("/api/v1/moments?q={long}") as &str,
            413,
            "at most 500",
        ),
        (
            "/api/v1/moments?q=van&camera=nowhere",
            404,
            "unknown camera `nowhere`",
        ),
        ("/api/v1/moments?q=van&since=1h&until=2h", 400, "reversed"),
        (
            "/api/v1/moments?q=van&since=last+tuesday",
            400,
            "is not a time",
        ),
        ("/api/v1/moments?q=van&limit=0", 400, "limit must be"),
        (
            "/api/v1/moments?q=van&limit=many",
            400,
            "invalid moment query",
        ),
    ] {
        let (code, answer) = argus.get_status(path);
        assert_eq!(code, status, "{path}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{path}: {message}");
    }
    let by_image_at = |query: &str, body: &[u8]| {
        let mut response = ureq::post(&format!(
            "http://127.0.0.1:{http_port}/api/v1/moments/by-image{query}"
        ))
        .config()
        .http_status_as_error(false)
        .build()
        .send(body)
        .unwrap();
        let status = response.status().as_u16();
        let answer: serde_json::Value = response.body_mut().read_json().unwrap();
        (status, answer)
    };
    let by_image = |body: &[u8]| by_image_at("", body);
    let (code, answer) = by_image_at("?rerank=true", b"GIF89a");
    assert_eq!(code, 400, "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("text queries only"));
    let (code, answer) = by_image(b"GIF89a-but-not-really");
    assert_eq!(code, 415, "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("not a readable image"));
    // Over 8 MiB is refused once 8 MiB are read: the answer is 413, unless the server's
    // closing the connection reaches the client while it still writes (a broken pipe or a
    // reset: the server stopped reading, which an accepted upload never does).
    let oversized = ureq::post(&format!(
        "http://127.0.0.1:{http_port}/api/v1/moments/by-image"
    ))
    .config()
    .http_status_as_error(false)
    .build()
    .send(&vec![0u8; 9 * 1024 * 1024][..]);
    match oversized {
        Ok(response) => assert_eq!(
            response.status().as_u16(),
            413,
            "images over 8 MiB are refused"
        ),
        Err(ureq::Error::Io(error)) => assert!(
            matches!(
                error.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ),
            "{error}"
        ),
        Err(error) => panic!("the oversized upload failed otherwise: {error}"),
    }
    assert!(argus.is_up(), "Argus still serves");
}

/// Issue 21: recordings whose raw GStreamer timestamps are not what a player shows (B-frames
/// with an edit list, an edit list that trims the start, an MPEG-TS starting past an hour;
/// see [`Timeline`] for what GStreamer makes of each) are timed as a player shows them:
/// frames, moments and clips. The three are indexed and searched in one Argus run.
#[test]
fn recordings_are_timed_as_a_player_shows_them() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    const SECONDS: u32 = 12;
    // On screen for frames 20..40: 4 s to 8 s, two whole windows.
    let shown = 4 * PHRASE_FPS..8 * PHRASE_FPS;
    let truth = (
        f64::from(shown.start) / f64::from(PHRASE_FPS),
        f64::from(shown.end) / f64::from(PHRASE_FPS),
    );
    let frame = 1.0 / f64::from(PHRASE_FPS);
    let recordings = [
        (
            "bframes",
            Timeline::Mp4BFrames,
            "bframes.mp4",
            "TRUCK AT GATE 3",
        ),
        (
            "trimmed",
            Timeline::Mp4EditList { trim_s: 3 },
            "trimmed.mp4",
            "LOADING DOCK CLOSED",
        ),
        (
            "late-ts",
            Timeline::MpegTsLargePts,
            "late.ts",
            "FIRE DOOR OPEN",
        ),
    ];
    let topic = unique("argus.test.timeline");
    let http_port = free_port();
    let config = write_config(
        dir.path(),
        &services,
        &topic,
        &unique("argus-test-timeline"),
        http_port,
        &[],
    );
    for (camera, timeline, name, phrase) in recordings {
        let video = dir.path().join(name);
        make_phrase_recording(&video, timeline, phrase, SECONDS, shown.clone());
        let args = [
            "index",
            video.to_str().unwrap(),
            "--camera",
            camera,
            "--start",
            START,
            "--fps",
            "5",
        ];
        let (code, stdout, stderr) = argus_command(&config, &args);
        assert_eq!(code, 0, "argus index {name} failed:\n{stderr}");
        assert!(
            stdout.contains(&format!("{camera}: 6 windows from {SECONDS} s of video")),
            "{name}: {stdout}"
        );
    }

    // The first frame of each is at media time 0, stamped at the recording's start.
    let results = consume(
        &services.kafka_brokers,
        &topic,
        Duration::from_secs(30),
        |received| {
            recordings.iter().all(|(camera, ..)| {
                received
                    .iter()
                    .any(|r| r.key == *camera && r.payload["frame"]["sequence"] == 0)
            })
        },
    );
    for (camera, _, name, _) in recordings {
        let first = results
            .iter()
            .find(|r| r.key == camera && r.payload["frame"]["sequence"] == 0)
            .unwrap_or_else(|| panic!("{name}: no first frame result"));
        let pts = first.payload["frame"]["pts_ns"].as_u64().unwrap() as f64 / 1e9;
        assert!(pts <= frame, "{name}: the first frame is at {pts} s");
        assert!(
            seconds_of(&first.payload["frame"], "wall_time") <= frame,
            "{name}: {}",
            first.payload
        );
    }

    let http = format!("http://127.0.0.1:{http_port}");
    let argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("moments.timeline.log"),
        http.clone(),
    );
    wait_until(Duration::from_secs(60), "the API", || argus.is_up());
    for (camera, _, name, phrase) in recordings {
        let (status, answer) = argus.get_status(&format!(
            "/api/v1/moments?q={}&camera={camera}&limit=3",
            phrase.to_lowercase().replace(' ', "+")
        ));
        assert_eq!(status, 200, "{answer}");
        let top = &answer["moments"][0];
        let found = (seconds_of(top, "start"), seconds_of(top, "end"));
        assert!(
            iou(found, truth) >= 0.9,
            "{name}: `{phrase}` is on screen {truth:?} s; the top moment is {found:?}: {answer}"
        );
        // The moment's clip starts on the phrase and shows it to the end.
        let clip = top["clip"]
            .as_str()
            .expect("a recording's moment has a clip");
        let video = ureq::get(&format!("{http}{clip}"))
            .call()
            .expect("the clip is served")
            .body_mut()
            .with_config()
            .limit(50 << 20)
            .read_to_vec()
            .unwrap();
        let frames = clip_frames(&video);
        let shows_phrase = |share: f64| share > 0.005;
        let (first_pts, first_share) = frames[0];
        assert!(
            first_pts.as_secs_f64() <= frame && shows_phrase(first_share),
            "{name}: the clip starts at {first_pts:?} with {first_share} of its middle lit: {frames:?}"
        );
        assert!(
            frames.iter().all(|&(_, share)| shows_phrase(share)),
            "{name}: every frame of the clip shows the phrase: {frames:?}"
        );
        let last = frames.last().unwrap().0.as_secs_f64();
        assert!(
            (found.1 - found.0 - frame - last).abs() <= frame,
            "{name}: the clip spans the moment {found:?}; its last frame is at {last} s"
        );
    }
}

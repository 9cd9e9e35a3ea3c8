//! The moment store at month scale (issue 19), against a real Redis:
//!
//! - `memory`: Redis memory per window over a stored day (43,200 windows of 2 s), layout 1
//!   (the published JSON and a JPEG in Redis, as Argus stored them before) against layout 2
//!   (`moments::stored`, thumbnails on disk), summed with `MEMORY USAGE` over every key the
//!   windows make (values, thumbnails, timeline, log).
//! - `startup`: start-to-ready of the moment index with N windows stored (default 10^6):
//!   the rebuild from Redis every start did before, against reopening the saved index and
//!   catching up from the store's log (the windows written after the save).
//!
//! ```sh
//! source deploy/env.sh
//! redis-server --port 16390 --save '' --appendonly no --daemonize yes   # a Redis of its own
//! cargo bench -p argus-pipeline --bench moment_store --profile dev -- memory \
//!     --redis redis://127.0.0.1:16390 [--windows 43200]
//! cargo bench -p argus-pipeline --bench moment_store --profile dev -- startup \
//!     --redis redis://127.0.0.1:16390 [--windows 1000000] [--after-save 2000]
//! ```
//!
//! Windows are synthetic but shaped like the sample camera's: two on-screen text lines, two
//! object groups, a caption, a 384-d unit text embedding (all-MiniLM-L6-v2's size), a 27-value
//! colour layout and a 14.4 KB thumbnail (the sizes the issue measured; `startup` writes no
//! thumbnails: they play no part in it). Each run uses a key prefix of its own and deletes its
//! keys at the end.

use std::sync::Arc;
use std::time::Instant;

use argus::config::RedisConfig;
use argus::metrics::Metrics;
use argus::moments::store::{LoadProgress, MomentStore};
use argus::moments::{stored, DiskThumbnails, IndexModels, MomentIndex, MomentWindow};
use argus::objects::activity::{Movement, ObjectGroup};
use argus::publish::RedisState;
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::AsyncCommands;

const DIMENSION: usize = 384;
const THUMBNAIL_BYTES: usize = 14_400;
const CAMERAS: usize = 4;
const MODEL: &str = "all-minilm-l6-v2";

struct Options {
    mode: String,
    redis: String,
    windows: usize,
    after_save: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let mode = args
        .iter()
        .find(|a| *a == "memory" || *a == "startup")
        .cloned()
        .unwrap_or_else(|| "memory".into());
    let default_windows = if mode == "memory" { 43_200 } else { 1_000_000 };
    Options {
        windows: value("--windows").map_or(default_windows, |n| n.parse().unwrap()),
        after_save: value("--after-save").map_or(2_000, |n| n.parse().unwrap()),
        redis: value("--redis").unwrap_or_else(|| "redis://127.0.0.1:16390".into()),
        mode,
    }
}

fn unit_vector(rng: &mut StdRng) -> Vec<f32> {
    let v: Vec<f32> = (0..DIMENSION)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

/// The `n`-th window: camera `n % CAMERAS`, 2 s after the camera's previous one.
fn window(n: usize, rng: &mut StdRng) -> MomentWindow {
    let base = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap();
    let start = base + Duration::seconds(2 * (n / CAMERAS) as i64);
    MomentWindow {
        schema_version: 1,
        message_id: uuid::Uuid::now_v7(),
        camera_id: format!("camera-{}", n % CAMERAS),
        start,
        end: start + Duration::seconds(2),
        frames: 4,
        ocr_text: vec!["GATE 3".into(), format!("BAY {}", n % 40)],
        tags: vec![],
        caption: Some("two people walk past the gate while a red car waits".into()),
        objects: vec![
            ObjectGroup {
                class: "person".into(),
                colour: None,
                count: 2,
                movement: Movement::Moving {
                    direction: "left to right".into(),
                },
                place: None,
                since: None,
                track_ids: vec![n as u64 * 3, n as u64 * 3 + 1],
            },
            ObjectGroup {
                class: "car".into(),
                colour: Some("red".into()),
                count: 1,
                movement: Movement::Still,
                place: Some("bottom right".into()),
                since: Some(start - Duration::seconds(40)),
                track_ids: vec![7],
            },
        ],
        embedding_model: MODEL.into(),
        text_embedding: Some(unit_vector(rng)),
        appearance: (0..27).map(|_| rng.random_range(-40.0..255.0)).collect(),
        visual_model: None,
        visual_embedding: None,
        produced_at: start + Duration::milliseconds(2400),
    }
}

async fn redis(url: &str, prefix: &str) -> RedisState {
    RedisState::new(
        &RedisConfig {
            url: url.into(),
            key_prefix: prefix.into(),
            retry_buffer: 10_000,
        },
        Metrics::new(),
    )
    .expect("a Redis URL")
}

/// Every key under `prefix`.
async fn keys_under(connection: &mut redis::aio::ConnectionManager, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let mut scan = connection
        .scan_match::<_, String>(format!("{prefix}:*"))
        .await
        .unwrap();
    while let Some(key) = scan.next_item().await {
        keys.push(key.unwrap());
    }
    keys
}

/// Every key under `prefix`, and the sum of their `MEMORY USAGE` (all elements counted).
async fn memory_under(
    connection: &mut redis::aio::ConnectionManager,
    prefix: &str,
) -> (usize, u64) {
    let keys = keys_under(connection, prefix).await;
    let mut total = 0;
    for chunk in keys.chunks(5_000) {
        let mut pipeline = redis::pipe();
        for key in chunk {
            pipeline
                .cmd("MEMORY")
                .arg("USAGE")
                .arg(key)
                .arg("SAMPLES")
                .arg(0);
        }
        let sizes: Vec<Option<u64>> = pipeline.query_async(connection).await.unwrap();
        total += sizes.into_iter().flatten().sum::<u64>();
    }
    (keys.len(), total)
}

async fn delete_under(connection: &mut redis::aio::ConnectionManager, prefix: &str) {
    let keys = keys_under(connection, prefix).await;
    for chunk in keys.chunks(10_000) {
        let _: () = redis::cmd("UNLINK")
            .arg(chunk)
            .query_async(connection)
            .await
            .unwrap();
    }
}

fn unique_prefix(what: &str) -> String {
    format!("argus-bench-{what}-{}", uuid::Uuid::now_v7().simple())
}

/// Layout 1 exactly as Argus wrote it: the JSON at the window's key, the JPEG beside it.
async fn store_layout_1(
    connection: &mut redis::aio::ConnectionManager,
    prefix: &str,
    windows: usize,
    rng: &mut StdRng,
) {
    let thumbnail: Vec<u8> = (0..THUMBNAIL_BYTES).map(|_| rng.random()).collect();
    for batch in (0..windows).collect::<Vec<_>>().chunks(1_000) {
        let mut pipeline = redis::pipe();
        for &n in batch {
            let window = window(n, rng);
            let (camera, start) = (&window.camera_id, window.start_ms());
            pipeline
                .sadd(format!("{prefix}:moments:cameras"), camera)
                .ignore()
                .zadd(format!("{prefix}:moments:{camera}"), start, start)
                .ignore()
                .set(
                    format!("{prefix}:moments:{camera}:{start}"),
                    serde_json::to_string(&window).unwrap(),
                )
                .ignore()
                .set(format!("{prefix}:moments:{camera}:{start}:jpg"), &thumbnail)
                .ignore();
        }
        let _: () = pipeline.query_async(connection).await.unwrap();
    }
}

/// Layout 2 through the store Argus uses (`MomentStore::put`), 64 writes at a time; with
/// `thumbnails`, each window gets a 14.4 KB one (on disk).
async fn store_layout_2(
    store: &MomentStore,
    from: usize,
    windows: usize,
    thumbnails: bool,
    rng: &mut StdRng,
) {
    let thumbnail: Vec<u8> = (0..THUMBNAIL_BYTES).map(|_| rng.random()).collect();
    let end = from + windows;
    for chunk_start in (from..end).step_by(10_000) {
        let made: Vec<MomentWindow> = (chunk_start..end.min(chunk_start + 10_000))
            .map(|n| {
                let mut window = window(n, rng);
                stored::to_stored_precision(&mut window);
                window
            })
            .collect();
        futures::stream::iter(made)
            .for_each_concurrent(64, |window| {
                let thumbnail = thumbnails.then(|| thumbnail.clone());
                async move { store.put(&window, thumbnail).await }
            })
            .await;
    }
}

async fn memory(options: &Options) {
    let mut rng = StdRng::seed_from_u64(19);
    let windows = options.windows;
    let data = tempfile::tempdir().unwrap();

    let old = unique_prefix("layout-1");
    let state = redis(&options.redis, &old).await;
    let mut connection = state.connection().await.unwrap();
    store_layout_1(&mut connection, &old, windows, &mut rng).await;
    let (old_keys, old_bytes) = memory_under(&mut connection, &old).await;
    delete_under(&mut connection, &old).await;

    let new = unique_prefix("layout-2");
    let state = redis(&options.redis, &new).await;
    let store = MomentStore::new(
        state.clone(),
        Arc::new(DiskThumbnails::new(data.path().join("thumbnails"))),
    );
    store_layout_2(&store, 0, windows, true, &mut rng).await;
    let (new_keys, new_bytes) = memory_under(&mut connection, &new).await;
    let value_bytes: u64 = {
        let mut total = 0;
        let mut rng = StdRng::seed_from_u64(7);
        for n in 0..1_000 {
            let mut w = window(n, &mut rng);
            stored::to_stored_precision(&mut w);
            total += stored::encode(&w).len() as u64;
        }
        total / 1_000
    };
    let json_bytes = serde_json::to_string(&window(0, &mut rng)).unwrap().len();
    delete_under(&mut connection, &new).await;
    let disk: u64 = walk_bytes(&data.path().join("thumbnails"));

    println!("windows stored: {windows} ({CAMERAS} cameras, 2 s each)");
    println!(
        "layout 1: {old_keys} keys, {:.1} MB, {:.0} bytes per window (JSON value {json_bytes} B + JPEG {THUMBNAIL_BYTES} B)",
        old_bytes as f64 / 1e6,
        old_bytes as f64 / windows as f64
    );
    println!(
        "layout 2: {new_keys} keys, {:.1} MB, {:.0} bytes per window (value ~{value_bytes} B; {:.0} B beside the value); thumbnails on disk {:.1} MB",
        new_bytes as f64 / 1e6,
        new_bytes as f64 / windows as f64,
        new_bytes as f64 / windows as f64 - value_bytes as f64,
        disk as f64 / 1e6
    );
}

fn walk_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                walk_bytes(&path)
            } else {
                entry.metadata().map_or(0, |m| m.len())
            }
        })
        .sum()
}

fn models() -> IndexModels {
    IndexModels {
        text: MODEL.into(),
        visual: None,
    }
}

async fn startup(options: &Options) {
    let mut rng = StdRng::seed_from_u64(19);
    let data = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("startup");
    let state = redis(&options.redis, &prefix).await;
    let store = MomentStore::new(
        state.clone(),
        Arc::new(DiskThumbnails::new(data.path().join("thumbnails"))),
    );
    let written = Instant::now();
    store_layout_2(&store, 0, options.windows, false, &mut rng).await;
    println!(
        "stored {} windows in {:.0} s",
        options.windows,
        written.elapsed().as_secs_f64()
    );

    // Before: every start rebuilt the index from Redis.
    let rebuilt = Arc::new(MomentIndex::new(20_000, models()));
    let started = Instant::now();
    let report = store
        .load_into(&rebuilt, &LoadProgress::default())
        .await
        .unwrap();
    let rebuild_s = started.elapsed().as_secs_f64();
    println!(
        "rebuild from Redis: {} windows in {rebuild_s:.1} s ({:.0} windows/s)",
        report.loaded,
        report.loaded as f64 / rebuild_s
    );

    let saved = data.path().join("index-8090");
    let started = Instant::now();
    let log = store.replay_point().await.unwrap();
    let (index, dir) = (rebuilt.clone(), saved.clone());
    tokio::task::spawn_blocking(move || index.save(&dir, log))
        .await
        .unwrap()
        .unwrap();
    println!(
        "save: {:.1} s, {:.0} MB on disk",
        started.elapsed().as_secs_f64(),
        walk_bytes(&saved) as f64 / 1e6
    );
    drop(rebuilt);

    // Windows written after the save (until the next save or a crash) are caught up from
    // the log.
    store_layout_2(&store, options.windows, options.after_save, false, &mut rng).await;

    let reopened = Arc::new(MomentIndex::new(20_000, models()));
    let started = Instant::now();
    let (index, dir) = (reopened.clone(), saved.clone());
    let at = tokio::task::spawn_blocking(move || index.restore(&dir))
        .await
        .unwrap()
        .unwrap()
        .expect("a saved index");
    let restore_s = started.elapsed().as_secs_f64();
    assert!(store.log_reaches_back_to(at).await.unwrap());
    let replayed = store.replay_into(&reopened, at).await.unwrap();
    let ready_s = started.elapsed().as_secs_f64();
    assert_eq!(reopened.len(), options.windows + options.after_save);
    println!(
        "reopen: restore {restore_s:.1} s, then {} windows replayed from the log: ready in {ready_s:.1} s",
        replayed.loaded
    );
    let mut connection = state.connection().await.unwrap();
    delete_under(&mut connection, &prefix).await;
}

#[tokio::main]
async fn main() {
    let options = options();
    match options.mode.as_str() {
        "startup" => startup(&options).await,
        _ => memory(&options).await,
    }
}

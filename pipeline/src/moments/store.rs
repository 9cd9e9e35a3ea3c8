//! The durable moment store in Redis, its change feed and its change log.
//!
//! Keys (prefix `redis.key_prefix`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{prefix}:moments:cameras` | set | cameras with windows |
//! | `{prefix}:moments:{camera}` | sorted set | window starts (ms), scored by start: time order |
//! | `{prefix}:moments:{camera}:{start_ms}` | string | the window: MessagePack, embeddings in float16 ([`super::stored`], layout 2; ~1.2 KB) |
//! | `{prefix}:moments:log` | stream | `put {camera} {start_ms}` and `cut {camera} {cutoff_ms}` (retention), in write order, capped at [`LOG_LENGTH`]: what a saved index replays |
//! | `{prefix}:moments:layout` | string | `2` once every window is in layout 2 |
//! | `{prefix}:moments:{camera}:recording:{id}` | string | how far `argus index` got in a recording |
//! | `{prefix}:moments:{camera}:recordings` | sorted set | `{start_ms} {path}` of the camera's recordings, scored by start: clips |
//!
//! Thumbnails are not in Redis but in a [`ThumbnailStore`] (files under `moments.data_dir`).
//! Layout 1 kept the published JSON (`schemas/moment-window.v1.json`) at the window's key and
//! its JPEG at `{key}:jpg`; [`MomentStore::migrate_layout`] rewrites such windows at start.
//!
//! Each window is written atomically (MULTI) with its log entry and a notice on channel
//! `{prefix}:moments` (`{camera} {start_ms}`), so every Argus instance — and one running
//! `argus index` beside the service — adds it to its in-memory index within milliseconds, and
//! a saved index reopened at start catches up from the log.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use redis::AsyncCommands;

use super::index::MomentIndex;
use super::stored::{self, Layout};
use super::thumbnails::ThumbnailStore;
use super::window::MomentWindow;
use crate::publish::RedisState;

/// One recording of a camera: where its video is, for clips.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub start_ms: i64,
    /// Unknown for recordings registered before lengths were kept, or unreadable ones.
    pub end_ms: Option<i64>,
    pub path: std::path::PathBuf,
}

/// Of `recordings` (oldest first), the latest that started at or before `at_ms`, if `at_ms`
/// is before its end: a later live stream of the same camera has no clip.
pub fn recording_at(recordings: &[Recording], at_ms: i64) -> Option<(std::path::PathBuf, i64)> {
    recordings
        .iter()
        .rev()
        .find(|recording| recording.start_ms <= at_ms)
        .filter(|recording| recording.end_ms.is_none_or(|end| at_ms < end))
        .map(|recording| (recording.path.clone(), recording.start_ms))
}

/// Windows fetched per round trip (and added to the index per batch) when loading.
const LOAD_CHUNK: usize = 2000;

/// Windows rewritten per round trip by the layout migration.
const MIGRATE_CHUNK: usize = 500;

/// Entries the change log keeps (about 20 bytes each in Redis). A saved index older than the
/// log's first entry cannot catch up from it and is rebuilt from the windows instead: this
/// many entries span ~2 days of 2 s windows of 4 cameras, far more than the time between two
/// saves (`moments.index_save_interval_s`).
pub const LOG_LENGTH: usize = 400_000;

/// How far back before a copy of the index its catch-up starts (see
/// [`MomentStore::replay_point`]).
const REPLAY_MARGIN_MS: u64 = 30_000;

/// Log entries read per round trip when a saved index catches up.
const REPLAY_CHUNK: usize = 10_000;

/// Rewrites one layout-1 window in layout 2, only if it is still in layout 1 (a newer write
/// of the window, in layout 2, is never overwritten with the older content): KEYS window,
/// its layout-1 thumbnail, the log; ARGV the layout-2 value, the log entry, the log length.
const MIGRATE_WINDOW: &str = r"
if string.sub(redis.call('GET', KEYS[1]) or '', 1, 1) ~= '{' then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'put', ARGV[2])
return 1
";

/// A position in the change log: a Redis stream id, `{ms}-{seq}`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct LogPosition {
    pub ms: u64,
    pub seq: u64,
}

impl LogPosition {
    fn parse(id: &str) -> Option<Self> {
        let (ms, seq) = id.split_once('-')?;
        Some(Self {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl std::fmt::Display for LogPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[derive(Clone)]
pub struct MomentStore {
    redis: RedisState,
    thumbnails: Arc<dyn ThumbnailStore>,
}

impl MomentStore {
    pub fn new(redis: RedisState, thumbnails: Arc<dyn ThumbnailStore>) -> Self {
        Self { redis, thumbnails }
    }

    fn prefix(&self) -> &str {
        self.redis.key_prefix()
    }

    fn cameras_key(&self) -> String {
        format!("{}:moments:cameras", self.prefix())
    }

    fn timeline_key(&self, camera: &str) -> String {
        format!("{}:moments:{camera}", self.prefix())
    }

    fn window_key(&self, camera: &str, start_ms: i64) -> String {
        format!("{}:moments:{camera}:{start_ms}", self.prefix())
    }

    /// Where layout 1 kept a window's thumbnail (read and deleted by the migration only).
    fn layout_1_thumbnail_key(&self, camera: &str, start_ms: i64) -> String {
        format!("{}:moments:{camera}:{start_ms}:jpg", self.prefix())
    }

    fn log_key(&self) -> String {
        format!("{}:moments:log", self.prefix())
    }

    fn layout_key(&self) -> String {
        format!("{}:moments:layout", self.prefix())
    }

    fn channel(&self) -> String {
        format!("{}:moments", self.prefix())
    }

    pub fn recording_key(&self, camera: &str, recording: &str) -> String {
        format!("{}:moments:{camera}:recording:{recording}", self.prefix())
    }

    fn recordings_key(&self, camera: &str) -> String {
        format!("{}:moments:{camera}:recordings", self.prefix())
    }

    /// Records that the camera's video from `start` on, for `length` when known, is the file
    /// `path` (for clips). The member is `{start_ms}-{end_ms} {path}`, or `{start_ms} {path}`
    /// without a length; a length given later replaces the entry without one.
    pub async fn put_recording(
        &self,
        camera: &str,
        path: &std::path::Path,
        start: chrono::DateTime<chrono::Utc>,
        length: Option<std::time::Duration>,
    ) {
        let start_ms = start.timestamp_millis();
        let span = match length {
            Some(length) => format!("{start_ms}-{}", start_ms + length.as_millis() as i64),
            None => start_ms.to_string(),
        };
        let mut pipeline = redis::pipe();
        // Replaces the recording's entry without a length, if there is one.
        pipeline
            .zrem(
                self.recordings_key(camera),
                format!("{start_ms} {}", path.display()),
            )
            .ignore()
            .zadd(
                self.recordings_key(camera),
                format!("{span} {}", path.display()),
                start_ms,
            )
            .ignore();
        self.redis.write_pipeline(pipeline).await;
    }

    /// The camera's recordings, oldest first.
    pub async fn recordings(&self, camera: &str) -> redis::RedisResult<Vec<Recording>> {
        let mut connection = self.redis.connection().await?;
        let members: Vec<String> = connection
            .zrange(self.recordings_key(camera), 0, -1)
            .await?;
        Ok(members
            .iter()
            .filter_map(|member| parse_recording(member))
            .collect())
    }

    /// The recording holding the camera's video at `at_ms`, if any: its file and start (ms).
    pub async fn recording_at(
        &self,
        camera: &str,
        at_ms: i64,
    ) -> redis::RedisResult<Option<(std::path::PathBuf, i64)>> {
        Ok(recording_at(&self.recordings(camera).await?, at_ms))
    }

    /// Stores a window (in layout 2: its vectors as float16, see
    /// [`stored::to_stored_precision`]) and its thumbnail. While Redis is away the write waits
    /// in the retry buffer and is replayed in order.
    pub async fn put(&self, window: &MomentWindow, thumbnail: Option<Vec<u8>>) {
        let (camera, start_ms) = (window.camera_id.as_str(), window.start_ms());
        if let Some(jpeg) = thumbnail {
            if let Err(error) = self.thumbnails.put(camera, start_ms, jpeg).await {
                tracing::warn!(camera, %error, "a window's thumbnail was not stored");
            }
        }
        let entry = format!("{camera} {start_ms}");
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .sadd(self.cameras_key(), camera)
            .ignore()
            .zadd(self.timeline_key(camera), start_ms, start_ms)
            .ignore()
            .set(self.window_key(camera, start_ms), stored::encode(window))
            .ignore();
        append_to_log(&mut pipeline, &self.log_key(), "put", &entry);
        pipeline.publish(self.channel(), entry).ignore();
        self.redis.write_pipeline(pipeline).await;
    }

    /// How many windows are stored, over every camera: the total a load counts up to.
    pub async fn count(&self) -> redis::RedisResult<usize> {
        let mut connection = self.redis.connection().await?;
        let cameras: Vec<String> = connection.smembers(self.cameras_key()).await?;
        let mut total = 0;
        for camera in cameras {
            let windows: usize = connection.zcard(self.timeline_key(&camera)).await?;
            total += windows;
        }
        Ok(total)
    }

    /// Loads every stored window (of either layout) into `index`, counting them in `progress`
    /// as they go in: how many, and which were embedded by models other than the index's (see
    /// [`super::reembed`]). Decoding and HNSW insertion are CPU work of seconds to minutes,
    /// so each chunk runs on the blocking pool and the index's write lock is held for one
    /// chunk at a time: queries and new windows interleave with the load.
    pub async fn load_into(
        &self,
        index: &Arc<MomentIndex>,
        progress: &LoadProgress,
    ) -> anyhow::Result<LoadReport> {
        let mut connection = self.redis.connection().await?;
        let cameras: Vec<String> = connection.smembers(self.cameras_key()).await?;
        let mut report = LoadReport::default();
        for camera in cameras {
            report.add(
                self.load_camera_with(&mut connection, index, &camera, progress)
                    .await?,
            );
        }
        Ok(report)
    }

    /// Loads one camera's stored windows into `index` (a worker that takes a camera over
    /// takes its history with it).
    pub async fn load_camera_into(
        &self,
        index: &Arc<MomentIndex>,
        camera: &str,
    ) -> anyhow::Result<LoadReport> {
        let mut connection = self.redis.connection().await?;
        self.load_camera_with(&mut connection, index, camera, &LoadProgress::default())
            .await
    }

    async fn load_camera_with(
        &self,
        connection: &mut redis::aio::ConnectionManager,
        index: &Arc<MomentIndex>,
        camera: &str,
        progress: &LoadProgress,
    ) -> anyhow::Result<LoadReport> {
        let mut report = LoadReport::default();
        let starts: Vec<i64> = connection.zrange(self.timeline_key(camera), 0, -1).await?;
        for chunk in starts.chunks(LOAD_CHUNK) {
            let keys: Vec<String> = chunk
                .iter()
                .map(|&start| self.window_key(camera, start))
                .collect();
            let values: Vec<Option<Vec<u8>>> = connection.mget(&keys).await?;
            report.add(insert_values(index, keys, values).await?);
            progress.advance(chunk.len());
        }
        Ok(report)
    }

    /// How many windows of `camera` are stored.
    pub async fn camera_count(&self, camera: &str) -> redis::RedisResult<usize> {
        let mut connection = self.redis.connection().await?;
        connection.zcard(self.timeline_key(camera)).await
    }

    /// Where a copy of the index taken now must catch up from: after the log's last entry,
    /// or [`REPLAY_MARGIN_MS`] before now (Redis's clock, the stream ids' own) if that is
    /// earlier: a window another process logged just before may reach this index (through
    /// the notice channel) only after the copy. Read before the copy is taken. Replaying a
    /// window twice is harmless: it replaces itself.
    pub async fn replay_point(&self) -> redis::RedisResult<LogPosition> {
        let mut connection = self.redis.connection().await?;
        let last: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
            .arg(self.log_key())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut connection)
            .await?;
        let (seconds, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut connection).await?;
        let now_ms = seconds * 1000 + micros / 1000;
        let margin = LogPosition {
            ms: now_ms.saturating_sub(REPLAY_MARGIN_MS),
            seq: 0,
        };
        let after_last = last
            .first()
            .and_then(|(id, _)| LogPosition::parse(id))
            .map_or(LogPosition::default(), |last| LogPosition {
                seq: last.seq + 1,
                ..last
            });
        Ok(margin.min(after_last))
    }

    /// Whether the log still holds every entry from `from` on: it is capped at
    /// [`LOG_LENGTH`], and a Redis that lost its data has none. If not, a saved index cannot
    /// catch up from it.
    pub async fn log_reaches_back_to(&self, from: LogPosition) -> redis::RedisResult<bool> {
        let mut connection = self.redis.connection().await?;
        let exists: bool = connection.exists(self.log_key()).await?;
        if !exists {
            // Nothing was logged when the copy was taken, nor since.
            return Ok(from.ms == 0);
        }
        let info: std::collections::HashMap<String, redis::Value> = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(self.log_key())
            .query_async(&mut connection)
            .await?;
        // Redis 7 keeps the largest id a trim (or XDEL) removed.
        let trimmed = match info.get("max-deleted-entry-id") {
            Some(value) => redis::from_redis_value::<String>(value.clone())?,
            None => return Ok(false),
        };
        Ok(LogPosition::parse(&trimmed).is_some_and(|trimmed| trimmed < from))
    }

    /// Applies the log from `from` (inclusive) on to `index`, in order: windows written are
    /// read again and inserted (replacing the index's copy), retention's cuts are applied.
    pub async fn replay_into(
        &self,
        index: &Arc<MomentIndex>,
        from: LogPosition,
    ) -> anyhow::Result<LoadReport> {
        let mut connection = self.redis.connection().await?;
        let mut report = LoadReport::default();
        let mut start = from.to_string();
        loop {
            let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
                .arg(self.log_key())
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(REPLAY_CHUNK)
                .query_async(&mut connection)
                .await?;
            let Some((last, _)) = entries.last() else {
                break;
            };
            start = format!("({last}");
            let mut written: Vec<String> = Vec::new();
            for (_, fields) in &entries {
                for pair in fields.chunks_exact(2) {
                    let Some((camera, at)) = pair[1].rsplit_once(' ') else {
                        continue;
                    };
                    let Ok(at_ms) = at.parse::<i64>() else {
                        continue;
                    };
                    match pair[0].as_str() {
                        "put" => written.push(self.window_key(camera, at_ms)),
                        "cut" => {
                            // Windows written before the cut go in first, so it removes them.
                            report.add(self.read_and_insert(index, &mut written).await?);
                            let (index, camera) = (index.clone(), camera.to_owned());
                            tokio::task::spawn_blocking(move || {
                                index.remove_before(&camera, at_ms)
                            })
                            .await?;
                        }
                        _ => {}
                    }
                }
            }
            report.add(self.read_and_insert(index, &mut written).await?);
            if entries.len() < REPLAY_CHUNK {
                break;
            }
        }
        Ok(report)
    }

    /// Reads the windows at `keys` (draining it) and inserts those still stored.
    async fn read_and_insert(
        &self,
        index: &Arc<MomentIndex>,
        keys: &mut Vec<String>,
    ) -> anyhow::Result<LoadReport> {
        let mut report = LoadReport::default();
        keys.sort();
        keys.dedup();
        let mut connection = self.redis.connection().await?;
        for chunk in keys.chunks(LOAD_CHUNK) {
            let values: Vec<Option<Vec<u8>>> = connection.mget(chunk).await?;
            report.add(insert_values(index, chunk.to_vec(), values).await?);
        }
        keys.clear();
        Ok(report)
    }

    /// Rewrites every window still in layout 1 (JSON, thumbnail in Redis) in layout 2
    /// (thumbnail on disk), in the background of a running service, and inserts each into
    /// `index` as rewritten (a saved index may hold an older copy). `progress` is told
    /// (rewritten, windows looked at, windows stored) after each chunk. Once every window
    /// has been looked at, `{prefix}:moments:layout` says so and later starts skip the scan.
    pub async fn migrate_layout(
        &self,
        index: &Arc<MomentIndex>,
        progress: impl Fn(usize, usize, usize),
    ) -> anyhow::Result<LoadReport> {
        let mut connection = self.redis.connection().await?;
        let layout: Option<String> = connection.get(self.layout_key()).await?;
        let mut report = LoadReport::default();
        if layout.as_deref() == Some("2") {
            return Ok(report);
        }
        let total = self.count().await?;
        let cameras: Vec<String> = connection.smembers(self.cameras_key()).await?;
        let (mut looked_at, mut migrated) = (0, 0);
        for camera in cameras {
            let starts: Vec<i64> = connection.zrange(self.timeline_key(&camera), 0, -1).await?;
            for chunk in starts.chunks(MIGRATE_CHUNK) {
                let keys: Vec<String> = chunk
                    .iter()
                    .map(|&start| self.window_key(&camera, start))
                    .collect();
                let values: Vec<Option<Vec<u8>>> = connection.mget(&keys).await?;
                let mut windows = Vec::new();
                for (key, value) in keys.iter().zip(values) {
                    match value.as_deref().map(stored::decode) {
                        Some(Ok((mut window, Layout::Json))) => {
                            stored::to_stored_precision(&mut window);
                            windows.push(window);
                        }
                        Some(Err(error)) => {
                            tracing::warn!(%key, %error, "an unreadable stored window is left as it is")
                        }
                        _ => {}
                    }
                }
                looked_at += chunk.len();
                if windows.is_empty() {
                    progress(migrated, looked_at, total);
                    continue;
                }
                let thumbnail_keys: Vec<String> = windows
                    .iter()
                    .map(|w| self.layout_1_thumbnail_key(&w.camera_id, w.start_ms()))
                    .collect();
                let thumbnails: Vec<Option<Vec<u8>>> = connection.mget(&thumbnail_keys).await?;
                let mut pipeline = redis::pipe();
                let mut rewritten = Vec::with_capacity(windows.len());
                for ((window, thumbnail_key), thumbnail) in
                    windows.into_iter().zip(&thumbnail_keys).zip(thumbnails)
                {
                    let (camera, start_ms) = (window.camera_id.as_str(), window.start_ms());
                    if let Some(jpeg) = thumbnail {
                        if let Err(error) = self.thumbnails.put(camera, start_ms, jpeg).await {
                            // Its thumbnail would be lost with the Redis key: left for the next start.
                            tracing::warn!(camera, %error, "a layout-1 window is left as it is");
                            continue;
                        }
                    }
                    pipeline
                        .cmd("EVAL")
                        .arg(MIGRATE_WINDOW)
                        .arg(3)
                        .arg(self.window_key(camera, start_ms))
                        .arg(thumbnail_key)
                        .arg(self.log_key())
                        .arg(stored::encode(&window))
                        .arg(format!("{camera} {start_ms}"))
                        .arg(LOG_LENGTH);
                    rewritten.push(window);
                }
                if rewritten.is_empty() {
                    continue;
                }
                let swapped: Vec<i64> = pipeline.query_async(&mut connection).await?;
                let rewritten: Vec<MomentWindow> = rewritten
                    .into_iter()
                    .zip(swapped)
                    .filter(|(_, swapped)| *swapped == 1)
                    .map(|(window, _)| window)
                    .collect();
                migrated += rewritten.len();
                report.add(insert_windows(index, rewritten).await?);
                progress(migrated, looked_at, total);
            }
        }
        let _: () = connection.set(self.layout_key(), "2").await?;
        Ok(report)
    }

    /// One stored window.
    pub async fn get(
        &self,
        camera: &str,
        start_ms: i64,
    ) -> redis::RedisResult<Option<MomentWindow>> {
        let mut connection = self.redis.connection().await?;
        let value: Option<Vec<u8>> = connection.get(self.window_key(camera, start_ms)).await?;
        Ok(value.and_then(|value| match stored::decode(&value) {
            Ok((window, _)) => Some(window),
            Err(error) => {
                tracing::warn!(camera, start_ms, %error, "an unreadable stored window");
                None
            }
        }))
    }

    /// A window's thumbnail: from the thumbnail store, or from Redis while the window is
    /// still in layout 1 (not migrated yet).
    pub async fn thumbnail(&self, camera: &str, start_ms: i64) -> anyhow::Result<Option<Vec<u8>>> {
        if let Some(jpeg) = self.thumbnails.get(camera, start_ms).await? {
            return Ok(Some(jpeg));
        }
        let mut connection = self.redis.connection().await?;
        Ok(connection
            .get(self.layout_1_thumbnail_key(camera, start_ms))
            .await?)
    }

    /// Deletes a camera's windows that start before `cutoff_ms`, with their thumbnails, and
    /// logs the cut for saved indexes; returns how many.
    pub async fn delete_before(&self, camera: &str, cutoff_ms: i64) -> anyhow::Result<usize> {
        let mut connection = self.redis.connection().await?;
        let timeline = self.timeline_key(camera);
        let starts: Vec<i64> = connection
            .zrangebyscore(&timeline, "-inf", format!("({cutoff_ms}"))
            .await?;
        for chunk in starts.chunks(LOAD_CHUNK) {
            let keys: Vec<String> = chunk
                .iter()
                .flat_map(|&start| {
                    [
                        self.window_key(camera, start),
                        self.layout_1_thumbnail_key(camera, start),
                    ]
                })
                .collect();
            let mut pipeline = redis::pipe();
            pipeline
                .atomic()
                .del(keys)
                .ignore()
                .zrem(&timeline, chunk)
                .ignore();
            pipeline.query_async::<()>(&mut connection).await?;
            self.thumbnails.delete(camera, chunk.to_vec()).await?;
        }
        if !starts.is_empty() {
            let mut pipeline = redis::pipe();
            append_to_log(
                &mut pipeline,
                &self.log_key(),
                "cut",
                &format!("{camera} {cutoff_ms}"),
            );
            pipeline.query_async::<()>(&mut connection).await?;
        }
        Ok(starts.len())
    }

    /// Cameras with stored windows.
    pub async fn cameras(&self) -> redis::RedisResult<Vec<String>> {
        let mut connection = self.redis.connection().await?;
        connection.smembers(self.cameras_key()).await
    }

    /// Follows windows other processes store and adds them to `index`, until the connection
    /// drops (the caller reconnects).
    pub async fn follow(&self, index: &Arc<MomentIndex>) -> anyhow::Result<()> {
        let mut pubsub = self.redis.client().get_async_pubsub().await?;
        pubsub.subscribe(self.channel()).await?;
        let mut notices = pubsub.into_on_message();
        while let Some(message) = notices.next().await {
            let Ok(payload) = message.get_payload::<String>() else {
                continue;
            };
            let Some((camera, start)) = payload.rsplit_once(' ') else {
                continue;
            };
            let Ok(start_ms) = start.parse::<i64>() else {
                continue;
            };
            // Another worker's camera (scale-out) would be read only to be refused.
            if index.contains(camera, start_ms) || index.excludes(camera) {
                continue;
            }
            if let Some(window) = self.get(camera, start_ms).await? {
                let index = index.clone();
                tokio::task::spawn_blocking(move || index.insert(&window)).await??;
            }
        }
        Ok(())
    }
}

/// Adds an entry to the change log, trimming it to about [`LOG_LENGTH`] (`~`: whole nodes,
/// cheaply).
fn append_to_log(pipeline: &mut redis::Pipeline, log: &str, operation: &str, entry: &str) {
    pipeline
        .cmd("XADD")
        .arg(log)
        .arg("MAXLEN")
        .arg("~")
        .arg(LOG_LENGTH)
        .arg("*")
        .arg(operation)
        .arg(entry)
        .ignore();
}

/// Decodes stored values (skipping absent and unreadable ones) and inserts them.
async fn insert_values(
    index: &Arc<MomentIndex>,
    keys: Vec<String>,
    values: Vec<Option<Vec<u8>>>,
) -> anyhow::Result<LoadReport> {
    let index = index.clone();
    tokio::task::spawn_blocking(move || {
        let mut windows = Vec::with_capacity(keys.len());
        for (key, value) in keys.iter().zip(values) {
            let Some(value) = value else { continue };
            match stored::decode(&value) {
                Ok((window, _)) => windows.push(window),
                Err(error) => tracing::warn!(%key, %error, "skipping an unreadable stored window"),
            }
        }
        insert_blocking(&index, windows)
    })
    .await?
}

async fn insert_windows(
    index: &Arc<MomentIndex>,
    windows: Vec<MomentWindow>,
) -> anyhow::Result<LoadReport> {
    let index = index.clone();
    tokio::task::spawn_blocking(move || insert_blocking(&index, windows)).await?
}

fn insert_blocking(index: &MomentIndex, windows: Vec<MomentWindow>) -> anyhow::Result<LoadReport> {
    index.insert_many(&windows)?;
    Ok(LoadReport {
        loaded: windows.len(),
        outdated: windows
            .iter()
            .filter(|w| !index.models().is_current(w))
            .map(|w| (w.camera_id.clone(), w.start_ms()))
            .collect(),
    })
}

/// How far the load of the stored windows into the index has got, for `/readyz` and for
/// queries that arrive before it is done.
#[derive(Debug, Default)]
pub struct LoadProgress {
    loaded: AtomicUsize,
    total: AtomicUsize,
    running: AtomicBool,
}

impl LoadProgress {
    /// The load begins; its total is not known yet.
    pub fn begin(&self) {
        self.running.store(true, Ordering::Release);
    }

    pub fn set_total(&self, total: usize) {
        self.total.store(total, Ordering::Relaxed);
    }

    fn advance(&self, windows: usize) {
        self.loaded.fetch_add(windows, Ordering::Relaxed);
    }

    /// The load is over (finished, or failed and logged): searches see what is loaded.
    pub fn finish(&self) {
        self.running.store(false, Ordering::Release);
    }

    /// `Some((loaded, total))` while the load is running.
    pub fn loading(&self) -> Option<(usize, usize)> {
        if !self.running.load(Ordering::Acquire) {
            return None;
        }
        let total = self.total.load(Ordering::Relaxed);
        Some((self.loaded.load(Ordering::Relaxed).min(total), total))
    }
}

/// What [`MomentStore::load_into`] (or a replay, or the migration) put into the index.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub loaded: usize,
    /// (camera, start ms) of the windows embedded by a model the index does not search.
    pub outdated: Vec<(String, i64)>,
}

impl LoadReport {
    fn add(&mut self, other: LoadReport) {
        self.loaded += other.loaded;
        self.outdated.extend(other.outdated);
    }
}

/// A member of a camera's recordings set (see [`MomentStore::put_recording`]).
fn parse_recording(member: &str) -> Option<Recording> {
    let (span, path) = member.split_once(' ')?;
    let (start, end) = match span.split_once('-') {
        Some((start, end)) => (start, Some(end.parse().ok()?)),
        None => (span, None),
    };
    Some(Recording {
        start_ms: start.parse().ok()?,
        end_ms: end,
        path: std::path::PathBuf::from(path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn recording(start_ms: i64, end_ms: Option<i64>, path: &str) -> Recording {
        Recording {
            start_ms,
            end_ms,
            path: PathBuf::from(path),
        }
    }

    #[test]
    fn recordings_are_read_with_and_without_their_end() {
        assert_eq!(
            parse_recording("1000-7000 /videos/gate 3.mp4"),
            Some(recording(1000, Some(7000), "/videos/gate 3.mp4"))
        );
        assert_eq!(
            parse_recording("1000 /videos/gate 3.mp4"),
            Some(recording(1000, None, "/videos/gate 3.mp4"))
        );
        assert_eq!(parse_recording("garbage"), None);
    }

    #[test]
    fn a_moment_after_a_recording_ends_has_no_clip() {
        let recordings = vec![recording(1_000, Some(3_000), "/a.mp4")];
        assert!(recording_at(&recordings, 2_999).is_some());
        assert_eq!(
            recording_at(&recordings, 3_000),
            None,
            "live video after it"
        );
    }

    #[test]
    fn a_moment_plays_from_the_latest_recording_that_began_before_it() {
        let recordings = vec![
            recording(1_000, None, "/a.mp4"),
            recording(5_000, None, "/b.mp4"),
        ];
        assert_eq!(recording_at(&recordings, 500), None);
        assert_eq!(
            recording_at(&recordings, 1_000),
            Some((PathBuf::from("/a.mp4"), 1_000))
        );
        assert_eq!(
            recording_at(&recordings, 4_999),
            Some((PathBuf::from("/a.mp4"), 1_000))
        );
        assert_eq!(
            recording_at(&recordings, 9_000),
            Some((PathBuf::from("/b.mp4"), 5_000))
        );
    }
}

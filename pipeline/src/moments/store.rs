//! The durable moment store in Redis, and its change feed.
//!
//! Keys (prefix `redis.key_prefix`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{prefix}:moments:cameras` | set | cameras with windows |
//! | `{prefix}:moments:{camera}` | sorted set | window starts (ms), scored by start: time order |
//! | `{prefix}:moments:{camera}:{start_ms}` | string | the window (`schemas/moment-window.v1.json`) |
//! | `{prefix}:moments:{camera}:{start_ms}:jpg` | string | its thumbnail (JPEG) |
//! | `{prefix}:moments:{camera}:recording:{id}` | string | how far `argus index` got in a recording |
//! | `{prefix}:moments:{camera}:recordings` | sorted set | `{start_ms} {path}` of the camera's recordings, scored by start: clips |
//!
//! Each window is written atomically (MULTI) with a notice on channel `{prefix}:moments`
//! (`{camera} {start_ms}`), so every Argus instance — and one running `argus index` beside
//! the service — adds it to its in-memory index within milliseconds.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use redis::AsyncCommands;

use super::index::MomentIndex;
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

#[derive(Clone)]
pub struct MomentStore {
    redis: RedisState,
}

impl MomentStore {
    pub fn new(redis: RedisState) -> Self {
        Self { redis }
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

    fn thumbnail_key(&self, camera: &str, start_ms: i64) -> String {
        format!("{}:moments:{camera}:{start_ms}:jpg", self.prefix())
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

    /// Stores a window and its thumbnail. While Redis is away the write waits in the retry
    /// buffer and is replayed in order.
    pub async fn put(&self, window: &MomentWindow, json: &str, thumbnail: Option<&[u8]>) {
        let (camera, start_ms) = (window.camera_id.as_str(), window.start_ms());
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .sadd(self.cameras_key(), camera)
            .ignore()
            .zadd(self.timeline_key(camera), start_ms, start_ms)
            .ignore()
            .set(self.window_key(camera, start_ms), json)
            .ignore();
        if let Some(jpeg) = thumbnail {
            pipeline
                .set(self.thumbnail_key(camera, start_ms), jpeg)
                .ignore();
        }
        pipeline
            .publish(self.channel(), format!("{camera} {start_ms}"))
            .ignore();
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

    /// Loads every stored window into `index`, counting them in `progress` as they go in:
    /// how many, and which were embedded by models other than the index's (see
    /// [`super::reembed`]). Parsing and HNSW insertion are CPU work of seconds to minutes,
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
            let starts: Vec<i64> = connection.zrange(self.timeline_key(&camera), 0, -1).await?;
            for chunk in starts.chunks(LOAD_CHUNK) {
                let keys: Vec<String> = chunk
                    .iter()
                    .map(|&start| self.window_key(&camera, start))
                    .collect();
                let values: Vec<Option<String>> = connection.mget(&keys).await?;
                let index = index.clone();
                let (loaded, outdated) = tokio::task::spawn_blocking(move || {
                    let mut windows = Vec::with_capacity(keys.len());
                    for (key, value) in keys.iter().zip(values) {
                        let Some(json) = value else { continue };
                        match serde_json::from_str::<MomentWindow>(&json) {
                            Ok(window) => windows.push(window),
                            Err(error) => {
                                tracing::warn!(%key, %error, "skipping an unreadable stored window")
                            }
                        }
                    }
                    index.insert_many(&windows)?;
                    let outdated: Vec<(String, i64)> = windows
                        .iter()
                        .filter(|w| !index.models().is_current(w))
                        .map(|w| (w.camera_id.clone(), w.start_ms()))
                        .collect();
                    anyhow::Ok((windows.len(), outdated))
                })
                .await??;
                report.loaded += loaded;
                report.outdated.extend(outdated);
                progress.advance(chunk.len());
            }
        }
        Ok(report)
    }

    /// One stored window.
    pub async fn get(
        &self,
        camera: &str,
        start_ms: i64,
    ) -> redis::RedisResult<Option<MomentWindow>> {
        let mut connection = self.redis.connection().await?;
        let json: Option<String> = connection.get(self.window_key(camera, start_ms)).await?;
        Ok(json.and_then(|json| serde_json::from_str(&json).ok()))
    }

    pub async fn thumbnail(
        &self,
        camera: &str,
        start_ms: i64,
    ) -> redis::RedisResult<Option<Vec<u8>>> {
        let mut connection = self.redis.connection().await?;
        connection.get(self.thumbnail_key(camera, start_ms)).await
    }

    /// Deletes a camera's windows that start before `cutoff_ms`; returns how many.
    pub async fn delete_before(&self, camera: &str, cutoff_ms: i64) -> redis::RedisResult<usize> {
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
                        self.thumbnail_key(camera, start),
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
            if index.contains(camera, start_ms) {
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

/// What [`MomentStore::load_into`] found.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub loaded: usize,
    /// (camera, start ms) of the windows embedded by a model the index does not search.
    pub outdated: Vec<(String, i64)>,
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

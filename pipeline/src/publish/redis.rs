//! Redis: the latest result per camera (a key) and a notification per result (pub/sub).
//!
//! Keys: `{prefix}:camera:{camera_id}:latest` holds the newest frame result as JSON;
//! channel `{prefix}:camera:{camera_id}` carries each one as it is written.
//!
//! Redis going away must not stop analysis nor lose state: a write that fails waits in a
//! bounded retry buffer, in order, and a background task replays the buffer once Redis answers
//! again. Writes that only matter in their newest form (a camera's latest state) replace their
//! older buffered version instead of queueing behind it, so an outage of any length costs at
//! most one buffered write per camera for live state.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use tokio::sync::Notify;

use crate::config::RedisConfig;
use crate::metrics::Metrics;

/// One write: a pipeline run atomically, and for writes whose newest version supersedes older
/// ones, the key they coalesce on.
#[derive(Clone)]
struct PendingWrite {
    coalesce: Option<String>,
    pipeline: redis::Pipeline,
}

/// Writes live state to Redis; cheap to clone.
#[derive(Clone)]
pub struct RedisState {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
    prefix: String,
    pending: Mutex<VecDeque<PendingWrite>>,
    capacity: usize,
    retry: Notify,
    metrics: Metrics,
}

impl RedisState {
    /// Checks the URL (`redis://`, `rediss://` for TLS, with optional user and password) and
    /// starts the retry task; connects on first use, so Argus starts while Redis is away.
    pub fn new(config: &RedisConfig, metrics: Metrics) -> Result<Self, redis::RedisError> {
        let state = Self {
            inner: Arc::new(Inner {
                client: redis::Client::open(config.url.as_str())?,
                connection: tokio::sync::Mutex::new(None),
                prefix: config.key_prefix.clone(),
                pending: Mutex::new(VecDeque::new()),
                capacity: config.retry_buffer.max(1),
                retry: Notify::new(),
                metrics,
            }),
        };
        tokio::spawn(replay(Arc::downgrade(&state.inner)));
        Ok(state)
    }

    pub fn latest_key(&self, camera_id: &str) -> String {
        format!("{}:camera:{camera_id}:latest", self.inner.prefix)
    }

    pub fn channel(&self, camera_id: &str) -> String {
        format!("{}:camera:{camera_id}", self.inner.prefix)
    }

    /// Stores `json` as the camera's latest state and notifies subscribers. While Redis is
    /// unreachable the write is buffered and replayed later; this never blocks analysis.
    pub async fn put_latest(&self, camera_id: &str, json: &str) {
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .set(self.latest_key(camera_id), json)
            .ignore()
            .publish(self.channel(camera_id), json)
            .ignore();
        self.write(PendingWrite {
            coalesce: Some(self.latest_key(camera_id)),
            pipeline,
        })
        .await;
    }

    /// Every result written from now on, as (camera id, JSON), from the Redis channels: the
    /// console's live feed. Each subscriber holds its own Redis connection.
    pub async fn subscribe_results(
        &self,
    ) -> redis::RedisResult<impl futures::Stream<Item = (String, String)>> {
        use futures::StreamExt;
        let mut pubsub = self.inner.client.get_async_pubsub().await?;
        let prefix = format!("{}:camera:", self.inner.prefix);
        pubsub.psubscribe(format!("{prefix}*")).await?;
        Ok(pubsub.into_on_message().filter_map(move |message| {
            let camera = message
                .get_channel_name()
                .strip_prefix(&prefix)
                .map(str::to_owned);
            let payload: Option<String> = message.get_payload().ok();
            async move { camera.zip(payload) }
        }))
    }

    /// Runs `pipeline` (atomic if built so) in order with every other write; while Redis is
    /// unreachable it waits in the retry buffer like them.
    pub async fn write_pipeline(&self, pipeline: redis::Pipeline) {
        self.write(PendingWrite {
            coalesce: None,
            pipeline,
        })
        .await;
    }

    /// A connection for reads; fails within seconds while Redis is away.
    pub async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        self.inner.connection().await
    }

    /// The client, for subscriptions (each holds a connection of its own).
    pub fn client(&self) -> &redis::Client {
        &self.inner.client
    }

    /// What every key Argus writes starts with (`redis.key_prefix`).
    pub fn key_prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Writes buffered for retry.
    pub fn pending(&self) -> usize {
        self.inner.pending.lock().expect("redis buffer lock").len()
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut connection = self.inner.connection().await?;
        connection.ping::<String>().await.map(|_| ())
    }

    async fn write(&self, write: PendingWrite) {
        // Behind earlier failed writes, a new one waits its turn so that order holds.
        if self.pending() == 0 {
            match self.inner.execute(&write.pipeline).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%error, "Redis unavailable: writes are buffered and retried")
                }
            }
        }
        self.inner.buffer(write);
    }
}

impl Inner {
    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        // Short timeouts: a dead Redis must fail a write quickly so it is buffered, not hang it.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(self.client.clone(), config).await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    async fn execute(&self, pipeline: &redis::Pipeline) -> redis::RedisResult<()> {
        let started = Instant::now();
        let result = async {
            let mut connection = self.connection().await?;
            pipeline.query_async::<()>(&mut connection).await
        }
        .await;
        match &result {
            Ok(()) => self
                .metrics
                .publish_latency
                .with_label_values(&["redis"])
                .observe(started.elapsed().as_secs_f64()),
            Err(_) => self.metrics.errors.with_label_values(&["redis"]).inc(),
        }
        result
    }

    fn buffer(&self, write: PendingWrite) {
        let mut pending = self.pending.lock().expect("redis buffer lock");
        if let Some(key) = &write.coalesce {
            // Replaced, not moved: the newest version keeps the older one's place in line.
            if let Some(older) = pending
                .iter_mut()
                .rev()
                .find(|older| older.coalesce.as_ref() == Some(key))
            {
                *older = write;
                return;
            }
        }
        if pending.len() >= self.capacity {
            pending.pop_front();
            self.metrics.redis_writes_dropped.inc();
            tracing::error!(
                capacity = self.capacity,
                "the Redis retry buffer is full (redis.retry_buffer): dropped its oldest write"
            );
        }
        pending.push_back(write);
        self.metrics.redis_pending_writes.set(pending.len() as i64);
        self.retry.notify_one();
    }
}

/// Replays buffered writes, oldest first, backing off while Redis is away.
async fn replay(inner: Weak<Inner>) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let Some(state) = inner.upgrade() else { return };
        let next = state
            .pending
            .lock()
            .expect("redis buffer lock")
            .front()
            .cloned();
        let Some(write) = next else {
            let _ = tokio::time::timeout(Duration::from_secs(1), state.retry.notified()).await;
            continue;
        };
        match state.execute(&write.pipeline).await {
            Ok(()) => {
                backoff = Duration::from_millis(250);
                let mut pending = state.pending.lock().expect("redis buffer lock");
                // The front may have been replaced by a newer version meanwhile: then it stays.
                let unchanged = pending.front().is_some_and(|front| {
                    front.coalesce == write.coalesce
                        && front.pipeline.get_packed_pipeline()
                            == write.pipeline.get_packed_pipeline()
                });
                if unchanged {
                    pending.pop_front();
                }
                state.metrics.redis_pending_writes.set(pending.len() as i64);
                if pending.is_empty() {
                    tracing::info!("Redis is back: buffered writes replayed");
                }
            }
            Err(error) => {
                tracing::debug!(%error, retry_in_ms = backoff.as_millis() as u64, "Redis still unavailable");
                drop(state);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            key_prefix: "argus".into(),
            retry_buffer: 3,
        }
    }

    #[tokio::test]
    async fn tls_and_password_urls_are_understood() {
        for url in [
            "rediss://:pw@redis.example:6380/0",
            "redis://user:pw@127.0.0.1:6379/2",
        ] {
            assert!(
                RedisState::new(&config(url), Metrics::new()).is_ok(),
                "{url}"
            );
        }
    }

    #[tokio::test]
    async fn the_retry_buffer_keeps_one_latest_state_per_camera_and_stays_bounded() {
        // Nothing listens on port 1: every write is buffered.
        let state = RedisState::new(&config("redis://127.0.0.1:1"), Metrics::new()).unwrap();
        for n in 0..5 {
            state.put_latest("gate3", &format!("{{\"n\":{n}}}")).await;
        }
        assert_eq!(
            state.pending(),
            1,
            "newer states of one camera replace older ones"
        );
        for camera in ["a", "b", "c", "d"] {
            state.put_latest(camera, "{}").await;
        }
        assert_eq!(state.pending(), 3, "bounded by redis.retry_buffer");
        assert_eq!(state.inner.metrics.redis_writes_dropped.get(), 2);
    }
}

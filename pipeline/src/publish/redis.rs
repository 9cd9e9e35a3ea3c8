//! Redis: the latest result per camera (a key) and a notification per result (pub/sub).
//!
//! Keys: `{prefix}:camera:{camera_id}:latest` holds the newest frame result as JSON;
//! channel `{prefix}:camera:{camera_id}` carries each one as it is written.

use std::time::Instant;

use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use tokio::sync::Mutex;

use crate::config::RedisConfig;
use crate::metrics::Metrics;

/// Writes live state to Redis, connecting (and reconnecting) on demand so that Argus starts
/// and keeps analysing while Redis is away.
pub struct RedisState {
    client: redis::Client,
    connection: Mutex<Option<ConnectionManager>>,
    prefix: String,
    metrics: Metrics,
}

impl RedisState {
    pub fn new(config: &RedisConfig, metrics: Metrics) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(config.url.as_str())?,
            connection: Mutex::new(None),
            prefix: config.key_prefix.clone(),
            metrics,
        })
    }

    pub fn latest_key(&self, camera_id: &str) -> String {
        format!("{}:camera:{camera_id}:latest", self.prefix)
    }

    pub fn channel(&self, camera_id: &str) -> String {
        format!("{}:camera:{camera_id}", self.prefix)
    }

    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let connection = ConnectionManager::new(self.client.clone()).await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Stores `json` as the camera's latest state and notifies subscribers.
    pub async fn put_latest(&self, camera_id: &str, json: &str) -> redis::RedisResult<()> {
        let started = Instant::now();
        let result = async {
            let mut connection = self.connection().await?;
            redis::pipe()
                .atomic()
                .set(self.latest_key(camera_id), json)
                .ignore()
                .publish(self.channel(camera_id), json)
                .ignore()
                .query_async::<()>(&mut connection)
                .await
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

    /// Checks that Redis answers.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut connection = self.connection().await?;
        connection.ping::<String>().await.map(|_| ())
    }
}

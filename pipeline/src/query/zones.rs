//! Zones and lines drawn through the API, kept in Redis so that they survive a restart.
//!
//! The book they go in ([`ZoneBook`]) lives in `objects/`, below the objects stage that reads
//! it; this is the thin layer that stores it. A change is written to Redis first and enters
//! the book only once Redis took it: a change Redis refused is refused to the user (503), not
//! kept in memory to vanish at the next restart.
//!
//! Redis hashes `{prefix}:objects:drawn:zones` and `{prefix}:objects:drawn:lines`, field
//! `{camera}/{id}` (ids have no `/`), value the zone or line as JSON.

use std::collections::HashMap;
use std::sync::Arc;

use crate::objects::book::{BookError, Shape, ZoneBook};
use crate::objects::zones::{LineConfig, ZoneConfig};
use crate::publish::RedisState;

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum ZoneStoreError {
    #[error(transparent)]
    Refused(#[from] BookError),
    #[error("Redis is not reachable, nothing was changed: {0}")]
    Unavailable(#[from] redis::RedisError),
}

/// The zone book and its Redis copy; cheap to clone.
#[derive(Clone)]
pub struct ZoneStore {
    book: ZoneBook,
    redis: RedisState,
    zones_key: String,
    lines_key: String,
    /// Held from the Redis write to the book's change, so that two changes to the same zone
    /// land in both in the same order.
    writing: Arc<tokio::sync::Mutex<()>>,
}

impl ZoneStore {
    /// The book with the configured zones and lines, and those stored through the API (a
    /// stored one that is no longer valid, or now configured, is skipped with a warning).
    pub async fn load(zones: &[ZoneConfig], lines: &[LineConfig], redis: RedisState) -> Self {
        let prefix = redis.key_prefix();
        let store = Self {
            book: ZoneBook::new(zones, lines),
            zones_key: format!("{prefix}:objects:drawn:zones"),
            lines_key: format!("{prefix}:objects:drawn:lines"),
            redis,
            writing: Default::default(),
        };
        for (field, json) in store.stored(&store.zones_key).await {
            let loaded = serde_json::from_str::<ZoneConfig>(&json)
                .map_err(|e| e.to_string())
                .and_then(|zone| store.book.put_zone(zone).map_err(|e| e.to_string()));
            if let Err(error) = loaded {
                tracing::warn!(zone = %field, %error, "stored zone skipped");
            }
        }
        for (field, json) in store.stored(&store.lines_key).await {
            let loaded = serde_json::from_str::<LineConfig>(&json)
                .map_err(|e| e.to_string())
                .and_then(|line| store.book.put_line(line).map_err(|e| e.to_string()));
            if let Err(error) = loaded {
                tracing::warn!(line = %field, %error, "stored line skipped");
            }
        }
        store
    }

    /// The shared book the objects stage reads.
    pub fn book(&self) -> &ZoneBook {
        &self.book
    }

    /// Adds or replaces a zone drawn through the API.
    pub async fn put_zone(&self, zone: ZoneConfig) -> Result<(), ZoneStoreError> {
        let _writing = self.writing.lock().await;
        self.book.check_zone(&zone)?;
        let json = serde_json::to_string(&zone).expect("zones serialise");
        self.hset(&self.zones_key, &field(&zone.camera, &zone.id), json)
            .await?;
        self.book.put_zone(zone)?;
        Ok(())
    }

    /// Adds or replaces a line drawn through the API.
    pub async fn put_line(&self, line: LineConfig) -> Result<(), ZoneStoreError> {
        let _writing = self.writing.lock().await;
        self.book.check_line(&line)?;
        let json = serde_json::to_string(&line).expect("lines serialise");
        self.hset(&self.lines_key, &field(&line.camera, &line.id), json)
            .await?;
        self.book.put_line(line)?;
        Ok(())
    }

    /// Removes a zone drawn through the API; false when the camera has none with that id.
    pub async fn remove_zone(&self, camera: &str, id: &str) -> Result<bool, ZoneStoreError> {
        let _writing = self.writing.lock().await;
        self.book.check_not_configured(camera, Shape::Zone, id)?;
        self.hdel(&self.zones_key, &field(camera, id)).await?;
        Ok(self.book.remove_zone(camera, id)?)
    }

    /// Removes a line drawn through the API; false when the camera has none with that id.
    pub async fn remove_line(&self, camera: &str, id: &str) -> Result<bool, ZoneStoreError> {
        let _writing = self.writing.lock().await;
        self.book.check_not_configured(camera, Shape::Line, id)?;
        self.hdel(&self.lines_key, &field(camera, id)).await?;
        Ok(self.book.remove_line(camera, id)?)
    }

    async fn hset(&self, key: &str, field: &str, json: String) -> redis::RedisResult<()> {
        let mut connection = self.redis.connection().await?;
        redis::AsyncCommands::hset(&mut connection, key, field, json).await
    }

    async fn hdel(&self, key: &str, field: &str) -> redis::RedisResult<()> {
        let mut connection = self.redis.connection().await?;
        redis::AsyncCommands::hdel(&mut connection, key, field).await
    }

    async fn stored(&self, key: &str) -> HashMap<String, String> {
        let stored: redis::RedisResult<HashMap<String, String>> = async {
            let mut connection = self.redis.connection().await?;
            redis::AsyncCommands::hgetall(&mut connection, key).await
        }
        .await;
        stored.unwrap_or_else(|error| {
            tracing::error!(%error, key, "zones and lines drawn through the API could not be loaded from Redis");
            HashMap::new()
        })
    }
}

fn field(camera: &str, id: &str) -> String {
    format!("{camera}/{id}")
}

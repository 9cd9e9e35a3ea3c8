//! Starts, changes and stops streams at run time (HTTP API, config reload) without touching
//! the streams that are not involved.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

use super::runner::{run_stream, StreamContext};
use crate::config::StreamConfig;
use crate::redact::redact_text;
use crate::source::Source;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ManageError {
    #[error("stream `{0}` already exists")]
    Exists(String),
    #[error("no stream with id `{0}`")]
    NotFound(String),
    #[error("invalid stream: {0}")]
    Invalid(String),
}

struct Running {
    config: StreamConfig,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Owns every stream task; cheap to clone.
#[derive(Clone)]
pub struct StreamManager {
    context: StreamContext,
    running: Arc<Mutex<HashMap<String, Running>>>,
}

impl StreamManager {
    pub fn new(context: StreamContext) -> Self {
        let manager = Self {
            context,
            running: Default::default(),
        };
        let registry = manager.context.registry.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                registry.update_rates();
            }
        });
        manager
    }

    /// Starts a stream from the configuration file. Problems with it (a missing file, a bad
    /// URI) fail that stream visibly instead of refusing the whole configuration.
    pub async fn start(&self, config: StreamConfig) -> Result<(), ManageError> {
        let mut running = self.running.lock().await;
        if running.contains_key(&config.id) {
            return Err(ManageError::Exists(config.id));
        }
        self.context
            .registry
            .insert(&config.id, redact_text(&config.uri));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run_stream(self.context.clone(), config.clone(), stopped));
        running.insert(config.id.clone(), Running { config, stop, task });
        Ok(())
    }

    /// Adds a stream through the API: checked first, so the caller gets the error.
    pub async fn add(&self, config: StreamConfig) -> Result<(), ManageError> {
        validate(&config)?;
        self.start(config).await
    }

    /// Stops a stream and forgets it.
    pub async fn remove(&self, id: &str) -> Result<(), ManageError> {
        let stream = self
            .running
            .lock()
            .await
            .remove(id)
            .ok_or_else(|| ManageError::NotFound(id.to_owned()))?;
        let _ = stream.stop.send(true);
        let _ = stream.task.await;
        self.context.registry.remove(id);
        tracing::info!(stream = %id, "stream removed");
        Ok(())
    }

    /// Replaces a stream's settings (restarting only it); unchanged settings do nothing.
    pub async fn replace(&self, config: StreamConfig) -> Result<(), ManageError> {
        validate(&config)?;
        let current = self
            .config(&config.id)
            .await
            .ok_or_else(|| ManageError::NotFound(config.id.clone()))?;
        if current == config {
            return Ok(());
        }
        self.remove(&config.id).await?;
        self.start(config).await
    }

    /// Runs `config`: starts it if absent, restarts it if changed, leaves it if the same.
    pub async fn upsert(&self, config: StreamConfig) -> Result<(), ManageError> {
        validate(&config)?;
        match self.config(&config.id).await {
            Some(current) if current == config => Ok(()),
            Some(_) => {
                self.remove(&config.id).await?;
                self.start(config).await
            }
            None => self.start(config).await,
        }
    }

    /// Makes the running set equal `wanted`: removes, restarts and adds only what differs.
    pub async fn reload(&self, wanted: Vec<StreamConfig>) {
        let current: HashMap<String, StreamConfig> = self
            .running
            .lock()
            .await
            .iter()
            .map(|(id, running)| (id.clone(), running.config.clone()))
            .collect();
        for id in current.keys() {
            if !wanted.iter().any(|stream| &stream.id == id) {
                let _ = self.remove(id).await;
            }
        }
        for stream in wanted {
            match current.get(&stream.id) {
                Some(existing) if *existing == stream => {}
                Some(_) => {
                    let _ = self.remove(&stream.id).await;
                    let _ = self.start(stream).await;
                }
                None => {
                    let _ = self.start(stream).await;
                }
            }
        }
    }

    pub async fn config(&self, id: &str) -> Option<StreamConfig> {
        self.running
            .lock()
            .await
            .get(id)
            .map(|running| running.config.clone())
    }

    /// Stops every stream and waits for them.
    pub async fn stop_all(&self) {
        let streams: Vec<Running> = self
            .running
            .lock()
            .await
            .drain()
            .map(|(_, running)| running)
            .collect();
        for stream in &streams {
            let _ = stream.stop.send(true);
        }
        for stream in streams {
            let _ = stream.task.await;
        }
    }
}

/// Checks a stream definition the way the API does before anything is started or published.
pub fn validate(config: &StreamConfig) -> Result<(), ManageError> {
    if let Some(problem) = config.problems() {
        return Err(ManageError::Invalid(problem));
    }
    Source::parse(&config.uri)
        .map(|_| ())
        .map_err(|error| ManageError::Invalid(error.to_string()))
}

//! Every stream's status: the stream tasks write it, the API reads it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

use super::StreamState;
use crate::metrics::Metrics;

/// What the API shows about a stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamStatus {
    pub id: String,
    /// The source with any password removed.
    pub source: String,
    pub state: StreamState,
    /// The last error; kept while reconnecting so operators see why.
    pub error: Option<String>,
    /// The video decoder in use (e.g. `avdec_h264`; hardware decoders when installed).
    pub decoder: Option<String>,
    /// Decoded frames per second, over the last few seconds.
    pub fps_in: f64,
    /// Analysed frames per second, over the last few seconds.
    pub fps_out: f64,
    pub frames_decoded: u64,
    pub frames_analysed: u64,
    pub frames_dropped: u64,
    pub reconnects: u64,
    pub last_frame_time: Option<DateTime<Utc>>,
}

struct Entry {
    status: StreamStatus,
    /// Counters and time at the last rate update.
    rate_base: (u64, u64, Instant),
    /// The latest analysed frame as a small JPEG, for the console.
    thumbnail: Option<Arc<Vec<u8>>>,
}

#[derive(Clone)]
pub struct StreamRegistry {
    entries: Arc<RwLock<BTreeMap<String, Entry>>>,
    metrics: Metrics,
    changed: watch::Sender<()>,
}

impl StreamRegistry {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            entries: Default::default(),
            metrics,
            changed: watch::channel(()).0,
        }
    }

    /// Registers a stream as starting, before its task runs, so that "every stream has
    /// ended" can never be true of streams that have not begun.
    pub fn insert(&self, id: &str, source: String) {
        let status = StreamStatus {
            id: id.to_owned(),
            source,
            state: StreamState::Starting,
            error: None,
            decoder: None,
            fps_in: 0.0,
            fps_out: 0.0,
            frames_decoded: 0,
            frames_analysed: 0,
            frames_dropped: 0,
            reconnects: 0,
            last_frame_time: None,
        };
        let (decoded, analysed) = self.counters(id);
        // Every per-stream series exists from the start (at 0), so dashboards and alert rules
        // see a stream before its first drop or reconnect.
        self.metrics.frames_dropped.with_label_values(&[id]);
        self.metrics.reconnects.with_label_values(&[id]);
        self.entries.write().expect("registry lock").insert(
            id.to_owned(),
            Entry {
                status,
                rate_base: (decoded, analysed, Instant::now()),
                thumbnail: None,
            },
        );
        self.export_state(id, Some(StreamState::Starting));
    }

    /// Forgets a removed stream, and its state series.
    pub fn set_thumbnail(&self, id: &str, jpeg: Vec<u8>) {
        if let Some(entry) = self.entries.write().expect("registry lock").get_mut(id) {
            entry.thumbnail = Some(Arc::new(jpeg));
        }
    }

    pub fn thumbnail(&self, id: &str) -> Option<Arc<Vec<u8>>> {
        self.entries
            .read()
            .expect("registry lock")
            .get(id)
            .and_then(|entry| entry.thumbnail.clone())
    }

    pub fn remove(&self, id: &str) {
        self.entries.write().expect("registry lock").remove(id);
        self.export_state(id, None);
    }

    pub fn state(&self, id: &str) -> Option<StreamState> {
        self.entries
            .read()
            .expect("registry lock")
            .get(id)
            .map(|e| e.status.state)
    }

    pub(super) fn set_state(&self, id: &str, state: StreamState, error: Option<String>) {
        if let Some(entry) = self.entries.write().expect("registry lock").get_mut(id) {
            entry.status.state = state;
            if error.is_some() {
                entry.status.error = error;
            }
        }
        self.export_state(id, Some(state));
    }

    pub(super) fn update(&self, id: &str, change: impl FnOnce(&mut StreamStatus)) {
        if let Some(entry) = self.entries.write().expect("registry lock").get_mut(id) {
            change(&mut entry.status);
        }
    }

    fn export_state(&self, id: &str, state: Option<StreamState>) {
        for candidate in StreamState::ALL {
            let gauge = self
                .metrics
                .stream_state
                .with_label_values(&[id, candidate.as_str()]);
            gauge.set(i64::from(Some(candidate) == state));
        }
        self.changed.send_replace(());
    }

    fn counters(&self, id: &str) -> (u64, u64) {
        (
            self.metrics.frames_decoded.with_label_values(&[id]).get(),
            self.metrics.frames_analysed.with_label_values(&[id]).get(),
        )
    }

    /// Recomputes fps in/out from the counters since the previous call.
    pub fn update_rates(&self) {
        let mut entries = self.entries.write().expect("registry lock");
        for (id, entry) in entries.iter_mut() {
            let (decoded, analysed) = self.counters(id);
            let (base_decoded, base_analysed, since) = entry.rate_base;
            let seconds = since.elapsed().as_secs_f64().max(1e-3);
            entry.status.fps_in = (decoded.saturating_sub(base_decoded)) as f64 / seconds;
            entry.status.fps_out = (analysed.saturating_sub(base_analysed)) as f64 / seconds;
            entry.rate_base = (decoded, analysed, Instant::now());
        }
    }

    /// Current statuses, counters read from the metrics.
    pub fn list(&self) -> Vec<StreamStatus> {
        let entries = self.entries.read().expect("registry lock");
        entries
            .values()
            .map(|entry| {
                let mut status = entry.status.clone();
                let id = [status.id.as_str()];
                status.frames_decoded = self.metrics.frames_decoded.with_label_values(&id).get();
                status.frames_analysed = self.metrics.frames_analysed.with_label_values(&id).get();
                status.frames_dropped = self.metrics.frames_dropped.with_label_values(&id).get();
                status.reconnects = self.metrics.reconnects.with_label_values(&id).get();
                status
            })
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<StreamStatus> {
        self.list().into_iter().find(|status| status.id == id)
    }

    /// Resolves once every stream is finished, failed or stopped.
    pub async fn all_done(&self) {
        let mut changed = self.changed.subscribe();
        loop {
            if self.list().iter().all(|status| status.state.is_terminal()) {
                return;
            }
            if changed.changed().await.is_err() {
                return;
            }
        }
    }
}

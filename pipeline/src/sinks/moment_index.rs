//! The moment index sink: turns analysed frames into indexed windows. It gathers a camera's
//! frames per window, embeds the window's text (and frame, with an image-text encoder),
//! publishes it on the moments topic, stores it in Redis and adds it to the in-memory index.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;

use crate::metrics::Metrics;
use crate::moments::index::MomentIndex;
use crate::moments::store::MomentStore;
use crate::moments::stored;
use crate::moments::window::{ClosedWindow, FrameSummary, MomentWindow, WindowBuilder};
use crate::operators::embedder::{Embedder, VisualEmbedder};
use crate::publish::{new_trace_id, KafkaPublisher, Outgoing};
use crate::stream::{AnalysedFrame, FinishedStream, FrameSink, OpenedStream};

/// How long after a live window's end its last frames may still arrive (analysis takes time).
const LIVE_GRACE: Duration = Duration::from_secs(1);

/// Cheap to clone; one per process.
#[derive(Clone)]
pub struct MomentIndexer {
    inner: Arc<Inner>,
}

struct Inner {
    window_length: Duration,
    /// Per camera, its open window and whether the camera is live.
    builders: Mutex<HashMap<String, (WindowBuilder, bool)>>,
    /// Per camera, the end (ms) of the newest window stored: everything before it is indexed.
    indexed_until: Mutex<HashMap<String, i64>>,
    embedder: Embedder,
    /// Embeds each window's middle frame, when an image-text encoder is configured.
    visual: Option<VisualEmbedder>,
    kafka: KafkaPublisher,
    topic: String,
    store: MomentStore,
    /// The service's searchable index; `argus index` only stores and publishes.
    index: Option<Arc<MomentIndex>>,
    metrics: Metrics,
}

impl MomentIndexer {
    /// The sentence embedder windows are embedded with (question rules check chunks with it).
    pub fn embedder(&self) -> &Embedder {
        &self.inner.embedder
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        window_length: Duration,
        embedder: Embedder,
        visual: Option<VisualEmbedder>,
        kafka: KafkaPublisher,
        topic: String,
        store: MomentStore,
        index: Option<Arc<MomentIndex>>,
        metrics: Metrics,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                window_length,
                builders: Mutex::new(HashMap::new()),
                indexed_until: Mutex::new(HashMap::new()),
                embedder,
                visual,
                kafka,
                topic,
                store,
                index,
                metrics,
            }),
        }
    }

    /// Adds an analysed frame to its camera's open window, indexing the previous window when
    /// this frame starts a new one. `live`: the frame's time is (nearly) now, so the window
    /// can also be closed by the clock ([`MomentIndexer::close_elapsed`]).
    async fn add_frame(&self, camera: &str, live: bool, frame: FrameSummary<'_>) {
        let closed = {
            let mut builders = self.inner.builders.lock().expect("window builders lock");
            let (builder, is_live) = builders
                .entry(camera.to_owned())
                .or_insert_with(|| (WindowBuilder::new(camera, self.inner.window_length), live));
            *is_live = live;
            builder.push(frame)
        };
        if let Some(window) = closed {
            self.index_window(window).await;
        }
    }

    /// Indexes the camera's open window: its stream ended or went away.
    pub async fn flush(&self, camera: &str) {
        let closed = {
            let mut builders = self.inner.builders.lock().expect("window builders lock");
            builders
                .remove(camera)
                .and_then(|(mut builder, _)| builder.close())
        };
        if let Some(window) = closed {
            self.index_window(window).await;
        }
    }

    /// Indexes live cameras' windows whose end is more than `grace` before `now`, without
    /// waiting for the frame that would close them: live windows become searchable within
    /// about a second of their end, whatever the sampling rate.
    pub async fn close_elapsed(&self, now: chrono::DateTime<Utc>, grace: Duration) {
        let deadline = now - chrono::Duration::from_std(grace).unwrap_or_default();
        let closed: Vec<ClosedWindow> = {
            let mut builders = self.inner.builders.lock().expect("window builders lock");
            builders
                .values_mut()
                .filter(|(builder, live)| {
                    *live && builder.open_end().is_some_and(|end| end <= deadline)
                })
                .filter_map(|(builder, _)| builder.close())
                .collect()
        };
        for window in closed {
            self.index_window(window).await;
        }
    }

    /// Runs [`MomentIndexer::close_elapsed`] four times a second.
    pub async fn close_elapsed_windows(self) {
        let mut every = tokio::time::interval(Duration::from_millis(250));
        loop {
            every.tick().await;
            self.close_elapsed(Utc::now(), LIVE_GRACE).await;
        }
    }

    /// Notes that the camera's video from `start` on comes from the file `path`, so moments
    /// in it can be played back.
    pub async fn register_recording(
        &self,
        camera: &str,
        path: &std::path::Path,
        start: chrono::DateTime<Utc>,
    ) {
        // Absolute, so clips are found whatever the service's working directory.
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let store = &self.inner.store;
        store.put_recording(camera, &path, start, None).await;
        // Its length bounds which moments can be played from it. It is read beside the stream,
        // never before it: GStreamer's discoverer can stall on a damaged file, which must
        // fail through the stream's own pipeline, with its own error, not hang here.
        let Ok(uri) = gstreamer::glib::filename_to_uri(&path, None) else {
            return;
        };
        let (store, camera) = (store.clone(), camera.to_owned());
        tokio::spawn(async move {
            let probe =
                tokio::task::spawn_blocking(move || crate::source::probe::duration_of(&uri));
            if let Ok(Ok(Ok(length))) = tokio::time::timeout(Duration::from_secs(40), probe).await {
                store
                    .put_recording(&camera, &path, start, Some(length))
                    .await;
            }
        });
    }

    /// The end (ms) of the camera's newest stored window.
    pub fn indexed_until(&self, camera: &str) -> Option<i64> {
        self.inner
            .indexed_until
            .lock()
            .expect("indexed_until lock")
            .get(camera)
            .copied()
    }

    /// Adds a chunk's caption to the camera's windows within `[start, end)`: each is
    /// re-embedded with it, re-indexed (replacing itself), stored and published again, so
    /// moment search finds what the captions say. A revision's caption replaces the first.
    pub async fn add_caption(
        &self,
        camera: &str,
        start: chrono::DateTime<Utc>,
        end: chrono::DateTime<Utc>,
        caption: &str,
    ) {
        let inner = &self.inner;
        let step = (inner.window_length.as_millis() as i64).max(1);
        let mut window_start = start.timestamp_millis().div_euclid(step) * step;
        while window_start < end.timestamp_millis() {
            let stored = inner.store.get(camera, window_start).await;
            window_start += step;
            let mut window = match stored {
                Ok(Some(window)) => window,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(camera, %error, "window not captioned: Redis is not reachable");
                    continue;
                }
            };
            window.caption = Some(caption.to_owned());
            match inner.embedder.embed(vec![window.document()]).await {
                Ok(mut embeddings) => window.text_embedding = embeddings.pop(),
                Err(error) => {
                    tracing::error!(camera, %error, "captioned window not re-embedded");
                    continue;
                }
            }
            window.message_id = uuid::Uuid::now_v7();
            window.produced_at = Utc::now();
            self.store_window(window, None).await;
        }
    }

    /// Adds a window to the in-memory index (replacing an earlier version), stores it (with
    /// its thumbnail, when given) and publishes it, each with its vectors at the precision
    /// Redis keeps: a restart rebuilds the same index, and consumers see what is stored.
    async fn store_window(&self, mut window: MomentWindow, thumbnail: Option<Vec<u8>>) {
        stored::to_stored_precision(&mut window);
        let window = &window;
        let inner = &self.inner;
        let camera = window.camera_id.as_str();
        let json = serde_json::to_string(window).expect("moment windows serialise");
        if let Some(index) = &inner.index {
            // HNSW insertion is CPU work under the index's write lock: not on an async worker.
            let (index, indexed) = (index.clone(), window.clone());
            match tokio::task::spawn_blocking(move || index.insert(&indexed).map(|()| index.len()))
                .await
            {
                Ok(Ok(windows)) => inner.metrics.moment_index_windows.set(windows as i64),
                Ok(Err(error)) => {
                    tracing::error!(camera, %error, "window not added to the in-memory index")
                }
                Err(error) => {
                    tracing::error!(camera, %error, "window not added to the in-memory index")
                }
            }
        }
        inner.store.put(window, thumbnail).await;
        let outgoing = Outgoing {
            topic: &inner.topic,
            key: camera,
            payload: json,
            schema_id: MomentWindow::SCHEMA_ID,
            message_id: window.message_id.to_string(),
            trace_id: new_trace_id(),
        };
        if let Err(error) = inner.kafka.publish(outgoing).await {
            tracing::error!(camera, %error, "could not queue a moment window for Kafka");
        }
    }

    async fn index_window(&self, closed: ClosedWindow) {
        let inner = &self.inner;
        let camera = closed.camera_id.clone();
        let mut window = MomentWindow {
            schema_version: MomentWindow::SCHEMA_VERSION,
            message_id: uuid::Uuid::now_v7(),
            camera_id: camera.clone(),
            start: closed.start,
            end: closed.end,
            frames: closed.frames,
            ocr_text: closed.ocr_text,
            tags: Vec::new(),
            caption: None,
            objects: closed.objects,
            embedding_model: inner.embedder.model().to_owned(),
            text_embedding: None,
            appearance: closed.appearance,
            visual_model: None,
            visual_embedding: None,
            produced_at: Utc::now(),
        };
        let (text_embedding, visual_embedding) = tokio::join!(
            self.embed_text(&camera, window.document()),
            self.embed_frame(&camera, closed.image.clone()),
        );
        window.text_embedding = text_embedding;
        window.visual_model = visual_embedding
            .is_some()
            .then(|| inner.visual.as_ref().map(|v| v.model().to_owned()))
            .flatten();
        window.visual_embedding = visual_embedding;
        let end_ms = window.end.timestamp_millis();
        self.store_window(window, closed.thumbnail).await;
        inner
            .metrics
            .moment_windows_indexed
            .with_label_values(&[&camera])
            .inc();
        inner
            .indexed_until
            .lock()
            .expect("indexed_until lock")
            .insert(camera.clone(), end_ms);
        tracing::debug!(camera = %camera, end_ms, "window indexed");
    }

    /// The embedding of a window's text; `None` for a window without text, or when the model
    /// fails (the window is still indexed: searchable by image, and by text once re-indexed).
    async fn embed_text(&self, camera: &str, document: String) -> Option<Vec<f32>> {
        if document.trim().is_empty() {
            return None;
        }
        match self.inner.embedder.embed(vec![document]).await {
            Ok(mut embeddings) => embeddings.pop(),
            Err(error) => {
                tracing::error!(camera, %error, "window text not embedded");
                self.inner
                    .metrics
                    .errors
                    .with_label_values(&["operator"])
                    .inc();
                None
            }
        }
    }

    /// The image-text embedding of a window's middle frame, when an encoder is configured.
    async fn embed_frame(
        &self,
        camera: &str,
        image: Option<Arc<argus_operators::BgrImage>>,
    ) -> Option<Vec<f32>> {
        let (visual, image) = (self.inner.visual.as_ref()?, image?);
        match visual.embed_images(vec![image]).await {
            Ok(mut embeddings) => embeddings.pop(),
            Err(error) => {
                tracing::error!(camera, %error, "window frame not embedded");
                self.inner
                    .metrics
                    .errors
                    .with_label_values(&["operator"])
                    .inc();
                None
            }
        }
    }
}

#[async_trait]
impl FrameSink for MomentIndexer {
    async fn open(&self, stream: &OpenedStream<'_>) {
        // From the start, at 0: the indexing-stalled alert compares it with frames analysed
        // (and only where the series exists, that is where the moment index is enabled).
        self.inner
            .metrics
            .moment_windows_indexed
            .with_label_values(&[stream.camera]);
        if let Some((path, start)) = stream.recording {
            self.register_recording(stream.camera, path, start).await;
        }
    }

    async fn observe(&self, frame: &AnalysedFrame) {
        let analysed = frame.analysis.is_some();
        // An 8×8 reduction of the frame: well under a millisecond. Frames sampled only for
        // the objects stage add their objects, not their picture.
        let appearance = if analysed {
            argus_operators::appearance::colour_layout(&frame.image).unwrap_or_else(|error| {
                tracing::debug!(camera = %frame.camera, %error, "no colour layout");
                Vec::new()
            })
        } else {
            Vec::new()
        };
        let summary = FrameSummary {
            wall_time: frame.wall_time,
            ocr: frame
                .analysis
                .as_ref()
                .map(|analysis| analysis.ocr.as_slice()),
            objects: frame.objects.as_deref(),
            appearance,
            thumbnail: frame.thumbnail.as_deref().map(<[u8]>::to_vec),
            // Only an image-text encoder needs the frame itself.
            image: (analysed && self.inner.visual.is_some()).then(|| frame.image.clone()),
        };
        self.add_frame(&frame.camera, frame.live, summary).await;
    }

    async fn finish(&self, finished: &FinishedStream<'_>) {
        self.flush(finished.camera).await;
    }
}

//! The moment search service: what the HTTP API and the retention task use.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argus_operators::BgrImage;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::reembed::reembed_outdated;
use crate::config::MomentsConfig;
use crate::metrics::Metrics;
use crate::moments::index::{CameraCoverage, Hit, IndexedWindow, MomentIndex, SearchMethod, Space};
use crate::moments::query::{self, FilterRequest, Moment, QueryError, ScoredWindow};
use crate::moments::store::{LoadProgress, LoadReport, MomentStore};
use crate::moments::stored;
use crate::operators::embedder::{Embedder, VisualEmbedder};
use crate::operators::rerank::{Candidate, MomentReranker};
use crate::recordings::ClipLinks;

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The asker's mistake (HTTP 4xx).
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A model the query needs could not run, e.g. the rerank model is not installed (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// The stored windows are still being loaded into the index after a start (HTTP 503 with
    /// the progress): an answer now would silently miss the windows not loaded yet.
    #[error(
        "the moment index is loading: {loaded} of {total} stored windows so far; retry shortly"
    )]
    Loading { loaded: usize, total: usize },
    /// Ours (HTTP 5xx).
    #[error("moment search failed: {0}")]
    Internal(String),
}

/// A query's answer.
#[derive(Debug, Serialize)]
pub struct SearchAnswer {
    pub moments: Vec<Moment>,
    /// `exact` or `approximate`.
    pub method: &'static str,
    /// Windows scored to build the moments.
    pub candidates: usize,
    pub took_ms: f64,
}

#[derive(Clone)]
pub struct MomentSearch {
    pub index: Arc<MomentIndex>,
    pub store: MomentStore,
    embedder: Embedder,
    visual: Option<VisualEmbedder>,
    reranker: MomentReranker,
    config: MomentsConfig,
    metrics: Metrics,
    loading: Arc<LoadProgress>,
    clip_links: ClipLinks,
    /// The folder the index is saved in and reopened from.
    saved_index: PathBuf,
    /// Whether the index holds every stored window (its load succeeded): only such an index
    /// is saved, or a later start would take a partial index for a whole one.
    whole: Arc<AtomicBool>,
    /// Scale-out: cameras whose stored history this worker checked it holds, since it last
    /// took them on (see [`Self::index_only_beside`]).
    checked: Arc<std::sync::Mutex<HashSet<String>>>,
}

/// Thumbnails are served by the API under this path: `{camera}/{start_ms}.jpg`.
pub const THUMBNAIL_PATH: &str = "/api/v1/moments/thumbnails";

fn thumbnail_url(camera: &str, start_ms: i64) -> String {
    format!("{THUMBNAIL_PATH}/{camera}/{start_ms}.jpg")
}

/// The windows of two searches, each once (a window is one `Arc` in the index).
fn union(first: Vec<Hit>, second: Vec<Hit>) -> Vec<Arc<IndexedWindow>> {
    let mut seen = std::collections::HashSet::new();
    first
        .into_iter()
        .chain(second)
        .map(|(window, _)| window)
        .filter(|window| seen.insert(Arc::as_ptr(window)))
        .collect()
}

/// Cosine of two unit vectors (their dot product); `None` when the window has no vector or
/// one of another model's length.
fn cosine(query: &[f32], vector: Option<Vec<f32>>) -> Option<f32> {
    let vector = vector.filter(|v| v.len() == query.len())?;
    Some(query.iter().zip(vector).map(|(a, b)| a * b).sum())
}

impl MomentSearch {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: Arc<MomentIndex>,
        store: MomentStore,
        embedder: Embedder,
        visual: Option<VisualEmbedder>,
        reranker: MomentReranker,
        config: MomentsConfig,
        metrics: Metrics,
        clip_links: ClipLinks,
        saved_index: PathBuf,
    ) -> Self {
        Self {
            index,
            store,
            embedder,
            visual,
            reranker,
            config,
            metrics,
            loading: Arc::new(LoadProgress::default()),
            clip_links,
            saved_index,
            whole: Arc::default(),
            checked: Arc::default(),
        }
    }

    /// `Some((loaded, total))` while the stored windows are being loaded (see
    /// [`Self::load_stored`]).
    pub fn loading(&self) -> Option<(usize, usize)> {
        self.loading.loading()
    }

    fn check_loaded(&self) -> Result<(), SearchError> {
        match self.loading() {
            Some((loaded, total)) => Err(SearchError::Loading { loaded, total }),
            None => Ok(()),
        }
    }

    /// Loads the index in the background of a running service (the API is up meanwhile,
    /// `/readyz` and queries report the progress): reopens the saved index and catches up
    /// from the store's log, or rebuilds it from Redis when nothing usable was saved. Then
    /// migrates windows still in layout 1, re-embeds windows of other models, saves the index
    /// every `moments.index_save_interval_s` and runs retention (which must not run on a
    /// half-loaded index: the load would put back what it deletes). Queries answer
    /// [`SearchError::Loading`] from this call on, until the load is over.
    pub fn load_stored(self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.loading.begin();
        self.load_then_keep_current()
    }

    /// Waits until a load begun by [`Self::load_stored`] is over (for `argus eval`, which
    /// queries right after starting).
    pub async fn loaded(&self) {
        while self.loading().is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn load_then_keep_current(self) {
        let started = Instant::now();
        let loaded = self.load().await;
        self.loading.finish();
        self.metrics
            .moment_index_windows
            .set(self.index.len() as i64);
        let mut outdated = Vec::new();
        match loaded {
            Ok(report) => {
                tracing::info!(
                    windows = self.index.len(),
                    read_from_redis = report.loaded,
                    seconds = started.elapsed().as_secs_f64(),
                    "moment index loaded"
                );
                outdated = report.outdated;
                self.whole.store(true, Ordering::Release);
            }
            Err(error) => tracing::error!(%error,
                "the moment index could not be loaded: searches see only new windows"),
        }
        tokio::spawn(self.clone().save_periodically());
        match self.migrate_layout().await {
            Ok(report) => outdated.extend(report.outdated),
            Err(error) => tracing::error!(%error,
                "moment windows in layout 1 were not all migrated; the next start goes on"),
        }
        if !outdated.is_empty() {
            tokio::spawn(reembed_outdated(
                self.store.clone(),
                self.index.clone(),
                self.embedder.clone(),
                self.visual.clone(),
                outdated,
            ));
        }
        self.run_retention().await;
    }

    /// Fills the index: from its save and the log after it when they fit together, else
    /// from every stored window.
    async fn load(&self) -> anyhow::Result<LoadReport> {
        let total = self.store.count().await?;
        self.loading.set_total(total);
        let (index, dir) = (self.index.clone(), self.saved_index.clone());
        let restored = tokio::task::spawn_blocking(move || index.restore(&dir)).await?;
        let restored = match restored {
            Ok(restored) => restored,
            Err(error) => {
                tracing::warn!(%error, "the saved moment index is unreadable: rebuilding it");
                None
            }
        };
        if let Some(saved_at) = restored {
            if self.store.log_reaches_back_to(saved_at).await? {
                tracing::info!(windows = self.index.len(), log = %saved_at,
                    "saved moment index reopened; catching up from the log");
                return self.store.replay_into(&self.index, saved_at).await;
            }
            tracing::warn!(log = %saved_at,
                "the saved moment index is older than the store's log reaches: rebuilding it");
        }
        tracing::info!(windows = total, "loading the moment index from Redis");
        self.store.load_into(&self.index, &self.loading).await
    }

    /// Rewrites windows stored in layout 1, counting them in
    /// `argus_moment_windows_migrated_total` and logging the progress every tenth.
    async fn migrate_layout(&self) -> anyhow::Result<LoadReport> {
        let metrics = self.metrics.clone();
        // Atomics, not cells: the load's future runs on any worker (it must be Send).
        let counted = AtomicUsize::new(0);
        let logged_tenths = AtomicUsize::new(0);
        let report = self
            .store
            .migrate_layout(&self.index, |migrated, looked_at, total| {
                metrics
                    .moment_windows_migrated
                    .inc_by((migrated - counted.swap(migrated, Ordering::Relaxed)) as u64);
                let tenths = looked_at * 10 / total.max(1);
                if migrated > 0 && tenths > logged_tenths.swap(tenths, Ordering::Relaxed) {
                    tracing::info!(migrated, looked_at, total,
                        "moment windows: migrating layout 1 (JSON, thumbnails in Redis) to layout 2");
                }
            })
            .await?;
        if report.loaded > 0 {
            tracing::info!(
                windows = report.loaded,
                "moment windows migrated to layout 2"
            );
        }
        Ok(report)
    }

    /// Saves the index into its folder if it changed since `last` (a change count from
    /// [`MomentIndex::changes`]) and holds every stored window; returns the count saved.
    pub async fn save_index(&self, last: Option<u64>) -> anyhow::Result<u64> {
        let changes = self.index.changes();
        if last == Some(changes) {
            return Ok(changes);
        }
        if !self.whole.load(Ordering::Acquire) {
            anyhow::bail!("the index did not load whole: it is rebuilt at the next start instead");
        }
        // Read before the copy: what is logged later is replayed on top of it.
        let log = self.store.replay_point().await?;
        let (index, dir) = (self.index.clone(), self.saved_index.clone());
        let started = Instant::now();
        tokio::task::spawn_blocking(move || index.save(&dir, log)).await??;
        tracing::info!(
            windows = self.index.len(),
            seconds = started.elapsed().as_secs_f64(),
            "moment index saved"
        );
        Ok(changes)
    }

    /// Saves the index every `moments.index_save_interval_s`, when it changed.
    async fn save_periodically(self) {
        let period = Duration::from_secs(self.config.index_save_interval_s);
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut last = None;
        loop {
            every.tick().await;
            match self.save_index(last).await {
                Ok(saved) => last = Some(saved),
                Err(error) => {
                    tracing::warn!(%error, "the moment index was not saved; retrying next interval")
                }
            }
        }
    }

    /// Saves the index at shutdown, unless it is not whole (still loading, or the load
    /// failed): a partial index saved would be taken as whole at the next start.
    pub async fn save_at_shutdown(&self) {
        if let Err(error) = self.save_index(None).await {
            tracing::error!(%error, "the moment index was not saved at shutdown; the next start rebuilds or catches up");
        }
    }

    fn check_limit(&self, limit: Option<usize>) -> Result<usize, QueryError> {
        let limit = limit.unwrap_or(10);
        if limit == 0 || limit > self.config.max_results {
            return Err(QueryError::BadLimit(self.config.max_results));
        }
        Ok(limit)
    }

    /// Moments matching a text query; with `rerank`, the best `moments.rerank_candidates`
    /// are re-scored by the LLM ([`super::rerank`]).
    pub async fn by_text(
        &self,
        text: &str,
        filters: &FilterRequest,
        limit: Option<usize>,
        rerank: bool,
    ) -> Result<SearchAnswer, SearchError> {
        let started = Instant::now();
        self.check_loaded()?;
        let text = query::check_text(text)?;
        let limit = self.check_limit(limit)?;
        let filter = query::check_filter(filters, Utc::now(), |c| self.index.has_camera(c))?;
        let internal = |e: argus_operators::OperatorError| SearchError::Internal(e.to_string());
        let (embedding, visual_query) =
            tokio::join!(self.embedder.embed(vec![text.to_owned()]), async {
                match &self.visual {
                    Some(visual) => visual.embed_text(text).await.map(Some),
                    None => Ok(None),
                }
            });
        let embedding = embedding
            .map_err(internal)?
            .pop()
            .ok_or_else(|| SearchError::Internal("no embedding returned".into()))?;
        let visual_query = visual_query.map_err(internal)?;
        let terms = query::query_terms(text);
        let (hits, method) = self.search(Space::Text, &embedding, &filter).await?;
        let visual_hits = match &visual_query {
            Some(query) => self.search(Space::Visual, query, &filter).await?.0,
            None => Vec::new(),
        };
        let windows = union(hits, visual_hits);
        let vectors = self
            .vectors(Space::Text, &windows, visual_query.is_some())
            .await?;
        let scored = windows
            .into_iter()
            .zip(vectors)
            .map(|(window, (text_vector, visual_vector))| {
                let similarity = cosine(&embedding, text_vector);
                let text_score = query::text_score(&terms, &window, similarity.unwrap_or(0.0));
                let visual =
                    self.visual
                        .as_ref()
                        .zip(visual_query.as_ref())
                        .and_then(|(visual, query)| {
                            cosine(query, visual_vector).map(|c| visual.text_match(c))
                        });
                ScoredWindow {
                    score: query::combine(text_score, query::VISUAL_WEIGHT * visual.unwrap_or(0.0)),
                    visual,
                    window,
                }
            })
            .collect();
        let rerank = rerank.then_some(text);
        self.answer(scored, &terms, limit, rerank, method, started, "text")
            .await
    }

    /// Moments that look like `image` (any encoded image format).
    pub async fn by_image(
        &self,
        image: &[u8],
        filters: &FilterRequest,
        limit: Option<usize>,
    ) -> Result<SearchAnswer, SearchError> {
        let started = Instant::now();
        self.check_loaded()?;
        let limit = self.check_limit(limit)?;
        let filter = query::check_filter(filters, Utc::now(), |c| self.index.has_camera(c))?;
        let image = BgrImage::decode(image).map_err(|e| QueryError::BadImage(e.to_string()))?;
        let descriptor = argus_operators::appearance::colour_layout(&image)
            .map_err(|e| QueryError::BadImage(e.to_string()))?;
        let visual_query = match &self.visual {
            Some(visual) => visual
                .embed_images(vec![std::sync::Arc::new(image)])
                .await
                .map_err(|e| SearchError::Internal(e.to_string()))?
                .pop(),
            None => None,
        };
        let (hits, method) = self.search(Space::Appearance, &descriptor, &filter).await?;
        let visual_hits = match &visual_query {
            Some(query) => self.search(Space::Visual, query, &filter).await?.0,
            None => Vec::new(),
        };
        let windows = union(hits, visual_hits);
        let vectors = self
            .vectors(Space::Appearance, &windows, visual_query.is_some())
            .await?;
        let scored = windows
            .into_iter()
            .zip(vectors)
            .map(|(window, (layout, visual_vector))| {
                let layout = layout.map(|appearance| {
                    let distance =
                        argus_operators::appearance::distance_squared(&descriptor, &appearance);
                    crate::moments::index::appearance_similarity(distance)
                });
                // Image-to-image cosine of one encoder is already a similarity in [−1, 1].
                let visual = visual_query
                    .as_ref()
                    .and_then(|query| cosine(query, visual_vector))
                    .map(|c| c.max(0.0));
                let score = match visual {
                    Some(visual) => query::combine(layout.unwrap_or(0.0), visual),
                    None => layout.unwrap_or(0.0),
                };
                ScoredWindow {
                    window,
                    score,
                    visual,
                }
            })
            .collect();
        self.answer(scored, &[], limit, None, method, started, "image")
            .await
    }

    /// The [`query::CANDIDATES`] windows nearest `vector` in `space`, searched on the blocking
    /// pool: the exact scan of a large selection is tens of milliseconds of CPU.
    async fn search(
        &self,
        space: Space,
        vector: &[f32],
        filter: &crate::moments::index::WindowFilter,
    ) -> Result<(Vec<Hit>, SearchMethod), SearchError> {
        let index = self.index.clone();
        let (vector, filter) = (vector.to_vec(), filter.clone());
        tokio::task::spawn_blocking(move || {
            index.search(space, &vector, &filter, query::CANDIDATES)
        })
        .await
        .map_err(|e| SearchError::Internal(e.to_string()))?
        .map_err(|e| SearchError::Internal(e.to_string()))
    }

    /// Each window's vector in `space`, and in the visual space when `visual` holds (`None`
    /// where it has none), read on the blocking pool: hundreds of candidates, each a lookup in
    /// a graph that may be gigabytes.
    async fn vectors(
        &self,
        space: Space,
        windows: &[Arc<IndexedWindow>],
        visual: bool,
    ) -> Result<Vec<(Option<Vec<f32>>, Option<Vec<f32>>)>, SearchError> {
        let (index, windows) = (self.index.clone(), windows.to_vec());
        tokio::task::spawn_blocking(move || {
            windows
                .iter()
                .map(|window| {
                    let visual_vector = visual
                        .then(|| index.vector(Space::Visual, window))
                        .flatten();
                    (index.vector(space, window), visual_vector)
                })
                .collect()
        })
        .await
        .map_err(|e| SearchError::Internal(e.to_string()))
    }

    /// Scored windows → moments (reranked when `rerank` holds the query text) with their
    /// clips.
    #[allow(clippy::too_many_arguments)]
    async fn answer(
        &self,
        scored: Vec<ScoredWindow>,
        terms: &[String],
        limit: usize,
        rerank: Option<&str>,
        method: SearchMethod,
        started: Instant,
        kind: &str,
    ) -> Result<SearchAnswer, SearchError> {
        let candidates = scored.len();
        let mut moments = match rerank {
            Some(text) => {
                let wanted = limit.max(self.config.rerank_candidates);
                let moments = query::moments(scored, terms, wanted, thumbnail_url);
                self.rerank(text, moments, limit).await?
            }
            None => query::moments(scored, terms, limit, thumbnail_url),
        };
        // One read per camera. Without Redis, moments of recorded files have no clips, but
        // the moments still answer.
        let mut recordings = std::collections::HashMap::new();
        for moment in &mut moments {
            if !recordings.contains_key(&moment.camera_id) {
                let found = self
                    .store
                    .recordings(&moment.camera_id)
                    .await
                    .unwrap_or_default();
                recordings.insert(moment.camera_id.clone(), found);
            }
            let in_file = crate::moments::store::recording_at(
                &recordings[&moment.camera_id],
                moment.start.timestamp_millis(),
            )
            .is_some();
            moment.clip =
                self.clip_links
                    .link_or_file(&moment.camera_id, moment.start, moment.end, in_file);
        }
        let took = started.elapsed();
        let kind = if rerank.is_some() {
            "text_reranked"
        } else {
            kind
        };
        self.metrics
            .moment_query_latency
            .with_label_values(&[kind])
            .observe(took.as_secs_f64());
        Ok(SearchAnswer {
            moments,
            method: match method {
                SearchMethod::Exact => "exact",
                SearchMethod::Approximate => "approximate",
            },
            candidates,
            took_ms: took.as_secs_f64() * 1e3,
        })
    }

    /// Re-scores `moments` with the LLM's relevance (the mean of both scores) and keeps the
    /// best `limit`.
    async fn rerank(
        &self,
        text: &str,
        mut moments: Vec<Moment>,
        limit: usize,
    ) -> Result<Vec<Moment>, SearchError> {
        if moments.is_empty() {
            return Ok(moments);
        }
        let candidates = moments
            .iter()
            .map(|moment| {
                let mut candidate = Candidate::default();
                let windows = self.index.windows_between(
                    &moment.camera_id,
                    moment.start.timestamp_millis(),
                    moment.end.timestamp_millis(),
                );
                for window in windows {
                    for line in &window.ocr_text {
                        if !candidate.ocr.contains(line) {
                            candidate.ocr.push(line.clone());
                        }
                    }
                    for tag in &window.tags {
                        if !candidate.tags.contains(tag) {
                            candidate.tags.push(tag.clone());
                        }
                    }
                    if candidate.caption.is_none() {
                        candidate.caption = window.caption.clone();
                    }
                }
                candidate
            })
            .collect();
        let relevance = self
            .reranker
            .relevance(text, candidates)
            .await
            .map_err(|e| {
                SearchError::Unavailable(format!(
                    "the rerank model could not run ({e}); ask without rerank, or install \
                     moments.rerank_model"
                ))
            })?;
        for (moment, relevance) in moments.iter_mut().zip(relevance) {
            moment.evidence.rerank = Some(relevance);
            moment.score = 0.5 * (moment.score + relevance);
        }
        moments.sort_by(|a, b| b.score.total_cmp(&a.score));
        moments.truncate(limit);
        Ok(moments)
    }

    pub fn coverage(&self) -> Vec<CameraCoverage> {
        self.index.coverage()
    }

    /// Applies `moments.retention` once, to Redis, the thumbnails and the index (whose next
    /// save drops the windows; the log's `cut` covers the time until then); returns windows
    /// deleted.
    pub async fn apply_retention(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let retention = &self.config.retention;
        if retention.max_age_s.is_none()
            && retention.max_windows.is_none()
            && retention.max_bytes_per_camera.is_none()
        {
            return Ok(0);
        }
        let mut deleted = 0;
        // Redis may hold cameras this instance never loaded (another worker's).
        let mut cameras = self.store.cameras().await?;
        cameras.extend(self.index.coverage().into_iter().map(|c| c.camera_id));
        cameras.sort();
        cameras.dedup();
        for camera in cameras {
            let by_age = retention
                .max_age_s
                .map(|age| now.timestamp_millis() - (age as i64) * 1000);
            let by_count = retention
                .max_windows
                .and_then(|n| self.index.cutoff_keeping_newest(&camera, n));
            let by_bytes = retention.max_bytes_per_camera.and_then(|budget| {
                self.index
                    .cutoff_within_bytes(&camera, budget, stored::REDIS_BYTES_BESIDE_VALUE)
            });
            let Some(cutoff) = by_age.into_iter().chain(by_count).chain(by_bytes).max() else {
                continue;
            };
            let removed = self.store.delete_before(&camera, cutoff).await?;
            // Removal takes the index's write lock (and HNSW work): not on an async worker.
            let index = self.index.clone();
            tokio::task::spawn_blocking(move || index.remove_before(&camera, cutoff)).await?;
            deleted += removed;
        }
        if deleted > 0 {
            tracing::info!(windows = deleted, "moment retention deleted old windows");
            self.metrics.moment_windows_expired.inc_by(deleted as u64);
        }
        self.metrics
            .moment_index_windows
            .set(self.index.len() as i64);
        Ok(deleted)
    }

    /// Runs retention every `moments.retention.interval_s`.
    pub async fn run_retention(self) {
        let mut every =
            tokio::time::interval(Duration::from_secs(self.config.retention.interval_s));
        loop {
            every.tick().await;
            if let Err(error) = self.apply_retention(Utc::now()).await {
                tracing::warn!(%error, "moment retention did not run; retrying next interval");
            }
        }
    }

    /// Scale-out: keeps this worker's index to its share. `others` are the cameras other
    /// live workers run and index: their windows leave this index and stay out of it. Every
    /// other stored camera (this worker's, and those no worker runs, such as files indexed
    /// by `argus index`) is indexed here; one this worker has just taken on (from a worker
    /// that left, or after a restart whose save predates it) is loaded from the store when
    /// the index holds fewer of its windows than the store does. Called on every heartbeat
    /// of `cluster::peers`; does nothing until the start's load is over.
    pub async fn index_only_beside(&self, others: HashSet<String>) -> anyhow::Result<()> {
        if self.loading().is_some() {
            return Ok(());
        }
        {
            let mut checked = self.checked.lock().expect("checked cameras");
            checked.retain(|camera| !others.contains(camera));
        }
        let index = self.index.clone();
        let excluded = others.clone();
        tokio::task::spawn_blocking(move || index.exclude(excluded)).await?;
        for camera in self.store.cameras().await? {
            if others.contains(&camera)
                || self
                    .checked
                    .lock()
                    .expect("checked cameras")
                    .contains(&camera)
            {
                continue;
            }
            let stored = self.store.camera_count(&camera).await?;
            if self.index.camera_len(&camera) < stored {
                let report = self.store.load_camera_into(&self.index, &camera).await?;
                tracing::info!(camera = %camera, windows = report.loaded,
                    "moment index: took on a camera's stored windows");
            }
            self.checked.lock().expect("checked cameras").insert(camera);
        }
        self.metrics
            .moment_index_windows
            .set(self.index.len() as i64);
        Ok(())
    }

    /// Adds windows that other processes (`argus index`, other workers) store, for as long as
    /// the service runs, reconnecting to Redis as needed.
    pub async fn follow_store(self) {
        loop {
            if let Err(error) = self.store.follow(&self.index).await {
                tracing::debug!(%error, "moment feed interrupted; resubscribing");
            }
            self.metrics
                .moment_index_windows
                .set(self.index.len() as i64);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

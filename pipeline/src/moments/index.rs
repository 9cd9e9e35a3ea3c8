//! The in-memory moment index: every window of every camera, searchable by embedding.
//!
//! Two searches answer a query, chosen per query: an exact scan over the windows the query's
//! cameras and time range select, when they are few (`moments.exact_search_below`), and the
//! approximate HNSW index (`usearch`) with the same filter when they are many. Windows are
//! keyed by (camera, start) so re-indexing a span replaces it instead of duplicating it.
//! Redis is the durable copy. The index is saved beside it ([`MomentIndex::save`]: the HNSW
//! graphs as usearch writes them, and the windows' text and times) and reopened at start
//! ([`MomentIndex::restore`]), then brought up to date from the store's change log; it is
//! rebuilt from Redis ([`super::store`]) only when nothing usable was saved.
//! Each embedding space holds only the vectors of its configured model ([`IndexModels`]): a
//! window embedded by another model (stored before the configuration changed, or published by
//! a worker not yet upgraded) keeps its place without that vector until it is re-embedded, so
//! no query ever compares vectors from two models.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use super::store::LogPosition;
use super::stored;
use super::window::MomentWindow;

/// What the index keeps of a window: enough to filter, score and explain a hit. Thumbnails
/// stay in their store.
#[derive(Debug)]
pub struct IndexedWindow {
    pub camera_id: Arc<str>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub ocr_text: Vec<String>,
    pub tags: Vec<String>,
    /// The window's objects in words ("3 people walking left to right").
    pub objects: Vec<String>,
    pub caption: Option<String>,
    /// The size of the window's value in Redis, for retention's memory budget.
    pub stored_bytes: u32,
    /// Its key in the graphs, which hold its vectors (text, colour layout, visual): kept
    /// once there, not here too ([`MomentIndex::vector`] reads one back).
    pub(super) key: u64,
}

/// A window's vector in `space`, if it has one (of the index's models).
fn source_vector<'a>(
    window: &'a MomentWindow,
    space: Space,
    models: &IndexModels,
) -> Option<&'a [f32]> {
    match space {
        Space::Text => window
            .text_embedding
            .as_deref()
            .filter(|_| window.embedding_model == models.text),
        Space::Appearance => Some(window.appearance.as_slice()).filter(|v| !v.is_empty()),
        Space::Visual => window
            .visual_embedding
            .as_deref()
            .filter(|_| models.visual.is_some() && window.visual_model == models.visual),
    }
}

/// Which embedding a search compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// Text embeddings, cosine similarity (unit vectors: the inner product).
    Text,
    /// Colour layout descriptors, L2 distance turned into a similarity in (0, 1].
    Appearance,
    /// Image-text encoder (CLIP, SigLIP) embeddings of the windows' middle frames, cosine
    /// similarity; queried with a text's or an image's embedding in the same space.
    Visual,
}

impl Space {
    const ALL: [Space; 3] = [Space::Text, Space::Appearance, Space::Visual];

    /// The file a saved index keeps the space's graph in.
    fn file_name(self) -> &'static str {
        match self {
            Space::Text => "text.usearch",
            Space::Appearance => "appearance.usearch",
            Space::Visual => "visual.usearch",
        }
    }

    fn metric(self) -> MetricKind {
        match self {
            Space::Text | Space::Visual => MetricKind::IP,
            Space::Appearance => MetricKind::L2sq,
        }
    }
}

/// Which windows a query may return.
#[derive(Debug, Clone, Default)]
pub struct WindowFilter {
    /// Only these cameras; `None`: all.
    pub cameras: Option<HashSet<String>>,
    /// Only windows overlapping `[since_ms, until_ms)`.
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

impl WindowFilter {
    fn accepts(&self, window: &IndexedWindow) -> bool {
        self.cameras
            .as_ref()
            .is_none_or(|cameras| cameras.contains(window.camera_id.as_ref()))
            && self.since_ms.is_none_or(|since| window.end_ms > since)
            && self.until_ms.is_none_or(|until| window.start_ms < until)
    }

    fn is_everything(&self) -> bool {
        self.cameras.is_none() && self.since_ms.is_none() && self.until_ms.is_none()
    }
}

/// A window and its similarity to the query (higher is better).
pub type Hit = (Arc<IndexedWindow>, f32);

/// How a search was answered, for logs and the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchMethod {
    Exact,
    Approximate,
}

/// A camera's extent in the index.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CameraCoverage {
    pub camera_id: String,
    pub windows: usize,
    pub first_ms: i64,
    pub last_end_ms: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("moment index: {0}")]
pub struct IndexError(String);

/// usearch reports C++ exceptions; their text is all there is to say.
fn hnsw_error(error: impl std::fmt::Display) -> IndexError {
    IndexError(error.to_string())
}

/// The models whose embeddings the index searches, by their names as windows record them
/// (`embedding_model`, `visual_model`).
#[derive(Debug, Clone, Default)]
pub struct IndexModels {
    pub text: String,
    /// `None` when no image-text encoder is configured: visual vectors are not searched.
    pub visual: Option<String>,
}

impl IndexModels {
    /// Whether each of the window's embeddings is in the configured model's space (absent
    /// embeddings need nothing); windows for which this is false want re-embedding.
    pub fn is_current(&self, window: &MomentWindow) -> bool {
        self.text_is_current(window) && self.visual_is_current(window)
    }

    pub fn text_is_current(&self, window: &MomentWindow) -> bool {
        window.text_embedding.is_none() || window.embedding_model == self.text
    }

    /// A window without a visual embedding is current only when no encoder is configured.
    pub fn visual_is_current(&self, window: &MomentWindow) -> bool {
        match &self.visual {
            None => true,
            Some(model) => window.visual_model.as_ref() == Some(model),
        }
    }
}

/// The index; share it behind an `Arc`.
pub struct MomentIndex {
    state: RwLock<State>,
    exact_below: usize,
    models: IndexModels,
    /// Links per window in the graphs built here (a reopened save keeps its own).
    connectivity: usize,
    /// Counts insertions, removals and restores: whether there is anything new to save.
    changes: AtomicU64,
}

struct State {
    windows: HashMap<u64, Arc<IndexedWindow>>,
    /// camera → start (ms) → key.
    cameras: HashMap<Arc<str>, BTreeMap<i64, u64>>,
    /// One HNSW graph per [`Space`], in `Space::ALL` order, each created with the first
    /// vector of its space (whose length fixes the dimension).
    graphs: [Option<Index>; 3],
    /// Longest window seen: a time filter must look this far before `since` for overlaps.
    longest_ms: i64,
    next_key: u64,
    /// Cameras another worker indexes (scale-out): their windows are not kept here,
    /// whichever path brings them (the live feed, a load, a catch-up).
    excluded: HashSet<String>,
}

/// HNSW parameters (BENCHMARKS.md, "Scale"). Recall falls as the graph grows: with usearch's
/// default of 16 links per window and a search beam of 128, 0.98 of the true top 10 were
/// found at 10^6 windows, 0.89 at 3 x 10^6 and 0.77 at 10^7; a beam of 512 kept only 0.954 at
/// 3 x 10^6. 32 links found 1.000 there at 256 and 512 (0.968 at 128), for 10 % more memory
/// per window, but they build slower: a rebuild of 200,000 windows from Redis beside a live
/// camera took over 15 minutes with 32 links, so 16 stays the default and large indexes set
/// `moments.index_connectivity`. The beam is a search-time setting, the links a build-time
/// one: a save keeps those it was built with.
pub const DEFAULT_CONNECTIVITY: usize = 16;
const EXPANSION_ADD: usize = 128;
const EXPANSION_SEARCH: usize = 512;

fn new_hnsw(
    dimensions: usize,
    metric: MetricKind,
    connectivity: usize,
) -> Result<Index, IndexError> {
    let index = Index::new(&IndexOptions {
        dimensions,
        metric,
        // Every vector is rounded to float16 before it is indexed (`stored::to_stored_precision`):
        // float16 in the graph loses nothing and halves its memory.
        quantization: ScalarKind::F16,
        connectivity,
        expansion_add: EXPANSION_ADD,
        expansion_search: EXPANSION_SEARCH,
        multi: false,
    })
    .map_err(hnsw_error)?;
    index.reserve(1024).map_err(hnsw_error)?;
    Ok(index)
}

/// Adds vectors to `index`, spread over the cores when there are many (usearch takes
/// concurrent insertions).
fn add_parallel(index: &Index, vectors: &[(u64, &[f32])]) -> Result<(), IndexError> {
    if let Some((_, vector)) = vectors.iter().find(|(_, v)| v.len() != index.dimensions()) {
        return Err(IndexError(format!(
            "a vector of {} values does not fit an index of {}",
            vector.len(),
            index.dimensions()
        )));
    }
    let needed = index.size() + vectors.len();
    let threads = if vectors.len() < 64 {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    if needed > index.capacity() {
        let capacity = needed.max(index.capacity() * 2).max(1024);
        index
            .reserve_capacity_and_threads(capacity, threads.max(1))
            .map_err(hnsw_error)?;
    }
    if threads == 1 {
        for (key, vector) in vectors {
            index.add(*key, vector).map_err(hnsw_error)?;
        }
        return Ok(());
    }
    let chunk = vectors.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = vectors
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .try_for_each(|(key, vector)| index.add(*key, vector).map_err(hnsw_error))
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|worker| worker.join().expect("an HNSW insertion thread panicked"))
    })
}

impl MomentIndex {
    pub fn new(exact_below: usize, models: IndexModels) -> Self {
        Self {
            state: RwLock::new(State {
                windows: HashMap::new(),
                cameras: HashMap::new(),
                graphs: [None, None, None],
                longest_ms: 0,
                next_key: 0,
                excluded: HashSet::new(),
            }),
            exact_below,
            models,
            connectivity: DEFAULT_CONNECTIVITY,
            changes: AtomicU64::new(0),
        }
    }

    /// Builds its graphs with `connectivity` links per window (HNSW's M) instead of
    /// [`DEFAULT_CONNECTIVITY`].
    pub fn with_connectivity(mut self, connectivity: usize) -> Self {
        self.connectivity = connectivity;
        self
    }

    /// How many times the index has changed since it was created (see [`Self::save`]).
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// The models whose vectors the index searches.
    pub fn models(&self) -> &IndexModels {
        &self.models
    }

    /// Adds a window, replacing the camera's window with the same start if there is one.
    pub fn insert(&self, window: &MomentWindow) -> Result<(), IndexError> {
        self.insert_many(std::slice::from_ref(window))
    }

    /// Adds many windows at once (loading from Redis, bulk indexing): the HNSW insertions,
    /// the expensive part, run on every core.
    pub fn insert_many(&self, windows: &[MomentWindow]) -> Result<(), IndexError> {
        let sizes: Vec<u32> = windows
            .iter()
            .map(|window| stored::encode(window).len() as u32)
            .collect();
        let mut state = self.state.write().expect("moment index lock");
        self.changes.fetch_add(1, Ordering::AcqRel);
        let mut added: Vec<(u64, &MomentWindow)> = Vec::with_capacity(windows.len());
        for (window, stored_bytes) in windows.iter().zip(sizes) {
            if state.excluded.contains(&window.camera_id) {
                continue;
            }
            let camera: Arc<str> = state
                .cameras
                .get_key_value(window.camera_id.as_str())
                .map_or_else(|| Arc::from(window.camera_id.as_str()), |(c, _)| c.clone());
            let start_ms = window.start_ms();
            let existing = state
                .cameras
                .get(&camera)
                .and_then(|starts| starts.get(&start_ms))
                .copied();
            if let Some(key) = existing {
                state.remove_key(key);
            }
            let key = state.next_key;
            state.next_key += 1;
            let indexed = Arc::new(IndexedWindow {
                camera_id: camera.clone(),
                start_ms,
                end_ms: window.end.timestamp_millis(),
                ocr_text: window.ocr_text.clone(),
                tags: window.tags.clone(),
                objects: window.object_phrases(),
                caption: window.caption.clone(),
                stored_bytes,
                key,
            });
            for (space, graph) in Space::ALL.into_iter().zip(&mut state.graphs) {
                if let (Some(vector), None) = (source_vector(window, space, &self.models), &graph) {
                    *graph = Some(new_hnsw(vector.len(), space.metric(), self.connectivity)?);
                }
            }
            state.longest_ms = state.longest_ms.max(indexed.end_ms - indexed.start_ms);
            state
                .cameras
                .entry(camera)
                .or_default()
                .insert(indexed.start_ms, key);
            state.windows.insert(key, indexed);
            added.push((key, window));
        }
        for (space, graph) in Space::ALL.into_iter().zip(&state.graphs) {
            let vectors: Vec<(u64, &[f32])> = added
                .iter()
                .filter_map(|(key, w)| Some((*key, source_vector(w, space, &self.models)?)))
                .collect();
            if let Some(index) = graph {
                add_parallel(index, &vectors)?;
            }
        }
        Ok(())
    }

    /// Removes a camera's windows that start before `cutoff_ms`; returns how many.
    pub fn remove_before(&self, camera: &str, cutoff_ms: i64) -> usize {
        let mut state = self.state.write().expect("moment index lock");
        self.changes.fetch_add(1, Ordering::AcqRel);
        let keys: Vec<u64> = state
            .cameras
            .get(camera)
            .map(|starts| starts.range(..cutoff_ms).map(|(_, &key)| key).collect())
            .unwrap_or_default();
        for &key in &keys {
            state.remove_key(key);
        }
        keys.len()
    }

    /// Keeps no windows of `cameras` from now on (another worker indexes them), removing
    /// those it holds; cameras excluded before and not now are kept again (their windows
    /// while excluded were not kept: the caller loads them).
    pub fn exclude(&self, cameras: HashSet<String>) {
        let mut state = self.state.write().expect("moment index lock");
        for camera in &cameras {
            let keys: Vec<u64> = state
                .cameras
                .get(camera.as_str())
                .map(|starts| starts.values().copied().collect())
                .unwrap_or_default();
            if !keys.is_empty() {
                self.changes.fetch_add(1, Ordering::AcqRel);
            }
            for key in keys {
                state.remove_key(key);
            }
        }
        state.excluded = cameras;
    }

    /// Whether `camera` is excluded (see [`Self::exclude`]).
    pub fn excludes(&self, camera: &str) -> bool {
        let state = self.state.read().expect("moment index lock");
        state.excluded.contains(camera)
    }

    /// `window`'s vector in `space`, read back from the graph (float16 there: the vectors
    /// are rounded to float16 before they are indexed, so nothing is lost).
    pub fn vector(&self, space: Space, window: &IndexedWindow) -> Option<Vec<f32>> {
        let state = self.state.read().expect("moment index lock");
        let graph = state.graph(space)?;
        let mut values = vec![0.0; graph.dimensions()];
        match graph.get(window.key, &mut values) {
            Ok(found) if found > 0 => Some(values),
            _ => None,
        }
    }

    /// How many windows of `camera` the index holds.
    pub fn camera_len(&self, camera: &str) -> usize {
        let state = self.state.read().expect("moment index lock");
        state.cameras.get(camera).map_or(0, BTreeMap::len)
    }

    /// The start (ms) of a camera's `n`-th newest window, when it has more than `n`: the
    /// cut-off that keeps only its newest `n`.
    pub fn cutoff_keeping_newest(&self, camera: &str, n: usize) -> Option<i64> {
        let state = self.state.read().expect("moment index lock");
        let starts = state.cameras.get(camera)?;
        if starts.len() <= n {
            return None;
        }
        starts.keys().rev().nth(n.saturating_sub(1)).copied()
    }

    /// The cut-off that keeps a camera's newest windows within `budget` bytes, each counted
    /// as its stored value plus `per_window` (its key, its place in the timeline and the log),
    /// when they take more.
    pub fn cutoff_within_bytes(&self, camera: &str, budget: u64, per_window: u64) -> Option<i64> {
        let state = self.state.read().expect("moment index lock");
        let mut used = 0;
        for (&start, key) in state.cameras.get(camera)?.iter().rev() {
            used += u64::from(state.windows[key].stored_bytes) + per_window;
            if used > budget {
                return Some(start + 1);
            }
        }
        None
    }

    pub fn len(&self) -> usize {
        self.state.read().expect("moment index lock").windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, camera: &str, start_ms: i64) -> bool {
        let state = self.state.read().expect("moment index lock");
        state
            .cameras
            .get(camera)
            .is_some_and(|starts| starts.contains_key(&start_ms))
    }

    /// Every camera with windows, by name.
    pub fn coverage(&self) -> Vec<CameraCoverage> {
        let state = self.state.read().expect("moment index lock");
        let mut cameras: Vec<CameraCoverage> = state
            .cameras
            .iter()
            .filter_map(|(camera, starts)| {
                let first = *starts.keys().next()?;
                let last_key = *starts.values().next_back()?;
                Some(CameraCoverage {
                    camera_id: camera.to_string(),
                    windows: starts.len(),
                    first_ms: first,
                    last_end_ms: state.windows[&last_key].end_ms,
                })
            })
            .collect();
        cameras.sort_by(|a, b| a.camera_id.cmp(&b.camera_id));
        cameras
    }

    /// A camera's windows that start within `[start_ms, end_ms)`, in time order.
    pub fn windows_between(
        &self,
        camera: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Vec<Arc<IndexedWindow>> {
        let state = self.state.read().expect("moment index lock");
        let Some(starts) = state.cameras.get(camera) else {
            return Vec::new();
        };
        starts
            .range(start_ms..end_ms)
            .filter_map(|(_, key)| state.windows.get(key).cloned())
            .collect()
    }

    pub fn has_camera(&self, camera: &str) -> bool {
        let state = self.state.read().expect("moment index lock");
        state.cameras.get(camera).is_some_and(|s| !s.is_empty())
    }

    /// The `count` windows most similar to `query` among those `filter` accepts, best first,
    /// with their similarity (higher is better).
    pub fn search(
        &self,
        space: Space,
        query: &[f32],
        filter: &WindowFilter,
        count: usize,
    ) -> Result<(Vec<Hit>, SearchMethod), IndexError> {
        let method = {
            let state = self.state.read().expect("moment index lock");
            if state.selected_at_least(filter, self.exact_below) {
                SearchMethod::Approximate
            } else {
                SearchMethod::Exact
            }
        };
        Ok((
            self.search_using(method, space, query, filter, count)?,
            method,
        ))
    }

    /// Like [`MomentIndex::search`] with the method chosen by the caller (the benchmark
    /// compares them).
    pub fn search_using(
        &self,
        method: SearchMethod,
        space: Space,
        query: &[f32],
        filter: &WindowFilter,
        count: usize,
    ) -> Result<Vec<Hit>, IndexError> {
        let state = self.state.read().expect("moment index lock");
        let Some(index) = state.graph(space) else {
            return Ok(Vec::new());
        };
        if query.len() != index.dimensions() {
            return Err(IndexError(format!(
                "the query has {} values, the index {}",
                query.len(),
                index.dimensions()
            )));
        }
        // Unfiltered, both methods are usearch's: the graph walk, or its SIMD brute force.
        if method == SearchMethod::Approximate || filter.is_everything() {
            let matches = if filter.is_everything() {
                match method {
                    SearchMethod::Approximate => index.search(query, count),
                    SearchMethod::Exact => index.exact_search(query, count),
                }
                .map_err(hnsw_error)?
            } else {
                index
                    .filtered_search(query, count, |key| {
                        state
                            .windows
                            .get(&key)
                            .is_some_and(|window| filter.accepts(window))
                    })
                    .map_err(hnsw_error)?
            };
            let hits = matches
                .keys
                .iter()
                .zip(&matches.distances)
                .filter_map(|(key, &distance)| {
                    let window = state.windows.get(key)?;
                    Some((window.clone(), similarity(space, distance)))
                })
                .collect();
            return Ok(hits);
        }
        let keys: Vec<u64> = state.selected_keys(filter).collect();
        let mut scored = scan(index, space, query, &keys);
        if scored.len() > count {
            scored.select_nth_unstable_by(count, |a, b| b.1.total_cmp(&a.1));
            scored.truncate(count);
        }
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(scored
            .into_iter()
            .filter_map(|(key, score)| Some((state.windows.get(&key)?.clone(), score)))
            .collect())
    }
}

/// Selections at least this large are scanned on every core: each window costs a few
/// microseconds of cache and TLB misses (a random place in a graph of gigabytes), which a
/// second core overlaps, while starting the threads costs tens of microseconds.
const PARALLEL_SCAN_FROM: usize = 2_048;

/// The similarity to `query` of each of `keys`' vectors in `index` (keys without one are
/// left out): the exact search, over every core when there are many.
fn scan(index: &Index, space: Space, query: &[f32], keys: &[u64]) -> Vec<(u64, f32)> {
    let score_all = |keys: &[u64]| -> Vec<(u64, f32)> {
        let mut vector = vec![0.0; index.dimensions()];
        keys.iter()
            .filter_map(|&key| {
                if !matches!(index.get(key, &mut vector), Ok(found) if found > 0) {
                    return None;
                }
                let distance = match space {
                    Space::Text | Space::Visual => 1.0 - dot(query, &vector),
                    Space::Appearance => {
                        argus_operators::appearance::distance_squared(query, &vector)
                    }
                };
                Some((key, similarity(space, distance)))
            })
            .collect()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads == 1 || keys.len() < PARALLEL_SCAN_FROM {
        return score_all(keys);
    }
    std::thread::scope(|scope| {
        let parts: Vec<_> = keys
            .chunks(keys.len().div_ceil(threads))
            .map(|part| scope.spawn(move || score_all(part)))
            .collect();
        parts
            .into_iter()
            .flat_map(|part| part.join().expect("a moment scan thread panicked"))
            .collect()
    })
}

/// What a saved index keeps beside its graphs (`windows.msgpack`): the windows' text, times
/// and keys. Their vectors are in the graphs alone.
#[derive(Serialize)]
struct SavedIndexOut<'a> {
    format: u32,
    /// Where in the change log a restore catches up from (read before the copy).
    log: LogPosition,
    text_model: &'a str,
    visual_model: Option<&'a str>,
    /// Each space's dimension, when it has a graph (in `Space::ALL` order).
    dimensions: [Option<usize>; 3],
    next_key: u64,
    longest_ms: i64,
    windows: Vec<SavedWindowOut<'a>>,
}

#[derive(Serialize)]
struct SavedWindowOut<'a> {
    key: u64,
    camera: &'a str,
    start_ms: i64,
    end_ms: i64,
    ocr_text: &'a [String],
    tags: &'a [String],
    objects: &'a [String],
    caption: Option<&'a str>,
    stored_bytes: u32,
}

#[derive(Deserialize)]
struct SavedIndexIn {
    format: u32,
    log: LogPosition,
    text_model: String,
    visual_model: Option<String>,
    dimensions: [Option<usize>; 3],
    next_key: u64,
    longest_ms: i64,
    windows: Vec<SavedWindowIn>,
}

#[derive(Deserialize)]
struct SavedWindowIn {
    key: u64,
    camera: String,
    start_ms: i64,
    end_ms: i64,
    ocr_text: Vec<String>,
    tags: Vec<String>,
    objects: Vec<String>,
    caption: Option<String>,
    stored_bytes: u32,
}

/// 2: float16 graphs (1 was float32; such a save is rebuilt once).
const SAVED_FORMAT: u32 = 2;
const SAVED_WINDOWS: &str = "windows.msgpack";

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |error| IndexError(format!("{}: {error}", path.display()))
}

fn path_str(path: &Path) -> Result<&str, IndexError> {
    path.to_str()
        .ok_or_else(|| IndexError(format!("{} is not UTF-8", path.display())))
}

/// Forces a written file to the disk: the rename that publishes a save must not reach the
/// disk before the files it names.
fn sync(path: &Path) -> Result<(), IndexError> {
    std::fs::File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(io_error(path))
}

/// The folders a save goes through beside `dir`: written in `.saving`, the previous save
/// moved to `.previous` for the instant between the two renames.
fn save_folders(dir: &Path) -> (PathBuf, PathBuf) {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    (
        dir.with_file_name(format!("{name}.saving")),
        dir.with_file_name(format!("{name}.previous")),
    )
}

impl MomentIndex {
    /// Saves the index into the folder `dir`, replacing an earlier save atomically: the new
    /// save is written beside it and renamed into place, so a crash leaves one whole save.
    /// `log` is where the change log must be replayed from on top of this copy, read before
    /// this call (`MomentStore::replay_point`). Holds the read lock throughout (usearch
    /// writes a graph that must not change meanwhile): insertions wait, queries do not.
    /// Blocking file IO of seconds at 10^6 windows: call it on the blocking pool.
    pub fn save(&self, dir: &Path, log: LogPosition) -> Result<(), IndexError> {
        let (saving, previous) = save_folders(dir);
        if saving.exists() {
            std::fs::remove_dir_all(&saving).map_err(io_error(&saving))?;
        }
        std::fs::create_dir_all(&saving).map_err(io_error(&saving))?;
        {
            let state = self.state.read().expect("moment index lock");
            let mut dimensions = [None; 3];
            for ((space, graph), dimension) in
                Space::ALL.iter().zip(&state.graphs).zip(&mut dimensions)
            {
                let Some(graph) = graph else { continue };
                let path = saving.join(space.file_name());
                graph.save(path_str(&path)?).map_err(hnsw_error)?;
                sync(&path)?;
                *dimension = Some(graph.dimensions());
            }
            let saved = SavedIndexOut {
                format: SAVED_FORMAT,
                log,
                text_model: &self.models.text,
                visual_model: self.models.visual.as_deref(),
                dimensions,
                next_key: state.next_key,
                longest_ms: state.longest_ms,
                windows: state
                    .windows
                    .iter()
                    .map(|(&key, window)| SavedWindowOut {
                        key,
                        camera: &window.camera_id,
                        start_ms: window.start_ms,
                        end_ms: window.end_ms,
                        ocr_text: &window.ocr_text,
                        tags: &window.tags,
                        objects: &window.objects,
                        caption: window.caption.as_deref(),
                        stored_bytes: window.stored_bytes,
                    })
                    .collect(),
            };
            let path = saving.join(SAVED_WINDOWS);
            let file = std::fs::File::create(&path).map_err(io_error(&path))?;
            let mut writer = std::io::BufWriter::new(file);
            rmp_serde::encode::write_named(&mut writer, &saved)
                .map_err(|e| IndexError(format!("{}: {e}", path.display())))?;
            let file = writer
                .into_inner()
                .map_err(|e| io_error(&path)(e.into_error()))?;
            file.sync_all().map_err(io_error(&path))?;
        }
        if previous.exists() {
            std::fs::remove_dir_all(&previous).map_err(io_error(&previous))?;
        }
        if dir.exists() {
            std::fs::rename(dir, &previous).map_err(io_error(dir))?;
        }
        std::fs::rename(&saving, dir).map_err(io_error(&saving))?;
        if previous.exists() {
            std::fs::remove_dir_all(&previous).map_err(io_error(&previous))?;
        }
        Ok(())
    }

    /// Replaces the index's contents with the index saved in `dir`, and returns the change
    /// log's position to catch up from; `None` when nothing was saved, or it was saved for
    /// other models (its vectors would be in another space: the windows are loaded from
    /// Redis and re-embedded instead). The files are read without the lock; the swap itself
    /// is instant. Blocking file IO: call it on the blocking pool.
    pub fn restore(&self, dir: &Path) -> Result<Option<LogPosition>, IndexError> {
        let (_, previous) = save_folders(dir);
        // A crash between a save's two renames leaves only the previous save.
        let dir = if !dir.exists() && previous.exists() {
            previous.as_path()
        } else {
            dir
        };
        let path = dir.join(SAVED_WINDOWS);
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(&path)(e)),
        };
        let saved: SavedIndexIn = rmp_serde::from_read(std::io::BufReader::new(file))
            .map_err(|e| IndexError(format!("{}: {e}", path.display())))?;
        if saved.format != SAVED_FORMAT
            || saved.text_model != self.models.text
            || saved.visual_model != self.models.visual
        {
            tracing::info!(
                saved_text_model = saved.text_model,
                "the saved moment index is of other models or another format: not used"
            );
            return Ok(None);
        }
        let mut graphs: [Option<Index>; 3] = [None, None, None];
        for ((space, graph), dimensions) in Space::ALL
            .into_iter()
            .zip(&mut graphs)
            .zip(saved.dimensions)
        {
            let Some(dimensions) = dimensions else {
                continue;
            };
            let path = dir.join(space.file_name());
            // usearch takes the connectivity the graph was saved with.
            let index = new_hnsw(dimensions, space.metric(), self.connectivity)?;
            index.load(path_str(&path)?).map_err(hnsw_error)?;
            *graph = Some(index);
        }
        let mut state = State {
            windows: HashMap::with_capacity(saved.windows.len()),
            cameras: HashMap::new(),
            graphs: [None, None, None],
            longest_ms: saved.longest_ms,
            next_key: saved.next_key,
            excluded: HashSet::new(),
        };
        for window in saved.windows {
            let camera: Arc<str> = state
                .cameras
                .get_key_value(window.camera.as_str())
                .map_or_else(|| Arc::from(window.camera.as_str()), |(c, _)| c.clone());
            let indexed = IndexedWindow {
                camera_id: camera.clone(),
                start_ms: window.start_ms,
                end_ms: window.end_ms,
                ocr_text: window.ocr_text,
                tags: window.tags,
                objects: window.objects,
                caption: window.caption,
                stored_bytes: window.stored_bytes,
                key: window.key,
            };
            state
                .cameras
                .entry(camera)
                .or_default()
                .insert(indexed.start_ms, window.key);
            state.windows.insert(window.key, Arc::new(indexed));
        }
        state.graphs = graphs;
        let mut current = self.state.write().expect("moment index lock");
        // Cameras excluded meanwhile stay excluded (the save may predate the exclusion).
        state.excluded = std::mem::take(&mut current.excluded);
        let excluded_keys: Vec<u64> = state
            .excluded
            .iter()
            .filter_map(|camera| state.cameras.get(camera.as_str()))
            .flat_map(|starts| starts.values().copied())
            .collect();
        for key in excluded_keys {
            state.remove_key(key);
        }
        *current = state;
        drop(current);
        self.changes.fetch_add(1, Ordering::AcqRel);
        Ok(Some(saved.log))
    }
}

impl State {
    fn graph(&self, space: Space) -> Option<&Index> {
        let position = Space::ALL.iter().position(|&s| s == space)?;
        self.graphs[position].as_ref()
    }

    fn remove_key(&mut self, key: u64) {
        let Some(window) = self.windows.remove(&key) else {
            return;
        };
        if let Some(starts) = self.cameras.get_mut(&window.camera_id) {
            starts.remove(&window.start_ms);
            if starts.is_empty() {
                self.cameras.remove(&window.camera_id);
            }
        }
        for index in self.graphs.iter().flatten() {
            if index.contains(key) {
                // Removal only fails for a key that is absent, which was just checked.
                let _ = index.remove(key);
            }
        }
    }

    /// The keys of the windows `filter` accepts, read from the cameras' timelines: a window
    /// that starts after `since` overlaps the range without a look at its end, which only
    /// the few starting up to `longest_ms` before it need (each look is a cache miss, and
    /// the scan's selections run to tens of thousands).
    fn selected_keys<'a>(&'a self, filter: &'a WindowFilter) -> impl Iterator<Item = u64> + 'a {
        let since = filter.since_ms.unwrap_or(i64::MIN);
        let from = since.saturating_sub(self.longest_ms);
        let to = filter.until_ms.unwrap_or(i64::MAX);
        self.cameras
            .iter()
            .filter(|(camera, _)| {
                filter
                    .cameras
                    .as_ref()
                    .is_none_or(|cameras| cameras.contains(camera.as_ref()))
            })
            .flat_map(move |(_, starts)| starts.range(from..to))
            .filter(move |&(&start, key)| {
                start > since
                    || self
                        .windows
                        .get(key)
                        .is_some_and(|window| window.end_ms > since)
            })
            .map(|(_, &key)| key)
    }

    /// Whether `filter` selects at least `threshold` windows (counting stops there).
    fn selected_at_least(&self, filter: &WindowFilter, threshold: usize) -> bool {
        if filter.is_everything() {
            return self.windows.len() >= threshold;
        }
        self.selected_keys(filter).take(threshold).count() >= threshold
    }
}

/// Eight running sums: one chain of dependent additions would wait on each in turn.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..8 {
            sums[lane] += x[lane] * y[lane];
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// Turns an index distance into a similarity where higher is better: cosine for text; for
/// colour layouts a decreasing function of the L2 distance (one unit is a colour step of the
/// 0–255 scale, so frames of one scene score above ~0.8 and different scenes below ~0.4).
fn similarity(space: Space, distance: f32) -> f32 {
    match space {
        Space::Text | Space::Visual => 1.0 - distance,
        Space::Appearance => appearance_similarity(distance),
    }
}

/// The similarity of two colour layouts at squared L2 distance `distance`.
pub fn appearance_similarity(distance: f32) -> f32 {
    1.0 / (1.0 + distance.max(0.0).sqrt() / 32.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn window(camera: &str, start_s: i64, embedding: Option<Vec<f32>>) -> MomentWindow {
        let start = DateTime::<Utc>::from_timestamp(1_700_000_000 + start_s, 0).unwrap();
        MomentWindow {
            schema_version: 1,
            message_id: uuid::Uuid::now_v7(),
            camera_id: camera.into(),
            start,
            end: start + chrono::Duration::seconds(2),
            frames: 2,
            ocr_text: vec![],
            tags: vec![],
            objects: vec![],
            caption: None,
            embedding_model: "test".into(),
            text_embedding: embedding,
            appearance: vec![start_s as f32, 0.0, 0.0],
            visual_model: None,
            visual_embedding: None,
            produced_at: Utc::now(),
        }
    }

    fn models() -> IndexModels {
        IndexModels {
            text: "test".into(),
            visual: None,
        }
    }

    fn unit(angle: f32) -> Vec<f32> {
        vec![angle.cos(), angle.sin()]
    }

    fn ms(start_s: i64) -> i64 {
        (1_700_000_000 + start_s) * 1000
    }

    #[test]
    fn exact_and_approximate_searches_agree_and_honour_filters() {
        for exact_below in [usize::MAX, 0] {
            let index = MomentIndex::new(exact_below, models());
            for n in 0..50 {
                let camera = if n % 2 == 0 { "a" } else { "b" };
                index
                    .insert(&window(camera, n * 2, Some(unit(n as f32 * 0.03))))
                    .unwrap();
            }
            let filter = WindowFilter {
                cameras: Some(HashSet::from(["a".to_string()])),
                since_ms: Some(ms(20)),
                until_ms: Some(ms(60)),
            };
            let (hits, method) = index.search(Space::Text, &unit(0.0), &filter, 3).unwrap();
            let expected = if exact_below == 0 {
                SearchMethod::Approximate
            } else {
                SearchMethod::Exact
            };
            assert_eq!(method, expected);
            let starts: Vec<i64> = hits.iter().map(|(w, _)| w.start_ms).collect();
            assert_eq!(starts, vec![ms(20), ms(24), ms(28)], "{method:?}");
            assert!(hits.iter().all(|(w, _)| &*w.camera_id == "a"));
            assert!(hits[0].1 > hits[1].1);
        }
    }

    #[test]
    fn a_large_selection_is_scanned_exactly_and_keeps_windows_overlapping_its_start() {
        // More windows selected than `PARALLEL_SCAN_FROM`, so the scan is split over the
        // cores where there are several. Windows are 2 s long and start every second.
        let index = MomentIndex::new(usize::MAX, models());
        let windows: Vec<MomentWindow> = (0..4_000)
            .flat_map(|n| {
                let angle = |camera| match (camera, n) {
                    // Ends exactly at the range's start: outside it.
                    ("a", 998) => std::f32::consts::PI,
                    // Starts before the range and ends inside it: in it.
                    ("a", 999) => std::f32::consts::PI - 0.3,
                    ("b", 999) => std::f32::consts::PI,
                    _ => n as f32 * 0.000_4,
                };
                ["a", "b"].map(|camera| window(camera, n, Some(unit(angle(camera)))))
            })
            .collect();
        index.insert_many(&windows).unwrap();
        let filter = WindowFilter {
            cameras: Some(HashSet::from(["a".to_string()])),
            since_ms: Some(ms(1_000)),
            until_ms: Some(ms(3_200)),
        };
        let accepted = |w: &IndexedWindow| {
            &*w.camera_id == "a" && w.end_ms > ms(1_000) && w.start_ms < ms(3_200)
        };
        let query = unit(std::f32::consts::PI);
        let (hits, method) = index.search(Space::Text, &query, &filter, 10).unwrap();
        assert_eq!(method, SearchMethod::Exact);
        assert_eq!(hits[0].0.start_ms, ms(999));
        assert_eq!(&*hits[0].0.camera_id, "a");
        assert!(hits.iter().all(|(w, _)| accepted(w)));
        // The same as a brute force over the vectors the graph holds.
        let selected: Vec<Arc<IndexedWindow>> = {
            let state = index.state.read().unwrap();
            state
                .windows
                .values()
                .filter(|w| accepted(w))
                .cloned()
                .collect()
        };
        assert_eq!(selected.len(), 2_201);
        let mut expected: Vec<f32> = selected
            .iter()
            .map(|w| dot(&query, &index.vector(Space::Text, w).unwrap()))
            .collect();
        expected.sort_by(|a, b| b.total_cmp(a));
        let scores: Vec<f32> = hits.iter().map(|(_, score)| *score).collect();
        for (score, want) in scores.iter().zip(&expected) {
            assert!(
                (score - want).abs() < 1e-6,
                "{scores:?} against {:?}",
                &expected[..10]
            );
        }
    }

    #[test]
    fn windows_without_text_never_match_text_and_reinsertion_replaces() {
        let index = MomentIndex::new(usize::MAX, models());
        index.insert(&window("a", 0, None)).unwrap();
        index.insert(&window("a", 2, Some(unit(0.0)))).unwrap();
        index.insert(&window("a", 2, Some(unit(1.0)))).unwrap();
        assert_eq!(index.len(), 2);
        let (hits, _) = index
            .search(Space::Text, &unit(0.0), &WindowFilter::default(), 10)
            .unwrap();
        assert_eq!(hits.len(), 1);
        // The graph keeps float16 (the service rounds vectors to it before indexing; this
        // test's are not rounded).
        assert!(
            (hits[0].1 - 1.0_f32.cos()).abs() < 1e-3,
            "the newer version"
        );
        let (hits, _) = index
            .search(
                Space::Appearance,
                &[0.0, 0.0, 0.0],
                &WindowFilter::default(),
                10,
            )
            .unwrap();
        assert_eq!(hits[0].0.start_ms, ms(0), "appearance covers every window");
    }

    #[test]
    fn retention_removes_from_the_maps_and_from_hnsw() {
        let index = MomentIndex::new(0, models());
        for n in 0..10 {
            index.insert(&window("a", n * 2, Some(unit(0.0)))).unwrap();
        }
        assert_eq!(index.cutoff_keeping_newest("a", 4), Some(ms(12)));
        assert_eq!(index.remove_before("a", ms(12)), 6);
        assert_eq!(index.len(), 4);
        let (hits, method) = index
            .search(Space::Text, &unit(0.0), &WindowFilter::default(), 10)
            .unwrap();
        assert_eq!(method, SearchMethod::Approximate);
        assert_eq!(hits.len(), 4, "removed keys are gone from HNSW too");
        assert!(hits.iter().all(|(w, _)| w.start_ms >= ms(12)));
        assert_eq!(index.cutoff_keeping_newest("a", 4), None);
        assert_eq!(index.coverage()[0].windows, 4);
    }

    #[test]
    fn an_excluded_camera_leaves_the_index_and_stays_out_until_taken_again() {
        let index = MomentIndex::new(0, models());
        for n in 0..10 {
            let camera = if n % 2 == 0 { "mine" } else { "theirs" };
            index
                .insert(&window(camera, n * 2, Some(unit(n as f32))))
                .unwrap();
        }
        let folder = tempfile::tempdir().unwrap();
        index.save(folder.path(), LogPosition::default()).unwrap();
        index.exclude(HashSet::from(["theirs".to_string()]));
        assert_eq!(
            (index.camera_len("mine"), index.camera_len("theirs")),
            (5, 0)
        );
        // Whichever path brings its windows: the live feed, a load, a catch-up...
        index
            .insert(&window("theirs", 100, Some(unit(1.0))))
            .unwrap();
        assert_eq!(index.camera_len("theirs"), 0);
        // ...or reopening a save taken before the exclusion.
        index.restore(folder.path()).unwrap().unwrap();
        assert_eq!(
            (index.camera_len("mine"), index.camera_len("theirs")),
            (5, 0)
        );
        let (hits, _) = index
            .search(Space::Text, &unit(1.0), &WindowFilter::default(), 10)
            .unwrap();
        assert!(hits.iter().all(|(w, _)| &*w.camera_id == "mine"));
        index.exclude(HashSet::new());
        index
            .insert(&window("theirs", 100, Some(unit(1.0))))
            .unwrap();
        assert_eq!(index.camera_len("theirs"), 1);
    }

    #[test]
    fn a_saved_index_reopens_with_the_same_answers_and_without_removed_windows() {
        let dir = tempfile::tempdir().unwrap();
        let saved = dir.path().join("index-8090");
        let index = MomentIndex::new(0, models());
        for n in 0..60 {
            let camera = if n % 2 == 0 { "a" } else { "b" };
            index
                .insert(&window(camera, n * 2, Some(unit(n as f32 * 0.05))))
                .unwrap();
        }
        assert_eq!(index.remove_before("a", ms(40)), 10);
        let answers = |index: &MomentIndex, space: Space, query: &[f32]| {
            let (hits, method) = index
                .search(space, query, &WindowFilter::default(), 10)
                .unwrap();
            assert_eq!(method, SearchMethod::Approximate);
            hits.iter()
                .map(|(w, score)| (w.camera_id.to_string(), w.start_ms, *score, w.end_ms))
                .collect::<Vec<_>>()
        };
        index.save(&saved, LogPosition { ms: 7, seq: 1 }).unwrap();
        index.save(&saved, LogPosition { ms: 9, seq: 0 }).unwrap();

        let reopened = MomentIndex::new(0, models());
        assert_eq!(
            reopened.restore(&saved).unwrap(),
            Some(LogPosition { ms: 9, seq: 0 }),
            "the latest save"
        );
        assert_eq!(reopened.len(), 50);
        assert!(!reopened.contains("a", ms(0)), "removed before the save");
        assert_eq!(
            answers(&reopened, Space::Text, &unit(0.3)),
            answers(&index, Space::Text, &unit(0.3))
        );
        assert_eq!(
            answers(&reopened, Space::Appearance, &[30.0, 0.0, 0.0]),
            answers(&index, Space::Appearance, &[30.0, 0.0, 0.0])
        );
        assert_eq!(reopened.coverage()[0].windows, 20);
        // It goes on taking windows, after the saved keys.
        reopened.insert(&window("c", 500, Some(unit(0.3)))).unwrap();
        assert_eq!(answers(&reopened, Space::Text, &unit(0.3))[0].1, ms(500));
        let (_, previous) = save_folders(&saved);
        assert!(!previous.exists() && !save_folders(&saved).0.exists());

        let other = MomentIndex::new(
            0,
            IndexModels {
                text: "another-model".into(),
                visual: None,
            },
        );
        assert_eq!(other.restore(&saved).unwrap(), None, "another model's save");
        assert!(other.is_empty());
        assert_eq!(
            other.restore(&dir.path().join("nothing")).unwrap(),
            None,
            "nothing saved"
        );
    }

    #[test]
    fn a_graph_keeps_the_connectivity_it_was_built_with_across_a_save() {
        let dir = tempfile::tempdir().unwrap();
        let built = MomentIndex::new(usize::MAX, models()).with_connectivity(8);
        for n in 0..20 {
            built
                .insert(&window("a", n * 2, Some(unit(n as f32 * 0.1))))
                .unwrap();
        }
        let connectivity = |index: &MomentIndex| {
            index.state.read().unwrap().graphs[0]
                .as_ref()
                .unwrap()
                .connectivity()
        };
        assert_eq!(connectivity(&built), 8);
        built.save(dir.path(), LogPosition::default()).unwrap();
        let reopened = MomentIndex::new(usize::MAX, models()).with_connectivity(32);
        reopened.restore(dir.path()).unwrap().unwrap();
        assert_eq!(
            connectivity(&reopened),
            8,
            "a save is rebuilt only when it must be"
        );
        let (hits, _) = reopened
            .search(Space::Text, &unit(0.0), &WindowFilter::default(), 1)
            .unwrap();
        assert_eq!(hits[0].0.start_ms, ms(0));
    }

    #[test]
    fn a_memory_budget_keeps_the_newest_windows_that_fit() {
        let index = MomentIndex::new(usize::MAX, models());
        for n in 0..10 {
            index.insert(&window("a", n * 2, Some(unit(0.0)))).unwrap();
        }
        let each = stored::encode(&window("a", 0, Some(unit(0.0)))).len() as u64 + 100;
        assert_eq!(
            index.cutoff_within_bytes("a", 3 * each + each / 2, 100),
            Some(ms(12) + 1),
            "the newest three fit"
        );
        assert_eq!(index.cutoff_within_bytes("a", 10 * each, 100), None);
    }

    #[test]
    fn vectors_of_another_model_are_left_out_of_its_space() {
        let index = MomentIndex::new(usize::MAX, models());
        index.insert(&window("a", 0, Some(unit(0.0)))).unwrap();
        // Stored before the text model changed: another model, another dimension.
        let mut older = window("a", 2, Some(vec![1.0, 0.0, 0.0]));
        older.embedding_model = "an-older-model".into();
        assert!(!index.models().is_current(&older));
        index.insert(&older).unwrap();
        assert_eq!(index.len(), 2, "the window itself is kept");
        for exact_below in [usize::MAX, 0] {
            let index = MomentIndex::new(exact_below, models());
            index.insert(&older).unwrap();
            index.insert(&window("a", 0, Some(unit(0.0)))).unwrap();
            let (hits, _) = index
                .search(Space::Text, &unit(0.0), &WindowFilter::default(), 10)
                .expect("no dimension mismatch");
            let starts: Vec<i64> = hits.iter().map(|(w, _)| w.start_ms).collect();
            assert_eq!(starts, vec![ms(0)]);
        }
        // Re-embedded, it joins the space.
        index.insert(&window("a", 2, Some(unit(0.1)))).unwrap();
        let (hits, _) = index
            .search(Space::Text, &unit(0.0), &WindowFilter::default(), 10)
            .unwrap();
        assert_eq!(hits.len(), 2);
    }
}

//! `[moments]`: the moment index, and `[moments.retention]`, how long its windows are kept.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{CaptionsConfig, ModelsConfig};

/// The moment index: every stream is cut into windows that analysts search by text or image.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MomentsConfig {
    /// Index windows and answer moment queries.
    pub enabled: bool,
    /// Length of one indexed window (seconds of video).
    pub window_s: f64,
    /// The sentence-embedding model: a folder name under the model folder, or a path.
    pub text_model: PathBuf,
    /// An image-text encoder (CLIP or SigLIP, Hugging Face or ONNX layout): a folder under
    /// the model folder, or a path. When set, each window's middle frame is embedded in its
    /// space, so text queries also match what the video looks like ("a red car") and image
    /// queries match content, not only colours. Unset: text queries match OCR, tags and
    /// captions; image queries match colour layout.
    pub visual_model: Option<PathBuf>,
    /// The LLM that reranks a text query's best moments when the query asks for it
    /// (`rerank=true`): Llama family, HF layout, a folder under the model folder or a path.
    /// Read on the first such query.
    pub rerank_model: PathBuf,
    /// How many of the best moments a rerank re-scores (at least the query's `limit`).
    pub rerank_candidates: usize,
    /// Below this many windows in a query's camera and time range the search is exact (a scan);
    /// above, it uses the approximate (HNSW) index.
    pub exact_search_below: usize,
    /// Links per window in the approximate index's graph (HNSW's M): more hold recall up in
    /// larger indexes for more memory and slower indexing. A saved index keeps its own.
    pub index_connectivity: usize,
    /// Most moments one query may ask for.
    pub max_results: usize,
    /// Where the windows' thumbnails and the saved approximate index are kept, in a folder
    /// per Redis key prefix; unset: `$XDG_STATE_HOME/argus/moments` (`~/.local/state/...`).
    pub data_dir: Option<PathBuf>,
    /// How often the approximate index is saved to `data_dir` (seconds); it is saved at
    /// shutdown too, and a start reopens it instead of rebuilding it from Redis.
    pub index_save_interval_s: u64,
    pub retention: RetentionConfig,
}

/// The `[moments]` section of the embedded default.toml.
impl Default for MomentsConfig {
    fn default() -> Self {
        super::EMBEDDED.moments.clone()
    }
}

impl MomentsConfig {
    pub fn text_model_dir(&self, models: &ModelsConfig) -> PathBuf {
        CaptionsConfig::model_dir(&self.text_model, models)
    }

    pub fn rerank_model_dir(&self, models: &ModelsConfig) -> PathBuf {
        CaptionsConfig::model_dir(&self.rerank_model, models)
    }

    pub fn visual_model_dir(&self, models: &ModelsConfig) -> Option<PathBuf> {
        let model = self.visual_model.as_deref()?;
        Some(CaptionsConfig::model_dir(model, models))
    }

    /// `data_dir` (or its default) for the windows stored under `key_prefix`: the thumbnails
    /// and saved index of one Redis namespace never mix with another's.
    pub fn data_dir(&self, key_prefix: &str) -> PathBuf {
        let root = self.data_dir.clone().unwrap_or_else(|| {
            std::env::var_os("XDG_STATE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    std::env::var_os("HOME")
                        .map(PathBuf::from)
                        .unwrap_or_else(std::env::temp_dir)
                        .join(".local/state")
                })
                .join("argus/moments")
        });
        root.join(key_prefix)
    }
}

/// How long each camera's windows are kept, in Redis and in the index. Unset: forever.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Windows older than this (by their video time) are deleted (seconds).
    pub max_age_s: Option<u64>,
    /// Each camera keeps at most this many windows, the newest.
    pub max_windows: Option<usize>,
    /// Each camera's windows take at most this much Redis memory (bytes, as estimated from
    /// their stored size), the newest kept.
    pub max_bytes_per_camera: Option<u64>,
    /// How often retention runs (seconds).
    pub interval_s: u64,
}

/// The `[moments.retention]` section of the embedded default.toml.
impl Default for RetentionConfig {
    fn default() -> Self {
        super::EMBEDDED.moments.retention.clone()
    }
}

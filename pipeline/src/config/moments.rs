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
    /// Most moments one query may ask for.
    pub max_results: usize,
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
}

/// How long each camera's windows are kept, in Redis and in the index. Unset: forever.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Windows older than this (by their video time) are deleted (seconds).
    pub max_age_s: Option<u64>,
    /// Each camera keeps at most this many windows, the newest.
    pub max_windows: Option<usize>,
    /// How often retention runs (seconds).
    pub interval_s: u64,
}

/// The `[moments.retention]` section of the embedded default.toml.
impl Default for RetentionConfig {
    fn default() -> Self {
        super::EMBEDDED.moments.retention.clone()
    }
}

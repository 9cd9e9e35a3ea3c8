//! `[captions]`: chunk captions with self-correction, and `[alerts]`, the standing rules
//! checked on every captioned chunk.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ModelsConfig;

/// Chunk captions with CyberV self-correction: each stream is cut into chunks, the LLM
/// writes a caption from the chunk's perception results, and a low-confidence caption is
/// re-done on densely re-examined key segments and published as a revision.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptionsConfig {
    /// Off unless configured: the LLM needs a core of its own to keep up with live video
    /// (`make run` turns it on for the sample video).
    pub enabled: bool,
    /// Length of one chunk (seconds of video).
    pub chunk_s: f64,
    /// Segments per chunk: the first round describes one frame per segment, and a
    /// correction re-examines every frame of the key segments.
    pub segments: usize,
    /// The LLM (Llama family, HF layout): a folder under the model folder, or a path.
    pub llm_model: PathBuf,
    /// The full model path: a folder with `vision/` (SigLIP or CLIP), `projector/` (Video-CCAM)
    /// and `llm/` (Llama family), under the model folder or a path. When set, chunks are
    /// captioned from their frames; unset, from the perception results. Questions about
    /// stored video always use `llm_model` over the stored observations (frames are not kept).
    pub video_model: Option<PathBuf>,
    /// The ImageNet tagger (ONNX): a folder under the model folder, or a path.
    pub tag_model: PathBuf,
    /// Tags kept per frame.
    pub tags_per_frame: usize,
    /// n: candidate answers per round (one greedy, n − 1 sampled).
    pub candidates: usize,
    /// θ: the best answer is accepted when its support exceeds n · θ.
    pub threshold: f32,
    /// Segments a correction re-examines.
    pub key_segments: usize,
    pub max_new_tokens: usize,
    /// Sampling temperature of the n − 1 sampled candidates.
    pub temperature: f64,
    /// The correction round's (low) temperature.
    pub correction_temperature: f64,
    /// Chunks waiting for the LLM; a live stream's chunk that finds the queue full is
    /// skipped (counted), a recording waits.
    pub queue: usize,
    /// Captions kept per camera in Redis (the newest).
    pub keep_per_camera: usize,
}

/// The `[captions]` section of the embedded default.toml.
impl Default for CaptionsConfig {
    fn default() -> Self {
        super::EMBEDDED.captions.clone()
    }
}

impl CaptionsConfig {
    /// `model` resolved against the model folder unless it is absolute.
    pub fn model_dir(model: &Path, models: &ModelsConfig) -> PathBuf {
        if model.is_absolute() {
            model.to_path_buf()
        } else {
            models.resolve_dir().join(model)
        }
    }
}

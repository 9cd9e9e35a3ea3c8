//! Scene-text OCR with PaddleOCR's PP-OCRv4 models, run through ONNX Runtime.
//!
//! The stages follow the reference pipeline of RapidOCR (the package that ships the models):
//! [`TextDetector`] finds text regions with Differentiable Binarization, each region is cut out
//! with a perspective warp, and [`TextRecognizer`] reads it with a CTC decoder whose alphabet
//! is stored in the recognition model's own metadata. Parameters default to RapidOCR's
//! `config.yaml`, so results match what users of that package see.

mod detect;
mod geometry;
mod recognize;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use detect::TextDetector;
pub use recognize::TextRecognizer;

use crate::{BgrImage, OperatorError};

/// File names inside the model directory, as the `rapidocr-onnxruntime` wheel ships them.
pub const DETECTION_MODEL: &str = "ch_PP-OCRv4_det_infer.onnx";
pub const RECOGNITION_MODEL: &str = "ch_PP-OCRv4_rec_infer.onnx";

/// Tunables of the OCR operator. Defaults are RapidOCR's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OcrConfig {
    /// The shorter image side is scaled up to at least this many pixels before detection.
    pub det_limit_side_len: u32,
    /// Probability above which a pixel counts as text.
    pub det_thresh: f32,
    /// Mean probability a region needs to be kept.
    pub det_box_thresh: f32,
    /// How far (relative to area / perimeter) a region is grown before cropping.
    pub det_unclip_ratio: f32,
    /// At most this many regions per frame.
    pub det_max_candidates: usize,
    /// Recognised lines scoring below this are dropped.
    pub text_score: f32,
    /// Lines recognised per model call.
    pub rec_batch_size: usize,
    /// ONNX Runtime intra-op threads per model (0 = one per core).
    pub threads: usize,
}

impl Default for OcrConfig {
    fn default() -> Self {
        Self {
            det_limit_side_len: 736,
            det_thresh: 0.3,
            det_box_thresh: 0.5,
            det_unclip_ratio: 1.6,
            det_max_candidates: 1000,
            text_score: 0.5,
            rec_batch_size: 6,
            threads: 0,
        }
    }
}

/// One recognised line of text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextLine {
    pub text: String,
    /// Mean per-character probability, 0..1.
    pub score: f32,
    /// Corners in frame pixels: top-left, top-right, bottom-right, bottom-left.
    pub quad: [[f32; 2]; 4],
}

/// The full OCR operator: detection then recognition.
pub struct PpOcr {
    detector: TextDetector,
    recognizer: TextRecognizer,
    config: OcrConfig,
}

impl PpOcr {
    /// Loads both models from `model_dir` (the folder holding the `.onnx` files).
    pub fn load(model_dir: &Path, config: OcrConfig) -> Result<Self, OperatorError> {
        let detector = TextDetector::load(&model_dir.join(DETECTION_MODEL), &config)?;
        let recognizer = TextRecognizer::load(&model_dir.join(RECOGNITION_MODEL), &config)?;
        Ok(Self {
            detector,
            recognizer,
            config,
        })
    }

    pub fn config(&self) -> &OcrConfig {
        &self.config
    }

    /// Reads all text in a frame, top-to-bottom then left-to-right.
    pub fn recognize(&mut self, image: &BgrImage) -> Result<Vec<TextLine>, OperatorError> {
        Ok(self.recognize_batch(&[image])?.pop().unwrap_or_default())
    }

    /// Reads several frames (from many cameras) at once: detection runs once per group of
    /// same-sized frames, recognition once per batch of lines from all frames together.
    pub fn recognize_batch(
        &mut self,
        images: &[&BgrImage],
    ) -> Result<Vec<Vec<TextLine>>, OperatorError> {
        let detections = self.detector.detect_batch(images)?;
        let mut crops = Vec::new();
        for (image, quads) in images.iter().zip(&detections) {
            for quad in quads {
                crops.push(geometry::crop_quad(image, quad)?);
            }
        }
        let mut readings = if crops.is_empty() {
            Vec::new()
        } else {
            self.recognizer.recognize(&crops)?
        }
        .into_iter();
        Ok(detections
            .into_iter()
            .map(|quads| {
                quads
                    .into_iter()
                    .zip(readings.by_ref())
                    .filter(|(_, (text, score))| {
                        *score >= self.config.text_score && !text.trim().is_empty()
                    })
                    .map(|(quad, (text, score))| TextLine { text, score, quad })
                    .collect()
            })
            .collect())
    }
}

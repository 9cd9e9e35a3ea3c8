//! Whole-frame ImageNet tags with EfficientNet-Lite0, run through ONNX Runtime.
//!
//! A frame gets the likeliest of ImageNet's 1000 classes ("baboon", "fire engine", "traffic
//! light") with their probabilities: coarse, but it costs about 10 ms per frame on two CPU
//! cores and needs no weights beyond the ones a registry ships, so every camera can have it.
//!
//! The model is exported by `deploy/convert_efficientnet_lite0.py` (run by `deploy/setup.sh`),
//! which stores the class names, the input size and the normalisation in the ONNX file's own
//! metadata: this operator reads everything it needs from that one file, so a model and its
//! labels can never drift apart.

use std::path::Path;

use ndarray::Array4;
use opencv::core::{Mat, Size};
use opencv::imgproc;
use opencv::prelude::*;
use ort::session::Session;
use ort::value::TensorRef;
use serde::{Deserialize, Serialize};

use crate::{onnx, BgrImage, OperatorError};

/// File name inside the model directory, as `deploy/setup.sh` writes it.
pub const MODEL_FILE: &str = "efficientnet-lite0.onnx";

const MODEL: &str = "EfficientNet-Lite0";

/// One ImageNet class seen in a frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    /// The class name, e.g. "baboon" (torchvision's short ImageNet names).
    pub label: String,
    /// Softmax probability over the 1000 classes, 0..1.
    pub score: f32,
}

/// The ImageNet tagger.
pub struct ImageTagger {
    session: Session,
    /// In logit order.
    labels: Vec<String>,
    /// Side of the square network input, in pixels.
    input_size: i32,
    /// Per channel, RGB order, in 0–255 pixel units: input = (pixel - mean) / std.
    mean: [f32; 3],
    std: [f32; 3],
}

impl ImageTagger {
    /// Loads `efficientnet-lite0.onnx` from `dir` (ONNX Runtime chooses the thread count).
    pub fn load(dir: &Path) -> Result<Self, OperatorError> {
        let path = dir.join(MODEL_FILE);
        if !path.is_file() {
            return Err(OperatorError::MissingModel {
                path,
                hint: "run deploy/setup.sh, which converts the shipped EfficientNet-Lite0 \
                       weights to ONNX"
                    .into(),
            });
        }
        let session = onnx::load_session(&path, 0, true)?;
        let load_error = |message: String| OperatorError::ModelLoad {
            path: path.clone(),
            message,
        };
        let field = |key: &str| {
            onnx::custom_metadata(
                &session,
                &path,
                key,
                "export it with deploy/convert_efficientnet_lite0.py",
            )
        };
        let labels: Vec<String> = field("labels")?.lines().map(str::to_owned).collect();
        if labels.is_empty() {
            return Err(load_error("the `labels` metadata is empty".into()));
        }
        let input_size = field("input_size")?
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|&size| size > 0)
            .ok_or_else(|| load_error("`input_size` is not a positive integer".into()))?;
        let triple = |key: &str| -> Result<[f32; 3], OperatorError> {
            let values: Vec<f32> = field(key)?
                .split(',')
                .map(|v| v.trim().parse::<f32>())
                .collect::<Result<_, _>>()
                .map_err(|e| load_error(format!("`{key}` is not a list of numbers: {e}")))?;
            <[f32; 3]>::try_from(values)
                .map_err(|v| load_error(format!("`{key}` has {} values, expected 3", v.len())))
        };
        let mean = triple("mean")?;
        let std = triple("std")?;
        if std.iter().any(|&s| s <= 0.0) {
            return Err(load_error(format!("`std` {std:?} must be positive")));
        }
        Ok(Self {
            session,
            labels,
            input_size,
            mean,
            std,
        })
    }

    /// The `top_k` likeliest classes of a frame, most likely first.
    pub fn tag(&mut self, image: &BgrImage, top_k: usize) -> Result<Vec<Tag>, OperatorError> {
        Ok(self.tag_batch(&[image], top_k)?.pop().unwrap_or_default())
    }

    /// Tags several frames (from many cameras) in one model call; one list per frame, in order.
    pub fn tag_batch(
        &mut self,
        images: &[&BgrImage],
        top_k: usize,
    ) -> Result<Vec<Vec<Tag>>, OperatorError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let input = self.normalized_input(images)?;
        let outputs = self
            .session
            .run(ort::inputs![
                TensorRef::from_array_view(&input).map_err(inference_error)?
            ])
            .map_err(inference_error)?;
        let (shape, logits) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(inference_error)?;
        let expected = [images.len() as i64, self.labels.len() as i64];
        if **shape != expected {
            return Err(OperatorError::UnexpectedOutput {
                model: MODEL.into(),
                message: format!(
                    "expected {expected:?} logits (one per label in the metadata), got {shape:?}"
                ),
            });
        }
        Ok(logits
            .chunks_exact(self.labels.len())
            .map(|row| top_tags(&self.labels, row, top_k))
            .collect())
    }

    /// Frames resized to the network's square input, RGB, normalised, NCHW. The whole frame is
    /// squeezed into the square rather than centre-cropped as in ImageNet evaluation: a camera
    /// frame is wide, and a crop would never see what happens at its sides.
    fn normalized_input(&self, images: &[&BgrImage]) -> Result<Array4<f32>, OperatorError> {
        let side = self.input_size as usize;
        let mut input = Array4::<f32>::zeros((images.len(), 3, side, side));
        for (slot, image) in images.iter().enumerate() {
            let mut resized = Mat::default();
            imgproc::resize(
                &image.as_mat()?,
                &mut resized,
                Size::new(self.input_size, self.input_size),
                0.0,
                0.0,
                // frames are shrunk several times over: area averaging does not alias
                imgproc::INTER_AREA,
            )?;
            let pixels = resized.data_bytes()?;
            for (index, bgr) in pixels.chunks_exact(3).enumerate() {
                let (y, x) = (index / side, index % side);
                for (channel, &value) in bgr.iter().rev().enumerate() {
                    input[[slot, channel, y, x]] =
                        (value as f32 - self.mean[channel]) / self.std[channel];
                }
            }
        }
        Ok(input)
    }
}

/// The `top_k` likeliest classes of one frame's logits, most likely first.
fn top_tags(labels: &[String], logits: &[f32], top_k: usize) -> Vec<Tag> {
    let probabilities = softmax(logits);
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_unstable_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
    order
        .into_iter()
        .take(top_k)
        .map(|class| Tag {
            label: labels[class].clone(),
            score: probabilities[class],
        })
        .collect()
}

fn inference_error(error: impl std::fmt::Display) -> OperatorError {
    OperatorError::Inference {
        model: MODEL.into(),
        message: error.to_string(),
    }
}

/// Probabilities from logits, shifted by the largest logit so `exp` cannot overflow.
fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_is_a_distribution_even_for_huge_logits() {
        let probabilities = softmax(&[1000.0, 1000.0, 0.0]);
        assert!((probabilities[0] - 0.5).abs() < 1e-6);
        assert!((probabilities[1] - 0.5).abs() < 1e-6);
        assert!(probabilities[2] < 1e-6);
        assert!((probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
}

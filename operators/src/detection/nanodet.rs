//! NanoDet (RangiLyu/nanodet, Apache-2.0): an anchor-free detector with a GFL head.
//!
//! The converted graph takes a 416×416 RGB frame, NCHW, normalised with NanoDet's own
//! per-channel mean and std. Human (the npm package's library) feeds it RGB / 255 instead;
//! on 30 vtest.avi frames that found 6.1 people per frame against 7.6 (the misses being
//! people in plain view), and BGR / 255 found almost none: the graph wants what upstream's
//! training fed it, in RGB order.
//!
//! For each stride (8, 16, 32) it returns, per cell of a row-major grid, 80 class
//! probabilities and 4 × 11 logits: for each side of the box (left, top, right, bottom) a
//! distribution over distances 0..=10 strides from the cell's centre. The distance is that
//! distribution's expected value (Generalized Focal Loss), as upstream's demos decode it.

use std::path::Path;

use ndarray::{Array4, ArrayViewD};
use ort::session::Session;

use super::{declared_shape, letterboxed, Candidate, Filter, Letterbox, COCO_CLASSES};
use crate::{BgrImage, OperatorError};

/// Side of the square input, in pixels.
const SIDE: i32 = 416;
const STRIDES: [usize; 3] = [8, 16, 32];
/// Distance bins per box side: reg_max 10, plus zero.
const BINS: usize = 11;
/// NanoDet's normalisation (ImageNet's, in 0–255 units), RGB order.
const MEAN: [f32; 3] = [123.675, 116.28, 103.53];
const STD: [f32; 3] = [58.395, 57.12, 57.375];

pub(super) struct NanoDet {
    /// Per stride, the names of the class-score output and of the box-bin output.
    outputs: [(String, String); 3],
}

impl NanoDet {
    /// Finds each stride's two outputs by their shapes: the converter names them `Identity*`,
    /// in no order that says which is which.
    pub(super) fn new(session: &Session, path: &Path) -> Result<Self, OperatorError> {
        let input = session.inputs().first().map(|i| i.name().to_owned());
        let input = input.ok_or_else(|| OperatorError::UnsupportedModel {
            path: path.to_owned(),
            message: "the model has no input".into(),
        })?;
        declared_shape(session, path, &input, &[1, 3, SIDE as i64, SIDE as i64])?;
        let find = |cells: usize, width: usize| {
            session
                .outputs()
                .iter()
                .find(|output| {
                    output.dtype().tensor_shape().map(|shape| shape.to_vec())
                        == Some(vec![1, cells as i64, width as i64])
                })
                .map(|output| output.name().to_owned())
                .ok_or_else(|| OperatorError::UnsupportedModel {
                    path: path.to_owned(),
                    message: format!("no output of shape [1, {cells}, {width}]"),
                })
        };
        let level = |stride: usize| -> Result<(String, String), OperatorError> {
            let cells = (SIDE as usize / stride).pow(2);
            Ok((find(cells, COCO_CLASSES.len())?, find(cells, 4 * BINS)?))
        };
        Ok(Self {
            outputs: [level(STRIDES[0])?, level(STRIDES[1])?, level(STRIDES[2])?],
        })
    }

    pub(super) fn decode<'a>(
        &self,
        output: impl Fn(&str) -> Result<ArrayViewD<'a, f32>, OperatorError>,
        filter: &Filter,
    ) -> Result<Vec<Candidate>, OperatorError> {
        let mut candidates = Vec::new();
        for (stride, (scores, boxes)) in STRIDES.into_iter().zip(&self.outputs) {
            let (scores, boxes) = (output(scores)?, output(boxes)?);
            let contiguous = || OperatorError::UnexpectedOutput {
                model: "NanoDet".into(),
                message: "an output tensor is not contiguous".into(),
            };
            decode_level(
                scores.as_slice().ok_or_else(contiguous)?,
                boxes.as_slice().ok_or_else(contiguous)?,
                stride,
                filter,
                &mut candidates,
            );
        }
        Ok(candidates)
    }
}

/// The frame as NanoDet's `[1, 3, 416, 416]` input.
pub(super) fn input(image: &BgrImage) -> Result<(Array4<f32>, Letterbox), OperatorError> {
    let (nhwc, letterbox) = letterboxed(image, SIDE, MEAN, STD)?;
    let nchw = nhwc
        .permuted_axes([0, 3, 1, 2])
        .as_standard_layout()
        .into_owned();
    Ok((nchw, letterbox))
}

/// The candidates of one stride: every wanted class above the threshold in every cell (one
/// cell may hold a person and the bicycle under them).
fn decode_level(
    scores: &[f32],
    bins: &[f32],
    stride: usize,
    filter: &Filter,
    candidates: &mut Vec<Candidate>,
) {
    let width = SIDE as usize / stride;
    let rows = scores
        .chunks_exact(COCO_CLASSES.len())
        .zip(bins.chunks_exact(4 * BINS));
    for (cell, (class_scores, cell_bins)) in rows.enumerate() {
        let mut bbox = None;
        for (class, &score) in class_scores.iter().enumerate() {
            if filter.keeps(class, score) {
                let bbox = *bbox.get_or_insert_with(|| cell_box(cell, width, stride, cell_bins));
                candidates.push(Candidate { class, score, bbox });
            }
        }
    }
}

/// A cell's box in input pixels: each side's expected distance from the cell's centre.
fn cell_box(cell: usize, width: usize, stride: usize, bins: &[f32]) -> [f32; 4] {
    let stride_px = stride as f32;
    let centre_x = ((cell % width) as f32 + 0.5) * stride_px;
    let centre_y = ((cell / width) as f32 + 0.5) * stride_px;
    let mut distance = [0.0f32; 4];
    for (side, logits) in bins.chunks_exact(BINS).enumerate() {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let (mut total, mut weighted) = (0.0f32, 0.0f32);
        for (bin, &logit) in logits.iter().enumerate() {
            let p = (logit - max).exp();
            total += p;
            weighted += p * bin as f32;
        }
        distance[side] = weighted / total * stride_px;
    }
    [
        centre_x - distance[0],
        centre_y - distance[1],
        centre_x + distance[2],
        centre_y + distance[3],
    ]
}

#[cfg(test)]
mod tests {
    use super::super::{filter, DetectorConfig};
    use super::*;

    #[test]
    fn a_cell_decodes_to_its_centre_plus_the_expected_distances() {
        // stride 32: a 13 x 13 grid; cell 14 is (x 1, y 1), centred on (48, 48)
        let cells = 13 * 13;
        let mut scores = vec![0.0; cells * 80];
        scores[14 * 80] = 0.9; // person
        scores[14 * 80 + 32] = 0.99; // sports ball: not wanted by default
        scores[20 * 80] = 0.2; // a person below the threshold
        let mut bins = vec![0.0; cells * 44];
        // left 1 stride, top 2, right 3, bottom 0: one bin far likelier than the rest
        for (side, bin) in [1, 2, 3, 0].into_iter().enumerate() {
            bins[14 * 44 + side * BINS + bin] = 50.0;
        }
        let filter = filter(&DetectorConfig::default()).unwrap();
        let mut found = Vec::new();
        decode_level(&scores, &bins, 32, &filter, &mut found);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].class, found[0].score), (0, 0.9));
        let expected = [16.0, -16.0, 144.0, 48.0];
        for (got, want) in found[0].bbox.iter().zip(expected) {
            assert!((got - want).abs() < 1e-3, "{:?}", found[0].bbox);
        }
    }

    #[test]
    fn flat_bins_give_the_middle_distance() {
        // equal logits: the expected bin is 5, so every side is 5 strides from the centre
        let bbox = cell_box(0, 52, 8, &[0.0; 44]);
        assert_eq!(bbox, [4.0 - 40.0, 4.0 - 40.0, 4.0 + 40.0, 4.0 + 40.0]);
    }
}

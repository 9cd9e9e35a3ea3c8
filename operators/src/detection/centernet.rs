//! CenterNet on a MobileNetV3 backbone (610265158/mobilenetv3_centernet; no licence found
//! upstream, hence not the default).
//!
//! The converted graph takes a 512×512 RGB frame, NHWC, in 0–255 pixel units, letterboxed as
//! upstream's own demo does (centred, black bars). It decodes its heatmap itself and returns
//! `tower_0/detections`, `[1, 100, 6]`: the 100 best peaks as x1, y1, x2, y2 in input pixels,
//! score and class index, best first.

use std::path::Path;

use ndarray::{Array4, ArrayViewD};
use ort::session::Session;

use super::{declared_shape, letterboxed, Candidate, Filter, Letterbox, COCO_CLASSES};
use crate::{BgrImage, OperatorError};

/// Side of the square input, in pixels.
const SIDE: i32 = 512;
const OUTPUT: &str = "tower_0/detections";
const ROWS: usize = 100;
/// x1, y1, x2, y2, score, class.
const COLUMNS: usize = 6;

pub(super) struct CenterNet;

impl CenterNet {
    pub(super) fn new(session: &Session, path: &Path) -> Result<Self, OperatorError> {
        let input = session.inputs().first().map(|i| i.name().to_owned());
        let input = input.ok_or_else(|| OperatorError::UnsupportedModel {
            path: path.to_owned(),
            message: "the model has no input".into(),
        })?;
        declared_shape(session, path, &input, &[1, SIDE as i64, SIDE as i64, 3])?;
        declared_shape(session, path, OUTPUT, &[1, ROWS as i64, COLUMNS as i64])?;
        Ok(Self)
    }

    pub(super) fn decode<'a>(
        &self,
        output: impl Fn(&str) -> Result<ArrayViewD<'a, f32>, OperatorError>,
        filter: &Filter,
    ) -> Result<Vec<Candidate>, OperatorError> {
        let rows = output(OUTPUT)?;
        let rows = rows
            .as_slice()
            .ok_or_else(|| OperatorError::UnexpectedOutput {
                model: "CenterNet".into(),
                message: format!("`{OUTPUT}` is not contiguous"),
            })?;
        Ok(decode_rows(rows, filter))
    }
}

/// The frame as CenterNet's `[1, 512, 512, 3]` input.
pub(super) fn input(image: &BgrImage) -> Result<(Array4<f32>, Letterbox), OperatorError> {
    letterboxed(image, SIDE, [0.0; 3], [1.0; 3])
}

fn decode_rows(rows: &[f32], filter: &Filter) -> Vec<Candidate> {
    rows.chunks_exact(COLUMNS)
        .filter_map(|row| {
            // the class index is a float in the graph: anything but a valid index is skipped
            let class = row[5];
            let valid = class >= 0.0 && class < COCO_CLASSES.len() as f32 && class.fract() == 0.0;
            let class = class as usize;
            (valid && filter.keeps(class, row[4])).then(|| Candidate {
                class,
                score: row[4],
                bbox: [row[0], row[1], row[2], row[3]],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{filter, DetectorConfig};
    use super::*;

    #[test]
    fn rows_are_filtered_by_score_and_class() {
        let rows = [
            [10.0, 20.0, 30.0, 60.0, 0.8, 0.0], // person
            [0.0, 0.0, 5.0, 5.0, 0.9, 32.0],    // sports ball: not wanted by default
            [1.0, 2.0, 3.0, 4.0, 0.1, 0.0],     // a person below the threshold
            [1.0, 2.0, 3.0, 4.0, 0.9, 80.0],    // no such class
            [40.0, 40.0, 90.0, 70.0, 0.5, 7.0], // truck
        ]
        .concat();
        let found = decode_rows(&rows, &filter(&DetectorConfig::default()).unwrap());
        let summary: Vec<(usize, f32, [f32; 4])> =
            found.iter().map(|c| (c.class, c.score, c.bbox)).collect();
        assert_eq!(
            summary,
            [
                (0, 0.8, [10.0, 20.0, 30.0, 60.0]),
                (7, 0.5, [40.0, 40.0, 90.0, 70.0])
            ]
        );
    }
}

//! Text recognition: PP-OCRv4's CRNN-style model with greedy CTC decoding.

use std::path::Path;

use ndarray::Array4;
use opencv::core::{Mat, Size};
use opencv::imgproc;
use opencv::prelude::*;
use ort::session::Session;
use ort::value::TensorRef;

use super::OcrConfig;
use crate::{onnx, OperatorError};

const MODEL: &str = "PP-OCRv4 recognition";
/// The model's input height, and its nominal width for a single short line.
const INPUT_HEIGHT: i32 = 48;
const NOMINAL_WIDTH: i32 = 320;

pub struct TextRecognizer {
    session: Session,
    /// Index 0 is the CTC blank; the last entry is the space PaddleOCR appends.
    alphabet: Vec<String>,
    batch_size: usize,
}

impl TextRecognizer {
    pub fn load(path: &Path, config: &OcrConfig) -> Result<Self, OperatorError> {
        let session = onnx::load_session(path, config.threads, config.spin_wait)?;
        let characters = onnx::custom_metadata(
            &session,
            path,
            "character",
            "it holds the alphabet: is this a PP-OCR recognition model?",
        )?;
        let mut alphabet = vec![String::new()];
        alphabet.extend(characters.lines().map(str::to_owned));
        alphabet.push(" ".into());
        Ok(Self {
            session,
            alphabet,
            batch_size: config.rec_batch_size.max(1),
        })
    }

    /// Reads each cropped line; returns `(text, mean character probability)` per crop.
    pub fn recognize(&mut self, crops: &[Mat]) -> Result<Vec<(String, f32)>, OperatorError> {
        let aspect = |crop: &Mat| crop.cols() as f32 / crop.rows().max(1) as f32;
        // Batching lines of similar length wastes the least padding.
        let mut order: Vec<usize> = (0..crops.len()).collect();
        order.sort_by(|&a, &b| aspect(&crops[a]).total_cmp(&aspect(&crops[b])));

        let mut readings = vec![(String::new(), 0.0); crops.len()];
        for batch in order.chunks(self.batch_size) {
            let widest = batch
                .iter()
                .map(|&i| aspect(&crops[i]))
                .fold(NOMINAL_WIDTH as f32 / INPUT_HEIGHT as f32, f32::max);
            let input_width = (INPUT_HEIGHT as f32 * widest) as i32;
            let mut input =
                Array4::<f32>::zeros((batch.len(), 3, INPUT_HEIGHT as usize, input_width as usize));
            for (slot, &index) in batch.iter().enumerate() {
                let crop = &crops[index];
                let resized_width =
                    ((INPUT_HEIGHT as f32 * aspect(crop)).ceil() as i32).clamp(1, input_width);
                let mut resized = Mat::default();
                imgproc::resize(
                    crop,
                    &mut resized,
                    Size::new(resized_width, INPUT_HEIGHT),
                    0.0,
                    0.0,
                    imgproc::INTER_LINEAR,
                )?;
                let pixels = resized.data_bytes()?;
                for (pixel, bgr) in pixels.chunks_exact(3).enumerate() {
                    let (y, x) = (
                        pixel / resized_width as usize,
                        pixel % resized_width as usize,
                    );
                    for channel in 0..3 {
                        input[[slot, channel, y, x]] = bgr[channel] as f32 / 127.5 - 1.0;
                    }
                }
            }
            let outputs = self
                .session
                .run(ort::inputs![
                    TensorRef::from_array_view(&input).map_err(inference_error)?
                ])
                .map_err(inference_error)?;
            let (shape, probabilities) = outputs[0]
                .try_extract_tensor::<f32>()
                .map_err(inference_error)?;
            if shape.len() != 3
                || shape[0] as usize != batch.len()
                || shape[2] as usize != self.alphabet.len()
            {
                return Err(OperatorError::UnexpectedOutput {
                    model: MODEL.into(),
                    message: format!(
                        "expected {}xTx{} character probabilities, got {shape:?}",
                        batch.len(),
                        self.alphabet.len()
                    ),
                });
            }
            let (steps, classes) = (shape[1] as usize, shape[2] as usize);
            for (slot, &index) in batch.iter().enumerate() {
                let sequence = &probabilities[slot * steps * classes..(slot + 1) * steps * classes];
                readings[index] = ctc_greedy_decode(sequence, classes, &self.alphabet);
            }
        }
        Ok(readings)
    }
}

fn inference_error(error: impl std::fmt::Display) -> OperatorError {
    OperatorError::Inference {
        model: MODEL.into(),
        message: error.to_string(),
    }
}

/// Best class per time step; repeats collapsed, blanks removed; score = mean kept probability.
fn ctc_greedy_decode(sequence: &[f32], classes: usize, alphabet: &[String]) -> (String, f32) {
    let mut text = String::new();
    let (mut score_sum, mut kept) = (0.0f32, 0usize);
    let mut previous = None;
    for step in sequence.chunks_exact(classes) {
        let (best, probability) =
            step.iter()
                .copied()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |acc, (i, p)| if p > acc.1 { (i, p) } else { acc },
                );
        if best != 0 && previous != Some(best) {
            text.push_str(&alphabet[best]);
            score_sum += probability;
            kept += 1;
        }
        previous = Some(best);
    }
    let score = if kept == 0 {
        0.0
    } else {
        score_sum / kept as f32
    };
    (text, score)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctc_collapses_repeats_and_drops_blanks() {
        let alphabet: Vec<String> = ["", "a", "b", " "].iter().map(|s| s.to_string()).collect();
        // steps: a a blank a b b
        let steps = [
            [0.1, 0.9, 0.0, 0.0],
            [0.2, 0.8, 0.0, 0.0],
            [0.9, 0.1, 0.0, 0.0],
            [0.3, 0.7, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.6, 0.4],
        ];
        let flat: Vec<f32> = steps.iter().flatten().copied().collect();
        let (text, score) = ctc_greedy_decode(&flat, 4, &alphabet);
        assert_eq!(text, "aab");
        assert!((score - (0.9 + 0.7 + 1.0) / 3.0).abs() < 1e-6);
    }
}

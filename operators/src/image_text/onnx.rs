//! The ONNX layout run with ONNX Runtime: the two graphs Hugging Face optimum and
//! transformers.js export, `vision_model.onnx` (`pixel_values` → `image_embeds`) and
//! `text_model.onnx` (`input_ids`, and `attention_mask` where the graph declares it →
//! `text_embeds`). Their outputs are the projected, not yet normalised, embeddings.

use std::path::{Path, PathBuf};

use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;

use super::tokenize::TokenBatch;
use super::ImageTextFamily;
use crate::checkpoint::required_file;
use crate::{onnx, OperatorError};

pub(super) const VISION_FILE: &str = "vision_model.onnx";
pub(super) const TEXT_FILE: &str = "text_model.onnx";
/// The folder exports put their graphs in, inside the model folder.
const ONNX_FOLDER: &str = "onnx";

const PIXELS: &str = "pixel_values";
const IMAGE_EMBEDS: &str = "image_embeds";
const INPUT_IDS: &str = "input_ids";
const ATTENTION_MASK: &str = "attention_mask";
const TEXT_EMBEDS: &str = "text_embeds";

/// Where the graphs of `dir` are: its `onnx/` subfolder if either graph is there, else `dir`
/// itself if either is there; `None` for a folder without ONNX graphs.
pub(super) fn graph_folder(dir: &Path) -> Option<PathBuf> {
    let has_graph = |folder: &Path| {
        [VISION_FILE, TEXT_FILE]
            .iter()
            .any(|f| folder.join(f).is_file())
    };
    let nested = dir.join(ONNX_FOLDER);
    if has_graph(&nested) {
        Some(nested)
    } else if has_graph(dir) {
        Some(dir.to_owned())
    } else {
        None
    }
}

pub(super) struct OnnxModel {
    vision: Session,
    text: Session,
    text_takes_mask: bool,
    /// SigLIP attends to its padding (see [`super::text_tower`]): a declared mask gets ones.
    mask_padding: bool,
    dimension: usize,
    name: String,
}

impl OnnxModel {
    /// The graphs in `folder` (from [`graph_folder`]); `hint` says what a model folder needs.
    pub(super) fn load(
        folder: &Path,
        name: &str,
        family: ImageTextFamily,
        dimension: usize,
        hint: &str,
    ) -> Result<Self, OperatorError> {
        let vision_path = required_file(folder, VISION_FILE, hint)?;
        let text_path = required_file(folder, TEXT_FILE, hint)?;
        let vision = onnx::load_session(&vision_path, 0, true)?;
        let text = onnx::load_session(&text_path, 0, true)?;
        check_signature(&vision, &vision_path, &[PIXELS], &[PIXELS], IMAGE_EMBEDS)?;
        check_signature(
            &text,
            &text_path,
            &[INPUT_IDS],
            &[INPUT_IDS, ATTENTION_MASK],
            TEXT_EMBEDS,
        )?;
        let text_takes_mask = text.inputs().iter().any(|i| i.name() == ATTENTION_MASK);
        Ok(Self {
            vision,
            text,
            text_takes_mask,
            mask_padding: family == ImageTextFamily::Clip,
            dimension,
            name: name.to_owned(),
        })
    }

    /// Un-normalised embeddings of `count` frames of `size` (`[count, 3, height, width]`
    /// values, row-major).
    pub(super) fn embed_images(
        &mut self,
        pixels: &[f32],
        count: usize,
        size: (i32, i32),
    ) -> Result<Vec<Vec<f32>>, OperatorError> {
        let shape = [count as i64, 3, i64::from(size.0), i64::from(size.1)];
        let input = TensorRef::from_array_view((shape, pixels))
            .map_err(|e| inference_error(&self.name, e))?;
        let outputs = self
            .vision
            .run(vec![(PIXELS, SessionInputValue::from(input))])
            .map_err(|e| inference_error(&self.name, e))?;
        rows(&outputs, IMAGE_EMBEDS, count, self.dimension, &self.name)
    }

    /// Un-normalised embeddings of a token batch.
    pub(super) fn embed_texts(
        &mut self,
        batch: &TokenBatch,
    ) -> Result<Vec<Vec<f32>>, OperatorError> {
        let shape = [batch.rows as i64, batch.length as i64];
        let ones;
        let mask = if self.mask_padding {
            &batch.mask
        } else {
            ones = vec![1_i64; batch.mask.len()];
            &ones
        };
        let mut inputs = vec![(
            INPUT_IDS,
            SessionInputValue::from(
                TensorRef::from_array_view((shape, &batch.ids[..]))
                    .map_err(|e| inference_error(&self.name, e))?,
            ),
        )];
        if self.text_takes_mask {
            inputs.push((
                ATTENTION_MASK,
                SessionInputValue::from(
                    TensorRef::from_array_view((shape, &mask[..]))
                        .map_err(|e| inference_error(&self.name, e))?,
                ),
            ));
        }
        let outputs = self
            .text
            .run(inputs)
            .map_err(|e| inference_error(&self.name, e))?;
        rows(
            &outputs,
            TEXT_EMBEDS,
            batch.rows,
            self.dimension,
            &self.name,
        )
    }
}

// A free function: `run` holds a session mutably while its error is mapped.
fn inference_error(model: &str, error: ort::Error) -> OperatorError {
    OperatorError::Inference {
        model: model.to_owned(),
        message: error.to_string(),
    }
}

/// Refuses graphs that lack an input we must feed (`required`), want one we cannot
/// (anything outside `known`), or lack the `output` we read.
fn check_signature(
    session: &Session,
    path: &Path,
    required: &[&str],
    known: &[&str],
    output: &str,
) -> Result<(), OperatorError> {
    let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
    let outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
    let problem = if let Some(missing) = required.iter().find(|r| !inputs.contains(r)) {
        format!("no input {missing:?}")
    } else if let Some(unknown) = inputs.iter().find(|i| !known.contains(i)) {
        format!("an input {unknown:?} this operator cannot feed")
    } else if !outputs.contains(&output) {
        format!("no output {output:?}")
    } else {
        return Ok(());
    };
    Err(OperatorError::UnsupportedModel {
        path: path.to_owned(),
        message: format!(
            "the graph has {problem} (inputs {inputs:?}, outputs {outputs:?}); expected an \
             optimum / transformers.js image-text export"
        ),
    })
}

/// The `[count, dimension]` float output `name` as rows.
fn rows(
    outputs: &ort::session::SessionOutputs<'_>,
    name: &str,
    count: usize,
    dimension: usize,
    model: &str,
) -> Result<Vec<Vec<f32>>, OperatorError> {
    let unexpected = |message: String| OperatorError::UnexpectedOutput {
        model: model.to_owned(),
        message,
    };
    let value = outputs
        .get(name)
        .ok_or_else(|| unexpected(format!("no output {name:?}")))?;
    let (shape, data) = value
        .try_extract_tensor::<f32>()
        .map_err(|e| unexpected(format!("{name}: {e}")))?;
    let expected = [count as i64, dimension as i64];
    if **shape != expected {
        return Err(unexpected(format!(
            "{name} has shape {shape:?}, expected {expected:?} (config.json's embedding length)"
        )));
    }
    Ok(data.chunks_exact(dimension).map(<[f32]>::to_vec).collect())
}

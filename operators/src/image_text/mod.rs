//! One embedding space for frames and texts, from a CLIP or SigLIP model: what text → image
//! moment search ranks frames with.
//!
//! [`ImageTextEncoder`] reads a model folder in either of the layouts the Hub ships:
//!
//! * Hugging Face: `config.json` of a full two-tower `CLIPModel` / `SiglipModel`, the weights in
//!   safetensors (one file or shards), run with `tch`. The forward passes are `transformers`'
//!   `get_image_features` / `get_text_features` (module `torch`): the vision tower is
//!   [`crate::vision::VisionTower`], the text tower `text_tower`, SigLIP's image pooling
//!   `siglip_head`.
//! * ONNX: `vision_model.onnx` and `text_model.onnx` as optimum and transformers.js export them
//!   (in the folder or its `onnx/` subfolder) beside `config.json`, run with ONNX Runtime
//!   (module `onnx`).
//!
//! Both take `tokenizer.json` and the optional `preprocessor_config.json`, and both give
//! unit-length embeddings, so a text-image score is a dot product: `transformers` normalises
//! the same way before its logits.

mod config;
mod onnx;
mod preprocess;
mod siglip_head;
mod text_tower;
mod tokenize;
mod torch;

use std::path::Path;

use tch::Device;
use tokenizers::Encoding;

use crate::checkpoint::{
    required_file, CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE,
};
use crate::{BgrImage, OperatorError};
use config::ModelConfig;
use onnx::OnnxModel;
use preprocess::ImageProcessor;
use tokenize::TextTokenizer;
use torch::TorchModel;

/// The image processor's settings; optional (each family's defaults apply without it).
pub const PREPROCESSOR_FILE: &str = "preprocessor_config.json";

/// Frames per forward pass: bounds memory at a camera fleet's batch sizes.
const IMAGE_BATCH: usize = 16;
/// Texts per forward pass; texts of similar length are batched together.
const TEXT_BATCH: usize = 32;

/// Logit scale and bias of ONNX folders whose `config.json` carries no learned `logit_scale` /
/// `logit_bias` (exports drop them with the rest of the joint model). CLIP: 100, the clamp
/// every trained OpenAI / OpenCLIP model sits at; `logit_scale_init_value` is the value
/// before training (exp 2.6592 ≈ 14.3) and would flatten every score. SigLIP: the paper's
/// initialisation, t = 10 and b = −10; trained models move away from it, so write the real
/// values into `config.json` where scores must be calibrated.
const CLIP_LOGIT_SCALE: f32 = 100.0;
const SIGLIP_LOGIT_SCALE: f32 = 10.0;
const SIGLIP_LOGIT_BIAS: f32 = -10.0;

const MISSING_HINT: &str = "an image-text model folder needs config.json and tokenizer.json, \
                            and either model.safetensors (or sharded safetensors with their \
                            index) or vision_model.onnx and text_model.onnx (in the folder or \
                            its onnx/ subfolder)";

/// The model families; they differ in preprocessing, text padding, pooling and scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageTextFamily {
    /// CLIP: class-token and end-token pooling, linear projections, softmax-style scores.
    Clip,
    /// SigLIP: attention-pooled images, last-token texts padded to 64, sigmoid scores.
    Siglip,
}

enum Backend {
    Torch(Box<TorchModel>),
    Onnx(OnnxModel),
}

/// A loaded image-text model. `Send` but not `Sync` (`tch` tensors, ONNX Runtime sessions):
/// move it into the worker that runs it, or put it behind a `Mutex`.
pub struct ImageTextEncoder {
    name: String,
    family: ImageTextFamily,
    dimension: usize,
    logit_scale: f32,
    logit_bias: f32,
    processor: ImageProcessor,
    tokenizer: TextTokenizer,
    backend: Backend,
}

impl ImageTextEncoder {
    /// Loads the model folder `dir`, in whichever layout it holds: safetensors weights make it
    /// a Hugging Face checkpoint run on `device`; ONNX graphs without them run on the CPU
    /// through ONNX Runtime (`device` is then unused).
    pub fn load(dir: &Path, device: Device) -> Result<Self, OperatorError> {
        let config = ModelConfig::load(&required_file(dir, CONFIG_FILE, MISSING_HINT)?)?;
        let tokenizer = TextTokenizer::load(
            &required_file(dir, TOKENIZER_FILE, MISSING_HINT)?,
            config.family,
            &config.text,
        )?;
        let processor = ImageProcessor::load(
            &dir.join(PREPROCESSOR_FILE),
            config.family,
            config.vision.image_size,
        )?;
        let name = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let dimension = usize::try_from(config.dimension).unwrap_or(0);
        let safetensors =
            dir.join(WEIGHTS_FILE).is_file() || dir.join(WEIGHTS_INDEX_FILE).is_file();
        let (backend, logit_scale, logit_bias) = match onnx::graph_folder(dir) {
            Some(folder) if !safetensors => {
                let model =
                    OnnxModel::load(&folder, &name, config.family, dimension, MISSING_HINT)?;
                let (scale, bias) = exported_logits(&config);
                (Backend::Onnx(model), scale, bias)
            }
            // Without either layout this reports the missing model.safetensors.
            _ => {
                let model = TorchModel::load(dir, &name, &config, device, MISSING_HINT)?;
                let (scale, bias) = (model.logit_scale(), model.logit_bias());
                (Backend::Torch(Box::new(model)), scale, bias)
            }
        };
        Ok(Self {
            name,
            family: config.family,
            dimension,
            logit_scale,
            logit_bias,
            processor,
            tokenizer,
            backend,
        })
    }

    pub fn family(&self) -> ImageTextFamily {
        self.family
    }

    /// Length of the embeddings (projection_dim for CLIP; hidden size for SigLIP).
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// The folder name, for records of which model made an embedding.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The model's learned logit scale (already `exp()`'d): a text-image match logit is
    /// `logit_scale() * cosine + logit_bias()`. ONNX exports do not carry it: there it is the
    /// `logit_scale` (before `exp`) an exporter wrote into `config.json`, else 100 for CLIP
    /// (where trained CLIPs sit) and 10 for SigLIP (its initial value).
    pub fn logit_scale(&self) -> f32 {
        self.logit_scale
    }

    /// SigLIP's learned logit bias; 0 for CLIP. ONNX folders: `config.json`'s `logit_bias`,
    /// else −10 (SigLIP's initial value).
    pub fn logit_bias(&self) -> f32 {
        self.logit_bias
    }

    /// One unit-length embedding per frame, in order, preprocessed as the model's processor
    /// does: resized (CLIP: shortest edge, then centre crop; SigLIP: straight to the square
    /// input), rescaled, normalised with `preprocessor_config.json`'s mean and std.
    pub fn embed_images(&mut self, images: &[&BgrImage]) -> Result<Vec<Vec<f32>>, OperatorError> {
        let mut embeddings = Vec::with_capacity(images.len());
        let size = self.processor.output_size();
        for batch in images.chunks(IMAGE_BATCH) {
            let pixels = self.processor.pixels(batch)?;
            let rows = match &mut self.backend {
                Backend::Torch(model) => model.embed_images(&pixels, batch.len(), size)?,
                Backend::Onnx(model) => model.embed_images(&pixels, batch.len(), size)?,
            };
            embeddings.extend(rows.into_iter().map(normalized));
        }
        Ok(embeddings)
    }

    /// One unit-length embedding per text, in order, tokenized as the model's processor does
    /// (CLIP: as the tokenizer has it; SigLIP: padded to 64 tokens); the end of a text past
    /// the model's limit (CLIP: `max_position_embeddings`; SigLIP: 64) is ignored.
    pub fn embed_texts(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, OperatorError> {
        let encodings =
            self.tokenizer
                .encode(texts)
                .map_err(|message| OperatorError::Inference {
                    model: self.name.clone(),
                    message,
                })?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());
        let mut embeddings = vec![Vec::new(); texts.len()];
        for batch in order.chunks(TEXT_BATCH) {
            let batch_encodings: Vec<&Encoding> = batch.iter().map(|&i| &encodings[i]).collect();
            let tokens = self.tokenizer.batch(&batch_encodings);
            let rows = match &mut self.backend {
                Backend::Torch(model) => model.embed_texts(&tokens)?,
                Backend::Onnx(model) => model.embed_texts(&tokens)?,
            };
            for (&i, row) in batch.iter().zip(rows) {
                embeddings[i] = normalized(row);
            }
        }
        Ok(embeddings)
    }
}

/// The logit scale and bias of an ONNX folder: the learned values where `config.json` has
/// them, else the family's fallbacks ([`CLIP_LOGIT_SCALE`], [`SIGLIP_LOGIT_SCALE`],
/// [`SIGLIP_LOGIT_BIAS`]).
fn exported_logits(config: &ModelConfig) -> (f32, f32) {
    let scale = config.logit_scale.map(|s| s.exp() as f32);
    match config.family {
        ImageTextFamily::Clip => (scale.unwrap_or(CLIP_LOGIT_SCALE), 0.0),
        ImageTextFamily::Siglip => (
            scale.unwrap_or(SIGLIP_LOGIT_SCALE),
            config.logit_bias.map_or(SIGLIP_LOGIT_BIAS, |b| b as f32),
        ),
    }
}

/// `v` scaled to unit length (summed in f64; a zero vector stays zero).
fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter_mut()
            .for_each(|x| *x = (f64::from(*x) / norm) as f32);
    }
    v
}

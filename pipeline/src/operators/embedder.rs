//! The moment index's embedding models, each on a [`ModelWorker`] of its own: window indexing
//! and analysts' queries send it inputs, and the inputs waiting together are embedded in one
//! batch.

use std::path::Path;
use std::sync::Arc;

use argus_operators::image_text::{ImageTextEncoder, ImageTextFamily};
use argus_operators::text_embedding::TextEmbedder;
use argus_operators::{BgrImage, OperatorError};

use super::worker::{Batching, ModelWorker, Queues};

/// The embedding threads' queues: windows of every camera and analysts' queries.
const QUEUES: Queues = Queues {
    background: 256,
    urgent: 1,
};

fn start_worker<I: Send + 'static>(
    thread: &str,
    dir: &Path,
    embed: impl FnMut(Vec<I>) -> Result<Vec<Vec<f32>>, OperatorError> + Send + 'static,
) -> Result<ModelWorker<I, Vec<f32>>, OperatorError> {
    let model = model_name(dir);
    ModelWorker::start(thread, model.as_str(), Batching::WAITING, QUEUES, embed).map_err(|error| {
        OperatorError::Inference {
            model,
            message: format!("cannot start its thread: {error}"),
        }
    })
}

/// A model folder's name, recorded with every embedding it makes.
fn model_name(dir: &Path) -> String {
    dir.file_name()
        .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into())
}

/// Handle to the sentence-embedding worker; cheap to clone.
#[derive(Clone)]
pub struct Embedder {
    worker: ModelWorker<String, Vec<f32>>,
    dimension: usize,
}

impl Embedder {
    /// Loads the checkpoint in `dir` (on the CPU) and starts the worker.
    pub fn start(dir: &Path) -> Result<Self, OperatorError> {
        let embedder = TextEmbedder::load(dir, tch::Device::Cpu)?;
        let dimension = embedder.dimension();
        let worker = start_worker("argus-embedder", dir, move |texts: Vec<String>| {
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            embedder.embed(&texts)
        })?;
        Ok(Self { worker, dimension })
    }

    /// The model's name (its folder), recorded with every embedding.
    pub fn model(&self) -> &str {
        self.worker.model()
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// One unit-length embedding per text, in order.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, OperatorError> {
        self.worker.call(texts).await
    }
}

/// What the image-text encoder embeds: frames and query images, or query texts, into one
/// space.
enum VisualInput {
    Image(Arc<BgrImage>),
    Text(String),
}

/// The CLIP or SigLIP cosine at which a text and an image count as a 50% match when the
/// model has no learned bias to say so. SigLIP learns one (`logit_bias`); CLIP's
/// contrastive softmax does not, and its matching text-image pairs typically score a cosine
/// of ~0.3 against ~0.15–0.2 for unrelated ones (ViT-B/32 and ViT-L/14).
const CLIP_MATCH_COSINE: f32 = 0.25;

/// Handle to the image-text encoder's worker; cheap to clone.
#[derive(Clone)]
pub struct VisualEmbedder {
    worker: ModelWorker<VisualInput, Vec<f32>>,
    logit_scale: f32,
    logit_bias: f32,
}

impl VisualEmbedder {
    /// Loads the CLIP or SigLIP model in `dir` (Hugging Face or ONNX layout, on the CPU) and
    /// starts the worker.
    pub fn start(dir: &Path) -> Result<Self, OperatorError> {
        let mut encoder = ImageTextEncoder::load(dir, tch::Device::Cpu)?;
        let logit_scale = encoder.logit_scale();
        let logit_bias = match encoder.family() {
            ImageTextFamily::Siglip => encoder.logit_bias(),
            ImageTextFamily::Clip => -logit_scale * CLIP_MATCH_COSINE,
        };
        let worker = start_worker("argus-visual", dir, move |inputs: Vec<VisualInput>| {
            embed_mixed(&mut encoder, &inputs)
        })?;
        Ok(Self {
            worker,
            logit_scale,
            logit_bias,
        })
    }

    /// The model's name (its folder), recorded with every embedding.
    pub fn model(&self) -> &str {
        self.worker.model()
    }

    /// Unit-length embeddings of frames, in order.
    pub async fn embed_images(
        &self,
        images: Vec<Arc<BgrImage>>,
    ) -> Result<Vec<Vec<f32>>, OperatorError> {
        let inputs = images.into_iter().map(VisualInput::Image).collect();
        self.worker.call(inputs).await
    }

    /// The unit-length embedding of a query text.
    pub async fn embed_text(&self, text: &str) -> Result<Vec<f32>, OperatorError> {
        self.worker
            .call_one(VisualInput::Text(text.to_owned()))
            .await
    }

    /// How well a frame matches a text, in (0, 1), from their embeddings' cosine: the
    /// model's own match probability (SigLIP's sigmoid of its calibrated logit), or for CLIP
    /// the same sigmoid centred on [`CLIP_MATCH_COSINE`].
    pub fn text_match(&self, cosine: f32) -> f32 {
        1.0 / (1.0 + (-(self.logit_scale * cosine + self.logit_bias)).exp())
    }
}

/// Embeds a batch that mixes images and texts: each kind in one call, answers in input order.
fn embed_mixed(
    encoder: &mut ImageTextEncoder,
    inputs: &[VisualInput],
) -> Result<Vec<Vec<f32>>, OperatorError> {
    let images: Vec<&BgrImage> = inputs
        .iter()
        .filter_map(|input| match input {
            VisualInput::Image(image) => Some(&**image),
            VisualInput::Text(_) => None,
        })
        .collect();
    let texts: Vec<&str> = inputs
        .iter()
        .filter_map(|input| match input {
            VisualInput::Text(text) => Some(text.as_str()),
            VisualInput::Image(_) => None,
        })
        .collect();
    let mut images = if images.is_empty() {
        Vec::new()
    } else {
        encoder.embed_images(&images)?
    }
    .into_iter();
    let mut texts = if texts.is_empty() {
        Vec::new()
    } else {
        encoder.embed_texts(&texts)?
    }
    .into_iter();
    inputs
        .iter()
        .map(|input| {
            match input {
                VisualInput::Image(_) => images.next(),
                VisualInput::Text(_) => texts.next(),
            }
            .ok_or_else(|| OperatorError::Inference {
                model: "image-text encoder".into(),
                message: "fewer embeddings than inputs".into(),
            })
        })
        .collect()
}

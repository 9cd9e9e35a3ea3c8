//! The moment index's embedding models, each on a worker thread of its own.
//!
//! `tch` modules and `ort` sessions are not `Sync` and a forward pass is CPU-bound, so one
//! thread owns each model and async callers (window indexing, analysts' queries) send it
//! inputs. Inputs that arrive together are embedded in one batch.

use std::path::Path;
use std::sync::Arc;

use argus_operators::image_text::{ImageTextEncoder, ImageTextFamily};
use argus_operators::text_embedding::TextEmbedder;
use argus_operators::{BgrImage, OperatorError};
use tokio::sync::{mpsc, oneshot};

type Reply = oneshot::Sender<Result<Vec<Vec<f32>>, OperatorError>>;

/// A model on its own thread that turns a batch of inputs into one embedding each.
struct BatchWorker<I> {
    jobs: mpsc::Sender<(Vec<I>, Reply)>,
    model: String,
}

impl<I> Clone for BatchWorker<I> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
            model: self.model.clone(),
        }
    }
}

impl<I: Send + 'static> BatchWorker<I> {
    /// Starts the thread; `embed` runs every batch, all pending jobs' inputs together.
    fn start(
        thread: &str,
        model: String,
        mut embed: impl FnMut(&[I]) -> Result<Vec<Vec<f32>>, OperatorError> + Send + 'static,
    ) -> Self {
        let (jobs, mut queue) = mpsc::channel::<(Vec<I>, Reply)>(256);
        let name = model.clone();
        std::thread::Builder::new()
            .name(thread.into())
            .spawn(move || {
                while let Some(first) = queue.blocking_recv() {
                    let mut batch = vec![first];
                    while let Ok(job) = queue.try_recv() {
                        batch.push(job);
                    }
                    let mut inputs = Vec::new();
                    let mut replies = Vec::with_capacity(batch.len());
                    for (job_inputs, reply) in batch {
                        replies.push((job_inputs.len(), reply));
                        inputs.extend(job_inputs);
                    }
                    match embed(&inputs) {
                        Ok(mut embeddings) => {
                            for (count, reply) in replies {
                                let rest = embeddings.split_off(count.min(embeddings.len()));
                                let _ = reply.send(Ok(std::mem::replace(&mut embeddings, rest)));
                            }
                        }
                        Err(error) => {
                            let message = error.to_string();
                            for (_, reply) in replies {
                                let _ = reply.send(Err(OperatorError::Inference {
                                    model: name.clone(),
                                    message: message.clone(),
                                }));
                            }
                        }
                    }
                }
            })
            .expect("spawning an embedding thread");
        Self { jobs, model }
    }

    async fn embed(&self, inputs: Vec<I>) -> Result<Vec<Vec<f32>>, OperatorError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || OperatorError::Inference {
            model: self.model.clone(),
            message: "the embedding worker stopped".into(),
        };
        self.jobs
            .send((inputs, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// A model folder's name, recorded with every embedding it makes.
fn model_name(dir: &Path) -> String {
    dir.file_name()
        .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into())
}

/// Handle to the sentence-embedding worker; cheap to clone.
#[derive(Clone)]
pub struct Embedder {
    worker: BatchWorker<String>,
    dimension: usize,
}

impl Embedder {
    /// Loads the checkpoint in `dir` (on the CPU) and starts the worker.
    pub fn start(dir: &Path) -> Result<Self, OperatorError> {
        let embedder = TextEmbedder::load(dir, tch::Device::Cpu)?;
        let dimension = embedder.dimension();
        let worker = BatchWorker::start("argus-embedder", model_name(dir), move |texts| {
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            embedder.embed(&texts)
        });
        Ok(Self { worker, dimension })
    }

    /// The model's name (its folder), recorded with every embedding.
    pub fn model(&self) -> &str {
        &self.worker.model
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// One unit-length embedding per text, in order.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, OperatorError> {
        self.worker.embed(texts).await
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
    worker: BatchWorker<VisualInput>,
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
        let worker = BatchWorker::start("argus-visual", model_name(dir), move |inputs| {
            embed_mixed(&mut encoder, inputs)
        });
        Ok(Self {
            worker,
            logit_scale,
            logit_bias,
        })
    }

    /// The model's name (its folder), recorded with every embedding.
    pub fn model(&self) -> &str {
        &self.worker.model
    }

    /// Unit-length embeddings of frames, in order.
    pub async fn embed_images(
        &self,
        images: Vec<Arc<BgrImage>>,
    ) -> Result<Vec<Vec<f32>>, OperatorError> {
        let inputs = images.into_iter().map(VisualInput::Image).collect();
        self.worker.embed(inputs).await
    }

    /// The unit-length embedding of a query text.
    pub async fn embed_text(&self, text: &str) -> Result<Vec<f32>, OperatorError> {
        let mut embeddings = self
            .worker
            .embed(vec![VisualInput::Text(text.to_owned())])
            .await?;
        embeddings.pop().ok_or_else(|| OperatorError::Inference {
            model: self.model().to_owned(),
            message: "no embedding returned".into(),
        })
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

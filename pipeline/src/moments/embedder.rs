//! The sentence-embedding model on a worker thread of its own.
//!
//! `tch` modules are not `Sync` and a forward pass is CPU-bound, so one thread owns the model
//! and async callers (window indexing, analysts' queries) send it texts. Texts that arrive
//! together are embedded in one batch.

use std::path::Path;

use argus_operators::text_embedding::TextEmbedder;
use argus_operators::OperatorError;
use tokio::sync::{mpsc, oneshot};

type Job = (
    Vec<String>,
    oneshot::Sender<Result<Vec<Vec<f32>>, OperatorError>>,
);

/// Handle to the embedding worker; cheap to clone.
#[derive(Clone)]
pub struct Embedder {
    jobs: mpsc::Sender<Job>,
    model: String,
    dimension: usize,
}

impl Embedder {
    /// Loads the checkpoint in `dir` (on the CPU) and starts the worker.
    pub fn start(dir: &Path) -> Result<Self, OperatorError> {
        let embedder = TextEmbedder::load(dir, tch::Device::Cpu)?;
        let dimension = embedder.dimension();
        let model = dir
            .file_name()
            .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into());
        let (jobs, mut queue) = mpsc::channel::<Job>(256);
        std::thread::Builder::new()
            .name("argus-embedder".into())
            .spawn(move || {
                while let Some(first) = queue.blocking_recv() {
                    let mut batch = vec![first];
                    while let Ok(job) = queue.try_recv() {
                        batch.push(job);
                    }
                    let texts: Vec<&str> = batch
                        .iter()
                        .flat_map(|(texts, _)| texts.iter().map(String::as_str))
                        .collect();
                    match embedder.embed(&texts) {
                        Ok(mut embeddings) => {
                            for (texts, reply) in batch {
                                let rest = embeddings.split_off(texts.len());
                                let _ = reply.send(Ok(std::mem::replace(&mut embeddings, rest)));
                            }
                        }
                        Err(error) => {
                            let message = error.to_string();
                            for (_, reply) in batch {
                                let _ = reply.send(Err(OperatorError::Inference {
                                    model: "text embedding".into(),
                                    message: message.clone(),
                                }));
                            }
                        }
                    }
                }
            })
            .expect("spawning the embedding thread");
        Ok(Self {
            jobs,
            model,
            dimension,
        })
    }

    /// The model's name (its folder), recorded with every embedding.
    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// One unit-length embedding per text, in order.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, OperatorError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || OperatorError::Inference {
            model: self.model.clone(),
            message: "the embedding worker stopped".into(),
        };
        self.jobs
            .send((texts, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

//! Optional LLM rerank of a text query's best moments ("an MLLM is a strong reranker").
//!
//! The index scores windows by embeddings and word matches; the reranker shows the LLM each
//! of the best candidate moments' evidence (on-screen text, tags, caption) and measures how
//! much it raises the likelihood of the analyst's query ([`argus_operators::rerank`]). A
//! moment's final score is the mean of its retrieval score and that relevance, so the LLM
//! reorders close candidates without discarding what retrieval found.
//!
//! One thread owns the model; it is loaded on the first rerank request, so a service whose
//! analysts never ask for a rerank never pays its memory.

use std::path::PathBuf;

use argus_operators::llm::Llm;
use argus_operators::rerank::{relevance_batch, MomentEvidence};
use argus_operators::OperatorError;
use tokio::sync::{mpsc, oneshot};

/// What the reranker reads of one candidate moment: every window's text, not only the lines
/// that matched the query's words.
#[derive(Debug, Clone, Default)]
pub struct Candidate {
    pub ocr: Vec<String>,
    pub tags: Vec<String>,
    pub caption: Option<String>,
}

struct Job {
    query: String,
    candidates: Vec<Candidate>,
    reply: oneshot::Sender<Result<Vec<f32>, OperatorError>>,
}

/// Handle to the rerank worker; cheap to clone.
#[derive(Clone)]
pub struct MomentReranker {
    jobs: mpsc::Sender<Job>,
    model: String,
}

impl MomentReranker {
    /// Starts the worker for the LLM (Llama family, Hugging Face layout) in `dir`; the model
    /// is read on first use.
    pub fn start(dir: PathBuf) -> Self {
        let model = dir.display().to_string();
        let (jobs, mut queue) = mpsc::channel::<Job>(16);
        std::thread::Builder::new()
            .name("argus-rerank".into())
            .spawn(move || {
                let mut loaded: Option<Llm> = None;
                while let Some(job) = queue.blocking_recv() {
                    if loaded.is_none() {
                        tracing::info!(model = %dir.display(), "loading the moment rerank model");
                        match Llm::load(&dir, tch::Device::Cpu) {
                            Ok(model) => loaded = Some(model),
                            Err(error) => {
                                // Answered, and tried again on the next request: the files
                                // may be installed while the service runs.
                                let _ = job.reply.send(Err(error));
                                continue;
                            }
                        }
                    }
                    let llm = loaded.as_ref().expect("loaded above");
                    let evidence: Vec<MomentEvidence<'_>> = job
                        .candidates
                        .iter()
                        .map(|candidate| MomentEvidence {
                            ocr: &candidate.ocr,
                            tags: &candidate.tags,
                            caption: candidate.caption.as_deref(),
                        })
                        .collect();
                    let _ = job.reply.send(relevance_batch(llm, &job.query, &evidence));
                }
            })
            .expect("spawning the rerank thread");
        Self { jobs, model }
    }

    /// The relevance of each candidate to `query`, in (0, 1), in order.
    pub async fn relevance(
        &self,
        query: &str,
        candidates: Vec<Candidate>,
    ) -> Result<Vec<f32>, OperatorError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || OperatorError::Inference {
            model: self.model.clone(),
            message: "the rerank worker stopped".into(),
        };
        self.jobs
            .send(Job {
                query: query.to_owned(),
                candidates,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

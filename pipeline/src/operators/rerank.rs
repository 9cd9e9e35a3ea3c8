//! Optional LLM rerank of a text query's best moments ("an MLLM is a strong reranker").
//!
//! The index scores windows by embeddings and word matches; the reranker shows the LLM each
//! of the best candidate moments' evidence (on-screen text, tags, caption) and measures how
//! much it raises the likelihood of the analyst's query ([`argus_operators::rerank`]). A
//! moment's final score is the mean of its retrieval score and that relevance, so the LLM
//! reorders close candidates without discarding what retrieval found.
//!
//! A [`ModelWorker`] owns the model; it is loaded on the first rerank request, so a service whose
//! analysts never ask for a rerank never pays its memory.

use std::path::PathBuf;

use argus_operators::llm::Llm;
use argus_operators::rerank::{relevance_batch, MomentEvidence};
use argus_operators::OperatorError;

use super::worker::{Batching, ModelWorker, Queues};

/// What the reranker reads of one candidate moment: every window's text, not only the lines
/// that matched the query's words.
#[derive(Debug, Clone, Default)]
pub struct Candidate {
    pub ocr: Vec<String>,
    pub tags: Vec<String>,
    pub caption: Option<String>,
}

/// One query and its candidates: the LLM scores them together.
struct Job {
    query: String,
    candidates: Vec<Candidate>,
}

/// Handle to the rerank worker; cheap to clone.
#[derive(Clone)]
pub struct MomentReranker {
    worker: ModelWorker<Job, Vec<f32>>,
}

impl MomentReranker {
    /// Starts the worker for the LLM (Llama family, Hugging Face layout) in `dir`; the model
    /// is read on first use.
    pub fn start(dir: PathBuf) -> Result<Self, OperatorError> {
        let model = dir.display().to_string();
        let mut loaded: Option<Llm> = None;
        let worker = ModelWorker::start(
            "argus-rerank",
            model.as_str(),
            Batching::ONE,
            Queues {
                background: 16,
                urgent: 1,
            },
            move |jobs: Vec<Job>| {
                if loaded.is_none() {
                    tracing::info!(model = %dir.display(), "loading the moment rerank model");
                    // On failure the request is answered with the error, and loading is tried
                    // again on the next one: the files may be installed while the service runs.
                    loaded = Some(Llm::load(&dir, tch::Device::Cpu)?);
                }
                let llm = loaded.as_ref().expect("loaded above");
                jobs.iter()
                    .map(|job| {
                        let evidence: Vec<MomentEvidence<'_>> = job
                            .candidates
                            .iter()
                            .map(|candidate| MomentEvidence {
                                ocr: &candidate.ocr,
                                tags: &candidate.tags,
                                caption: candidate.caption.as_deref(),
                            })
                            .collect();
                        relevance_batch(llm, &job.query, &evidence)
                    })
                    .collect()
            },
        )
        .map_err(|error| OperatorError::Inference {
            model,
            message: format!("cannot start its thread: {error}"),
        })?;
        Ok(Self { worker })
    }

    /// The relevance of each candidate to `query`, in (0, 1), in order.
    pub async fn relevance(
        &self,
        query: &str,
        candidates: Vec<Candidate>,
    ) -> Result<Vec<f32>, OperatorError> {
        self.worker
            .call_one(Job {
                query: query.to_owned(),
                candidates,
            })
            .await
    }
}

//! Runs the operators off the async runtime, batching frames across streams.
//!
//! Operators are synchronous and CPU-bound (ONNX Runtime already spreads one inference over
//! all cores), so one dedicated worker thread serves every stream; async tasks hand it frames
//! and await the answer without blocking the runtime. Like DeepStream's `nvstreammux`, the
//! worker gathers frames from many cameras into one batch (up to `max_batch`, waiting at most
//! `max_wait` after the first), so one model call serves them all.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argus_operators::ocr::{OcrConfig, PpOcr, TextLine};
use argus_operators::{BgrImage, OperatorError};
use tokio::sync::{mpsc, oneshot};

use crate::config::AnalysisConfig;
use crate::metrics::Metrics;

/// The name results carry in their `operator` field.
pub const OCR_OPERATOR: &str = "ocr.pp-ocrv4";

/// What the operators found in one frame.
pub struct Analysis {
    pub ocr: Vec<TextLine>,
    pub latency: Duration,
}

type Job = (
    Arc<BgrImage>,
    oneshot::Sender<Result<Analysis, OperatorError>>,
);

/// Handle to the operator worker; cheap to clone.
#[derive(Clone)]
pub struct Analyzer {
    jobs: mpsc::Sender<Job>,
}

impl Analyzer {
    /// Loads the models (failing early with the missing file named) and starts the worker.
    pub fn start(
        model_dir: &Path,
        ocr_config: OcrConfig,
        batching: AnalysisConfig,
        metrics: Metrics,
    ) -> Result<Self, OperatorError> {
        let mut ocr = PpOcr::load(&model_dir.join("pp-ocrv4"), ocr_config)?;
        let (jobs, mut queue) = mpsc::channel::<Job>(64);
        let max_batch = batching.max_batch.max(1);
        let max_wait = Duration::from_millis(batching.max_wait_ms);
        std::thread::Builder::new()
            .name("argus-operators".into())
            .spawn(move || {
                // A runtime of its own, only for waiting on the queue with a deadline.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("the operator thread's runtime");
                runtime.block_on(async move {
                    while let Some(batch) = next_batch(&mut queue, max_batch, max_wait).await {
                        run_batch(&mut ocr, batch, &metrics);
                    }
                });
            })
            .expect("spawning the operator thread");
        Ok(Self { jobs })
    }

    /// Analyses one frame; it may share a model call with other streams' frames.
    pub async fn analyse(&self, image: Arc<BgrImage>) -> Result<Analysis, OperatorError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || OperatorError::Inference {
            model: OCR_OPERATOR.into(),
            message: "the operator worker stopped".into(),
        };
        self.jobs
            .send((image, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Waits for a first job, then gathers more until `max_batch` or `max_wait` after the first.
/// `None` once every sender is gone.
async fn next_batch(
    queue: &mut mpsc::Receiver<Job>,
    max_batch: usize,
    max_wait: Duration,
) -> Option<Vec<Job>> {
    let first = queue.recv().await?;
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + max_wait;
    while batch.len() < max_batch {
        match tokio::time::timeout_at(deadline, queue.recv()).await {
            Ok(Some(job)) => batch.push(job),
            Ok(None) | Err(_) => break,
        }
    }
    Some(batch)
}

fn run_batch(ocr: &mut PpOcr, batch: Vec<Job>, metrics: &Metrics) {
    let started = Instant::now();
    let images: Vec<&BgrImage> = batch.iter().map(|(image, _)| image.as_ref()).collect();
    let result = ocr.recognize_batch(&images);
    let latency = started.elapsed();
    metrics
        .operator_batch_size
        .with_label_values(&[OCR_OPERATOR])
        .observe(batch.len() as f64);
    match result {
        Ok(results) => {
            metrics
                .operator_latency
                .with_label_values(&[OCR_OPERATOR])
                .observe(latency.as_secs_f64());
            for ((_, reply), ocr) in batch.into_iter().zip(results) {
                let _ = reply.send(Ok(Analysis { ocr, latency }));
            }
        }
        Err(error) => {
            metrics.errors.with_label_values(&["operator"]).inc();
            let message = error.to_string();
            for (_, reply) in batch {
                let _ = reply.send(Err(OperatorError::Inference {
                    model: OCR_OPERATOR.into(),
                    message: message.clone(),
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> (Job, oneshot::Receiver<Result<Analysis, OperatorError>>) {
        let (reply, answer) = oneshot::channel();
        let image = Arc::new(BgrImage::new(1, 1, vec![0, 0, 0]).unwrap());
        ((image, reply), answer)
    }

    #[tokio::test]
    async fn waiting_jobs_form_one_batch_up_to_the_limit() {
        let (jobs, mut queue) = mpsc::channel(16);
        let mut answers = Vec::new();
        for _ in 0..5 {
            let (job, answer) = job();
            jobs.send(job).await.unwrap();
            answers.push(answer);
        }
        let batch = next_batch(&mut queue, 3, Duration::from_millis(50))
            .await
            .unwrap();
        assert_eq!(batch.len(), 3);
        let batch = next_batch(&mut queue, 3, Duration::from_millis(50))
            .await
            .unwrap();
        assert_eq!(batch.len(), 2, "the rest, after the wait");
    }

    #[tokio::test]
    async fn a_lone_job_waits_no_longer_than_max_wait() {
        let (jobs, mut queue) = mpsc::channel(16);
        let (job, _answer) = job();
        jobs.send(job).await.unwrap();
        let started = Instant::now();
        let batch = next_batch(&mut queue, 8, Duration::from_millis(30))
            .await
            .unwrap();
        assert_eq!(batch.len(), 1);
        assert!(started.elapsed() < Duration::from_secs(1));
        drop(jobs);
        assert!(next_batch(&mut queue, 8, Duration::from_millis(30))
            .await
            .is_none());
    }
}

//! Runs the operators off the async runtime.
//!
//! Operators are synchronous and CPU-bound (ONNX Runtime already spreads one inference over
//! all cores), so one dedicated worker thread serves every stream in turn; async tasks hand it
//! frames and await the answer without blocking the runtime.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argus_operators::ocr::{OcrConfig, PpOcr, TextLine};
use argus_operators::{BgrImage, OperatorError};
use tokio::sync::{mpsc, oneshot};

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
        config: OcrConfig,
        metrics: Metrics,
    ) -> Result<Self, OperatorError> {
        let mut ocr = PpOcr::load(&model_dir.join("pp-ocrv4"), config)?;
        let (jobs, mut queue) = mpsc::channel::<Job>(16);
        std::thread::Builder::new()
            .name("argus-operators".into())
            .spawn(move || {
                while let Some((image, reply)) = queue.blocking_recv() {
                    let started = Instant::now();
                    let result = ocr.recognize(&image).map(|ocr| Analysis {
                        ocr,
                        latency: started.elapsed(),
                    });
                    match &result {
                        Ok(analysis) => metrics
                            .operator_latency
                            .with_label_values(&[OCR_OPERATOR])
                            .observe(analysis.latency.as_secs_f64()),
                        Err(_) => metrics.errors.with_label_values(&["operator"]).inc(),
                    }
                    let _ = reply.send(result);
                }
            })
            .expect("spawning the operator thread");
        Ok(Self { jobs })
    }

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

//! The per-frame operator: PP-OCRv4 on the model worker, batching frames across streams.
//!
//! ONNX Runtime already spreads one inference over all cores, so one thread serves every
//! stream, and frames that arrive together from many cameras share one model call.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argus_operators::ocr::{OcrConfig, PpOcr, TextLine};
use argus_operators::{BgrImage, OperatorError};
use async_trait::async_trait;

use super::worker::{Batching, ModelWorker, Queues};
use crate::config::AnalysisConfig;
use crate::metrics::Metrics;
use crate::stream::{Analysis, FrameAnalyser};

/// The name results carry in their `operator` field.
pub const OCR_OPERATOR: &str = "ocr.pp-ocrv4";

/// Handle to the OCR worker; cheap to clone.
#[derive(Clone)]
pub struct Analyzer {
    worker: ModelWorker<Arc<BgrImage>, (Vec<TextLine>, Duration)>,
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
        let batching = Batching {
            max_batch: batching.max_batch,
            max_wait: Duration::from_millis(batching.max_wait_ms),
        };
        let worker = ModelWorker::start(
            "argus-operators",
            OCR_OPERATOR,
            batching,
            Queues::default(),
            move |images: Vec<Arc<BgrImage>>| run_batch(&mut ocr, &images, &metrics),
        )
        .map_err(|error| OperatorError::Inference {
            model: OCR_OPERATOR.into(),
            message: format!("cannot start its thread: {error}"),
        })?;
        Ok(Self { worker })
    }
}

#[async_trait]
impl FrameAnalyser for Analyzer {
    fn operator(&self) -> &'static str {
        OCR_OPERATOR
    }

    async fn analyse(&self, image: Arc<BgrImage>) -> Result<Analysis, OperatorError> {
        let (ocr, latency) = self.worker.call_one(image).await?;
        Ok(Analysis { ocr, latency })
    }
}

/// One model call for the batch; every frame reports the batch's latency.
fn run_batch(
    ocr: &mut PpOcr,
    images: &[Arc<BgrImage>],
    metrics: &Metrics,
) -> Result<Vec<(Vec<TextLine>, Duration)>, OperatorError> {
    let started = Instant::now();
    let images: Vec<&BgrImage> = images.iter().map(AsRef::as_ref).collect();
    let result = ocr.recognize_batch(&images);
    let latency = started.elapsed();
    metrics
        .operator_batch_size
        .with_label_values(&[OCR_OPERATOR])
        .observe(images.len() as f64);
    match result {
        Ok(results) => {
            metrics
                .operator_latency
                .with_label_values(&[OCR_OPERATOR])
                .observe(latency.as_secs_f64());
            Ok(results.into_iter().map(|ocr| (ocr, latency)).collect())
        }
        Err(error) => {
            metrics.errors.with_label_values(&["operator"]).inc();
            Err(error)
        }
    }
}

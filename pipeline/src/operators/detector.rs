//! The COCO object detector on the model worker, batching frames across cameras like OCR.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argus_operators::detection::{Detection, Detector, DetectorConfig};
use argus_operators::{BgrImage, OperatorError};

use super::worker::{Batching, ModelWorker, Queues};
use crate::config::AnalysisConfig;
use crate::metrics::Metrics;

/// The name of the detector in metrics and errors.
pub const DETECTOR_OPERATOR: &str = "objects.coco";

/// Handle to the detector's worker; cheap to clone.
#[derive(Clone)]
pub struct ObjectDetector {
    worker: ModelWorker<Arc<BgrImage>, Vec<Detection>>,
}

impl ObjectDetector {
    /// Loads the detector from `model_dir` (failing with the missing file named) and starts
    /// its worker.
    pub fn start(
        model_dir: &Path,
        config: DetectorConfig,
        batching: &AnalysisConfig,
        metrics: Metrics,
    ) -> Result<Self, OperatorError> {
        let mut detector = Detector::load(model_dir, config)?;
        let worker = ModelWorker::start(
            "argus-objects",
            DETECTOR_OPERATOR,
            Batching {
                max_batch: batching.max_batch,
                max_wait: Duration::from_millis(batching.max_wait_ms),
            },
            Queues::default(),
            move |images: Vec<Arc<BgrImage>>| {
                let started = Instant::now();
                let frames: Vec<&BgrImage> = images.iter().map(AsRef::as_ref).collect();
                let result = detector.detect_batch(&frames);
                metrics
                    .operator_batch_size
                    .with_label_values(&[DETECTOR_OPERATOR])
                    .observe(frames.len() as f64);
                if result.is_ok() {
                    metrics
                        .operator_latency
                        .with_label_values(&[DETECTOR_OPERATOR])
                        .observe(started.elapsed().as_secs_f64());
                } else {
                    metrics.errors.with_label_values(&["operator"]).inc();
                }
                result
            },
        )
        .map_err(|error| OperatorError::Inference {
            model: DETECTOR_OPERATOR.into(),
            message: format!("cannot start its thread: {error}"),
        })?;
        Ok(Self { worker })
    }

    /// The objects in one frame; it may share a model call with other cameras' frames.
    pub async fn detect(&self, image: Arc<BgrImage>) -> Result<Vec<Detection>, OperatorError> {
        self.worker.call_one(image).await
    }
}

//! The per-frame operator: PP-OCRv4 on the model worker, batching frames across streams.
//!
//! ONNX Runtime already spreads one inference over all cores, so one thread serves every
//! stream, and frames that arrive together from many cameras share one model call.
//!
//! With `read_changes_only` the worker keeps a [`TextGate`] per camera and reads only the
//! places of a frame that changed since the camera's previous frame. The gates live on the
//! worker's thread: a camera's frames reach it in order, and the comparison (a few
//! milliseconds of OpenCV) stays off the async runtime.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use argus_operators::ocr::gate::{ReadPlan, TextGate};
use argus_operators::ocr::{OcrConfig, PpOcr, ReadJob, Reading, TextLine};
use argus_operators::{BgrImage, OperatorError};
use async_trait::async_trait;

use super::worker::{Batching, ModelWorker, Queues};
use crate::config::AnalysisConfig;
use crate::metrics::Metrics;
use crate::stream::{Analysis, FrameAnalyser};

/// The name results carry in their `operator` field.
pub const OCR_OPERATOR: &str = "ocr.pp-ocrv4";

/// A frame and the camera it came from.
type CameraFrame = (Arc<str>, Arc<BgrImage>);

/// Handle to the OCR worker; cheap to clone.
#[derive(Clone)]
pub struct Analyzer {
    worker: ModelWorker<CameraFrame, (Vec<TextLine>, Duration)>,
}

impl Analyzer {
    /// Loads the models (failing early with the missing file named) and starts the worker.
    pub fn start(
        model_dir: &Path,
        ocr_config: OcrConfig,
        batching: AnalysisConfig,
        metrics: Metrics,
    ) -> Result<Self, OperatorError> {
        let mut reader = OcrReader::load(model_dir, ocr_config, metrics)?;
        let batching = Batching {
            max_batch: batching.max_batch,
            max_wait: Duration::from_millis(batching.max_wait_ms),
        };
        let worker = ModelWorker::start(
            "argus-operators",
            OCR_OPERATOR,
            batching,
            Queues::default(),
            move |frames: Vec<CameraFrame>| reader.read(&frames),
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

    async fn analyse(
        &self,
        camera: Arc<str>,
        image: Arc<BgrImage>,
    ) -> Result<Analysis, OperatorError> {
        let (ocr, latency) = self.worker.call_one((camera, image)).await?;
        Ok(Analysis { ocr, latency })
    }
}

/// What the OCR worker's thread runs: the model, and the cameras' gates when
/// `read_changes_only` is on. Public for the benchmarks, which read frames the way the
/// service does.
pub struct OcrReader {
    ocr: PpOcr,
    gates: Option<Gates>,
    metrics: Metrics,
}

impl OcrReader {
    pub fn load(
        model_dir: &Path,
        ocr_config: OcrConfig,
        metrics: Metrics,
    ) -> Result<Self, OperatorError> {
        let gates = ocr_config
            .read_changes_only
            .then(|| Gates::new(ocr_config.full_read_every));
        let ocr = PpOcr::load(&model_dir.join("pp-ocrv4"), ocr_config)?;
        Ok(Self {
            ocr,
            gates,
            metrics,
        })
    }

    /// Reads a batch of frames (in each camera's order) in one model call; every frame
    /// reports the batch's latency.
    pub fn read(
        &mut self,
        frames: &[(Arc<str>, Arc<BgrImage>)],
    ) -> Result<Vec<(Vec<TextLine>, Duration)>, OperatorError> {
        run_batch(&mut self.ocr, self.gates.as_mut(), frames, &self.metrics)
    }
}

/// The cameras' gates, on the worker's thread.
struct Gates {
    full_read_every: u32,
    by_camera: HashMap<Arc<str>, TextGate>,
}

impl Gates {
    fn new(full_read_every: u32) -> Self {
        Self {
            full_read_every,
            by_camera: HashMap::new(),
        }
    }

    fn plan(&mut self, camera: &Arc<str>, image: &BgrImage) -> Result<ReadPlan, OperatorError> {
        let every = self.full_read_every;
        self.by_camera
            .entry(camera.clone())
            .or_insert_with(|| TextGate::new(every))
            .plan(image)
    }

    fn settle(&mut self, camera: &Arc<str>, whole: bool, lines: &[TextLine]) {
        if let Some(gate) = self.by_camera.get_mut(camera) {
            gate.settle(whole, lines);
        }
    }
}

/// One model call for the batch; every frame reports the batch's latency.
fn run_batch(
    ocr: &mut PpOcr,
    mut gates: Option<&mut Gates>,
    frames: &[CameraFrame],
    metrics: &Metrics,
) -> Result<Vec<(Vec<TextLine>, Duration)>, OperatorError> {
    let started = Instant::now();
    let plans: Vec<ReadPlan> = match gates.as_deref_mut() {
        Some(gates) => frames
            .iter()
            .map(|(camera, image)| gates.plan(camera, image))
            .collect::<Result<_, _>>()?,
        None => vec![ReadPlan::Whole; frames.len()],
    };
    let mut jobs = Vec::new();
    for ((_, image), plan) in frames.iter().zip(&plans) {
        match plan {
            ReadPlan::Whole => jobs.push(ReadJob { image, areas: None }),
            ReadPlan::Areas(areas) if !areas.is_empty() => jobs.push(ReadJob {
                image,
                areas: Some(areas),
            }),
            // A still view with no text: nothing to read.
            ReadPlan::Areas(_) => {}
        }
    }
    let result = if jobs.is_empty() {
        Ok(Vec::new())
    } else {
        ocr.read_batch(&jobs)
    };
    let latency = started.elapsed();
    metrics
        .operator_batch_size
        .with_label_values(&[OCR_OPERATOR])
        .observe(frames.len() as f64);
    match result {
        Ok(read) => {
            metrics
                .operator_latency
                .with_label_values(&[OCR_OPERATOR])
                .observe(latency.as_secs_f64());
            let mut read = read.into_iter();
            Ok(frames
                .iter()
                .zip(&plans)
                .map(|((camera, _), plan)| {
                    let nothing = Reading {
                        lines: Vec::new(),
                        whole: false,
                        pixels: 0,
                    };
                    let (kind, reading) = match plan {
                        ReadPlan::Whole => ("whole", read.next().unwrap_or(nothing)),
                        ReadPlan::Areas(areas) if areas.is_empty() => ("nothing", nothing),
                        ReadPlan::Areas(_) => {
                            let reading = read.next().unwrap_or(nothing);
                            let kind = if reading.whole { "whole" } else { "areas" };
                            (kind, reading)
                        }
                    };
                    metrics.ocr_reads.with_label_values(&[kind]).inc();
                    metrics.ocr_pixels_read.inc_by(reading.pixels);
                    if let Some(gates) = gates.as_deref_mut() {
                        gates.settle(camera, reading.whole, &reading.lines);
                    }
                    (reading.lines, latency)
                })
                .collect())
        }
        Err(error) => {
            metrics.errors.with_label_values(&["operator"]).inc();
            Err(error)
        }
    }
}

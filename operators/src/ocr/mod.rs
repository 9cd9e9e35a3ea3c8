//! Scene-text OCR with PaddleOCR's PP-OCRv4 models, run through ONNX Runtime.
//!
//! The stages follow the reference pipeline of RapidOCR (the package that ships the models):
//! [`TextDetector`] finds text regions with Differentiable Binarization, each region is cut out
//! with a perspective warp, and [`TextRecognizer`] reads it with a CTC decoder whose alphabet
//! is stored in the recognition model's own metadata. Parameters default to RapidOCR's
//! `config.yaml`, so results match what users of that package see.

mod detect;
pub mod gate;
mod geometry;
mod recognize;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use detect::TextDetector;
pub use recognize::TextRecognizer;

use self::geometry::Quad;
use crate::{BgrImage, OperatorError};

/// File names inside the model directory, as the `rapidocr-onnxruntime` wheel ships them.
pub const DETECTION_MODEL: &str = "ch_PP-OCRv4_det_infer.onnx";
pub const RECOGNITION_MODEL: &str = "ch_PP-OCRv4_rec_infer.onnx";

/// Tunables of the OCR operator. Defaults are RapidOCR's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OcrConfig {
    /// The shorter image side is scaled up to at least this many pixels before detection.
    pub det_limit_side_len: u32,
    /// Probability above which a pixel counts as text.
    pub det_thresh: f32,
    /// Mean probability a region needs to be kept.
    pub det_box_thresh: f32,
    /// How far (relative to area / perimeter) a region is grown before cropping.
    pub det_unclip_ratio: f32,
    /// At most this many regions per frame.
    pub det_max_candidates: usize,
    /// Recognised lines scoring below this are dropped.
    pub text_score: f32,
    /// Lines recognised per model call.
    pub rec_batch_size: usize,
    /// ONNX Runtime intra-op threads per model (0 = one per core).
    pub threads: usize,
    /// Whether ONNX Runtime's idle threads spin waiting for the next inference (ONNX
    /// Runtime's own default). Off here: the spinning burns CPU between inferences that the
    /// cameras' other work needs, 19-28 % of OCR's CPU in the service benchmark, with no
    /// loss in latency (BENCHMARKS.md).
    pub spin_wait: bool,
    /// Detect text only where a camera's picture changed since its previous frame and where
    /// text was found in it ([`gate`]); false detects in every frame whole. It cuts OCR's CPU
    /// by about half on a street camera, with the same words on the benchmark's cameras, the
    /// repo's tests and the labelled alert question set (BENCHMARKS.md). The service turns it
    /// on (its embedded `default.toml`); this library default stays false, so a direct
    /// caller that reads unrelated images one by one is not gated.
    pub read_changes_only: bool,
    /// With `read_changes_only`, the whole frame is still read at least once in this many
    /// frames (10 s at 1 fps): a change too slow to show between two frames is read then.
    pub full_read_every: u32,
}

impl Default for OcrConfig {
    fn default() -> Self {
        Self {
            det_limit_side_len: 736,
            det_thresh: 0.3,
            det_box_thresh: 0.5,
            det_unclip_ratio: 1.6,
            det_max_candidates: 1000,
            text_score: 0.5,
            rec_batch_size: 6,
            threads: 0,
            spin_wait: false,
            read_changes_only: false,
            full_read_every: 10,
        }
    }
}

/// One recognised line of text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextLine {
    pub text: String,
    /// Mean per-character probability, 0..1.
    pub score: f32,
    /// Corners in frame pixels: top-left, top-right, bottom-right, bottom-left.
    pub quad: [[f32; 2]; 4],
}

/// The full OCR operator: detection then recognition.
pub struct PpOcr {
    detector: TextDetector,
    recognizer: TextRecognizer,
    config: OcrConfig,
}

impl PpOcr {
    /// Loads both models from `model_dir` (the folder holding the `.onnx` files).
    pub fn load(model_dir: &Path, config: OcrConfig) -> Result<Self, OperatorError> {
        let detector = TextDetector::load(&model_dir.join(DETECTION_MODEL), &config)?;
        let recognizer = TextRecognizer::load(&model_dir.join(RECOGNITION_MODEL), &config)?;
        Ok(Self {
            detector,
            recognizer,
            config,
        })
    }

    pub fn config(&self) -> &OcrConfig {
        &self.config
    }

    /// Reads all text in a frame, top-to-bottom then left-to-right.
    pub fn recognize(&mut self, image: &BgrImage) -> Result<Vec<TextLine>, OperatorError> {
        Ok(self.recognize_batch(&[image])?.pop().unwrap_or_default())
    }

    /// Reads several frames (from many cameras) at once: detection runs once per group of
    /// same-sized frames, recognition once per batch of lines from all frames together.
    pub fn recognize_batch(
        &mut self,
        images: &[&BgrImage],
    ) -> Result<Vec<Vec<TextLine>>, OperatorError> {
        let jobs: Vec<ReadJob> = images
            .iter()
            .map(|image| ReadJob { image, areas: None })
            .collect();
        Ok(self
            .read_batch(&jobs)?
            .into_iter()
            .map(|reading| reading.lines)
            .collect())
    }

    /// Like [`PpOcr::recognize_batch`], detecting text only in the given areas of the frames
    /// that name some. An area is detected at its frame's scale and its lines come back in
    /// frame pixels.
    /// When a box found in an area touches the area's edge inside the frame, the text may go
    /// on beyond it, and a line read in part is a wrong reading: that frame is read whole
    /// instead ([`Reading::whole`] says so).
    pub fn read_batch(&mut self, jobs: &[ReadJob]) -> Result<Vec<Reading>, OperatorError> {
        let mut readings: Vec<Reading> = jobs
            .iter()
            .map(|job| Reading {
                lines: Vec::new(),
                whole: job.areas.is_none(),
                pixels: 0,
            })
            .collect();
        // First the areas; the frames whose areas cut a box are read whole with the rest.
        let mut crops: Vec<(usize, Area, BgrImage)> = Vec::new();
        for (job_index, job) in jobs.iter().enumerate() {
            let scale = self.detector.scale(job.image.width(), job.image.height());
            for area in job.areas.unwrap_or_default() {
                let area = area.clipped_to(job.image).aligned(scale, job.image);
                if area.width == 0 || area.height == 0 {
                    continue;
                }
                let crop = job.image.crop(area.x, area.y, area.width, area.height)?;
                crops.push((job_index, area, crop));
            }
        }
        let mut quads_per_job: Vec<Vec<Quad>> = vec![Vec::new(); jobs.len()];
        if !crops.is_empty() {
            let scaled: Vec<(&BgrImage, f32)> = crops
                .iter()
                .map(|(job_index, _, crop)| {
                    let frame = jobs[*job_index].image;
                    (crop, self.detector.scale(frame.width(), frame.height()))
                })
                .collect();
            let detections = self.detector.detect_scaled(&scaled)?;
            for ((job_index, area, _), quads) in crops.iter().zip(detections) {
                let reading = &mut readings[*job_index];
                reading.pixels += area.pixels();
                if quads
                    .iter()
                    .any(|quad| area.cuts(quad, jobs[*job_index].image))
                {
                    reading.whole = true;
                }
                let (dx, dy) = (area.x as f32, area.y as f32);
                quads_per_job[*job_index]
                    .extend(quads.into_iter().map(|q| q.map(|[x, y]| [x + dx, y + dy])));
            }
        }
        let whole: Vec<usize> = (0..jobs.len()).filter(|&i| readings[i].whole).collect();
        if !whole.is_empty() {
            let images: Vec<&BgrImage> = whole.iter().map(|&i| jobs[i].image).collect();
            for (&job_index, quads) in whole.iter().zip(self.detector.detect_batch(&images)?) {
                let image = jobs[job_index].image;
                readings[job_index].pixels += Area::whole(image).pixels();
                quads_per_job[job_index] = quads;
            }
        }
        let mut crops = Vec::new();
        for (job, quads) in jobs.iter().zip(quads_per_job.iter_mut()) {
            geometry::reading_order(quads);
            for quad in quads.iter() {
                crops.push(geometry::crop_quad(job.image, quad)?);
            }
        }
        let mut recognized = if crops.is_empty() {
            Vec::new()
        } else {
            self.recognizer.recognize(&crops)?
        }
        .into_iter();
        for (reading, quads) in readings.iter_mut().zip(quads_per_job) {
            reading.lines = quads
                .into_iter()
                .zip(recognized.by_ref())
                .filter(|(_, (text, score))| {
                    *score >= self.config.text_score && !text.trim().is_empty()
                })
                .map(|(quad, (text, score))| TextLine { text, score, quad })
                .collect();
        }
        Ok(readings)
    }
}

/// What [`PpOcr::read_batch`] read of one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// In frame pixels, in reading order.
    pub lines: Vec<TextLine>,
    /// Whether the whole frame was read (asked for, or an area cut a line).
    pub whole: bool,
    /// Pixels the detector looked at.
    pub pixels: u64,
}

/// What to read of one frame: all of it, or some areas.
pub struct ReadJob<'a> {
    pub image: &'a BgrImage,
    /// Where to detect text; `None` detects in the whole frame.
    pub areas: Option<&'a [Area]>,
}

/// A rectangle of a frame, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Area {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Area {
    pub fn whole(image: &BgrImage) -> Self {
        Self {
            x: 0,
            y: 0,
            width: image.width(),
            height: image.height(),
        }
    }

    /// The part of the area inside `image`.
    pub fn clipped_to(&self, image: &BgrImage) -> Self {
        let x = self.x.min(image.width());
        let y = self.y.min(image.height());
        Self {
            x,
            y,
            width: self.width.min(image.width() - x),
            height: self.height.min(image.height() - y),
        }
    }

    pub fn pixels(&self) -> u64 {
        self.width as u64 * self.height as u64
    }

    /// The area grown (about its centre, inside `image`) so that, enlarged by `scale`, both
    /// sides are whole multiples of the detector's stride of 32. The network input is
    /// snapped to those multiples; an area that is not would be stretched to fit, by up to a
    /// fifth on a small area, and stretched text is found in pieces ("PAR", "KING").
    fn aligned(&self, scale: f32, image: &BgrImage) -> Self {
        let fit = |start: u32, length: u32, limit: u32| {
            let snapped = ((length as f32 * scale) / 32.0).ceil() * 32.0;
            let wanted = ((snapped / scale).ceil() as u32).min(limit);
            let grow = wanted.saturating_sub(length);
            let start = start.saturating_sub(grow / 2).min(limit - wanted);
            (start, wanted)
        };
        let (x, width) = fit(self.x, self.width, image.width());
        let (y, height) = fit(self.y, self.height, image.height());
        Self {
            x,
            y,
            width,
            height,
        }
    }

    /// Whether `quad` (in this area's pixels) reaches an edge of the area that lies inside
    /// `image`: the text it boxes may go on past the area.
    fn cuts(&self, quad: &Quad, image: &BgrImage) -> bool {
        const EDGE: f32 = 4.0;
        let xs = quad.map(|p| p[0]);
        let ys = quad.map(|p| p[1]);
        let min = |v: [f32; 4]| v.into_iter().fold(f32::INFINITY, f32::min);
        let max = |v: [f32; 4]| v.into_iter().fold(f32::NEG_INFINITY, f32::max);
        (self.x > 0 && min(xs) <= EDGE)
            || (self.y > 0 && min(ys) <= EDGE)
            || (self.x + self.width < image.width() && max(xs) >= self.width as f32 - EDGE)
            || (self.y + self.height < image.height() && max(ys) >= self.height as f32 - EDGE)
    }
}

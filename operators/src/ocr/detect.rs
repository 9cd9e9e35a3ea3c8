//! Text detection: PP-OCRv4's Differentiable Binarization (DB) network plus its
//! post-processing (threshold, dilate, contours, box scoring, unclip).

use std::path::Path;

use ndarray::Array4;
use opencv::core::{self, Mat, Point, Size, Vector};
use opencv::imgproc;
use opencv::prelude::*;
use ort::session::Session;
use ort::value::TensorRef;

use super::geometry::{self, Quad};
use super::OcrConfig;
use crate::{onnx, BgrImage, OperatorError};

const MODEL: &str = "PP-OCRv4 detection";
/// Regions whose shorter side is below this many pixels (on the model's map) are noise.
const MIN_SIDE: f32 = 3.0;

pub struct TextDetector {
    session: Session,
    limit_side_len: u32,
    thresh: f32,
    box_thresh: f32,
    unclip_ratio: f32,
    max_candidates: usize,
}

impl TextDetector {
    pub fn load(path: &Path, config: &OcrConfig) -> Result<Self, OperatorError> {
        Ok(Self {
            session: onnx::load_session(path, config.threads, config.spin_wait)?,
            limit_side_len: config.det_limit_side_len,
            thresh: config.det_thresh,
            box_thresh: config.det_box_thresh,
            unclip_ratio: config.det_unclip_ratio,
            max_candidates: config.det_max_candidates,
        })
    }

    /// Text regions of a frame in frame pixels, in reading order.
    pub fn detect(&mut self, image: &BgrImage) -> Result<Vec<Quad>, OperatorError> {
        Ok(self.detect_batch(&[image])?.pop().unwrap_or_default())
    }

    /// Text regions of several frames. Frames that share a network input size (the usual case:
    /// cameras of one model) go through the network in a single call.
    pub fn detect_batch(&mut self, images: &[&BgrImage]) -> Result<Vec<Vec<Quad>>, OperatorError> {
        let scaled: Vec<(&BgrImage, f32)> = images
            .iter()
            .map(|image| (*image, self.scale(image.width(), image.height())))
            .collect();
        self.detect_scaled(&scaled)
    }

    /// How much a frame of this size is enlarged for the network: its shorter side is raised
    /// to `limit_side_len`.
    pub fn scale(&self, width: u32, height: u32) -> f32 {
        let shorter = width.min(height) as f32;
        if shorter < self.limit_side_len as f32 {
            self.limit_side_len as f32 / shorter
        } else {
            1.0
        }
    }

    /// Text regions of images each enlarged by its own scale: a part of a frame is read at
    /// its frame's scale, so its text looks to the network as it does in the whole frame.
    pub fn detect_scaled(
        &mut self,
        images: &[(&BgrImage, f32)],
    ) -> Result<Vec<Vec<Quad>>, OperatorError> {
        let mut results = vec![Vec::new(); images.len()];
        let mut groups: Vec<((u32, u32), Vec<usize>)> = Vec::new();
        for (index, (image, scale)) in images.iter().enumerate() {
            let Some(size) = input_size(image.width(), image.height(), *scale) else {
                continue;
            };
            match groups
                .iter_mut()
                .find(|(group_size, _)| *group_size == size)
            {
                Some((_, members)) => members.push(index),
                None => groups.push((size, vec![index])),
            }
        }
        for ((input_w, input_h), members) in groups {
            let batch: Vec<&BgrImage> = members.iter().map(|&i| images[i].0).collect();
            let input = normalized_input(&batch, input_w, input_h)?;
            let probabilities = {
                let outputs = self
                    .session
                    .run(ort::inputs![
                        TensorRef::from_array_view(&input).map_err(inference_error)?
                    ])
                    .map_err(inference_error)?;
                let (shape, data) = outputs[0]
                    .try_extract_tensor::<f32>()
                    .map_err(inference_error)?;
                let expected = [batch.len() as i64, 1, input_h as i64, input_w as i64];
                if **shape != expected {
                    return Err(OperatorError::UnexpectedOutput {
                        model: MODEL.into(),
                        message: format!("expected a {expected:?} map, got {shape:?}"),
                    });
                }
                data.to_vec()
            };
            let map_len = (input_w * input_h) as usize;
            for (slot, &index) in members.iter().enumerate() {
                let map = &probabilities[slot * map_len..(slot + 1) * map_len];
                let (width, height) = (images[index].0.width(), images[index].0.height());
                let mut quads = self
                    .boxes_from_map(map, input_w as i32, input_h as i32, width, height)?
                    .into_iter()
                    .map(|quad| clip_to_frame(geometry::order_clockwise(&quad), width, height))
                    .filter(|quad| {
                        let (w, h) = geometry::crop_size(quad);
                        w > 3 && h > 3
                    })
                    .collect::<Vec<_>>();
                geometry::reading_order(&mut quads);
                results[index] = quads;
            }
        }
        Ok(results)
    }

    fn boxes_from_map(
        &self,
        probability: &[f32],
        map_w: i32,
        map_h: i32,
        frame_w: u32,
        frame_h: u32,
    ) -> Result<Vec<Quad>, OperatorError> {
        let text_mask: Vec<u8> = probability
            .iter()
            .map(|&p| if p > self.thresh { 255 } else { 0 })
            .collect();
        let text_mask = Mat::new_rows_cols_with_data::<u8>(map_h, map_w, &text_mask)?;
        let kernel = Mat::new_rows_cols_with_default(2, 2, core::CV_8U, core::Scalar::all(1.0))?;
        let mut dilated = Mat::default();
        imgproc::dilate(
            &text_mask,
            &mut dilated,
            &kernel,
            Point::new(-1, -1),
            1,
            core::BORDER_CONSTANT,
            imgproc::morphology_default_border_value()?,
        )?;
        let mut contours = Vector::<Vector<Point>>::new();
        imgproc::find_contours(
            &dilated,
            &mut contours,
            imgproc::RETR_LIST,
            imgproc::CHAIN_APPROX_SIMPLE,
            Point::default(),
        )?;

        let mut quads = Vec::new();
        for contour in contours.iter().take(self.max_candidates) {
            let rect = imgproc::min_area_rect(&contour)?;
            let (quad, shorter) = geometry::mini_box(&rect)?;
            if shorter < MIN_SIDE {
                continue;
            }
            if mean_inside(probability, map_w, map_h, &quad)? < self.box_thresh {
                continue;
            }
            let (quad, shorter) = geometry::mini_box(&geometry::unclip(&rect, self.unclip_ratio))?;
            if shorter < MIN_SIDE + 2.0 {
                continue;
            }
            let scale_x = frame_w as f32 / map_w as f32;
            let scale_y = frame_h as f32 / map_h as f32;
            quads.push(quad.map(|[x, y]| {
                [
                    (x * scale_x).round().clamp(0.0, frame_w as f32),
                    (y * scale_y).round().clamp(0.0, frame_h as f32),
                ]
            }));
        }
        Ok(quads)
    }
}

/// The network input size of an image enlarged by `scale`: both sides a multiple of 32 (the
/// network's stride).
fn input_size(width: u32, height: u32, scale: f32) -> Option<(u32, u32)> {
    let snap = |side: u32| ((side as f32 * scale).trunc() / 32.0).round_ties_even() as u32 * 32;
    let (w, h) = (snap(width), snap(height));
    (w > 0 && h > 0).then_some((w, h))
}

fn inference_error(error: impl std::fmt::Display) -> OperatorError {
    OperatorError::Inference {
        model: MODEL.into(),
        message: error.to_string(),
    }
}

/// Resizes frames to the network size and normalises them to NCHW in [-1, 1].
fn normalized_input(
    images: &[&BgrImage],
    width: u32,
    height: u32,
) -> Result<Array4<f32>, OperatorError> {
    let (w, h) = (width as usize, height as usize);
    let mut input = Array4::<f32>::zeros((images.len(), 3, h, w));
    for (slot, image) in images.iter().enumerate() {
        let frame = image.as_mat()?;
        let mut resized = Mat::default();
        imgproc::resize(
            &frame,
            &mut resized,
            Size::new(width as i32, height as i32),
            0.0,
            0.0,
            imgproc::INTER_LINEAR,
        )?;
        let pixels = resized.data_bytes()?;
        for (index, bgr) in pixels.chunks_exact(3).enumerate() {
            let (y, x) = (index / w, index % w);
            for channel in 0..3 {
                input[[slot, channel, y, x]] = bgr[channel] as f32 / 127.5 - 1.0;
            }
        }
    }
    Ok(input)
}

/// Mean text probability inside a quad (RapidOCR's "fast" box score).
fn mean_inside(
    probability: &[f32],
    map_w: i32,
    map_h: i32,
    quad: &Quad,
) -> Result<f32, OperatorError> {
    let xs = quad.map(|p| p[0]);
    let ys = quad.map(|p| p[1]);
    let min = |v: [f32; 4]| v.into_iter().fold(f32::INFINITY, f32::min);
    let max = |v: [f32; 4]| v.into_iter().fold(f32::NEG_INFINITY, f32::max);
    let x0 = (min(xs).floor() as i32).clamp(0, map_w - 1);
    let x1 = (max(xs).ceil() as i32).clamp(0, map_w - 1);
    let y0 = (min(ys).floor() as i32).clamp(0, map_h - 1);
    let y1 = (max(ys).ceil() as i32).clamp(0, map_h - 1);
    let (w, h) = (x1 - x0 + 1, y1 - y0 + 1);

    let mut mask = Mat::zeros(h, w, core::CV_8U)?.to_mat()?;
    let polygon: Vector<Point> = quad
        .iter()
        .map(|p| Point::new((p[0] - x0 as f32) as i32, (p[1] - y0 as f32) as i32))
        .collect();
    let polygons: Vector<Vector<Point>> = std::iter::once(polygon).collect();
    imgproc::fill_poly(
        &mut mask,
        &polygons,
        core::Scalar::all(1.0),
        imgproc::LINE_8,
        0,
        Point::default(),
    )?;

    let mask = mask.data_bytes()?;
    let (mut sum, mut count) = (0.0f64, 0usize);
    for row in 0..h {
        for col in 0..w {
            if mask[(row * w + col) as usize] != 0 {
                sum += probability[((y0 + row) * map_w + x0 + col) as usize] as f64;
                count += 1;
            }
        }
    }
    Ok(if count == 0 {
        0.0
    } else {
        (sum / count as f64) as f32
    })
}

fn clip_to_frame(quad: Quad, width: u32, height: u32) -> Quad {
    quad.map(|[x, y]| {
        [
            x.clamp(0.0, (width - 1) as f32).trunc(),
            y.clamp(0.0, (height - 1) as f32).trunc(),
        ]
    })
}

//! A colour layout descriptor: a compact signature of where the colours of a frame are.
//!
//! This is MPEG-7's Colour Layout Descriptor (ISO/IEC 15938-3): the frame is reduced to an
//! 8×8 grid of average colours, converted to YCbCr, each channel is transformed with an 8×8
//! DCT, and the low-frequency coefficients are read in zigzag order. Two frames of the same
//! scene — a fixed camera's view, a test pattern, a slide — are close in L2 distance; frames
//! of different scenes are far apart. It needs no model, costs microseconds, and is what
//! image-conditioned moment search falls back to when no image-text encoder (CLIP, SigLIP)
//! is configured: "find when the camera showed this view again".
//!
//! The standard keeps 6 luma and 3+3 chroma coefficients for compactness; retrieval gains
//! from a few more, so this keeps 15 + 6 + 6 (the first diagonals of the zigzag).

use opencv::core::{Mat, Size, CV_32F};
use opencv::prelude::*;

use crate::{BgrImage, OperatorError};

/// Coefficients kept per channel: luma, then the two chroma channels.
const LUMA_COEFFICIENTS: usize = 15;
const CHROMA_COEFFICIENTS: usize = 6;

/// Length of a descriptor.
pub const DIMENSION: usize = LUMA_COEFFICIENTS + 2 * CHROMA_COEFFICIENTS;

/// Zigzag scan order of an 8×8 block (row, column), as in JPEG and MPEG-7.
const ZIGZAG: [(usize, usize); 15] = [
    (0, 0),
    (0, 1),
    (1, 0),
    (2, 0),
    (1, 1),
    (0, 2),
    (0, 3),
    (1, 2),
    (2, 1),
    (3, 0),
    (4, 0),
    (3, 1),
    (2, 2),
    (1, 3),
    (0, 4),
];

/// The descriptor of `image`: [`DIMENSION`] values, DCT coefficients of 0–255 colour values
/// divided by 8 (the DCT's scale), so the DC terms are the channels' mean colours.
pub fn colour_layout(image: &BgrImage) -> Result<Vec<f32>, OperatorError> {
    let source = image.as_mat()?;
    let mut grid = Mat::default();
    opencv::imgproc::resize(
        &source,
        &mut grid,
        Size::new(8, 8),
        0.0,
        0.0,
        opencv::imgproc::INTER_AREA,
    )?;
    let mut ycrcb = Mat::default();
    opencv::imgproc::cvt_color_def(&grid, &mut ycrcb, opencv::imgproc::COLOR_BGR2YCrCb)?;
    let mut channels = opencv::core::Vector::<Mat>::new();
    opencv::core::split(&ycrcb, &mut channels)?;
    // OpenCV orders them Y, Cr, Cb.
    let mut descriptor = Vec::with_capacity(DIMENSION);
    for (index, keep) in [
        (0, LUMA_COEFFICIENTS),
        (2, CHROMA_COEFFICIENTS),
        (1, CHROMA_COEFFICIENTS),
    ] {
        let mut values = Mat::default();
        channels
            .get(index)?
            .convert_to(&mut values, CV_32F, 1.0, 0.0)?;
        let mut coefficients = Mat::default();
        opencv::core::dct(&values, &mut coefficients, 0)?;
        for &(row, column) in &ZIGZAG[..keep] {
            descriptor.push(*coefficients.at_2d::<f32>(row as i32, column as i32)? / 8.0);
        }
    }
    Ok(descriptor)
}

/// Squared L2 distance between two descriptors.
pub fn distance_squared(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(bgr: [u8; 3]) -> BgrImage {
        BgrImage::new(64, 36, bgr.repeat(64 * 36)).unwrap()
    }

    fn split(left: [u8; 3], right: [u8; 3]) -> BgrImage {
        let mut data = Vec::with_capacity(64 * 36 * 3);
        for _row in 0..36 {
            for column in 0..64 {
                data.extend_from_slice(if column < 32 { &left } else { &right });
            }
        }
        BgrImage::new(64, 36, data).unwrap()
    }

    #[test]
    fn a_grey_frame_has_only_its_mean_colour() {
        let descriptor = colour_layout(&solid([128, 128, 128])).unwrap();
        assert_eq!(descriptor.len(), DIMENSION);
        assert!((descriptor[0] - 128.0).abs() < 1.0, "{}", descriptor[0]);
        assert!(descriptor[1..LUMA_COEFFICIENTS]
            .iter()
            .all(|c| c.abs() < 1e-3));
    }

    #[test]
    fn the_same_layout_is_near_and_a_mirrored_one_is_far() {
        let scene = colour_layout(&split([0, 0, 255], [255, 0, 0])).unwrap();
        let noisy = colour_layout(&split([10, 5, 245], [250, 8, 3])).unwrap();
        let mirrored = colour_layout(&split([255, 0, 0], [0, 0, 255])).unwrap();
        let near = distance_squared(&scene, &noisy);
        let far = distance_squared(&scene, &mirrored);
        assert!(near * 20.0 < far, "near {near}, far {far}");
    }
}

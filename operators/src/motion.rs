//! Motion between consecutive frames of one camera: how much of the picture changed, and where.
//!
//! Plain frame differencing on small, blurred greyscale copies: each frame is compared with
//! the one before it, changed pixels are grown into blobs, and each blob becomes a
//! [`MotionRegion`]. Unlike a background model (MOG2 and friends) it needs no warm-up, which
//! at the one or two frames per second sampled for analysis would take minutes; it keeps
//! nothing but the previous frame and costs about a millisecond per frame. It answers "is
//! something moving, and roughly where" — enough to say "motion in the bottom left" in a
//! prompt or to skip still frames — not "what is moving". Frames far apart in time show an
//! object twice (where it was, where it is), and a camera that pans or changes exposure
//! shows motion everywhere.

use opencv::core::{self, Mat, Point, Size};
use opencv::imgproc;
use opencv::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{BgrImage, OperatorError};

/// Tunables of the motion detector.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MotionConfig {
    /// Frames are shrunk to this width (aspect kept; narrower frames are left as they are)
    /// before comparing: it is fast, and it averages away sensor noise and compression
    /// artefacts that would otherwise count as motion.
    pub working_width: u32,
    /// Grey-level difference (0–255) above which a pixel counts as changed.
    pub threshold: u8,
    /// Regions covering less than this fraction of the frame are noise and dropped.
    pub min_region_area: f32,
}

impl Default for MotionConfig {
    fn default() -> Self {
        Self {
            working_width: 320,
            threshold: 25,
            min_region_area: 0.0005,
        }
    }
}

/// What changed since the previous frame.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Motion {
    /// Fraction of the frame's pixels that changed, 0..1.
    pub level: f32,
    /// The changed areas, largest first.
    pub regions: Vec<MotionRegion>,
}

/// One connected changed area. Coordinates are fractions of the frame's width and height, so
/// they mean the same at any resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MotionRegion {
    /// Left edge of the bounding box, 0..1.
    pub x: f32,
    /// Top edge of the bounding box, 0..1.
    pub y: f32,
    pub width: f32,
    pub height: f32,
    /// Fraction of the frame's pixels that changed inside this region, 0..1.
    pub area: f32,
}

impl MotionRegion {
    /// Where the region's centre lies in a 3×3 grid over the frame, in words ("top left",
    /// "centre", "bottom right", ...), for prompts and logs.
    pub fn place(&self) -> &'static str {
        const PLACES: [[&str; 3]; 3] = [
            ["top left", "top centre", "top right"],
            ["centre left", "centre", "centre right"],
            ["bottom left", "bottom centre", "bottom right"],
        ];
        let third = |v: f32| ((v * 3.0) as usize).min(2);
        PLACES[third(self.y + self.height / 2.0)][third(self.x + self.width / 2.0)]
    }
}

/// Motion of one stream: keep one per camera and show it every frame, in order.
pub struct MotionDetector {
    config: MotionConfig,
    /// The previous frame's size and its shrunk, blurred greyscale copy.
    previous: Option<((u32, u32), Mat)>,
}

impl MotionDetector {
    pub fn new(config: MotionConfig) -> Self {
        Self {
            config,
            previous: None,
        }
    }

    /// Compares `frame` with the previous one and remembers it for the next call. The first
    /// frame, and the first after the frame size changes (a camera reconfigured), have nothing
    /// to compare with: no motion.
    pub fn observe(&mut self, frame: &BgrImage) -> Result<Motion, OperatorError> {
        let size = (frame.width(), frame.height());
        let current = self.prepare(frame)?;
        let motion = match self.previous.take() {
            Some((previous_size, previous)) if previous_size == size => {
                self.compare(&previous, &current)?
            }
            _ => Motion::default(),
        };
        self.previous = Some((size, current));
        Ok(motion)
    }

    /// Greyscale, shrunk to the working width, blurred so single-pixel flicker does not count.
    fn prepare(&self, frame: &BgrImage) -> Result<Mat, OperatorError> {
        let mut grey = Mat::default();
        imgproc::cvt_color_def(&frame.as_mat()?, &mut grey, imgproc::COLOR_BGR2GRAY)?;
        let width = self.config.working_width.clamp(1, frame.width());
        let height =
            ((frame.height() as f64 * width as f64 / frame.width() as f64).round() as i32).max(1);
        let mut small = Mat::default();
        imgproc::resize(
            &grey,
            &mut small,
            Size::new(width as i32, height),
            0.0,
            0.0,
            imgproc::INTER_AREA,
        )?;
        let mut blurred = Mat::default();
        imgproc::gaussian_blur_def(&small, &mut blurred, Size::new(5, 5), 0.0)?;
        Ok(blurred)
    }

    fn compare(&self, previous: &Mat, current: &Mat) -> Result<Motion, OperatorError> {
        let mut difference = Mat::default();
        core::absdiff(previous, current, &mut difference)?;
        let mut changed = Mat::default();
        imgproc::threshold(
            &difference,
            &mut changed,
            self.config.threshold as f64,
            255.0,
            imgproc::THRESH_BINARY,
        )?;
        let pixels = (changed.rows() * changed.cols()) as f32;
        let level = core::count_non_zero(&changed)? as f32 / pixels;
        if level == 0.0 {
            return Ok(Motion::default());
        }

        // A moving object changes pixels at its leading and trailing edges, with still pixels
        // between; growing the changed pixels joins them into one region per object.
        let mut grown = Mat::default();
        imgproc::dilate(
            &changed,
            &mut grown,
            &imgproc::get_structuring_element_def(imgproc::MORPH_RECT, Size::new(3, 3))?,
            Point::new(-1, -1),
            2,
            core::BORDER_CONSTANT,
            imgproc::morphology_default_border_value()?,
        )?;
        let (mut labels, mut stats, mut centroids) =
            (Mat::default(), Mat::default(), Mat::default());
        let count = imgproc::connected_components_with_stats(
            &grown,
            &mut labels,
            &mut stats,
            &mut centroids,
            8,
            core::CV_32S,
        )? as usize;

        // A region's area counts the pixels that really changed in it, not the grown ones,
        // so the regions' areas add up to at most `level`.
        let mut changed_in = vec![0usize; count];
        for (&label, &pixel) in labels
            .data_typed::<i32>()?
            .iter()
            .zip(changed.data_bytes()?)
        {
            if pixel != 0 {
                changed_in[label as usize] += 1;
            }
        }
        let (width, height) = (changed.cols() as f32, changed.rows() as f32);
        let stat = |label: usize, which: i32| stats.at_2d::<i32>(label as i32, which).copied();
        let mut regions = Vec::new();
        // label 0 is the unchanged background
        for (label, &changed_pixels) in changed_in.iter().enumerate().skip(1) {
            let area = changed_pixels as f32 / pixels;
            if area < self.config.min_region_area {
                continue;
            }
            regions.push(MotionRegion {
                x: stat(label, imgproc::CC_STAT_LEFT)? as f32 / width,
                y: stat(label, imgproc::CC_STAT_TOP)? as f32 / height,
                width: stat(label, imgproc::CC_STAT_WIDTH)? as f32 / width,
                height: stat(label, imgproc::CC_STAT_HEIGHT)? as f32 / height,
                area,
            });
        }
        regions.sort_by(|a, b| b.area.total_cmp(&a.area));
        Ok(Motion { level, regions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_name_the_grid_cell_of_the_centre() {
        let region = |x: f32, y: f32| MotionRegion {
            x,
            y,
            width: 0.1,
            height: 0.1,
            area: 0.01,
        };
        assert_eq!(region(0.0, 0.0).place(), "top left");
        assert_eq!(region(0.45, 0.45).place(), "centre");
        assert_eq!(region(0.9, 0.9).place(), "bottom right");
        assert_eq!(region(0.45, 0.0).place(), "top centre");
        assert_eq!(region(0.0, 0.8).place(), "bottom left");
        assert_eq!(region(0.9, 0.45).place(), "centre right");
    }
}

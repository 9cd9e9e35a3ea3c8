//! Box geometry shared by the OCR stages, after RapidOCR's `get_mini_boxes`,
//! `order_points_clockwise`, `sorted_boxes` and `get_rotate_crop_image`.

use opencv::core::{self, Mat, Point2f, RotatedRect, Scalar, Size, Vector};
use opencv::imgproc;

use crate::{BgrImage, OperatorError};

/// Four corners; after [`order_clockwise`]: top-left, top-right, bottom-right, bottom-left.
pub type Quad = [[f32; 2]; 4];

/// The corners of a rotated rectangle in RapidOCR's order, and its shorter side.
pub fn mini_box(rect: &RotatedRect) -> Result<(Quad, f32), OperatorError> {
    let mut corners = [Point2f::default(); 4];
    rect.points(&mut corners)?;
    corners.sort_by(|a, b| a.x.total_cmp(&b.x));
    let (first, fourth) = if corners[1].y > corners[0].y {
        (0, 1)
    } else {
        (1, 0)
    };
    let (second, third) = if corners[3].y > corners[2].y {
        (2, 3)
    } else {
        (3, 2)
    };
    let quad = [first, second, third, fourth].map(|i| [corners[i].x, corners[i].y]);
    let size = rect.size;
    Ok((quad, size.width.min(size.height)))
}

/// Grows a detected text rectangle by `area * ratio / perimeter` on every side.
///
/// RapidOCR does this with a polygon-offset library (pyclipper) and then takes the
/// minimum-area rectangle of the result. For a rectangle input that rectangle is, up to
/// pyclipper's integer rounding, the same rectangle with each side longer by twice the offset,
/// so we compute it directly instead of pulling in a clipping library.
pub fn unclip(rect: &RotatedRect, ratio: f32) -> RotatedRect {
    let (w, h) = (rect.size.width, rect.size.height);
    let perimeter = 2.0 * (w + h);
    let distance = if perimeter > 0.0 {
        w * h * ratio / perimeter
    } else {
        0.0
    };
    let mut grown = *rect;
    grown.size.width = w + 2.0 * distance;
    grown.size.height = h + 2.0 * distance;
    grown
}

/// Orders corners as top-left, top-right, bottom-right, bottom-left.
pub fn order_clockwise(quad: &Quad) -> Quad {
    let mut by_x = *quad;
    by_x.sort_by(|a, b| a[0].total_cmp(&b[0]));
    let (mut left, mut right) = ([by_x[0], by_x[1]], [by_x[2], by_x[3]]);
    left.sort_by(|a, b| a[1].total_cmp(&b[1]));
    right.sort_by(|a, b| a[1].total_cmp(&b[1]));
    [left[0], right[0], right[1], left[1]]
}

/// Sorts boxes top-to-bottom, then left-to-right within a line (tops within 10 px).
pub fn reading_order(quads: &mut [Quad]) {
    reading_order_by(quads, |quad| quad);
}

/// [`reading_order`] of anything with a box: lines read earlier and lines read now are put
/// back in the order one read of the frame would give.
pub fn reading_order_by<T>(items: &mut [T], quad: impl Fn(&T) -> &Quad) {
    items.sort_by(|a, b| {
        let (a, b) = (quad(a), quad(b));
        a[0][1]
            .total_cmp(&b[0][1])
            .then(a[0][0].total_cmp(&b[0][0]))
    });
    for i in 0..items.len().saturating_sub(1) {
        for j in (0..=i).rev() {
            let (upper, lower) = (quad(&items[j]), quad(&items[j + 1]));
            let same_line = (lower[0][1] - upper[0][1]).abs() < 10.0;
            if same_line && lower[0][0] < upper[0][0] {
                items.swap(j, j + 1);
            } else {
                break;
            }
        }
    }
}

fn distance(a: [f32; 2], b: [f32; 2]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// Width and height of a quad's crop, in whole pixels.
pub fn crop_size(quad: &Quad) -> (i32, i32) {
    let width = distance(quad[0], quad[1]).max(distance(quad[2], quad[3]));
    let height = distance(quad[0], quad[3]).max(distance(quad[1], quad[2]));
    (width as i32, height as i32)
}

/// Cuts a quad out of the frame, rectified; tall crops (vertical text) are turned upright.
pub fn crop_quad(image: &BgrImage, quad: &Quad) -> Result<Mat, OperatorError> {
    let (width, height) = crop_size(quad);
    if width <= 0 || height <= 0 {
        return Err(OperatorError::InvalidInput(format!(
            "text box {quad:?} has no area"
        )));
    }
    let source: Vector<Point2f> = quad.iter().map(|p| Point2f::new(p[0], p[1])).collect();
    let (w, h) = (width as f32, height as f32);
    let target: Vector<Point2f> = [[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]]
        .iter()
        .map(|p| Point2f::new(p[0], p[1]))
        .collect();
    let transform = imgproc::get_perspective_transform(&source, &target, core::DECOMP_LU)?;
    let frame = image.as_mat()?;
    let mut crop = Mat::default();
    imgproc::warp_perspective(
        &frame,
        &mut crop,
        &transform,
        Size::new(width, height),
        imgproc::INTER_CUBIC,
        core::BORDER_REPLICATE,
        Scalar::default(),
    )?;
    if height as f32 / width as f32 >= 1.5 {
        let mut upright = Mat::default();
        core::rotate(&crop, &mut upright, core::ROTATE_90_COUNTERCLOCKWISE)?;
        crop = upright;
    }
    Ok(crop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_clockwise_puts_top_left_first() {
        let quad = [[10.0, 20.0], [0.0, 0.0], [0.0, 20.0], [10.0, 0.0]];
        assert_eq!(
            order_clockwise(&quad),
            [[0.0, 0.0], [10.0, 0.0], [10.0, 20.0], [0.0, 20.0]]
        );
    }

    #[test]
    fn reading_order_is_lines_then_columns() {
        let line = |x: f32, y: f32| [[x, y], [x + 5.0, y], [x + 5.0, y + 5.0], [x, y + 5.0]];
        let mut quads = vec![
            line(50.0, 102.0),
            line(0.0, 0.0),
            line(10.0, 100.0),
            line(60.0, 3.0),
        ];
        reading_order(&mut quads);
        let tops: Vec<_> = quads.iter().map(|q| (q[0][0], q[0][1])).collect();
        assert_eq!(
            tops,
            vec![(0.0, 0.0), (60.0, 3.0), (10.0, 100.0), (50.0, 102.0)]
        );
    }

    #[test]
    fn unclip_grows_each_side_by_the_offset() {
        let rect = RotatedRect::new(
            Point2f::new(50.0, 50.0),
            opencv::core::Size2f::new(40.0, 10.0),
            0.0,
        )
        .unwrap();
        // offset = 40 * 10 * 1.6 / 100 = 6.4
        let grown = unclip(&rect, 1.6);
        assert!((grown.size.width - 52.8).abs() < 1e-4);
        assert!((grown.size.height - 22.8).abs() < 1e-4);
    }
}

//! Reading only what changed: one camera's OCR gate.
//!
//! A fixed camera's text mostly stands still (signs, labels, overlays) while people and cars
//! move in front of it, and most of the picture is neither. The detector, whose cost grows
//! with the pixels it sees, is most of OCR's cost. The gate compares each frame with the one
//! before it (the [`MotionDetector`], tuned finer than for motion events so that a changed
//! digit of a small overlay counts) and plans where to detect:
//! - where something changed, and where text was found in the last frame, each with a margin
//!   (overlapping places joined, a place grown over any box it touches so a line is found
//!   whole): text can only appear where the picture changed, and where it already was it is
//!   detected and read afresh in every frame, as whole reads do (a box that caught a stray
//!   stroke in one frame is not kept for the next);
//! - the whole frame when those places cover most of it, for the first frame, and every
//!   `full_read_every` frames: the periodic whole read bounds how long a slow change (a fade
//!   below the per-frame threshold) can go unseen.
//!
//! A still view with no text is not read at all.

use opencv::core::Rect;

use super::geometry::Quad;
use super::{Area, TextLine};
use crate::motion::{MotionConfig, MotionDetector};
use crate::{BgrImage, OperatorError};

/// Pixels added around each changed place and each line it touches: text next to a change is
/// read with it, and the detector sees a line with the background around it (without it, a
/// line's first letter at the very edge of an area goes unseen).
const MARGIN: u32 = 24;
/// Areas are at least this tall and wide, so a small change is read with its context.
const MIN_SIDE: u32 = 64;
/// When the areas to read cover more than this share of the frame, reading the whole frame
/// costs about the same.
const WHOLE_FRAME_SHARE: f64 = 0.6;

/// Where to detect text in a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadPlan {
    Whole,
    /// These areas only; none when nothing changed where there was no text.
    Areas(Vec<Area>),
}

/// One camera's gate: keep one per camera and show it every analysed frame, in order.
pub struct TextGate {
    motion: MotionDetector,
    /// The boxes of the last frame's lines, once one has been read.
    boxes: Option<Vec<Quad>>,
    partial_reads: u32,
    full_read_every: u32,
}

impl TextGate {
    /// `full_read_every`: the whole frame is read at least once in this many frames.
    pub fn new(full_read_every: u32) -> Self {
        Self {
            motion: MotionDetector::new(MotionConfig {
                // Fine enough for the strokes of 12-pixel text in a 720p frame.
                working_width: 640,
                threshold: 16,
                min_region_area: 0.000_02,
            }),
            boxes: None,
            partial_reads: 0,
            full_read_every: full_read_every.max(1),
        }
    }

    /// Compares `frame` with the previous one and says what to read of it. Every plan must be
    /// followed by [`TextGate::settle`] with the lines read.
    pub fn plan(&mut self, frame: &BgrImage) -> Result<ReadPlan, OperatorError> {
        let motion = self.motion.observe(frame)?;
        let Some(boxes) = &self.boxes else {
            return Ok(ReadPlan::Whole);
        };
        if self.partial_reads + 1 >= self.full_read_every {
            return Ok(ReadPlan::Whole);
        }
        let (width, height) = (frame.width(), frame.height());
        let changed = motion.regions.iter().map(|region| {
            Rect::new(
                (region.x * width as f32).floor() as i32,
                (region.y * height as f32).floor() as i32,
                (region.width * width as f32).ceil() as i32,
                (region.height * height as f32).ceil() as i32,
            )
        });
        // Text is detected with as much background around it as its own height: the detector
        // reads a line's surroundings to tell where it ends, and with less it splits words
        // ("PAR", "KING").
        let text = boxes.iter().map(|quad| {
            let bounds = quad_bounds(quad);
            let margin = (MARGIN as i32).max(bounds.height);
            with_margin(bounds, margin, MIN_SIDE as i32, width, height)
        });
        let mut rects: Vec<Rect> = changed
            .map(|rect| with_margin(rect, MARGIN as i32, MIN_SIDE as i32, width, height))
            .chain(text)
            .collect();
        // Grow the areas over the boxes they touch (a line is found whole or not at all), and
        // join overlapping areas, until nothing changes.
        loop {
            let mut grown = false;
            for quad in boxes {
                let bounds = with_margin(quad_bounds(quad), MARGIN as i32, 0, width, height);
                for rect in rects.iter_mut() {
                    if overlaps(rect, &bounds) && !contains(rect, &bounds) {
                        *rect = union(rect, &bounds);
                        grown = true;
                    }
                }
            }
            grown |= join_overlapping(&mut rects);
            if !grown {
                break;
            }
        }
        let pixels: f64 = rects.iter().map(|r| r.width as f64 * r.height as f64).sum();
        if pixels > WHOLE_FRAME_SHARE * width as f64 * height as f64 {
            return Ok(ReadPlan::Whole);
        }
        let areas = rects
            .into_iter()
            .map(|r| Area {
                x: r.x as u32,
                y: r.y as u32,
                width: r.width as u32,
                height: r.height as u32,
            })
            .collect();
        Ok(ReadPlan::Areas(areas))
    }

    /// Takes the lines read for a frame's plan (`whole`: the frame was read whole, as planned
    /// or because an area cut a line) and remembers their boxes for the next frame.
    pub fn settle(&mut self, whole: bool, lines: &[TextLine]) {
        self.partial_reads = if whole { 0 } else { self.partial_reads + 1 };
        self.boxes = Some(lines.iter().map(|line| line.quad).collect());
    }
}

fn quad_bounds(quad: &Quad) -> Rect {
    let xs = quad.map(|p| p[0]);
    let ys = quad.map(|p| p[1]);
    let x0 = xs.into_iter().fold(f32::INFINITY, f32::min).floor() as i32;
    let x1 = xs.into_iter().fold(f32::NEG_INFINITY, f32::max).ceil() as i32;
    let y0 = ys.into_iter().fold(f32::INFINITY, f32::min).floor() as i32;
    let y1 = ys.into_iter().fold(f32::NEG_INFINITY, f32::max).ceil() as i32;
    Rect::new(x0, y0, (x1 - x0).max(1), (y1 - y0).max(1))
}

/// `rect` grown by `margin` on every side, then to at least `min_side` each way (about its
/// centre), inside the frame.
fn with_margin(rect: Rect, margin: i32, min_side: i32, width: u32, height: u32) -> Rect {
    let (width, height) = (width as i32, height as i32);
    let grow = |start: i32, length: i32, limit: i32| {
        let mut start = start - margin;
        let mut end = start + length + 2 * margin;
        if end - start < min_side {
            let extra = min_side - (end - start);
            start -= extra / 2;
            end += extra - extra / 2;
        }
        let start = start.clamp(0, limit);
        let end = end.clamp(start, limit);
        (start, end - start)
    };
    let (x, w) = grow(rect.x, rect.width, width);
    let (y, h) = grow(rect.y, rect.height, height);
    Rect::new(x, y, w, h)
}

fn overlaps(a: &Rect, b: &Rect) -> bool {
    a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height
}

fn contains(outer: &Rect, inner: &Rect) -> bool {
    outer.x <= inner.x
        && outer.y <= inner.y
        && inner.x + inner.width <= outer.x + outer.width
        && inner.y + inner.height <= outer.y + outer.height
}

fn union(a: &Rect, b: &Rect) -> Rect {
    let x = a.x.min(b.x);
    let y = a.y.min(b.y);
    let right = (a.x + a.width).max(b.x + b.width);
    let bottom = (a.y + a.height).max(b.y + b.height);
    Rect::new(x, y, right - x, bottom - y)
}

/// Replaces overlapping rectangles by their union; whether any were joined.
fn join_overlapping(rects: &mut Vec<Rect>) -> bool {
    let mut joined = false;
    let mut i = 0;
    while i < rects.len() {
        let mut j = i + 1;
        while j < rects.len() {
            if overlaps(&rects[i], &rects[j]) {
                let other = rects.swap_remove(j);
                rects[i] = union(&rects[i], &other);
                joined = true;
                j = i + 1;
            } else {
                j += 1;
            }
        }
        i += 1;
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fill: impl Fn(u32, u32) -> u8) -> BgrImage {
        let (width, height) = (1280, 720);
        let mut data = Vec::with_capacity(width as usize * height as usize * 3);
        for y in 0..height {
            for x in 0..width {
                let v = fill(x, y);
                data.extend_from_slice(&[v, v, v]);
            }
        }
        BgrImage::new(width, height, data).unwrap()
    }

    fn line(text: &str, x0: f32, y0: f32, x1: f32, y1: f32) -> TextLine {
        TextLine {
            text: text.into(),
            score: 0.9,
            quad: [[x0, y0], [x1, y0], [x1, y1], [x0, y1]],
        }
    }

    #[test]
    fn text_and_changes_are_read_and_a_still_empty_view_is_not() {
        let mut gate = TextGate::new(10);
        let still = frame(|_, _| 100);
        assert_eq!(gate.plan(&still).unwrap(), ReadPlan::Whole);
        gate.settle(true, &[]);
        // No text and nothing changed: nothing to read.
        assert_eq!(gate.plan(&still).unwrap(), ReadPlan::Areas(Vec::new()));
        let lines = vec![
            line("EXIT", 100.0, 100.0, 200.0, 130.0),
            line("DOCK 7", 900.0, 600.0, 1000.0, 630.0),
        ];
        gate.settle(false, &lines);

        // Still: where the text was. Something appears: there too.
        let ReadPlan::Areas(areas) = gate.plan(&still).unwrap() else {
            panic!("a still frame is not a whole read")
        };
        assert_eq!(areas.len(), 2, "{areas:?}");
        gate.settle(false, &lines);
        let moved = frame(|x, y| {
            if (500..540).contains(&x) && (300..340).contains(&y) {
                220
            } else {
                100
            }
        });
        let ReadPlan::Areas(areas) = gate.plan(&moved).unwrap() else {
            panic!("a small change is not a whole read")
        };
        assert_eq!(areas.len(), 3, "{areas:?}");
        let covers = |area: &Area, x: u32, y: u32| {
            area.x <= x && x < area.x + area.width && area.y <= y && y < area.y + area.height
        };
        assert!(areas.iter().any(|a| covers(a, 520, 320)), "{areas:?}");
        assert!(
            areas
                .iter()
                .any(|a| covers(a, 100, 100) && covers(a, 199, 129)),
            "{areas:?}"
        );
        let pixels: u64 = areas.iter().map(Area::pixels).sum();
        assert!(pixels < 1280 * 720 / 10, "{areas:?}");
    }

    #[test]
    fn the_whole_frame_is_read_again_after_full_read_every_frames() {
        let mut gate = TextGate::new(3);
        let still = frame(|_, _| 100);
        let mut whole = Vec::new();
        for _ in 0..7 {
            let plan = gate.plan(&still).unwrap();
            let is_whole = plan == ReadPlan::Whole;
            gate.settle(is_whole, &[]);
            whole.push(is_whole);
        }
        assert_eq!(whole, [true, false, false, true, false, false, true]);
    }

    #[test]
    fn a_change_over_most_of_the_frame_reads_it_whole() {
        let mut gate = TextGate::new(10);
        let plan = gate.plan(&frame(|_, _| 100)).unwrap();
        gate.settle(plan == ReadPlan::Whole, &[]);
        let plan = gate
            .plan(&frame(|x, _| if x < 1000 { 200 } else { 100 }))
            .unwrap();
        assert_eq!(plan, ReadPlan::Whole);
    }
}

//! Reading only what changed: one camera's OCR gate.
//!
//! A fixed camera's text mostly stands still (signs, labels, overlays) while people and cars
//! move in front of it. Reading the whole frame every time repeats the same detection over
//! and over; the detector's cost grows with the pixels it sees. The gate compares each frame
//! with the one before it (the [`MotionDetector`], tuned finer than for motion events so that
//! a changed digit of a small overlay counts) and plans the read:
//! - nothing changed: the last frame's lines stand;
//! - some places changed: only those are read (with a margin, and grown over any line they
//!   touch, so a line is always read whole), and the lines elsewhere stand;
//! - most of the frame changed, or it is the first frame, or `full_read_every` frames went by
//!   with partial reads: the whole frame is read. The periodic whole read bounds how long a
//!   slow change (a fade below the per-frame threshold) can go unread.
//!
//! Lines that stand keep their text, score and box from the frame they were read in.

use opencv::core::Rect;

use super::geometry::reading_order_by;
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
/// costs about the same and needs no merging.
const WHOLE_FRAME_SHARE: f64 = 0.6;

/// What to read of a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadPlan {
    /// Read the whole frame.
    Whole,
    /// Read these areas; the other lines stand.
    Areas(Vec<Area>),
    /// Nothing changed: the last lines stand.
    Reuse,
}

/// One camera's gate: keep one per camera and show it every analysed frame, in order.
pub struct TextGate {
    motion: MotionDetector,
    /// The lines of the last frame, once one has been read.
    lines: Option<Vec<TextLine>>,
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
            lines: None,
            partial_reads: 0,
            full_read_every: full_read_every.max(1),
        }
    }

    /// Compares `frame` with the previous one and says what to read of it. Every frame plan
    /// must be followed by [`TextGate::settle`] with what was read.
    pub fn plan(&mut self, frame: &BgrImage) -> Result<ReadPlan, OperatorError> {
        let motion = self.motion.observe(frame)?;
        let Some(lines) = &self.lines else {
            return Ok(ReadPlan::Whole);
        };
        if self.partial_reads + 1 >= self.full_read_every {
            return Ok(ReadPlan::Whole);
        }
        if motion.regions.is_empty() {
            return Ok(ReadPlan::Reuse);
        }
        let (width, height) = (frame.width(), frame.height());
        let mut rects: Vec<Rect> = motion
            .regions
            .iter()
            .map(|region| {
                let rect = Rect::new(
                    (region.x * width as f32).floor() as i32,
                    (region.y * height as f32).floor() as i32,
                    (region.width * width as f32).ceil() as i32,
                    (region.height * height as f32).ceil() as i32,
                );
                with_margin(rect, MARGIN as i32, MIN_SIDE as i32, width, height)
            })
            .collect();
        // Grow the areas over the lines they touch (a line is read whole or not at all), and
        // join overlapping areas, until nothing changes.
        loop {
            let mut grown = false;
            for line in lines {
                let bounds = with_margin(quad_bounds(&line.quad), MARGIN as i32, 0, width, height);
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
        Ok(ReadPlan::Areas(
            rects
                .into_iter()
                .map(|r| Area {
                    x: r.x as u32,
                    y: r.y as u32,
                    width: r.width as u32,
                    height: r.height as u32,
                })
                .collect(),
        ))
    }

    /// Takes what was read for `plan` and returns the frame's lines, in reading order.
    pub fn settle(&mut self, plan: &ReadPlan, read: Vec<TextLine>) -> Vec<TextLine> {
        let lines = match (plan, self.lines.take()) {
            (ReadPlan::Reuse, Some(lines)) => {
                self.partial_reads += 1;
                lines
            }
            (ReadPlan::Areas(areas), Some(previous)) => {
                self.partial_reads += 1;
                let rects: Vec<Rect> = areas.iter().map(area_rect).collect();
                let mut lines: Vec<TextLine> = previous
                    .into_iter()
                    .filter(|line| {
                        let bounds = quad_bounds(&line.quad);
                        !rects.iter().any(|rect| overlaps(rect, &bounds))
                    })
                    .chain(read)
                    .collect();
                reading_order_by(&mut lines, |line| &line.quad);
                lines
            }
            _ => {
                self.partial_reads = 0;
                read
            }
        };
        self.lines = Some(lines.clone());
        lines
    }
}

fn area_rect(area: &Area) -> Rect {
    Rect::new(
        area.x as i32,
        area.y as i32,
        area.width as i32,
        area.height as i32,
    )
}

fn quad_bounds(quad: &[[f32; 2]; 4]) -> Rect {
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
    fn a_still_frame_reuses_a_moving_spot_is_read_and_the_rest_stands() {
        let mut gate = TextGate::new(10);
        let still = frame(|_, _| 100);
        assert_eq!(gate.plan(&still).unwrap(), ReadPlan::Whole);
        let first = vec![
            line("EXIT", 100.0, 100.0, 200.0, 130.0),
            line("DOCK 7", 900.0, 600.0, 1000.0, 630.0),
        ];
        assert_eq!(gate.settle(&ReadPlan::Whole, first.clone()), first);

        assert_eq!(gate.plan(&still).unwrap(), ReadPlan::Reuse);
        assert_eq!(gate.settle(&ReadPlan::Reuse, Vec::new()), first);

        // Something appears over the second line: that place is read, grown over the line.
        let moved = frame(|x, y| {
            if (920..960).contains(&x) && (590..640).contains(&y) {
                220
            } else {
                100
            }
        });
        let plan = gate.plan(&moved).unwrap();
        let ReadPlan::Areas(areas) = &plan else {
            panic!("{plan:?}")
        };
        assert_eq!(areas.len(), 1);
        let area = areas[0];
        assert!(area.x <= 900 && area.x + area.width >= 1000, "{area:?}");
        assert!(area.y <= 600 && area.y + area.height >= 630, "{area:?}");
        assert!(area.pixels() < 1280 * 720 / 10, "{area:?}");
        let read = vec![line("DOCK 8", 900.0, 600.0, 1000.0, 630.0)];
        let lines = gate.settle(&plan, read);
        assert_eq!(
            lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            ["EXIT", "DOCK 8"]
        );
    }

    #[test]
    fn the_whole_frame_is_read_again_after_full_read_every_frames() {
        let mut gate = TextGate::new(3);
        let still = frame(|_, _| 100);
        let mut plans = Vec::new();
        for _ in 0..7 {
            let plan = gate.plan(&still).unwrap();
            gate.settle(&plan, Vec::new());
            plans.push(plan);
        }
        use ReadPlan::*;
        assert_eq!(plans, [Whole, Reuse, Reuse, Whole, Reuse, Reuse, Whole]);
    }

    #[test]
    fn a_change_over_most_of_the_frame_reads_it_whole() {
        let mut gate = TextGate::new(10);
        let plan = gate.plan(&frame(|_, _| 100)).unwrap();
        gate.settle(&plan, Vec::new());
        let plan = gate
            .plan(&frame(|x, _| if x < 1000 { 200 } else { 100 }))
            .unwrap();
        assert_eq!(plan, ReadPlan::Whole);
    }
}

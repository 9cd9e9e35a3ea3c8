//! Accuracy of object detection, tracking, zones and lines against ground truth (issue 17).
//!
//! Two kinds of ground truth, both read with serde:
//!
//! * [`LabelSet`]: boxes labelled on frames of a real video (`tests/data/objects/
//!   vtest-labels.json`), some marked difficult;
//! * [`SyntheticTruth`]: the exact boxes, identities, zone counts, crossings and zone entries
//!   of the clip that `deploy/make_synthetic_objects.py` builds.
//!
//! The metrics, all pure functions of plain data:
//!
//! * [`average_precision`]: PASCAL VOC's all-point interpolated AP at IoU 0.5 (the
//!   `voc_eval.py` of VOC 2010 onwards): detections of all frames sorted by score; each takes
//!   the ground-truth box it overlaps most; at IoU ≥ 0.5 it is a true positive if that box is
//!   not yet taken, a false positive if it is (a duplicate), and neither if the box is
//!   difficult; below 0.5 it is a false positive. AP is the area under the precision–recall
//!   curve after precision is made monotone from the right. Difficult boxes do not count in
//!   the recall's denominator. [`ClassGroup`] merges the vehicle classes into one.
//! * [`clear_mot`]: MOTA as CLEAR MOT defines it (Bernardin and Stiefelhagen, 2008) and
//!   py-motmetrics computes it: per frame, a ground-truth object keeps last frame's hypothesis
//!   while their IoU stays ≥ 0.5; the rest are matched by Kuhn–Munkres (most matches, then
//!   highest IoU); an object matched to another hypothesis than the last one it had is an
//!   identity switch. MOTA = 1 − (misses + false positives + switches) / ground-truth boxes.
//! * [`identity_scores`]: IDF1 (Ristani et al., 2016): each ground-truth identity gets at most
//!   one predicted identity, globally, by Kuhn–Munkres over the number of frames in which the
//!   two overlap with IoU ≥ 0.5; IDF1 = 2·IDTP / (ground-truth boxes + predicted boxes).
//! * [`zone_count_errors`]: per zone, the mean absolute difference between the predicted and
//!   the true number of objects in it, over the frames scored.
//! * [`match_events`]: precision and recall of timed events (line crossings, zone entries):
//!   a prediction matches a true event with the same key (line and direction, or zone) within
//!   a time tolerance, one to one (Kuhn–Munkres: most matches, then the closest times).

use std::collections::{BTreeMap, HashMap};

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;
use serde::{Deserialize, Serialize};

use super::zones::{Direction, LineConfig, ZoneConfig};

/// The IoU a prediction needs with a ground-truth box to match it, in every metric here.
pub const MATCH_IOU: f32 = 0.5;

/// How many objects stand in each zone, by zone id.
pub type ZoneCounts = BTreeMap<String, usize>;

/// `vtest-labels.json`: boxes on some frames of a video. Fields not listed (the `about`
/// header, each box's `from`) are documentation and ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct LabelSet {
    pub video: String,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub frames: Vec<LabelledFrame>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LabelledFrame {
    /// The frame's index in the video, from 0.
    pub index: u64,
    pub time_s: f64,
    pub objects: Vec<LabelledBox>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LabelledBox {
    /// A COCO class name.
    pub class: String,
    /// `[x1, y1, x2, y2]` as fractions of the frame.
    pub bbox: [f32; 4],
    /// Neither found nor missed: too hidden or too small to demand (VOC's rule).
    #[serde(default)]
    pub difficult: bool,
}

/// `synthetic-objects.json`: the exact truth of the synthetic clip.
#[derive(Debug, Clone, Deserialize)]
pub struct SyntheticTruth {
    /// The clip's file name, next to the truth file.
    pub video: String,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub zones: Vec<ZoneConfig>,
    pub lines: Vec<LineConfig>,
    pub crossings: Vec<TrueCrossing>,
    pub zone_entries: Vec<TrueZoneEntry>,
    pub frames: Vec<TruthFrame>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TruthFrame {
    pub index: u64,
    pub time_s: f64,
    pub objects: Vec<TruthObject>,
    /// Objects standing in each zone (their box's bottom centre inside it).
    pub zone_counts: ZoneCounts,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TruthObject {
    pub id: u64,
    pub class: String,
    pub bbox: [f32; 4],
}

#[derive(Debug, Clone, Deserialize)]
pub struct TrueCrossing {
    pub track: u64,
    pub line: String,
    pub direction: Direction,
    pub time_s: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TrueZoneEntry {
    pub track: u64,
    pub zone: String,
    pub entered_s: f64,
    pub left_s: Option<f64>,
    pub dwell_exceeded: bool,
}

/// Intersection over union of two `[x1, y1, x2, y2]` boxes; 0 when they have no area.
pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let width = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let height = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let intersection = width * height;
    let area = |r: [f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - intersection;
    if union > 0.0 {
        intersection / union
    } else {
        0.0
    }
}

/// Pairs `(row, column)` of a one-to-one assignment with the largest total weight, among the
/// pairs whose weight is positive (a weight of 0 or less means "may not be paired").
fn assign(weights: &[Vec<i64>]) -> Vec<(usize, usize)> {
    let rows = weights.len();
    let columns = weights.first().map_or(0, Vec::len);
    if rows == 0 || columns == 0 {
        return Vec::new();
    }
    // Kuhn–Munkres wants no more rows than columns: solve the transpose when there are.
    let transposed = rows > columns;
    let (n, m) = if transposed {
        (columns, rows)
    } else {
        (rows, columns)
    };
    let matrix = Matrix::from_fn(n, m, |(i, j)| {
        let weight = if transposed {
            weights[j][i]
        } else {
            weights[i][j]
        };
        weight.max(0)
    });
    let (_, assignment) = kuhn_munkres(&matrix);
    assignment
        .into_iter()
        .enumerate()
        .filter(|&(i, j)| matrix[(i, j)] > 0)
        .map(|(i, j)| if transposed { (j, i) } else { (i, j) })
        .collect()
}

/// Weight of a valid pair when the number of pairs comes first and closeness (0..=1, higher
/// is closer) second: any extra pair outweighs every gain in closeness.
fn cardinality_first(closeness: f64) -> i64 {
    const PAIR: i64 = 1 << 32;
    PAIR + (closeness.clamp(0.0, 1.0) * 1e6).round() as i64
}

/// The classes scored together: a person, or any vehicle (detectors and labellers disagree
/// about car, truck and bus far more than about whether it is a vehicle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassGroup {
    Person,
    Vehicle,
}

impl ClassGroup {
    pub const ALL: [ClassGroup; 2] = [ClassGroup::Person, ClassGroup::Vehicle];

    /// The group of a COCO class name; `None` for classes not scored.
    pub fn of(class: &str) -> Option<Self> {
        match class {
            "person" => Some(Self::Person),
            "car" | "truck" | "bus" | "motorcycle" | "bicycle" => Some(Self::Vehicle),
            _ => None,
        }
    }
}

/// A ground-truth box for [`average_precision`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrueBox {
    pub bbox: [f32; 4],
    pub difficult: bool,
}

/// A detection for [`average_precision`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredBox {
    pub bbox: [f32; 4],
    pub score: f32,
}

/// One frame's truth and detections of one class group.
#[derive(Debug, Clone, Default)]
pub struct DetectionFrame {
    pub truth: Vec<TrueBox>,
    pub detected: Vec<ScoredBox>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AveragePrecision {
    /// AP at IoU 0.5, 0..1; `None` without any non-difficult ground-truth box.
    pub ap: Option<f64>,
    /// Non-difficult ground-truth boxes.
    pub positives: usize,
    pub true_positives: usize,
    pub false_positives: usize,
    /// Detections on difficult boxes, counted neither way.
    pub ignored: usize,
}

impl AveragePrecision {
    /// Positives never found, at any score.
    pub fn misses(&self) -> usize {
        self.positives - self.true_positives
    }
}

/// VOC all-point interpolated AP at IoU 0.5 over the frames (see the module's notes).
pub fn average_precision(frames: &[DetectionFrame]) -> AveragePrecision {
    let positives = frames
        .iter()
        .flat_map(|frame| &frame.truth)
        .filter(|truth| !truth.difficult)
        .count();
    let mut detections: Vec<(usize, ScoredBox)> = frames
        .iter()
        .enumerate()
        .flat_map(|(index, frame)| frame.detected.iter().map(move |d| (index, *d)))
        .collect();
    // Highest score first; ties keep their input order (a stable sort), which voc_eval.py's
    // argsort does not promise.
    detections.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
    let mut taken: Vec<Vec<bool>> = frames.iter().map(|f| vec![false; f.truth.len()]).collect();
    // (true positives, false positives) after each scored detection
    let mut curve: Vec<(usize, usize)> = Vec::with_capacity(detections.len());
    let (mut true_positives, mut false_positives, mut ignored) = (0, 0, 0);
    for (frame, detection) in detections {
        let best = frames[frame]
            .truth
            .iter()
            .enumerate()
            .map(|(i, truth)| (i, iou(truth.bbox, detection.bbox)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((i, overlap)) if overlap >= MATCH_IOU => {
                if frames[frame].truth[i].difficult {
                    ignored += 1;
                    continue;
                }
                if taken[frame][i] {
                    false_positives += 1;
                } else {
                    taken[frame][i] = true;
                    true_positives += 1;
                }
            }
            _ => false_positives += 1,
        }
        curve.push((true_positives, false_positives));
    }
    let ap = (positives > 0).then(|| {
        let mut recall = vec![0.0];
        let mut precision = vec![0.0];
        for &(tp, fp) in &curve {
            recall.push(tp as f64 / positives as f64);
            precision.push(tp as f64 / (tp + fp) as f64);
        }
        recall.push(1.0);
        precision.push(0.0);
        for i in (0..precision.len() - 1).rev() {
            precision[i] = precision[i].max(precision[i + 1]);
        }
        (0..recall.len() - 1)
            .filter(|&i| recall[i + 1] != recall[i])
            .map(|i| (recall[i + 1] - recall[i]) * precision[i + 1])
            .sum()
    });
    AveragePrecision {
        ap,
        positives,
        true_positives,
        false_positives,
        ignored,
    }
}

/// One frame for the tracking metrics: `(identity, box)` of the truth and of the tracker.
#[derive(Debug, Clone, Default)]
pub struct TrackingFrame {
    pub truth: Vec<(u64, [f32; 4])>,
    pub tracked: Vec<(u64, [f32; 4])>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MotScores {
    /// 1 − (misses + false positives + switches) / ground-truth boxes; can go below 0.
    pub mota: f64,
    /// Mean IoU of the matched pairs.
    pub motp: f64,
    pub truth_boxes: usize,
    pub matches: usize,
    pub misses: usize,
    pub false_positives: usize,
    pub id_switches: usize,
}

/// CLEAR MOT over the frames, in order (see the module's notes).
pub fn clear_mot(frames: &[TrackingFrame]) -> MotScores {
    // the hypothesis each object was matched to last frame, and last at all
    let mut previous: HashMap<u64, u64> = HashMap::new();
    let mut last_matched: HashMap<u64, u64> = HashMap::new();
    let (mut truth_boxes, mut matches, mut false_positives, mut id_switches) = (0, 0, 0, 0);
    let mut overlap_sum = 0.0;
    for frame in frames {
        truth_boxes += frame.truth.len();
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        // carry over last frame's pairs that still overlap enough
        for (t, (object, truth_box)) in frame.truth.iter().enumerate() {
            let Some(hypothesis) = previous.get(object) else {
                continue;
            };
            if let Some(h) = frame.tracked.iter().position(|(id, tracked_box)| {
                id == hypothesis && iou(*truth_box, *tracked_box) >= MATCH_IOU
            }) {
                pairs.push((t, h));
            }
        }
        let free_truth: Vec<usize> = (0..frame.truth.len())
            .filter(|t| !pairs.iter().any(|p| p.0 == *t))
            .collect();
        let free_tracked: Vec<usize> = (0..frame.tracked.len())
            .filter(|h| !pairs.iter().any(|p| p.1 == *h))
            .collect();
        let weights: Vec<Vec<i64>> = free_truth
            .iter()
            .map(|&t| {
                free_tracked
                    .iter()
                    .map(|&h| {
                        let overlap = iou(frame.truth[t].1, frame.tracked[h].1);
                        if overlap >= MATCH_IOU {
                            cardinality_first(f64::from(overlap))
                        } else {
                            0
                        }
                    })
                    .collect()
            })
            .collect();
        pairs.extend(
            assign(&weights)
                .into_iter()
                .map(|(t, h)| (free_truth[t], free_tracked[h])),
        );
        previous.clear();
        for &(t, h) in &pairs {
            let (object, truth_box) = frame.truth[t];
            let (hypothesis, tracked_box) = frame.tracked[h];
            if last_matched
                .insert(object, hypothesis)
                .is_some_and(|before| before != hypothesis)
            {
                id_switches += 1;
            }
            previous.insert(object, hypothesis);
            overlap_sum += f64::from(iou(truth_box, tracked_box));
        }
        matches += pairs.len();
        false_positives += frame.tracked.len() - pairs.len();
    }
    let misses = truth_boxes - matches;
    MotScores {
        mota: if truth_boxes > 0 {
            1.0 - (misses + false_positives + id_switches) as f64 / truth_boxes as f64
        } else {
            0.0
        },
        motp: if matches > 0 {
            overlap_sum / matches as f64
        } else {
            0.0
        },
        truth_boxes,
        matches,
        misses,
        false_positives,
        id_switches,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdentityScores {
    pub idf1: f64,
    /// IDTP / predicted boxes.
    pub idp: f64,
    /// IDTP / ground-truth boxes.
    pub idr: f64,
    pub idtp: usize,
    pub idfp: usize,
    pub idfn: usize,
}

/// IDF1 over the frames (see the module's notes).
pub fn identity_scores(frames: &[TrackingFrame]) -> IdentityScores {
    let truth_ids: Vec<u64> = sorted_ids(frames.iter().flat_map(|f| &f.truth));
    let tracked_ids: Vec<u64> = sorted_ids(frames.iter().flat_map(|f| &f.tracked));
    let truth_index: HashMap<u64, usize> = truth_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i))
        .collect();
    let tracked_index: HashMap<u64, usize> = tracked_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i))
        .collect();
    // frames in which each pair of identities overlaps enough
    let mut together = vec![vec![0i64; tracked_ids.len()]; truth_ids.len()];
    for frame in frames {
        for (object, truth_box) in &frame.truth {
            for (hypothesis, tracked_box) in &frame.tracked {
                if iou(*truth_box, *tracked_box) >= MATCH_IOU {
                    together[truth_index[object]][tracked_index[hypothesis]] += 1;
                }
            }
        }
    }
    let idtp: usize = assign(&together)
        .into_iter()
        .map(|(t, h)| together[t][h] as usize)
        .sum();
    let truth_boxes: usize = frames.iter().map(|f| f.truth.len()).sum();
    let tracked_boxes: usize = frames.iter().map(|f| f.tracked.len()).sum();
    let ratio = |a: usize, b: usize| if b > 0 { a as f64 / b as f64 } else { 0.0 };
    IdentityScores {
        idf1: ratio(2 * idtp, truth_boxes + tracked_boxes),
        idp: ratio(idtp, tracked_boxes),
        idr: ratio(idtp, truth_boxes),
        idtp,
        idfp: tracked_boxes - idtp,
        idfn: truth_boxes - idtp,
    }
}

fn sorted_ids<'a>(boxes: impl Iterator<Item = &'a (u64, [f32; 4])>) -> Vec<u64> {
    let mut ids: Vec<u64> = boxes.map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZoneCountError {
    /// Mean over the frames of |predicted − true| objects in the zone.
    pub mean_absolute_error: f64,
    /// Frames whose count was wrong.
    pub frames_wrong: usize,
    pub frames: usize,
}

/// Per zone of the truth, the count error over frames `(true counts, predicted counts)`; a
/// zone missing from a predicted frame counts as empty.
pub fn zone_count_errors(frames: &[(ZoneCounts, ZoneCounts)]) -> BTreeMap<String, ZoneCountError> {
    let mut errors: BTreeMap<String, ZoneCountError> = BTreeMap::new();
    for (truth, predicted) in frames {
        for (zone, &count) in truth {
            let error = errors.entry(zone.clone()).or_insert(ZoneCountError {
                mean_absolute_error: 0.0,
                frames_wrong: 0,
                frames: 0,
            });
            let off = count.abs_diff(predicted.get(zone).copied().unwrap_or(0));
            // the sum for now, divided below
            error.mean_absolute_error += off as f64;
            error.frames_wrong += usize::from(off > 0);
            error.frames += 1;
        }
    }
    for error in errors.values_mut() {
        error.mean_absolute_error /= error.frames as f64;
    }
    errors
}

/// A timed event: what happened (`kerb:left_to_right`, `bench`) and when (seconds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimedEvent {
    pub key: String,
    pub time_s: f64,
}

impl TimedEvent {
    /// A line crossing, keyed by line and direction.
    pub fn crossing(line: &str, direction: Direction, time_s: f64) -> Self {
        let direction = serde_json::to_value(direction)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Self {
            key: format!("{line}:{direction}"),
            time_s,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventScores {
    /// Matched / predicted; `None` when nothing was predicted.
    pub precision: Option<f64>,
    /// Matched / true; `None` when nothing was to be found.
    pub recall: Option<f64>,
    pub matched: usize,
    pub false_positives: usize,
    pub misses: usize,
    /// Predicted minus true time of each match (seconds).
    pub delays_s: Vec<f64>,
}

/// Predicted events against true ones (see the module's notes).
pub fn match_events(
    truth: &[TimedEvent],
    predicted: &[TimedEvent],
    tolerance_s: f64,
) -> EventScores {
    let weights: Vec<Vec<i64>> = truth
        .iter()
        .map(|t| {
            predicted
                .iter()
                .map(|p| {
                    let gap = (p.time_s - t.time_s).abs();
                    if p.key == t.key && gap <= tolerance_s {
                        cardinality_first(1.0 - gap / tolerance_s.max(f64::EPSILON))
                    } else {
                        0
                    }
                })
                .collect()
        })
        .collect();
    let pairs = assign(&weights);
    let matched = pairs.len();
    let ratio = |n: usize| (n > 0).then(|| matched as f64 / n as f64);
    EventScores {
        precision: ratio(predicted.len()),
        recall: ratio(truth.len()),
        matched,
        false_positives: predicted.len() - matched,
        misses: truth.len() - matched,
        delays_s: pairs
            .into_iter()
            .map(|(t, p)| predicted[p].time_s - truth[t].time_s)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit-tall box from `x` to `x + 1`: two of them at offset `s` have IoU (1−s)/(1+s).
    fn strip(x: f32) -> [f32; 4] {
        [x, 0.0, x + 1.0, 1.0]
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn iou_of_shifted_strips_and_of_nothing() {
        assert!(close(f64::from(iou(strip(0.0), strip(0.25))), 0.6));
        assert_eq!(iou(strip(0.0), strip(2.0)), 0.0);
        assert_eq!(iou([0.5; 4], [0.5; 4]), 0.0);
    }

    #[test]
    fn voc_ap_skips_difficult_boxes_and_counts_duplicates_as_false() {
        let person = |x: f32| TrueBox {
            bbox: strip(x),
            difficult: false,
        };
        let scored = |x: f32, score: f32| ScoredBox {
            bbox: strip(x),
            score,
        };
        let frames = vec![
            DetectionFrame {
                truth: vec![
                    person(0.0),
                    person(5.0),
                    TrueBox {
                        bbox: strip(10.0),
                        difficult: true,
                    },
                ],
                // found, on the difficult one, on nothing, a duplicate of the first
                detected: vec![
                    scored(0.0, 0.9),
                    scored(10.0, 0.8),
                    scored(20.0, 0.7),
                    scored(0.1, 0.6),
                ],
            },
            DetectionFrame {
                truth: vec![person(0.0)],
                detected: vec![scored(0.0, 0.5)],
            },
        ];
        // In score order, leaving out the difficult one: TP, FP, FP, TP of 3 positives:
        // recall 1/3, 1/3, 1/3, 2/3 at precision 1, 1/2, 1/3, 1/2. Made monotone, precision
        // is 1 up to recall 1/3 and 1/2 up to 2/3: AP = 1/3 + 1/6.
        let ap = average_precision(&frames);
        assert!(close(ap.ap.unwrap(), 0.5), "{ap:?}");
        assert_eq!(
            (
                ap.positives,
                ap.true_positives,
                ap.false_positives,
                ap.ignored
            ),
            (3, 2, 2, 1)
        );
        assert_eq!(ap.misses(), 1);
    }

    #[test]
    fn voc_ap_is_one_for_perfect_detections_and_none_without_positives() {
        let frames = vec![DetectionFrame {
            truth: vec![TrueBox {
                bbox: strip(0.0),
                difficult: false,
            }],
            detected: vec![ScoredBox {
                bbox: strip(0.0),
                score: 0.3,
            }],
        }];
        assert_eq!(average_precision(&frames).ap, Some(1.0));
        assert_eq!(average_precision(&[DetectionFrame::default()]).ap, None);
    }

    #[test]
    fn the_vtest_labels_parse_and_every_box_is_a_scored_class_inside_the_frame() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/objects/vtest-labels.json"
        );
        let labels: LabelSet =
            serde_json::from_str(&std::fs::read_to_string(path).expect("labels file"))
                .expect("labels parse");
        assert_eq!((labels.width, labels.height), (768, 576));
        assert!(labels.frames.len() >= 25);
        for frame in &labels.frames {
            for object in &frame.objects {
                let [x1, y1, x2, y2] = object.bbox;
                assert!(ClassGroup::of(&object.class).is_some(), "{}", object.class);
                assert!(
                    (0.0..=1.0).contains(&x1) && x1 < x2 && x2 <= 1.0,
                    "frame {}: {:?}",
                    frame.index,
                    object.bbox
                );
                assert!((0.0..=1.0).contains(&y1) && y1 < y2 && y2 <= 1.0);
            }
        }
    }

    #[test]
    fn vehicles_are_one_group() {
        assert_eq!(ClassGroup::of("truck"), Some(ClassGroup::Vehicle));
        assert_eq!(ClassGroup::of("bicycle"), Some(ClassGroup::Vehicle));
        assert_eq!(ClassGroup::of("person"), Some(ClassGroup::Person));
        assert_eq!(ClassGroup::of("dog"), None);
    }

    /// Four frames with two objects, `a` (1) and `b` (2):
    /// 1. both tracked, by 1 and 2;
    /// 2. they overlap, and each tracker box overlaps the *other* object more (IoU 0.905
    ///    against 0.6): carried over, the pairs stay a–1 and b–2, where a fresh assignment
    ///    would swap them;
    /// 3. `a` is tracked by a new id 3 (a switch), `b` is missed, 4 tracks nothing;
    /// 4. only `a`, tracked by 1 again (a switch back).
    fn four_frames() -> Vec<TrackingFrame> {
        vec![
            TrackingFrame {
                truth: vec![(1, strip(0.0)), (2, strip(5.0))],
                tracked: vec![(1, strip(0.0)), (2, strip(5.0))],
            },
            TrackingFrame {
                truth: vec![(1, strip(0.0)), (2, strip(0.3))],
                tracked: vec![(1, strip(0.25)), (2, strip(0.05))],
            },
            TrackingFrame {
                truth: vec![(1, strip(0.0)), (2, strip(5.0))],
                tracked: vec![(3, strip(0.0)), (4, strip(10.0))],
            },
            TrackingFrame {
                truth: vec![(1, strip(0.0))],
                tracked: vec![(1, strip(0.0))],
            },
        ]
    }

    #[test]
    fn mota_carries_matches_over_and_counts_each_switch() {
        let scores = clear_mot(&four_frames());
        // 7 true boxes, 6 matched, 1 miss, 1 false positive, 2 switches: 1 − 4/7
        assert_eq!(
            (
                scores.truth_boxes,
                scores.matches,
                scores.misses,
                scores.false_positives,
                scores.id_switches
            ),
            (7, 6, 1, 1, 2)
        );
        assert!(close(scores.mota, 3.0 / 7.0), "{scores:?}");
        // IoU 1 in four matches, 0.6 in the two carried over
        assert!(close(scores.motp, (4.0 + 1.2) / 6.0), "{scores:?}");
    }

    #[test]
    fn idf1_assigns_identities_once_for_the_whole_sequence() {
        // Frames together: a–1 in 1, 2, 4 (3); a–2, a–3, b–1 once; b–2 in 1 and 2 (2). The
        // best one-to-one choice is a–1 and b–2: IDTP 5 of 7 true and 7 predicted boxes.
        let scores = identity_scores(&four_frames());
        assert_eq!((scores.idtp, scores.idfp, scores.idfn), (5, 2, 2));
        assert!(close(scores.idf1, 10.0 / 14.0), "{scores:?}");
        assert!(close(scores.idp, 5.0 / 7.0) && close(scores.idr, 5.0 / 7.0));
    }

    #[test]
    fn zone_counts_are_scored_per_zone_and_a_missing_zone_is_empty() {
        let counts = |pairs: &[(&str, usize)]| -> ZoneCounts {
            pairs.iter().map(|(z, n)| ((*z).to_owned(), *n)).collect()
        };
        let frames = vec![
            (
                counts(&[("bench", 1), ("lawn", 0)]),
                counts(&[("bench", 1), ("lawn", 0)]),
            ),
            (
                counts(&[("bench", 1), ("lawn", 1)]),
                counts(&[("bench", 0), ("lawn", 1)]),
            ),
            (
                counts(&[("bench", 0), ("lawn", 2)]),
                counts(&[("bench", 0)]),
            ),
        ];
        let errors = zone_count_errors(&frames);
        assert!(close(errors["bench"].mean_absolute_error, 1.0 / 3.0));
        assert!(close(errors["lawn"].mean_absolute_error, 2.0 / 3.0));
        assert_eq!((errors["lawn"].frames_wrong, errors["lawn"].frames), (1, 3));
    }

    #[test]
    fn crossings_match_by_line_direction_and_time_one_to_one() {
        use Direction::{LeftToRight, RightToLeft};
        let truth = vec![
            TimedEvent::crossing("gate", LeftToRight, 4.3),
            TimedEvent::crossing("kerb", LeftToRight, 6.8),
            TimedEvent::crossing("kerb", RightToLeft, 12.9),
        ];
        let predicted = vec![
            TimedEvent::crossing("gate", LeftToRight, 4.8),
            // the wrong way, too late, and a second report of one crossing
            TimedEvent::crossing("kerb", RightToLeft, 6.9),
            TimedEvent::crossing("kerb", LeftToRight, 8.5),
            TimedEvent::crossing("kerb", RightToLeft, 13.2),
            TimedEvent::crossing("kerb", RightToLeft, 13.4),
        ];
        let scores = match_events(&truth, &predicted, 1.0);
        assert_eq!(
            (scores.matched, scores.false_positives, scores.misses),
            (2, 3, 1)
        );
        assert!(close(scores.precision.unwrap(), 0.4));
        assert!(close(scores.recall.unwrap(), 2.0 / 3.0));
        assert_eq!(truth[0].key, "gate:left_to_right");
    }

    #[test]
    fn events_pair_for_the_most_matches_not_the_closest_first() {
        // Closest first would pair 1.9 with 2.0 and leave 2.8 and 1.0 unpaired.
        let at = |t: f64| TimedEvent {
            key: "kerb:left_to_right".into(),
            time_s: t,
        };
        let scores = match_events(&[at(1.0), at(2.0)], &[at(1.9), at(2.8)], 1.0);
        assert_eq!(scores.matched, 2);
        assert_eq!(scores.delays_s.len(), 2);
        assert_eq!(match_events(&[], &[], 1.0).precision, None);
    }
}

//! Moment-retrieval metrics, computed the way the public evaluators compute them.
//!
//! Every query has ground-truth spans (seconds) and scored predicted spans. [`score`] reports,
//! all as percentages (0–100) averaged over the queries:
//!
//! * **R1@0.5, R1@0.7** — QVHighlights / Moment-DETR `standalone_eval/eval.py`, `compute_mr_r1`
//!   (Lighthouse's `training/standalone_eval/eval.py` is the same code): the top-1 prediction's
//!   temporal IoU with the ground-truth span it overlaps best is `>=` the threshold.
//! * **mAP@0.5, mAP@0.75, mAP@[0.5:0.95]** — the same file's `compute_mr_ap`, which calls
//!   `compute_average_precision_detection` from `standalone_eval/utils.py` (copied there from
//!   MMAction2 / the ActivityNet evaluator). Per query and per IoU threshold in
//!   `np.linspace(0.5, 0.95, 10)` (rounded to two decimals: 0.5, 0.55, …, 0.95):
//!   1. keep the first [`MAX_PREDICTIONS`] (10) predictions (`max_pred_windows=10`) and sort them
//!      by descending score;
//!   2. walk them in that order; each prediction tries the ground-truth spans from the highest
//!      IoU down: the first one whose IoU is below the threshold ends the search (a false
//!      positive), an already matched span is skipped, an unmatched one is matched (a true
//!      positive); a prediction that finds nothing is a false positive;
//!   3. precision and recall (true positives / number of ground-truth spans) after each
//!      prediction give the curve, and AP is its VOC-2011 interpolated area
//!      (`interpolated_precision_recall`: precision made monotone from the right, summed over
//!      the points where recall changes).
//!
//!   mAP at a threshold is the mean AP over queries; mAP@[0.5:0.95] (`map_avg`, the evaluator's
//!   "average") is the mean over the ten thresholds.
//! * **R@1, R@5** (MomentSeeker style) — the share of queries for which any of the `k`
//!   best-scored predictions has IoU `>=` [`RECALL_IOU`] (0.5) with any ground-truth span.
//!   What we found: MomentSeeker (Yuan et al. 2025, arXiv 2502.12558,
//!   github.com/yhy-2000/MomentSeeker) reports "R1" and "mAP@5"; its released evaluation
//!   (`evaluation_code/evaluate_*.py`, `evaluate_recall`) ranks pre-cut candidate clips and
//!   counts a query as recalled at `k` when any ground-truth clip is among the top `k`
//!   (k ∈ {1, 3, 5, 10}), as a percentage of the queries. Our predictions are free spans, not
//!   candidate clips, so "is a ground-truth clip" becomes the usual R@k,IoU=θ test of moment
//!   retrieval (a top-`k` prediction with IoU ≥ θ with a ground-truth span) with θ = 0.5.
//!
//! Where this deliberately differs from the Python evaluators (none of it matters for inputs
//! they accept and that are listed best-first, as Moment-DETR/Lighthouse inference writes them):
//!
//! * "Top-1" and "the first 10" are by descending score (a stable sort, so ties keep the input
//!   order); the Python code takes the first entries of the submitted list as they are.
//! * A query with no predictions scores 0 everywhere (the Python R1 indexes `[0]` and fails;
//!   its mAP silently leaves such a query out of the mean).
//! * A query with no ground truth is not scored and is counted in
//!   [`RetrievalScores::queries_without_ground_truth`] (the Python AP is NaN for it).
//! * IoU of spans with no length, or no union, is 0 (the Python cross-IoU divides by zero).
//! * Scores are not rounded to two decimals.

use serde::{Deserialize, Serialize};

/// Predictions per query the mAP looks at (`max_pred_windows` in `compute_mr_ap`).
pub const MAX_PREDICTIONS: usize = 10;

/// IoU thresholds of mAP@[0.5:0.95]: `np.linspace(0.5, 0.95, 10)` rounded to two decimals.
pub const MAP_IOU_THRESHOLDS: [f64; 10] = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];

/// IoU a top-k prediction needs with a ground-truth span to count for R@1 / R@5.
pub const RECALL_IOU: f64 = 0.5;

/// A time span in seconds, `start <= end`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub start: f64,
    pub end: f64,
}

impl Span {
    pub fn new(start: f64, end: f64) -> Self {
        Self { start, end }
    }
}

/// A predicted span with its confidence; higher scores rank first.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoredSpan {
    pub start: f64,
    pub end: f64,
    pub score: f64,
}

impl ScoredSpan {
    pub fn new(start: f64, end: f64, score: f64) -> Self {
        Self { start, end, score }
    }

    pub fn span(&self) -> Span {
        Span::new(self.start, self.end)
    }
}

/// One query: its ground truth and what the system returned, in any order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryOutcome {
    pub ground_truth: Vec<Span>,
    pub predictions: Vec<ScoredSpan>,
}

/// Metrics over a set of queries, each a percentage in 0–100.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalScores {
    /// Queries scored (those with at least one ground-truth span).
    pub queries: usize,
    /// Queries left out because they have no ground-truth span.
    pub queries_without_ground_truth: usize,
    /// Top-1 prediction has IoU >= 0.5 with its best-matching ground-truth span.
    pub r1_at_0_5: f64,
    /// Top-1 prediction has IoU >= 0.7 with its best-matching ground-truth span.
    pub r1_at_0_7: f64,
    /// Mean average precision at IoU 0.5.
    pub map_0_5: f64,
    /// Mean average precision at IoU 0.75.
    pub map_0_75: f64,
    /// Mean average precision averaged over IoU 0.5, 0.55, …, 0.95.
    pub map_avg: f64,
    /// Mean average precision at each of [`MAP_IOU_THRESHOLDS`].
    pub map_by_threshold: Vec<f64>,
    /// Any of the top 1 predictions has IoU >= 0.5 with any ground-truth span.
    pub recall_at_1: f64,
    /// Any of the top 5 predictions has IoU >= 0.5 with any ground-truth span.
    pub recall_at_5: f64,
}

/// Temporal intersection over union of two spans; 0 when they do not overlap or have no union.
pub fn temporal_iou(a: &Span, b: &Span) -> f64 {
    let intersection = (a.end.min(b.end) - a.start.max(b.start)).max(0.0);
    let union = (a.end - a.start) + (b.end - b.start) - intersection;
    if union > 0.0 && intersection > 0.0 {
        intersection / union
    } else {
        0.0
    }
}

/// The predictions best-first: descending score, ties in input order, NaN scores last.
pub fn ranked(predictions: &[ScoredSpan]) -> Vec<ScoredSpan> {
    let key = |s: f64| if s.is_nan() { f64::NEG_INFINITY } else { s };
    let mut out = predictions.to_vec();
    out.sort_by(|a, b| key(b.score).total_cmp(&key(a.score)));
    out
}

/// Average precision of one query's predictions at each IoU threshold, as
/// `compute_average_precision_detection` computes it (see the module documentation). The
/// predictions are used in the order given: pass them through [`ranked`] and truncate to
/// [`MAX_PREDICTIONS`] first to match `compute_mr_ap`. Values are fractions in 0–1.
pub fn average_precision(
    ground_truth: &[Span],
    ranked_predictions: &[ScoredSpan],
    thresholds: &[f64],
) -> Vec<f64> {
    if ranked_predictions.is_empty() || ground_truth.is_empty() {
        return vec![0.0; thresholds.len()];
    }
    let n_gt = ground_truth.len() as f64;
    // Per prediction: ground-truth indices from the highest IoU down. Ties go to the higher
    // index first, as numpy's `argsort()[::-1]` orders them for short arrays.
    let matches: Vec<(Vec<f64>, Vec<usize>)> = ranked_predictions
        .iter()
        .map(|p| {
            let ious: Vec<f64> = ground_truth
                .iter()
                .map(|g| temporal_iou(&p.span(), g))
                .collect();
            let mut order: Vec<usize> = (0..ious.len()).collect();
            order.sort_by(|&i, &j| ious[j].total_cmp(&ious[i]).then(j.cmp(&i)));
            (ious, order)
        })
        .collect();

    thresholds
        .iter()
        .map(|&threshold| {
            let mut taken = vec![false; ground_truth.len()];
            let mut true_positives = 0usize;
            let mut precision = Vec::with_capacity(ranked_predictions.len());
            let mut recall = Vec::with_capacity(ranked_predictions.len());
            for (rank, (ious, order)) in matches.iter().enumerate() {
                for &j in order {
                    if ious[j] < threshold {
                        break;
                    }
                    if !taken[j] {
                        taken[j] = true;
                        true_positives += 1;
                        break;
                    }
                }
                precision.push(true_positives as f64 / (rank + 1) as f64);
                recall.push(true_positives as f64 / n_gt);
            }
            interpolated_average_precision(&precision, &recall)
        })
        .collect()
}

/// Area under the precision/recall curve with precision made monotone from the right
/// (VOCdevkit 2011, ActivityNet's `interpolated_precision_recall`).
fn interpolated_average_precision(precision: &[f64], recall: &[f64]) -> f64 {
    let mut p = Vec::with_capacity(precision.len() + 2);
    p.push(0.0);
    p.extend_from_slice(precision);
    p.push(0.0);
    let mut r = Vec::with_capacity(recall.len() + 2);
    r.push(0.0);
    r.extend_from_slice(recall);
    r.push(1.0);
    for i in (0..p.len() - 1).rev() {
        p[i] = p[i].max(p[i + 1]);
    }
    (1..r.len())
        .filter(|&i| r[i] != r[i - 1])
        .map(|i| (r[i] - r[i - 1]) * p[i])
        .sum()
}

/// IoU of the best-scored prediction with the ground-truth span it overlaps best (0 without
/// predictions or ground truth).
fn top1_iou(ground_truth: &[Span], ranked_predictions: &[ScoredSpan]) -> f64 {
    ranked_predictions.first().map_or(0.0, |top| {
        ground_truth
            .iter()
            .map(|g| temporal_iou(&top.span(), g))
            .fold(0.0, f64::max)
    })
}

/// Whether any of the `k` best-scored predictions has IoU >= [`RECALL_IOU`] with any span.
fn hit_at(ground_truth: &[Span], ranked_predictions: &[ScoredSpan], k: usize) -> bool {
    ranked_predictions.iter().take(k).any(|p| {
        ground_truth
            .iter()
            .any(|g| temporal_iou(&p.span(), g) >= RECALL_IOU)
    })
}

/// Scores a set of queries; see the module documentation for the definitions.
pub fn score(outcomes: &[QueryOutcome]) -> RetrievalScores {
    let scored: Vec<&QueryOutcome> = outcomes
        .iter()
        .filter(|o| !o.ground_truth.is_empty())
        .collect();
    let n = scored.len();
    let mut r1_5 = 0usize;
    let mut r1_7 = 0usize;
    let mut hit1 = 0usize;
    let mut hit5 = 0usize;
    let mut ap_sums = vec![0.0; MAP_IOU_THRESHOLDS.len()];
    for outcome in &scored {
        let ranked = ranked(&outcome.predictions);
        let iou = top1_iou(&outcome.ground_truth, &ranked);
        r1_5 += usize::from(iou >= 0.5);
        r1_7 += usize::from(iou >= 0.7);
        hit1 += usize::from(hit_at(&outcome.ground_truth, &ranked, 1));
        hit5 += usize::from(hit_at(&outcome.ground_truth, &ranked, 5));
        let kept = &ranked[..ranked.len().min(MAX_PREDICTIONS)];
        let ap = average_precision(&outcome.ground_truth, kept, &MAP_IOU_THRESHOLDS);
        for (sum, v) in ap_sums.iter_mut().zip(ap) {
            *sum += v;
        }
    }
    let percent = |count: usize| {
        if n == 0 {
            0.0
        } else {
            100.0 * count as f64 / n as f64
        }
    };
    let map_by_threshold: Vec<f64> = ap_sums
        .iter()
        .map(|s| if n == 0 { 0.0 } else { 100.0 * s / n as f64 })
        .collect();
    let at = |t: f64| {
        let i = MAP_IOU_THRESHOLDS
            .iter()
            .position(|&x| x == t)
            .expect("a listed threshold");
        map_by_threshold[i]
    };
    RetrievalScores {
        queries: n,
        queries_without_ground_truth: outcomes.len() - n,
        r1_at_0_5: percent(r1_5),
        r1_at_0_7: percent(r1_7),
        map_0_5: at(0.5),
        map_0_75: at(0.75),
        map_avg: map_by_threshold.iter().sum::<f64>() / map_by_threshold.len() as f64,
        map_by_threshold,
        recall_at_1: percent(hit1),
        recall_at_5: percent(hit5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: f64, end: f64) -> Span {
        Span::new(start, end)
    }

    fn pred(start: f64, end: f64, score: f64) -> ScoredSpan {
        ScoredSpan::new(start, end, score)
    }

    fn query(ground_truth: &[(f64, f64)], predictions: &[(f64, f64, f64)]) -> QueryOutcome {
        QueryOutcome {
            ground_truth: ground_truth.iter().map(|&(s, e)| span(s, e)).collect(),
            predictions: predictions.iter().map(|&(s, e, c)| pred(s, e, c)).collect(),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[track_caller]
    fn assert_close(actual: f64, expected: f64) {
        assert!(close(actual, expected), "{actual} != {expected}");
    }

    #[test]
    fn iou_of_simple_spans() {
        assert_close(temporal_iou(&span(0.0, 10.0), &span(0.0, 10.0)), 1.0);
        assert_close(temporal_iou(&span(0.0, 10.0), &span(0.0, 6.0)), 0.6);
        assert_close(temporal_iou(&span(0.0, 10.0), &span(5.0, 15.0)), 5.0 / 15.0);
        assert_close(temporal_iou(&span(0.0, 10.0), &span(10.0, 20.0)), 0.0);
        assert_close(temporal_iou(&span(0.0, 10.0), &span(30.0, 40.0)), 0.0);
        assert_close(temporal_iou(&span(5.0, 5.0), &span(5.0, 5.0)), 0.0);
        assert_close(temporal_iou(&span(3.0, 3.0), &span(0.0, 10.0)), 0.0);
    }

    #[test]
    fn perfect_predictions_score_100() {
        let outcomes = vec![
            query(&[(10.0, 20.0)], &[(10.0, 20.0, 0.9)]),
            query(
                &[(0.0, 5.5), (30.0, 42.0)],
                &[(30.0, 42.0, 0.8), (0.0, 5.5, 0.7)],
            ),
        ];
        let s = score(&outcomes);
        assert_eq!(s.queries, 2);
        for v in [
            s.r1_at_0_5,
            s.r1_at_0_7,
            s.map_0_5,
            s.map_0_75,
            s.map_avg,
            s.recall_at_1,
            s.recall_at_5,
        ] {
            assert_close(v, 100.0);
        }
        assert!(s.map_by_threshold.iter().all(|&v| close(v, 100.0)));
    }

    #[test]
    fn iou_0_6_counts_at_0_5_but_not_at_0_7() {
        // IoU exactly 0.6: a hit at the thresholds 0.5, 0.55 and 0.6, a miss above.
        let s = score(&[query(&[(0.0, 10.0)], &[(0.0, 6.0, 1.0)])]);
        assert_close(s.r1_at_0_5, 100.0);
        assert_close(s.r1_at_0_7, 0.0);
        assert_close(s.map_0_5, 100.0);
        assert_close(s.map_0_75, 0.0);
        assert_close(s.map_avg, 30.0);
        assert_close(s.recall_at_1, 100.0);
        assert_close(s.recall_at_5, 100.0);
    }

    #[test]
    fn false_positive_ranked_first_halves_ap() {
        // Ranked: a miss, then the hit. Precision 0 then 1/2 at recall 1: AP = 1 * 0.5.
        let s = score(&[query(
            &[(0.0, 10.0)],
            &[(20.0, 30.0, 0.9), (0.0, 10.0, 0.8)],
        )]);
        assert_close(s.map_avg, 50.0);
        assert_close(s.map_0_5, 50.0);
        assert_close(s.r1_at_0_5, 0.0);
        assert_close(s.recall_at_1, 0.0);
        assert_close(s.recall_at_5, 100.0);
    }

    #[test]
    fn predictions_are_ranked_by_score_not_input_order() {
        let s = score(&[query(
            &[(0.0, 10.0)],
            &[(0.0, 10.0, 0.8), (20.0, 30.0, 0.9)],
        )]);
        assert_close(s.map_avg, 50.0);
        assert_close(s.r1_at_0_5, 0.0);
    }

    #[test]
    fn two_ground_truth_spans() {
        // Hit, miss, hit: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
        // Interpolated: 0.5 * 1 + 0.5 * 2/3 = 5/6.
        let q = query(
            &[(0.0, 10.0), (20.0, 30.0)],
            &[(0.0, 10.0, 0.9), (40.0, 50.0, 0.8), (20.0, 30.0, 0.7)],
        );
        let s = score(&[q]);
        assert_close(s.map_avg, 100.0 * 5.0 / 6.0);
        assert_close(s.r1_at_0_5, 100.0);

        // The top prediction matching the second span still counts for R1.
        let s = score(&[query(&[(0.0, 10.0), (20.0, 30.0)], &[(20.0, 30.0, 0.9)])]);
        assert_close(s.r1_at_0_7, 100.0);
        // One of the two spans found: recall 1/2 at precision 1.
        assert_close(s.map_avg, 50.0);
    }

    #[test]
    fn a_span_is_matched_once() {
        // The duplicate is a false positive: precision 1 then 1/2, recall stuck at 1/2.
        let s = score(&[query(
            &[(0.0, 10.0), (20.0, 30.0)],
            &[(0.0, 10.0, 0.9), (0.0, 10.0, 0.8)],
        )]);
        assert_close(s.map_avg, 50.0);
    }

    #[test]
    fn prediction_takes_the_best_overlapping_span() {
        // p1 = [3, 13] overlaps A = [0, 10] with IoU 7/13 and B = [4, 14] with IoU 9/11: it takes
        // B. p2 = [4, 14] would fit B (IoU 1) but B is taken, and its IoU with A is 6/14 < 0.5:
        // a false positive. AP at 0.5 is 0.5 (matching p1 to the first span above the threshold
        // instead would give 1).
        let gt = [span(0.0, 10.0), span(4.0, 14.0)];
        let preds = [pred(3.0, 13.0, 0.9), pred(4.0, 14.0, 0.8)];
        let ap = average_precision(&gt, &preds, &[0.5]);
        assert_close(ap[0], 0.5);
    }

    #[test]
    fn only_the_first_ten_predictions_count_for_map() {
        let mut preds: Vec<(f64, f64, f64)> = (0..10)
            .map(|i| (100.0 + i as f64, 100.5 + i as f64, 1.0 - 0.01 * i as f64))
            .collect();
        preds.push((0.0, 10.0, 0.5));
        let s = score(&[query(&[(0.0, 10.0)], &preds)]);
        assert_close(s.map_avg, 0.0);
        assert_close(s.recall_at_5, 0.0);
    }

    #[test]
    fn recall_at_5_looks_at_the_top_five() {
        let mut preds: Vec<(f64, f64, f64)> = (0..4)
            .map(|i| (100.0 + i as f64, 100.5 + i as f64, 1.0 - 0.01 * i as f64))
            .collect();
        // IoU 0.5 exactly: counts.
        preds.push((0.0, 5.0, 0.5));
        let s = score(&[query(&[(0.0, 10.0)], &preds)]);
        assert_close(s.recall_at_1, 0.0);
        assert_close(s.recall_at_5, 100.0);
        // Ranked fifth of five: precision 1/5 at recall 1.
        assert_close(s.map_0_5, 20.0);
        assert_close(s.map_0_75, 0.0);
    }

    #[test]
    fn empty_predictions_score_zero() {
        let s = score(&[query(&[(0.0, 10.0)], &[])]);
        assert_eq!(s.queries, 1);
        for v in [
            s.r1_at_0_5,
            s.r1_at_0_7,
            s.map_0_5,
            s.map_0_75,
            s.map_avg,
            s.recall_at_1,
            s.recall_at_5,
        ] {
            assert_close(v, 0.0);
        }
        // Averaged with a perfect query: half of everything.
        let s = score(&[
            query(&[(0.0, 10.0)], &[]),
            query(&[(5.0, 8.0)], &[(5.0, 8.0, 0.3)]),
        ]);
        assert_close(s.r1_at_0_7, 50.0);
        assert_close(s.map_avg, 50.0);
        assert_close(s.recall_at_5, 50.0);
    }

    #[test]
    fn queries_without_ground_truth_are_not_scored() {
        let s = score(&[
            query(&[], &[(0.0, 1.0, 0.9)]),
            query(&[(0.0, 10.0)], &[(0.0, 10.0, 0.9)]),
        ]);
        assert_eq!(s.queries, 1);
        assert_eq!(s.queries_without_ground_truth, 1);
        assert_close(s.map_avg, 100.0);
        let s = score(&[]);
        assert_eq!(s.queries, 0);
        assert_close(s.map_avg, 0.0);
    }

    #[test]
    fn ranking_is_stable_and_puts_nan_last() {
        let r = ranked(&[
            pred(0.0, 1.0, f64::NAN),
            pred(1.0, 2.0, 0.5),
            pred(2.0, 3.0, 0.9),
            pred(3.0, 4.0, 0.5),
        ]);
        let starts: Vec<f64> = r.iter().map(|p| p.start).collect();
        assert_eq!(starts, vec![2.0, 1.0, 3.0, 0.0]);
    }

    #[test]
    fn scores_serialize_with_their_names() {
        let s = score(&[query(&[(0.0, 10.0)], &[(0.0, 10.0, 0.9)])]);
        let json = serde_json::to_value(&s).unwrap();
        for key in [
            "queries",
            "r1_at_0_5",
            "r1_at_0_7",
            "map_0_5",
            "map_0_75",
            "map_avg",
            "recall_at_1",
            "recall_at_5",
        ] {
            assert!(json.get(key).is_some(), "{key} missing in {json}");
        }
        let back: QueryOutcome = serde_json::from_str(r#"{"ground_truth":[{"start":1,"end":2}],"predictions":[{"start":1,"end":2,"score":0.5}]}"#).unwrap();
        assert_eq!(back.predictions[0], pred(1.0, 2.0, 0.5));
    }
}

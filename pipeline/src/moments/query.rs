//! Answering a moment query: window scores → adjacent hits merged into moments → temporal
//! non-maximum suppression → the best `limit`, each with the evidence that matched.
//!
//! A text query is scored on two signals: the cosine similarity of its embedding with each
//! window's text embedding (meaning: "lorry" finds "TRUCK"), and how many of its words appear
//! on screen, in tags or in the caption (evidence an analyst can check). An image query is
//! scored on colour layout similarity.
//!
//! With an image-text encoder configured (CLIP, SigLIP), a window also has a visual score:
//! how well its middle frame matches the query text (or looks like the query image) in the
//! encoder's space. Either signal alone can carry a window, and both together rank it higher:
//! they are combined as independent evidence, `1 − (1 − a)(1 − b)` ([`combine`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::index::{IndexedWindow, WindowFilter};
pub use crate::captions::words::{query_terms, term_matches, words};

/// Longest query text accepted (characters).
pub const MAX_QUERY_CHARS: usize = 500;

/// Windows scored per query: the candidates moments are built from.
pub const CANDIDATES: usize = 400;

/// Weight of the embedding similarity against word coverage in a text score.
const SEMANTIC_WEIGHT: f32 = 0.6;

/// Windows below this score never form a moment.
const MIN_SCORE: f32 = 0.15;

/// Moments are proposed at these fractions of the best window score: strict levels give tight
/// moments around the strongest hits, loose ones extend them over weaker neighbours.
const LEVELS: [f32; 3] = [0.8, 0.6, 0.4];

/// Share of the best score just outside a moment that its own score loses.
const BOUNDARY_PENALTY: f32 = 0.1;

/// Proposals overlapping a better one by more than this (temporal IoU) are dropped.
const NMS_IOU: f64 = 0.5;

/// Share of a visual match that counts in a window's score: a frame that looks right but
/// shows no matching text or caption ranks below one that also does.
pub const VISUAL_WEIGHT: f32 = 0.8;

/// One window's score for a query, with the words that matched.
#[derive(Debug, Clone)]
pub struct ScoredWindow {
    pub window: Arc<IndexedWindow>,
    pub score: f32,
    /// How well the window's frame matched in the image-text space, in [0, 1], when it was
    /// scored there.
    pub visual: Option<f32>,
}

/// Two scores in [0, 1] combined as independent evidence: either alone counts in full, both
/// together count more, never above 1.
pub fn combine(a: f32, b: f32) -> f32 {
    1.0 - (1.0 - a.clamp(0.0, 1.0)) * (1.0 - b.clamp(0.0, 1.0))
}

/// A found moment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Moment {
    pub camera_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub score: f32,
    /// Windows merged into the moment.
    pub windows: usize,
    /// The best window's thumbnail.
    pub thumbnail: String,
    /// A WebM clip of the moment, when its camera's video is a recording Argus can read.
    pub clip: Option<String>,
    pub evidence: Evidence,
}

/// What in the moment matched the query.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Evidence {
    /// On-screen text lines containing a query word.
    pub ocr: Vec<String>,
    pub tags: Vec<String>,
    /// The window's object groups containing a query word ("3 people walking left to right").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<String>,
    pub caption: Option<String>,
    /// The query words found.
    pub words: Vec<String>,
    /// The best visual match of the moment's frames (image-text encoder, 0–1), when the
    /// query was scored visually.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visual: Option<f32>,
    /// The LLM's relevance judgement (0–1), when the query asked for a rerank.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerank: Option<f32>,
}

/// The query terms found in a window's text, tags or caption.
fn matched_terms(terms: &[String], window: &IndexedWindow) -> BTreeSet<String> {
    let document: Vec<String> = window
        .ocr_text
        .iter()
        .chain(&window.tags)
        .chain(&window.objects)
        .chain(&window.caption)
        .flat_map(|text| words(text))
        .collect();
    terms
        .iter()
        .filter(|term| document.iter().any(|word| term_matches(term, word)))
        .cloned()
        .collect()
}

/// Text score of a window: embedding similarity blended with the share of query terms found.
pub fn text_score(terms: &[String], window: &IndexedWindow, similarity: f32) -> f32 {
    let coverage = if terms.is_empty() {
        0.0
    } else {
        matched_terms(terms, window).len() as f32 / terms.len() as f32
    };
    SEMANTIC_WEIGHT * similarity.max(0.0) + (1.0 - SEMANTIC_WEIGHT) * coverage
}

/// A time span in milliseconds, for overlap tests.
fn iou(a: (i64, i64), b: (i64, i64)) -> f64 {
    let intersection = (a.1.min(b.1) - a.0.max(b.0)).max(0) as f64;
    let union = (a.1.max(b.1) - a.0.min(b.0)) as f64;
    if union <= 0.0 {
        0.0
    } else {
        intersection / union
    }
}

struct Proposal {
    windows: Vec<ScoredWindow>,
    score: f32,
}

impl Proposal {
    fn camera(&self) -> &str {
        &self.windows[0].window.camera_id
    }

    fn span(&self) -> (i64, i64) {
        (
            self.windows[0].window.start_ms,
            self.windows[self.windows.len() - 1].window.end_ms,
        )
    }
}

/// Turns scored windows into at most `limit` moments, best first. `terms` are the text
/// query's words (empty for an image query), for the evidence.
pub fn moments(
    mut scored: Vec<ScoredWindow>,
    terms: &[String],
    limit: usize,
    thumbnail_url: impl Fn(&str, i64) -> String,
) -> Vec<Moment> {
    let best = scored.iter().map(|s| s.score).fold(0.0_f32, f32::max);
    if best < MIN_SCORE {
        return Vec::new();
    }
    scored.sort_by(|a, b| {
        (a.window.camera_id.as_ref(), a.window.start_ms)
            .cmp(&(b.window.camera_id.as_ref(), b.window.start_ms))
    });
    let mut proposals = Vec::new();
    for level in LEVELS {
        let threshold = (best * level).max(MIN_SCORE);
        let mut run: Vec<ScoredWindow> = Vec::new();
        for hit in scored.iter().filter(|s| s.score >= threshold) {
            let adjacent = run.last().is_some_and(|last| {
                last.window.camera_id == hit.window.camera_id
                    // Touching windows; a missing window (no frames, or below the
                    // threshold) splits the moment.
                    && hit.window.start_ms <= last.window.end_ms
            });
            if !adjacent && !run.is_empty() {
                proposals.push(std::mem::take(&mut run));
            }
            run.push(hit.clone());
        }
        if !run.is_empty() {
            proposals.push(run);
        }
    }
    // A run cut short inside a stretch of strong windows is a worse moment than the whole
    // stretch: its score drops by a share of its best neighbour's.
    let score_at: HashMap<(&str, i64), f32> = scored
        .iter()
        .map(|s| ((s.window.camera_id.as_ref(), s.window.start_ms), s.score))
        .collect();
    let mut proposals: Vec<Proposal> = proposals
        .into_iter()
        .map(|windows| {
            let best = windows.iter().map(|w| w.score).fold(0.0, f32::max);
            let (first, last) = (&windows[0].window, &windows[windows.len() - 1].window);
            let length = first.end_ms - first.start_ms;
            let neighbour = [
                (first.camera_id.as_ref(), first.start_ms - length),
                (last.camera_id.as_ref(), last.end_ms),
            ]
            .iter()
            .filter_map(|key| score_at.get(key))
            .fold(0.0_f32, |a, &b| a.max(b));
            Proposal {
                score: best - BOUNDARY_PENALTY * neighbour,
                windows,
            }
        })
        .collect();
    // Stable: among equal scores the stricter level's (tighter) moment stays first.
    proposals.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Proposal> = Vec::new();
    for proposal in proposals {
        let suppressed = kept.iter().any(|better| {
            better.camera() == proposal.camera() && iou(better.span(), proposal.span()) > NMS_IOU
        });
        if !suppressed {
            kept.push(proposal);
            if kept.len() == limit {
                break;
            }
        }
    }
    kept.into_iter()
        .map(|proposal| {
            let (start_ms, end_ms) = proposal.span();
            let best_window = proposal
                .windows
                .iter()
                .max_by(|a, b| a.score.total_cmp(&b.score))
                .expect("a proposal has windows");
            Moment {
                camera_id: proposal.camera().to_owned(),
                start: DateTime::from_timestamp_millis(start_ms).unwrap_or_default(),
                end: DateTime::from_timestamp_millis(end_ms).unwrap_or_default(),
                score: proposal.score,
                windows: proposal.windows.len(),
                thumbnail: thumbnail_url(
                    &best_window.window.camera_id,
                    best_window.window.start_ms,
                ),
                clip: None,
                evidence: evidence(terms, &proposal.windows),
            }
        })
        .collect()
}

/// At most this many OCR lines are quoted as evidence.
const MAX_EVIDENCE_LINES: usize = 8;

fn evidence(terms: &[String], windows: &[ScoredWindow]) -> Evidence {
    let mut evidence = Evidence {
        visual: windows.iter().filter_map(|w| w.visual).reduce(f32::max),
        ..Evidence::default()
    };
    if terms.is_empty() {
        return evidence;
    }
    let mut found = BTreeSet::new();
    let matches = |text: &str| {
        let text_words = words(text);
        terms
            .iter()
            .filter(|term| text_words.iter().any(|word| term_matches(term, word)))
            .cloned()
            .collect::<Vec<_>>()
    };
    for scored in windows {
        let window = &scored.window;
        for line in &window.ocr_text {
            let hits = matches(line);
            if !hits.is_empty() {
                found.extend(hits);
                if !evidence.ocr.contains(line) && evidence.ocr.len() < MAX_EVIDENCE_LINES {
                    evidence.ocr.push(line.clone());
                }
            }
        }
        for tag in &window.tags {
            let hits = matches(tag);
            if !hits.is_empty() {
                found.extend(hits);
                if !evidence.tags.contains(tag) {
                    evidence.tags.push(tag.clone());
                }
            }
        }
        for group in &window.objects {
            let hits = matches(group);
            if !hits.is_empty() {
                found.extend(hits);
                if !evidence.objects.contains(group) {
                    evidence.objects.push(group.clone());
                }
            }
        }
        if let Some(caption) = &window.caption {
            let hits = matches(caption);
            if !hits.is_empty() && evidence.caption.is_none() {
                found.extend(hits);
                evidence.caption = Some(caption.clone());
            }
        }
    }
    evidence.words = found.into_iter().collect();
    evidence
}

/// A query's filters as the API and CLI give them, before they are checked.
#[derive(Debug, Clone, Default)]
pub struct FilterRequest {
    pub cameras: Vec<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

/// Why a query cannot be answered; each is the asker's mistake (HTTP 4xx).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QueryError {
    #[error("the query is empty: give the text to search for (q=...)")]
    Empty,
    #[error("the query is {0} characters long; at most {MAX_QUERY_CHARS} are accepted")]
    TooLong(usize),
    #[error("unknown camera `{0}`: no windows are indexed for it")]
    UnknownCamera(String),
    #[error("`{value}` is not a time: use RFC 3339 (2026-11-28T14:00:00Z) or an age such as 90s, 15m, 2h, 3d")]
    BadTime { value: String },
    #[error("the time range is reversed: since {since} is after until {until}")]
    Reversed {
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    },
    #[error("limit must be between 1 and {0}")]
    BadLimit(usize),
    #[error("{0}")]
    BadImage(String),
}

/// Checks a query text.
pub fn check_text(text: &str) -> Result<&str, QueryError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(QueryError::Empty);
    }
    let length = text.chars().count();
    if length > MAX_QUERY_CHARS {
        return Err(QueryError::TooLong(length));
    }
    Ok(text)
}

/// A point in time: RFC 3339, or an age before `now` ("2h", "90m", "1d 6h").
pub fn parse_time(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, QueryError> {
    let value = value.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(value) {
        return Ok(time.with_timezone(&Utc));
    }
    humantime::parse_duration(value)
        .ok()
        .and_then(|age| chrono::Duration::from_std(age).ok())
        .and_then(|age| now.checked_sub_signed(age))
        .ok_or_else(|| QueryError::BadTime {
            value: value.chars().take(64).collect(),
        })
}

/// Turns the request's filters into a [`WindowFilter`], checking each camera against
/// `known_camera`.
pub fn check_filter(
    request: &FilterRequest,
    now: DateTime<Utc>,
    known_camera: impl Fn(&str) -> bool,
) -> Result<WindowFilter, QueryError> {
    let since = request
        .since
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_time(s, now))
        .transpose()?;
    let until = request
        .until
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_time(s, now))
        .transpose()?;
    if let (Some(since), Some(until)) = (since, until) {
        if since >= until {
            return Err(QueryError::Reversed { since, until });
        }
    }
    let mut cameras = HashSet::new();
    for camera in request
        .cameras
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
    {
        if !known_camera(camera) {
            return Err(QueryError::UnknownCamera(
                camera.chars().take(128).collect(),
            ));
        }
        cameras.insert(camera.to_owned());
    }
    Ok(WindowFilter {
        cameras: (!cameras.is_empty()).then_some(cameras),
        since_ms: since.map(|t| t.timestamp_millis()),
        until_ms: until.map(|t| t.timestamp_millis()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(camera: &str, start_s: i64, text: &[&str]) -> Arc<IndexedWindow> {
        Arc::new(IndexedWindow {
            camera_id: Arc::from(camera),
            start_ms: start_s * 1000,
            end_ms: (start_s + 2) * 1000,
            ocr_text: text.iter().map(|t| t.to_string()).collect(),
            tags: vec![],
            objects: vec![],
            caption: None,
            stored_bytes: 0,
            key: 0,
        })
    }

    fn scored(camera: &str, start_s: i64, score: f32, text: &[&str]) -> ScoredWindow {
        ScoredWindow {
            window: window(camera, start_s, text),
            score,
            visual: None,
        }
    }

    fn url(camera: &str, start: i64) -> String {
        format!("{camera}/{start}")
    }

    #[test]
    fn combined_scores_let_either_signal_carry_a_window_and_reward_both() {
        assert_eq!(combine(0.0, 0.0), 0.0);
        assert!((combine(0.7, 0.0) - 0.7).abs() < 1e-6);
        assert!((combine(0.0, 0.7) - 0.7).abs() < 1e-6);
        assert!((combine(0.5, 0.5) - 0.75).abs() < 1e-6);
        assert!(combine(0.9, 0.9) < 1.0 && combine(0.9, 0.9) > 0.9);
        assert_eq!(combine(1.5, -1.0), 1.0, "inputs are clamped to [0, 1]");
    }

    #[test]
    fn a_moment_quotes_its_best_visual_match() {
        let mut first = scored("gate3", 10, 0.6, &[]);
        first.visual = Some(0.4);
        let mut second = scored("gate3", 12, 0.7, &[]);
        second.visual = Some(0.9);
        let found = moments(vec![first, second], &[], 5, url);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].evidence.visual, Some(0.9));
    }

    #[test]
    fn adjacent_hits_merge_into_one_moment_with_their_evidence() {
        let terms = query_terms("when did the truck reach gate 3?");
        assert_eq!(terms, vec!["truck", "reach", "gate", "3"]);
        let hits = vec![
            scored("gate3", 10, 0.9, &["TRUCK AT GATE 3"]),
            scored("gate3", 12, 0.85, &["TRUCK AT GATE 3", "EXIT"]),
            scored("gate3", 14, 0.8, &["TRUCK AT GATF 3"]),
            scored("gate3", 30, 0.3, &["LOBBY"]),
            scored("lobby", 12, 0.5, &["GATE"]),
        ];
        let found = moments(hits, &terms, 10, url);
        let top = &found[0];
        assert_eq!((top.camera_id.as_str(), top.windows), ("gate3", 3));
        assert_eq!(top.start.timestamp(), 10);
        assert_eq!(top.end.timestamp(), 16);
        assert_eq!(top.score, 0.9);
        assert_eq!(top.thumbnail, "gate3/10000");
        assert_eq!(top.evidence.ocr, vec!["TRUCK AT GATE 3", "TRUCK AT GATF 3"]);
        assert_eq!(top.evidence.words, vec!["3", "gate", "truck"]);
        assert_eq!(found[1].camera_id, "lobby");
        assert!(found.windows(2).all(|pair| pair[0].score >= pair[1].score));
    }

    #[test]
    fn a_gap_splits_moments_and_nms_removes_near_duplicates() {
        let hits = vec![
            scored("a", 0, 0.9, &[]),
            scored("a", 2, 0.5, &[]),
            scored("a", 4, 0.9, &[]),
            scored("a", 20, 0.88, &[]),
        ];
        let found = moments(hits, &[], 10, url);
        let spans: Vec<(i64, i64)> = found
            .iter()
            .map(|m| (m.start.timestamp(), m.end.timestamp()))
            .collect();
        // Strict levels: [0,2], [4,6], [20,22]; the loose level's [0,6] bridges the weaker
        // window between the first two. [0,2] and [4,6] each end beside that 0.5 window and
        // lose a share of it, so [0,6] ranks first; they overlap it by 1/3 only and stay as
        // alternatives.
        assert_eq!(spans, vec![(0, 6), (20, 22), (0, 2), (4, 6)]);
        assert!(moments(vec![scored("a", 0, 0.1, &[])], &[], 10, url).is_empty());
    }

    #[test]
    fn ocr_misreads_of_long_words_still_match() {
        assert!(!term_matches("forklift", "forklfit"), "two edits");
        assert!(term_matches("forklift", "forklit"));
        assert!(term_matches("forklift", "f0rklift"));
        assert!(
            !term_matches("gate", "gale"),
            "short words must match exactly"
        );
    }

    #[test]
    fn bad_queries_and_filters_are_explained() {
        assert_eq!(check_text("  "), Err(QueryError::Empty));
        assert_eq!(
            check_text(&"x".repeat(10_240)),
            Err(QueryError::TooLong(10_240))
        );
        let now = DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
            .unwrap()
            .to_utc();
        let known = |camera: &str| camera == "gate3";
        let request = |since: &str, until: &str, camera: &str| FilterRequest {
            cameras: vec![camera.into()],
            since: Some(since.into()),
            until: Some(until.into()),
        };
        let filter = check_filter(&request("2h", "", "gate3"), now, known).unwrap();
        assert_eq!(
            filter.since_ms,
            Some((now - chrono::Duration::hours(2)).timestamp_millis())
        );
        assert!(matches!(
            check_filter(&request("2h", "3h", "gate3"), now, known),
            Err(QueryError::Reversed { .. })
        ));
        assert!(matches!(
            check_filter(&request("yesterday-ish", "", "gate3"), now, known),
            Err(QueryError::BadTime { .. })
        ));
        assert!(matches!(
            check_filter(&request("", "", "dock9"), now, known),
            Err(QueryError::UnknownCamera(camera)) if camera == "dock9"
        ));
    }
}

//! Questions about a camera and a time range ("was anyone at the door between 14:00 and
//! 14:10?"), answered from the chunks the captioner stored for that range.
//!
//! Each stored chunk keeps its observations (time, what perception saw, confidence). The
//! first round shows the LLM one line per segment of the range (the most trusted observation
//! of the segment's chunks; a long range groups neighbouring chunks into one segment); a
//! correction replaces the key segments' lines by every observation of their chunks, marked
//! as key frames. Chunks missing from the range are said to have no video, and a range with
//! no video at all is answered without the model.

use argus_operators::video_qa::{Evidence, Observation};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::evidence::time_label;
use crate::messages::{Caption, EvidenceLine, MissingSpan};
use crate::objects::counting::TrackCount;

/// Longest question accepted (characters).
pub const MAX_QUESTION_CHARS: usize = 1000;
/// Longest range one question may cover.
pub const MAX_RANGE: chrono::Duration = chrono::Duration::hours(24);
/// At most this many segments in a question's prompt: the small model's context and speed.
pub const MAX_SEGMENTS: usize = 12;

/// `POST /api/v1/questions`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionRequest {
    pub camera: String,
    pub question: String,
    /// Start of the range; default: 60 s before `to`.
    pub from: Option<DateTime<Utc>>,
    /// End of the range; default: the end of the camera's newest chunk.
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum QuestionError {
    #[error("the question is empty")]
    Empty,
    #[error("the question has {0} characters; at most {MAX_QUESTION_CHARS} are accepted")]
    TooLong(usize),
    #[error("invalid time range: {0}")]
    BadRange(String),
    #[error("camera `{0}` has no captioned video (unknown camera, or captions not yet written)")]
    UnknownCamera(String),
    #[error("the range {from} – {to} is outside camera `{camera}`'s captioned video, which spans {first} – {last}")]
    OutsideVideo {
        camera: String,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        first: DateTime<Utc>,
        last: DateTime<Utc>,
    },
    #[error("questions need chunk captions (captions.enabled = false)")]
    Disabled,
    #[error("the model is busy with other questions; retry in a few seconds")]
    Busy,
    #[error("{0}")]
    Internal(String),
}

impl QuestionRequest {
    /// Checks the question text; the range is checked against the stored chunks.
    pub fn validate(&self) -> Result<(), QuestionError> {
        let length = self.question.chars().count();
        if length > MAX_QUESTION_CHARS {
            return Err(QuestionError::TooLong(length));
        }
        if self.question.trim().is_empty() {
            return Err(QuestionError::Empty);
        }
        if let (Some(from), Some(to)) = (self.from, self.to) {
            if from >= to {
                return Err(QuestionError::BadRange(format!(
                    "from ({from}) must be before to ({to})"
                )));
            }
            if to - from > MAX_RANGE {
                return Err(QuestionError::BadRange(format!(
                    "the range is longer than {} hours",
                    MAX_RANGE.num_hours()
                )));
            }
        }
        Ok(())
    }
}

/// A question's evidence, and what the correction round would add per segment.
pub struct QuestionEvidence {
    pub evidence: Evidence,
    pub instants: Vec<DateTime<Utc>>,
    /// Per segment, every stored observation of its chunks (the dense view).
    pub dense: Vec<Vec<EvidenceLine>>,
    pub missing: Vec<MissingSpan>,
}

impl QuestionEvidence {
    /// The evidence with `key_segments` shown densely, as key frames; with the instant of
    /// each observation.
    pub fn corrected(&self, key_segments: &[usize]) -> (Evidence, Vec<DateTime<Utc>>) {
        let mut lines: Vec<(DateTime<Utc>, Observation)> = self
            .evidence
            .observations
            .iter()
            .zip(&self.instants)
            .filter(|(o, _)| !key_segments.contains(&o.segment))
            .map(|(o, at)| (*at, o.clone()))
            .collect();
        for &segment in key_segments {
            for line in self.dense.get(segment).into_iter().flatten() {
                lines.push((line.at, observation(segment, line, true)));
            }
        }
        lines.sort_by_key(|(at, o)| (*at, o.segment));
        let (instants, observations) = lines.into_iter().unzip();
        (
            Evidence {
                observations,
                ..self.evidence.clone()
            },
            instants,
        )
    }

    /// Adds what the track store counted for a count question, as one more segment at the
    /// range's end (the model reads it last, next to the question), fully trusted: the
    /// number is counted, the model only phrases it.
    pub fn add_track_count(&mut self, count: &TrackCount) {
        let segment = self.evidence.segments;
        let line = EvidenceLine {
            at: count.to,
            text: count.observation(),
            confidence: 1.0,
            key_frame: false,
        };
        self.evidence
            .observations
            .push(observation(segment, &line, false));
        self.instants.push(line.at);
        self.dense.push(vec![line]);
        self.evidence.segments += 1;
    }
}

/// The range `[from, to)` over `chunks` (stored captions, in start order, overlapping the
/// range), cut into at most [`MAX_SEGMENTS`] segments of whole chunks.
pub fn question_evidence(
    camera: &str,
    chunks: &[Caption],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> QuestionEvidence {
    let missing = missing_spans(chunks, from, to);
    let groups: Vec<&[Caption]> = if chunks.is_empty() {
        Vec::new()
    } else {
        let per_segment = chunks.len().div_ceil(MAX_SEGMENTS);
        chunks.chunks(per_segment).collect()
    };
    let segments = groups.len() + missing.len();
    // Segments in time order: chunk groups and missing spans interleaved.
    let mut parts: Vec<(DateTime<Utc>, Part<'_>)> = groups
        .iter()
        .map(|g| (g[0].start, Part::Chunks(g)))
        .chain(missing.iter().map(|m| (m.start, Part::Gap(m))))
        .collect();
    parts.sort_by_key(|(at, _)| *at);
    let mut observations = Vec::new();
    let mut instants = Vec::new();
    let mut dense = Vec::with_capacity(segments);
    for (segment, (at, part)) in parts.into_iter().enumerate() {
        match part {
            Part::Chunks(group) => {
                // A revised chunk's key frames are its densest observations: all of them count.
                let lines: Vec<EvidenceLine> = group
                    .iter()
                    .flat_map(|chunk| chunk.evidence.iter().cloned())
                    .collect();
                if let Some(best) = most_trusted(&lines) {
                    observations.push(observation(segment, best, false));
                    instants.push(best.at);
                }
                dense.push(lines);
            }
            Part::Gap(gap) => {
                observations.push(Observation {
                    segment,
                    time: time_label(gap.start),
                    text: format!("no video until {}", time_label(gap.end)),
                    confidence: 0.0,
                    key_frame: false,
                });
                instants.push(at);
                dense.push(Vec::new());
            }
        }
    }
    QuestionEvidence {
        evidence: Evidence {
            camera: camera.into(),
            from: time_label(from),
            to: time_label(to),
            segments,
            observations,
        },
        instants,
        dense,
        missing,
    }
}

/// One segment of a question's range: stored chunks, or a span without video.
enum Part<'a> {
    Chunks(&'a [Caption]),
    Gap(&'a MissingSpan),
}

/// The spans of `[from, to)` no chunk covers.
pub fn missing_spans(
    chunks: &[Caption],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<MissingSpan> {
    let mut missing = Vec::new();
    let mut cursor = from;
    for chunk in chunks {
        if chunk.start > cursor {
            missing.push(MissingSpan {
                start: cursor,
                end: chunk.start.min(to),
            });
        }
        cursor = cursor.max(chunk.end);
        if cursor >= to {
            break;
        }
    }
    if cursor < to {
        missing.push(MissingSpan {
            start: cursor,
            end: to,
        });
    }
    missing
}

/// The line that says most: on-screen text or objects before motion alone, then the most
/// confident, then the earliest.
fn most_trusted(lines: &[EvidenceLine]) -> Option<&EvidenceLine> {
    let says = |l: &EvidenceLine| {
        u8::from(l.text.contains("text on screen")) + u8::from(l.text.contains("objects"))
    };
    lines.iter().reduce(|best, line| {
        if (says(line), line.confidence) > (says(best), best.confidence) {
            line
        } else {
            best
        }
    })
}

fn observation(segment: usize, line: &EvidenceLine, key_frame: bool) -> Observation {
    Observation {
        segment,
        time: time_label(line.at),
        text: line.text.clone(),
        confidence: line.confidence,
        key_frame,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::messages::SensorSummary;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).unwrap()
    }

    fn line(s: i64, text: &str, confidence: f32) -> EvidenceLine {
        EvidenceLine {
            at: at(s),
            text: text.into(),
            confidence,
            key_frame: false,
        }
    }

    fn chunk(start: i64, lines: Vec<EvidenceLine>) -> Caption {
        Caption {
            schema_version: 1,
            message_id: uuid::Uuid::now_v7(),
            camera_id: "door".into(),
            source: "test:".into(),
            start: at(start),
            end: at(start + 10),
            text: "caption".into(),
            revision: 1,
            supersedes: None,
            accepted: true,
            sensor: SensorSummary {
                candidates: vec![],
                answers: vec![],
                required: 1.0,
                segment_drift: vec![],
                key_segments: vec![],
            },
            key_frames: vec![],
            evidence: lines,
            model: "m".into(),
            latency_ms: 0.0,
            produced_at: at(0),
            clip: None,
        }
    }

    #[test]
    fn questions_are_checked_before_any_work() {
        let request = |question: &str, from: Option<i64>, to: Option<i64>| QuestionRequest {
            camera: "door".into(),
            question: question.into(),
            from: from.map(at),
            to: to.map(at),
        };
        assert!(matches!(
            request("  ", None, None).validate(),
            Err(QuestionError::Empty)
        ));
        assert!(matches!(
            request(&"x".repeat(100_000), None, None).validate(),
            Err(QuestionError::TooLong(100_000))
        ));
        assert!(matches!(
            request("was anyone there?", Some(20), Some(10)).validate(),
            Err(QuestionError::BadRange(_))
        ));
        assert!(request("was anyone there?", Some(10), Some(20))
            .validate()
            .is_ok());
    }

    #[test]
    fn gaps_in_the_range_are_missing_spans_and_no_video_lines() {
        let chunks = vec![
            chunk(
                100,
                vec![
                    line(101, "no motion", 0.3),
                    line(105, "motion in 5% of the view; objects: person", 0.6),
                ],
            ),
            chunk(130, vec![line(131, "text on screen: \"EXIT\"", 0.9)]),
        ];
        let question = question_evidence("door", &chunks, at(95), at(145));
        assert_eq!(
            question.missing,
            vec![
                MissingSpan {
                    start: at(95),
                    end: at(100)
                },
                MissingSpan {
                    start: at(110),
                    end: at(130)
                },
                MissingSpan {
                    start: at(140),
                    end: at(145)
                },
            ]
        );
        let lines: Vec<(usize, &str)> = question
            .evidence
            .observations
            .iter()
            .map(|o| (o.segment, o.text.as_str()))
            .collect();
        assert_eq!(
            lines,
            vec![
                (0, "no video until 00:01:40"),
                (1, "motion in 5% of the view; objects: person"),
                (2, "no video until 00:02:10"),
                (3, "text on screen: \"EXIT\""),
                (4, "no video until 00:02:25"),
            ]
        );
        assert_eq!(question.evidence.segments, 5);
        // The correction shows every observation of the key segment's chunks.
        let (corrected, instants) = question.corrected(&[1]);
        let key: Vec<&str> = corrected
            .observations
            .iter()
            .filter(|o| o.key_frame)
            .map(|o| o.text.as_str())
            .collect();
        assert_eq!(
            key,
            vec!["no motion", "motion in 5% of the view; objects: person"]
        );
        assert_eq!(instants.len(), corrected.observations.len());
    }

    #[test]
    fn a_track_count_is_a_trusted_segment_of_its_own_that_corrections_keep() {
        use crate::objects::counting::CountQuestion;

        let chunks = vec![
            chunk(100, vec![line(101, "2 people walking left to right", 0.6)]),
            chunk(110, vec![line(111, "1 person walking right to left", 0.5)]),
        ];
        let mut question = question_evidence("door", &chunks, at(100), at(120));
        let count = CountQuestion::parse("How many people walked past?")
            .unwrap()
            .count(&[], at(100), at(120));
        question.add_track_count(&count);
        assert_eq!(question.evidence.segments, 3);
        let last = question.evidence.observations.last().unwrap();
        assert_eq!(
            (last.segment, last.text.as_str(), last.confidence),
            (
                2,
                "track count: 0 people walked past between 00:01:40 and 00:02:00",
                1.0
            )
        );
        assert_eq!(question.evidence.least_trusted_segments().last(), Some(&2));
        // Whichever segments the correction re-examines, the count stays, last.
        for key_segments in [vec![0, 1], vec![2], vec![]] {
            let (corrected, instants) = question.corrected(&key_segments);
            let last = corrected.observations.last().unwrap();
            assert_eq!(last.text, count.observation(), "{key_segments:?}");
            assert_eq!(last.key_frame, key_segments.contains(&2));
            assert_eq!(instants.len(), corrected.observations.len());
        }
    }

    #[test]
    fn long_ranges_group_chunks_into_at_most_twelve_segments() {
        let chunks: Vec<Caption> = (0..30)
            .map(|i| chunk(i * 10, vec![line(i * 10 + 1, "no motion", 0.3)]))
            .collect();
        let question = question_evidence("door", &chunks, at(0), at(300));
        assert!(question.missing.is_empty());
        assert_eq!(question.evidence.segments, 10, "30 chunks, 3 per segment");
        assert_eq!(question.dense[0].len(), 3);
    }
}

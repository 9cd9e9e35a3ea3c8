//! Turning a chunk's perception results into the timestamped observation lines the LLM reads.
//!
//! When the objects stage runs, each line says what the tracks did ("3 people walking left to
//! right; 1 white van or truck parked since 10:00:04 (bottom right)"), over the segment in
//! the first round and over the frame in the correction round, and ImageNet tags are left
//! out: on a street they guessed bicycles and speeding cars that the detector can rule out.
//! Without the objects stage, tags are all the model has of what is in view, and stay.
//!
//! The first round shows one frame per segment: the one with the most motion (the likeliest
//! to show what happened), so a 10 s chunk costs five tagger calls. A segment without frames
//! is said to have no video, so the model cannot fill the gap by invention. The correction
//! round replaces each key segment's line by one line per frame of that segment, marked as
//! key frames.

use crate::objects::activity::Activity;
use argus_operators::motion::Motion;
use argus_operators::tagging::Tag;
use argus_operators::video_qa::{Evidence, Observation};
use chrono::{DateTime, Utc};

use super::chunk::Chunk;

/// Below this share of changed pixels a frame counts as still.
const STILL: f32 = 0.002;
/// Tags below this probability are not worth the model's attention: on a wide street view
/// the tagger's runners-up ("sundial", "mobile home") are noise the LLM would repeat.
const MIN_TAG_SCORE: f32 = 0.2;
/// On-screen text lines per observation, most confident first.
const MAX_TEXT_LINES: usize = 3;
/// The confidence of an observation with nothing but motion in it.
const MOTION_ONLY_CONFIDENCE: f32 = 0.3;

/// Per segment, the frame the first round describes: the most motion, the earliest on a tie.
pub fn representatives(chunk: &Chunk, segments: usize) -> Vec<Option<usize>> {
    chunk
        .frames_by_segment(segments)
        .into_iter()
        .map(|frames| {
            frames.into_iter().reduce(|best, i| {
                if chunk.frames[i].motion.level > chunk.frames[best].motion.level {
                    i
                } else {
                    best
                }
            })
        })
        .collect()
}

/// One described frame: which segment, which frame, its tags, and whether it is a key frame.
pub struct Described<'a> {
    pub segment: usize,
    pub frame: usize,
    pub tags: &'a [Tag],
    pub key_frame: bool,
}

/// The evidence for `chunk`: the described frames' observations in time order, and a
/// "no video" line for each segment without frames; with the instant of each observation.
pub fn evidence(
    chunk: &Chunk,
    segments: usize,
    described: &[Described<'_>],
) -> (Evidence, Vec<DateTime<Utc>>) {
    let tracked = chunk.tracks_objects();
    let by_segment = chunk.frames_by_segment(segments);
    let mut observations: Vec<(DateTime<Utc>, Observation)> = described
        .iter()
        .map(|d| {
            let frame = &chunk.frames[d.frame];
            let activity = tracked.then(|| {
                if d.key_frame {
                    chunk.activity(&[d.frame])
                } else {
                    chunk.activity(&by_segment[d.segment])
                }
            });
            let (text, confidence) = describe(&frame.motion, d.tags, &frame.ocr, activity.as_ref());
            (
                frame.wall_time,
                Observation {
                    segment: d.segment,
                    time: time_label(frame.wall_time),
                    text,
                    confidence,
                    key_frame: d.key_frame,
                },
            )
        })
        .collect();
    for (segment, frames) in by_segment.iter().enumerate() {
        if frames.is_empty() {
            let at = chunk.segment_start(segment, segments);
            observations.push((
                at,
                Observation {
                    segment,
                    time: time_label(at),
                    text: "no video".into(),
                    confidence: 0.0,
                    key_frame: false,
                },
            ));
        }
    }
    observations.sort_by_key(|(at, o)| (*at, o.segment));
    let (instants, observations) = observations.into_iter().unzip();
    (
        Evidence {
            camera: chunk.camera.clone(),
            from: time_label(chunk.start),
            to: time_label(chunk.end),
            segments,
            observations,
        },
        instants,
    )
}

/// `HH:MM:SS` of video time (UTC), as operators read a camera's clock.
pub fn time_label(at: DateTime<Utc>) -> String {
    at.format("%H:%M:%S").to_string()
}

/// One frame's observation line and how much perception trusted it: the mean of the
/// detector's score (or, without objects, the best tag's probability) and the text lines'
/// confidence.
fn describe(
    motion: &Motion,
    tags: &[Tag],
    ocr: &[(String, f32)],
    objects: Option<&Activity>,
) -> (String, f32) {
    let mut parts = Vec::new();
    if motion.level < STILL {
        parts.push("no motion".to_string());
    } else {
        let place = motion
            .regions
            .first()
            .map(|region| format!(" ({})", region.place()))
            .unwrap_or_default();
        parts.push(format!(
            "motion in {:.0}% of the view{place}",
            (motion.level * 100.0).max(1.0)
        ));
    }
    let mut scores: Vec<f32> = Vec::new();
    match objects {
        // Nothing tracked says nothing: a line saying "no people or vehicles" beside on-screen
        // text made the small model answer "no" to "is there text on screen?" (questions
        // benchmark: 4 of 4 text videos wrong).
        Some(activity) if activity.is_empty() => {}
        Some(activity) => {
            parts.extend(activity.phrases());
            scores.extend(activity.mean_score());
        }
        None => {
            let tags: Vec<&Tag> = tags.iter().filter(|t| t.score >= MIN_TAG_SCORE).collect();
            if !tags.is_empty() {
                let names: Vec<&str> = tags.iter().map(|t| first_name(&t.label)).collect();
                parts.push(format!("objects: {}", names.join(", ")));
                scores.push(tags[0].score);
            }
        }
    }
    let mut lines: Vec<&(String, f32)> = ocr.iter().collect();
    lines.sort_by(|a, b| b.1.total_cmp(&a.1));
    lines.truncate(MAX_TEXT_LINES);
    if !lines.is_empty() {
        let quoted: Vec<String> = lines.iter().map(|(t, _)| format!("\"{t}\"")).collect();
        parts.push(format!("text on screen: {}", quoted.join(", ")));
    }
    if !lines.is_empty() {
        scores.push(lines.iter().map(|(_, s)| s).sum::<f32>() / lines.len() as f32);
    }
    let confidence = if scores.is_empty() {
        MOTION_ONLY_CONFIDENCE
    } else {
        scores.iter().sum::<f32>() / scores.len() as f32
    };
    (parts.join("; "), confidence)
}

/// ImageNet labels list synonyms ("streetcar, tram, tramcar"): the first is enough.
fn first_name(label: &str) -> &str {
    label.split(',').next().unwrap_or(label).trim()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use argus_operators::BgrImage;
    use chrono::TimeZone;

    use super::super::chunk::{ChunkBuilder, ChunkFrame};
    use super::*;

    fn frame(ms: i64, motion: f32, ocr: &[(&str, f32)]) -> ChunkFrame {
        ChunkFrame {
            wall_time: Utc.timestamp_millis_opt(ms).unwrap(),
            image: Arc::new(BgrImage::new(1, 1, vec![0, 0, 0]).unwrap()),
            ocr: ocr.iter().map(|(t, s)| (t.to_string(), *s)).collect(),
            motion: Motion {
                level: motion,
                regions: Vec::new(),
            },
            objects: Vec::new(),
        }
    }

    fn chunk() -> Chunk {
        let mut builder = ChunkBuilder::new("dock-2", "test:", 10.0);
        builder.push(frame(0, 0.0, &[]));
        builder.push(frame(1_000, 0.05, &[("LOADING DOCK 4", 0.9)]));
        builder.push(frame(9_000, 0.0, &[]));
        builder.flush().unwrap()
    }

    #[test]
    fn the_frame_with_most_motion_represents_its_segment() {
        assert_eq!(
            representatives(&chunk(), 5),
            vec![Some(1), None, None, None, Some(2)]
        );
    }

    #[test]
    fn observations_say_what_was_seen_and_where_video_is_missing() {
        let chunk = chunk();
        let tags = vec![
            Tag {
                label: "trailer truck, tractor trailer".into(),
                score: 0.6,
            },
            Tag {
                label: "moving van".into(),
                score: 0.05,
            },
        ];
        let (evidence, instants) = evidence(
            &chunk,
            5,
            &[
                Described {
                    segment: 0,
                    frame: 1,
                    tags: &tags,
                    key_frame: false,
                },
                Described {
                    segment: 4,
                    frame: 2,
                    tags: &[],
                    key_frame: true,
                },
            ],
        );
        assert_eq!(instants[0].timestamp_millis(), 1_000);
        assert_eq!(
            instants[1].timestamp_millis(),
            2_000,
            "segment 1 starts at 2 s"
        );
        assert_eq!(evidence.from, "00:00:00");
        assert_eq!(evidence.to, "00:00:10");
        let lines: Vec<(&str, usize, bool)> = evidence
            .observations
            .iter()
            .map(|o| (o.text.as_str(), o.segment, o.key_frame))
            .collect();
        assert_eq!(
            lines,
            vec![
                (
                    "motion in 5% of the view; objects: trailer truck; text on screen: \"LOADING DOCK 4\"",
                    0,
                    false
                ),
                ("no video", 1, false),
                ("no video", 2, false),
                ("no video", 3, false),
                ("no motion", 4, true),
            ]
        );
        assert!((evidence.observations[0].confidence - 0.75).abs() < 1e-6);
        assert_eq!(evidence.least_trusted_segments()[..3], [1, 2, 3]);
    }
}

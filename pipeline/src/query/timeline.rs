//! A camera's timeline, as the operator console draws it: over a time range, what the camera
//! recorded, where its video stopped, the tracks it saw, the alerts that fired and the
//! captions it wrote, each with a link to its clip where there is video.
//!
//! Everything is read from what the service already keeps in Redis:
//! - recorded spans: the segment index ([`SegmentIndex::overlapping`]), contiguous segments
//!   merged into one span, listed in pieces of at most `record.max_clip_s` so each plays;
//! - gaps: the stream's outages ([`gaps_key`], written by the frame-results sink);
//! - objects: the track store ([`ended_tracks_key`], [`live_tracks_key`]);
//! - alerts: the camera's newest alerts ([`alerts_key`]);
//! - captions: the camera's newest captions ([`captions_key`]).

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::captions::alerts::alerts_key;
use crate::captions::captions_key;
use crate::messages::{StreamEvent, StreamEventKind};
use crate::objects::activity::Movement;
use crate::objects::tracks::{ended_tracks_key, live_tracks_key, TrackRecord};
use crate::publish::RedisState;
use crate::recordings::{clip_link, ClipLinks, Segment, SegmentIndex};
use crate::sinks::frame_results::gaps_key;

/// The range shown when none is asked for: the last hour.
pub const DEFAULT_SPAN: Duration = Duration::hours(1);

/// The longest range one request may ask for: a day of a busy camera is already thousands
/// of tracks.
pub const MAX_SPAN: Duration = Duration::hours(24);

/// Items of one kind in one answer, at most (the newest are kept; `truncated` says so).
pub const MAX_ITEMS_PER_KIND: usize = 2000;

/// Captions are chunks of at most `captions.chunk_s` = 600 s: a chunk reaching into a range
/// starts at most this long before it.
const LONGEST_CHUNK_MS: i64 = 600_000;

/// Segments closer than this are one recorded span: a segment's first frame arrives a frame
/// interval after the previous one's last.
const SPAN_JOIN: Duration = Duration::seconds(2);

/// The time range of a timeline, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl TimeRange {
    /// The range asked for, RFC 3339 each: `end` defaults to `now`, `start` to an hour before
    /// `end`. A reversed range, one longer than [`MAX_SPAN`] or a malformed time is refused
    /// with the reason.
    pub fn parse(
        start: Option<&str>,
        end: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Self, String> {
        let time = |name: &str, text: &str| {
            DateTime::parse_from_rfc3339(text.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|error| {
                    format!(
                        "`{name}` must be an RFC 3339 time such as 2026-12-07T10:00:00Z: {error}"
                    )
                })
        };
        let end = end
            .map(|text| time("end", text))
            .transpose()?
            .unwrap_or(now);
        let start = start
            .map(|text| time("start", text))
            .transpose()?
            .unwrap_or(end - DEFAULT_SPAN);
        if start >= end {
            return Err(format!(
                "the range is empty or reversed: start {start} is not before end {end}"
            ));
        }
        if end - start > MAX_SPAN {
            return Err(format!(
                "the range is {} h long; ask for at most {} h at a time",
                (end - start).num_minutes() as f64 / 60.0,
                MAX_SPAN.num_hours()
            ));
        }
        Ok(Self { start, end })
    }

    fn overlaps(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        // An instant (start == end) inside the range counts.
        start < self.end && end >= self.start
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Recording,
    Gap,
    Object,
    Alert,
    Caption,
}

/// One thing on the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineItem {
    pub kind: ItemKind,
    #[serde(serialize_with = "rfc3339_ms")]
    pub start: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339_ms")]
    pub end: DateTime<Utc>,
    /// What it was, in a line of plain text.
    pub label: String,
    /// The clip of its span, where the camera has video.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip: Option<String>,
    /// Alerts: the alert's `message_id` (what acknowledging it names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

fn rfc3339_ms<S: serde::Serializer>(time: &DateTime<Utc>, to: S) -> Result<S::Ok, S::Error> {
    to.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// A camera's items over a range, sorted by start.
#[derive(Debug, Serialize)]
pub struct Timeline {
    pub camera: String,
    #[serde(serialize_with = "rfc3339_ms")]
    pub start: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339_ms")]
    pub end: DateTime<Utc>,
    pub items: Vec<TimelineItem>,
    /// Some kind had more than [`MAX_ITEMS_PER_KIND`] items: only its newest are listed.
    pub truncated: bool,
}

/// An alert as stored, reduced to what the timeline shows (the stored alert carries more).
#[derive(Deserialize)]
struct StoredAlert {
    message_id: String,
    rule_id: String,
    kind: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    /// A one-line reason, in alerts that carry one.
    #[serde(default)]
    reason: Option<String>,
    /// What satisfied the rule: the first line says why where there is no reason.
    #[serde(default)]
    evidence: Vec<StoredLine>,
}

#[derive(Deserialize)]
struct StoredLine {
    text: String,
}

/// A caption as stored, reduced to what the timeline shows.
#[derive(Deserialize)]
struct StoredCaption {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    text: String,
}

/// Ended tracks, live tracks, alerts, captions and gaps, as stored.
type StoredEntries = (
    Vec<String>,
    Option<String>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
);

/// Reads timelines; cheap to clone.
#[derive(Clone)]
pub struct TimelineReader {
    redis: RedisState,
    segments: SegmentIndex,
    clips: ClipLinks,
    /// `record.max_clip_s`: an item's clip is at most this long, from its start.
    max_clip: Duration,
}

impl TimelineReader {
    pub fn new(
        redis: RedisState,
        segments: SegmentIndex,
        clips: ClipLinks,
        max_clip_s: f64,
    ) -> Self {
        Self {
            redis,
            segments,
            clips,
            max_clip: Duration::milliseconds((max_clip_s * 1000.0) as i64),
        }
    }

    /// Whether anything is stored for `camera`: a camera that runs nowhere now may still
    /// have a history.
    pub async fn has_history(&self, camera: &str) -> redis::RedisResult<bool> {
        let prefix = self.redis.key_prefix();
        let mut connection = self.redis.connection().await?;
        let stored: usize = redis::cmd("EXISTS")
            .arg(ended_tracks_key(prefix, camera))
            .arg(live_tracks_key(prefix, camera))
            .arg(alerts_key(prefix, camera))
            .arg(captions_key(prefix, camera))
            .arg(gaps_key(prefix, camera))
            .query_async(&mut connection)
            .await?;
        Ok(stored > 0 || self.segments.cameras().await?.iter().any(|c| c == camera))
    }

    /// The camera's newest caption as stored (`argus.caption.v1`), if it has one.
    pub async fn latest_caption(
        &self,
        camera: &str,
    ) -> redis::RedisResult<Option<serde_json::Value>> {
        let mut connection = self.redis.connection().await?;
        let newest: Vec<String> = redis::AsyncCommands::zrevrange(
            &mut connection,
            captions_key(self.redis.key_prefix(), camera),
            0,
            0,
        )
        .await?;
        Ok(parse_all(&newest, "caption").into_iter().next())
    }

    /// The camera's items over `range`, sorted by start.
    pub async fn read(&self, camera: &str, range: TimeRange) -> redis::RedisResult<Timeline> {
        let prefix = self.redis.key_prefix();
        let (start_ms, end_ms) = (range.start.timestamp_millis(), range.end.timestamp_millis());
        let mut connection = self.redis.connection().await?;
        let (ended, live, alerts, captions, gaps): StoredEntries = redis::pipe()
            // Tracks are scored by last-seen, gaps by their end: both reach into the range
            // when that is at or after its start.
            .zrangebyscore(ended_tracks_key(prefix, camera), start_ms, "+inf")
            .get(live_tracks_key(prefix, camera))
            .lrange(alerts_key(prefix, camera), 0, -1)
            .zrangebyscore(
                captions_key(prefix, camera),
                start_ms - LONGEST_CHUNK_MS,
                format!("({end_ms}"),
            )
            .zrangebyscore(gaps_key(prefix, camera), start_ms, "+inf")
            .query_async(&mut connection)
            .await?;
        let recorded = recorded_spans(
            &self
                .segments
                .overlapping(camera, range.start, range.end)
                .await?,
        );

        let mut tracks: Vec<TrackRecord> = parse_all(&ended, "track");
        if let Some(live) = live {
            tracks.extend(parse_all::<Vec<TrackRecord>>(&[live], "live tracks").concat());
        }
        let with_clip = |kind, start, end, label, id| TimelineItem {
            kind,
            start,
            end,
            label,
            clip: clip_for(&self.clips, self.max_clip, camera, start, end, &recorded),
            id,
        };
        let mut kinds: Vec<Vec<TimelineItem>> = vec![
            recorded
                .iter()
                .flat_map(|&(start, end, count)| {
                    let plural = if count == 1 { "" } else { "s" };
                    let pieces = split_span(start, end, self.max_clip);
                    let parts = pieces.len();
                    pieces
                        .into_iter()
                        .enumerate()
                        .map(move |(i, (start, end))| {
                            let label = if parts == 1 {
                                format!("recorded ({count} segment{plural})")
                            } else {
                                format!(
                                    "recorded, part {} of {parts} ({count} segment{plural})",
                                    i + 1
                                )
                            };
                            TimelineItem {
                                kind: ItemKind::Recording,
                                start,
                                end,
                                label,
                                clip: Some(clip_link(camera, start, end)),
                                id: None,
                            }
                        })
                })
                .collect(),
            parse_all::<StreamEvent>(&gaps, "gap")
                .into_iter()
                .filter_map(|event| match event.event {
                    StreamEventKind::Gap { start, end, reason } => Some(TimelineItem {
                        kind: ItemKind::Gap,
                        start,
                        end,
                        label: format!("no video: {reason}"),
                        clip: None,
                        id: None,
                    }),
                    StreamEventKind::State { .. } => None,
                })
                .collect(),
            tracks
                .iter()
                .map(|track| {
                    let label = track_label(track);
                    with_clip(
                        ItemKind::Object,
                        track.first_seen,
                        track.last_seen,
                        label,
                        None,
                    )
                })
                .collect(),
            parse_all::<StoredAlert>(&alerts, "alert")
                .into_iter()
                .map(|alert| {
                    let reason = alert
                        .reason
                        .or_else(|| alert.evidence.into_iter().next().map(|line| line.text))
                        .unwrap_or(alert.kind);
                    let label = format!("{}: {reason}", alert.rule_id);
                    let id = Some(alert.message_id);
                    with_clip(ItemKind::Alert, alert.start, alert.end, label, id)
                })
                .collect(),
            parse_all::<StoredCaption>(&captions, "caption")
                .into_iter()
                .map(|caption| {
                    with_clip(
                        ItemKind::Caption,
                        caption.start,
                        caption.end,
                        caption.text,
                        None,
                    )
                })
                .collect(),
        ];
        let mut truncated = false;
        let mut items = Vec::new();
        for kind in &mut kinds {
            kind.retain(|item| range.overlaps(item.start, item.end));
            if kind.len() > MAX_ITEMS_PER_KIND {
                truncated = true;
                kind.sort_by_key(|item| std::cmp::Reverse(item.start));
                kind.truncate(MAX_ITEMS_PER_KIND);
            }
            items.append(kind);
        }
        sort_items(&mut items);
        Ok(Timeline {
            camera: camera.to_owned(),
            start: range.start,
            end: range.end,
            items,
            truncated,
        })
    }
}

/// The clip of an item's span: where the camera has video now ([`ClipLinks`]) or the index
/// holds video of the span (a camera recorded before, or one whose link registry has not
/// heard of it). A clip needs a span: an instant (a track seen once) gets the second after
/// it, and a long span the longest clip the clips API cuts (`max_clip`), from its start.
pub fn clip_for(
    clips: &ClipLinks,
    max_clip: Duration,
    camera: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    recorded: &[(DateTime<Utc>, DateTime<Utc>, usize)],
) -> Option<String> {
    let end = end.max(start + Duration::seconds(1)).min(start + max_clip);
    let has_video = recorded.iter().any(|&(s, e, _)| s < end && start < e);
    clips
        .link(camera, start, end)
        .or_else(|| has_video.then(|| clip_link(camera, start, end)))
}

/// By start, then end, then kind and label: the same order for the same items.
pub fn sort_items(items: &mut [TimelineItem]) {
    items.sort_by(|a, b| {
        (a.start, a.end, a.kind)
            .cmp(&(b.start, b.end, b.kind))
            .then_with(|| a.label.cmp(&b.label))
    });
}

/// A recorded span in pieces of at most `max` (the longest clip), so that every part of it
/// has a clip that plays.
pub fn split_span(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    max: Duration,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut pieces = Vec::new();
    let mut at = start;
    while at < end {
        let until = (at + max).min(end);
        pieces.push((at, until));
        at = until;
    }
    pieces
}

/// Segments (oldest first) merged into contiguous spans: `(start, end, segments)`.
pub fn recorded_spans(segments: &[Segment]) -> Vec<(DateTime<Utc>, DateTime<Utc>, usize)> {
    let mut sorted: Vec<&Segment> = segments.iter().collect();
    sorted.sort_by_key(|segment| segment.start);
    let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>, usize)> = Vec::new();
    for segment in sorted {
        match spans.last_mut() {
            Some((_, end, count)) if segment.start <= *end + SPAN_JOIN => {
                *end = (*end).max(segment.end);
                *count += 1;
            }
            _ => spans.push((segment.start, segment.end, 1)),
        }
    }
    spans
}

fn track_label(track: &TrackRecord) -> String {
    let mut label = format!("#{} ", track.track_id);
    if let Some(colour) = &track.colour {
        label.push_str(colour);
        label.push(' ');
    }
    label.push_str(&track.class);
    match &track.movement {
        Movement::Moving { direction } => {
            label.push_str(", moving ");
            label.push_str(direction);
        }
        Movement::Still => label.push_str(", still"),
        Movement::Seen => label.push_str(", seen once"),
    }
    label
}

/// The entries that parse; an unreadable one is skipped with a warning, not an error: one bad
/// entry must not hide a camera's whole timeline.
fn parse_all<T: serde::de::DeserializeOwned>(stored: &[String], what: &str) -> Vec<T> {
    stored
        .iter()
        .filter_map(|json| match serde_json::from_str(json) {
            Ok(value) => Some(value),
            Err(error) => {
                tracing::warn!(%error, what, "an unreadable stored entry is left off the timeline");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn segment(start: i64, end: i64) -> Segment {
        Segment {
            camera: "gate".into(),
            start: at(start),
            end: at(end),
            path: format!("/r/gate/{start}.mp4").into(),
            bytes: 1,
        }
    }

    #[test]
    fn the_range_defaults_to_the_last_hour_and_refuses_bad_input_with_the_reason() {
        let now = at(10_000);
        assert_eq!(
            TimeRange::parse(None, None, now).unwrap(),
            TimeRange {
                start: now - Duration::hours(1),
                end: now
            }
        );
        let start = "2026-12-07T10:00:00Z";
        let range = TimeRange::parse(Some(start), Some("2026-12-07T11:30:00+01:00"), now).unwrap();
        assert_eq!(range.end - range.start, Duration::minutes(30));
        assert_eq!(range.start.to_rfc3339(), "2026-12-07T10:00:00+00:00");

        let reversed = TimeRange::parse(Some(start), Some("2026-12-07T09:00:00Z"), now);
        assert!(reversed.unwrap_err().contains("reversed"));
        let empty = TimeRange::parse(Some(start), Some(start), now);
        assert!(empty.is_err());
        let long = TimeRange::parse(Some(start), Some("2026-12-08T10:00:01Z"), now);
        assert!(long.unwrap_err().contains("at most 24 h"));
        let malformed = TimeRange::parse(Some("yesterday"), None, now);
        assert!(malformed
            .unwrap_err()
            .contains("`start` must be an RFC 3339 time"));
        let malformed = TimeRange::parse(None, Some("2026-12-07 10:00"), now);
        assert!(malformed.unwrap_err().contains("`end`"));
    }

    #[test]
    fn contiguous_segments_merge_into_one_recorded_span_and_a_gap_splits_them() {
        let spans = recorded_spans(&[
            segment(60, 120),
            segment(0, 60),
            segment(121, 180),
            segment(400, 460),
        ]);
        assert_eq!(spans, vec![(at(0), at(180), 3), (at(400), at(460), 1)]);
        assert!(recorded_spans(&[]).is_empty());
    }

    #[test]
    fn a_long_recorded_span_is_listed_in_pieces_of_the_longest_clip() {
        let max = Duration::seconds(600);
        assert_eq!(
            split_span(at(0), at(1300), max),
            vec![(at(0), at(600)), (at(600), at(1200)), (at(1200), at(1300))]
        );
        assert_eq!(split_span(at(0), at(600), max), vec![(at(0), at(600))]);
    }

    #[test]
    fn items_sort_by_start_then_end_then_kind() {
        let item = |kind, start, end| TimelineItem {
            kind,
            start: at(start),
            end: at(end),
            label: String::new(),
            clip: None,
            id: None,
        };
        let mut items = vec![
            item(ItemKind::Caption, 10, 20),
            item(ItemKind::Alert, 5, 6),
            item(ItemKind::Object, 0, 60),
            item(ItemKind::Recording, 0, 60),
            item(ItemKind::Caption, 0, 10),
            item(ItemKind::Gap, 60, 70),
        ];
        sort_items(&mut items);
        let order: Vec<_> = items.iter().map(|i| i.kind).collect();
        assert_eq!(
            order,
            [
                ItemKind::Caption,
                ItemKind::Recording,
                ItemKind::Object,
                ItemKind::Alert,
                ItemKind::Caption,
                ItemKind::Gap
            ]
        );
    }

    #[test]
    fn instants_in_the_range_count_and_spans_touching_its_end_do_not() {
        let range = TimeRange {
            start: at(0),
            end: at(60),
        };
        assert!(range.overlaps(at(0), at(0)));
        assert!(range.overlaps(at(-30), at(0)));
        assert!(!range.overlaps(at(60), at(70)));
        assert!(!range.overlaps(at(-30), at(-1)));
    }

    #[test]
    fn items_get_a_clip_where_there_is_video_cut_to_the_longest_clip() {
        let clips = ClipLinks::default();
        let max = Duration::seconds(600);
        let recorded = [(at(0), at(120), 2)];
        assert_eq!(
            clip_for(&clips, max, "gate", at(10), at(20), &recorded),
            Some(clip_link("gate", at(10), at(20)))
        );
        // Outside the recorded span, and the camera is not recorded now: no video.
        assert_eq!(
            clip_for(&clips, max, "gate", at(200), at(210), &recorded),
            None
        );
        // An instant gets a second; a long span is cut to the longest clip.
        assert_eq!(
            clip_for(&clips, max, "gate", at(5), at(5), &recorded),
            Some(clip_link("gate", at(5), at(6)))
        );
        assert_eq!(
            clip_for(&clips, max, "gate", at(100), at(5000), &recorded),
            Some(clip_link("gate", at(100), at(700)))
        );
        // A camera recording now has video of spans its index does not list yet.
        clips.set_recorded("gate", true);
        assert_eq!(
            clip_for(&clips, max, "gate", at(200), at(210), &recorded),
            Some(clip_link("gate", at(200), at(210)))
        );
    }

    #[test]
    fn a_track_reads_as_id_colour_class_and_movement() {
        let track = TrackRecord {
            track_id: 7,
            class: "car".into(),
            colour: Some("red".into()),
            first_seen: at(0),
            last_seen: at(9),
            first_ground: [0.1, 0.9],
            last_ground: [0.8, 0.9],
            movement: Movement::Moving {
                direction: "left to right".into(),
            },
            sightings: 9,
        };
        assert_eq!(track_label(&track), "#7 red car, moving left to right");
    }
}

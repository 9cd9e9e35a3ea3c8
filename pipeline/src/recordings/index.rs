//! The index of recorded segments, in Redis, so it survives restarts.
//!
//! Keys:
//! - `{prefix}:recordings:{camera}:segments`, a sorted set: each segment's JSON scored by its
//!   start (Unix ms);
//! - `{prefix}:recordings:{camera}:deleted_until`: the end (Unix ms) of the newest segment
//!   retention deleted, so a missing clip can say it was deleted rather than never recorded;
//! - `{prefix}:recordings:cameras`, a set: the cameras with segments.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::publish::RedisState;

/// Longest segment the index holds (`record.segment_s` is at most an hour): a span's
/// overlapping segments start at most this long before it.
const LONGEST_SEGMENT_MS: i64 = 3_600_000 + 60_000;

/// One recorded file of a camera's video.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub camera: String,
    /// Wall-clock time of its first frame, and of the end of its last.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub path: PathBuf,
    pub bytes: u64,
}

impl Segment {
    pub fn overlaps(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        self.start < end && start < self.end
    }
}

/// Why a span has no video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// The camera has no recorded video at all (recording is off, or it is unknown).
    NotRecorded,
    /// Its video was recorded and retention has deleted it.
    DeletedByRetention,
    /// The camera was recorded before and after, but not then (it was offline, recording
    /// paused, or `events` mode kept nothing there).
    Gap,
}

impl Missing {
    pub fn reason(self) -> &'static str {
        match self {
            Missing::NotRecorded => "this camera's video is not recorded",
            Missing::DeletedByRetention => "the video of this span was deleted by retention",
            Missing::Gap => "the camera was not recorded during this span (a gap)",
        }
    }
}

/// Cheap to clone.
#[derive(Clone)]
pub struct SegmentIndex {
    redis: RedisState,
}

impl SegmentIndex {
    pub fn new(redis: RedisState) -> Self {
        Self { redis }
    }

    fn segments_key(&self, camera: &str) -> String {
        format!("{}:recordings:{camera}:segments", self.redis.key_prefix())
    }

    fn deleted_until_key(&self, camera: &str) -> String {
        format!(
            "{}:recordings:{camera}:deleted_until",
            self.redis.key_prefix()
        )
    }

    fn cameras_key(&self) -> String {
        format!("{}:recordings:cameras", self.redis.key_prefix())
    }

    /// Lists a finished segment. Buffered and retried while Redis is away, like every write.
    pub async fn add(&self, segment: &Segment) {
        let json = serde_json::to_string(segment).expect("segments serialise");
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .zadd(
                self.segments_key(&segment.camera),
                json,
                segment.start.timestamp_millis(),
            )
            .ignore()
            .sadd(self.cameras_key(), &segment.camera)
            .ignore();
        self.redis.write_pipeline(pipeline).await;
    }

    /// Unlists segments whose files are gone. With `by_retention`, later requests for their
    /// span are told retention deleted them.
    pub async fn remove(&self, camera: &str, segments: &[Segment], by_retention: bool) {
        if segments.is_empty() {
            return;
        }
        let mut pipeline = redis::pipe();
        pipeline.atomic();
        for segment in segments {
            let json = serde_json::to_string(segment).expect("segments serialise");
            pipeline.zrem(self.segments_key(camera), json).ignore();
        }
        if by_retention {
            let until = segments
                .iter()
                .map(|s| s.end.timestamp_millis())
                .max()
                .unwrap_or_default();
            // Only ever forward: GREATEST is not a Redis command, so the script keeps the max.
            pipeline
                .cmd("EVAL")
                .arg(
                    "local old = tonumber(redis.call('GET', KEYS[1]) or '0') \
                     if tonumber(ARGV[1]) > old then redis.call('SET', KEYS[1], ARGV[1]) end",
                )
                .arg(1)
                .arg(self.deleted_until_key(camera))
                .arg(until)
                .ignore();
        }
        self.redis.write_pipeline(pipeline).await;
    }

    /// Forgets a camera whose segments are all gone.
    pub async fn forget_camera(&self, camera: &str) {
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .del(self.segments_key(camera))
            .ignore()
            .del(self.deleted_until_key(camera))
            .ignore()
            .srem(self.cameras_key(), camera)
            .ignore();
        self.redis.write_pipeline(pipeline).await;
    }

    /// Every segment of the camera, oldest first.
    pub async fn segments(&self, camera: &str) -> redis::RedisResult<Vec<Segment>> {
        let mut connection = self.redis.connection().await?;
        let members: Vec<String> = connection.zrange(self.segments_key(camera), 0, -1).await?;
        Ok(parse(&members))
    }

    /// The camera's segments that overlap `[start, end)`, oldest first.
    pub async fn overlapping(
        &self,
        camera: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> redis::RedisResult<Vec<Segment>> {
        let mut connection = self.redis.connection().await?;
        let members: Vec<String> = connection
            .zrangebyscore(
                self.segments_key(camera),
                start.timestamp_millis() - LONGEST_SEGMENT_MS,
                end.timestamp_millis(),
            )
            .await?;
        Ok(parse(&members)
            .into_iter()
            .filter(|segment| segment.overlaps(start, end))
            .collect())
    }

    /// The cameras with segments.
    pub async fn cameras(&self) -> redis::RedisResult<Vec<String>> {
        let mut connection = self.redis.connection().await?;
        let mut cameras: Vec<String> = connection.smembers(self.cameras_key()).await?;
        cameras.sort();
        Ok(cameras)
    }

    /// Why the span of `camera` from `start` on has no segment.
    pub async fn why_missing(
        &self,
        camera: &str,
        start: DateTime<Utc>,
    ) -> redis::RedisResult<Missing> {
        let mut connection = self.redis.connection().await?;
        let deleted_until: Option<i64> = connection.get(self.deleted_until_key(camera)).await?;
        if deleted_until.is_some_and(|until| start.timestamp_millis() < until) {
            return Ok(Missing::DeletedByRetention);
        }
        let count: usize = connection.zcard(self.segments_key(camera)).await?;
        Ok(if count == 0 && deleted_until.is_none() {
            Missing::NotRecorded
        } else {
            Missing::Gap
        })
    }
}

fn parse(members: &[String]) -> Vec<Segment> {
    members
        .iter()
        .filter_map(|member| match serde_json::from_str(member) {
            Ok(segment) => Some(segment),
            Err(error) => {
                tracing::warn!(%error, "an unreadable entry in the recordings index is skipped");
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

    #[test]
    fn a_segment_overlaps_spans_that_share_time_with_it_only() {
        let segment = Segment {
            camera: "gate".into(),
            start: at(0),
            end: at(60),
            path: "/r/gate/a.mp4".into(),
            bytes: 1,
        };
        assert!(segment.overlaps(at(50), at(70)));
        assert!(segment.overlaps(at(-10), at(1)));
        assert!(!segment.overlaps(at(60), at(70)), "end is exclusive");
        assert!(!segment.overlaps(at(-10), at(0)));
    }
}

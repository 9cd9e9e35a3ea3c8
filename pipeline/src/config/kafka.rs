//! `[kafka]`: the broker, the topics Argus writes, and the spill queue for outages.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::HttpConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    pub brokers: String,
    /// Partitions of the topics Argus creates, unless `topic_partitions` names the topic.
    pub partitions: i32,
    /// Per-topic partition counts, by topic name, for topics Argus creates.
    #[serde(default)]
    pub topic_partitions: BTreeMap<String, i32>,
    pub replication_factor: i32,
    /// How long a message may wait for the broker before it goes to the spill queue (ms).
    pub message_timeout_ms: u64,
    /// Messages held in memory by the producer at most (bytes); past it they spill to disk.
    pub max_in_memory_bytes: u64,
    /// Larger messages are refused with an error (librdkafka's `message.max.bytes`; the
    /// broker's own limit must be at least this).
    pub max_message_bytes: usize,
    pub topics: TopicsConfig,
    pub spill: SpillConfig,
    /// librdkafka properties passed through as they are (security, tuning).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

impl KafkaConfig {
    pub fn partitions_of(&self, topic: &str) -> i32 {
        self.topic_partitions
            .get(topic)
            .copied()
            .unwrap_or(self.partitions)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsConfig {
    pub frame_results: String,
    /// Stream state changes and gaps (outages) in the video.
    pub stream_events: String,
    /// Every indexed moment window (text, tags, embeddings), for consumers' own indexes.
    pub moments: String,
    /// Chunk captions, first answers and their self-corrected revisions.
    pub captions: String,
    /// Answers to questions (`POST /api/v1/questions`) and their revisions.
    pub answers: String,
    /// Alerts from standing rules, version 1 (deprecated: chunk alerts only).
    pub alerts: String,
    /// Alerts from standing rules, version 2: chunk and object alerts.
    pub alerts_v2: String,
    /// Acknowledgements of alerts (`POST /api/v1/alerts/{id}/ack`).
    pub alert_acks: String,
    /// Each analysed frame's tracked objects.
    pub objects: String,
    /// Tracks starting and ending, zones entered and left, lines crossed, dwell exceeded.
    pub object_events: String,
}

/// The on-disk queue where messages wait while the broker is unreachable.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpillConfig {
    /// The spill file; unset: `$XDG_STATE_HOME/argus/kafka-spill-<http port>.redb`
    /// (`~/.local/state/...`), one per HTTP port so several Argus processes on a host never share it.
    pub path: Option<PathBuf>,
    /// The spill file holds at most this many bytes of messages.
    pub max_bytes: u64,
    /// What happens when it is full.
    pub when_full: SpillFullPolicy,
}

/// The `[kafka.spill]` section of the embedded default.toml.
impl Default for SpillConfig {
    fn default() -> Self {
        super::EMBEDDED.kafka.spill.clone()
    }
}

impl SpillConfig {
    pub fn resolve_path(&self, http: &HttpConfig) -> PathBuf {
        if let Some(path) = &self.path {
            return path.clone();
        }
        let state = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_default()
                    .join(".local/state")
            });
        state.join(format!("argus/kafka-spill-{}.redb", http.listen.port()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpillFullPolicy {
    /// Remove the oldest spilled messages (counted in `argus_kafka_spill_dropped_total` and
    /// logged): the newest results matter most to live consumers.
    DropOldest,
    /// Make analysis wait until there is room: nothing already produced is lost, but live
    /// streams drop frames at their queues (per their `drop_policy`) meanwhile.
    Block,
}

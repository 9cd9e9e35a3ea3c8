//! Configuration: an embedded default TOML, an optional file over it, and `ARGUS_*`
//! environment variables over both (`ARGUS_KAFKA__BROKERS` sets `kafka.brokers`).
//!
//! default.toml is the one place defaults are written: files and the environment are merged
//! over it, and each section's `Default` is its section of that file. So the file sets every
//! field that is not optional, and those sections take no `#[serde(default)]`: serde would
//! call their `Default` while parsing the file, which would re-enter that same parse and hang.
//! Sections whose default is empty (`models`, `alerts`), `ocr` (the operators' own defaults)
//! and streams (see `stream.rs`) keep theirs in code.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use argus_operators::ocr::OcrConfig;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

mod alerts;
mod analysis;
mod captions;
mod cluster;
mod http;
mod kafka;
mod models;
mod moments;
mod objects;
mod record;
mod redis;
mod stream;

pub use self::alerts::{AlertRule, AlertsConfig, Condition, RuleScope};
pub use self::analysis::AnalysisConfig;
pub use self::captions::CaptionsConfig;
pub use self::cluster::ClusterConfig;
pub use self::http::HttpConfig;
pub use self::kafka::{KafkaConfig, SpillConfig, SpillFullPolicy, TopicsConfig};
pub use self::models::ModelsConfig;
pub use self::moments::{MomentsConfig, RetentionConfig};
pub use self::objects::ObjectsConfig;
pub use self::record::{RecordConfig, RecordMode, RecordRetentionConfig, SegmentFormat};
pub use self::redis::RedisConfig;
pub use self::stream::{DropPolicy, ReconnectConfig, RtspTransport, StreamConfig};

/// The configuration compiled into the binary.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/default.toml");

/// [`DEFAULT_CONFIG`] parsed once, for the sections' `Default`s.
static EMBEDDED: LazyLock<Config> = LazyLock::new(|| {
    Figment::from(Toml::string(DEFAULT_CONFIG))
        .extract()
        .unwrap_or_else(|e| panic!("the embedded default.toml does not parse: {e}"))
});

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub http: HttpConfig,
    pub kafka: KafkaConfig,
    pub redis: RedisConfig,
    pub cluster: ClusterConfig,
    #[serde(default)]
    pub models: ModelsConfig,
    #[serde(default)]
    pub ocr: OcrConfig,
    pub analysis: AnalysisConfig,
    pub moments: MomentsConfig,
    pub captions: CaptionsConfig,
    pub objects: ObjectsConfig,
    pub record: RecordConfig,
    #[serde(default)]
    pub alerts: AlertsConfig,
    #[serde(default)]
    pub streams: Vec<StreamConfig>,
}

impl Config {
    /// Defaults, then `file` (if any), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_CONFIG));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
            // A file that lists streams replaces the default sample stream instead of adding to it.
            figment = figment.merge(Toml::file_exact(path));
        }
        // Only nested keys (`ARGUS_KAFKA__BROKERS`) are configuration: single-level names such as
        // `ARGUS_MODEL_DIR` or `ARGUS_CACHE` belong to the setup scripts.
        figment = figment.merge(
            Env::prefixed("ARGUS_")
                .split("__")
                .filter(|key| key.as_str().contains('.')),
        );
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for stream in &self.streams {
            if !seen.insert(stream.id.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "stream id `{}` is used twice",
                    stream.id
                )));
            }
        }
        let topics = [
            (
                "kafka.topics.frame_results",
                &self.kafka.topics.frame_results,
            ),
            (
                "kafka.topics.stream_events",
                &self.kafka.topics.stream_events,
            ),
            ("kafka.topics.moments", &self.kafka.topics.moments),
            ("kafka.topics.captions", &self.kafka.topics.captions),
            ("kafka.topics.answers", &self.kafka.topics.answers),
            ("kafka.topics.alerts", &self.kafka.topics.alerts),
            ("kafka.topics.alerts_v2", &self.kafka.topics.alerts_v2),
            ("kafka.topics.alert_acks", &self.kafka.topics.alert_acks),
            ("kafka.topics.objects", &self.kafka.topics.objects),
            (
                "kafka.topics.object_events",
                &self.kafka.topics.object_events,
            ),
            ("cluster.control_topic", &self.cluster.control_topic),
        ];
        for (key, topic) in topics {
            if let Some(problem) = topic_name_problem(topic) {
                return Err(ConfigError::Invalid(format!("{key} `{topic}` {problem}")));
            }
        }
        for (key, value) in [
            ("kafka.partitions", self.kafka.partitions),
            ("kafka.replication_factor", self.kafka.replication_factor),
            (
                "cluster.control_partitions",
                self.cluster.control_partitions,
            ),
        ]
        .into_iter()
        .chain(
            self.kafka
                .topic_partitions
                .values()
                .map(|count| ("kafka.topic_partitions", *count)),
        ) {
            if value < 1 {
                return Err(ConfigError::Invalid(format!(
                    "{key} {value} must be at least 1"
                )));
            }
        }
        if !(self.moments.window_s >= 0.1 && self.moments.window_s <= 3600.0) {
            return Err(ConfigError::Invalid(format!(
                "moments.window_s {} must be between 0.1 and 3600 seconds",
                self.moments.window_s
            )));
        }
        if self.moments.retention.interval_s == 0
            || self.moments.max_results == 0
            || self.moments.rerank_candidates == 0
            || self.moments.index_save_interval_s == 0
        {
            return Err(ConfigError::Invalid(
                "moments.retention.interval_s, moments.max_results, \
                 moments.rerank_candidates and moments.index_save_interval_s must be at least 1"
                    .into(),
            ));
        }
        if !(2..=128).contains(&self.moments.index_connectivity) {
            return Err(ConfigError::Invalid(format!(
                "moments.index_connectivity {} must be between 2 and 128 (16 by default)",
                self.moments.index_connectivity
            )));
        }
        if let Some(problem) = self.objects.problem() {
            return Err(ConfigError::Invalid(problem));
        }
        if let Some(problem) = self.record.problem() {
            return Err(ConfigError::Invalid(problem));
        }
        let captions = &self.captions;
        if !(captions.chunk_s >= 1.0 && captions.chunk_s <= 600.0) {
            return Err(ConfigError::Invalid(format!(
                "captions.chunk_s {} must be between 1 and 600 seconds",
                captions.chunk_s
            )));
        }
        if !(1..=64).contains(&captions.segments)
            || !(1..=16).contains(&captions.candidates)
            || captions.key_segments == 0
            || captions.queue == 0
            || !(1..=512).contains(&captions.max_new_tokens)
        {
            return Err(ConfigError::Invalid(
                "captions: segments must be 1..=64, candidates 1..=16, max_new_tokens 1..=512, \
                 key_segments and queue at least 1"
                    .into(),
            ));
        }
        if !(captions.temperature > 0.0
            && captions.correction_temperature > 0.0
            && (0.0..=1.0).contains(&captions.threshold))
        {
            return Err(ConfigError::Invalid(
                "captions: temperatures must be above 0 and threshold within 0..=1".into(),
            ));
        }
        let mut rule_ids = std::collections::HashSet::new();
        for rule in &self.alerts.rules {
            if !rule_ids.insert(rule.id.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "alerts.rules: rule id `{}` is used twice",
                    rule.id
                )));
            }
            rule.clone()
                .compile()
                .map_err(|problem| ConfigError::Invalid(format!("alerts.rules: {problem}")))?;
        }
        let scope = RuleScope::of(self);
        for rule in &self.alerts.rules {
            scope
                .admits(rule)
                .map_err(|problem| ConfigError::Invalid(format!("alerts.rules: {problem}")))?;
        }
        if !(1000..=100_000_000).contains(&self.kafka.max_message_bytes) {
            return Err(ConfigError::Invalid(format!(
                "kafka.max_message_bytes {} must be in 1000..=100000000",
                self.kafka.max_message_bytes
            )));
        }
        Ok(())
    }
}

impl Config {
    /// This configuration with every secret replaced by `***`, for showing (`argus config`).
    pub fn redacted(&self) -> Config {
        let mut shown = self.clone();
        let hide = |value: &mut Option<String>| {
            if value.as_deref().is_some_and(|v| !v.is_empty()) {
                *value = Some("***".into());
            }
        };
        hide(&mut shown.http.api_token);
        hide(&mut shown.http.read_token);
        shown.redis.url = crate::redact::redact_text(&shown.redis.url);
        for (key, value) in shown.kafka.properties.iter_mut() {
            if ["password", "secret", "key", "token"]
                .iter()
                .any(|word| key.contains(word))
            {
                *value = "***".into();
            }
        }
        for stream in &mut shown.streams {
            stream.uri = crate::redact::redact_text(&stream.uri);
        }
        shown
    }
}

/// Kafka's rule for topic names, checked before any broker is asked.
fn topic_name_problem(topic: &str) -> Option<&'static str> {
    if topic.is_empty() || topic.len() > 249 {
        return Some("must have 1 to 249 characters");
    }
    if topic == "." || topic == ".." {
        return Some("is not a valid topic name");
    }
    if !topic
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Some("may contain only letters, digits, `.`, `_` and `-`");
    }
    None
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_is_valid() {
        let config: Config = Figment::from(Toml::string(DEFAULT_CONFIG))
            .extract()
            .unwrap();
        config.validate().unwrap();
        assert_eq!(config.streams.len(), 1);
        assert_eq!(config.streams[0].sample_fps, 1.0);
    }

    #[test]
    fn a_file_overrides_the_defaults_and_replaces_streams() {
        let dir = std::env::temp_dir().join(format!("argus-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("argus.toml");
        std::fs::write(
            &file,
            "[kafka]\nbrokers = \"kafka:29092\"\n[[streams]]\nid = \"gate3\"\nuri = \"rtsp://cam/1\"\n",
        )
        .unwrap();
        let config = Config::load(Some(&file)).unwrap();
        assert_eq!(config.kafka.brokers, "kafka:29092");
        assert_eq!(config.kafka.partitions, 4, "unset keys keep their defaults");
        assert_eq!(config.streams.len(), 1);
        assert_eq!(config.streams[0].id, "gate3");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let error = Figment::from(Toml::string(DEFAULT_CONFIG))
            .merge(Toml::string("[kafka]\nbrokerz = \"x\""))
            .extract::<Config>()
            .unwrap_err()
            .to_string();
        assert!(error.contains("brokerz"), "{error}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let error = Config::load(Some(Path::new("/nope/argus.toml")))
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nope/argus.toml"), "{error}");
    }

    #[test]
    fn topic_names_kafka_cannot_create_are_refused_before_start() {
        let error = Figment::from(Toml::string(DEFAULT_CONFIG))
            .merge(Toml::string(
                "[kafka.topics]\nframe_results = \"bad topic!\"",
            ))
            .extract::<Config>()
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("kafka.topics.frame_results `bad topic!`"),
            "{error}"
        );
    }

    #[test]
    fn caption_settings_out_of_range_are_refused_with_their_name() {
        for (setting, says) in [
            ("chunk_s = 0.5", "captions.chunk_s 0.5"),
            ("candidates = 0", "candidates 1..=16"),
            ("threshold = 1.5", "threshold within 0..=1"),
            ("temperature = 0.0", "temperatures must be above 0"),
        ] {
            let error = Figment::from(Toml::string(DEFAULT_CONFIG))
                .merge(Toml::string(&format!("[captions]\n{setting}")))
                .extract::<Config>()
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string();
            assert!(error.contains(says), "{setting}: {error}");
        }
    }

    #[test]
    fn shown_configurations_hide_every_secret() {
        let mut config: Config = Figment::from(Toml::string(DEFAULT_CONFIG))
            .extract()
            .unwrap();
        config.http.api_token = Some("tok-1".into());
        config.redis.url = "redis://:pw-2@redis:6379".into();
        config
            .kafka
            .properties
            .insert("sasl.password".into(), "pw-3".into());
        config.streams[0].uri = "rtsp://admin:pw-4@cam/live".into();
        let shown = toml::to_string(&config.redacted()).unwrap();
        for secret in ["tok-1", "pw-2", "pw-3", "pw-4"] {
            assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
        }
    }

    #[test]
    fn every_section_default_is_its_section_of_the_embedded_file() {
        fn value(section: &impl Serialize) -> toml::Value {
            toml::Value::try_from(section).unwrap()
        }
        // Parsed afresh rather than taken from `EMBEDDED`, which the `Default`s read.
        let file: Config = Figment::from(Toml::string(DEFAULT_CONFIG))
            .extract()
            .unwrap();
        for (section, default, in_file) in [
            (
                "kafka.spill",
                value(&SpillConfig::default()),
                value(&file.kafka.spill),
            ),
            (
                "cluster",
                value(&ClusterConfig::default()),
                value(&file.cluster),
            ),
            (
                "models",
                value(&ModelsConfig::default()),
                value(&file.models),
            ),
            (
                "analysis",
                value(&AnalysisConfig::default()),
                value(&file.analysis),
            ),
            (
                "moments",
                value(&MomentsConfig::default()),
                value(&file.moments),
            ),
            (
                "moments.retention",
                value(&RetentionConfig::default()),
                value(&file.moments.retention),
            ),
            (
                "captions",
                value(&CaptionsConfig::default()),
                value(&file.captions),
            ),
            (
                "alerts",
                value(&AlertsConfig::default()),
                value(&file.alerts),
            ),
            (
                "objects",
                value(&ObjectsConfig::default()),
                value(&file.objects),
            ),
        ] {
            assert_eq!(default, in_file, "{section}");
        }
    }
}

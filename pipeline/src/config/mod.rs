//! Configuration: an embedded default TOML, an optional file over it, and `ARGUS_*`
//! environment variables over both (`ARGUS_KAFKA__BROKERS` sets `kafka.brokers`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use argus_operators::ocr::OcrConfig;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// The configuration compiled into the binary.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/default.toml");

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
    #[serde(default)]
    pub cluster: ClusterConfig,
    #[serde(default)]
    pub models: ModelsConfig,
    #[serde(default)]
    pub ocr: OcrConfig,
    #[serde(default)]
    pub analysis: AnalysisConfig,
    #[serde(default)]
    pub moments: MomentsConfig,
    #[serde(default)]
    pub captions: CaptionsConfig,
    #[serde(default)]
    pub alerts: AlertsConfig,
    #[serde(default)]
    pub streams: Vec<StreamConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Bearer token for calls that change something; unset: such calls are refused.
    #[serde(default)]
    pub api_token: Option<String>,
    /// Bearer token for reading `/api/…`; unset: reading is open. The API token reads too.
    #[serde(default)]
    pub read_token: Option<String>,
    /// Browser origins allowed to call the API (CORS), e.g. `https://ops.example.com`.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Requests to `/api/…` per second per client address (bursts of twice that).
    #[serde(default = "default_rate_limit")]
    pub rate_limit_per_second: u32,
}

fn default_rate_limit() -> u32 {
    50
}

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
    #[serde(default)]
    pub spill: SpillConfig,
    /// librdkafka properties passed through as they are (security, tuning).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsConfig {
    pub frame_results: String,
    /// Stream state changes and gaps (outages) in the video.
    pub stream_events: String,
    /// Every indexed moment window (text, tags, embeddings), for consumers' own indexes.
    #[serde(default = "default_moments_topic")]
    pub moments: String,
    /// Chunk captions, first answers and their self-corrected revisions.
    #[serde(default = "default_captions_topic")]
    pub captions: String,
    /// Answers to questions (`POST /api/v1/questions`) and their revisions.
    #[serde(default = "default_answers_topic")]
    pub answers: String,
    /// Alerts from standing rules.
    #[serde(default = "default_alerts_topic")]
    pub alerts: String,
}

fn default_moments_topic() -> String {
    "argus.moments.v1".into()
}

fn default_captions_topic() -> String {
    "argus.captions.v1".into()
}

fn default_answers_topic() -> String {
    "argus.answers.v1".into()
}

fn default_alerts_topic() -> String {
    "argus.alerts.v1".into()
}

impl KafkaConfig {
    pub fn partitions_of(&self, topic: &str) -> i32 {
        self.topic_partitions
            .get(topic)
            .copied()
            .unwrap_or(self.partitions)
    }
}

/// The on-disk queue where messages wait while the broker is unreachable.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpillConfig {
    /// The spill file; unset: `$XDG_STATE_HOME/argus/kafka-spill-<http port>.redb`
    /// (`~/.local/state/...`), one per HTTP port so several Argus processes on a host never share it.
    pub path: Option<PathBuf>,
    /// The spill file holds at most this many bytes of messages.
    pub max_bytes: u64,
    /// What happens when it is full.
    pub when_full: SpillFullPolicy,
}

impl Default for SpillConfig {
    fn default() -> Self {
        Self {
            path: None,
            max_bytes: 1 << 30,
            when_full: SpillFullPolicy::DropOldest,
        }
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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpillFullPolicy {
    /// Remove the oldest spilled messages (counted in `argus_kafka_spill_dropped_total` and
    /// logged): the newest results matter most to live consumers.
    #[default]
    DropOldest,
    /// Make analysis wait until there is room: nothing already produced is lost, but live
    /// streams drop frames at their queues (per their `drop_policy`) meanwhile.
    Block,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
    pub url: String,
    pub key_prefix: String,
    /// Writes kept for retry while Redis is unreachable; the oldest go first past this.
    #[serde(default = "default_redis_retry_buffer")]
    pub retry_buffer: usize,
}

fn default_redis_retry_buffer() -> usize {
    10_000
}

/// Scale-out: workers share cameras through a Kafka consumer group.
///
/// Camera definitions live on a compacted control topic (key = camera id). Each worker joins
/// the group `group_id`; the group's partition assignment decides which worker runs which
/// cameras, so a dead worker's cameras move to the others within the session timeout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    pub enabled: bool,
    pub group_id: String,
    pub control_topic: String,
    /// Partitions of the control topic: the most workers that can share the cameras.
    pub control_partitions: i32,
    /// A worker silent for this long is declared dead and its cameras move (ms).
    pub session_timeout_ms: u32,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            group_id: "argus-workers".into(),
            control_topic: "argus.cameras.v1".into(),
            control_partitions: 12,
            session_timeout_ms: 10_000,
        }
    }
}

/// Batching of frames across streams for the operators.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalysisConfig {
    /// At most this many frames (from any streams) per model call.
    pub max_batch: usize,
    /// How long the first frame of a batch may wait for others (ms).
    pub max_wait_ms: u64,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            max_batch: 8,
            max_wait_ms: 10,
        }
    }
}

/// The moment index: every stream is cut into windows that analysts search by text or image.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MomentsConfig {
    /// Index windows and answer moment queries.
    pub enabled: bool,
    /// Length of one indexed window (seconds of video).
    pub window_s: f64,
    /// The sentence-embedding model: a folder name under the model folder, or a path.
    pub text_model: PathBuf,
    /// An image-text encoder (CLIP or SigLIP, Hugging Face or ONNX layout): a folder under
    /// the model folder, or a path. When set, each window's middle frame is embedded in its
    /// space, so text queries also match what the video looks like ("a red car") and image
    /// queries match content, not only colours. Unset: text queries match OCR, tags and
    /// captions; image queries match colour layout.
    pub visual_model: Option<PathBuf>,
    /// The LLM that reranks a text query's best moments when the query asks for it
    /// (`rerank=true`): Llama family, HF layout, a folder under the model folder or a path.
    /// Read on the first such query.
    pub rerank_model: PathBuf,
    /// How many of the best moments a rerank re-scores (at least the query's `limit`).
    pub rerank_candidates: usize,
    /// Below this many windows in a query's camera and time range the search is exact (a scan);
    /// above, it uses the approximate (HNSW) index.
    pub exact_search_below: usize,
    /// Most moments one query may ask for.
    pub max_results: usize,
    pub retention: RetentionConfig,
}

impl Default for MomentsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window_s: 2.0,
            text_model: PathBuf::from("all-minilm-l6-v2"),
            visual_model: None,
            rerank_model: PathBuf::from("smollm2-135m-instruct-hf"),
            rerank_candidates: 10,
            exact_search_below: 20_000,
            max_results: 100,
            retention: RetentionConfig::default(),
        }
    }
}

impl MomentsConfig {
    pub fn text_model_dir(&self, models: &ModelsConfig) -> PathBuf {
        CaptionsConfig::model_dir(&self.text_model, models)
    }

    pub fn rerank_model_dir(&self, models: &ModelsConfig) -> PathBuf {
        CaptionsConfig::model_dir(&self.rerank_model, models)
    }

    pub fn visual_model_dir(&self, models: &ModelsConfig) -> Option<PathBuf> {
        let model = self.visual_model.as_deref()?;
        Some(CaptionsConfig::model_dir(model, models))
    }
}

/// Chunk captions with CyberV self-correction: each stream is cut into chunks, the LLM
/// writes a caption from the chunk's perception results, and a low-confidence caption is
/// re-done on densely re-examined key segments and published as a revision.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptionsConfig {
    /// Off unless configured: the LLM needs a core of its own to keep up with live video
    /// (`make run` turns it on for the sample video).
    pub enabled: bool,
    /// Length of one chunk (seconds of video).
    pub chunk_s: f64,
    /// Segments per chunk: the first round describes one frame per segment, and a
    /// correction re-examines every frame of the key segments.
    pub segments: usize,
    /// The LLM (Llama family, HF layout): a folder under the model folder, or a path.
    pub llm_model: PathBuf,
    /// The full model path: a folder with `vision/` (SigLIP or CLIP), `projector/` (Video-CCAM)
    /// and `llm/` (Llama family), under the model folder or a path. When set, chunks are
    /// captioned from their frames; unset, from the perception results. Questions about
    /// stored video always use `llm_model` over the stored observations (frames are not kept).
    pub video_model: Option<PathBuf>,
    /// The ImageNet tagger (ONNX): a folder under the model folder, or a path.
    pub tag_model: PathBuf,
    /// Tags kept per frame.
    pub tags_per_frame: usize,
    /// n: candidate answers per round (one greedy, n − 1 sampled).
    pub candidates: usize,
    /// θ: the best answer is accepted when its support exceeds n · θ.
    pub threshold: f32,
    /// Segments a correction re-examines.
    pub key_segments: usize,
    pub max_new_tokens: usize,
    /// Sampling temperature of the n − 1 sampled candidates.
    pub temperature: f64,
    /// The correction round's (low) temperature.
    pub correction_temperature: f64,
    /// Chunks waiting for the LLM; a live stream's chunk that finds the queue full is
    /// skipped (counted), a recording waits.
    pub queue: usize,
    /// Captions kept per camera in Redis (the newest).
    pub keep_per_camera: usize,
}

impl Default for CaptionsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            chunk_s: 10.0,
            segments: 5,
            llm_model: PathBuf::from("smollm2-135m-instruct-hf"),
            video_model: None,
            tag_model: PathBuf::from("efficientnet-lite0"),
            tags_per_frame: 3,
            candidates: 2,
            threshold: 0.5,
            key_segments: 2,
            max_new_tokens: 40,
            temperature: 0.9,
            correction_temperature: 0.2,
            queue: 4,
            keep_per_camera: 8640,
        }
    }
}

/// Standing alert rules, checked on every chunk (they need `captions.enabled`). More can be
/// added and removed through the API.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    pub rules: Vec<crate::captions::alerts::AlertRule>,
}

impl CaptionsConfig {
    /// `model` resolved against the model folder unless it is absolute.
    pub fn model_dir(model: &Path, models: &ModelsConfig) -> PathBuf {
        if model.is_absolute() {
            model.to_path_buf()
        } else {
            models.resolve_dir().join(model)
        }
    }
}

/// How long each camera's windows are kept, in Redis and in the index. Unset: forever.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Windows older than this (by their video time) are deleted (seconds).
    pub max_age_s: Option<u64>,
    /// Each camera keeps at most this many windows, the newest.
    pub max_windows: Option<usize>,
    /// How often retention runs (seconds).
    pub interval_s: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            max_age_s: None,
            max_windows: None,
            interval_s: 60,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    pub dir: Option<PathBuf>,
}

impl ModelsConfig {
    /// The model folder: configured, else `$ARGUS_MODEL_DIR`, else `~/.cache/argus/models`.
    pub fn resolve_dir(&self) -> PathBuf {
        if let Some(dir) = &self.dir {
            return dir.clone();
        }
        if let Some(dir) = std::env::var_os("ARGUS_MODEL_DIR") {
            return PathBuf::from(dir);
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        home.join(".cache/argus/models")
    }
}

/// One camera or recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Camera id: the Kafka message key and the Redis key part. Letters, digits, `-`, `_`, `.`.
    pub id: String,
    /// `file:///path`, a plain path, `rtsp://[user:pass@]host[:port]/path`, `http(s)://...`,
    /// `v4l2:///dev/video0`, or a synthetic `test:PATTERN?width=W&height=H&fps=F`.
    pub uri: String,
    /// Frames per second handed to the operators (the rest are dropped inside GStreamer).
    #[serde(default = "default_sample_fps")]
    pub sample_fps: f64,
    /// Frames wider than this are scaled down (aspect kept) inside GStreamer.
    #[serde(default = "default_max_width")]
    pub max_width: u32,
    /// Wall-clock time of media time 0 for recorded files (RFC 3339); default: when the stream starts.
    #[serde(default)]
    pub start_time: Option<chrono::DateTime<chrono::Utc>>,
    /// RTSP transport: `tcp` (interleaved; passes NAT and firewalls) or `udp`.
    #[serde(default)]
    pub rtsp_transport: RtspTransport,
    /// Live sources: sampled frames that may wait for analysis before `drop_policy` applies.
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
    /// Live sources: which frame is dropped when analysis is behind.
    #[serde(default)]
    pub drop_policy: DropPolicy,
    #[serde(default)]
    pub reconnect: ReconnectConfig,
    /// A live stream that delivers no frame for this many seconds is treated as down; a
    /// recording that yields no first frame in this time is treated as unreadable.
    #[serde(default = "default_stall_timeout")]
    pub stall_timeout_s: f64,
    /// Frames before this video time are decoded but not analysed: `argus index` resuming
    /// an interrupted recording. Not part of the configuration file.
    #[serde(skip)]
    pub analyse_from: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RtspTransport {
    #[default]
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropPolicy {
    /// Keep the newest frames: what an operator watching live wants.
    #[default]
    DropOldest,
    /// Keep the frames already queued.
    DropNewest,
}

/// Reconnection of network sources: exponential backoff with jitter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconnectConfig {
    pub initial_delay_ms: u64,
    /// The backoff never waits longer than this.
    pub max_delay_ms: u64,
    /// Give up (state `failed`) after this many attempts in a row; unset: never give up.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        Self {
            initial_delay_ms: 500,
            max_delay_ms: 10_000,
            max_attempts: None,
        }
    }
}

fn default_queue_size() -> usize {
    4
}

fn default_stall_timeout() -> f64 {
    10.0
}

fn default_sample_fps() -> f64 {
    1.0
}

fn default_max_width() -> u32 {
    1280
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
        {
            return Err(ConfigError::Invalid(
                "moments.retention.interval_s, moments.max_results and \
                 moments.rerank_candidates must be at least 1"
                    .into(),
            ));
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
        if !self.alerts.rules.is_empty() && !self.captions.enabled {
            return Err(ConfigError::Invalid(
                "alerts.rules are checked on captioned chunks: set captions.enabled = true".into(),
            ));
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
        shown.redis.url = crate::ingest::redact_text(&shown.redis.url);
        for (key, value) in shown.kafka.properties.iter_mut() {
            if ["password", "secret", "key", "token"]
                .iter()
                .any(|word| key.contains(word))
            {
                *value = "***".into();
            }
        }
        for stream in &mut shown.streams {
            stream.uri = crate::ingest::redact_text(&stream.uri);
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

impl StreamConfig {
    /// A stream with every setting at its default.
    pub fn new(id: impl Into<String>, uri: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            uri: uri.into(),
            sample_fps: default_sample_fps(),
            max_width: default_max_width(),
            start_time: None,
            rtsp_transport: RtspTransport::default(),
            queue_size: default_queue_size(),
            drop_policy: DropPolicy::default(),
            reconnect: ReconnectConfig::default(),
            stall_timeout_s: default_stall_timeout(),
            analyse_from: None,
        }
    }

    /// Problems with this stream alone; they fail the stream, not the service.
    pub fn problems(&self) -> Option<String> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 128
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !id_ok {
            return Some(format!(
                "stream id `{}` must be 1-128 letters, digits, `-`, `_` or `.`",
                self.id
            ));
        }
        if !(self.sample_fps > 0.0 && self.sample_fps <= 120.0) {
            return Some(format!(
                "sample_fps {} must be in (0, 120]",
                self.sample_fps
            ));
        }
        if self.max_width < 32 {
            return Some(format!("max_width {} must be at least 32", self.max_width));
        }
        if self.queue_size == 0 || self.queue_size > 1024 {
            return Some(format!(
                "queue_size {} must be in 1..=1024",
                self.queue_size
            ));
        }
        if self.stall_timeout_s.is_nan() || self.stall_timeout_s < 1.0 {
            return Some(format!(
                "stall_timeout_s {} must be at least 1",
                self.stall_timeout_s
            ));
        }
        if self.reconnect.initial_delay_ms == 0
            || self.reconnect.max_delay_ms < self.reconnect.initial_delay_ms
        {
            return Some("reconnect needs 0 < initial_delay_ms <= max_delay_ms".into());
        }
        None
    }
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
    fn bad_stream_ids_are_reported() {
        let stream = StreamConfig::new("gate 3!", "file:///x");
        assert!(stream.problems().unwrap().contains("gate 3!"));
    }
}

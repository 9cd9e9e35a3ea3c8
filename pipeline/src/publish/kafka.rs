//! Kafka publishing that loses nothing: an idempotent producer (`acks=all`) keyed by camera,
//! so each camera's messages stay in order on one partition, in front of an on-disk spill queue.
//!
//! While the broker answers, messages go straight to librdkafka (bounded in memory by
//! `kafka.max_in_memory_bytes`). When a delivery fails for a reason that time can cure (the
//! broker is unreachable, the queue is full), the publisher switches to *spilling*: it purges
//! what librdkafka still holds (those messages come back as failures and are spilled too),
//! and from then on every new message is written to the spill file. A drainer sends the spill
//! in sequence order until it is empty, then the publisher goes back to direct sends. A message
//! may therefore reach the topic twice (with the same message id) but never out of order
//! within a camera, and never not at all unless the spill overflows (`kafka.spill.when_full`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer, PurgeConfig};
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::Notify;

use super::kafka_log::{BrokerLog, ProducerLogContext};
use super::spill::{SpillError, SpillQueue, SpilledMessage};
use crate::config::{KafkaConfig, SpillConfig, SpillFullPolicy};
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum KafkaPublishError {
    #[error("invalid Kafka client settings: {0}")]
    Config(KafkaError),
    #[error("could not create topic `{topic}` on {brokers}: {reason}")]
    CreateTopic {
        topic: String,
        brokers: String,
        reason: String,
    },
    #[error("the broker refused to create topic `{topic}`: {reason}")]
    TopicRejected { topic: String, reason: String },
    #[error(transparent)]
    Spill(#[from] SpillError),
    #[error("a {bytes}-byte message for `{topic}` exceeds the {limit}-byte limit (kafka.max_message_bytes); it was not sent")]
    TooLarge {
        topic: String,
        bytes: usize,
        limit: usize,
    },
    #[error("Kafka refused a message for `{topic}`: {error}")]
    Refused { topic: String, error: KafkaError },
}

/// A topic Argus writes and creates when missing.
pub struct TopicSpec<'a> {
    pub name: &'a str,
    pub partitions: i32,
    /// Keep only the newest message per key (the control topic).
    pub compacted: bool,
}

/// A message ready to send.
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub key: &'a str,
    /// JSON text.
    pub payload: String,
    pub schema_id: &'a str,
    pub message_id: String,
    /// W3C trace id (32 hex digits) shared by every message about the same frame.
    pub trace_id: String,
}

impl Outgoing<'_> {
    fn into_spilled(self) -> SpilledMessage {
        // The span id is the message id's low 64 bits: unique per message, stable across resends.
        let span_id = self
            .message_id
            .replace('-', "")
            .get(16..32)
            .unwrap_or("0000000000000001")
            .to_owned();
        SpilledMessage {
            topic: self.topic.to_owned(),
            key: self.key.to_owned(),
            headers: vec![
                ("schema".into(), self.schema_id.to_owned()),
                ("content-type".into(), "application/json".into()),
                ("message-id".into(), self.message_id),
                (
                    "traceparent".into(),
                    format!("00-{}-{span_id}-01", self.trace_id),
                ),
            ],
            payload: self.payload,
        }
    }
}

/// A fresh W3C trace id.
pub fn new_trace_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Publishes to Kafka; cheap to clone.
#[derive(Clone)]
pub struct KafkaPublisher {
    inner: Arc<Inner>,
}

struct Inner {
    /// Replaced when librdkafka reports a fatal error (an idempotent producer fenced after an
    /// outage cannot send again; librdkafka's advice is a new instance).
    producer: RwLock<LoggedProducer>,
    producer_config: ClientConfig,
    broker_log: Arc<BrokerLog>,
    /// Set by each delivery, cleared by a renewal after a timeout (see
    /// [`Inner::renew_producer_if_fatal`]).
    delivered_since_renewal: AtomicBool,
    spill: SpillQueue,
    /// True while messages go to the spill file instead of the producer. Held while sending or
    /// spilling so that the switch and the sends it orders cannot interleave.
    spilling: Mutex<bool>,
    next_sequence: AtomicU64,
    drainer: Notify,
    spill_config: SpillConfig,
    max_message_bytes: usize,
    brokers: String,
    metrics: Metrics,
}

/// The producer, with librdkafka's errors and log lines summarised (see [`super::kafka_log`]).
type LoggedProducer = FutureProducer<ProducerLogContext>;

/// Delivery errors that no retry can cure: the message is reported and not spilled.
fn is_permanent(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::TopicAuthorizationFailed
        )
    )
}

impl KafkaPublisher {
    /// Creates the producer and opens the spill file; what an earlier run left there is sent
    /// first. Must be called inside a tokio runtime (the drainer is a task).
    pub fn new(
        config: &KafkaConfig,
        spill_path: &std::path::Path,
        metrics: Metrics,
    ) -> Result<Self, KafkaPublishError> {
        let mut producer_config = client_config(config);
        producer_config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", config.message_timeout_ms.to_string())
            .set(
                "message.max.bytes",
                // librdkafka counts its framing too; our limit is on the payload.
                (config.max_message_bytes + 64 * 1024).to_string(),
            )
            .set(
                "queue.buffering.max.kbytes",
                (config.max_in_memory_bytes / 1024).max(1).to_string(),
            );
        let broker_log = Arc::new(BrokerLog::default());
        let producer: LoggedProducer = producer_config
            .create_with_context(ProducerLogContext {
                log: broker_log.clone(),
                brokers: config.brokers.clone(),
            })
            .map_err(KafkaPublishError::Config)?;
        let spill = SpillQueue::open(spill_path)?;
        let left_over = spill.len();
        let next_sequence = spill.last_sequence()?.map_or(0, |last| last + 1);
        let max_message_bytes = config.max_message_bytes;
        let publisher = Self {
            inner: Arc::new(Inner {
                producer: RwLock::new(producer),
                producer_config,
                broker_log,
                delivered_since_renewal: AtomicBool::new(false),
                spill,
                spilling: Mutex::new(left_over > 0),
                next_sequence: AtomicU64::new(next_sequence),
                drainer: Notify::new(),
                spill_config: config.spill.clone(),
                max_message_bytes,
                brokers: config.brokers.clone(),
                metrics,
            }),
        };
        publisher.inner.update_spill_gauges();
        if left_over > 0 {
            tracing::warn!(
                messages = left_over,
                file = %spill_path.display(),
                "messages from an earlier run wait in the spill file; they are sent first"
            );
        }
        tokio::spawn(drain(Arc::downgrade(&publisher.inner)));
        Ok(publisher)
    }

    /// Creates the topics Argus writes, if missing. Fails (after `timeout`) when the broker
    /// cannot be reached, with an error naming it.
    pub async fn ensure_topics(
        config: &KafkaConfig,
        topics: &[TopicSpec<'_>],
        timeout: Duration,
    ) -> Result<(), KafkaPublishError> {
        let admin: AdminClient<DefaultClientContext> = client_config(config)
            .create()
            .map_err(KafkaPublishError::Config)?;
        let new_topics: Vec<NewTopic> = topics
            .iter()
            .map(|topic| {
                let new = NewTopic::new(
                    topic.name,
                    topic.partitions,
                    TopicReplication::Fixed(config.replication_factor),
                );
                if topic.compacted {
                    new.set("cleanup.policy", "compact")
                } else {
                    new
                }
            })
            .collect();
        let options = AdminOptions::new()
            .operation_timeout(Some(timeout))
            .request_timeout(Some(timeout));
        let names: Vec<&str> = topics.iter().map(|topic| topic.name).collect();
        let results = admin
            .create_topics(&new_topics, &options)
            .await
            .map_err(|e| KafkaPublishError::CreateTopic {
                topic: names.join(", "),
                brokers: config.brokers.clone(),
                reason: e.to_string(),
            })?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                // No answer in time: the broker may come back; the spill queue waits for it.
                Err((
                    topic,
                    code @ (RDKafkaErrorCode::OperationTimedOut
                    | RDKafkaErrorCode::RequestTimedOut
                    | RDKafkaErrorCode::BrokerTransportFailure
                    | RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::NotController),
                )) => {
                    return Err(KafkaPublishError::CreateTopic {
                        topic,
                        brokers: config.brokers.clone(),
                        reason: code.to_string(),
                    })
                }
                // An answer that says no (policy, authorisation, replication factor): waiting
                // would not help.
                Err((topic, code)) => {
                    return Err(KafkaPublishError::TopicRejected {
                        topic,
                        reason: code.to_string(),
                    })
                }
            }
        }
        Ok(())
    }

    /// Hands a message over for delivery. Returns at once: the message is with librdkafka or
    /// in the spill file. Fails only for a message that can never be delivered (too large),
    /// or when the spill file cannot be written.
    pub async fn publish(&self, message: Outgoing<'_>) -> Result<(), KafkaPublishError> {
        let inner = &self.inner;
        if message.payload.len() > inner.max_message_bytes {
            inner.count_delivery(message.topic, "failed");
            inner.metrics.errors.with_label_values(&["kafka"]).inc();
            return Err(KafkaPublishError::TooLarge {
                topic: message.topic.to_owned(),
                bytes: message.payload.len(),
                limit: inner.max_message_bytes,
            });
        }
        let message = message.into_spilled();
        if inner.spill_config.when_full == SpillFullPolicy::Block {
            while inner.spill.bytes() + message.size() > inner.spill_config.max_bytes
                && !inner.spill.is_empty()
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let sequence = inner.next_sequence.fetch_add(1, Ordering::Relaxed);
        let mut spilling = inner.spilling.lock().expect("spill state lock");
        if *spilling {
            return inner.spill(sequence, &message);
        }
        match inner.send(&message) {
            Ok(delivery) => {
                drop(spilling);
                tokio::spawn(watch_delivery(
                    self.inner.clone(),
                    sequence,
                    message,
                    delivery,
                    Instant::now(),
                ));
                Ok(())
            }
            Err(error) if error.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                inner.start_spilling(&mut spilling, "the producer's memory queue is full");
                inner.spill(sequence, &message)
            }
            Err(error) => {
                inner.count_delivery(&message.topic, "failed");
                inner.metrics.errors.with_label_values(&["kafka"]).inc();
                Err(KafkaPublishError::Refused {
                    topic: message.topic,
                    error,
                })
            }
        }
    }

    /// Whether a broker answers a metadata request within `timeout` (for `/readyz`).
    pub async fn broker_reachable(&self, timeout: Duration) -> Result<(), String> {
        let producer = self.inner.producer();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, timeout)
                .map(|_| ())
                .map_err(|error| error.to_string())
        })
        .await
        .map_err(|error| error.to_string())?
    }

    /// Messages waiting in the spill file.
    pub fn spilled(&self) -> u64 {
        self.inner.spill.len()
    }

    /// Waits until the spill file is empty and librdkafka has delivered everything, or until
    /// `timeout`. Returns how many messages are still waiting (they stay on disk for the next run).
    pub async fn close(&self, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        while !self.inner.spill.is_empty() && Instant::now() < deadline {
            self.inner.drainer.notify_one();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let producer = self.inner.producer();
        let left = deadline.saturating_duration_since(Instant::now());
        let flushing = producer.clone();
        let flushed = tokio::task::spawn_blocking(move || flushing.flush(left)).await;
        let in_memory = producer.in_flight_count().max(0) as u64;
        if !matches!(flushed, Ok(Ok(()))) && in_memory > 0 {
            tracing::error!(
                messages = in_memory,
                "Kafka did not take every message before exit; they are lost"
            );
        }
        self.inner.spill.len() + in_memory
    }
}

impl Inner {
    fn producer(&self) -> LoggedProducer {
        self.producer.read().expect("producer lock").clone()
    }

    /// Replaces the producer if librdkafka declared it unusable, if the broker no longer
    /// accepts its producer id (some brokers fence it after an outage instead of letting it
    /// bump its epoch), or if its messages timed out after it had delivered some; true if it
    /// did.
    ///
    /// The last case: an idempotent producer whose messages time out must bump its epoch
    /// (KIP-360) before it sends again. tansu 0.6 with SQLite storage (the broker of `make
    /// run`) cannot take that bump: its storage task panics on the next produce and refuses
    /// every later message until the broker is restarted. A new producer starts from a new
    /// producer id instead, which every broker accepts; it costs one InitProducerId per
    /// outage (the flag below allows one renewal until the new producer has delivered).
    fn renew_producer_if_fatal(&self, error: &KafkaError) -> bool {
        let current = self.producer();
        let code = error.rdkafka_error_code();
        let fenced = matches!(
            code,
            Some(
                RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
                    | RDKafkaErrorCode::UnknownProducerId
                    | RDKafkaErrorCode::OutOfOrderSequenceNumber
            )
        );
        let timed_out_with_state = code == Some(RDKafkaErrorCode::MessageTimedOut)
            && self.delivered_since_renewal.swap(false, Ordering::AcqRel);
        let Some((code, reason)) = current.client().fatal_error().or_else(|| {
            (fenced || timed_out_with_state).then(|| (code.unwrap(), error.to_string()))
        }) else {
            return false;
        };
        match self
            .producer_config
            .create_with_context::<_, LoggedProducer>(ProducerLogContext {
                log: self.broker_log.clone(),
                brokers: self.brokers.clone(),
            }) {
            Ok(fresh) => {
                tracing::warn!(?code, %reason, "continuing with a new Kafka producer");
                let old =
                    std::mem::replace(&mut *self.producer.write().expect("producer lock"), fresh);
                // Dropping a producer purges what it holds (those deliveries fail and are
                // spilled) and waits for its thread: not on the async runtime.
                drop(current);
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => {
                        runtime.spawn_blocking(move || drop(old));
                    }
                    Err(_) => drop(old),
                }
                true
            }
            Err(error) => {
                tracing::error!(%error, "cannot create a new Kafka producer");
                false
            }
        }
    }

    fn send(&self, message: &SpilledMessage) -> Result<DeliveryFuture, KafkaError> {
        let mut headers = OwnedHeaders::new_with_capacity(message.headers.len());
        for (key, value) in &message.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_str()),
            });
        }
        let record = FutureRecord::to(&message.topic)
            .key(&message.key)
            .payload(&message.payload)
            .headers(headers);
        self.producer()
            .send_result(record)
            .map_err(|(error, _)| error)
    }

    /// Writes a message to the spill file; the caller holds the state lock.
    fn spill(&self, sequence: u64, message: &SpilledMessage) -> Result<(), KafkaPublishError> {
        let dropped = self
            .spill
            .push(sequence, message, self.spill_config.max_bytes)?;
        self.metrics.kafka_spilled.inc();
        if !dropped.is_empty() {
            self.metrics
                .kafka_spill_dropped
                .inc_by(dropped.len() as u64);
            for old in &dropped {
                let id = old
                    .headers
                    .iter()
                    .find(|(k, _)| k == "message-id")
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("?");
                tracing::error!(topic = %old.topic, key = %old.key, message_id = id,
                    "the Kafka spill file is full (kafka.spill.max_bytes): dropped its oldest message");
            }
        }
        self.update_spill_gauges();
        self.drainer.notify_one();
        Ok(())
    }

    fn start_spilling(&self, spilling: &mut bool, why: &str) {
        if *spilling {
            return;
        }
        *spilling = true;
        tracing::warn!(brokers = %self.brokers, reason = why,
            file = %self.spill.path().display(), "messages go to the spill file until Kafka is back");
        // What librdkafka still holds comes back as failed deliveries and is spilled in order.
        self.producer()
            .purge(PurgeConfig::default().queue().inflight().non_blocking());
    }

    fn update_spill_gauges(&self) {
        self.metrics
            .kafka_spill_messages
            .set(self.spill.len() as i64);
        self.metrics
            .kafka_spill_bytes
            .set(self.spill.bytes() as i64);
    }

    fn count_delivery(&self, topic: &str, result: &str) {
        self.metrics
            .kafka_deliveries
            .with_label_values(&[topic, result])
            .inc();
    }

    fn delivered(&self, topic: &str, started: Instant) {
        self.broker_log.available(&self.brokers);
        self.delivered_since_renewal.store(true, Ordering::Release);
        self.count_delivery(topic, "delivered");
        self.metrics
            .publish_latency
            .with_label_values(&["kafka"])
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .messages_published
            .with_label_values(&[topic])
            .inc();
    }

    fn refused(&self, message: &SpilledMessage, error: &KafkaError) {
        self.count_delivery(&message.topic, "failed");
        self.metrics.errors.with_label_values(&["kafka"]).inc();
        tracing::error!(topic = %message.topic, key = %message.key, %error,
            "Kafka refused a message for good; it is not retried");
    }
}

/// Follows one direct send; a curable failure moves the message (and the publisher) to the spill.
async fn watch_delivery(
    inner: Arc<Inner>,
    sequence: u64,
    message: SpilledMessage,
    delivery: DeliveryFuture,
    started: Instant,
) {
    let error = match delivery.await {
        Ok(Ok(_)) => return inner.delivered(&message.topic, started),
        Ok(Err((error, _))) => error,
        Err(_) => KafkaError::Canceled,
    };
    if is_permanent(&error) {
        return inner.refused(&message, &error);
    }
    {
        let mut spilling = inner.spilling.lock().expect("spill state lock");
        inner.start_spilling(&mut spilling, &error.to_string());
        if let Err(spill_error) = inner.spill(sequence, &message) {
            tracing::error!(%spill_error, topic = %message.topic, "a message could not be spilled and is lost");
        }
    }
    inner.renew_producer_if_fatal(&error);
}

/// Sends the spill file, oldest first, whenever it has messages; backs off while the broker
/// is away; switches the publisher back to direct sends once the file is empty.
async fn drain(inner: std::sync::Weak<Inner>) {
    const BATCH: usize = 500;
    let mut backoff = Duration::from_millis(500);
    loop {
        let Some(inner) = inner.upgrade() else { return };
        if inner.spill.is_empty() {
            let _ = tokio::time::timeout(Duration::from_secs(1), inner.drainer.notified()).await;
            continue;
        }
        let batch = match inner.spill.oldest(BATCH) {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(%error, "cannot read the Kafka spill file");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let started = Instant::now();
        let mut pending = Vec::with_capacity(batch.len());
        let (mut done, mut failure) = (Vec::new(), None);
        for (sequence, message) in batch {
            match inner.send(&message) {
                Ok(delivery) => pending.push((sequence, message, delivery)),
                Err(error) if is_permanent(&error) => {
                    inner.refused(&message, &error);
                    done.push(sequence);
                }
                Err(error) => {
                    // Usually the memory queue is full: the rest goes next round, in order.
                    if pending.is_empty() && done.is_empty() {
                        failure = Some(error);
                    }
                    break;
                }
            }
        }
        for (sequence, message, delivery) in pending {
            match delivery.await {
                Ok(Ok(_)) => {
                    inner.delivered(&message.topic, started);
                    done.push(sequence);
                }
                Ok(Err((error, _))) if is_permanent(&error) => {
                    inner.refused(&message, &error);
                    done.push(sequence);
                }
                Ok(Err((error, _))) => {
                    if failure.is_none() {
                        // Later messages of the batch must not overtake this one.
                        inner
                            .producer()
                            .purge(PurgeConfig::default().queue().non_blocking());
                    }
                    failure.get_or_insert(error);
                }
                Err(_) => {
                    failure.get_or_insert(KafkaError::Canceled);
                }
            }
        }
        if let Err(error) = inner.spill.remove(&done) {
            tracing::error!(%error, "cannot remove delivered messages from the spill file; they will be sent again");
        }
        inner.update_spill_gauges();
        if let Some(error) = failure {
            if inner.renew_producer_if_fatal(&error) {
                continue;
            }
            // Counted into the outage's periodic summary rather than logged each round.
            inner
                .broker_log
                .unavailable(&inner.brokers, &error.to_string());
            tracing::debug!(%error, waiting = inner.spill.len(), retry_in_ms = backoff.as_millis() as u64,
                "Kafka still unavailable; spilled messages wait");
            drop(inner);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        }
        backoff = Duration::from_millis(500);
        let mut spilling = inner.spilling.lock().expect("spill state lock");
        if inner.spill.is_empty() && *spilling {
            *spilling = false;
            tracing::info!(brokers = %inner.brokers, "Kafka is back: the spill file is drained");
        }
    }
}

fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.brokers);
    client.set("client.id", "argus");
    let passthrough: &BTreeMap<String, String> = &config.properties;
    for (key, value) in passthrough {
        client.set(key, value);
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(properties: &[(&str, &str)]) -> KafkaConfig {
        let mut config = crate::config::Config::load(None).unwrap().kafka;
        config.properties = properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        config
    }

    fn spill_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "argus-kafka-{name}-{}/spill.redb",
            std::process::id()
        ))
    }

    /// SASL and TLS settings pass through to librdkafka, which must be built to honour them.
    #[tokio::test]
    async fn sasl_and_tls_settings_are_accepted() {
        let config = config(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "argus"),
            ("sasl.password", "secret"),
            ("ssl.endpoint.identification.algorithm", "https"),
        ]);
        KafkaPublisher::new(&config, &spill_path("sasl"), Metrics::new())
            .map(|_| ())
            .unwrap();
    }

    #[tokio::test]
    async fn unknown_librdkafka_settings_are_a_clear_error() {
        let config = config(&[("no.such.setting", "1")]);
        let error = KafkaPublisher::new(&config, &spill_path("bad"), Metrics::new())
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("no.such.setting"), "{error}");
    }

    #[test]
    fn headers_carry_the_schema_the_message_id_and_a_trace() {
        let message = Outgoing {
            topic: "t",
            key: "gate3",
            payload: "{}".into(),
            schema_id: "argus.frame-result.v1",
            message_id: "0192f1a2-b3c4-7d5e-8f60-718293a4b5c6".into(),
            trace_id: new_trace_id(),
        }
        .into_spilled();
        let header = |name: &str| {
            message
                .headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(header("schema"), "argus.frame-result.v1");
        assert_eq!(header("message-id"), "0192f1a2-b3c4-7d5e-8f60-718293a4b5c6");
        let traceparent = header("traceparent");
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(parts.len(), 4, "{traceparent}");
        assert_eq!(
            (parts[0], parts[1].len(), parts[2], parts[3]),
            ("00", 32, "8f60718293a4b5c6", "01")
        );
    }
}

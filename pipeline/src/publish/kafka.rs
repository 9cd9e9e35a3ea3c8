//! Kafka publishing: an idempotent producer (`acks=all`), keyed by camera so each camera's
//! messages stay in order on one partition.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;
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
}

/// Publishes to Kafka; cheap to clone.
#[derive(Clone)]
pub struct KafkaPublisher {
    producer: FutureProducer,
    brokers: String,
    metrics: Metrics,
}

/// A message ready to send.
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub key: &'a str,
    pub payload: Vec<u8>,
    pub schema_id: &'a str,
    pub message_id: String,
}

impl KafkaPublisher {
    pub fn new(config: &KafkaConfig, metrics: Metrics) -> Result<Self, KafkaPublishError> {
        let producer: FutureProducer = client_config(config)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", config.message_timeout_ms.to_string())
            .create()
            .map_err(KafkaPublishError::Config)?;
        Ok(Self {
            producer,
            brokers: config.brokers.clone(),
            metrics,
        })
    }

    /// Creates the topics Argus writes, if missing. Fails (after `timeout`) when the broker
    /// cannot be reached, with an error naming it.
    pub async fn ensure_topics(
        config: &KafkaConfig,
        topics: &[&str],
        timeout: Duration,
    ) -> Result<(), KafkaPublishError> {
        let admin: AdminClient<DefaultClientContext> = client_config(config)
            .create()
            .map_err(KafkaPublishError::Config)?;
        let new_topics: Vec<NewTopic> = topics
            .iter()
            .map(|topic| {
                NewTopic::new(
                    topic,
                    config.partitions,
                    TopicReplication::Fixed(config.replication_factor),
                )
            })
            .collect();
        let options = AdminOptions::new()
            .operation_timeout(Some(timeout))
            .request_timeout(Some(timeout));
        let results = admin
            .create_topics(&new_topics, &options)
            .await
            .map_err(|e| KafkaPublishError::CreateTopic {
                topic: topics.join(", "),
                brokers: config.brokers.clone(),
                reason: e.to_string(),
            })?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(KafkaPublishError::CreateTopic {
                        topic,
                        brokers: config.brokers.clone(),
                        reason: code.to_string(),
                    })
                }
            }
        }
        Ok(())
    }

    /// Queues a message and records its delivery in the background. Returns at once unless
    /// librdkafka's queue is full, in which case it waits for room (backpressure, not loss).
    pub async fn publish(&self, message: Outgoing<'_>) -> Result<(), KafkaError> {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "schema",
                value: Some(message.schema_id),
            })
            .insert(Header {
                key: "content-type",
                value: Some("application/json"),
            })
            .insert(Header {
                key: "message-id",
                value: Some(message.message_id.as_str()),
            });
        let mut record = FutureRecord::to(message.topic)
            .key(message.key)
            .payload(&message.payload)
            .headers(headers);
        let started = Instant::now();
        let delivery = loop {
            match self.producer.send_result(record) {
                Ok(delivery) => break delivery,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err((error, _)) => {
                    self.metrics.errors.with_label_values(&["kafka"]).inc();
                    return Err(error);
                }
            }
        };
        let metrics = self.metrics.clone();
        let topic = message.topic.to_owned();
        let brokers = self.brokers.clone();
        tokio::spawn(async move {
            match delivery.await {
                Ok(Ok(_)) => {
                    metrics
                        .publish_latency
                        .with_label_values(&["kafka"])
                        .observe(started.elapsed().as_secs_f64());
                    metrics
                        .messages_published
                        .with_label_values(&[&topic])
                        .inc();
                }
                Ok(Err((error, _))) => {
                    metrics.errors.with_label_values(&["kafka"]).inc();
                    tracing::error!(%topic, %brokers, %error, "Kafka did not accept a message");
                }
                Err(_) => tracing::error!(%topic, "Kafka producer closed before delivery"),
            }
        });
        Ok(())
    }

    /// Waits until every queued message is delivered or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
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

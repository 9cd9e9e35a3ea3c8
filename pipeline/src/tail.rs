//! `argus tail`: follow a topic from the beginning (or the end) and print one JSON message
//! per line, optionally only one camera's.

use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::config::KafkaConfig;

pub struct TailOptions {
    pub topic: String,
    pub camera: Option<String>,
    pub from_end: bool,
    /// Stop after this many messages.
    pub limit: Option<u64>,
}

pub async fn tail(config: &KafkaConfig, options: TailOptions) -> anyhow::Result<()> {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", "argus-tail")
        .set("enable.auto.commit", "false");
    for (key, value) in &config.properties {
        client.set(key, value);
    }
    let consumer: StreamConsumer = client.create().context("creating the Kafka consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(&options.topic), Duration::from_secs(10))
        .with_context(|| format!("reading topic `{}` from {}", options.topic, config.brokers))?;
    let partitions = metadata
        .topics()
        .first()
        .map(|topic| topic.partitions().len())
        .filter(|count| *count > 0)
        .with_context(|| {
            format!(
                "topic `{}` does not exist on {}",
                options.topic, config.brokers
            )
        })?;
    // Assigned, not subscribed: a viewer must not take partitions away from real consumers.
    let mut assignment = TopicPartitionList::new();
    let start = if options.from_end {
        Offset::End
    } else {
        Offset::Beginning
    };
    for partition in 0..partitions as i32 {
        assignment.add_partition_offset(&options.topic, partition, start)?;
    }
    consumer.assign(&assignment)?;

    let mut printed = 0u64;
    let mut messages = consumer.stream();
    while let Some(message) = messages.next().await {
        let message = message.context("reading from Kafka")?;
        let key = message
            .key()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        if options
            .camera
            .as_deref()
            .is_some_and(|camera| camera != key)
        {
            continue;
        }
        println!(
            "{}",
            String::from_utf8_lossy(message.payload().unwrap_or_default())
        );
        printed += 1;
        if options.limit.is_some_and(|limit| printed >= limit) {
            break;
        }
    }
    Ok(())
}

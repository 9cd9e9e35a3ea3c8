//! `argus tail`: follow a topic from the beginning (or the end) and print its messages, one
//! JSON document per line or pretty, filtered by camera, text or field value.

use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::config::KafkaConfig;

pub struct TailOptions {
    pub topic: String,
    pub camera: Option<String>,
    pub from_end: bool,
    /// Stop after this many messages.
    pub limit: Option<u64>,
    /// Only messages whose JSON contains this text.
    pub grep: Option<String>,
    /// Only messages where every `path=value` holds (`path` is dotted: `frame.clock=rtcp`).
    pub conditions: Vec<(String, String)>,
    /// Indented JSON under a header line (partition, offset, key, schema) instead of JSON lines.
    pub pretty: bool,
}

/// Parses `--where path=value`.
pub fn parse_condition(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(path, _)| !path.is_empty())
        .map(|(path, value)| (path.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("expected PATH=VALUE (e.g. event.kind=gap), got `{text}`"))
}

/// Whether `message` satisfies every condition: the value at the dotted path, as text
/// (strings without quotes), equals the wanted value.
fn matches(message: &serde_json::Value, conditions: &[(String, String)]) -> bool {
    conditions.iter().all(|(path, wanted)| {
        let pointer = format!("/{}", path.replace('.', "/"));
        match message.pointer(&pointer) {
            Some(serde_json::Value::String(text)) => text == wanted,
            Some(other) => &other.to_string() == wanted,
            None => false,
        }
    })
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
        let payload = String::from_utf8_lossy(message.payload().unwrap_or_default());
        if options
            .grep
            .as_deref()
            .is_some_and(|text| !payload.contains(text))
        {
            continue;
        }
        let json: Option<serde_json::Value> = serde_json::from_str(&payload).ok();
        if !options.conditions.is_empty()
            && !json
                .as_ref()
                .is_some_and(|json| matches(json, &options.conditions))
        {
            continue;
        }
        if options.pretty {
            let schema = message
                .headers()
                .and_then(|headers| headers.iter().find(|h| h.key == "schema"))
                .and_then(|h| h.value)
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            println!(
                "── {}[{}]@{} key={key} schema={schema}",
                message.topic(),
                message.partition(),
                message.offset()
            );
            match &json {
                Some(json) => println!("{}", serde_json::to_string_pretty(json)?),
                None => println!("{payload}"),
            }
        } else {
            println!("{payload}");
        }
        printed += 1;
        if options.limit.is_some_and(|limit| printed >= limit) {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_follow_dotted_paths() {
        let message =
            serde_json::json!({"camera_id": "gate3", "frame": {"clock": "rtcp", "width": 640}});
        let condition = |text| parse_condition(text).unwrap();
        assert!(matches(&message, &[condition("frame.clock=rtcp")]));
        assert!(matches(
            &message,
            &[condition("frame.width=640"), condition("camera_id=gate3")]
        ));
        assert!(!matches(&message, &[condition("frame.clock=media")]));
        assert!(!matches(&message, &[condition("frame.missing=x")]));
        assert!(parse_condition("novalue").is_err());
    }
}

//! Alerts out: the alerts topics, the camera's newest alerts in Redis, and
//! `argus_alerts_fired_total`. Shared by the sinks whose rules fire (captions on chunks,
//! object alerts on frames), so an alert looks and counts the same whichever fired it.
//!
//! Object alerts needed a new alert kind, which version 1's consumers were never told to
//! expect: they come in `argus.alert.v2` only. Chunk alerts go out in both versions while
//! version 1 is deprecated (`schemas/README.md`), so its consumers miss nothing they knew.

use crate::captions::alerts::{alerts_key, KEPT_ALERTS};
use crate::config::TopicsConfig;
use crate::messages::Alert;
use crate::metrics::Metrics;
use crate::publish::{new_trace_id, KafkaPublisher, Outgoing, RedisState};

/// Called with each alert published.
pub type AlertHook = std::sync::Arc<dyn Fn(&Alert) + Send + Sync>;

/// Cheap to clone.
#[derive(Clone)]
pub struct AlertPublisher {
    kafka: KafkaPublisher,
    /// `kafka.topics.alerts` (version 1) and `kafka.topics.alerts_v2`.
    v1_topic: String,
    v2_topic: String,
    redis: RedisState,
    metrics: Metrics,
    /// Told each alert's camera and span (recording keeps that video in `events` mode).
    pub on_publish: Option<AlertHook>,
}

impl AlertPublisher {
    pub fn new(
        kafka: KafkaPublisher,
        topics: &TopicsConfig,
        redis: RedisState,
        metrics: Metrics,
    ) -> Self {
        Self {
            kafka,
            v1_topic: topics.alerts.clone(),
            v2_topic: topics.alerts_v2.clone(),
            redis,
            metrics,
            on_publish: None,
        }
    }

    /// To the alerts topics, and the camera's newest alerts in Redis.
    pub async fn publish(&self, alert: &Alert) {
        let json = serde_json::to_string(alert).expect("alerts serialise");
        let camera = alert.camera_id.as_str();
        let trace_id = new_trace_id();
        let mut versions = vec![(&self.v2_topic, Alert::SCHEMA_ID, json.clone())];
        if alert.fits_v1() {
            let v1 = Alert {
                schema_version: 1,
                ..alert.clone()
            };
            let v1_json = serde_json::to_string(&v1).expect("alerts serialise");
            versions.push((&self.v1_topic, Alert::V1_SCHEMA_ID, v1_json));
        }
        for (topic, schema_id, payload) in versions {
            let outgoing = Outgoing {
                topic,
                key: camera,
                payload,
                schema_id,
                message_id: alert.message_id.to_string(),
                trace_id: trace_id.clone(),
            };
            if let Err(error) = self.kafka.publish(outgoing).await {
                tracing::error!(camera, topic, %error, "could not queue an alert for Kafka");
            }
        }
        let key = alerts_key(self.redis.key_prefix(), camera);
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .lpush(&key, &json)
            .ignore()
            .ltrim(&key, 0, KEPT_ALERTS - 1)
            .ignore();
        self.redis.write_pipeline(pipeline).await;
        self.metrics
            .alerts_fired
            .with_label_values(&[camera, alert.rule_id.as_str()])
            .inc();
        tracing::warn!(camera, rule = %alert.rule_id, kind = %alert.kind, start = %alert.start, "alert");
        if let Some(hook) = &self.on_publish {
            hook(alert);
        }
    }
}

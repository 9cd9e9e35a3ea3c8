//! Alerts out: the alerts topic, the camera's newest alerts in Redis, and
//! `argus_alerts_fired_total`. Shared by the sinks whose rules fire (captions on chunks,
//! object alerts on frames), so an alert looks and counts the same whichever fired it.

use crate::captions::alerts::{alerts_key, KEPT_ALERTS};
use crate::messages::Alert;
use crate::metrics::Metrics;
use crate::publish::{new_trace_id, KafkaPublisher, Outgoing, RedisState};

/// Cheap to clone.
#[derive(Clone)]
pub struct AlertPublisher {
    kafka: KafkaPublisher,
    /// `kafka.topics.alerts`.
    topic: String,
    redis: RedisState,
    metrics: Metrics,
}

impl AlertPublisher {
    pub fn new(kafka: KafkaPublisher, topic: String, redis: RedisState, metrics: Metrics) -> Self {
        Self {
            kafka,
            topic,
            redis,
            metrics,
        }
    }

    /// To the alerts topic, and the camera's newest alerts in Redis.
    pub async fn publish(&self, alert: &Alert) {
        let json = serde_json::to_string(alert).expect("alerts serialise");
        let camera = alert.camera_id.as_str();
        let outgoing = Outgoing {
            topic: &self.topic,
            key: camera,
            payload: json.clone(),
            schema_id: Alert::SCHEMA_ID,
            message_id: alert.message_id.to_string(),
            trace_id: new_trace_id(),
        };
        if let Err(error) = self.kafka.publish(outgoing).await {
            tracing::error!(camera, %error, "could not queue an alert for Kafka");
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
    }
}

//! Alerts out: the alerts topics, the camera's newest alerts in Redis, and
//! `argus_alerts_fired_total`. Shared by the sinks whose rules fire (captions on chunks,
//! object alerts on frames), so an alert looks and counts the same whichever fired it; and
//! the acknowledgements operators give them (`kafka.topics.alert_acks`).
//!
//! Object alerts needed a new alert kind, which version 1's consumers were never told to
//! expect: they come in `argus.alert.v2` only. Chunk alerts go out in both versions while
//! version 1 is deprecated (`schemas/README.md`), so its consumers miss nothing they knew;
//! version 1 gets them without the fields version 2 added since ([`Alert::as_v1`]).
//!
//! In Redis, next to each camera's list of newest alerts, a hash maps every listed alert's
//! id to its camera and rule (so an acknowledgement finds it by id alone), and a hash per camera holds
//! the acknowledgements. One script pushes an alert and trims the list, dropping the ids and
//! acknowledgements of the alerts trimmed: the three stay in step, and stay bounded.

use crate::captions::alerts::{alert_acks_key, alert_ids_key, alerts_key, KEPT_ALERTS};
use crate::config::TopicsConfig;
use crate::messages::{Alert, AlertAck};
use crate::metrics::Metrics;
use crate::publish::{new_trace_id, KafkaPublishError, KafkaPublisher, Outgoing, RedisState};

/// KEYS: the camera's alert list, the id → camera hash, the camera's acknowledgements.
/// ARGV: the alert's JSON, its id, its camera and rule (`camera\nrule`), how many alerts a
/// camera keeps.
const PUSH_ALERT: &str = r#"
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
while redis.call('LLEN', KEYS[1]) > tonumber(ARGV[4]) do
  local ok, old = pcall(cjson.decode, redis.call('RPOP', KEYS[1]))
  if ok and type(old) == 'table' and old.message_id then
    redis.call('HDEL', KEYS[2], old.message_id)
    redis.call('HDEL', KEYS[3], old.message_id)
  end
end
return 1
"#;

/// Called with each alert published.
pub type AlertHook = std::sync::Arc<dyn Fn(&Alert) + Send + Sync>;

/// Cheap to clone.
#[derive(Clone)]
pub struct AlertPublisher {
    kafka: KafkaPublisher,
    /// `kafka.topics.alerts` (version 1) and `kafka.topics.alerts_v2`.
    v1_topic: String,
    v2_topic: String,
    acks_topic: String,
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
            acks_topic: topics.alert_acks.clone(),
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
            let v1_json = serde_json::to_string(&alert.as_v1()).expect("alerts serialise");
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
        let prefix = self.redis.key_prefix();
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("EVAL")
            .arg(PUSH_ALERT)
            .arg(3)
            .arg(alerts_key(prefix, camera))
            .arg(alert_ids_key(prefix))
            .arg(alert_acks_key(prefix, camera))
            .arg(&json)
            .arg(alert.message_id.to_string())
            .arg(format!("{camera}\n{}", alert.rule_id))
            .arg(KEPT_ALERTS)
            .ignore();
        self.redis.write_pipeline(pipeline).await;
        self.metrics
            .alerts_fired
            .with_label_values(&[camera, alert.rule_id.as_str()])
            .inc();
        tracing::warn!(camera, rule = %alert.rule_id, kind = %alert.kind, start = %alert.start,
            reason = alert.reason.as_deref().unwrap_or_default(), "alert");
        if let Some(hook) = &self.on_publish {
            hook(alert);
        }
    }

    /// An acknowledgement to `kafka.topics.alert_acks` (it is stored by whoever took it).
    pub async fn publish_ack(&self, ack: &AlertAck) -> Result<(), KafkaPublishError> {
        let outgoing = Outgoing {
            topic: &self.acks_topic,
            key: &ack.camera_id,
            payload: serde_json::to_string(ack).expect("acknowledgements serialise"),
            schema_id: AlertAck::SCHEMA_ID,
            message_id: ack.message_id.to_string(),
            trace_id: new_trace_id(),
        };
        self.kafka.publish(outgoing).await
    }

    /// Counts a repeat not published because its rule is in its cooldown.
    pub fn suppressed(&self, camera: &str, rule: &str) {
        self.metrics
            .alerts_suppressed
            .with_label_values(&[camera, rule])
            .inc();
    }
}

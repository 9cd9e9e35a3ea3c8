//! Alert rules in force and the alerts they fired, as the API serves them.
//!
//! Rules come from the configuration (`[[alerts.rules]]`) and from the API; those added
//! through the API are kept in Redis, so they survive a restart. The captioning model checks
//! chunk rules on every chunk ([`crate::captions::alerts`]) and `sinks::captions` publishes
//! what fires; `sinks::object_alerts` checks object rules on every frame the objects stage
//! saw. A rule that nothing in this process checks (see [`RuleScope`]) is refused.
//!
//! An operator acknowledges an alert by its `message_id`: the acknowledgement is stored in
//! Redis next to the camera's alerts (listed alerts carry it as `acknowledged`) and published
//! to `kafka.topics.alert_acks`. The first acknowledgement stands: a repeated one changes
//! nothing and is answered with the stored one.

use std::collections::HashMap;

use chrono::Utc;
use uuid::Uuid;

use crate::captions::alerts::{
    alert_acks_key, alert_ids_key, alerts_key, AlertRule, AlertRules, RuleScope,
};
use crate::messages::{Acknowledged, AlertAck};
use crate::publish::{AlertPublisher, RedisState};

/// Longest `by` and `note` of an acknowledgement (characters).
pub const MAX_ACK_BY: usize = 200;
pub const MAX_ACK_NOTE: usize = 2000;

/// Why a rule was not added.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("invalid alert rule: {0}")]
    Invalid(String),
    #[error("{0}")]
    Exists(String),
}

/// Why an acknowledgement was not taken.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error("no alert `{0}` (alerts are kept while they are among their camera's newest)")]
    Unknown(Uuid),
    #[error("invalid acknowledgement: {0}")]
    Invalid(String),
    #[error("Redis is not reachable: {0}")]
    Redis(#[from] redis::RedisError),
}

/// An acknowledgement taken.
#[derive(Debug)]
pub struct Acked {
    pub acknowledged: Acknowledged,
    /// False when the alert had been acknowledged before (that acknowledgement stands).
    pub new: bool,
}

/// The rules and the alert history; cheap to clone.
#[derive(Clone)]
pub struct AlertBook {
    rules: AlertRules,
    scope: RuleScope,
    redis: RedisState,
    /// Publishes acknowledgements.
    alerts: AlertPublisher,
    /// Redis hash of the rules added through the API (id → JSON).
    rules_key: String,
}

impl AlertBook {
    /// The configured rules (an invalid one, or one outside `scope`, is an error) and those
    /// stored through the API (skipped with a warning when they are).
    pub async fn load(
        configured: &[AlertRule],
        scope: RuleScope,
        redis: RedisState,
        alerts: AlertPublisher,
    ) -> Result<Self, String> {
        let rules = AlertRules::default();
        for rule in configured {
            scope.admits(rule)?;
            rules.insert(rule.clone().compile()?, true)?;
        }
        let rules_key = format!("{}:alerts:rules", redis.key_prefix());
        load_stored_rules(&redis, &rules_key, &scope, &rules).await;
        Ok(Self {
            rules,
            scope,
            redis,
            alerts,
            rules_key,
        })
    }

    /// The shared set the captioning model and the object alerts sink check.
    pub fn rules(&self) -> &AlertRules {
        &self.rules
    }

    /// The rules in force.
    pub fn alert_rules(&self) -> Vec<AlertRule> {
        self.rules.list()
    }

    /// Adds a rule (kept in Redis so it survives a restart).
    pub async fn add_alert_rule(&self, rule: AlertRule) -> Result<(), RuleError> {
        let json = serde_json::to_string(&rule).expect("rules serialise");
        let compiled = rule.compile().map_err(RuleError::Invalid)?;
        self.scope
            .admits(&compiled.rule)
            .map_err(RuleError::Invalid)?;
        let id = compiled.rule.id.clone();
        self.rules
            .insert(compiled, false)
            .map_err(RuleError::Exists)?;
        let mut pipeline = redis::pipe();
        pipeline.hset(&self.rules_key, &id, json);
        self.redis.write_pipeline(pipeline).await;
        tracing::info!(rule = %id, "alert rule added");
        Ok(())
    }

    /// Removes a rule; false when there is none with that id.
    pub async fn remove_alert_rule(&self, id: &str) -> bool {
        if !self.rules.remove(id) {
            return false;
        }
        let mut pipeline = redis::pipe();
        pipeline.hdel(&self.rules_key, id);
        self.redis.write_pipeline(pipeline).await;
        tracing::info!(rule = %id, "alert rule removed");
        true
    }

    /// The camera's newest alerts, newest first, each with its `acknowledged` (null when
    /// it was not).
    pub async fn recent_alerts(
        &self,
        camera: &str,
        limit: usize,
    ) -> redis::RedisResult<Vec<serde_json::Value>> {
        let prefix = self.redis.key_prefix();
        let mut connection = self.redis.connection().await?;
        let (stored, acks): (Vec<String>, HashMap<String, String>) = redis::pipe()
            .lrange(alerts_key(prefix, camera), 0, limit.max(1) as isize - 1)
            .hgetall(alert_acks_key(prefix, camera))
            .query_async(&mut connection)
            .await?;
        Ok(stored
            .iter()
            .filter_map(|json| serde_json::from_str::<serde_json::Value>(json).ok())
            .map(|mut alert| {
                let ack = (alert["message_id"].as_str())
                    .and_then(|id| acks.get(id))
                    .and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok());
                alert["acknowledged"] = ack.unwrap_or(serde_json::Value::Null);
                alert
            })
            .collect())
    }

    /// Acknowledges the alert `id`: stored (the first acknowledgement stands) and, when new,
    /// published.
    pub async fn acknowledge(
        &self,
        id: Uuid,
        by: Option<String>,
        note: Option<String>,
    ) -> Result<Acked, AckError> {
        let by = by.map(|b| b.trim().to_owned()).filter(|b| !b.is_empty());
        let note = note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
        if by.as_ref().is_some_and(|b| b.chars().count() > MAX_ACK_BY) {
            return Err(AckError::Invalid(format!(
                "`by` is longer than {MAX_ACK_BY} characters"
            )));
        }
        if note
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_ACK_NOTE)
        {
            return Err(AckError::Invalid(format!(
                "`note` is longer than {MAX_ACK_NOTE} characters"
            )));
        }
        let prefix = self.redis.key_prefix();
        let mut connection = self.redis.connection().await?;
        let listed: Option<String> =
            redis::AsyncCommands::hget(&mut connection, alert_ids_key(prefix), id.to_string())
                .await?;
        let (camera, rule_id) = listed
            .as_deref()
            .and_then(|listed| listed.split_once('\n'))
            .map(|(camera, rule)| (camera.to_owned(), rule.to_owned()))
            .ok_or(AckError::Unknown(id))?;
        let acknowledged = Acknowledged {
            at: Utc::now(),
            by,
            note,
        };
        let json = serde_json::to_string(&acknowledged).expect("acknowledgements serialise");
        let acks_key = alert_acks_key(prefix, &camera);
        let (new, stored): (bool, String) = redis::pipe()
            .atomic()
            .hset_nx(&acks_key, id.to_string(), &json)
            .hget(&acks_key, id.to_string())
            .query_async(&mut connection)
            .await?;
        if !new {
            let acknowledged = serde_json::from_str(&stored).unwrap_or(acknowledged);
            return Ok(Acked {
                acknowledged,
                new: false,
            });
        }
        let ack = AlertAck {
            schema_version: AlertAck::SCHEMA_VERSION,
            message_id: Uuid::now_v7(),
            alert_id: id,
            camera_id: camera,
            rule_id,
            acknowledged: acknowledged.clone(),
            produced_at: Utc::now(),
        };
        if let Err(error) = self.alerts.publish_ack(&ack).await {
            tracing::error!(alert = %id, %error, "could not queue an acknowledgement for Kafka");
        }
        tracing::info!(alert = %id, camera = %ack.camera_id, by = ack.acknowledged.by.as_deref().unwrap_or_default(), "alert acknowledged");
        Ok(Acked {
            acknowledged,
            new: true,
        })
    }
}

/// Adds the rules stored through the API to `rules` (configured ones win on the same id).
async fn load_stored_rules(redis: &RedisState, key: &str, scope: &RuleScope, rules: &AlertRules) {
    let stored: redis::RedisResult<HashMap<String, String>> = async {
        let mut connection = redis.connection().await?;
        redis::AsyncCommands::hgetall(&mut connection, key).await
    }
    .await;
    match stored {
        Ok(stored) => {
            for (id, json) in stored {
                match serde_json::from_str::<AlertRule>(&json)
                    .map_err(|e| e.to_string())
                    .and_then(AlertRule::compile)
                    .and_then(|rule| scope.admits(&rule.rule).map(|()| rule))
                {
                    Ok(rule) => {
                        let _ = rules.insert(rule, false);
                    }
                    Err(error) => tracing::warn!(rule = %id, %error, "stored alert rule skipped"),
                }
            }
        }
        Err(error) => {
            tracing::error!(%error, "alert rules added through the API could not be loaded from Redis")
        }
    }
}

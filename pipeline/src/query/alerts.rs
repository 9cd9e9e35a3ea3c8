//! Alert rules in force and the alerts they fired, as the API serves them.
//!
//! Rules come from the configuration (`[[alerts.rules]]`) and from the API; those added
//! through the API are kept in Redis, so they survive a restart. The captioning model checks
//! chunk rules on every chunk ([`crate::captions::alerts`]) and `sinks::captions` publishes
//! what fires; `sinks::object_alerts` checks object rules on every frame the objects stage
//! saw. A rule that nothing in this process checks (see [`RuleScope`]) is refused.

use std::collections::HashMap;

use crate::captions::alerts::{alerts_key, AlertRule, AlertRules, RuleScope};
use crate::publish::RedisState;

/// Why a rule was not added.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("invalid alert rule: {0}")]
    Invalid(String),
    #[error("{0}")]
    Exists(String),
}

/// The rules and the alert history; cheap to clone.
#[derive(Clone)]
pub struct AlertBook {
    rules: AlertRules,
    scope: RuleScope,
    redis: RedisState,
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

    /// The camera's newest alerts, newest first.
    pub async fn recent_alerts(
        &self,
        camera: &str,
        limit: usize,
    ) -> redis::RedisResult<Vec<serde_json::Value>> {
        let mut connection = self.redis.connection().await?;
        let stored: Vec<String> = redis::AsyncCommands::lrange(
            &mut connection,
            alerts_key(self.redis.key_prefix(), camera),
            0,
            limit.max(1) as isize - 1,
        )
        .await?;
        Ok(stored
            .iter()
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect())
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

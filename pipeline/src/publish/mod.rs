//! Publishing: Kafka topics for downstream services (with the spill file that keeps messages
//! through a broker outage), Redis for live state; alerts, which more than one sink fires.

pub mod alerts;
pub mod kafka;
pub mod kafka_log;
pub mod redis;
pub mod spill;

pub use self::alerts::AlertPublisher;
pub use self::kafka::{new_trace_id, KafkaPublishError, KafkaPublisher, Outgoing, TopicSpec};
pub use self::redis::RedisState;

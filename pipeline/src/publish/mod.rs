//! Publishing: Kafka topics for downstream services, Redis for live state.

pub mod kafka;
pub mod kafka_log;
pub mod messages;
pub mod redis;
pub mod spill;

pub use self::kafka::{new_trace_id, KafkaPublishError, KafkaPublisher, Outgoing, TopicSpec};
pub use self::messages::{FrameInfo, FrameResult, StreamEvent, StreamEventKind};
pub use self::redis::RedisState;

//! Publishing: Kafka topics for downstream services, Redis for live state.

pub mod kafka;
pub mod messages;
pub mod redis;

pub use self::kafka::{KafkaPublishError, KafkaPublisher, Outgoing};
pub use self::messages::{FrameInfo, FrameResult, StreamEvent, StreamEventKind};
pub use self::redis::RedisState;

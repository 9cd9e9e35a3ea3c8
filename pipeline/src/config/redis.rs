//! `[redis]`: the connection to the durable store and the prefix of its keys.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
    pub url: String,
    pub key_prefix: String,
    /// Writes kept for retry while Redis is unreachable; the oldest go first past this.
    pub retry_buffer: usize,
}

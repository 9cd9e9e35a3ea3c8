//! The source's own settings, as plain types: the configuration file names them, but the
//! source does not read the configuration.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RtspTransport {
    #[default]
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropPolicy {
    /// Keep the newest frames: what an operator watching live wants.
    #[default]
    DropOldest,
    /// Keep the frames already queued.
    DropNewest,
}

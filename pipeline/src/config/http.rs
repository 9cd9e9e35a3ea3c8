//! `[http]`: the API's address, access tokens and limits.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Bearer token for calls that change something; unset: such calls are refused.
    #[serde(default)]
    pub api_token: Option<String>,
    /// Bearer token for reading `/api/…`; unset: reading is open. The API token reads too.
    #[serde(default)]
    pub read_token: Option<String>,
    /// Browser origins allowed to call the API (CORS), e.g. `https://ops.example.com`.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Requests to `/api/…` per second per client address (bursts of twice that).
    pub rate_limit_per_second: u32,
}

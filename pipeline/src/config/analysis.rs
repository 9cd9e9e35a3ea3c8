//! `[analysis]`: batching of frames across streams for the operators.

use serde::{Deserialize, Serialize};

/// Batching of frames across streams for the operators.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisConfig {
    /// At most this many frames (from any streams) per model call.
    pub max_batch: usize,
    /// How long the first frame of a batch may wait for others (ms).
    pub max_wait_ms: u64,
}

/// The `[analysis]` section of the embedded default.toml.
impl Default for AnalysisConfig {
    fn default() -> Self {
        super::EMBEDDED.analysis.clone()
    }
}

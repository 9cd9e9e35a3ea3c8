//! `[cluster]`: scale-out over a Kafka consumer group.

use serde::{Deserialize, Serialize};

/// Scale-out: workers share cameras through a Kafka consumer group.
///
/// Camera definitions live on a compacted control topic (key = camera id). Each worker joins
/// the group `group_id`; the group's partition assignment decides which worker runs which
/// cameras, so a dead worker's cameras move to the others within the session timeout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub enabled: bool,
    pub group_id: String,
    pub control_topic: String,
    /// Partitions of the control topic: the most workers that can share the cameras.
    pub control_partitions: i32,
    /// A worker silent for this long is declared dead and its cameras move (ms); its
    /// moment index stops being asked after the same time.
    pub session_timeout_ms: u32,
    /// The address other workers reach this worker's API at, for moment queries that cover
    /// every worker's cameras. Empty: `http://{http.listen}`, with the host name in place
    /// of an unspecified address (0.0.0.0). In Kubernetes, the pod's IP (deployment.yaml).
    pub advertise_url: String,
    /// How long a moment query waits for another worker's answer before answering without
    /// it (and saying so: `partial`).
    pub peer_timeout_ms: u64,
}

/// The `[cluster]` section of the embedded default.toml.
impl Default for ClusterConfig {
    fn default() -> Self {
        super::EMBEDDED.cluster.clone()
    }
}

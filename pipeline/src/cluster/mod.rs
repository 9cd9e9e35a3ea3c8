//! Scale-out on Kafka itself: camera definitions on a compacted control topic, workers in one
//! consumer group, and the group's partition assignment deciding which worker runs which cameras.
//!
//! There is no membership protocol of our own. A camera is a record on the control topic
//! (key = camera id, value = its `[[streams]]` entry as JSON, a tombstone to remove it). Each
//! worker subscribes to the topic in group `cluster.group_id` with the round-robin assignor and
//! never commits offsets, so on every assignment it reads its partitions from the beginning and
//! runs exactly the cameras they hold. When a worker dies, the broker notices within the session
//! timeout, the group rebalances, and the survivors read the orphaned partitions.
//!
//! New cameras go to the least-loaded partition (lowest index on ties), so cameras spread over
//! partitions and, through the assignor, over workers. A camera keeps its partition when changed.

pub mod peers;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use crate::config::{ClusterConfig, KafkaConfig, StreamConfig};
use crate::metrics::Metrics;
use crate::stream::StreamManager;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid Kafka client settings for the control topic: {0}")]
    Client(KafkaError),
    #[error("the control topic `{topic}` cannot be read on {brokers}: {reason}")]
    Read {
        topic: String,
        brokers: String,
        reason: String,
    },
    #[error("the control topic `{topic}` did not take the change: {reason}")]
    Write { topic: String, reason: String },
    #[error("stream `{0}` already exists")]
    Exists(String),
    #[error("no stream with id `{0}`")]
    NotFound(String),
}

/// Where a camera lives on the control topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub partition: i32,
    pub config: StreamConfig,
}

/// Reads and writes camera definitions on the control topic; cheap to clone.
#[derive(Clone)]
pub struct CameraDirectory {
    kafka: KafkaConfig,
    cluster: ClusterConfig,
    producer: FutureProducer,
}

impl CameraDirectory {
    pub fn new(kafka: &KafkaConfig, cluster: &ClusterConfig) -> Result<Self, ClusterError> {
        let producer = client_config(kafka)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "10000")
            .create()
            .map_err(ClusterError::Client)?;
        Ok(Self {
            kafka: kafka.clone(),
            cluster: cluster.clone(),
            producer,
        })
    }

    /// Every camera on the control topic, read from the beginning of every partition.
    pub async fn cameras(&self) -> Result<BTreeMap<String, Placement>, ClusterError> {
        let kafka = self.kafka.clone();
        let cluster = self.cluster.clone();
        tokio::task::spawn_blocking(move || read_control_topic(&kafka, &cluster))
            .await
            .expect("reading the control topic does not panic")
    }

    /// Adds a camera; fails if it exists.
    pub async fn add(&self, config: StreamConfig) -> Result<i32, ClusterError> {
        let cameras = self.cameras().await?;
        if cameras.contains_key(&config.id) {
            return Err(ClusterError::Exists(config.id));
        }
        let partition = least_loaded(&cameras, self.cluster.control_partitions);
        self.write(&config.id, Some(&config), partition).await?;
        Ok(partition)
    }

    /// Changes an existing camera (it stays on its partition, hence its worker).
    pub async fn replace(&self, config: StreamConfig) -> Result<i32, ClusterError> {
        let cameras = self.cameras().await?;
        let placement = cameras
            .get(&config.id)
            .ok_or_else(|| ClusterError::NotFound(config.id.clone()))?;
        if placement.config != config {
            self.write(&config.id, Some(&config), placement.partition)
                .await?;
        }
        Ok(placement.partition)
    }

    pub async fn remove(&self, id: &str) -> Result<(), ClusterError> {
        let cameras = self.cameras().await?;
        let placement = cameras
            .get(id)
            .ok_or_else(|| ClusterError::NotFound(id.to_owned()))?;
        self.write(id, None, placement.partition).await
    }

    /// Adds the configured cameras that are missing and updates changed ones; never removes
    /// (another worker's configuration may list other cameras). Placement is deterministic,
    /// so workers starting together with the same configuration write the same records.
    pub async fn declare(&self, streams: &[StreamConfig]) -> Result<(), ClusterError> {
        let mut cameras = self.cameras().await?;
        for stream in streams {
            let partition = match cameras.get(&stream.id) {
                Some(placement) if placement.config == *stream => continue,
                Some(placement) => placement.partition,
                None => least_loaded(&cameras, self.cluster.control_partitions),
            };
            self.write(&stream.id, Some(stream), partition).await?;
            cameras.insert(
                stream.id.clone(),
                Placement {
                    partition,
                    config: stream.clone(),
                },
            );
        }
        Ok(())
    }

    async fn write(
        &self,
        id: &str,
        config: Option<&StreamConfig>,
        partition: i32,
    ) -> Result<(), ClusterError> {
        let payload = config.map(|c| serde_json::to_string(c).expect("stream configs serialise"));
        let mut record = FutureRecord::<str, String>::to(&self.cluster.control_topic)
            .key(id)
            .partition(partition);
        if let Some(payload) = &payload {
            record = record.payload(payload);
        }
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map(|_| ())
            .map_err(|(error, _)| ClusterError::Write {
                topic: self.cluster.control_topic.clone(),
                reason: error.to_string(),
            })?;
        tracing::info!(stream = %id, partition, removed = config.is_none(), "camera definition written to the control topic");
        Ok(())
    }
}

/// The partition with the fewest cameras, lowest index on ties.
pub fn least_loaded(cameras: &BTreeMap<String, Placement>, partitions: i32) -> i32 {
    let mut load = vec![0usize; partitions.max(1) as usize];
    for placement in cameras.values() {
        if let Some(slot) = load.get_mut(placement.partition as usize) {
            *slot += 1;
        }
    }
    load.iter()
        .enumerate()
        .min_by_key(|(index, count)| (**count, *index))
        .map(|(index, _)| index as i32)
        .unwrap_or(0)
}

fn read_control_topic(
    kafka: &KafkaConfig,
    cluster: &ClusterConfig,
) -> Result<BTreeMap<String, Placement>, ClusterError> {
    let topic = cluster.control_topic.as_str();
    let failed = |reason: String| ClusterError::Read {
        topic: topic.to_owned(),
        brokers: kafka.brokers.clone(),
        reason,
    };
    // Assigned, never subscribed: reading the directory must not disturb the worker group.
    let consumer: BaseConsumer = client_config(kafka)
        .set("group.id", format!("{}-directory", cluster.group_id))
        .set("enable.auto.commit", "false")
        .create()
        .map_err(ClusterError::Client)?;
    let timeout = Duration::from_secs(10);
    let mut remaining = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..cluster.control_partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, timeout)
            .map_err(|e| failed(e.to_string()))?;
        if high > low {
            remaining.insert(partition, high);
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .map_err(|e| failed(e.to_string()))?;
        }
    }
    let mut cameras = BTreeMap::new();
    if remaining.is_empty() {
        return Ok(cameras);
    }
    consumer
        .assign(&assignment)
        .map_err(|e| failed(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    while !remaining.is_empty() {
        if Instant::now() > deadline {
            return Err(failed("timed out reading to the end".into()));
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.map_err(|e| failed(e.to_string()))?;
        apply_record(&mut cameras, message.partition(), &message);
        if remaining
            .get(&message.partition())
            .is_some_and(|high| message.offset() + 1 >= *high)
        {
            remaining.remove(&message.partition());
        }
    }
    Ok(cameras)
}

/// Applies one control record: a definition replaces the camera's, a tombstone removes it.
fn apply_record(cameras: &mut BTreeMap<String, Placement>, partition: i32, message: &impl Message) {
    let Some(id) = message
        .key()
        .map(|k| String::from_utf8_lossy(k).into_owned())
    else {
        return;
    };
    match message.payload() {
        None => {
            cameras.remove(&id);
        }
        Some(payload) => match serde_json::from_slice::<StreamConfig>(payload) {
            Ok(config) => {
                cameras.insert(id, Placement { partition, config });
            }
            Err(error) => {
                tracing::error!(stream = %id, %error, "unreadable camera definition on the control topic; skipped")
            }
        },
    }
}

enum GroupEvent {
    Assigned(HashSet<i32>),
    Revoked,
}

/// Forwards the group's rebalances to the worker loop.
struct GroupContext {
    events: mpsc::UnboundedSender<GroupEvent>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let event = match rebalance {
            Rebalance::Assign(list) => GroupEvent::Assigned(
                list.elements()
                    .iter()
                    .map(|element| element.partition())
                    .collect(),
            ),
            Rebalance::Revoke(_) => GroupEvent::Revoked,
            Rebalance::Error(error) => {
                tracing::error!(%error, "consumer group rebalance failed");
                return;
            }
        };
        let _ = self.events.send(event);
    }
}

/// Runs this worker's share of the cameras until the process ends.
pub async fn run_worker(
    kafka: KafkaConfig,
    cluster: ClusterConfig,
    manager: StreamManager,
    metrics: Metrics,
) -> Result<(), ClusterError> {
    let (events, mut group_events) = mpsc::unbounded_channel();
    let consumer: StreamConsumer<GroupContext> = client_config(&kafka)
        .set("group.id", &cluster.group_id)
        .set("partition.assignment.strategy", "roundrobin")
        .set("session.timeout.ms", cluster.session_timeout_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (cluster.session_timeout_ms / 4).max(100).to_string(),
        )
        // No commits: every assignment reads its partitions from the start, which is the
        // whole (compacted) set of camera definitions.
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create_with_context(GroupContext { events })
        .map_err(ClusterError::Client)?;
    consumer
        .subscribe(&[cluster.control_topic.as_str()])
        .map_err(ClusterError::Client)?;
    tracing::info!(group = %cluster.group_id, topic = %cluster.control_topic, "joined the worker group");

    let mut assigned: HashSet<i32> = HashSet::new();
    let mut owned: HashMap<i32, HashMap<String, StreamConfig>> = HashMap::new();
    // After a revocation, cameras keep running until the next assignment says where they go;
    // if none comes within a session timeout (we were cut off), they stop.
    let mut revoked_since: Option<Instant> = None;
    let session = Duration::from_millis(cluster.session_timeout_ms as u64);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            Some(event) = group_events.recv() => match event {
                GroupEvent::Assigned(partitions) => {
                    revoked_since = None;
                    for lost in assigned.difference(&partitions).copied().collect::<Vec<_>>() {
                        stop_partition(&manager, &mut owned, lost).await;
                    }
                    tracing::info!(partitions = ?sorted(&partitions), "control topic partitions assigned");
                    assigned = partitions;
                }
                GroupEvent::Revoked => {
                    revoked_since.get_or_insert_with(Instant::now);
                }
            },
            message = consumer.recv() => match message {
                Ok(message) => {
                    let partition = message.partition();
                    if !assigned.contains(&partition) {
                        continue;
                    }
                    let mut cameras = BTreeMap::new();
                    apply_record(&mut cameras, partition, &message);
                    let id = message.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
                    let cameras_here = owned.entry(partition).or_default();
                    match cameras.remove(&id) {
                        Some(placement) => {
                            cameras_here.insert(id.clone(), placement.config.clone());
                            if let Err(error) = manager.upsert(placement.config).await {
                                tracing::error!(stream = %id, %error, "cannot run an assigned camera");
                            }
                        }
                        None => {
                            if cameras_here.remove(&id).is_some() {
                                let _ = manager.remove(&id).await;
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "reading the control topic");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
            _ = tick.tick() => {
                if revoked_since.is_some_and(|since| since.elapsed() > session) {
                    tracing::warn!("no new assignment after a revocation: stopping this worker's cameras");
                    for partition in assigned.drain().collect::<Vec<_>>() {
                        stop_partition(&manager, &mut owned, partition).await;
                    }
                    revoked_since = None;
                }
            }
        }
        metrics
            .cluster_cameras_assigned
            .set(owned.values().map(HashMap::len).sum::<usize>() as i64);
    }
}

async fn stop_partition(
    manager: &StreamManager,
    owned: &mut HashMap<i32, HashMap<String, StreamConfig>>,
    partition: i32,
) {
    for id in owned.remove(&partition).unwrap_or_default().into_keys() {
        tracing::info!(stream = %id, partition, "camera moved to another worker");
        let _ = manager.remove(&id).await;
    }
}

fn sorted(partitions: &HashSet<i32>) -> Vec<i32> {
    let mut list: Vec<i32> = partitions.iter().copied().collect();
    list.sort_unstable();
    list
}

fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &kafka.brokers);
    client.set("client.id", "argus-worker");
    for (key, value) in &kafka.properties {
        client.set(key, value);
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed(partition: i32) -> Placement {
        Placement {
            partition,
            config: StreamConfig::new("x", "test:ball"),
        }
    }

    #[test]
    fn new_cameras_fill_the_emptiest_partition_first() {
        let mut cameras = BTreeMap::new();
        let mut chosen = Vec::new();
        for n in 0..6 {
            let partition = least_loaded(&cameras, 4);
            chosen.push(partition);
            cameras.insert(format!("cam{n}"), placed(partition));
        }
        assert_eq!(chosen, [0, 1, 2, 3, 0, 1]);
    }

    #[test]
    fn a_removed_camera_frees_its_partition() {
        let mut cameras = BTreeMap::new();
        for (n, partition) in [0, 1, 2].into_iter().enumerate() {
            cameras.insert(format!("cam{n}"), placed(partition));
        }
        cameras.remove("cam1");
        assert_eq!(least_loaded(&cameras, 3), 1);
    }
}

//! The on-disk spill queue: where Kafka messages wait while the broker is unreachable.
//!
//! Messages are stored in a `redb` table keyed by their publish sequence number, so a message
//! that failed late (it was in flight when the broker went away) still drains before the
//! messages published after it: per-camera order survives an outage. Every push is a durable
//! commit, so what is spilled also survives a crash or restart of Argus and is sent at the
//! next start.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");

/// Page cache for the spill file: the queue is written and read sequentially, so a small cache
/// keeps Argus's memory bounded however large the file grows.
const CACHE_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    #[error("the Kafka spill file {path} is in use by another Argus process; give each process its own kafka.spill.path")]
    InUse { path: PathBuf },
    #[error("cannot open the Kafka spill file {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error("the Kafka spill file failed: {0}")]
    Storage(#[from] redb::Error),
    #[error("a spilled message is unreadable: {0}")]
    Corrupt(#[from] serde_json::Error),
}

impl From<redb::TransactionError> for SpillError {
    fn from(error: redb::TransactionError) -> Self {
        Self::Storage(error.into())
    }
}
impl From<redb::TableError> for SpillError {
    fn from(error: redb::TableError) -> Self {
        Self::Storage(error.into())
    }
}
impl From<redb::StorageError> for SpillError {
    fn from(error: redb::StorageError) -> Self {
        Self::Storage(error.into())
    }
}
impl From<redb::CommitError> for SpillError {
    fn from(error: redb::CommitError) -> Self {
        Self::Storage(error.into())
    }
}

/// A Kafka message as it waits on disk: everything needed to send it again unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpilledMessage {
    pub topic: String,
    pub key: String,
    pub headers: Vec<(String, String)>,
    pub payload: String,
}

impl SpilledMessage {
    /// Bytes this message counts against the spill limit.
    pub fn size(&self) -> u64 {
        (self.topic.len()
            + self.key.len()
            + self.payload.len()
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()) as u64
    }
}

/// A bounded, durable, ordered queue of messages.
pub struct SpillQueue {
    db: Database,
    path: PathBuf,
    messages: AtomicU64,
    bytes: AtomicU64,
}

impl SpillQueue {
    /// Opens (or creates) the spill file and counts what a previous run left in it.
    pub fn open(path: &Path) -> Result<Self, SpillError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| SpillError::Open {
                path: path.to_owned(),
                source: redb::StorageError::Io(error).into(),
            })?;
        }
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|error| match error {
                redb::DatabaseError::DatabaseAlreadyOpen => SpillError::InUse {
                    path: path.to_owned(),
                },
                other => SpillError::Open {
                    path: path.to_owned(),
                    source: other.into(),
                },
            })?;
        let queue = Self {
            db,
            path: path.to_owned(),
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        };
        let write = queue.db.begin_write()?;
        write.open_table(MESSAGES)?;
        write.commit()?;
        let (mut messages, mut bytes) = (0, 0);
        for entry in queue.db.begin_read()?.open_table(MESSAGES)?.iter()? {
            let (_, value) = entry?;
            let message: SpilledMessage = serde_json::from_slice(value.value())?;
            messages += 1;
            bytes += message.size();
        }
        queue.messages.store(messages, Ordering::Relaxed);
        queue.bytes.store(bytes, Ordering::Relaxed);
        Ok(queue)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The highest sequence number stored, so a restarted publisher numbers on after it.
    pub fn last_sequence(&self) -> Result<Option<u64>, SpillError> {
        let read = self.db.begin_read()?;
        let table = read.open_table(MESSAGES)?;
        let last = table.last()?.map(|(key, _)| key.value());
        Ok(last)
    }

    /// Stores a message durably. If that takes the queue over `max_bytes`, the oldest
    /// messages are removed to make room and returned (the caller counts and logs them).
    pub fn push(
        &self,
        sequence: u64,
        message: &SpilledMessage,
        max_bytes: u64,
    ) -> Result<Vec<SpilledMessage>, SpillError> {
        let encoded = serde_json::to_vec(message)?;
        let mut dropped = Vec::new();
        let write = self.db.begin_write()?;
        {
            let mut table = write.open_table(MESSAGES)?;
            let mut bytes = self.bytes() + message.size();
            while bytes > max_bytes {
                let Some((_, value)) = table.pop_first()? else {
                    break;
                };
                let old: SpilledMessage = serde_json::from_slice(value.value())?;
                bytes -= old.size();
                dropped.push(old);
            }
            table.insert(sequence, encoded.as_slice())?;
        }
        write.commit()?;
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.messages
            .fetch_sub(dropped.len() as u64, Ordering::Relaxed);
        self.bytes.fetch_add(message.size(), Ordering::Relaxed);
        self.bytes.fetch_sub(
            dropped.iter().map(SpilledMessage::size).sum(),
            Ordering::Relaxed,
        );
        Ok(dropped)
    }

    /// The oldest `limit` messages, in sequence order, without removing them.
    pub fn oldest(&self, limit: usize) -> Result<Vec<(u64, SpilledMessage)>, SpillError> {
        let read = self.db.begin_read()?;
        let table = read.open_table(MESSAGES)?;
        let mut batch = Vec::with_capacity(limit.min(1024));
        for entry in table.iter()?.take(limit) {
            let (key, value) = entry?;
            batch.push((key.value(), serde_json::from_slice(value.value())?));
        }
        Ok(batch)
    }

    /// Removes delivered messages.
    pub fn remove(&self, sequences: &[u64]) -> Result<(), SpillError> {
        if sequences.is_empty() {
            return Ok(());
        }
        let write = self.db.begin_write()?;
        let (mut removed, mut bytes) = (0, 0);
        {
            let mut table = write.open_table(MESSAGES)?;
            for sequence in sequences {
                if let Some(value) = table.remove(sequence)? {
                    let message: SpilledMessage = serde_json::from_slice(value.value())?;
                    removed += 1;
                    bytes += message.size();
                }
            }
        }
        write.commit()?;
        self.messages.fetch_sub(removed, Ordering::Relaxed);
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Whether this table has any entry (checked on disk, for tests).
    #[cfg(test)]
    fn stored(&self) -> u64 {
        use redb::ReadableTableMetadata;
        let read = self.db.begin_read().unwrap();
        read.open_table(MESSAGES).unwrap().len().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u32) -> SpilledMessage {
        SpilledMessage {
            topic: "t".into(),
            key: "cam".into(),
            headers: vec![("message-id".into(), n.to_string())],
            payload: format!("{{\"n\":{n}}}"),
        }
    }

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("argus-spill-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("spill.redb")
    }

    #[test]
    fn drains_in_sequence_order_even_when_pushed_out_of_order() {
        let queue = SpillQueue::open(&temp_path("order")).unwrap();
        for sequence in [3, 1, 2] {
            queue
                .push(sequence, &message(sequence as u32), u64::MAX)
                .unwrap();
        }
        let batch = queue.oldest(10).unwrap();
        let order: Vec<u64> = batch.iter().map(|(s, _)| *s).collect();
        assert_eq!(order, [1, 2, 3]);
        queue.remove(&[1, 2]).unwrap();
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.stored(), 1);
        assert_eq!(queue.oldest(10).unwrap()[0].1, message(3));
    }

    #[test]
    fn survives_a_restart() {
        let path = temp_path("restart");
        {
            let queue = SpillQueue::open(&path).unwrap();
            queue.push(7, &message(7), u64::MAX).unwrap();
            queue.push(8, &message(8), u64::MAX).unwrap();
        }
        let queue = SpillQueue::open(&path).unwrap();
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.bytes(), message(7).size() + message(8).size());
        assert_eq!(queue.last_sequence().unwrap(), Some(8));
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_says_which() {
        let queue = SpillQueue::open(&temp_path("full")).unwrap();
        let limit = message(0).size() * 3;
        for n in 0..5 {
            let dropped = queue.push(n, &message(n as u32), limit).unwrap();
            if n < 3 {
                assert!(dropped.is_empty());
            } else {
                assert_eq!(dropped, vec![message(n as u32 - 3)]);
            }
        }
        assert_eq!(queue.len(), 3);
        assert!(queue.bytes() <= limit);
    }

    #[test]
    fn a_second_process_gets_a_clear_error() {
        let path = temp_path("lock");
        let _first = SpillQueue::open(&path).unwrap();
        let error = SpillQueue::open(&path).err().expect("the file is locked");
        assert!(matches!(error, SpillError::InUse { .. }), "{error}");
    }
}

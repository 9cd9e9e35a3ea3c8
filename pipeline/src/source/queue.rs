//! The bounded queue between a stream's GStreamer thread and its analysis task.
//!
//! Live sources must never wait for a slow operator, or the camera's data backs up into
//! the network stack and the picture falls minutes behind; they push without blocking and
//! the [`DropPolicy`] decides which frame goes. Recorded sources push with backpressure:
//! GStreamer's streaming thread waits, so a file is read as fast as analysis allows and no
//! frame is lost. (tokio's channels cannot drop the oldest entry, hence this small queue.)

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

use prometheus::IntCounter;
use tokio::sync::Notify;

use super::settings::DropPolicy;
use super::Frame;

pub struct FrameQueue {
    state: Mutex<State>,
    capacity: usize,
    policy: DropPolicy,
    dropped: IntCounter,
    /// Wakes the async consumer.
    ready: Notify,
    /// Wakes a producer blocked on a full queue.
    space: Condvar,
}

struct State {
    frames: VecDeque<Frame>,
    closed: bool,
}

/// Why a push did not enqueue.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// The consumer has gone: stop producing.
    Closed,
}

impl FrameQueue {
    pub fn new(capacity: usize, policy: DropPolicy, dropped: IntCounter) -> Self {
        Self {
            state: Mutex::new(State {
                frames: VecDeque::with_capacity(capacity),
                closed: false,
            }),
            capacity: capacity.max(1),
            policy,
            dropped,
            ready: Notify::new(),
            space: Condvar::new(),
        }
    }

    /// Live push: never waits; when full, drops a frame by the policy and counts it.
    pub fn push_or_drop(&self, frame: Frame) -> Result<(), PushError> {
        let mut state = self.state.lock().expect("frame queue lock");
        if state.closed {
            return Err(PushError::Closed);
        }
        if state.frames.len() >= self.capacity {
            self.dropped.inc();
            match self.policy {
                DropPolicy::DropNewest => return Ok(()),
                DropPolicy::DropOldest => {
                    state.frames.pop_front();
                }
            }
        }
        state.frames.push_back(frame);
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    /// Recorded push: waits for room. Call from a non-async thread (GStreamer's).
    pub fn push_blocking(&self, frame: Frame) -> Result<(), PushError> {
        let mut state = self.state.lock().expect("frame queue lock");
        while state.frames.len() >= self.capacity && !state.closed {
            state = self.space.wait(state).expect("frame queue lock");
        }
        if state.closed {
            return Err(PushError::Closed);
        }
        state.frames.push_back(frame);
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    /// The next frame, waiting for one; `None` once closed and empty.
    pub async fn pop(&self) -> Option<Frame> {
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.state.lock().expect("frame queue lock");
                if let Some(frame) = state.frames.pop_front() {
                    self.space.notify_one();
                    return Some(frame);
                }
                if state.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// A frame if one is queued now.
    pub fn try_pop(&self) -> Option<Frame> {
        let frame = self
            .state
            .lock()
            .expect("frame queue lock")
            .frames
            .pop_front();
        if frame.is_some() {
            self.space.notify_one();
        }
        frame
    }

    /// Stops the queue: blocked and future pushes fail, `pop` drains what is left.
    pub fn close(&self) {
        self.state.lock().expect("frame queue lock").closed = true;
        self.space.notify_all();
        self.ready.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use argus_operators::BgrImage;

    use super::*;

    fn frame(sequence: u64) -> Frame {
        Frame {
            stream_id: Arc::from("cam"),
            sequence,
            pts: None,
            wall_time: chrono::Utc::now(),
            clock: super::super::FrameClock::Arrival,
            image: BgrImage::new(1, 1, vec![0, 0, 0]).unwrap(),
        }
    }

    fn counter() -> IntCounter {
        IntCounter::new("dropped", "test").unwrap()
    }

    #[tokio::test]
    async fn drop_oldest_keeps_the_newest_frames() {
        let dropped = counter();
        let queue = FrameQueue::new(2, DropPolicy::DropOldest, dropped.clone());
        for sequence in 0..5 {
            queue.push_or_drop(frame(sequence)).unwrap();
        }
        assert_eq!(dropped.get(), 3);
        assert_eq!(queue.pop().await.unwrap().sequence, 3);
        assert_eq!(queue.pop().await.unwrap().sequence, 4);
    }

    #[tokio::test]
    async fn drop_newest_keeps_the_queued_frames() {
        let dropped = counter();
        let queue = FrameQueue::new(2, DropPolicy::DropNewest, dropped.clone());
        for sequence in 0..5 {
            queue.push_or_drop(frame(sequence)).unwrap();
        }
        assert_eq!(dropped.get(), 3);
        assert_eq!(queue.pop().await.unwrap().sequence, 0);
        assert_eq!(queue.pop().await.unwrap().sequence, 1);
    }

    #[tokio::test]
    async fn blocking_pushes_lose_nothing() {
        let queue = Arc::new(FrameQueue::new(1, DropPolicy::DropOldest, counter()));
        let producer = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                for sequence in 0..50 {
                    queue.push_blocking(frame(sequence)).unwrap();
                }
                queue.close();
            })
        };
        let mut seen = Vec::new();
        while let Some(frame) = queue.pop().await {
            seen.push(frame.sequence);
        }
        producer.join().unwrap();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn closing_releases_a_blocked_producer() {
        let queue = Arc::new(FrameQueue::new(1, DropPolicy::DropOldest, counter()));
        queue.push_blocking(frame(0)).unwrap();
        let producer = {
            let queue = queue.clone();
            std::thread::spawn(move || queue.push_blocking(frame(1)))
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        queue.close();
        assert_eq!(producer.join().unwrap(), Err(PushError::Closed));
    }
}

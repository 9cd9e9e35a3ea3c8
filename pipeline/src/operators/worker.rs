//! The one way Argus runs a model: on a dedicated thread that owns it, fed through a queue.
//!
//! `tch` modules and `ort` sessions are not `Sync`, and a forward pass is CPU-bound work of
//! milliseconds to seconds, so it must never run on the async runtime. One thread owns each
//! model; async callers send it inputs and await typed replies. Like DeepStream's
//! `nvstreammux`, the thread gathers the jobs that arrive together into one batch (up to
//! `max_batch` jobs, waiting at most `max_wait` after the first), so one model call serves
//! many streams.
//!
//! A second, *urgent* lane is served first: a person waiting for an answer (a question)
//! overtakes background work (captioning a chunk).

use std::sync::Arc;
use std::time::Duration;

use argus_operators::OperatorError;
use tokio::sync::{mpsc, oneshot};

/// How the thread gathers jobs into a batch.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// The most jobs one model call takes.
    pub max_batch: usize,
    /// How long the thread waits for more jobs after the first; zero takes only those
    /// already queued.
    pub max_wait: Duration,
}

impl Batching {
    /// One job per model call (for models that take one request at a time).
    pub const ONE: Batching = Batching {
        max_batch: 1,
        max_wait: Duration::ZERO,
    };

    /// Every job already waiting, without waiting for more.
    pub const WAITING: Batching = Batching {
        max_batch: usize::MAX,
        max_wait: Duration::ZERO,
    };
}

/// Where a job waits.
#[derive(Debug, Clone, Copy)]
pub struct Queues {
    /// Jobs that may wait; a full queue makes [`ModelWorker::call`] wait (backpressure).
    pub background: usize,
    /// Jobs someone is waiting for; a full queue refuses them ([`WorkerError::Busy`]).
    pub urgent: usize,
}

impl Default for Queues {
    fn default() -> Self {
        Self {
            background: 64,
            urgent: 8,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The model failed, or its thread is gone.
    #[error(transparent)]
    Operator(#[from] OperatorError),
    /// The urgent queue is full.
    #[error("the {0} worker is busy")]
    Busy(Arc<str>),
}

impl From<WorkerError> for OperatorError {
    fn from(error: WorkerError) -> Self {
        match error {
            WorkerError::Operator(error) => error,
            WorkerError::Busy(model) => OperatorError::Inference {
                model: model.to_string(),
                message: "busy".into(),
            },
        }
    }
}

type Reply<O> = oneshot::Sender<Result<Vec<O>, OperatorError>>;

/// Where a queued job's outputs arrive.
pub type Pending<O> = oneshot::Receiver<Result<Vec<O>, OperatorError>>;

/// One caller's inputs and where their outputs go.
struct Job<I, O> {
    inputs: Vec<I>,
    reply: Reply<O>,
}

/// Handle to a model's thread; cheap to clone. The thread ends when the last handle is
/// dropped.
pub struct ModelWorker<I, O> {
    background: mpsc::Sender<Job<I, O>>,
    urgent: mpsc::Sender<Job<I, O>>,
    model: Arc<str>,
}

impl<I, O> Clone for ModelWorker<I, O> {
    fn clone(&self) -> Self {
        Self {
            background: self.background.clone(),
            urgent: self.urgent.clone(),
            model: self.model.clone(),
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> ModelWorker<I, O> {
    /// Starts the thread `thread`. `run` gets every batch's inputs, all jobs' together in
    /// queue order, and returns one output per input; `model` names the model in errors.
    pub fn start(
        thread: &str,
        model: impl Into<Arc<str>>,
        batching: Batching,
        queues: Queues,
        mut run: impl FnMut(Vec<I>) -> Result<Vec<O>, OperatorError> + Send + 'static,
    ) -> std::io::Result<Self> {
        let model: Arc<str> = model.into();
        let (background, mut background_queue) = mpsc::channel(queues.background.max(1));
        let (urgent, mut urgent_queue) = mpsc::channel(queues.urgent.max(1));
        let name = model.clone();
        let max_batch = batching.max_batch.max(1);
        std::thread::Builder::new()
            .name(thread.into())
            .spawn(move || {
                // A runtime of its own, only to wait on the queues with a deadline.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("a model thread's runtime");
                while let Some(batch) = runtime.block_on(next_batch(
                    &mut urgent_queue,
                    &mut background_queue,
                    max_batch,
                    batching.max_wait,
                )) {
                    run_batch(&name, &mut run, batch);
                }
            })?;
        Ok(Self {
            background,
            urgent,
            model,
        })
    }

    /// The model's name, as given to [`ModelWorker::start`].
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Runs `inputs` (possibly in one batch with other callers'), waiting for room in the
    /// queue; one output per input, in order.
    pub async fn call(&self, inputs: Vec<I>) -> Result<Vec<O>, OperatorError> {
        let answer = self.queue(inputs).await?;
        answer.await.map_err(|_| self.stopped())?
    }

    /// Queues `inputs`, waiting for room, and returns at once: the outputs arrive on the
    /// receiver, which the caller may drop when only the work's effects matter.
    pub async fn queue(&self, inputs: Vec<I>) -> Result<Pending<O>, OperatorError> {
        let (reply, answer) = oneshot::channel();
        self.background
            .send(Job { inputs, reply })
            .await
            .map_err(|_| self.stopped())?;
        Ok(answer)
    }

    /// [`ModelWorker::call`] for one input.
    pub async fn call_one(&self, input: I) -> Result<O, OperatorError> {
        let mut outputs = self.call(vec![input]).await?;
        outputs.pop().ok_or_else(|| self.no_output())
    }

    /// [`ModelWorker::queue`] without waiting for room: a full queue gives the inputs back.
    pub fn try_queue(&self, inputs: Vec<I>) -> Result<Pending<O>, Vec<I>> {
        let (reply, answer) = oneshot::channel();
        match self.background.try_send(Job { inputs, reply }) {
            Ok(()) => Ok(answer),
            Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) => {
                Err(job.inputs)
            }
        }
    }

    /// Runs `inputs` ahead of the background lane; refused at once when the urgent queue is
    /// full.
    pub async fn call_urgent(&self, inputs: Vec<I>) -> Result<Vec<O>, WorkerError> {
        let (reply, answer) = oneshot::channel();
        self.urgent
            .try_send(Job { inputs, reply })
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => WorkerError::Busy(self.model.clone()),
                mpsc::error::TrySendError::Closed(_) => self.stopped().into(),
            })?;
        Ok(answer.await.map_err(|_| self.stopped())??)
    }

    fn stopped(&self) -> OperatorError {
        OperatorError::Inference {
            model: self.model.to_string(),
            message: "the model worker stopped".into(),
        }
    }

    fn no_output(&self) -> OperatorError {
        OperatorError::Inference {
            model: self.model.to_string(),
            message: "no output returned".into(),
        }
    }
}

/// Waits for a first job (urgent ones first), then gathers more from the same lane until
/// `max_batch` jobs or `max_wait` after the first. `None` once every handle is gone.
async fn next_batch<J>(
    urgent: &mut mpsc::Receiver<J>,
    background: &mut mpsc::Receiver<J>,
    max_batch: usize,
    max_wait: Duration,
) -> Option<Vec<J>> {
    let (first, from_urgent) = tokio::select! {
        biased;
        Some(job) = urgent.recv() => (job, true),
        Some(job) = background.recv() => (job, false),
        else => return None,
    };
    let queue = if from_urgent { urgent } else { background };
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + max_wait;
    while batch.len() < max_batch {
        // `timeout_at` polls the queue before it looks at the deadline, so jobs already
        // waiting join even when `max_wait` is zero.
        match tokio::time::timeout_at(deadline, queue.recv()).await {
            Ok(Some(job)) => batch.push(job),
            Ok(None) | Err(_) => break,
        }
    }
    Some(batch)
}

fn run_batch<I, O>(
    model: &str,
    run: &mut impl FnMut(Vec<I>) -> Result<Vec<O>, OperatorError>,
    batch: Vec<Job<I, O>>,
) {
    let mut inputs = Vec::new();
    let mut replies = Vec::with_capacity(batch.len());
    for job in batch {
        replies.push((job.inputs.len(), job.reply));
        inputs.extend(job.inputs);
    }
    let expected = inputs.len();
    let mut replies = replies;
    match run(inputs) {
        Ok(outputs) if outputs.len() == expected => {
            let mut outputs = outputs.into_iter();
            for (count, reply) in replies {
                let _ = reply.send(Ok(outputs.by_ref().take(count).collect()));
            }
        }
        Ok(outputs) => {
            let message = format!("{} outputs for {expected} inputs", outputs.len());
            for (_, reply) in replies {
                let _ = reply.send(Err(OperatorError::Inference {
                    model: model.to_owned(),
                    message: message.clone(),
                }));
            }
        }
        // A lone caller gets the model's own error; callers sharing a batch each get a copy
        // (`OperatorError` holds sources that cannot be cloned) that names the model.
        Err(error) if replies.len() == 1 => {
            let (_, reply) = replies.pop().expect("one reply");
            let _ = reply.send(Err(error));
        }
        Err(error) => {
            let message = error.to_string();
            for (_, reply) in replies {
                let _ = reply.send(Err(OperatorError::Inference {
                    model: model.to_owned(),
                    message: message.clone(),
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn waiting_jobs_form_one_batch_up_to_the_limit() {
        let (jobs, mut queue) = mpsc::channel(16);
        let (_urgent_jobs, mut urgent) = mpsc::channel::<u32>(1);
        for job in 0..5 {
            jobs.send(job).await.unwrap();
        }
        let batch = next_batch(&mut urgent, &mut queue, 3, Duration::from_millis(50))
            .await
            .unwrap();
        assert_eq!(batch, [0, 1, 2]);
        let batch = next_batch(&mut urgent, &mut queue, 3, Duration::from_millis(50))
            .await
            .unwrap();
        assert_eq!(batch, [3, 4], "the rest, after the wait");
    }

    #[tokio::test]
    async fn a_lone_job_waits_no_longer_than_max_wait() {
        let (jobs, mut queue) = mpsc::channel(16);
        let (urgent_jobs, mut urgent) = mpsc::channel::<u32>(1);
        jobs.send(7).await.unwrap();
        let started = Instant::now();
        let batch = next_batch(&mut urgent, &mut queue, 8, Duration::from_millis(30))
            .await
            .unwrap();
        assert_eq!(batch, [7]);
        assert!(started.elapsed() < Duration::from_secs(1));
        drop((jobs, urgent_jobs));
        assert!(
            next_batch(&mut urgent, &mut queue, 8, Duration::from_millis(30))
                .await
                .is_none()
        );
    }

    #[tokio::test]
    async fn urgent_jobs_go_first_and_are_not_mixed_with_background_ones() {
        let (jobs, mut queue) = mpsc::channel(16);
        let (urgent_jobs, mut urgent) = mpsc::channel(16);
        jobs.send("caption").await.unwrap();
        urgent_jobs.send("question").await.unwrap();
        let batch = next_batch(&mut urgent, &mut queue, 8, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(batch, ["question"]);
        let batch = next_batch(&mut urgent, &mut queue, 8, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(batch, ["caption"]);
    }

    #[tokio::test]
    async fn callers_sharing_a_batch_each_get_their_own_outputs() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let worker = ModelWorker::start(
            "test-worker",
            "double",
            Batching {
                max_batch: 8,
                max_wait: Duration::from_millis(200),
            },
            Queues::default(),
            move |inputs: Vec<u32>| {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(inputs.into_iter().map(|x| x * 2).collect())
            },
        )
        .unwrap();
        let (a, b) = tokio::join!(worker.call(vec![1, 2]), worker.call(vec![3]));
        assert_eq!(a.unwrap(), [2, 4]);
        assert_eq!(b.unwrap(), [6]);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one model call for both");
        assert_eq!(worker.call_one(5).await.unwrap(), 10);
    }

    #[tokio::test]
    async fn a_model_error_reaches_every_caller_of_the_batch() {
        let worker = ModelWorker::start(
            "test-worker",
            "broken",
            Batching {
                max_batch: 8,
                max_wait: Duration::from_millis(200),
            },
            Queues::default(),
            |_: Vec<u32>| -> Result<Vec<u32>, OperatorError> {
                Err(OperatorError::Inference {
                    model: "inner".into(),
                    message: "no weights".into(),
                })
            },
        )
        .unwrap();
        let (a, b) = tokio::join!(worker.call(vec![1]), worker.call(vec![2]));
        for error in [a.unwrap_err(), b.unwrap_err()] {
            let error = error.to_string();
            assert!(error.contains("no weights"), "{error}");
        }
    }

    #[tokio::test]
    async fn a_full_urgent_queue_answers_busy() {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = std::sync::Mutex::new(released);
        let worker = ModelWorker::start(
            "test-worker",
            "slow",
            Batching::ONE,
            Queues {
                background: 1,
                urgent: 1,
            },
            move |inputs: Vec<u32>| {
                let _ = released.lock().unwrap().recv();
                Ok(inputs)
            },
        )
        .unwrap();
        let first = tokio::spawn({
            let worker = worker.clone();
            async move { worker.call_urgent(vec![1]).await }
        });
        // The first job is taken by the thread (which now waits), the second waits in the
        // queue, and the third finds it full.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let second = tokio::spawn({
            let worker = worker.clone();
            async move { worker.call_urgent(vec![2]).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(matches!(
            worker.call_urgent(vec![3]).await,
            Err(WorkerError::Busy(_))
        ));
        release.send(()).unwrap();
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), [1]);
        assert_eq!(second.await.unwrap().unwrap(), [2]);
    }
}

//! Streams: each configured camera or recording runs as a small state machine
//! (`starting → running → finished | failed | stopped`), visible through the API, logs and
//! metrics. A failing stream never disturbs the others.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::analysis::{Analyzer, OCR_OPERATOR};
use crate::config::{Config, StreamConfig};
use crate::ingest::{redact_text, Decoder, DecoderCounters, DecoderSettings, Frame, Source};
use crate::metrics::Metrics;
use crate::publish::{FrameInfo, FrameResult, KafkaPublisher, Outgoing, RedisState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    Starting,
    Running,
    /// A recording was read to its end.
    Finished,
    Failed,
    /// Stopped by a shutdown.
    Stopped,
}

impl StreamState {
    pub const ALL: [StreamState; 5] = [
        Self::Starting,
        Self::Running,
        Self::Finished,
        Self::Failed,
        Self::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Finished | Self::Failed | Self::Stopped)
    }
}

/// What the API shows about a stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamStatus {
    pub id: String,
    /// The source with any password removed.
    pub source: String,
    pub state: StreamState,
    pub error: Option<String>,
    pub frames_decoded: u64,
    pub frames_analysed: u64,
    pub frames_dropped: u64,
    pub last_frame_time: Option<DateTime<Utc>>,
}

/// Every stream's status; the API reads it, the stream tasks write it.
#[derive(Clone)]
pub struct StreamRegistry {
    statuses: Arc<RwLock<BTreeMap<String, StreamStatus>>>,
    metrics: Metrics,
    changed: watch::Sender<()>,
}

impl StreamRegistry {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            statuses: Default::default(),
            metrics,
            changed: watch::channel(()).0,
        }
    }

    /// Registers a stream as starting; done before its task runs so that "all streams ended"
    /// can never be true of streams that have not begun.
    pub fn insert(&self, id: &str, source: String) {
        let status = StreamStatus {
            id: id.to_owned(),
            source,
            state: StreamState::Starting,
            error: None,
            frames_decoded: 0,
            frames_analysed: 0,
            frames_dropped: 0,
            last_frame_time: None,
        };
        self.statuses
            .write()
            .expect("registry lock")
            .insert(id.to_owned(), status);
        self.publish_state(id, StreamState::Starting);
    }

    fn set_state(&self, id: &str, state: StreamState, error: Option<String>) {
        if let Some(status) = self.statuses.write().expect("registry lock").get_mut(id) {
            status.state = state;
            if error.is_some() {
                status.error = error;
            }
        }
        self.publish_state(id, state);
    }

    fn publish_state(&self, id: &str, state: StreamState) {
        for candidate in StreamState::ALL {
            self.metrics
                .stream_state
                .with_label_values(&[id, candidate.as_str()])
                .set(i64::from(candidate == state));
        }
        self.changed.send_replace(());
    }

    fn frame_analysed(&self, id: &str, wall_time: DateTime<Utc>) {
        if let Some(status) = self.statuses.write().expect("registry lock").get_mut(id) {
            status.last_frame_time = Some(wall_time);
        }
    }

    /// Current statuses, counters read from the metrics.
    pub fn list(&self) -> Vec<StreamStatus> {
        let statuses = self.statuses.read().expect("registry lock");
        statuses
            .values()
            .map(|status| {
                let mut status = status.clone();
                let id = [status.id.as_str()];
                status.frames_decoded = self.metrics.frames_decoded.with_label_values(&id).get();
                status.frames_analysed = self.metrics.frames_analysed.with_label_values(&id).get();
                status.frames_dropped = self.metrics.frames_dropped.with_label_values(&id).get();
                status
            })
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<StreamStatus> {
        self.list().into_iter().find(|status| status.id == id)
    }

    /// Resolves once every stream is finished, failed or stopped.
    pub async fn all_done(&self) {
        let mut changed = self.changed.subscribe();
        loop {
            if self.list().iter().all(|status| status.state.is_terminal()) {
                return;
            }
            if changed.changed().await.is_err() {
                return;
            }
        }
    }
}

/// What every stream task shares.
#[derive(Clone)]
pub struct StreamContext {
    pub config: Arc<Config>,
    pub registry: StreamRegistry,
    pub analyzer: Analyzer,
    pub kafka: KafkaPublisher,
    pub redis: Arc<RedisState>,
    pub metrics: Metrics,
    pub shutdown: watch::Receiver<bool>,
}

/// Runs one stream until it ends, fails or Argus shuts down.
pub async fn run_stream(context: StreamContext, stream: StreamConfig) {
    let id = stream.id.clone();
    let fail = |message: String| {
        let message = format!("stream `{id}`: {message}");
        tracing::error!(stream = %id, error = %message, "stream failed");
        context.metrics.errors.with_label_values(&["stream"]).inc();
        context
            .registry
            .set_state(&id, StreamState::Failed, Some(message));
    };
    if let Some(problem) = stream.problems() {
        return fail(problem);
    }
    let source = match Source::parse(&stream.uri) {
        Ok(source) => source,
        Err(error) => return fail(error.to_string()),
    };
    tracing::info!(stream = %id, %source, fps = stream.sample_fps, "starting stream");

    // Live sources keep a short queue (old frames lose their value); files block instead.
    let (frames_in, mut frames) = mpsc::channel::<Frame>(if source.is_live() { 4 } else { 2 });
    let label = [id.as_str()];
    let counters = DecoderCounters {
        decoded: context.metrics.frames_decoded.with_label_values(&label),
        dropped: context.metrics.frames_dropped.with_label_values(&label),
    };
    let settings = DecoderSettings {
        stream_id: Arc::from(id.as_str()),
        sample_fps: stream.sample_fps,
        max_width: stream.max_width,
        start_time: stream.start_time.unwrap_or_else(Utc::now),
    };
    let decoder = match Decoder::start(&source, settings, frames_in, counters) {
        Ok(decoder) => decoder,
        Err(error) => return fail(scrub(&error.to_string(), &source)),
    };
    let mut bus = decoder.bus().stream();
    let mut shutdown = context.shutdown.clone();

    loop {
        tokio::select! {
            Some(frame) = frames.recv() => {
                if context.registry.get(&id).is_some_and(|s| s.state == StreamState::Starting) {
                    context.registry.set_state(&id, StreamState::Running, None);
                }
                analyse_and_publish(&context, &source, frame).await;
            }
            message = bus.next() => {
                let Some(message) = message else { break };
                match message.view() {
                    gst::MessageView::Error(error) => {
                        let detail = error.debug().map(|d| format!(" ({d})")).unwrap_or_default();
                        drop(decoder);
                        return fail(scrub(&format!("{}{detail}", error.error()), &source));
                    }
                    gst::MessageView::Eos(_) => {
                        // Every frame is queued before end-of-stream reaches the bus.
                        while let Ok(frame) = frames.try_recv() {
                            analyse_and_publish(&context, &source, frame).await;
                        }
                        tracing::info!(stream = %id, "end of stream");
                        context.registry.set_state(&id, StreamState::Finished, None);
                        return;
                    }
                    gst::MessageView::StateChanged(change)
                        if change.current() == gst::State::Playing
                            && message.src().is_some_and(|s| s.name().starts_with("stream-")) =>
                    {
                        context.registry.set_state(&id, StreamState::Running, None);
                    }
                    _ => {}
                }
            }
            _ = shutdown.changed() => {
                tracing::info!(stream = %id, "stopping stream");
                context.registry.set_state(&id, StreamState::Stopped, None);
                return;
            }
        }
    }
}

async fn analyse_and_publish(context: &StreamContext, source: &Source, frame: Frame) {
    let id = frame.stream_id.to_string();
    let (width, height) = (frame.image.width(), frame.image.height());
    let analysis = match context.analyzer.analyse(Arc::new(frame.image)).await {
        Ok(analysis) => analysis,
        Err(error) => {
            tracing::error!(stream = %id, frame = frame.sequence, %error, "analysis failed");
            return;
        }
    };
    context
        .metrics
        .frames_analysed
        .with_label_values(&[&id])
        .inc();
    context.registry.frame_analysed(&id, frame.wall_time);

    let text = analysis
        .ocr
        .iter()
        .map(|line| line.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let result = FrameResult {
        schema_version: FrameResult::SCHEMA_VERSION,
        message_id: uuid::Uuid::now_v7(),
        camera_id: id.clone(),
        source: source.to_string(),
        frame: FrameInfo {
            sequence: frame.sequence,
            pts_ns: frame.pts.map(|pts| pts.as_nanos() as u64),
            wall_time: frame.wall_time,
            width,
            height,
        },
        operator: OCR_OPERATOR.into(),
        ocr: analysis.ocr,
        text,
        operator_latency_ms: analysis.latency.as_secs_f64() * 1e3,
        produced_at: Utc::now(),
    };
    let json = serde_json::to_string(&result).expect("frame results serialise");
    if frame.sequence.is_multiple_of(10) {
        tracing::info!(stream = %id, frames = frame.sequence + 1, at = %frame.wall_time, "analysing");
    }
    tracing::debug!(stream = %id, frame = frame.sequence, text = %result.text, "frame analysed");

    let outgoing = Outgoing {
        topic: &context.config.kafka.topics.frame_results,
        key: &id,
        payload: json.clone().into_bytes(),
        schema_id: FrameResult::SCHEMA_ID,
        message_id: result.message_id.to_string(),
    };
    if let Err(error) = context.kafka.publish(outgoing).await {
        tracing::error!(stream = %id, %error, "could not queue the result for Kafka");
    }
    if let Err(error) = context.redis.put_latest(&id, &json).await {
        tracing::warn!(stream = %id, %error, "could not write the latest state to Redis");
    }
}

/// Removes a source's password from text GStreamer produced (its errors quote URIs).
fn scrub(text: &str, source: &Source) -> String {
    let mut clean = redact_text(text);
    if let Source::Rtsp(url) | Source::Http(url) = source {
        if let Some(password) = url.password().filter(|p| !p.is_empty()) {
            clean = clean.replace(password, "***");
            let decoded = percent_encoding::percent_decode_str(password).decode_utf8_lossy();
            if !decoded.is_empty() {
                clean = clean.replace(decoded.as_ref(), "***");
            }
        }
    }
    clean
}

//! One stream's life: start a pipeline, analyse and publish its frames, and when a network
//! source goes away, reconnect with backoff and publish the gap.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use gstreamer as gst;
use rand::Rng;
use tokio::sync::watch;

use super::{StreamRegistry, StreamState};
use crate::analysis::{Analyzer, OCR_OPERATOR};
use crate::captions::Captioner;
use crate::config::{Config, ReconnectConfig, StreamConfig};
use crate::ingest::{redact_text, Decoder, DecoderSettings, Frame, FrameQueue, Source};
use crate::metrics::Metrics;
use crate::moments::indexer::MomentIndexer;
use crate::moments::window::FrameSummary;
use crate::publish::{
    new_trace_id, FrameInfo, FrameResult, KafkaPublisher, Outgoing, RedisState, StreamEvent,
    StreamEventKind,
};

/// What every stream task shares.
#[derive(Clone)]
pub struct StreamContext {
    pub config: Arc<Config>,
    pub registry: StreamRegistry,
    pub analyzer: Analyzer,
    pub kafka: KafkaPublisher,
    pub redis: RedisState,
    pub metrics: Metrics,
    /// Set when the moment index is enabled.
    pub moments: Option<MomentIndexer>,
    /// Set when chunk captions are enabled.
    pub captions: Option<Captioner>,
}

/// How one pipeline's run ended.
enum Ended {
    /// A recording reached its end.
    Finished,
    /// Asked to stop.
    Stopped,
    /// The source failed, stalled, or a live source ended: reconnect if it can.
    Down(String),
}

/// What survives from one pipeline to the next.
struct Continuity {
    sequence: Arc<AtomicU64>,
    last_frame: Option<DateTime<Utc>>,
    /// When the video stopped and why, until frames flow again.
    outage: Option<(DateTime<Utc>, String)>,
    failed_attempts: u32,
}

/// Runs one stream until it ends, fails for good, or `stop` is set.
pub(super) async fn run_stream(
    context: StreamContext,
    stream: StreamConfig,
    mut stop: watch::Receiver<bool>,
) {
    let id = stream.id.clone();
    let shown_uri = redact_text(&stream.uri);
    if let Some(problem) = stream.problems() {
        return fail(&context, &id, &shown_uri, problem).await;
    }
    let source = match Source::parse(&stream.uri) {
        Ok(source) => source,
        Err(error) => return fail(&context, &id, &shown_uri, error.to_string()).await,
    };
    tracing::info!(stream = %id, %source, fps = stream.sample_fps, "starting stream");
    if context.captions.is_some() {
        // From the start, at 0, where captions are enabled: dashboards and the
        // captions-behind alert see the series before the first chunk closes.
        let metrics = &context.metrics;
        for counter in [
            &metrics.caption_candidates,
            &metrics.caption_corrections,
            &metrics.caption_chunks_skipped,
        ] {
            counter.with_label_values(&[&id]);
        }
        for revision in ["first", "revision"] {
            metrics
                .captions_published
                .with_label_values(&[id.as_str(), revision]);
        }
    }
    if context.moments.is_some() {
        // From the start, at 0: the indexing-stalled alert compares it with frames analysed
        // (and only where the series exists, that is where the moment index is enabled).
        context
            .metrics
            .moment_windows_indexed
            .with_label_values(&[&id]);
    }

    let mut continuity = Continuity {
        sequence: Arc::new(AtomicU64::new(0)),
        last_frame: None,
        outage: None,
        failed_attempts: 0,
    };
    loop {
        let queue = Arc::new(FrameQueue::new(
            if source.is_live() {
                stream.queue_size
            } else {
                2
            },
            stream.drop_policy,
            context.metrics.frames_dropped.with_label_values(&[&id]),
        ));
        let settings = DecoderSettings {
            stream_id: Arc::from(id.as_str()),
            sample_fps: stream.sample_fps,
            max_width: stream.max_width,
            start_time: stream.start_time.unwrap_or_else(Utc::now),
            rtsp_transport: stream.rtsp_transport,
            sequence: continuity.sequence.clone(),
        };
        if let (Source::File(path), Some(moments)) = (&source, &context.moments) {
            moments
                .register_recording(&id, path, settings.start_time)
                .await;
        }
        let decoded = context.metrics.frames_decoded.with_label_values(&[&id]);
        let ended = match Decoder::start(&source, settings, queue.clone(), decoded) {
            Ok(decoder) => {
                drive(
                    &context,
                    &stream,
                    &source,
                    decoder,
                    &queue,
                    &mut stop,
                    &mut continuity,
                )
                .await
            }
            Err(error) => Ended::Down(scrub(&error.to_string(), &source)),
        };
        queue.close();
        if let Some(moments) = &context.moments {
            moments.flush(&id).await;
        }
        if let Some(captions) = &context.captions {
            captions.flush(&id).await;
        }

        match ended {
            Ended::Finished => {
                tracing::info!(stream = %id, "end of stream");
                set_state(
                    &context,
                    &id,
                    &source.to_string(),
                    StreamState::Finished,
                    None,
                )
                .await;
                return;
            }
            Ended::Stopped => {
                tracing::info!(stream = %id, "stream stopped");
                set_state(
                    &context,
                    &id,
                    &source.to_string(),
                    StreamState::Stopped,
                    None,
                )
                .await;
                return;
            }
            Ended::Down(reason) if !source.reconnects() => {
                return fail(&context, &id, &source.to_string(), reason).await;
            }
            Ended::Down(reason) => {
                continuity.failed_attempts += 1;
                if let Some(limit) = stream.reconnect.max_attempts {
                    if continuity.failed_attempts > limit {
                        let message =
                            format!("{reason} (gave up after {limit} reconnection attempts)");
                        return fail(&context, &id, &source.to_string(), message).await;
                    }
                }
                if continuity.outage.is_none() {
                    let start = continuity.last_frame.unwrap_or_else(Utc::now);
                    continuity.outage = Some((start, reason.clone()));
                }
                let delay = backoff(continuity.failed_attempts, &stream.reconnect);
                let message = format!("stream `{id}`: {reason}");
                tracing::warn!(stream = %id, error = %message, retry_in = ?delay, attempt = continuity.failed_attempts, "stream down, reconnecting");
                set_state(
                    &context,
                    &id,
                    &source.to_string(),
                    StreamState::Reconnecting,
                    Some(message),
                )
                .await;
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => {
                        set_state(&context, &id, &source.to_string(), StreamState::Stopped, None).await;
                        return;
                    }
                }
                context.metrics.reconnects.with_label_values(&[&id]).inc();
            }
        }
    }
}

/// Delay before reconnection attempt `attempt` (from 1): doubling from the initial delay up to
/// the cap, then ±20 % jitter so that many cameras behind one failed switch do not all
/// reconnect in the same instant.
fn backoff(attempt: u32, config: &ReconnectConfig) -> Duration {
    let doubled = config
        .initial_delay_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
    let capped = doubled.min(config.max_delay_ms) as f64;
    let jitter = rand::rng().random_range(0.8..1.2);
    Duration::from_millis((capped * jitter) as u64)
}

/// Runs one pipeline until it ends.
async fn drive(
    context: &StreamContext,
    stream: &StreamConfig,
    source: &Source,
    decoder: Decoder,
    queue: &FrameQueue,
    stop: &mut watch::Receiver<bool>,
    continuity: &mut Continuity,
) -> Ended {
    let id = stream.id.as_str();
    let mut bus = decoder.bus().stream();
    // GStreamer explains some failures in a message just before the error ("missing-plugin":
    // which decoder is missing; warnings): the error alone is too vague to act on.
    let mut last_warning: Option<String> = None;
    let stall_timeout = Duration::from_secs_f64(stream.stall_timeout_s);
    let stall = tokio::time::sleep(stall_timeout);
    tokio::pin!(stall);
    // A live source must keep delivering. A recording must deliver its first frame; after
    // that it may wait as long as the operators make it (backpressure). Without this, a
    // damaged file on which GStreamer hangs without an error (qtdemux, now and then, on an
    // MP4 cut before its index) would stay "starting" for ever.
    let mut watched = true;
    loop {
        tokio::select! {
            Some(frame) = queue.pop() => {
                if source.is_live() {
                    stall.as_mut().reset(tokio::time::Instant::now() + stall_timeout);
                } else {
                    watched = false;
                }
                if context.registry.state(id) != Some(StreamState::Running) {
                    let decoder_name = decoder.decoder_name();
                    context.registry.update(id, |status| status.decoder = decoder_name);
                    set_state(context, id, &source.to_string(), StreamState::Running, None).await;
                }
                if let Some((start, reason)) = continuity.outage.take() {
                    publish_gap(context, id, source, start, frame.wall_time, reason).await;
                }
                continuity.failed_attempts = 0;
                continuity.last_frame = Some(frame.wall_time);
                analyse_and_publish(context, stream, source, frame).await;
            }
            message = bus.next() => {
                let Some(message) = message else { return Ended::Down("the pipeline's bus closed".into()) };
                match message.view() {
                    gst::MessageView::Error(error) => {
                        let detail = error.debug().map(|d| format!(" ({d})")).unwrap_or_default();
                        let hint = last_warning.map(|w| format!(": {w}")).unwrap_or_default();
                        return Ended::Down(scrub(&format!("{}{hint}{detail}", error.error()), source));
                    }
                    gst::MessageView::Element(element) => {
                        if let Some(missing) = element.structure().filter(|s| s.name() == "missing-plugin") {
                            let kind = missing.get::<String>("type").unwrap_or_else(|_| "plugin".into());
                            let detail = missing
                                .get::<gst::Caps>("detail")
                                .map(|caps| caps.to_string())
                                .or_else(|_| missing.get::<String>("detail"))
                                .unwrap_or_default();
                            last_warning = Some(format!("no {kind} available for {detail}"));
                        }
                    }
                    gst::MessageView::Warning(warning) => {
                        let text = scrub(&warning.error().to_string(), source);
                        tracing::warn!(stream = %id, warning = %text, "GStreamer warning");
                        // The first explanation is the cause; later ones are its echoes.
                        last_warning.get_or_insert(text);
                    }
                    gst::MessageView::Eos(_) => {
                        // Every frame is queued before end-of-stream reaches the bus.
                        while let Some(frame) = queue.try_pop() {
                            continuity.last_frame = Some(frame.wall_time);
                            analyse_and_publish(context, stream, source, frame).await;
                        }
                        return if source.is_live() {
                            Ended::Down("the source ended the stream".into())
                        } else {
                            Ended::Finished
                        };
                    }
                    _ => {}
                }
            }
            _ = &mut stall, if watched => {
                let seconds = stall_timeout.as_secs_f64();
                return Ended::Down(if source.is_live() {
                    format!("no video for {seconds:.0} s")
                } else {
                    format!("no video decoded in {seconds:.0} s: the recording is damaged or holds no video")
                });
            }
            _ = stop.changed() => return Ended::Stopped,
        }
    }
}

async fn fail(context: &StreamContext, id: &str, source: &str, message: String) {
    let message = format!("stream `{id}`: {message}");
    tracing::error!(stream = %id, error = %message, "stream failed");
    context.metrics.errors.with_label_values(&["stream"]).inc();
    set_state(context, id, source, StreamState::Failed, Some(message)).await;
}

/// Records a state change and publishes it on the stream-events topic.
async fn set_state(
    context: &StreamContext,
    id: &str,
    source: &str,
    state: StreamState,
    error: Option<String>,
) {
    context.registry.set_state(id, state, error.clone());
    let event = StreamEventKind::State {
        state: state.as_str().into(),
        error,
    };
    publish_event(context, id, source, event).await;
}

async fn publish_gap(
    context: &StreamContext,
    id: &str,
    source: &Source,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    reason: String,
) {
    tracing::info!(stream = %id, %start, %end, %reason, "video gap");
    publish_event(
        context,
        id,
        &source.to_string(),
        StreamEventKind::Gap { start, end, reason },
    )
    .await;
}

async fn publish_event(context: &StreamContext, id: &str, source: &str, event: StreamEventKind) {
    let message = StreamEvent {
        schema_version: StreamEvent::SCHEMA_VERSION,
        message_id: uuid::Uuid::now_v7(),
        camera_id: id.to_owned(),
        source: source.to_owned(),
        event,
        at: Utc::now(),
    };
    let outgoing = Outgoing {
        topic: &context.config.kafka.topics.stream_events,
        key: id,
        payload: serde_json::to_string(&message).expect("stream events serialise"),
        schema_id: StreamEvent::SCHEMA_ID,
        message_id: message.message_id.to_string(),
        trace_id: new_trace_id(),
    };
    if let Err(error) = context.kafka.publish(outgoing).await {
        tracing::error!(stream = %id, %error, "could not queue a stream event for Kafka");
    }
}

/// Width of the console's stream thumbnails (pixels).
const THUMBNAIL_WIDTH: u32 = 320;

async fn analyse_and_publish(
    context: &StreamContext,
    stream: &StreamConfig,
    source: &Source,
    frame: Frame,
) {
    let id = frame.stream_id.to_string();
    if stream
        .analyse_from
        .is_some_and(|from| frame.wall_time < from)
    {
        context
            .registry
            .update(&id, |status| status.last_frame_time = Some(frame.wall_time));
        return;
    }
    let (width, height) = (frame.image.width(), frame.image.height());
    let thumbnail = match frame.image.to_jpeg(THUMBNAIL_WIDTH, 70) {
        Ok(jpeg) => {
            context.registry.set_thumbnail(&id, jpeg.clone());
            Some(jpeg)
        }
        Err(error) => {
            tracing::debug!(stream = %id, %error, "no thumbnail");
            None
        }
    };
    // Computed here, before the frame moves to the operator thread: an 8×8 reduction costs
    // well under a millisecond.
    let appearance = if context.moments.is_some() {
        argus_operators::appearance::colour_layout(&frame.image).unwrap_or_else(|error| {
            tracing::debug!(stream = %id, %error, "no colour layout");
            Vec::new()
        })
    } else {
        Vec::new()
    };
    let image = Arc::new(frame.image);
    let analysis = match context.analyzer.analyse(image.clone()).await {
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
    context
        .registry
        .update(&id, |status| status.last_frame_time = Some(frame.wall_time));
    if let Some(moments) = &context.moments {
        let summary = FrameSummary {
            wall_time: frame.wall_time,
            ocr: &analysis.ocr,
            appearance,
            thumbnail,
            image: moments.wants_images().then(|| image.clone()),
        };
        moments.observe(&id, source.is_live(), summary).await;
    }
    if let Some(captions) = &context.captions {
        captions
            .observe(
                &id,
                &source.to_string(),
                source.is_live(),
                frame.wall_time,
                image,
                &analysis.ocr,
            )
            .await;
    }

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
            clock: serde_json::to_value(frame.clock)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
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
        payload: json.clone(),
        schema_id: FrameResult::SCHEMA_ID,
        message_id: result.message_id.to_string(),
        trace_id: new_trace_id(),
    };
    if let Err(error) = context.kafka.publish(outgoing).await {
        tracing::error!(stream = %id, %error, "could not queue the result for Kafka");
    }
    context.redis.put_latest(&id, &json).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let config = ReconnectConfig {
            initial_delay_ms: 100,
            max_delay_ms: 1000,
            max_attempts: None,
        };
        for (attempt, nominal) in [
            (1, 100.0),
            (2, 200.0),
            (3, 400.0),
            (4, 800.0),
            (5, 1000.0),
            (30, 1000.0),
        ] {
            let delay = backoff(attempt, &config).as_millis() as f64;
            assert!(
                delay >= nominal * 0.8 - 1.0 && delay <= nominal * 1.2,
                "attempt {attempt}: {delay} ms"
            );
        }
    }

    #[test]
    fn passwords_are_scrubbed_from_gstreamer_text() {
        let source = Source::parse("rtsp://admin:p%40ss@cam.local/live").unwrap();
        let text = "Could not connect to rtsp://admin:p@ss@cam.local/live with p%40ss";
        let clean = scrub(text, &source);
        assert!(
            !clean.contains("p@ss") && !clean.contains("p%40ss"),
            "{clean}"
        );
    }
}

//! One stream's life: start a pipeline, analyse its frames and hand them to the sinks, and
//! when a network source goes away, reconnect with backoff and report the gap.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use gstreamer as gst;
use rand::Rng;
use tokio::sync::watch;

use super::sink::{
    AnalysedFrame, FinishedStream, FrameAnalyser, ObjectAnalyser, OpenedStream, Sinks, StreamEvent,
    StreamEventKind, StreamRecorder,
};
use super::{Pace, StreamRegistry, StreamState};
use crate::config::{ReconnectConfig, StreamConfig};
use crate::metrics::Metrics;
use crate::redact::redact_text;
use crate::source::{Decoder, DecoderSettings, Frame, FrameQueue, Source};

/// What every stream task shares.
#[derive(Clone)]
pub struct StreamContext {
    pub registry: StreamRegistry,
    pub analyser: Arc<dyn FrameAnalyser>,
    /// The objects stage, when `objects.enabled`.
    pub objects: Option<Arc<dyn ObjectAnalyser>>,
    pub sinks: Sinks,
    /// Recording of live cameras; `None` where nothing is ever recorded (`argus index`).
    pub recorder: Option<Arc<dyn StreamRecorder>>,
    pub metrics: Metrics,
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
    /// When the per-frame operators are next due (they run at `sample_fps`, while frames may
    /// be sampled faster for the objects stage).
    analysis_pace: Pace,
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
    // Frames are sampled for the faster of the per-frame operators and the objects stage.
    let sample_fps = match &context.objects {
        Some(objects) => stream.sample_fps.max(objects.fps()),
        None => stream.sample_fps,
    };
    let mut continuity = Continuity {
        sequence: Arc::new(AtomicU64::new(0)),
        last_frame: None,
        outage: None,
        failed_attempts: 0,
        analysis_pace: Pace::new(stream.sample_fps, sample_fps),
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
            sample_fps,
            max_width: stream.max_width,
            start_time: stream.start_time.unwrap_or_else(Utc::now),
            rtsp_transport: stream.rtsp_transport,
            sequence: continuity.sequence.clone(),
            record: context
                .recorder
                .as_ref()
                .and_then(|recorder| recorder.record(&stream, &source)),
        };
        let opened = OpenedStream {
            camera: &id,
            recording: match &source {
                Source::File(path) => Some((path.as_path(), settings.start_time)),
                _ => None,
            },
        };
        for sink in context.sinks.iter() {
            sink.open(&opened).await;
        }
        let decoded = context.metrics.frames_decoded.with_label_values(&[&id]);
        let ended = match Decoder::start(&source, settings, queue.clone(), decoded) {
            Ok(decoder) => {
                let ended = drive(
                    &context,
                    &stream,
                    &source,
                    &decoder,
                    &queue,
                    &mut stop,
                    &mut continuity,
                )
                .await;
                // Stopping a pipeline joins GStreamer's threads and may wait seconds (see
                // `Decoder`'s drop): not on an async worker.
                let _ = tokio::task::spawn_blocking(move || drop(decoder)).await;
                ended
            }
            Err(error) => Ended::Down(scrub(&error.to_string(), &source)),
        };
        queue.close();
        let object_events = match &context.objects {
            Some(objects) => objects.finish(&id).await,
            None => Vec::new(),
        };
        let finished = FinishedStream {
            camera: &id,
            object_events: &object_events,
        };
        for sink in context.sinks.iter() {
            sink.finish(&finished).await;
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
    decoder: &Decoder,
    queue: &FrameQueue,
    stop: &mut watch::Receiver<bool>,
    continuity: &mut Continuity,
) -> Ended {
    let id = stream.id.as_str();
    let mut bus = decoder.messages();
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
                analyse_and_hand_on(context, stream, source, frame, &mut continuity.analysis_pace).await;
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
                            analyse_and_hand_on(context, stream, source, frame, &mut continuity.analysis_pace).await;
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
    publish_event(context, id, source, StreamEventKind::State { state, error }).await;
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

async fn publish_event(context: &StreamContext, id: &str, source: &str, kind: StreamEventKind) {
    let event = StreamEvent {
        camera: id.to_owned(),
        source: source.to_owned(),
        kind,
        at: Utc::now(),
    };
    for sink in context.sinks.iter() {
        sink.event(&event).await;
    }
}

/// Width of the console's stream thumbnails (pixels).
const THUMBNAIL_WIDTH: u32 = 320;

async fn analyse_and_hand_on(
    context: &StreamContext,
    stream: &StreamConfig,
    source: &Source,
    frame: Frame,
    analysis_pace: &mut Pace,
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
    let image = Arc::new(frame.image);
    // Frames come at `sample_fps`, or at the objects' faster rate: then the per-frame
    // operators take every few.
    let analysis_due = analysis_pace.due(frame.wall_time);
    // The thumbnail and the per-frame operators at the stream's own rate; the objects stage
    // at its own, concurrently (they are different models on different threads).
    let analysed = async {
        if !analysis_due {
            return None;
        }
        let thumbnail = match image.to_jpeg(THUMBNAIL_WIDTH, 70) {
            Ok(jpeg) => {
                context.registry.set_thumbnail(&id, jpeg.clone());
                Some(Arc::from(jpeg))
            }
            Err(error) => {
                tracing::debug!(stream = %id, %error, "no thumbnail");
                None
            }
        };
        match context
            .analyser
            .analyse(frame.stream_id.clone(), image.clone())
            .await
        {
            Ok(analysis) => Some((analysis, thumbnail)),
            Err(error) => {
                tracing::error!(stream = %id, frame = frame.sequence, %error, "analysis failed");
                None
            }
        }
    };
    let objects = async {
        match &context.objects {
            Some(objects) => objects
                .observe(&id, frame.wall_time, image.clone())
                .await
                .map(Arc::new),
            None => None,
        }
    };
    let (analysed, objects) = tokio::join!(analysed, objects);
    if analysed.is_none() && objects.is_none() {
        return;
    }
    let (analysis, thumbnail) = match analysed {
        Some((analysis, thumbnail)) => {
            context
                .metrics
                .frames_analysed
                .with_label_values(&[&id])
                .inc();
            (Some(analysis), thumbnail)
        }
        None => (None, None),
    };
    context
        .registry
        .update(&id, |status| status.last_frame_time = Some(frame.wall_time));
    if analysis.is_some() && frame.sequence.is_multiple_of(10) {
        tracing::info!(stream = %id, frames = frame.sequence + 1, at = %frame.wall_time, "analysing");
    }
    let analysed = AnalysedFrame {
        camera: frame.stream_id,
        source: source.to_string(),
        live: source.is_live(),
        sequence: frame.sequence,
        pts: frame.pts,
        wall_time: frame.wall_time,
        clock: frame.clock,
        image,
        thumbnail,
        operator: context.analyser.operator(),
        analysis,
        objects,
    };
    for sink in context.sinks.iter() {
        sink.observe(&analysed).await;
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

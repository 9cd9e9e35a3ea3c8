//! Prometheus metrics, named by Prometheus conventions (base units, `_total` counters).
//! Stream labels are the configured stream ids, so their number is bounded by the config.

use prometheus::{
    exponential_buckets, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// All of Argus's metrics, registered in their own registry; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Frames that came out of the decoder, before sampling.
    pub frames_decoded: IntCounterVec,
    /// Sampled frames an operator has finished with.
    pub frames_analysed: IntCounterVec,
    /// Sampled frames dropped because analysis was behind (live sources only).
    pub frames_dropped: IntCounterVec,
    /// OCR reads by where text was detected: `whole` frames, `areas` (where the picture
    /// changed or text was), or `nothing` (a still view with no text).
    pub ocr_reads: IntCounterVec,
    /// Pixels the OCR detector looked at: with the change gate, fewer than frames x size.
    pub ocr_pixels_read: IntCounter,
    /// Time per model call (a call may serve a batch of frames).
    pub operator_latency: HistogramVec,
    /// Frames per model call.
    pub operator_batch_size: HistogramVec,
    pub publish_latency: HistogramVec,
    pub messages_published: IntCounterVec,
    /// Errors by kind: `stream`, `operator`, `kafka`, `redis`.
    pub errors: IntCounterVec,
    /// 1 for the state each stream is in, 0 for the others.
    pub stream_state: IntGaugeVec,
    /// Reconnection attempts of network sources.
    pub reconnects: IntCounterVec,
    /// Kafka delivery reports by topic and result (`delivered`, `failed`).
    pub kafka_deliveries: IntCounterVec,
    /// Messages waiting in the on-disk spill queue, and their bytes.
    pub kafka_spill_messages: IntGauge,
    pub kafka_spill_bytes: IntGauge,
    /// Messages written to the spill queue since start.
    pub kafka_spilled: IntCounter,
    /// Spilled messages removed because the spill queue was full.
    pub kafka_spill_dropped: IntCounter,
    /// Redis writes waiting for Redis to come back.
    pub redis_pending_writes: IntGauge,
    /// Redis writes dropped because the retry buffer was full.
    pub redis_writes_dropped: IntCounter,
    /// Cameras this worker runs in scale-out mode.
    pub cluster_cameras_assigned: IntGauge,
    /// Moment windows indexed, per camera.
    pub moment_windows_indexed: IntCounterVec,
    /// Windows in the in-memory moment index.
    pub moment_index_windows: IntGauge,
    /// Windows deleted by retention.
    pub moment_windows_expired: IntCounter,
    /// Windows rewritten from layout 1 (JSON) to layout 2 at start.
    pub moment_windows_migrated: IntCounter,
    /// Time to answer a moment query, by kind (`text`, `image`).
    pub moment_query_latency: HistogramVec,
    /// Candidate answers the captioner generated, per camera.
    pub caption_candidates: IntCounterVec,
    /// First captions the self-correction controller did not accept, per camera.
    pub caption_corrections: IntCounterVec,
    /// Captions published, per camera and revision (`first`, `revision`).
    pub captions_published: IntCounterVec,
    /// Chunks of live streams skipped because the captioner was behind.
    pub caption_chunks_skipped: IntCounterVec,
    /// Time a correction round adds, by task (`caption`, `question`).
    pub caption_correction_latency: HistogramVec,
    /// Alerts fired, per camera and rule.
    pub alerts_fired: IntCounterVec,
    /// Alerts a rule would have fired again within its cooldown, per camera and rule.
    pub alerts_suppressed: IntCounterVec,
    /// Frames the object detector ran on, per camera.
    pub object_detections: IntCounterVec,
    /// Frames the object detector skipped, per camera and reason (`rate`, `no_motion`).
    pub object_detections_skipped: IntCounterVec,
    /// Tracks alive, per camera.
    pub object_tracks: IntGaugeVec,
    /// Object events published, per camera and kind.
    pub object_events: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric");
            metric
        };
        let histogram = |name: &str, help: &str, label: &str| {
            // 1 ms .. ~33 s
            let opts = HistogramOpts::new(name, help)
                .buckets(exponential_buckets(0.001, 2.0, 16).expect("valid buckets"));
            let metric = HistogramVec::new(opts, &[label]).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric");
            metric
        };
        let frames_decoded = counter(
            "argus_frames_decoded_total",
            "Frames decoded, before sampling.",
            &["stream"],
        );
        let frames_analysed = counter(
            "argus_frames_analysed_total",
            "Sampled frames analysed by the operators.",
            &["stream"],
        );
        let ocr_reads = counter(
            "argus_ocr_reads_total",
            "OCR reads of sampled frames by where text was detected: whole frames, areas (where the picture changed or text was), or nothing (a still view with no text).",
            &["read"],
        );
        let frames_dropped = counter(
            "argus_frames_dropped_total",
            "Sampled frames dropped because analysis was behind (live sources).",
            &["stream"],
        );
        let operator_latency = histogram(
            "argus_operator_latency_seconds",
            "Time an operator takes per frame.",
            "operator",
        );
        let operator_batch_size = HistogramVec::new(
            HistogramOpts::new("argus_operator_batch_size", "Frames per operator call.")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
            &["operator"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(operator_batch_size.clone()))
            .expect("unique metric");
        let publish_latency = histogram(
            "argus_publish_latency_seconds",
            "Time from publishing a result to its acknowledgement.",
            "sink",
        );
        let messages_published = counter(
            "argus_messages_published_total",
            "Messages acknowledged by Kafka.",
            &["topic"],
        );
        let errors = counter("argus_errors_total", "Errors by kind.", &["kind"]);
        let reconnects = counter(
            "argus_stream_reconnects_total",
            "Reconnection attempts of network sources.",
            &["stream"],
        );
        let stream_state = IntGaugeVec::new(
            Opts::new("argus_stream_state", "1 for the state a stream is in."),
            &["stream", "state"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(stream_state.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process metrics register once");
        let kafka_deliveries = counter(
            "argus_kafka_deliveries_total",
            "Kafka delivery reports by result (delivered, failed).",
            &["topic", "result"],
        );
        let gauge = |name: &str, help: &str| {
            let metric = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric");
            metric
        };
        let plain_counter = |name: &str, help: &str| {
            let metric = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric");
            metric
        };
        let kafka_spill_messages = gauge(
            "argus_kafka_spill_messages",
            "Messages waiting in the on-disk spill queue for the Kafka broker.",
        );
        let kafka_spill_bytes = gauge(
            "argus_kafka_spill_bytes",
            "Bytes of messages waiting in the on-disk spill queue.",
        );
        let kafka_spilled = plain_counter(
            "argus_kafka_spilled_total",
            "Messages written to the spill queue because Kafka was unavailable.",
        );
        let ocr_pixels_read = plain_counter(
            "argus_ocr_pixels_read_total",
            "Pixels the OCR text detector looked at.",
        );
        let kafka_spill_dropped = plain_counter(
            "argus_kafka_spill_dropped_total",
            "Spilled messages dropped because the spill queue was full.",
        );
        let redis_pending_writes = gauge(
            "argus_redis_pending_writes",
            "Redis writes waiting for Redis to come back.",
        );
        let redis_writes_dropped = plain_counter(
            "argus_redis_writes_dropped_total",
            "Redis writes dropped because the retry buffer was full.",
        );
        let cluster_cameras_assigned = gauge(
            "argus_cluster_cameras_assigned",
            "Cameras this worker runs (scale-out mode).",
        );
        let object_detections = counter(
            "argus_object_detections_total",
            "Frames the object detector ran on.",
            &["stream"],
        );
        let object_detections_skipped = counter(
            "argus_object_detections_skipped_total",
            "Frames the object detector skipped: `rate` (above objects.fps) or `no_motion` \
             (nothing moved, tracks kept).",
            &["stream", "reason"],
        );
        let object_tracks = IntGaugeVec::new(
            Opts::new("argus_object_tracks", "Object tracks alive."),
            &["stream"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(object_tracks.clone()))
            .expect("unique metric");
        let object_events = counter(
            "argus_object_events_total",
            "Object events published (track, zone and line events).",
            &["stream", "kind"],
        );
        let moment_windows_indexed = counter(
            "argus_moment_windows_indexed_total",
            "Moment windows indexed (stored, published and searchable).",
            &["stream"],
        );
        let moment_index_windows = gauge(
            "argus_moment_index_windows",
            "Windows in the in-memory moment index.",
        );
        let moment_windows_expired = plain_counter(
            "argus_moment_windows_expired_total",
            "Moment windows deleted by retention.",
        );
        let moment_windows_migrated = plain_counter(
            "argus_moment_windows_migrated_total",
            "Moment windows rewritten from layout 1 (JSON, thumbnail in Redis) to layout 2 at start.",
        );
        let moment_query_latency = histogram(
            "argus_moment_query_latency_seconds",
            "Time to answer a moment query.",
            "kind",
        );
        let caption_candidates = counter(
            "argus_caption_candidates_total",
            "Candidate answers generated for chunk captions (CyberV rounds).",
            &["stream"],
        );
        let caption_corrections = counter(
            "argus_caption_corrections_total",
            "First captions the self-correction controller did not accept.",
            &["stream"],
        );
        let captions_published = counter(
            "argus_captions_published_total",
            "Captions published, first ones and revisions.",
            &["stream", "revision"],
        );
        let caption_chunks_skipped = counter(
            "argus_caption_chunks_skipped_total",
            "Live chunks skipped because the captioner was behind.",
            &["stream"],
        );
        let caption_correction_latency = histogram(
            "argus_caption_correction_latency_seconds",
            "Time a self-correction round adds.",
            "task",
        );
        let alerts_fired = counter(
            "argus_alerts_fired_total",
            "Alerts fired by standing rules.",
            &["stream", "rule"],
        );
        let alerts_suppressed = counter(
            "argus_alerts_suppressed_total",
            "Repeats of an alert not published because its rule fired on the camera within \
             its cooldown_s (for object rules, a new track within the cooldown, once per track).",
            &["stream", "rule"],
        );
        for kind in ["text", "image"] {
            moment_query_latency.with_label_values(&[kind]);
        }
        for kind in ["stream", "operator", "kafka", "redis"] {
            errors.with_label_values(&[kind]);
        }
        Self {
            registry,
            frames_decoded,
            frames_analysed,
            ocr_reads,
            ocr_pixels_read,
            frames_dropped,
            operator_latency,
            operator_batch_size,
            publish_latency,
            messages_published,
            errors,
            stream_state,
            reconnects,
            kafka_deliveries,
            kafka_spill_messages,
            kafka_spill_bytes,
            kafka_spilled,
            kafka_spill_dropped,
            redis_pending_writes,
            redis_writes_dropped,
            cluster_cameras_assigned,
            moment_windows_indexed,
            moment_index_windows,
            moment_windows_expired,
            moment_windows_migrated,
            moment_query_latency,
            caption_candidates,
            caption_corrections,
            captions_published,
            caption_chunks_skipped,
            caption_correction_latency,
            alerts_fired,
            alerts_suppressed,
            object_detections,
            object_detections_skipped,
            object_tracks,
            object_events,
        }
    }

    /// The text exposition format served on `/metrics`.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding of gathered metrics");
        String::from_utf8(buffer).expect("Prometheus text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `argus_*` series a dashboard queries must be one Argus exports.
    #[test]
    fn dashboards_only_use_exported_metrics() {
        let metrics = Metrics::new();
        for vec in [
            &metrics.frames_decoded,
            &metrics.frames_analysed,
            &metrics.frames_dropped,
            &metrics.messages_published,
            &metrics.reconnects,
            &metrics.moment_windows_indexed,
            &metrics.caption_candidates,
            &metrics.caption_corrections,
            &metrics.caption_chunks_skipped,
        ] {
            vec.with_label_values(&["x"]).inc();
        }
        metrics
            .captions_published
            .with_label_values(&["x", "first"])
            .inc();
        metrics
            .caption_correction_latency
            .with_label_values(&["caption"])
            .observe(1.0);
        metrics
            .operator_latency
            .with_label_values(&["x"])
            .observe(0.1);
        metrics
            .operator_batch_size
            .with_label_values(&["x"])
            .observe(2.0);
        metrics
            .publish_latency
            .with_label_values(&["x"])
            .observe(0.1);
        metrics
            .stream_state
            .with_label_values(&["x", "running"])
            .set(1);
        metrics
            .kafka_deliveries
            .with_label_values(&["x", "delivered"])
            .inc();
        let exported = metrics.render();

        let dashboards = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dashboards).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (start, _) in text.match_indices("argus_") {
                let name: String = text[start..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    exported
                        .lines()
                        .any(|line| line.starts_with(&format!("{name}{{"))
                            || line.starts_with(&format!("{name} "))),
                    "{} uses {name}, which Argus does not export",
                    path.display()
                );
                checked += 1;
            }
        }
        assert!(checked > 5, "the dashboards should query Argus metrics");
    }
}

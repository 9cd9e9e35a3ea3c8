//! The application: the one place that builds the parts and wires them together, and the
//! CLI commands that run them. `run` serves until shutdown (or, on request, until every
//! stream has ended); [`index`], [`eval`], [`eval_objects`], [`search`] and [`tail`] are the
//! other commands.
//!
//! A frame's path is wired here: the [`Analyzer`] is every stream's operator and
//! [`sinks`](crate::sinks) lists where analysed frames go. Adding a sink is one module in
//! `sinks/` plus one line in [`start_sinks`].

pub mod eval;
pub mod eval_objects;
pub mod index;
pub mod search;
pub mod tail;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::access::Access;
use crate::api::{self, ApiSlot, ApiState};
use crate::captions::alerts::AlertRules;
use crate::cluster::peers::Peers;
use crate::cluster::{self, CameraDirectory};
use crate::config::{Config, RuleScope};
use crate::metrics::Metrics;
use crate::moments::{DiskThumbnails, IndexModels, MomentIndex, MomentStore};
use crate::objects::book::ZoneBook;
use crate::operators::captioning::CaptionModel;
use crate::operators::detector::ObjectDetector;
use crate::operators::embedder::{Embedder, VisualEmbedder};
use crate::operators::objects::ObjectTracking;
use crate::operators::ocr::Analyzer;
use crate::operators::rerank::MomentReranker;
use crate::publish::{AlertPublisher, KafkaPublisher, RedisState, TopicSpec};
use crate::query::alerts::AlertBook;
use crate::query::clips::Clips;
use crate::query::moments::MomentSearch;
use crate::query::questions::Questions;
use crate::query::timeline::TimelineReader;
use crate::query::zones::ZoneStore;
use crate::recordings::clip::ClipCache;
use crate::recordings::{
    retention, ClipLinks, Recorder, RecordingMarks, RecordingMetrics, SegmentIndex,
};
use crate::redact::redact_text;
use crate::sinks::{
    CaptionSink, FrameResults, MomentIndexer, ObjectAlertSink, ObjectSink, RecordedFiles,
    RecordingMarker,
};
use crate::source;
use crate::stream::{FrameSink, Sinks, StreamContext, StreamManager, StreamRegistry, StreamState};

/// How a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every stream was read to its end, or Argus was asked to stop.
    Completed,
    /// `exit_when_done` and at least one stream failed.
    StreamsFailed,
}

pub struct RunOptions {
    /// Exit once every stream is finished or failed, instead of serving until stopped.
    pub exit_when_done: bool,
    /// The configuration file, re-read on SIGHUP to add, change and remove streams.
    pub config_file: Option<std::path::PathBuf>,
}

pub async fn run(config: Config, options: RunOptions) -> anyhow::Result<Outcome> {
    let config = Arc::new(config);
    let metrics = Metrics::new();
    source::init()?;

    // Bind first: loading models and the moment index takes seconds to minutes, and a
    // Kubernetes startup probe (or a user's curl) must get an answer meanwhile.
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {} (http.listen)", config.http.listen))?;
    let address = listener.local_addr()?;
    let api_slot = ApiSlot::default();
    let starting = api_slot.router();
    tokio::spawn(async move {
        if let Err(error) = axum::serve(
            listener,
            starting.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        {
            tracing::error!(%error, "HTTP server stopped");
        }
    });
    tracing::info!("HTTP server on http://{address}: /healthz answers; the API follows once the models are loaded");

    let analyzer = start_analyzer(&config, &metrics)?;

    let spill_path = config.kafka.spill.resolve_path(&config.http);
    let (kafka, redis) = connect_publishers(&config, &spill_path, &metrics).await?;
    // Which cameras have video (the recorder and `sinks::RecordedFiles` mark them): clip links on
    // moments, captions, object events and alerts.
    let clip_links = ClipLinks::default();
    let moments = start_moments(&config, &kafka, &redis, &metrics, true, &clip_links).await?;
    let moment_search = moments.as_ref().map(|(_, search)| search.clone());
    // What `events` mode recording keeps: spans around object events, motion and alerts.
    let marks = RecordingMarks::default();
    // One publisher for every alert (chunk and object rules, acknowledgements); each alert
    // marks its span for `events` mode recording.
    let mut alert_publisher = AlertPublisher::new(
        kafka.clone(),
        &config.kafka.topics,
        redis.clone(),
        metrics.clone(),
    );
    let alert_marks = marks.clone();
    alert_publisher.on_publish = Some(Arc::new(move |alert| {
        alert_marks.mark(&alert.camera_id, alert.start, alert.end)
    }));
    let alerts = load_alerts(&config, &redis, &alert_publisher).await?;
    let captions = start_captions(
        &config,
        &kafka,
        &redis,
        moments.as_ref().map(|(indexer, _)| indexer.clone()),
        alerts
            .as_ref()
            .map(|book| (book.rules().clone(), alert_publisher.clone())),
        &clip_links,
        &metrics,
    )
    .await?;
    let zones = ZoneStore::load(&config.objects.zones, &config.objects.lines, redis.clone()).await;
    let objects = start_objects(&config, &metrics, zones.book().clone())?;
    let sinks = start_sinks(
        &config,
        &kafka,
        &redis,
        &metrics,
        moments.as_ref().map(|(indexer, _)| indexer.clone()),
        captions.as_ref().map(|captions| captions.sink.clone()),
        alerts
            .as_ref()
            .map(|book| (book.rules().clone(), alert_publisher.clone())),
        Some(marks.clone()),
        &clip_links,
    );

    let recorder = start_recorder(&config, &redis, &metrics, clip_links.clone(), marks);

    let registry = StreamRegistry::new(metrics.clone());
    let manager = StreamManager::new(StreamContext {
        registry: registry.clone(),
        analyser: Arc::new(analyzer),
        objects: objects.map(|objects| Arc::new(objects) as _),
        sinks,
        recorder: Some(Arc::new(recorder.clone())),
        metrics: metrics.clone(),
    });
    let directory = if config.cluster.enabled {
        Some(CameraDirectory::new(&config.kafka, &config.cluster)?)
    } else {
        None
    };
    let peers = if config.cluster.enabled {
        let peers = Peers::new(&config.cluster, &config.http, redis.clone())?;
        tracing::info!(url = peers.url(), "moment queries cover every worker; this worker answers the others at this address (cluster.advertise_url)");
        tokio::spawn(peers.clone().run(registry.clone(), moment_search.clone()));
        Some(peers)
    } else {
        None
    };
    tokio::spawn(reconcile_recordings(
        recorder.clone(),
        config.clone(),
        directory.clone(),
        registry.clone(),
    ));
    api_slot.install(api::router(ApiState {
        registry: registry.clone(),
        manager: manager.clone(),
        metrics: metrics.clone(),
        directory: directory.clone(),
        peers: peers.clone(),
        kafka: kafka.clone(),
        redis: redis.clone(),
        access: Access::new(&config.http),
        cors_origins: config.http.cors_origins.clone(),
        moments: moment_search.clone(),
        questions: captions.map(|captions| captions.questions),
        alerts,
        zones,
        clips: Clips::new(
            SegmentIndex::new(redis.clone()),
            moment_store(&config, &redis),
            registry.clone(),
            ClipCache::new(
                std::env::temp_dir().join(CLIP_CACHE_DIR),
                CLIP_CACHE_BYTES,
                CONCURRENT_CUTS,
            ),
            Duration::from_secs_f64(config.record.max_clip_s),
        ),
        timeline: TimelineReader::new(
            redis.clone(),
            SegmentIndex::new(redis.clone()),
            clip_links.clone(),
            config.record.max_clip_s,
        ),
    }));
    if config.http.api_token.as_deref().unwrap_or("").is_empty() {
        tracing::info!("http.api_token is not set: the API is read-only (set ARGUS_HTTP__API_TOKEN to add and change streams through it)");
    }
    tracing::info!("HTTP API on http://{address} (metrics: http://{address}/metrics, streams: http://{address}/api/v1/streams)");

    if let Some(directory) = &directory {
        // Configured cameras join the shared set; the group decides who runs them.
        directory
            .declare(&config.streams)
            .await
            .context("publishing the configured streams to the control topic")?;
        let (kafka_config, cluster, manager, metrics) = (
            config.kafka.clone(),
            config.cluster.clone(),
            manager.clone(),
            metrics.clone(),
        );
        tokio::spawn(async move {
            if let Err(error) = cluster::run_worker(kafka_config, cluster, manager, metrics).await {
                tracing::error!(%error, "this worker left the group");
            }
        });
    } else {
        for stream in config.streams.clone() {
            manager.start(stream).await?;
        }
    }
    if config.streams.is_empty() && directory.is_none() {
        tracing::warn!("no streams configured: add [[streams]] to the config, pass --stream ID=URI, or POST /api/v1/streams");
    }
    if let Some(file) = options.config_file.clone() {
        tokio::spawn(reload_on_hangup(file, manager.clone(), directory.clone()));
    }

    tokio::select! {
        _ = registry.all_done(), if options.exit_when_done => tracing::info!("every stream has ended"),
        _ = shutdown_signal() => tracing::info!("shutting down"),
    }
    if let Some(peers) = &peers {
        peers.leave().await;
    }
    manager.stop_all().await;
    // The streams closed their last segments as they stopped.
    recorder.flush().await;
    // The streams' last windows are in: the next start reopens this save.
    if let Some(search) = &moment_search {
        search.save_at_shutdown().await;
    }
    tracing::info!("delivering queued messages to Kafka");
    let waiting = kafka.close(Duration::from_secs(30)).await;
    if waiting > 0 {
        tracing::error!(messages = waiting, file = %spill_path.display(),
            "Kafka did not take every message before exit; the spill file keeps them for the next start");
    }

    let failed: Vec<_> = registry
        .list()
        .into_iter()
        .filter(|status| status.state == StreamState::Failed)
        .collect();
    for status in &failed {
        tracing::error!(stream = %status.id, error = status.error.as_deref().unwrap_or("unknown"), "stream failed");
    }
    Ok(if options.exit_when_done && !failed.is_empty() {
        Outcome::StreamsFailed
    } else {
        Outcome::Completed
    })
}

/// Clips are cut into `{temp dir}/argus-clips`: a cache, named by what each clip was cut
/// from, so instances and restarts share it safely.
const CLIP_CACHE_DIR: &str = "argus-clips";
/// The clip cache's bound: three clips of the longest span (600 s) of a 4 Mbit/s camera.
const CLIP_CACHE_BYTES: u64 = 1 << 30;
/// Clips cut at once, at most (each holds a blocking thread and reads the disk).
const CONCURRENT_CUTS: usize = 2;

/// Where every stream's analysed frames go, in the order they are handed over: objects and
/// their alert rules, the moment index and the captions (when enabled), then the frame
/// results. A new sink is one line here.
#[allow(clippy::too_many_arguments)]
pub(crate) fn start_sinks(
    config: &Config,
    kafka: &KafkaPublisher,
    redis: &RedisState,
    metrics: &Metrics,
    moments: Option<MomentIndexer>,
    captions: Option<CaptionSink>,
    alerts: Option<(AlertRules, AlertPublisher)>,
    recording: Option<RecordingMarks>,
    clip_links: &ClipLinks,
) -> Sinks {
    let mut sinks: Vec<Arc<dyn FrameSink>> = Vec::new();
    sinks.push(Arc::new(RecordedFiles::new(clip_links.clone())));
    if config.objects.enabled {
        sinks.push(Arc::new(ObjectSink::new(
            config,
            kafka.clone(),
            redis.clone(),
            metrics.clone(),
            clip_links.clone(),
        )));
    }
    if let Some((rules, publisher)) = alerts.filter(|_| config.objects.enabled) {
        sinks.push(Arc::new(ObjectAlertSink::new(
            rules,
            publisher,
            clip_links.clone(),
        )));
    }
    if let Some(moments) = moments {
        sinks.push(Arc::new(moments));
    }
    if let Some(captions) = captions {
        sinks.push(Arc::new(captions));
    }
    if let Some(marks) = recording {
        let (motion, min_motion) = (
            config.record.events_include_motion,
            config.objects.min_motion,
        );
        sinks.push(Arc::new(RecordingMarker::new(marks, motion, min_motion)));
    }
    sinks.push(Arc::new(FrameResults::new(
        config,
        kafka.clone(),
        redis.clone(),
    )));
    sinks.into()
}

/// The recorder of live cameras (every camera may turn recording on for itself) and its
/// retention.
fn start_recorder(
    config: &Config,
    redis: &RedisState,
    metrics: &Metrics,
    links: ClipLinks,
    marks: RecordingMarks,
) -> Recorder {
    let recorder = Recorder::start(
        config.record.clone(),
        SegmentIndex::new(redis.clone()),
        links,
        marks,
        RecordingMetrics::register(&metrics.registry),
    );
    tokio::spawn(retention::run(recorder.clone()));
    recorder
}

/// Reconciles the recordings' index with the disk (see [`retention::reconcile`]). The cameras
/// that exist are the configured ones, those running here (added through the API), and in
/// scale-out mode those on the control topic; if the control topic cannot be read nothing is
/// deleted as orphaned.
async fn reconcile_recordings(
    recorder: Recorder,
    config: Arc<Config>,
    directory: Option<CameraDirectory>,
    registry: StreamRegistry,
) {
    let mut known: std::collections::HashSet<String> =
        config.streams.iter().map(|s| s.id.clone()).collect();
    known.extend(registry.list().into_iter().map(|status| status.id));
    if let Some(directory) = directory {
        match directory.cameras().await {
            Ok(cameras) => known.extend(cameras.into_keys()),
            Err(error) => {
                tracing::warn!(%error, "recordings not reconciled: the cameras on the control topic are unknown");
                return;
            }
        }
    }
    if let Err(error) = retention::reconcile(&recorder, &known).await {
        tracing::warn!(%error, "recordings not reconciled: the index is not readable");
    }
}

/// The objects stage with its detector loaded; `None` when `objects.enabled` is false.
pub(crate) fn start_objects(
    config: &Config,
    metrics: &Metrics,
    zones: ZoneBook,
) -> anyhow::Result<Option<ObjectTracking>> {
    if !config.objects.enabled {
        return Ok(None);
    }
    let dir = config.objects.model_dir(&config.models);
    let detector = ObjectDetector::start(
        &dir,
        config.objects.detector.clone(),
        &config.analysis,
        metrics.clone(),
    )
    .with_context(|| {
        format!(
            "loading the object detector from {} (objects.model; set objects.enabled = false \
             to run without objects)",
            dir.display()
        )
    })?;
    tracing::info!(fps = config.objects.fps, architecture = ?config.objects.detector.architecture,
        "objects: detection and tracking ready");
    Ok(Some(ObjectTracking::new(
        &config.objects,
        detector,
        zones,
        metrics.clone(),
    )))
}

/// The operators, loaded from the model folder (failing with the missing file named).
pub(crate) fn start_analyzer(config: &Config, metrics: &Metrics) -> anyhow::Result<Analyzer> {
    let model_dir = config.models.resolve_dir();
    let analyzer = Analyzer::start(
        &model_dir,
        config.ocr.clone(),
        config.analysis.clone(),
        metrics.clone(),
    )
    .with_context(|| format!("loading the OCR models from {}", model_dir.display()))?;
    tracing::info!(models = %model_dir.display(), "operators ready");
    Ok(analyzer)
}

/// The Kafka producer (with the topics Argus writes) and the Redis writer. Neither needs its
/// service to be up: messages wait on disk and writes in the retry buffer until it is.
pub(crate) async fn connect_publishers(
    config: &Config,
    spill_path: &std::path::Path,
    metrics: &Metrics,
) -> anyhow::Result<(KafkaPublisher, RedisState)> {
    let kafka = KafkaPublisher::new(&config.kafka, spill_path, metrics.clone())?;
    let mut topics = vec![
        topic_of(config, &config.kafka.topics.frame_results),
        topic_of(config, &config.kafka.topics.stream_events),
    ];
    if config.moments.enabled {
        topics.push(topic_of(config, &config.kafka.topics.moments));
    }
    if config.objects.enabled {
        topics.push(topic_of(config, &config.kafka.topics.objects));
        topics.push(topic_of(config, &config.kafka.topics.object_events));
    }
    if config.captions.enabled {
        topics.push(topic_of(config, &config.kafka.topics.captions));
        topics.push(topic_of(config, &config.kafka.topics.answers));
    }
    if config.captions.enabled || config.objects.enabled {
        topics.push(topic_of(config, &config.kafka.topics.alerts));
        topics.push(topic_of(config, &config.kafka.topics.alerts_v2));
        topics.push(topic_of(config, &config.kafka.topics.alert_acks));
    }
    if config.cluster.enabled {
        topics.push(TopicSpec {
            name: &config.cluster.control_topic,
            partitions: config.cluster.control_partitions,
            compacted: true,
        });
    }
    let names: Vec<&str> = topics.iter().map(|topic| topic.name).collect();
    for topic in &names {
        metrics.messages_published.with_label_values(&[topic]);
        for result in ["delivered", "failed"] {
            metrics.kafka_deliveries.with_label_values(&[topic, result]);
        }
    }
    match KafkaPublisher::ensure_topics(&config.kafka, &topics, Duration::from_secs(10)).await {
        Ok(()) => {
            tracing::info!(brokers = %config.kafka.brokers, topics = ?names, "Kafka topics ready")
        }
        Err(error @ crate::publish::KafkaPublishError::TopicRejected { .. }) => return Err(error)
            .context(
            "creating the Kafka topics (kafka.topics, kafka.partitions, kafka.replication_factor)",
        ),
        // Results wait in memory, then in the spill file, until the broker is reachable.
        Err(error) => {
            tracing::error!(%error, "Kafka is not reachable yet; results are kept until it is")
        }
    }
    let redis = RedisState::new(&config.redis, metrics.clone())
        .with_context(|| format!("invalid redis.url `{}`", redact_text(&config.redis.url)))?;
    match redis.ping().await {
        Ok(()) => tracing::info!(url = %redact_text(&config.redis.url), "Redis ready"),
        Err(error) => {
            tracing::error!(%error, "Redis is not reachable yet; live state is written once it is")
        }
    }
    Ok((kafka, redis))
}

fn topic_of<'a>(config: &Config, name: &'a str) -> TopicSpec<'a> {
    TopicSpec {
        name,
        partitions: config.kafka.partitions_of(name),
        compacted: false,
    }
}

/// The moment store: windows in Redis, thumbnails under `moments.data_dir`.
fn moment_store(config: &Config, redis: &RedisState) -> MomentStore {
    let thumbnails = config
        .moments
        .data_dir(redis.key_prefix())
        .join("thumbnails");
    MomentStore::new(redis.clone(), Arc::new(DiskThumbnails::new(thumbnails)))
}

/// The moment indexer and, when `searchable`, the search service over an index loaded from
/// Redis (kept current by following the store and pruned by retention). `None` when
/// `moments.enabled` is false.
pub(crate) async fn start_moments(
    config: &Config,
    kafka: &KafkaPublisher,
    redis: &RedisState,
    metrics: &Metrics,
    searchable: bool,
    clip_links: &ClipLinks,
) -> anyhow::Result<Option<(MomentIndexer, MomentSearch)>> {
    if !config.moments.enabled {
        tracing::info!("moment index disabled (moments.enabled = false)");
        return Ok(None);
    }
    let model_dir = config.moments.text_model_dir(&config.models);
    let embedder = Embedder::start(&model_dir).with_context(|| {
        format!(
            "loading the moment index's text model from {} (moments.text_model; \
             set moments.enabled = false to run without the moment index)",
            model_dir.display()
        )
    })?;
    let visual = match config.moments.visual_model_dir(&config.models) {
        Some(dir) => {
            let visual = VisualEmbedder::start(&dir).with_context(|| {
                format!(
                    "loading the moment index's image-text encoder from {} \
                     (moments.visual_model: a CLIP or SigLIP folder; unset it to index text \
                     and colour layout only)",
                    dir.display()
                )
            })?;
            tracing::info!(
                model = visual.model(),
                "moment windows are embedded visually"
            );
            Some(visual)
        }
        None => None,
    };
    let store = moment_store(config, redis);
    let index = Arc::new(
        MomentIndex::new(
            config.moments.exact_search_below,
            IndexModels {
                text: embedder.model().to_owned(),
                visual: visual.as_ref().map(|v| v.model().to_owned()),
            },
        )
        .with_connectivity(config.moments.index_connectivity),
    );
    let search = MomentSearch::new(
        index.clone(),
        store.clone(),
        embedder.clone(),
        visual.clone(),
        MomentReranker::start(config.moments.rerank_model_dir(&config.models))?,
        config.moments.clone(),
        metrics.clone(),
        clip_links.clone(),
        config
            .moments
            .data_dir(redis.key_prefix())
            // One saved index per instance: instances on one host share the thumbnails,
            // never a save in progress.
            .join(format!("index-{}", config.http.listen.port())),
    );
    if searchable {
        // Follow first: windows stored while the load runs are not missed.
        tokio::spawn(search.clone().follow_store());
        tokio::spawn(search.clone().load_stored());
    }
    let indexer = MomentIndexer::new(
        Duration::from_secs_f64(config.moments.window_s),
        embedder,
        visual,
        kafka.clone(),
        config.kafka.topics.moments.clone(),
        store,
        searchable.then_some(index),
        metrics.clone(),
    );
    tokio::spawn(indexer.clone().close_elapsed_windows());
    Ok(Some((indexer, search)))
}

/// The alert rules in force (configured, and stored through the API) when something checks
/// them: chunk rules need captions, object rules need objects; `None` when neither is on.
async fn load_alerts(
    config: &Config,
    redis: &RedisState,
    publisher: &AlertPublisher,
) -> anyhow::Result<Option<AlertBook>> {
    if !config.captions.enabled && !config.objects.enabled {
        return Ok(None);
    }
    let book = AlertBook::load(
        &config.alerts.rules,
        RuleScope::of(config),
        redis.clone(),
        publisher.clone(),
    )
    .await
    .map_err(anyhow::Error::msg)
    .context("loading the alert rules (alerts.rules)")?;
    Ok(Some(book))
}

/// What chunk captions need: the sink that cuts and captions chunks, and what the API
/// serves from the same model (questions).
struct Captions {
    sink: CaptionSink,
    questions: Questions,
}

/// The captioning model (LLM and tagger) loaded, its sink and questions; `None` when
/// `captions.enabled` is false. `rules` are the alert rules the chunks are checked against.
async fn start_captions(
    config: &Config,
    kafka: &KafkaPublisher,
    redis: &RedisState,
    moments: Option<MomentIndexer>,
    alerts: Option<(AlertRules, AlertPublisher)>,
    clip_links: &ClipLinks,
    metrics: &Metrics,
) -> anyhow::Result<Option<Captions>> {
    let (true, Some((rules, alerts))) = (config.captions.enabled, alerts) else {
        tracing::info!("chunk captions disabled (captions.enabled = false)");
        return Ok(None);
    };
    let context = "starting the captioner (captions.llm_model, captions.tag_model; \
                   set captions.enabled = false to run without captions)";
    // Question rules are checked against the chunk's text with the moment index's embedder.
    let embedder = moments.as_ref().map(|m| m.embedder().clone());
    let (model, names) =
        CaptionModel::start(&config.captions, &config.models, embedder, metrics.clone())
            .context(context)?;
    let sink = CaptionSink::start(
        config,
        model.clone(),
        names.captions,
        rules,
        alerts,
        kafka.clone(),
        redis.clone(),
        moments,
        clip_links.clone(),
        metrics.clone(),
    );
    let questions = Questions::new(
        config,
        model,
        names.answers,
        kafka.clone(),
        redis.clone(),
        metrics.clone(),
    );
    tracing::info!(
        chunk_s = config.captions.chunk_s,
        candidates = config.captions.candidates,
        threshold = config.captions.threshold,
        "chunk captions with self-correction ready"
    );
    Ok(Some(Captions { sink, questions }))
}

/// SIGHUP: re-read the configuration file and apply its streams; other settings need a restart.
/// In scale-out mode the file's streams are declared on the control topic instead (added or
/// changed, never removed: other workers' files may list other cameras).
async fn reload_on_hangup(
    file: std::path::PathBuf,
    manager: StreamManager,
    directory: Option<CameraDirectory>,
) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    while hangups.recv().await.is_some() {
        match Config::load(Some(&file)) {
            Ok(config) => {
                tracing::info!(file = %file.display(), streams = config.streams.len(), "reloading streams");
                match &directory {
                    Some(directory) => {
                        if let Err(error) = directory.declare(&config.streams).await {
                            tracing::error!(%error, "streams not declared");
                        }
                    }
                    None => manager.reload(config.streams).await,
                }
            }
            Err(error) => tracing::error!(%error, "configuration not reloaded"),
        }
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

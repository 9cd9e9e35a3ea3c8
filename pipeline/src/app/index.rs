//! `argus index`: index a long recording, faster than real time, resumably.
//!
//! The recording runs through the same stream machinery as live video (decode, sample,
//! OCR, windows, embeddings) with its frames stamped in the recording's own time
//! (`--start` + media time), so the moments found carry the time the video was shot. Frames
//! are taken as fast as the operators keep up, not at the video's pace.
//!
//! Progress is checkpointed in Redis (the end of the newest window stored, per recording);
//! run the same command again after an interruption and it skips the indexed part without
//! analysing it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::{connect_publishers, start_analyzer, start_moments, start_objects, start_sinks};
use crate::config::{Config, StreamConfig};
use crate::metrics::Metrics;
use crate::query::zones::ZoneStore;
use crate::redact::redact_text;
use crate::source::probe::duration_of;
use crate::stream::{StreamContext, StreamManager, StreamRegistry, StreamState};

/// What to index.
#[derive(Debug, Clone)]
pub struct RecordingJob {
    pub file: PathBuf,
    pub camera: String,
    /// When the recording began: the time of its first frame.
    pub start: DateTime<Utc>,
    pub sample_fps: f64,
    /// Index from the beginning even if an earlier run finished or got part of the way.
    pub restart: bool,
    /// Draw a progress bar (a terminal); otherwise log progress lines.
    pub progress_bar: bool,
}

/// How a run ended.
#[derive(Debug, Clone, Serialize)]
pub struct RecordingSummary {
    pub camera: String,
    pub windows: u64,
    pub video_seconds: f64,
    pub wall_seconds: f64,
    /// Video seconds indexed per wall-clock second.
    pub speed: f64,
    /// Set when an earlier run had finished and nothing was done.
    pub already_indexed: bool,
}

/// The checkpoint kept in Redis.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkpoint {
    file: String,
    /// The end of the newest stored window (ms since the epoch).
    indexed_until_ms: Option<i64>,
    complete: bool,
}

/// A recording's identity: its path, size and modification time, and the start it is
/// indexed at. The same command on the same file resumes; a changed file starts over.
fn recording_id(file: &Path, start: DateTime<Utc>) -> anyhow::Result<String> {
    let metadata = std::fs::metadata(file)?;
    let modified = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis());
    let key = format!(
        "{}|{}|{modified}|{}",
        file.display(),
        metadata.len(),
        start.to_rfc3339()
    );
    Ok(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, key.as_bytes()).to_string())
}

pub async fn index_recording(
    mut config: Config,
    job: RecordingJob,
) -> anyhow::Result<RecordingSummary> {
    anyhow::ensure!(
        config.moments.enabled,
        "moments.enabled is false: nothing to index into"
    );
    let file = std::fs::canonicalize(&job.file)
        .with_context(|| format!("cannot read {}", job.file.display()))?;
    anyhow::ensure!(file.is_file(), "{} is not a file", file.display());
    let mut stream = StreamConfig::new(job.camera.clone(), format!("file://{}", file.display()));
    if let Some(problem) = stream.problems() {
        anyhow::bail!("--camera: {problem}");
    }
    anyhow::ensure!(
        job.sample_fps > 0.0 && job.sample_fps <= 30.0,
        "--fps {} must be in (0, 30]",
        job.sample_fps
    );
    crate::source::init()?;
    let duration = duration_of(&stream.uri)
        .with_context(|| format!("{} is not a readable video", file.display()))?;

    let metrics = Metrics::new();
    // Its own spill file: a service on this machine holds the default one open.
    if config.kafka.spill.path.is_none() {
        let default = config.kafka.spill.resolve_path(&config.http);
        config.kafka.spill.path =
            Some(default.with_file_name(format!("kafka-spill-index-{}.redb", job.camera)));
    }
    let spill_path = config.kafka.spill.resolve_path(&config.http);
    let (kafka, redis) = connect_publishers(&config, &spill_path, &metrics).await?;
    redis.ping().await.with_context(|| {
        format!(
            "Redis at {} is needed to store the index",
            redact_text(&config.redis.url)
        )
    })?;
    let (indexer, search) = start_moments(&config, &kafka, &redis, &metrics, false)
        .await?
        .expect("moments are enabled");

    let checkpoint_key = search
        .store
        .recording_key(&job.camera, &recording_id(&file, job.start)?);
    let mut connection = redis.connection().await?;
    let previous: Option<Checkpoint> = if job.restart {
        None
    } else {
        let json: Option<String> = connection.get(&checkpoint_key).await?;
        json.and_then(|json| serde_json::from_str(&json).ok())
    };
    if previous.as_ref().is_some_and(|c| c.complete) {
        return Ok(RecordingSummary {
            camera: job.camera,
            windows: 0,
            video_seconds: duration.as_secs_f64(),
            wall_seconds: 0.0,
            speed: 0.0,
            already_indexed: true,
        });
    }
    let resume_from = previous
        .and_then(|c| c.indexed_until_ms)
        .and_then(DateTime::from_timestamp_millis);
    if let Some(from) = resume_from {
        tracing::info!(camera = %job.camera, at = %from, "resuming where the last run stopped");
    }

    let analyzer = start_analyzer(&config, &metrics)?;
    // The zones drawn through the API apply to a recording of the camera too.
    let zones = ZoneStore::load(&config.objects.zones, &config.objects.lines, redis.clone()).await;
    let registry = StreamRegistry::new(metrics.clone());
    let manager = StreamManager::new(StreamContext {
        registry: registry.clone(),
        analyser: Arc::new(analyzer),
        // Moment windows carry the objects, when they are on.
        objects: start_objects(&config, &metrics, zones.book().clone())?
            .map(|objects| Arc::new(objects) as _),
        // `argus index` builds the moment index (and publishes the objects); captions and
        // alerts come from the service.
        sinks: start_sinks(
            &config,
            &kafka,
            &redis,
            &metrics,
            Some(indexer.clone()),
            None,
            None,
            &Default::default(),
        ),
        metrics: metrics.clone(),
    });
    stream.sample_fps = job.sample_fps;
    stream.start_time = Some(job.start);
    stream.analyse_from = resume_from;
    let started = Instant::now();
    manager.start(stream).await?;

    let bar = progress_bar(duration, job.progress_bar);
    let save = |complete: bool| {
        let until = indexer
            .indexed_until(&job.camera)
            .or(resume_from.map(|t| t.timestamp_millis()));
        // Only what Redis holds counts: buffered writes would be lost with this process.
        let checkpoint = Checkpoint {
            file: file.display().to_string(),
            indexed_until_ms: until,
            complete,
        };
        let (mut connection, key, pending) =
            (connection.clone(), checkpoint_key.clone(), redis.pending());
        async move {
            if pending > 0 {
                return;
            }
            let json = serde_json::to_string(&checkpoint).expect("checkpoints serialise");
            let _: redis::RedisResult<()> = connection.set(&key, json).await;
        }
    };
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut last_log = Instant::now();
    let interrupted = loop {
        tokio::select! {
            _ = registry.all_done() => break false,
            _ = tokio::signal::ctrl_c() => break true,
            _ = tick.tick() => {
                let position = registry
                    .get(&job.camera)
                    .and_then(|s| s.last_frame_time)
                    .map_or(0, |t| (t - job.start).num_milliseconds().max(0) as u64);
                bar.set_position(position.min(duration.as_millis() as u64));
                if !job.progress_bar && last_log.elapsed() > Duration::from_secs(10) {
                    last_log = Instant::now();
                    tracing::info!(camera = %job.camera, done = format!("{:.0}%", 100.0 * position as f64 / duration.as_millis().max(1) as f64), "indexing");
                }
                save(false).await;
            }
        }
    };
    if interrupted {
        manager.stop_all().await;
    }
    bar.finish_and_clear();
    // Windows stored while Redis was away must reach it before this process exits.
    let deadline = Instant::now() + Duration::from_secs(30);
    while redis.pending() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let unsent = kafka.close(Duration::from_secs(30)).await;
    if unsent > 0 {
        tracing::warn!(messages = unsent, file = %spill_path.display(),
            "Kafka did not take every moment window; the spill file keeps them for the next run");
    }
    let status = registry.get(&job.camera);
    let failed = status
        .as_ref()
        .filter(|s| s.state == StreamState::Failed)
        .map(|s| s.error.clone().unwrap_or_default());
    let complete = !interrupted && failed.is_none() && redis.pending() == 0;
    save(complete).await;
    if redis.pending() > 0 {
        anyhow::bail!(
            "Redis did not take {} window writes; run the same command again to index the rest",
            redis.pending()
        );
    }
    if let Some(error) = failed {
        anyhow::bail!("{error}");
    }
    if interrupted {
        anyhow::bail!("interrupted; run the same command again to resume");
    }
    let wall = started.elapsed().as_secs_f64();
    // What the frames covered, as a player times them; the container's duration can count
    // media its edit list skips (an MP4 trimmed without re-encoding keeps its movie length).
    let end = status
        .as_ref()
        .and_then(|s| s.last_frame_time)
        .map(|last| (last - job.start).num_milliseconds() as f64 / 1e3 + 1.0 / job.sample_fps)
        .unwrap_or(duration.as_secs_f64());
    let video = end
        - resume_from.map_or(0.0, |from| {
            (from - job.start).num_milliseconds() as f64 / 1e3
        });
    Ok(RecordingSummary {
        windows: metrics
            .moment_windows_indexed
            .with_label_values(&[&job.camera])
            .get(),
        camera: job.camera,
        video_seconds: video,
        wall_seconds: wall,
        speed: video / wall.max(1e-9),
        already_indexed: false,
    })
}

fn progress_bar(duration: Duration, visible: bool) -> indicatif::ProgressBar {
    if !visible {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(duration.as_millis() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} indexing [{bar:40.cyan/blue}] {percent:>3}% of {msg} · {elapsed} elapsed · ETA {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(
        humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string(),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

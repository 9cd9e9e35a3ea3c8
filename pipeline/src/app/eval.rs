//! `argus eval`: the moment-retrieval benchmark.
//!
//! `tests/moments/build_benchmark.py` builds a long video from real footage (Debian's
//! `opencv-doc` samples) and generated scenes with known on-screen text, plus the queries
//! and the spans that answer them. The same frames come twice: in Matroska without B-frames
//! (PTS from 0), and as an MP4 with B-frames, whose demuxed PTS are shifted by its edit list
//! (as NVR and phone exports are). This indexes each video like any recording, under a
//! camera of its own (resumably: a second run reuses the index in Redis), asks every query
//! through the same search the API uses, and scores the answers with [`crate::moments::eval`]:
//! R1@0.5, R1@0.7 and mAP as QVHighlights/Lighthouse compute them, R@1 and R@5 as
//! MomentSeeker reports them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::index::{index_recording, RecordingJob, RecordingSummary};
use super::{connect_publishers, start_moments};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::moments::eval::{self, QueryOutcome, RetrievalScores, ScoredSpan, Span};
use crate::moments::query::{FilterRequest, Moment};
use crate::recordings::ClipLinks;

/// Predictions scored per query: the evaluators keep the first 10.
const PREDICTIONS: usize = 10;

/// The benchmark video's recorded time starts here.
pub const BENCHMARK_START: &str = "2026-01-01T00:00:00Z";

/// The benchmark's videos, and what their camera's name gets after the `--camera` given.
const VIDEOS: [(&str, &str); 2] = [("benchmark.mkv", ""), ("benchmark-bframes.mp4", "-bframes")];

#[derive(Deserialize)]
struct TextQuery {
    id: String,
    /// `phrase` (the words on screen) or `paraphrase` (the same in other words).
    #[serde(default = "phrase")]
    kind: String,
    query: String,
    spans: Vec<[f64; 2]>,
}

fn phrase() -> String {
    "phrase".into()
}

#[derive(Deserialize)]
struct ImageQuery {
    id: String,
    image: PathBuf,
    spans: Vec<[f64; 2]>,
}

/// One query's answer, for the report.
#[derive(Debug, Serialize)]
pub struct QueryReport {
    pub id: String,
    pub query: String,
    pub ground_truth: Vec<[f64; 2]>,
    /// The top moment, in seconds from the start of the video, and its score.
    pub top: Option<[f64; 3]>,
    pub took_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct BenchmarkReport {
    /// The benchmark's video file this scores.
    pub video: String,
    pub indexing: RecordingSummary,
    /// Queries with the words shown on screen.
    pub text: RetrievalScores,
    /// The same spans asked in other words.
    pub paraphrase: RetrievalScores,
    pub image: RetrievalScores,
    /// The text and paraphrase queries again with the LLM rerank (`argus eval --rerank`).
    pub text_reranked: Option<RetrievalScores>,
    pub paraphrase_reranked: Option<RetrievalScores>,
    pub queries: Vec<QueryReport>,
    pub query_latency_ms_p50: f64,
    pub reranked_latency_ms_p50: Option<f64>,
}

fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Vec<T>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("{} line {}: not a query", path.display(), n + 1))
        })
        .collect()
}

/// Moments as spans in seconds from the start of the video.
fn in_seconds(moments: &[Moment], start: DateTime<Utc>) -> Vec<ScoredSpan> {
    let seconds = |time: DateTime<Utc>| (time - start).num_milliseconds() as f64 / 1e3;
    moments
        .iter()
        .map(|m| ScoredSpan::new(seconds(m.start), seconds(m.end), f64::from(m.score)))
        .collect()
}

fn spans(spans: &[[f64; 2]]) -> Vec<Span> {
    spans
        .iter()
        .map(|[start, end]| Span::new(*start, *end))
        .collect()
}

/// Scores each of the benchmark's videos; a benchmark built before the MP4 variant existed
/// is scored on its Matroska video alone.
pub async fn run(
    config: Config,
    dir: &Path,
    camera: &str,
    sample_fps: f64,
    rerank: bool,
) -> anyhow::Result<Vec<BenchmarkReport>> {
    anyhow::ensure!(
        dir.join("manifest.json").is_file() && dir.join(VIDEOS[0].0).is_file(),
        "{} holds no finished benchmark: build it with tests/moments/build_benchmark.py --out {}",
        dir.display(),
        dir.display()
    );
    let mut reports = Vec::new();
    for (name, suffix) in VIDEOS {
        let video = dir.join(name);
        if !video.is_file() {
            tracing::warn!(video = %video.display(), "not in this benchmark (built by an older builder): not scored");
            continue;
        }
        let camera = format!("{camera}{suffix}");
        reports.push(run_video(config.clone(), dir, &video, &camera, sample_fps, rerank).await?);
    }
    Ok(reports)
}

async fn run_video(
    config: Config,
    dir: &Path,
    video: &Path,
    camera: &str,
    sample_fps: f64,
    rerank: bool,
) -> anyhow::Result<BenchmarkReport> {
    let text_queries: Vec<TextQuery> = read_lines(&dir.join("queries.jsonl"))?;
    let image_queries: Vec<ImageQuery> = read_lines(&dir.join("image_queries.jsonl"))?;
    let start: DateTime<Utc> = BENCHMARK_START.parse().expect("a valid constant");

    let indexing = index_recording(
        config.clone(),
        RecordingJob {
            file: video.to_owned(),
            camera: camera.to_owned(),
            start,
            sample_fps,
            restart: false,
            progress_bar: false,
        },
    )
    .await?;
    tracing::info!(?indexing, "benchmark video indexed");

    let metrics = Metrics::new();
    let mut config = config;
    let spill = config.kafka.spill.resolve_path(&config.http);
    // One per video: the previous video's search may still hold its file open.
    config.kafka.spill.path = Some(spill.with_file_name(format!("kafka-spill-eval-{camera}.redb")));
    let spill = config.kafka.spill.resolve_path(&config.http);
    let (kafka, redis) = connect_publishers(&config, &spill, &metrics).await?;
    let (_, search) = start_moments(
        &config,
        &kafka,
        &redis,
        &metrics,
        true,
        &ClipLinks::default(),
    )
    .await?
    .expect("moments are enabled");
    search.loaded().await;
    let filters = FilterRequest {
        cameras: vec![camera.to_owned()],
        since: Some(start.to_rfc3339()),
        until: None,
    };

    let mut reports = Vec::new();
    let mut latencies = Vec::new();
    let (mut text_outcomes, mut paraphrase_outcomes) = (Vec::new(), Vec::new());
    let mut reranked_latencies = Vec::new();
    let (mut text_reranked, mut paraphrase_reranked) = (Vec::new(), Vec::new());
    for query in &text_queries {
        for reranked in [false, true] {
            if reranked && !rerank {
                continue;
            }
            let started = Instant::now();
            let answer = search
                .by_text(&query.query, &filters, Some(PREDICTIONS), reranked)
                .await
                .map_err(|e| anyhow::anyhow!("query {}: {e}", query.id))?;
            let took_ms = started.elapsed().as_secs_f64() * 1e3;
            let predictions = in_seconds(&answer.moments, start);
            reports.push(QueryReport {
                id: query.id.clone(),
                query: if reranked {
                    format!("{} (reranked)", query.query)
                } else {
                    query.query.clone()
                },
                ground_truth: query.spans.clone(),
                top: predictions.first().map(|p| [p.start, p.end, p.score]),
                took_ms: answer.took_ms,
            });
            let outcome = QueryOutcome {
                ground_truth: spans(&query.spans),
                predictions,
            };
            let (outcomes, times) = match (reranked, query.kind == "paraphrase") {
                (false, false) => (&mut text_outcomes, &mut latencies),
                (false, true) => (&mut paraphrase_outcomes, &mut latencies),
                (true, false) => (&mut text_reranked, &mut reranked_latencies),
                (true, true) => (&mut paraphrase_reranked, &mut reranked_latencies),
            };
            outcomes.push(outcome);
            times.push(took_ms);
        }
    }
    let mut image_outcomes = Vec::new();
    for query in &image_queries {
        let bytes = std::fs::read(dir.join(&query.image)).with_context(|| {
            format!("query {}: cannot read {}", query.id, query.image.display())
        })?;
        let answer = search
            .by_image(&bytes, &filters, Some(PREDICTIONS))
            .await
            .map_err(|e| anyhow::anyhow!("query {}: {e}", query.id))?;
        let predictions = in_seconds(&answer.moments, start);
        reports.push(QueryReport {
            id: query.id.clone(),
            query: format!("image {}", query.image.display()),
            ground_truth: query.spans.clone(),
            top: predictions.first().map(|p| [p.start, p.end, p.score]),
            took_ms: answer.took_ms,
        });
        image_outcomes.push(QueryOutcome {
            ground_truth: spans(&query.spans),
            predictions,
        });
    }
    let _ = kafka.close(std::time::Duration::from_secs(10)).await;
    Ok(BenchmarkReport {
        video: video
            .file_name()
            .map_or_else(String::new, |name| name.to_string_lossy().into_owned()),
        indexing,
        text: eval::score(&text_outcomes),
        paraphrase: eval::score(&paraphrase_outcomes),
        image: eval::score(&image_outcomes),
        text_reranked: rerank.then(|| eval::score(&text_reranked)),
        paraphrase_reranked: rerank.then(|| eval::score(&paraphrase_reranked)),
        queries: reports,
        query_latency_ms_p50: median(&mut latencies).unwrap_or(0.0),
        reranked_latency_ms_p50: median(&mut reranked_latencies),
    })
}

fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// The reports as the tables BENCHMARKS.md shows: each video's answers, then every video's
/// scores together.
pub fn print(reports: &[BenchmarkReport]) {
    for report in reports {
        print_queries(report);
    }
    println!(
        "video                  queries             n  R1@0.5  R1@0.7  mAP@0.5  mAP@0.75  mAP@[.5:.95]  R@1    R@5"
    );
    for report in reports {
        let rows = [
            ("text", Some(&report.text)),
            ("text+rerank", report.text_reranked.as_ref()),
            ("paraphrase", Some(&report.paraphrase)),
            ("para+rerank", report.paraphrase_reranked.as_ref()),
            ("image", Some(&report.image)),
        ];
        for (name, scores) in rows
            .into_iter()
            .filter_map(|(name, scores)| Some((name, scores?)))
        {
            println!(
                "{:<22} {name:<12} {:>8}  {:>6.1}  {:>6.1}  {:>7.1}  {:>8.1}  {:>12.1}  {:>5.1}  {:>5.1}",
                report.video,
                scores.queries,
                scores.r1_at_0_5,
                scores.r1_at_0_7,
                scores.map_0_5,
                scores.map_0_75,
                scores.map_avg,
                scores.recall_at_1,
                scores.recall_at_5
            );
        }
    }
    for report in reports {
        println!(
            "{}: indexed {:.0} s of video at {:.1}x real time; text query latency p50 {:.1} ms",
            report.video,
            report.indexing.video_seconds,
            report.indexing.speed,
            report.query_latency_ms_p50
        );
        if let Some(reranked) = report.reranked_latency_ms_p50 {
            println!(
                "{}: reranked text query latency p50 {reranked:.0} ms ({:.0}x)",
                report.video,
                reranked / report.query_latency_ms_p50.max(1e-3)
            );
        }
    }
}

/// One video's answer to every query, beside the ground truth.
fn print_queries(report: &BenchmarkReport) {
    println!("{}", report.video);
    println!("query  top moment (s)           ground truth (s)             query");
    for query in &report.queries {
        let top = query.top.map_or("none".to_string(), |[s, e, score]| {
            format!("{s:6.1}–{e:6.1} ({score:.2})")
        });
        let truth: Vec<String> = query
            .ground_truth
            .iter()
            .map(|[s, e]| format!("{s:.1}–{e:.1}"))
            .collect();
        println!(
            "{:<6} {:<24} {:<28} {}",
            query.id,
            top,
            truth.join(", "),
            query.query
        );
    }
    println!();
}

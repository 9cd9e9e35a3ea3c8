//! Kafka publish benchmark: Argus's publisher (idempotent producer behind the spill queue)
//! against librdkafka driven directly by confluent-kafka (`publish_baseline.py`), same broker,
//! same messages, same run.
//!
//!     source deploy/env.sh && deploy/services.sh start local
//!     cargo bench -p argus-pipeline --bench publish --profile dev
//!
//! Broker: `ARGUS_BENCH_KAFKA_BROKERS` (default 127.0.0.1:9092, the `make run` broker).
//! Figures: throughput (messages/s, as fast as possible, until the last is acknowledged) and
//! latency p50/p99 (publish to acknowledgement, at a fixed rate of 1,000 messages/s). Argus's
//! latency comes from its `argus_publish_latency_seconds` histogram (buckets double from 1 ms),
//! so both sides' p99 are also shown read through those buckets, like for like.

use std::process::Command;
use std::time::{Duration, Instant};

use argus::config::Config;
use argus::metrics::Metrics;
use argus::publish::{new_trace_id, KafkaPublisher, Outgoing, TopicSpec};

const MESSAGES: usize = 20_000;
const SIZE: usize = 1_000;
const RATE: f64 = 1_000.0;
const RUNS: usize = 3;

fn main() {
    let brokers =
        std::env::var("ARGUS_BENCH_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let mut config = Config::load(None).expect("default config").kafka;
    config.brokers = brokers.clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let python = format!(
        "{}/bin/python",
        std::env::var("ARGUS_VENV").expect("source deploy/env.sh first (ARGUS_VENV)")
    );
    let baseline_script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/publish_baseline.py");
    println!("broker {brokers}; {MESSAGES} messages of {SIZE} bytes; latency at {RATE} messages/s; {RUNS} runs");

    let mut rows = Vec::new();
    for run in 1..=RUNS {
        let topic = format!("argus.bench.publish.{}.{run}", std::process::id());
        let baseline_topic = format!("{topic}.baseline");
        // Both topics are made alike before either side runs (the baseline's was once left to
        // the broker's default of one partition, Argus's had four).
        runtime.block_on(make_topic(&config, &topic));
        runtime.block_on(make_topic(&config, &baseline_topic));
        let run_baseline = || {
            Command::new(&python)
                .args([
                    baseline_script,
                    &brokers,
                    &baseline_topic,
                    &MESSAGES.to_string(),
                    &SIZE.to_string(),
                    &RATE.to_string(),
                ])
                .output()
                .expect("the baseline runs")
        };
        // The order alternates, so neither side always meets a fresh (or a tired) broker.
        let (ours, output) = if run % 2 == 1 {
            let ours = runtime.block_on(argus_run(&config, &topic));
            (ours, run_baseline())
        } else {
            let output = run_baseline();
            (runtime.block_on(argus_run(&config, &topic)), output)
        };
        assert!(
            output.status.success(),
            "baseline failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let baseline: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        // Same work on both sides: every message acknowledged (Argus's side checks its count
        // in `wait_delivered`).
        assert_eq!(
            baseline["failed"].as_u64(),
            Some(0),
            "the baseline lost messages: {baseline}"
        );
        let latencies: Vec<f64> = baseline["latencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_f64())
            .collect();
        assert_eq!(
            latencies.len(),
            MESSAGES / 4,
            "every paced message acknowledged"
        );
        let base = Figures {
            throughput: baseline["throughput"].as_f64().unwrap(),
            p50: baseline["p50"].as_f64().unwrap(),
            p99: baseline["p99"].as_f64().unwrap(),
            p99_bucketed: bucketed_quantile(&histogram_of(&latencies), 0.99),
        };
        println!(
            "run {run}: argus {:.0} msg/s, p50 ~{:.1} ms, p99 ~{:.1} ms (buckets) | librdkafka {:.0} msg/s, p50 {:.1} ms, p99 {:.1} ms exact, ~{:.1} ms (buckets)",
            ours.throughput,
            ours.p50 * 1e3,
            ours.p99_bucketed * 1e3,
            base.throughput,
            base.p50 * 1e3,
            base.p99 * 1e3,
            base.p99_bucketed * 1e3
        );
        rows.push((ours, base));
    }
    let median = |f: &dyn Fn(&(Figures, Figures)) -> f64| {
        let mut values: Vec<f64> = rows.iter().map(f).collect();
        values.sort_by(|a, b| a.partial_cmp(b).unwrap());
        values[values.len() / 2]
    };
    println!(
        "median throughput ratio argus/librdkafka: {:.2}",
        median(&|(o, b)| o.throughput / b.throughput)
    );
    println!(
        "median p99 latency (same buckets) argus {:.1} ms vs librdkafka {:.1} ms",
        median(&|(o, _)| o.p99_bucketed) * 1e3,
        median(&|(_, b)| b.p99_bucketed) * 1e3
    );
}

struct Figures {
    throughput: f64,
    p50: f64,
    p99: f64,
    p99_bucketed: f64,
}

async fn make_topic(config: &argus::config::KafkaConfig, topic: &str) {
    KafkaPublisher::ensure_topics(
        config,
        &[TopicSpec {
            name: topic,
            partitions: config.partitions,
            compacted: false,
        }],
        Duration::from_secs(10),
    )
    .await
    .expect("the benchmark broker is reachable (ARGUS_BENCH_KAFKA_BROKERS)");
}

async fn argus_run(config: &argus::config::KafkaConfig, topic: &str) -> Figures {
    let dir = std::env::temp_dir().join(format!("argus-bench-publish-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let payload =
        serde_json::json!({"camera_id": "bench", "text": "x".repeat(SIZE - 40)}).to_string();

    // Throughput, after a warm-up like the baseline's.
    let metrics = Metrics::new();
    let publisher = KafkaPublisher::new(config, &dir.join("spill.redb"), metrics.clone()).unwrap();
    send(&publisher, topic, &payload, 2_000, None).await;
    wait_delivered(&metrics, topic, 2_000).await;
    let started = Instant::now();
    send(&publisher, topic, &payload, MESSAGES, None).await;
    wait_delivered(&metrics, topic, 2_000 + MESSAGES).await;
    let throughput = MESSAGES as f64 / started.elapsed().as_secs_f64();

    // Latency at a fixed rate, on the warm publisher: the histogram's growth during this phase.
    let before = buckets_of(&metrics);
    send(&publisher, topic, &payload, MESSAGES / 4, Some(RATE)).await;
    wait_delivered(&metrics, topic, 2_000 + MESSAGES + MESSAGES / 4).await;
    let buckets: Vec<(f64, f64)> = buckets_of(&metrics)
        .into_iter()
        .zip(before)
        .map(|((bound, after), (_, before))| (bound, after - before))
        .collect();
    Figures {
        throughput,
        p50: bucketed_quantile(&buckets, 0.5),
        p99: f64::NAN,
        p99_bucketed: bucketed_quantile(&buckets, 0.99),
    }
}

async fn send(
    publisher: &KafkaPublisher,
    topic: &str,
    payload: &str,
    count: usize,
    rate: Option<f64>,
) {
    let started = Instant::now();
    for i in 0..count {
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let key = format!("cam{}", i % 16);
        publisher
            .publish(Outgoing {
                topic,
                key: &key,
                payload: payload.to_owned(),
                schema_id: "argus.bench.v1",
                message_id: uuid::Uuid::now_v7().to_string(),
                trace_id: new_trace_id(),
            })
            .await
            .expect("published");
    }
}

async fn wait_delivered(metrics: &Metrics, topic: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while metrics
        .kafka_deliveries
        .with_label_values(&[topic, "delivered"])
        .get()
        < count as u64
    {
        assert!(Instant::now() < deadline, "deliveries did not complete");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Cumulative (upper bound, count) pairs of Argus's Kafka latency histogram.
fn buckets_of(metrics: &Metrics) -> Vec<(f64, f64)> {
    use prometheus::core::Collector;
    let families = metrics.publish_latency.collect();
    let metric = families[0]
        .get_metric()
        .iter()
        .find(|m| m.get_label().iter().any(|l| l.value() == "kafka"))
        .expect("kafka latency samples");
    metric
        .get_histogram()
        .get_bucket()
        .iter()
        .map(|b| (b.upper_bound(), b.cumulative_count() as f64))
        .collect()
}

/// The same buckets filled from exact latencies.
fn histogram_of(latencies: &[f64]) -> Vec<(f64, f64)> {
    (0..16)
        .map(|k| {
            let bound = 0.001 * 2f64.powi(k);
            (
                bound,
                latencies.iter().filter(|l| **l <= bound).count() as f64,
            )
        })
        .collect()
}

/// A quantile from cumulative buckets, interpolated linearly inside the bucket (as
/// Prometheus's `histogram_quantile` does).
fn bucketed_quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let total = buckets.last().map_or(0.0, |(_, count)| *count);
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            let inside = (rank - lower.1) / (count - lower.1).max(1e-9);
            return lower.0 + (bound - lower.0) * inside;
        }
        lower = (bound, count);
    }
    f64::NAN
}

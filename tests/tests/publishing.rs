//! Publishing that loses nothing: a broker cut off mid-run, Redis stopped and restarted, and
//! oversized messages and bad topics, all against real services the tests own.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use argus_e2e::outage::{Broker, RedisServer, TcpProxy};
use argus_e2e::*;

/// An Argus config for the given services, with extra TOML for `[kafka]` and streams.
fn config(
    dir: &Path,
    brokers: &str,
    redis_url: &str,
    topic: &str,
    http_port: u16,
    kafka_extra: &str,
    streams_toml: &str,
) -> std::path::PathBuf {
    let text = format!(
        "[http]\nlisten = \"127.0.0.1:{http_port}\"\napi_token = \"{TEST_API_TOKEN}\"\n\
         [kafka]\nbrokers = \"{brokers}\"\n{kafka_extra}\n\
         [kafka.topics]\nframe_results = \"{topic}\"\nstream_events = \"{topic}.events\"\n\
         [kafka.spill]\npath = \"{spill}\"\n\
         [redis]\nurl = \"{redis_url}\"\nkey_prefix = \"{prefix}\"\n{streams_toml}",
        spill = dir.join("kafka-spill.redb").display(),
        prefix = unique("argus-test"),
    );
    let path = dir.join("argus.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn live_camera(id: &str) -> String {
    format!(
        "[[streams]]\nid = \"{id}\"\nuri = \"test:ball?width=160&height=120&fps=5\"\nsample_fps = 2.0\nmax_width = 160\n"
    )
}

#[test]
fn a_broker_outage_of_30_seconds_loses_nothing_and_keeps_order() {
    let dir = tempfile::tempdir().unwrap();
    // The broker tells clients to come through the proxy, so cutting the proxy cuts Argus off.
    let proxy_port = free_port();
    let broker = Broker::start(proxy_port);
    let mut proxy = TcpProxy::start(proxy_port, &format!("127.0.0.1:{}", broker.port));
    let brokers = format!("127.0.0.1:{proxy_port}");
    let services = services();
    let topic = unique("argus.test.outage");
    let http_port = free_port();
    let config = config(
        dir.path(),
        &brokers,
        &services.redis_url,
        &topic,
        http_port,
        "message_timeout_ms = 3000",
        &(live_camera("cam-a") + &live_camera("cam-b")),
    );
    let mut argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("broker_outage.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    let analysed = |argus: &Argus| {
        argus
            .metric("argus_frames_analysed_total", &[])
            .unwrap_or(0.0)
    };
    wait_until(Duration::from_secs(60), "the first results", || {
        argus
            .metric("argus_kafka_deliveries_total", &["result=\"delivered\""])
            .unwrap_or(0.0)
            >= 40.0
    });
    // Warmed up (model arenas allocated): from here, growth would be the outage's doing.
    let memory_before = argus.rss_bytes();

    proxy.cut();
    let cut_at = Instant::now();
    let analysed_at_cut = analysed(&argus);
    let mut memory = Vec::new();
    while cut_at.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_secs(1));
        memory.push(argus.rss_bytes());
    }
    let peak_memory = memory.iter().copied().max().unwrap();
    // Bounded: after the first seconds (librdkafka's queue filling before the spill takes
    // over), memory must not keep growing with the outage.
    let memory_at_10s = memory[9];
    let growth_after_10s = peak_memory.saturating_sub(memory_at_10s);
    println!(
        "RSS during the outage (MiB): {:?}",
        memory.iter().map(|m| m >> 20).collect::<Vec<_>>()
    );
    let analysed_during = analysed(&argus) - analysed_at_cut;
    let spilled = argus.metric("argus_kafka_spill_messages", &[]).unwrap();
    assert!(
        analysed_during >= 20.0,
        "analysis went on during the outage: {analysed_during} frames; log:\n{}",
        argus.logs()
    );
    assert!(
        spilled > 0.0,
        "results waited in the spill file during the outage"
    );

    proxy.restore();
    wait_until(Duration::from_secs(60), "the spill file to drain", || {
        argus.metric("argus_kafka_spill_messages", &[]) == Some(0.0)
    });
    // Stop the cameras so that the count of produced results is final.
    assert_eq!(argus.delete("/api/v1/streams/cam-a"), 204);
    assert_eq!(argus.delete("/api/v1/streams/cam-b"), 204);
    wait_until(
        Duration::from_secs(30),
        "the last results to be delivered",
        || {
            argus.metric("argus_kafka_spill_messages", &[]) == Some(0.0)
                && argus.metric(
                    "argus_kafka_deliveries_total",
                    &[&format!("topic=\"{topic}\"")],
                ) == argus.metric("argus_frames_analysed_total", &[])
        },
    );
    let produced: HashMap<&str, f64> = ["cam-a", "cam-b"]
        .into_iter()
        .map(|id| {
            let count = argus
                .metric(
                    "argus_frames_analysed_total",
                    &[&format!("stream=\"{id}\"")],
                )
                .unwrap();
            (id, count)
        })
        .collect();
    let total: f64 = produced.values().sum();
    let peak_growth = peak_memory.saturating_sub(memory_before);

    let received = consume(&brokers, &topic, Duration::from_secs(60), |received| {
        let mut ids: Vec<&str> = received
            .iter()
            .filter_map(|m| m.payload["message_id"].as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len() as f64 >= total
    });
    let mut first_copy: BTreeMap<String, &serde_json::Value> = BTreeMap::new();
    let mut sequences: HashMap<String, Vec<u64>> = HashMap::new();
    let mut duplicates = 0;
    for message in &received {
        let id = message.payload["message_id"].as_str().unwrap().to_owned();
        assert_eq!(message.headers.get("message-id"), Some(&id));
        assert!(
            message
                .headers
                .get("traceparent")
                .is_some_and(|t| t.starts_with("00-") && t.len() == 55),
            "a W3C traceparent header: {:?}",
            message.headers
        );
        if let Some(first) = first_copy.get(&id) {
            assert_eq!(*first, &message.payload, "a duplicate is the same message");
            duplicates += 1;
            continue;
        }
        first_copy.insert(id, &message.payload);
        sequences
            .entry(message.key.clone())
            .or_default()
            .push(message.payload["frame"]["sequence"].as_u64().unwrap());
    }
    for (camera, count) in &produced {
        let seen = sequences.get(*camera).map_or(0, Vec::len);
        assert_eq!(
            seen as f64, *count,
            "{camera}: every result Argus produced reached the topic"
        );
        let order = &sequences[*camera];
        assert!(
            order.windows(2).all(|pair| pair[0] < pair[1]),
            "{camera}: results are in frame order on the topic: {order:?}"
        );
    }
    println!(
        "outage: {total} results ({analysed_during} during the 30 s cut), {duplicates} duplicates, \
         memory {} MiB before, peak growth {} MiB",
        memory_before >> 20,
        peak_growth >> 20
    );
    assert!(
        peak_growth < 150 << 20 && growth_after_10s < 40 << 20,
        "memory stayed bounded during the outage: grew {} MiB, {} MiB after the first 10 s",
        peak_growth >> 20,
        growth_after_10s >> 20
    );
    assert_eq!(argus.terminate(), 0);
}

#[test]
fn redis_stopped_and_restarted_catches_up_with_a_password_that_is_never_shown() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let password = "s3cret-redis-pw";
    let mut redis = RedisServer::start(dir.path().join("redis"), &["--requirepass", password]);
    let redis_url = format!("redis://:{password}@127.0.0.1:{}", redis.port);
    let topic = unique("argus.test.redis");
    let http_port = free_port();
    let config = config(
        dir.path(),
        &services.kafka_brokers,
        &redis_url,
        &topic,
        http_port,
        "",
        &live_camera("door"),
    );
    let mut argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("redis_outage.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    let prefix = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("key_prefix = "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let latest = |redis: &RedisServer| -> Option<serde_json::Value> {
        let client =
            ::redis::Client::open(format!("redis://:{password}@127.0.0.1:{}", redis.port)).ok()?;
        let mut connection = client.get_connection().ok()?;
        let json: Option<String> = ::redis::cmd("GET")
            .arg(format!("{prefix}:camera:door:latest"))
            .query(&mut connection)
            .ok()?;
        serde_json::from_str(&json?).ok()
    };
    wait_until(Duration::from_secs(60), "the latest state in Redis", || {
        latest(&redis).is_some()
    });

    let (status, ready) = argus.get_status("/readyz");
    assert_eq!(status, 200, "{ready}");
    redis.stop();
    let (status, ready) = argus.get_status("/readyz");
    assert_eq!(status, 503, "not ready without Redis: {ready}");
    assert_eq!(ready["kafka"], "ok", "{ready}");
    assert_ne!(ready["redis"], "ok", "{ready}");
    let analysed_at_stop = argus.metric("argus_frames_analysed_total", &[]).unwrap();
    wait_until(Duration::from_secs(30), "writes to wait for Redis", || {
        argus
            .metric("argus_redis_pending_writes", &[])
            .unwrap_or(0.0)
            >= 1.0
            && argus.metric("argus_frames_analysed_total", &[]).unwrap() >= analysed_at_stop + 6.0
    });
    redis.restart();
    wait_until(
        Duration::from_secs(30),
        "the buffered writes to be replayed",
        || argus.metric("argus_redis_pending_writes", &[]) == Some(0.0) && latest(&redis).is_some(),
    );
    assert_eq!(argus.delete("/api/v1/streams/door"), 204);
    wait_until(Duration::from_secs(20), "the last writes", || {
        argus.metric("argus_redis_pending_writes", &[]) == Some(0.0)
    });
    std::thread::sleep(Duration::from_millis(500));

    // The latest state in the restarted (empty) Redis is the newest result on Kafka.
    let analysed = argus.metric("argus_frames_analysed_total", &[]).unwrap();
    let received = consume(
        &services.kafka_brokers,
        &topic,
        Duration::from_secs(30),
        |r| r.len() as f64 >= analysed,
    );
    let newest = received
        .iter()
        .max_by_key(|m| m.payload["frame"]["sequence"].as_u64())
        .unwrap();
    assert_eq!(latest(&redis).unwrap(), newest.payload);
    assert_eq!(
        argus.metric("argus_redis_writes_dropped_total", &[]),
        Some(0.0)
    );

    let metrics = ureq::get(&format!("http://127.0.0.1:{http_port}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let streams = argus.get_json("/api/v1/streams").unwrap().to_string();
    assert_eq!(argus.terminate(), 0);
    for (what, text) in [
        ("log", argus.logs()),
        ("metrics", metrics),
        ("API", streams),
    ] {
        assert!(
            !text.contains(password),
            "the Redis password appears in the {what}"
        );
    }
}

#[test]
fn redis_over_tls_holds_the_live_state() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let (redis, certificate) = RedisServer::start_tls(dir.path().join("redis-tls"));
    let topic = unique("argus.test.redis-tls");
    let http_port = free_port();
    let config = config(
        dir.path(),
        &services.kafka_brokers,
        &format!("rediss://127.0.0.1:{}", redis.port),
        &topic,
        http_port,
        "",
        &live_camera("tls-cam"),
    );
    // The server's self-signed certificate is trusted through OpenSSL's usual variable.
    let certificate = certificate.display().to_string();
    let mut argus = Argus::start_with_env(
        &config,
        &[],
        &[("SSL_CERT_FILE", certificate.as_str())],
        artifacts_dir().join("redis_tls.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    wait_until(
        Duration::from_secs(60),
        "results written to Redis over TLS",
        || {
            argus
                .metric("argus_publish_latency_seconds_count", &["sink=\"redis\""])
                .unwrap_or(0.0)
                >= 3.0
        },
    );
    let (status, ready) = argus.get_status("/readyz");
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["redis"], "ok", "{ready}");
    assert_eq!(argus.metric("argus_redis_pending_writes", &[]), Some(0.0));
    assert_eq!(argus.terminate(), 0);
}

#[test]
fn oversized_messages_are_refused_with_a_clear_error_and_the_rest_flows() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    // Every message carries the source's path: a ~650-character path makes frame results
    // (~1,200 bytes) exceed a 1,000-byte limit while stream events (~900 bytes) stay under it.
    let deep = dir
        .path()
        .join("a".repeat(200))
        .join("b".repeat(200))
        .join("c".repeat(200));
    std::fs::create_dir_all(&deep).unwrap();
    let video = deep.join("text.mp4");
    make_text_video(&video, "OVERSIZED", 3);
    let topic = unique("argus.test.oversized");
    let http_port = free_port();
    let config = config(
        dir.path(),
        &services.kafka_brokers,
        &services.redis_url,
        &topic,
        http_port,
        "max_message_bytes = 1000",
        &format!(
            "[[streams]]\nid = \"big\"\nuri = \"{}\"\nsample_fps = 1.0\n",
            video.display()
        ),
    );
    let mut argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("oversized.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    wait_for_streams(
        &argus,
        Duration::from_secs(90),
        "the file to end",
        |streams| stream(streams, "big").is_some_and(|s| s["state"] == "finished"),
    );
    let analysed = argus.metric("argus_frames_analysed_total", &[]).unwrap();
    let refused = argus
        .metric(
            "argus_kafka_deliveries_total",
            &[&format!("topic=\"{topic}\""), "result=\"failed\""],
        )
        .unwrap();
    assert_eq!(argus.terminate(), 0);
    let log = argus.logs();
    assert!(analysed >= 2.0, "{log}");
    assert_eq!(
        refused, analysed,
        "every oversized result is counted as refused"
    );
    // Moment windows (with their embeddings) are refused too, on their own topic.
    assert_eq!(
        log.matches(&format!(
            "message for `{topic}` exceeds the 1000-byte limit (kafka.max_message_bytes)"
        ))
        .count() as f64,
        analysed,
        "every refusal is logged: {log}"
    );
    let events = consume(
        &services.kafka_brokers,
        &format!("{topic}.events"),
        Duration::from_secs(20),
        |r| r.iter().any(|m| m.payload["event"]["state"] == "finished"),
    );
    assert!(
        events
            .iter()
            .any(|m| m.payload["event"]["state"] == "finished"),
        "messages within the limit still flow"
    );
}

#[test]
fn a_topic_name_kafka_cannot_create_stops_argus_at_start_with_its_name() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let config = config(
        dir.path(),
        &services.kafka_brokers,
        &services.redis_url,
        "bad topic!",
        http_port,
        "",
        "",
    );
    let mut argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("bad_topic.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    let code = argus.wait(Duration::from_secs(30));
    let log = argus.logs();
    assert_ne!(code, 0);
    assert!(
        log.contains("kafka.topics.frame_results `bad topic!`"),
        "{log}"
    );
}

#[test]
fn an_unreachable_broker_at_start_is_reported_and_results_wait_on_disk() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let dead_broker = format!("127.0.0.1:{}", free_port());
    let config = config(
        dir.path(),
        &dead_broker,
        &services.redis_url,
        &unique("argus.test.unreachable"),
        http_port,
        "message_timeout_ms = 2000",
        &live_camera("lonely"),
    );
    let mut argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("unreachable_broker.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    wait_until(
        Duration::from_secs(60),
        "results to be spilled to disk",
        || {
            argus
                .metric("argus_kafka_spill_messages", &[])
                .unwrap_or(0.0)
                >= 3.0
        },
    );
    let (status, ready) = argus.get_status("/readyz");
    assert_eq!(status, 503, "{ready}");
    assert_ne!(ready["kafka"], "ok", "{ready}");
    assert!(
        ready["kafka_spilled_messages"].as_u64().unwrap() >= 3,
        "{ready}"
    );
    assert_eq!(argus.terminate(), 0);
    let log = argus.logs();
    assert!(log.contains("Kafka is not reachable yet"), "{log}");
    assert!(
        log.contains(&dead_broker),
        "the log names the broker: {log}"
    );
    assert!(
        log.contains("the spill file keeps them for the next start"),
        "{log}"
    );
    assert!(dir.path().join("kafka-spill.redb").is_file());
}

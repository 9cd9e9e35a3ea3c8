//! What survives a restart: a broker killed mid-run loses no message, the local services that
//! `make run` starts keep their data across `make stop && make run`, and a restarted Argus
//! answers health checks at once while it loads a large moment index in the background.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use argus_e2e::outage::DurableBroker;
use argus_e2e::{
    argus_command, artifacts_dir, consume, free_port, make_text_video, services, set_moments_topic,
    to_f16_bytes, unique, wait_until, write_config, write_config_toml, Argus, Services,
    StoredWindow,
};

/// When the test recordings begin.
const START: &str = "2026-03-01T09:00:00Z";

fn argus_index(config: &Path, video: &Path, camera: &str) -> String {
    let output = argus_command(config)
        .args(["index", video.to_str().unwrap(), "--camera", camera])
        .args(["--start", START])
        .env("RUST_LOG", "info")
        .output()
        .expect("argus index runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "argus index failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The spans of an answer's moments, in order.
fn spans(answer: &serde_json::Value) -> Vec<(String, String)> {
    answer["moments"]
        .as_array()
        .unwrap_or_else(|| panic!("not a moment answer: {answer}"))
        .iter()
        .map(|m| {
            (
                m["start"].as_str().unwrap().to_owned(),
                m["end"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn redis(services: &Services) -> redis::Connection {
    redis::Client::open(services.redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Stores `count` synthetic windows over `cameras` cameras, shaped like `template` (a window
/// Argus stored) with random unit text embeddings of the same model, as a few days of
/// several cameras would leave them. Returns the keys written, for the clean-up.
fn store_synthetic_windows(
    services: &Services,
    key_prefix: &str,
    template: &StoredWindow,
    count: usize,
    cameras: usize,
) -> Vec<String> {
    let mut connection = redis(services);
    let dimension = template.text_embedding().unwrap().len();
    let base_ms = chrono::DateTime::parse_from_rfc3339(START)
        .unwrap()
        .timestamp_millis()
        - 86_400_000;
    // xorshift: reproducible without a dependency
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut keys = vec![format!("{key_prefix}:moments:cameras")];
    let per_camera = count.div_ceil(cameras);
    let mut written = 0;
    for camera_index in 0..cameras {
        let camera = format!("bulk-{camera_index}");
        let timeline = format!("{key_prefix}:moments:{camera}");
        keys.push(timeline.clone());
        let _: () = redis::cmd("SADD")
            .arg(format!("{key_prefix}:moments:cameras"))
            .arg(&camera)
            .query(&mut connection)
            .unwrap();
        let windows = per_camera.min(count - written);
        for batch in (0..windows).collect::<Vec<_>>().chunks(2000) {
            let mut pipe = redis::pipe();
            for &n in batch {
                let start_ms = base_ms + n as i64 * 2000;
                let vector: Vec<f64> = (0..dimension).map(|_| random()).collect();
                let norm = vector.iter().map(|v| v * v).sum::<f64>().sqrt();
                let mut window = template.clone();
                window.camera = camera.clone();
                window.start_ms = start_ms;
                window.end_ms = start_ms + 2000;
                window.ocr = vec![format!("bulk window {n}")];
                let unit: Vec<f32> = vector.iter().map(|v| (v / norm) as f32).collect();
                window.text = Some(to_f16_bytes(&unit));
                let key = format!("{timeline}:{start_ms}");
                pipe.cmd("SET").arg(&key).arg(window.encode()).ignore();
                pipe.cmd("ZADD")
                    .arg(&timeline)
                    .arg(start_ms)
                    .arg(start_ms)
                    .ignore();
                keys.push(key);
            }
            let _: () = pipe.query(&mut connection).unwrap();
        }
        written += windows;
    }
    keys
}

/// Kubernetes restarts a pod with a few days of 8 cameras stored: its startup probe gets an
/// answer at once, `/readyz` reports the load's progress until the index is complete, queries
/// say they must wait rather than answer from half an index, and then the same moments come
/// back as before the restart.
#[test]
fn a_restart_answers_health_at_once_and_loads_a_large_index_in_the_background() {
    let services = services();
    let windows: usize = std::env::var("ARGUS_TEST_STARTUP_WINDOWS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("dock.mp4");
    make_text_video(&video, "LOADING DOCK OPEN", 12);
    let key_prefix = unique("argus-test-startup");
    let http_port = free_port();
    let config = write_config(
        dir.path(),
        &services,
        &unique("argus.test.startup"),
        &key_prefix,
        http_port,
        &[],
    );
    argus_index(&config, &video, "dock");

    let http = format!("http://127.0.0.1:{http_port}");
    let log = |n: u32| artifacts_dir().join(format!("startup.argus-{n}.log"));
    let query = "/api/v1/moments?q=loading+dock+open&camera=dock&limit=5";
    let mut argus = Argus::start(&config, &[], log(1), http.clone());
    wait_until(Duration::from_secs(60), "the API", || argus.is_up());
    let (status, before) = argus.get_status(query);
    assert_eq!(status, 200, "{before}");
    assert!(!spans(&before).is_empty(), "the phrase is found: {before}");
    argus.kill();

    let mut connection = redis(&services);
    let starts: Vec<i64> = redis::cmd("ZRANGE")
        .arg(format!("{key_prefix}:moments:dock"))
        .arg(0)
        .arg(-1)
        .query(&mut connection)
        .unwrap();
    let template: Vec<u8> = redis::cmd("GET")
        .arg(format!("{key_prefix}:moments:dock:{}", starts[0]))
        .query(&mut connection)
        .unwrap();
    let template = StoredWindow::decode(&template);
    let written = Instant::now();
    let keys = store_synthetic_windows(&services, &key_prefix, &template, windows, 8);
    eprintln!(
        "stored {windows} synthetic windows in {:.1} s",
        written.elapsed().as_secs_f64()
    );
    let total = windows + starts.len();

    let started = Instant::now();
    let argus = Argus::start(&config, &[], log(2), http.clone());
    wait_until(Duration::from_secs(10), "/healthz", || {
        ureq::get(&format!("{http}/healthz")).call().is_ok()
    });
    let healthy_after = started.elapsed();
    assert!(
        healthy_after < Duration::from_secs(2),
        "/healthz answered {healthy_after:?} after the start"
    );

    let mut progress = Vec::new();
    let mut refused_while_loading = None;
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let (status, ready) = argus.get_status("/readyz");
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{ready}");
        if let Some(loading) = ready["moment_index"].get("loading") {
            assert_eq!(loading, true, "{ready}");
            let loaded = ready["moment_index"]["loaded"].as_u64().unwrap() as usize;
            let of = ready["moment_index"]["total"].as_u64().unwrap() as usize;
            progress.push((loaded, of));
            if refused_while_loading.is_none() && of > 0 && loaded < of {
                refused_while_loading = Some(argus.get_status(query));
            }
        }
        assert!(
            Instant::now() < deadline,
            "not ready within 15 min: {ready}; log:\n{}",
            argus.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "ready {:.1} s after the start, {} progress reports",
        started.elapsed().as_secs_f64(),
        progress.len()
    );
    assert!(
        progress
            .iter()
            .any(|&(loaded, of)| of == total && loaded < of),
        "/readyz showed the load under way with the full total ({total}): {progress:?}"
    );
    assert!(
        progress.windows(2).all(|pair| pair[0].0 <= pair[1].0),
        "progress never goes back: {progress:?}"
    );
    let (status, refusal) = refused_while_loading.expect("a query was tried while loading");
    assert_eq!(status, 503, "a query during the load waits: {refusal}");
    assert!(
        refusal["loading"]["total"].as_u64() == Some(total as u64),
        "the refusal says how far the load is: {refusal}"
    );

    let (status, after) = argus.get_status(query);
    assert_eq!(status, 200, "{after}");
    assert_eq!(
        spans(&after),
        spans(&before),
        "the same moments after the restart"
    );
    let cameras = argus.get_json("/api/v1/moments/cameras").unwrap();
    let indexed: u64 = cameras["cameras"]
        .as_array()
        .unwrap()
        .iter()
        // The embedded defaults also run the sample camera beside these.
        .filter(|c| {
            c["camera_id"] == "dock" || c["camera_id"].as_str().unwrap().starts_with("bulk-")
        })
        .map(|c| c["windows"].as_u64().unwrap())
        .sum();
    assert_eq!(
        indexed as usize, total,
        "every stored window is indexed: {cameras}"
    );

    // A clean stop saves the index beside the store; the next start reopens it and catches
    // up from the store's log instead of rebuilding it (the rebuild above: minutes).
    let mut argus = argus;
    assert_eq!(argus.terminate(), 0, "a clean stop");
    let started = Instant::now();
    let argus = Argus::start(&config, &[], log(3), http.clone());
    wait_until(
        Duration::from_secs(120),
        "ready from the saved index",
        || argus.is_up(),
    );
    let reopened_after = started.elapsed();
    eprintln!(
        "ready {:.1} s after the start, from the saved index",
        reopened_after.as_secs_f64()
    );
    assert!(
        argus.logs().contains("saved moment index reopened"),
        "{}",
        argus.logs()
    );
    let (status, reopened) = argus.get_status(query);
    assert_eq!(status, 200, "{reopened}");
    assert_eq!(spans(&reopened), spans(&before), "the same moments again");
    assert!(
        reopened_after < Duration::from_secs(60),
        "reopening {total} windows took {reopened_after:?}"
    );

    drop(argus);
    for chunk in keys.chunks(10_000) {
        let _: () = redis::cmd("UNLINK")
            .arg(chunk)
            .query(&mut connection)
            .unwrap();
    }
}

/// The broker is killed (`kill -9`, not a network cut) in the middle of a run and started
/// again on its storage: every frame result reaches the topic, each camera's in order, and the
/// delivery metrics count exactly what the topic holds.
#[test]
fn a_broker_killed_mid_run_loses_no_frame_result() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    // In the artifacts: the broker's log and storage are worth a look when this fails.
    let mut broker = DurableBroker::start(artifacts_dir().join(unique("broker-restart.tansu")));
    let durable = Services {
        kafka_brokers: broker.brokers(),
        redis_url: services.redis_url.clone(),
    };
    let topic = unique("argus.test.restart");
    let http_port = free_port();
    let streams = "[[streams]]\nid = \"yard\"\nuri = \"test:ball?width=320&height=240&fps=10\"\nsample_fps = 4.0\n\
                   [[streams]]\nid = \"gate\"\nuri = \"test:snow?width=320&height=240&fps=10\"\nsample_fps = 4.0\n";
    let config = write_config_toml(
        dir.path(),
        &durable,
        &topic,
        &unique("argus-test-restart"),
        http_port,
        streams,
    );
    // Deliveries time out within the outage, so the messages held in memory go through the
    // spill file as well as through librdkafka's own retries.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config).unwrap().replace(
            "[kafka.topics]",
            "message_timeout_ms = 2000\n[kafka.topics]",
        ),
    )
    .unwrap();
    let mut argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("broker-restart.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    let delivered = |argus: &Argus| {
        argus
            .metric(
                "argus_kafka_deliveries_total",
                &[&format!("topic=\"{topic}\""), "result=\"delivered\""],
            )
            .unwrap_or(0.0)
    };
    wait_until(
        Duration::from_secs(60),
        "20 frame results delivered",
        || delivered(&argus) >= 20.0,
    );

    broker.kill();
    let killed_at = delivered(&argus);
    // Restart once the outage has outlasted the delivery timeout and the results wait in the
    // spill file: a broker that comes back in the very second messages time out is the one
    // case where a message's first copy can land after later ones (see below).
    wait_until(Duration::from_secs(60), "results spilled", || {
        argus
            .metric("argus_kafka_spill_messages", &[])
            .unwrap_or(0.0)
            >= 4.0
    });
    std::thread::sleep(Duration::from_secs(2));
    broker.restart();
    wait_until(
        Duration::from_secs(60),
        "deliveries after the restart",
        || delivered(&argus) >= killed_at + 30.0,
    );

    // Stop producing, then wait until nothing is left to send.
    for stream in ["yard", "gate"] {
        let status = ureq::delete(&format!("{}/api/v1/streams/{stream}", argus.http))
            .header("Authorization", &argus_e2e::bearer())
            .call()
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        assert!(status < 300, "removing {stream}: {status}");
    }
    let analysed = |argus: &Argus| {
        argus
            .metric("argus_frames_analysed_total", &[])
            .unwrap_or(0.0)
    };
    wait_until(Duration::from_secs(60), "every result delivered", || {
        let before = analysed(&argus);
        before > 0.0
            && delivered(&argus) >= before
            && argus.metric("argus_kafka_spill_messages", &[]) == Some(0.0)
    });
    let frames = analysed(&argus);
    let counted = delivered(&argus);
    let failed = argus
        .metric(
            "argus_kafka_deliveries_total",
            &[&format!("topic=\"{topic}\""), "result=\"failed\""],
        )
        .unwrap();
    let spilled = argus.metric("argus_kafka_spilled_total", &[]).unwrap();
    let dropped = argus
        .metric("argus_kafka_spill_dropped_total", &[])
        .unwrap();
    argus.terminate();

    let received = consume(&broker.brokers(), &topic, Duration::from_secs(60), |r| {
        r.len() as f64 >= frames
    });
    // Each message's last copy on the topic, in case a request reached the broker just before
    // it died and its messages were spilled and sent again: the spill file sends them and
    // everything after them in order (README, "When the broker or Redis goes away").
    let mut last_copy = std::collections::HashMap::new();
    for (position, message) in received.iter().enumerate() {
        let id = message.payload["message_id"].as_str().unwrap().to_owned();
        last_copy.insert(id, position);
    }
    let mut final_order: Vec<(usize, &argus_e2e::Received)> =
        last_copy.values().map(|&p| (p, &received[p])).collect();
    final_order.sort_by_key(|(position, _)| *position);
    let mut last_sequence = std::collections::HashMap::new();
    for (_, message) in &final_order {
        let sequence = message.payload["frame"]["sequence"].as_u64().unwrap();
        if let Some(previous) = last_sequence.insert(message.key.clone(), sequence) {
            assert!(
                sequence > previous,
                "{}: the last copy of sequence {sequence} follows that of {previous}",
                message.key
            );
        }
    }
    let duplicates = received.len() - last_copy.len();
    eprintln!(
        "{frames} frames analysed, {counted} delivered, {spilled} spilled, {} on the topic \
         ({} distinct, {duplicates} second copies)",
        received.len(),
        last_copy.len()
    );
    let seen = last_copy;
    assert!(spilled > 0.0, "the outage outlasted the delivery timeout");
    assert_eq!(failed, 0.0, "no delivery failed for good");
    assert_eq!(dropped, 0.0, "the spill never overflowed");
    assert_eq!(
        seen.len() as f64,
        frames,
        "every frame result is on the topic"
    );
    assert_eq!(
        counted, frames,
        "`delivered` counts each message the broker holds, once"
    );
    assert_eq!(
        last_sequence.keys().collect::<HashSet<_>>(),
        HashSet::from([&"yard".to_string(), &"gate".to_string()])
    );
}

/// `make stop && make run`: the local services keep the moment index in Redis and the topics
/// in the broker. Runs deploy/services.sh itself, under a name and ports of its own.
#[test]
fn the_local_services_keep_moments_and_topics_across_a_stop_and_start() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let (kafka_port, redis_port) = (free_port(), free_port());
    let name = unique("durable");
    let services_sh = |action: &str| {
        let status = Command::new(root.join("deploy/services.sh"))
            .args([action, &name])
            .env("ARGUS_KAFKA_PORT", kafka_port.to_string())
            .env("ARGUS_REDIS_PORT", redis_port.to_string())
            .env("ARGUS_DURABLE", "1")
            .status()
            .unwrap();
        assert!(status.success(), "deploy/services.sh {action} {name}");
    };
    /// Stops the services and removes their state, however the test ends.
    struct Stop<F: Fn(&str)>(F, std::path::PathBuf);
    impl<F: Fn(&str)> Drop for Stop<F> {
        fn drop(&mut self) {
            (self.0)("stop");
            let _ = std::fs::remove_dir_all(&self.1);
        }
    }
    services_sh("start");
    let cache = std::env::var("ARGUS_CACHE").expect("ARGUS_CACHE (deploy/env.sh)");
    let stop = Stop(services_sh, Path::new(&cache).join("run").join(&name));
    let local = Services {
        kafka_brokers: format!("127.0.0.1:{kafka_port}"),
        redis_url: format!("redis://127.0.0.1:{redis_port}"),
    };

    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("gate.mp4");
    make_text_video(&video, "GATE CLOSED", 6);
    let topic = unique("argus.test.durable");
    let moments_topic = format!("{topic}.moments");
    let key_prefix = unique("argus-test-durable");
    let http_port = free_port();
    let config = write_config(dir.path(), &local, &topic, &key_prefix, http_port, &[]);
    set_moments_topic(&config, &moments_topic);
    argus_index(&config, &video, "gate");
    let stored = || -> usize {
        redis::cmd("ZCARD")
            .arg(format!("{key_prefix}:moments:gate"))
            .query(&mut redis(&local))
            .unwrap()
    };
    let windows = stored();
    assert!(windows >= 2, "6 s of video give 2 s windows: {windows}");
    let published = consume(
        &local.kafka_brokers,
        &moments_topic,
        Duration::from_secs(30),
        |r| r.len() >= windows,
    );
    assert_eq!(published.len(), windows, "every window is on the topic");

    (stop.0)("stop");
    (stop.0)("start");

    assert_eq!(stored(), windows, "Redis kept the moment windows");
    let again = consume(
        &local.kafka_brokers,
        &moments_topic,
        Duration::from_secs(30),
        |r| r.len() >= windows,
    );
    assert_eq!(
        again
            .iter()
            .map(|m| m.payload["message_id"].clone())
            .collect::<Vec<_>>(),
        published
            .iter()
            .map(|m| m.payload["message_id"].clone())
            .collect::<Vec<_>>(),
        "the broker kept the topic"
    );
    let argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("durable.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    wait_until(Duration::from_secs(60), "the API", || argus.is_up());
    let (status, answer) = argus.get_status("/api/v1/moments?q=gate+closed&camera=gate");
    assert_eq!(status, 200, "{answer}");
    assert!(
        !spans(&answer).is_empty(),
        "the restarted services answer: {answer}"
    );
}

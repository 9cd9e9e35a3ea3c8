//! Scale-out on a Kafka consumer group: two workers share six cameras, the survivor takes
//! over a killed worker's cameras, and a restarted worker gets its share back.

use std::path::Path;
use std::time::Duration;

use argus_e2e::*;

fn running(argus: &Argus) -> Vec<String> {
    let mut ids: Vec<String> = argus
        .get_json("/api/v1/streams")
        .and_then(|answer| answer["streams"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|s| s["state"] == "running")
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

#[test]
fn two_workers_share_six_cameras_and_take_over_when_one_dies() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let group = unique("argus-test-workers");
    let (port_a, port_b) = (free_port(), free_port());
    let config_a = write_worker_config(&dir.path().join("a"), &services, &group, port_a, 12);
    let config_b = write_worker_config(&dir.path().join("b"), &services, &group, port_b, 12);
    let start = |config: &Path, name: &str, port: u16| {
        Argus::start(
            config,
            &[],
            artifacts_dir().join(format!("scale_out.{name}.argus.log")),
            format!("http://127.0.0.1:{port}"),
        )
    };
    let worker_a = start(&config_a, "a", port_a);
    let mut worker_b = start(&config_b, "b", port_b);
    wait_until(Duration::from_secs(60), "both workers' APIs", || {
        worker_a.get_json("/api/v1/streams").is_some()
            && worker_b.get_json("/api/v1/streams").is_some()
    });

    for n in 0..6 {
        let (status, answer) = worker_a.post_json(
            "/api/v1/streams",
            &serde_json::json!({
                "id": format!("cam{n}"),
                "uri": "test:ball?width=160&height=120&fps=2",
                "sample_fps": 0.5,
                "max_width": 160,
            }),
        );
        assert_eq!(status, 202, "{answer}");
        assert!(answer["partition"].as_i64().is_some(), "{answer}");
    }
    let (status, answer) = worker_a.post_json(
        "/api/v1/streams",
        &serde_json::json!({ "id": "cam0", "uri": "test:ball" }),
    );
    assert_eq!(
        status, 409,
        "a camera id is unique across the group: {answer}"
    );

    let all: Vec<String> = (0..6).map(|n| format!("cam{n}")).collect();
    wait_until(
        Duration::from_secs(60),
        "three cameras on each worker",
        || {
            let (a, b) = (running(&worker_a), running(&worker_b));
            let mut both: Vec<String> = a.iter().chain(&b).cloned().collect();
            both.sort();
            a.len() == 3 && b.len() == 3 && both == all
        },
    );

    worker_b.kill();
    wait_until(
        Duration::from_secs(30),
        "the survivor to run all six cameras",
        || running(&worker_a) == all,
    );

    let worker_b = start(&config_b, "b-restarted", port_b);
    wait_until(
        Duration::from_secs(60),
        "three cameras on each worker again",
        || {
            let (a, b) = (running(&worker_a), running(&worker_b));
            let mut both: Vec<String> = a.iter().chain(&b).cloned().collect();
            both.sort();
            a.len() == 3 && b.len() == 3 && both == all
        },
    );
    assert_eq!(
        worker_a.metric("argus_cluster_cameras_assigned", &[]),
        Some(3.0)
    );

    // Removing a camera through either worker stops it wherever it runs.
    assert_eq!(worker_b.delete("/api/v1/streams/cam0"), 202);
    wait_until(Duration::from_secs(30), "cam0 to stop", || {
        !running(&worker_a).contains(&"cam0".to_string())
            && !running(&worker_b).contains(&"cam0".to_string())
    });
    assert_eq!(worker_b.delete("/api/v1/streams/cam0"), 404);
}

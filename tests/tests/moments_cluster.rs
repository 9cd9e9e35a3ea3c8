//! Moment search in scale-out: two workers split two cameras; each worker's index holds its
//! own camera only, and a query on either worker finds a moment on the other's camera (the
//! answer merged from both, with links to the worker that holds it). A dead worker makes
//! answers `partial` and says which worker failed, until the group gives its camera to the
//! survivor, whose index then takes the camera's stored history on.

use std::path::Path;
use std::time::Duration;

use argus_e2e::*;

/// The cameras a worker runs, in any state (a recorded file stays listed once read).
fn cameras(argus: &Argus) -> Vec<String> {
    let mut ids: Vec<String> = argus
        .get_json("/api/v1/streams")
        .and_then(|answer| answer["streams"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

/// The cameras a worker's own index holds.
fn indexed_here(argus: &Argus) -> Vec<String> {
    argus
        .get_json("/api/v1/moments/cameras?scope=local")
        .and_then(|answer| answer["cameras"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c["camera_id"].as_str().map(str::to_owned))
        .collect()
}

fn search(argus: &Argus, query: &str) -> serde_json::Value {
    let (status, answer) = argus.get_status(&format!(
        "/api/v1/moments?q={}&limit=3",
        query.replace(' ', "+")
    ));
    assert_eq!(status, 200, "{answer}");
    answer
}

fn best_camera(answer: &serde_json::Value) -> Option<String> {
    answer["moments"][0]["camera_id"]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn a_query_on_either_worker_finds_a_moment_on_the_other_workers_camera() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let group = unique("argus-test-moments-cluster");
    let (dock_video, gate_video) = (dir.path().join("dock.mp4"), dir.path().join("gate.mp4"));
    make_text_video(&dock_video, "LOADING DOCK", 12);
    make_text_video(&gate_video, "PARKING GATE", 12);

    let (port_a, port_b) = (free_port(), free_port());
    // Two partitions: the two cameras go one to each worker.
    let config_a = write_worker_config(&dir.path().join("a"), &services, &group, port_a, 2);
    let config_b = write_worker_config(&dir.path().join("b"), &services, &group, port_b, 2);
    let start = |config: &Path, name: &str, port: u16| {
        Argus::start(
            config,
            &[],
            artifacts_dir().join(format!("moments_cluster.{name}.argus.log")),
            format!("http://127.0.0.1:{port}"),
        )
    };
    let worker_a = start(&config_a, "a", port_a);
    let mut worker_b = start(&config_b, "b", port_b);
    wait_until(Duration::from_secs(120), "both workers ready", || {
        worker_a.is_up() && worker_b.is_up()
    });
    for (camera, video) in [("dock", &dock_video), ("gate", &gate_video)] {
        let (status, answer) = worker_a.post_json(
            "/api/v1/streams",
            &serde_json::json!({
                "id": camera,
                "uri": format!("file://{}", video.display()),
                "sample_fps": 1.0,
            }),
        );
        assert_eq!(status, 202, "{answer}");
    }
    wait_until(Duration::from_secs(60), "one camera on each worker", || {
        let (a, b) = (cameras(&worker_a), cameras(&worker_b));
        a.len() == 1 && b.len() == 1 && a != b
    });
    let (camera_a, camera_b) = (cameras(&worker_a)[0].clone(), cameras(&worker_b)[0].clone());
    let phrase = |camera: &str| {
        if camera == "dock" {
            "loading dock"
        } else {
            "parking gate"
        }
    };

    // Each worker indexes its own camera, and only that one.
    wait_until(
        Duration::from_secs(180),
        "each worker's index to hold its own camera only",
        || {
            indexed_here(&worker_a) == [camera_a.clone()]
                && indexed_here(&worker_b) == [camera_b.clone()]
        },
    );

    // A query on either worker finds the other's camera.
    for (asked, other_camera, other_port) in [
        (&worker_a, &camera_b, port_b),
        (&worker_b, &camera_a, port_a),
    ] {
        let answer = search(asked, phrase(other_camera));
        assert_eq!(
            best_camera(&answer).as_deref(),
            Some(other_camera.as_str()),
            "{answer}"
        );
        assert_eq!(answer["partial"], false, "{answer}");
        assert_eq!(answer["workers"].as_array().unwrap().len(), 2, "{answer}");
        // Its thumbnail is served by the worker that holds it.
        let thumbnail = answer["moments"][0]["thumbnail"].as_str().unwrap();
        assert!(
            thumbnail.starts_with(&format!("http://127.0.0.1:{other_port}/")),
            "{thumbnail}"
        );
        let response = ureq::get(thumbnail)
            .call()
            .expect("the thumbnail is served");
        assert_eq!(response.headers()["content-type"], "image/jpeg");
        // Asked for its own cameras only, the worker does not know the other's.
        let (status, _) = asked.get_status(&format!(
            "/api/v1/moments?q={}&camera={other_camera}&scope=local",
            phrase(other_camera).replace(' ', "+")
        ));
        assert_eq!(status, 404);
    }
    let everywhere = worker_a.get_json("/api/v1/moments/cameras").unwrap();
    let listed: Vec<&str> = everywhere["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["camera_id"].as_str())
        .collect();
    assert_eq!(listed, ["dock", "gate"], "{everywhere}");

    // A dead worker: answers say so until its entry expires and its camera moves to the
    // survivor, which takes the camera's stored windows on.
    worker_b.kill();
    let answer = search(&worker_a, phrase(&camera_a));
    assert_eq!(
        best_camera(&answer).as_deref(),
        Some(camera_a.as_str()),
        "{answer}"
    );
    assert_eq!(answer["partial"], true, "{answer}");
    assert!(
        answer["workers"][1]["error"].as_str().is_some(),
        "the failed worker is named with its error: {answer}"
    );
    wait_until(
        Duration::from_secs(120),
        "the survivor to answer for the dead worker's camera",
        || {
            let answer = search(&worker_a, phrase(&camera_b));
            best_camera(&answer).as_deref() == Some(camera_b.as_str()) && answer["partial"] == false
        },
    );
    assert!(indexed_here(&worker_a).contains(&camera_b));
}

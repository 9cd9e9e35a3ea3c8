//! The objects evaluation end to end: `deploy/make_synthetic_objects.py` builds its clip (a
//! person walks left to right across the short line `gate`, which nobody else crosses), and
//! `argus eval-objects` runs it through the objects stage with the real NanoDet detector. The
//! one crossing of `gate` must come back once, left to right, at its time.

use std::path::Path;
use std::process::Command;

use argus_e2e::argus_binary;

#[test]
fn the_synthetic_crossing_of_the_gate_comes_back_left_to_right() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/make_synthetic_objects.py");
    // the venv's python (deploy/env.sh puts it first on PATH): the generator needs numpy
    let status = Command::new("python3")
        .arg(script)
        .args(["--out", dir.path().to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("python3 runs");
    assert!(status.success(), "the synthetic clip generator failed");
    let truth: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("synthetic-objects.json")).unwrap(),
    )
    .unwrap();
    let true_gate: Vec<&serde_json::Value> = truth["crossings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["line"] == "gate")
        .collect();
    assert_eq!(true_gate.len(), 1, "the clip has one crossing of the gate");
    assert_eq!(true_gate[0]["direction"], "left_to_right");

    let output = Command::new(argus_binary())
        .args(["eval-objects", "--json", "--synthetic"])
        .arg(dir.path())
        .output()
        .expect("argus runs");
    assert!(
        output.status.success(),
        "argus eval-objects failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let reported_gate: Vec<&serde_json::Value> = report["synthetic"]["reported"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "line_crossed" && e["key"].as_str().unwrap().starts_with("gate:"))
        .collect();
    assert_eq!(
        reported_gate.len(),
        1,
        "gate crossings reported: {reported_gate:?}"
    );
    assert_eq!(reported_gate[0]["key"], "gate:left_to_right");
    let late =
        reported_gate[0]["time_s"].as_f64().unwrap() - true_gate[0]["time_s"].as_f64().unwrap();
    // the stage looks at objects.fps (5) frames a second, and a detected box's bottom edge
    // is a few pixels off the true one: within a frame and a half of the truth
    assert!(
        late.abs() <= 0.3,
        "reported {late:+.2} s from the true crossing"
    );
    // The van and the car parked in the background stay one track each, started once, and
    // the people walking past them do not break those tracks.
    let synthetic = &report["synthetic"];
    let vehicles = synthetic["vehicle_tracks"].as_u64().unwrap();
    assert!(
        (1..=2).contains(&vehicles),
        "{vehicles} vehicle tracks for the parked van and car"
    );
    assert_eq!(
        synthetic["vehicle_track_starts"].as_u64().unwrap(),
        vehicles,
        "a parked vehicle's track started again"
    );
}

//! The operator console in a real browser (headless Chromium via playwright-core): add a
//! stream, see its tile go live with a thumbnail and a zone and a line drawn through the API
//! over it (and tracked people over the sample street's), see results on the live feed, search the
//! moment index of a recording indexed with `argus index` (result cards with thumbnails and the
//! on-screen text that matched; the clip plays where the server offers one), and keep a
//! screenshot as a test artifact.

use std::process::Command;
use std::time::Duration;

use argus_e2e::*;

#[test]
fn the_console_adds_a_stream_shows_it_live_and_searches_moments_in_a_browser() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let config = write_config_toml(
        dir.path(),
        &services,
        &unique("argus.test.console"),
        &unique("argus-test"),
        http_port,
        "",
    );
    // Moment windows go to a topic of this test's own.
    set_moments_topic(&config, &unique("argus.test.console.moments"));

    // A recording with known on-screen text, indexed before Argus starts (it loads the
    // windows from Redis).
    let video = dir.path().join("loading-dock.mp4");
    make_text_video(&video, "LOADING DOCK", 8);
    let index = argus_command(&config)
        .arg("index")
        .arg(&video)
        .args([
            "--camera",
            "search-cam",
            "--start",
            "2026-01-01T00:00:00Z",
            "--fps",
            "1",
        ])
        .output()
        .expect("argus index runs");
    assert!(
        index.status.success(),
        "argus index failed:\n{}{}",
        String::from_utf8_lossy(&index.stdout),
        String::from_utf8_lossy(&index.stderr)
    );

    let url = format!("http://127.0.0.1:{http_port}");
    // Objects on, at a rate light enough for a test machine: the sample street's people are
    // boxed over its tile.
    let argus = Argus::start_with_env(
        &config,
        &[],
        &[
            ("ARGUS_OBJECTS__ENABLED", "true"),
            ("ARGUS_OBJECTS__FPS", "1.0"),
        ],
        artifacts_dir().join("console.argus.log"),
        url.clone(),
    );
    wait_until(Duration::from_secs(60), "the API", || argus.is_up());

    let screenshot = artifacts_dir().join("console.png");
    let _ = std::fs::remove_file(&screenshot);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console/check_console.mjs");
    let output = Command::new("node")
        .arg(&script)
        .args([&url, TEST_API_TOKEN])
        .arg(&screenshot)
        .args(["search-cam", "loading dock", "LOADING DOCK"])
        .output()
        .expect("node runs (deploy/setup.sh installs it with playwright-core)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    assert!(
        output.status.success(),
        "{report}\nArgus log:\n{}",
        argus.logs()
    );
    // The built-in sample stream runs too (the config lists no streams of its own).
    assert!(
        report.contains("console ok: 2 streams, 2 running"),
        "{report}"
    );
    assert!(report.contains("overlay ok: "), "{report}");
    assert!(report.contains("tracks ok: #"), "{report}");
    assert!(report.contains("moments ok: "), "{report}");
    let png = std::fs::read(&screenshot).expect("a screenshot");
    assert_eq!(&png[1..4], b"PNG");
    assert!(png.len() > 10_000, "the screenshot shows a page");
}

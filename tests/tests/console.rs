//! The operator console in a real browser (headless Chromium via playwright-core): add a
//! stream, see its tile go live with a thumbnail, see results on the live feed, and keep a
//! screenshot as a test artifact.

use std::process::Command;
use std::time::Duration;

use argus_e2e::*;

#[test]
fn the_console_adds_a_stream_and_shows_it_live_in_a_browser() {
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
    let url = format!("http://127.0.0.1:{http_port}");
    let argus = Argus::start(
        &config,
        &[],
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
        .output()
        .expect("node runs (deploy/setup.sh installs it with playwright-core)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
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
    let png = std::fs::read(&screenshot).expect("a screenshot");
    assert_eq!(&png[1..4], b"PNG");
    assert!(png.len() > 10_000, "the screenshot shows a page");
}

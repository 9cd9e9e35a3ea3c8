//! Operations against a running Argus: every metric the Grafana dashboards and the Prometheus
//! alert rules query is in a live `/metrics` scrape (a renamed metric would otherwise leave a
//! panel empty or an alert silent without anyone noticing).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use argus_e2e::*;

/// `argus_*` and `process_*` series named in a dashboard or rule file, as metric families
/// (histogram `_bucket`/`_sum`/`_count` series belong to their family).
fn families_used(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for prefix in ["argus_", "process_"] {
        for (start, _) in text.match_indices(prefix) {
            let before = text[..start].chars().last();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let name: String = text[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name)
                .to_owned();
            names.insert(family);
        }
    }
    names
}

#[test]
fn every_metric_of_the_dashboards_and_alert_rules_is_in_a_live_scrape() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let config = write_config_toml(
        dir.path(),
        &services,
        &unique("argus.test.operations"),
        &unique("argus-test"),
        http_port,
        // Captions on: their series are on the dashboards too.
        "[captions]\nenabled = true\n\
         [[streams]]\nid = \"ops\"\nuri = \"test:ball?width=160&height=120&fps=5\"\nsample_fps = 2.0\n",
    );
    let argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("operations.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    wait_until(
        Duration::from_secs(60),
        "results on Kafka and in Redis",
        || {
            argus
                .metric("argus_kafka_deliveries_total", &["result=\"delivered\""])
                .unwrap_or(0.0)
                >= 3.0
                && argus
                    .metric("argus_publish_latency_seconds_count", &["sink=\"redis\""])
                    .unwrap_or(0.0)
                    >= 3.0
        },
    );
    let scrape = ureq::get(&format!("http://127.0.0.1:{http_port}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let exported: BTreeSet<String> = scrape
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect();

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards");
    let mut files = vec![root.join("alerts/argus-rules.yml")];
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    assert!(files.len() >= 5, "four dashboards and the rules: {files:?}");
    let mut missing = Vec::new();
    let mut checked = BTreeSet::new();
    for file in &files {
        for family in families_used(&std::fs::read_to_string(file).unwrap()) {
            if !exported.contains(&family) {
                missing.push(format!("{family} (used in {})", file.display()));
            }
            checked.insert(family);
        }
    }
    assert!(
        checked.len() >= 15,
        "the files query real metrics: {checked:?}"
    );
    assert!(missing.is_empty(), "not in a live scrape: {missing:#?}");
}

//! Zones and lines drawn through the API (`/api/v1/streams/{camera}/zones`, `/lines`),
//! through the real `argus` binary: bad ones are refused with the reason and change nothing,
//! configured ones are read-only, drawn ones survive a restart (Redis), and a zone drawn on a
//! running camera counts its people without the stream restarting, while
//! `/api/v1/streams/{camera}/objects` serves the tracked boxes the console draws.

use std::path::Path;
use std::time::Duration;

use argus_e2e::*;
use serde_json::{json, Value};

const VTEST: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";

/// PUT a JSON body, with the API token unless `token` is false; the status and the answer.
fn put(argus: &Argus, path: &str, body: &Value, token: bool) -> (u16, Value) {
    let mut request = ureq::put(&format!("{}{path}", argus.http));
    if token {
        request = request.header("Authorization", &bearer());
    }
    let response = request
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(body)
        .expect("the API answers");
    let status = response.status().as_u16();
    let answer = response.into_body().read_json().unwrap_or(Value::Null);
    (status, answer)
}

fn start(config: &Path, env: &[(&str, &str)], log: &str, http_port: u16) -> Argus {
    let argus = Argus::start_with_env(
        config,
        &[],
        env,
        artifacts_dir().join(log),
        format!("http://127.0.0.1:{http_port}"),
    );
    // The full API answers once the models are loaded; until then everything but /healthz
    // is 503 (and before that the port is closed).
    wait_until(Duration::from_secs(120), "the API", || {
        argus.get_json("/api/v1/streams").is_some()
    });
    argus
}

/// The ids of a list of zones or lines, with their origin.
fn ids(list: &Value) -> Vec<(String, String)> {
    (list.as_array().expect("a list").iter())
        .map(|item| {
            (
                item["id"].as_str().unwrap().to_owned(),
                item["origin"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn bad_zones_and_lines_are_refused_with_the_reason_and_drawn_ones_survive_a_restart() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let prefix = unique("argus-test");
    let configured = "[[objects.zones]]\nid = \"lane\"\ncamera = \"gate\"\n\
                      points = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]\n";
    let config = write_config_toml(
        dir.path(),
        &services,
        &unique("argus.test.zones"),
        &prefix,
        http_port,
        configured,
    );
    // Zones are kept whether or not the detector runs; this test needs no model but OCR's.
    let env = [
        ("ARGUS_CAPTIONS__ENABLED", "false"),
        ("ARGUS_MOMENTS__ENABLED", "false"),
    ];
    let mut argus = start(&config, &env, "zones.argus.log", http_port);
    let zones = "/api/v1/streams/gate/zones";
    let lines = "/api/v1/streams/gate/lines";

    let door = json!({ "points": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]],
                       "dwell_s": 5.0, "classes": ["person"] });
    assert_eq!(put(&argus, &format!("{zones}/door"), &door, true).0, 200);
    // A PUT with the same id replaces the zone.
    let moved_door = json!({ "camera": "gate", "id": "door",
                             "points": [[0.2, 0.1], [0.5, 0.1], [0.5, 0.4], [0.2, 0.4]] });
    let (status, stored) = put(&argus, &format!("{zones}/door"), &moved_door, true);
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["points"][0], json!([0.2, 0.1]));
    let shed = json!({ "points": [[0.6, 0.1], [0.9, 0.1], [0.75, 0.3]] });
    assert_eq!(put(&argus, &format!("{zones}/shed"), &shed, true).0, 200);
    let kerb = json!({ "from": [0.5, 0.0], "to": [0.5, 1.0], "classes": ["car", "truck"] });
    assert_eq!(put(&argus, &format!("{lines}/kerb"), &kerb, true).0, 200);

    // Each bad zone or line: 400 with the reason.
    let refused = [
        (
            format!("{zones}/tiny"),
            json!({ "points": [[0.1, 0.1], [0.2, 0.2]] }),
            "zone `tiny` has 2 points; a zone needs at least 3",
        ),
        (
            format!("{zones}/bow"),
            json!({ "points": [[0.1, 0.1], [0.5, 0.5], [0.5, 0.1], [0.1, 0.5]] }),
            "zone `bow` crosses itself",
        ),
        (
            format!("{zones}/wide"),
            json!({ "points": [[0.1, 0.1], [1.5, 0.1], [0.3, 0.5]] }),
            "point [1.5, 0.1] is outside the view",
        ),
        (
            format!("{zones}/door"),
            json!({ "points": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4]], "classes": ["person", "dragon"] }),
            "`dragon` is not a COCO class",
        ),
        (
            format!("{zones}/door"),
            json!({ "points": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4]], "colour": "red" }),
            "unknown field `colour`",
        ),
        (
            format!("{zones}/door"),
            json!({ "camera": "yard", "points": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4]] }),
            "the camera in the path is `gate` but the body says `yard`",
        ),
        (
            format!("{zones}/bad%20id"),
            json!({ "points": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4]] }),
            "`bad id`: ids are 1-128 letters",
        ),
        (
            format!("{lines}/kerb"),
            json!({ "from": [0.3, 0.3], "to": [0.3, 0.3] }),
            "line `kerb` has zero length",
        ),
        (
            format!("{lines}/kerb"),
            json!({ "from": [-0.1, 0.3], "to": [0.3, 0.3] }),
            "point [-0.1, 0.3] is outside the view",
        ),
        (
            format!("{lines}/kerb"),
            json!({ "from": [0.1, 0.3], "to": [0.3, 0.3], "classes": ["unicorn"] }),
            "`unicorn` is not a COCO class",
        ),
        (
            format!("{lines}/kerb"),
            json!({ "from": [0.1, 0.3] }),
            "missing field `to`",
        ),
    ];
    for (path, body, reason) in &refused {
        let (status, answer) = put(&argus, path, body, true);
        assert_eq!(status, 400, "PUT {path} {body}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(reason), "PUT {path} {body}: {error}");
    }
    // Configured zones are read-only; changes need the API token.
    let (status, answer) = put(&argus, &format!("{zones}/lane"), &door, true);
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("objects.zones"));
    assert_eq!(argus.delete(&format!("{zones}/lane")), 409);
    assert_eq!(put(&argus, &format!("{zones}/gate2"), &door, false).0, 401);
    assert_eq!(argus.delete(&format!("{zones}/nowhere")), 404);
    assert_eq!(argus.delete(&format!("{zones}/shed")), 204);

    let check = |argus: &Argus, when: &str| {
        let listed = argus.get_json(zones).expect("zones");
        assert_eq!(
            ids(&listed["zones"]),
            [
                ("lane".into(), "config".into()),
                ("door".into(), "api".into())
            ],
            "{when}: {listed}"
        );
        let door = &listed["zones"][1];
        assert_eq!(door["points"][0], json!([0.2, 0.1]), "{when}: {listed}");
        assert_eq!(door["dwell_s"], Value::Null, "replaced whole: {listed}");
        let listed = argus.get_json(lines).expect("lines");
        assert_eq!(
            ids(&listed["lines"]),
            [("kerb".into(), "api".into())],
            "{when}: {listed}"
        );
        assert_eq!(listed["lines"][0]["classes"], json!(["car", "truck"]));
        // What the console draws: no objects on this camera, its zones and lines.
        let drawn = argus.get_json("/api/v1/streams/gate/objects").unwrap();
        assert_eq!(drawn["objects"], Value::Null, "{drawn}");
        assert_eq!(drawn["zones"].as_array().unwrap().len(), 2, "{drawn}");
        assert_eq!(drawn["lines"].as_array().unwrap().len(), 1, "{drawn}");
        // Another camera has none of them.
        let other = argus.get_json("/api/v1/streams/yard/zones").unwrap();
        assert_eq!(other["zones"], json!([]), "{other}");
    };
    check(&argus, "before the restart");
    assert_eq!(argus.terminate(), 0, "log:\n{}", argus.logs());

    let argus = start(&config, &env, "zones.restarted.argus.log", http_port);
    check(&argus, "after the restart");
}

#[test]
fn a_zone_drawn_on_a_running_camera_counts_its_people_and_the_boxes_are_served() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let prefix = unique("argus-test");
    let streams = format!(
        "[[streams]]\nid = \"street\"\nuri = \"file://{VTEST}\"\nsample_fps = 1.0\n\
         [objects]\nenabled = true\nfps = 2.0\n"
    );
    let config = write_config_toml(
        dir.path(),
        &services,
        &unique("argus.test.zones-live"),
        &prefix,
        http_port,
        &streams,
    );
    let env = [
        ("ARGUS_CAPTIONS__ENABLED", "false"),
        ("ARGUS_MOMENTS__ENABLED", "false"),
    ];
    let argus = start(&config, &env, "zones-live.argus.log", http_port);

    // The tracked boxes the console draws, from the objects sink's latest message.
    let mut latest = Value::Null;
    wait_until(Duration::from_secs(120), "tracked people", || {
        latest = argus
            .get_json("/api/v1/streams/street/objects")
            .unwrap_or_default();
        latest["objects"]["objects"]
            .as_array()
            .is_some_and(|tracked| !tracked.is_empty())
    });
    for object in latest["objects"]["objects"].as_array().unwrap() {
        assert!(object["track_id"].is_u64(), "{object}");
        assert!(object["class"].is_string(), "{object}");
        let bbox: Vec<f64> = (object["bbox"].as_array().unwrap().iter())
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!(
            bbox.iter().all(|v| (0.0..=1.0).contains(v)) && bbox[0] < bbox[2] && bbox[1] < bbox[3],
            "{object}"
        );
    }
    assert_eq!(latest["zones"], json!([]), "no zone drawn yet: {latest}");

    // A zone over the whole pavement, drawn while the stream runs.
    let frames_before = argus.get_json("/api/v1/streams/street").unwrap()["frames_analysed"]
        .as_u64()
        .unwrap();
    let everywhere = json!({ "points": [[0.0, 0.0], [1.0, 0.0], [1.0, 0.999], [0.0, 0.999]],
                             "classes": ["person"] });
    let (status, answer) = put(
        &argus,
        "/api/v1/streams/street/zones/everywhere",
        &everywhere,
        true,
    );
    assert_eq!(status, 200, "{answer}");
    let mut redis = redis::Client::open(services.redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let counts_key = format!("{prefix}:objects:street:zones");
    let mut people = 0u64;
    wait_until(
        Duration::from_secs(120),
        "people counted in the new zone",
        || {
            people = redis::cmd("HGET")
                .arg(&counts_key)
                .arg("everywhere")
                .query::<Option<u64>>(&mut redis)
                .unwrap()
                .unwrap_or(0);
            people > 0
        },
    );
    // The same stream went on (or reached the end of the video): no restart, no reconnect.
    let street = argus.get_json("/api/v1/streams/street").unwrap();
    assert!(
        street["state"] == "running" || street["state"] == "finished",
        "{street}"
    );
    assert_eq!(street["reconnects"], 0, "{street}");
    assert!(
        street["frames_analysed"].as_u64().unwrap() > frames_before,
        "{street}"
    );
    assert!(
        argus.logs().contains("zones and lines redrawn"),
        "log:\n{}",
        argus.logs()
    );
}

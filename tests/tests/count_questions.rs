//! Count questions on the sample street camera (`vtest.avi`), through the real `argus` binary
//! with objects and captions on: "How many people walked past?" is answered with the number
//! of moving person tracks the objects sink stored in Redis, whoever phrased the answer (the
//! LLM, or the counted sentence where the LLM's answer did not state the number).

use std::time::Duration;

use argus_e2e::*;
use chrono::{DateTime, Utc};

const VTEST: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";
const START: &str = "2026-01-01T10:00:00Z";

/// The stored tracks of `class` in view during `[from, to)`: (moved, total).
fn stored_tracks(
    redis: &mut redis::Connection,
    key: &str,
    class: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> (usize, usize) {
    let stored: Vec<String> = redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query(redis)
        .unwrap();
    let time = |track: &serde_json::Value, field: &str| -> DateTime<Utc> {
        track[field].as_str().unwrap().parse().unwrap()
    };
    let tracks: Vec<serde_json::Value> = stored
        .iter()
        .map(|json| serde_json::from_str(json).unwrap())
        .filter(|track: &serde_json::Value| track["class"] == class)
        .filter(|track| time(track, "first_seen") < to && time(track, "last_seen") >= from)
        .collect();
    let moved = tracks
        .iter()
        .filter(|track| track["movement"].get("moving").is_some())
        .count();
    (moved, tracks.len())
}

/// The counts an answer states: numbers in digits (times such as 10:00:05 aside) or in words.
fn numbers_in(text: &str) -> Vec<usize> {
    const WORDS: [&str; 21] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
    ];
    text.to_lowercase()
        .split(|c: char| c.is_whitespace() || ",.;!?()\"'".contains(c))
        .filter_map(|word| {
            if !word.is_empty() && word.chars().all(|c| c.is_ascii_digit()) {
                word.parse().ok()
            } else {
                WORDS.iter().position(|&w| w == word)
            }
        })
        .collect()
}

#[test]
fn how_many_people_walked_past_is_answered_from_the_stored_tracks() {
    let services = services();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("argus.test.counts");
    let answers_topic = format!("{topic}.answers");
    let prefix = unique("argus-test-counts");
    let http_port = free_port();
    // Long chunks, each caption accepted at once (θ = 0: no correction round), keep the LLM's
    // share of the test short: what is tested is the count, not the captions.
    let settings = format!(
        "[[streams]]\nid = \"street\"\nuri = \"file://{VTEST}\"\nsample_fps = 1.0\n\
         start_time = \"{START}\"\n\
         [objects]\nenabled = true\nfps = 4.0\n\
         [captions]\nenabled = true\nchunk_s = 20.0\nmax_new_tokens = 24\nthreshold = 0.0\n\
         [moments]\nenabled = false\n"
    );
    let config = write_config_toml(dir.path(), &services, &topic, &prefix, http_port, &settings);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[kafka.spill]",
        &format!("answers = \"{answers_topic}\"\n[kafka.spill]"),
    );
    std::fs::write(&config, text).unwrap();
    let mut argus = Argus::start(
        &config,
        &[],
        artifacts_dir().join("count_questions.argus.log"),
        format!("http://127.0.0.1:{http_port}"),
    );
    wait_for_streams(
        &argus,
        Duration::from_secs(240),
        "the street video's tracks and captions",
        |streams| stream(streams, "street").is_some_and(|s| s["state"] == "finished"),
    );

    let mut redis = redis::Client::open(services.redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let live: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}:objects:street:tracks:live"))
        .query(&mut redis)
        .unwrap();
    assert_eq!(live, None, "every track ended with the recording");
    let tracks_key = format!("{prefix}:objects:street:tracks");
    let answer_schema = schema("answer");
    let mut asked = |question: &str| -> (serde_json::Value, (usize, usize)) {
        let body = serde_json::json!({ "camera": "street", "question": question, "from": START });
        let (status, answer) = argus.post_json("/api/v1/questions", &body);
        assert_eq!(status, 200, "{answer}; log:\n{}", argus.logs());
        let answers = answer["answers"].as_array().unwrap();
        let last = answers.last().unwrap();
        let to: DateTime<Utc> = last["to"].as_str().unwrap().parse().unwrap();
        let tracks = stored_tracks(
            &mut redis,
            &tracks_key,
            "person",
            START.parse().unwrap(),
            to,
        );
        for each in answers {
            if let Err(error) = answer_schema.validate(each) {
                panic!("answer does not match schemas/answer.v1.json: {error}\n{each}");
            }
        }
        (answer, tracks)
    };

    let (walked, (moved, all)) = asked("How many people walked past?");
    // vtest.avi: pedestrians walk along the pavement both ways the whole time.
    assert!(moved >= 5, "{moved} moving person tracks stored");
    let text = walked["text"].as_str().unwrap();
    assert_eq!(
        numbers_in(text),
        vec![moved],
        "the answer states the count of moving person tracks ({moved}): {walked}"
    );
    for answer in walked["answers"].as_array().unwrap() {
        let counted = &answer["counted"];
        assert_eq!(counted["count"], moved, "{answer}");
        assert_eq!(counted["classes"], serde_json::json!(["person"]));
        assert_eq!(counted["movement"], "moved");
        // The model was shown the count among its observations.
        assert!(
            answer["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .any(|line| line["text"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("track count: {moved} people walked past"))),
            "{answer}"
        );
    }

    // "Were there" counts every person track, moving or not.
    let (there, (_, all_now)) = asked("How many persons were there?");
    assert_eq!(all_now, all);
    assert!(all >= moved);
    assert_eq!(
        numbers_in(there["text"].as_str().unwrap()),
        vec![all],
        "{there}"
    );
    assert_eq!(there["answers"][0]["counted"]["movement"], "any");

    // Not a count question: no count, the model's answer as before.
    let (other, _) = asked("Is anything moving?");
    assert!(other["answers"][0].get("counted").is_none(), "{other}");

    let code = argus.terminate();
    assert_eq!(code, 0, "log:\n{}", argus.logs());
    // The counted answers reached the answers topic too.
    let published = consume(
        &services.kafka_brokers,
        &answers_topic,
        Duration::from_secs(30),
        |got| got.len() >= 3,
    );
    assert!(
        published
            .iter()
            .any(|m| m.payload["counted"]["count"] == moved && m.key == "street"),
        "answers on the topic: {}",
        published.len()
    );
}

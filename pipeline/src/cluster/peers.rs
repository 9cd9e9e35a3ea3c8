//! The workers of a scale-out group as each other's API addresses, and the moment queries
//! they answer together.
//!
//! Each worker's moment index holds the cameras it runs (plus those no worker runs, such as
//! files indexed by `argus index`); a query on any worker is sent to every live worker and
//! the answers are merged by score: scatter-gather, as a search engine queries its shards.
//! This keeps each worker's index (and its saved copy) in proportion to its cameras, with
//! no vector store to run beside Kafka and Redis. README "Scale-out" says why this over a
//! shared vector store.
//!
//! Who is live is a Redis hash (`{prefix}:cluster:{group}:workers`): each worker writes its
//! address and cameras every [`HEARTBEAT`] with an expiry of `cluster.session_timeout_ms`,
//! the same time after which the Kafka group gives its cameras to the others. Kafka's group
//! membership itself does not carry an address to query, hence the hash.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::{ClusterConfig, HttpConfig};
use crate::publish::RedisState;
use crate::query::moments::MomentSearch;
use crate::stream::StreamRegistry;

/// How often a worker says it is alive, with its cameras.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// One worker as the others see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WorkerEntry {
    url: String,
    cameras: Vec<String>,
    expires_ms: i64,
}

/// A live worker other than this one.
#[derive(Debug, Clone)]
pub struct Peer {
    pub url: String,
    pub cameras: Vec<String>,
}

/// This worker's place in the group's directory of API addresses; cheap to clone.
#[derive(Clone)]
pub struct Peers {
    redis: RedisState,
    key: String,
    id: String,
    url: String,
    lifetime: Duration,
    client: reqwest::Client,
}

/// Where the other workers reach this one: `cluster.advertise_url`, else `http.listen` with
/// the host name for an unspecified address.
fn advertised_url(cluster: &ClusterConfig, listen: std::net::SocketAddr) -> String {
    if !cluster.advertise_url.is_empty() {
        return cluster.advertise_url.trim_end_matches('/').to_owned();
    }
    if listen.ip().is_unspecified() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        format!("http://{host}:{}", listen.port())
    } else {
        format!("http://{listen}")
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Peers {
    pub fn new(
        cluster: &ClusterConfig,
        http: &HttpConfig,
        redis: RedisState,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(cluster.peer_timeout_ms))
            .build()?;
        Ok(Self {
            key: format!(
                "{}:cluster:{}:workers",
                redis.key_prefix(),
                cluster.group_id
            ),
            redis,
            id: uuid::Uuid::now_v7().to_string(),
            url: advertised_url(cluster, http.listen),
            lifetime: Duration::from_millis(u64::from(cluster.session_timeout_ms)),
            client,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Says this worker is alive and runs `cameras`; returns the other live workers, and
    /// removes the entries of workers gone for longer than their lifetime (or unreadable:
    /// no one will answer for them).
    async fn beat(&self, cameras: Vec<String>) -> redis::RedisResult<Vec<Peer>> {
        let mut connection = self.redis.connection().await?;
        let entry = WorkerEntry {
            url: self.url.clone(),
            cameras,
            expires_ms: now_ms() + self.lifetime.as_millis() as i64,
        };
        let value = serde_json::to_string(&entry).expect("a worker entry serialises");
        let _: () = connection.hset(&self.key, &self.id, value).await?;
        let (peers, gone) = self.read_directory(&mut connection).await?;
        if !gone.is_empty() {
            let _: () = connection.hdel(&self.key, gone).await?;
        }
        Ok(peers)
    }

    /// The other live workers, as last written.
    pub async fn others(&self) -> redis::RedisResult<Vec<Peer>> {
        let mut connection = self.redis.connection().await?;
        Ok(self.read_directory(&mut connection).await?.0)
    }

    /// The other live workers, and the ids of expired or unreadable entries.
    async fn read_directory(
        &self,
        connection: &mut redis::aio::ConnectionManager,
    ) -> redis::RedisResult<(Vec<Peer>, Vec<String>)> {
        let entries: HashMap<String, String> = connection.hgetall(&self.key).await?;
        let now = now_ms();
        let (mut peers, mut gone) = (Vec::new(), Vec::new());
        for (id, value) in entries {
            match serde_json::from_str::<WorkerEntry>(&value) {
                Ok(entry) if entry.expires_ms >= now => {
                    if id != self.id {
                        peers.push(Peer {
                            url: entry.url,
                            cameras: entry.cameras,
                        });
                    }
                }
                _ => gone.push(id),
            }
        }
        Ok((peers, gone))
    }

    /// Says this worker is alive every [`HEARTBEAT`] and keeps its moment index to its
    /// share: the cameras the other workers run leave it.
    pub async fn run(self, registry: StreamRegistry, moments: Option<MomentSearch>) {
        let mut every = tokio::time::interval(HEARTBEAT);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let mine: HashSet<String> = registry.list().into_iter().map(|s| s.id).collect();
            let peers = match self.beat(mine.iter().cloned().collect()).await {
                Ok(peers) => peers,
                Err(error) => {
                    tracing::warn!(%error, "the worker directory in Redis was not updated; retrying");
                    continue;
                }
            };
            let Some(moments) = &moments else { continue };
            let others: HashSet<String> = peers
                .into_iter()
                .flat_map(|peer| peer.cameras)
                .filter(|camera| !mine.contains(camera))
                .collect();
            if let Err(error) = moments.index_only_beside(others).await {
                tracing::warn!(%error, "the moment index was not brought to this worker's cameras; retrying");
            }
        }
    }

    /// Leaves the directory at shutdown, so no query waits for this worker.
    pub async fn leave(&self) {
        let removed: redis::RedisResult<()> = async {
            let mut connection = self.redis.connection().await?;
            connection.hdel(&self.key, &self.id).await
        }
        .await;
        if let Err(error) = removed {
            tracing::warn!(%error, "this worker stays in the directory until its entry expires");
        }
    }

    /// Sends a moment request on to every other live worker, with `scope=local` and the
    /// caller's credentials, and gathers their answers.
    pub async fn ask_others(&self, request: &PeerRequest) -> Vec<PeerAnswer> {
        let peers = match self.others().await {
            Ok(peers) => peers,
            Err(error) => {
                return vec![PeerAnswer {
                    url: "(the worker directory)".into(),
                    took_ms: 0.0,
                    reply: Err(format!("Redis: {error}")),
                }]
            }
        };
        let asks = peers.into_iter().map(|peer| async move {
            let started = Instant::now();
            let reply = self.ask(&peer.url, request).await;
            PeerAnswer {
                url: peer.url,
                took_ms: started.elapsed().as_secs_f64() * 1e3,
                reply,
            }
        });
        futures::future::join_all(asks).await
    }

    async fn ask(&self, base: &str, request: &PeerRequest) -> Result<(StatusCode, Value), String> {
        let url = local_url(base, &request.path_and_query);
        let mut builder = self.client.request(request.method.clone(), &url);
        if let Some(authorization) = request.headers.get(axum::http::header::AUTHORIZATION) {
            builder = builder.header(axum::http::header::AUTHORIZATION, authorization);
        }
        if let Some(content_type) = request.headers.get(axum::http::header::CONTENT_TYPE) {
            builder = builder.header(axum::http::header::CONTENT_TYPE, content_type);
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let response = builder.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        Ok((status, body))
    }
}

/// The request's URL on the worker at `base`, asking for that worker's own answer only
/// (`scope=local`, so a query is never passed on twice) in place of any scope the caller
/// gave.
fn local_url(base: &str, path_and_query: &str) -> String {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut pairs = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if name != "scope" {
            pairs.append_pair(&name, &value);
        }
    }
    pairs.append_pair("scope", "local");
    format!("{base}{path}?{}", pairs.finish())
}

/// A moment request as this worker received it.
pub struct PeerRequest {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Option<axum::body::Bytes>,
}

/// Another worker's answer: its status and JSON body, or why there is none.
pub struct PeerAnswer {
    pub url: String,
    pub took_ms: f64,
    pub reply: Result<(StatusCode, Value), String>,
}

/// Makes a peer's relative links (thumbnails, clips) absolute: they are served by the
/// worker that holds the window's thumbnail and the camera's recordings.
fn absolute_links(moment: &mut Value, base: &str) {
    for field in ["thumbnail", "clip"] {
        if let Some(Value::String(link)) = moment.get_mut(field) {
            if link.starts_with('/') {
                *link = format!("{base}{link}");
            }
        }
    }
}

fn moment_key(moment: &Value) -> (String, String, String) {
    let text = |field: &str| moment[field].as_str().unwrap_or_default().to_owned();
    (text("camera_id"), text("start"), text("end"))
}

/// Merges this worker's moment answer with the other workers': the best `limit` moments
/// by score over all of them (a camera indexed by several workers, one no worker runs,
/// counted once), and what each worker said. A worker that failed or did not answer in
/// time is listed with its error and makes the answer `partial`.
pub fn merge_moments(
    own_url: &str,
    own: Value,
    own_took_ms: f64,
    peers: Vec<PeerAnswer>,
    limit: usize,
) -> Value {
    let mut moments: Vec<Value> = Vec::new();
    let mut workers = Vec::new();
    let mut candidates = own["candidates"].as_u64().unwrap_or(0);
    let mut partial = false;
    let own_moments = own["moments"].as_array().cloned().unwrap_or_default();
    workers.push(json!({"url": own_url, "moments": own_moments.len(), "took_ms": own_took_ms}));
    moments.extend(own_moments);
    for peer in peers {
        match peer.reply {
            Ok((status, body)) if status.is_success() => {
                let theirs = body["moments"].as_array().cloned().unwrap_or_default();
                candidates += body["candidates"].as_u64().unwrap_or(0);
                workers.push(
                    json!({"url": peer.url, "moments": theirs.len(), "took_ms": peer.took_ms}),
                );
                moments.extend(theirs.into_iter().map(|mut moment| {
                    absolute_links(&mut moment, &peer.url);
                    moment
                }));
            }
            // The camera asked for is not indexed there: no moments, no failure.
            Ok((StatusCode::NOT_FOUND, _)) => {
                workers.push(json!({"url": peer.url, "moments": 0, "took_ms": peer.took_ms}));
            }
            Ok((status, body)) => {
                partial = true;
                let error = body["error"]
                    .as_str()
                    .unwrap_or("no error given")
                    .to_owned();
                workers.push(json!({"url": peer.url, "took_ms": peer.took_ms,
                    "error": format!("HTTP {status}: {error}")}));
            }
            Err(error) => {
                partial = true;
                workers.push(json!({"url": peer.url, "took_ms": peer.took_ms, "error": error}));
            }
        }
    }
    moments.sort_by(|a, b| {
        let score = |m: &Value| m["score"].as_f64().unwrap_or(f64::MIN);
        score(b).total_cmp(&score(a))
    });
    let mut seen = HashSet::new();
    moments.retain(|moment| seen.insert(moment_key(moment)));
    moments.truncate(limit);
    json!({
        "moments": moments,
        "method": own["method"],
        "candidates": candidates,
        "workers": workers,
        "partial": partial,
    })
}

/// Merges this worker's indexed cameras with the other workers': each camera once, from the
/// worker that holds most of its windows, with that worker's address.
pub fn merge_cameras(own_url: &str, own: Value, peers: Vec<PeerAnswer>) -> Value {
    let mut by_camera: HashMap<String, Value> = HashMap::new();
    let mut add = |mut camera: Value, url: &str| {
        let id = camera["camera_id"].as_str().unwrap_or_default().to_owned();
        camera["worker"] = json!(url);
        let windows = |c: &Value| c["windows"].as_u64().unwrap_or(0);
        match by_camera.get(&id) {
            Some(known) if windows(known) >= windows(&camera) => {}
            _ => {
                by_camera.insert(id, camera);
            }
        }
    };
    for camera in own["cameras"].as_array().cloned().unwrap_or_default() {
        add(camera, own_url);
    }
    let mut partial = false;
    for peer in peers {
        match peer.reply {
            Ok((status, body)) if status.is_success() => {
                for camera in body["cameras"].as_array().cloned().unwrap_or_default() {
                    add(camera, &peer.url);
                }
            }
            _ => partial = true,
        }
    }
    let mut cameras: Vec<Value> = by_camera.into_values().collect();
    cameras.sort_by(|a, b| {
        a["camera_id"]
            .as_str()
            .unwrap_or_default()
            .cmp(b["camera_id"].as_str().unwrap_or_default())
    });
    json!({ "cameras": cameras, "partial": partial })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moment(camera: &str, start: &str, score: f64) -> Value {
        json!({"camera_id": camera, "start": start, "end": start, "score": score,
               "thumbnail": format!("/api/v1/moments/thumbnails/{camera}/1.jpg"), "clip": null})
    }

    fn answer(url: &str, moments: Vec<Value>) -> PeerAnswer {
        PeerAnswer {
            url: url.into(),
            took_ms: 1.0,
            reply: Ok((
                StatusCode::OK,
                json!({"moments": moments, "candidates": 3, "method": "exact"}),
            )),
        }
    }

    #[test]
    fn merged_moments_are_the_best_over_every_worker_each_once_with_links_to_their_worker() {
        let own = json!({"moments": [moment("a", "t1", 0.4)], "candidates": 2, "method": "exact"});
        let merged = merge_moments(
            "http://a:1",
            own,
            1.0,
            vec![
                answer(
                    "http://b:2",
                    vec![moment("b", "t1", 0.9), moment("a", "t1", 0.4)],
                ),
                PeerAnswer {
                    url: "http://c:3".into(),
                    took_ms: 5000.0,
                    reply: Err("timed out".into()),
                },
            ],
            10,
        );
        let moments = merged["moments"].as_array().unwrap();
        assert_eq!(moments.len(), 2, "{merged}");
        assert_eq!(moments[0]["camera_id"], "b");
        assert_eq!(
            moments[0]["thumbnail"],
            "http://b:2/api/v1/moments/thumbnails/b/1.jpg"
        );
        assert_eq!(
            moments[1]["thumbnail"],
            "/api/v1/moments/thumbnails/a/1.jpg"
        );
        assert_eq!(merged["candidates"], 5);
        assert_eq!(merged["partial"], true);
        assert_eq!(merged["workers"][2]["error"], "timed out");
    }

    #[test]
    fn a_worker_that_does_not_know_the_camera_is_not_a_failure() {
        let own = json!({"moments": [], "candidates": 0, "method": "exact"});
        let merged = merge_moments(
            "http://a:1",
            own,
            1.0,
            vec![PeerAnswer {
                url: "http://b:2".into(),
                took_ms: 1.0,
                reply: Ok((StatusCode::NOT_FOUND, json!({"error": "unknown camera"}))),
            }],
            1,
        );
        assert_eq!(merged["partial"], false);
    }

    #[test]
    fn a_passed_on_query_asks_for_the_peers_own_answer_whatever_scope_the_caller_gave() {
        assert_eq!(
            local_url("http://b:2", "/api/v1/moments/cameras"),
            "http://b:2/api/v1/moments/cameras?scope=local"
        );
        assert_eq!(
            local_url(
                "http://b:2",
                "/api/v1/moments?q=white+van&scope=cluster&limit=3"
            ),
            "http://b:2/api/v1/moments?q=white+van&limit=3&scope=local"
        );
    }

    #[test]
    fn the_advertised_url_names_the_host_for_an_unspecified_listen_address() {
        let cluster = ClusterConfig::default();
        let listen = "127.0.0.1:8090".parse().unwrap();
        assert_eq!(advertised_url(&cluster, listen), "http://127.0.0.1:8090");
        let any = "0.0.0.0:8090".parse().unwrap();
        let url = advertised_url(&cluster, any);
        assert!(url.starts_with("http://") && url.ends_with(":8090") && !url.contains("0.0.0.0"));
        let cluster = ClusterConfig {
            advertise_url: "http://10.0.0.7:8090/".into(),
            ..ClusterConfig::default()
        };
        assert_eq!(advertised_url(&cluster, any), "http://10.0.0.7:8090");
    }
}

//! Moment index benchmark: query latency of the approximate (HNSW, usearch) search against
//! the exact scan over the same windows, at 10⁵ and 10⁶ windows, and the recall@10 of the
//! approximate search with the exact one as truth; plus insertion throughput, the memory the
//! index takes (resident set growth), and start-to-ready: saving the index and reopening the
//! save (`MomentIndex::save`/`restore`, what a restart does), checked to answer the same.
//!
//!     source deploy/env.sh
//!     cargo bench -p argus-pipeline --bench moments --profile dev [-- --sizes 100000,1000000]
//!         [--keep DIR]      keep each size's save as DIR/index-N
//!         [--keep DIR --expansions 128,256,512]   and sweep the search beam over each save
//!         [--connectivity M]   links per window in the graph (moments.index_connectivity)
//!     cargo bench -p argus-pipeline --bench moments --profile dev -- --reopen DIR/index-N
//!         [--expansions 64,128,256,512]   sweep the search beam over a kept save
//!     cargo bench -p argus-pipeline --bench moments --profile dev -- --scan DIR/index-N
//!         [--days D]   reopen a kept save as the service does and time its filtered exact
//!                      scan over one camera and D days (1: ~1/600 of the windows)
//!
//! Embeddings are synthetic (the issue allows it): 384-dimensional unit vectors, as
//! all-MiniLM-L6-v2 gives, drawn around 2,000 topic centres so that neighbourhoods exist as
//! they do for real text (uniformly random vectors in 384 dimensions have no near
//! neighbours, which no real index sees). Windows are spread over 20 cameras and 30 days;
//! queries are new points around the same centres. Each query is answered unfiltered and
//! with a camera + time-range filter (one camera, one day: ~1/600 of the windows; 30 queries).

use std::collections::HashSet;
use std::time::Instant;

use argus::moments::index::DEFAULT_CONNECTIVITY;
use argus::moments::store::LogPosition;
use argus::moments::{IndexModels, MomentIndex, MomentWindow, SearchMethod, Space, WindowFilter};
use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIMENSION: usize = 384;
const TOPICS: usize = 2_000;
const CAMERAS: usize = 20;
const DAYS: i64 = 30;
const QUERIES: usize = 300;
const FILTERED_QUERIES: usize = 30;
/// Queries of the beam-width sweep (`--reopen`): each needs an exact search, ~0.5 s at 10^7.
const SWEEP_QUERIES: usize = 100;
const K: usize = 10;
/// Per-coordinate noise around a topic centre: a window's cosine to its centre is ~0.85, to
/// another window of its topic ~0.75, as sentences on one subject score with MiniLM.
const SPREAD: f32 = 0.03;
/// Windows per `insert_many` call, as loading from Redis does.
const BATCH: usize = 10_000;

fn gaussian(rng: &mut StdRng) -> f32 {
    // Box–Muller: the one normal variate this needs does not justify another dependency.
    let (u, v): (f32, f32) = (rng.random_range(1e-7..1.0), rng.random());
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn around(centre: &[f32], spread: f32, rng: &mut StdRng) -> Vec<f32> {
    normalised(centre.iter().map(|c| c + spread * gaussian(rng)).collect())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Latency {
    p50: f64,
    p99: f64,
}

fn measure(queries: usize, mut run: impl FnMut(usize)) -> Latency {
    let mut times: Vec<f64> = (0..queries)
        .map(|q| {
            let started = Instant::now();
            run(q);
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    Latency {
        p50: percentile(&times, 0.5),
        p99: percentile(&times, 0.99),
    }
}

/// The process's resident memory (Linux `VmRSS`), in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn folder_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.metadata().ok())
        .map(|meta| meta.len())
        .sum()
}

fn models() -> IndexModels {
    IndexModels {
        text: "synthetic".into(),
        visual: None,
    }
}

/// `count` new queries for a kept save: around the main run's topic centres (the same seed),
/// drawn with a seed of their own.
fn queries_for_a_save(count: usize) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(7);
    let centres: Vec<Vec<f32>> = (0..TOPICS)
        .map(|_| normalised((0..DIMENSION).map(|_| gaussian(&mut rng)).collect()))
        .collect();
    let mut rng = StdRng::seed_from_u64(8);
    (0..count)
        .map(|_| around(&centres[rng.random_range(0..TOPICS)], SPREAD, &mut rng))
        .collect()
}

/// `--reopen DIR/index-N --expansions 128,256,512`: reopens the text graph of a save that the
/// main run kept (`--keep DIR`; at 10^7 windows the build takes two hours on 2 cores, so a
/// sweep of the search beam reuses one) and measures, per beam width, the graph search's
/// latency and its recall@10 against usearch's exact search over the same graph. Queries are
/// new points around the same topic centres as the main run's.
fn expansion_sweep(dir: &std::path::Path, expansions: &[usize]) {
    let graph = dir.join("text.usearch");
    let started = Instant::now();
    let index = usearch::Index::restore(graph.to_str().expect("a UTF-8 path"))
        .unwrap_or_else(|e| panic!("cannot reopen {}: {e}", graph.display()));
    println!(
        "{}: {} vectors, reopened in {:.1} s",
        graph.display(),
        index.size(),
        started.elapsed().as_secs_f64()
    );
    let queries = queries_for_a_save(SWEEP_QUERIES);
    let truth: Vec<HashSet<u64>> = queries
        .iter()
        .map(|q| index.exact_search(q, K).unwrap().keys.into_iter().collect())
        .collect();
    println!(
        "{:>10} {:>22} {:>10}",
        "expansion", "p50/p99 ms", "recall@10"
    );
    for &expansion in expansions {
        index.change_expansion_search(expansion);
        let latency = measure(SWEEP_QUERIES, |q| {
            index.search(&queries[q], K).unwrap();
        });
        let found: usize = queries
            .iter()
            .zip(&truth)
            .map(|(q, want)| {
                let got = index.search(q, K).unwrap().keys;
                got.iter().filter(|key| want.contains(key)).count()
            })
            .sum();
        let wanted: usize = truth.iter().map(HashSet::len).sum();
        println!(
            "{expansion:>10} {:>10.3} / {:>9.3} {:>10.3}",
            latency.p50,
            latency.p99,
            found as f64 / wanted.max(1) as f64
        );
    }
}

/// Filtered queries of `--scan`: more than the main run's, for a steadier p99.
const SCAN_QUERIES: usize = 200;

/// The filter of query `q`: one camera, `days` days (one: ~1/600 of the windows).
fn camera_days(epoch: DateTime<Utc>, q: usize, days: i64) -> WindowFilter {
    let day = epoch + Duration::days(q as i64 % (DAYS - days + 1));
    WindowFilter {
        cameras: Some(HashSet::from([format!("camera-{:02}", q % CAMERAS)])),
        since_ms: Some(day.timestamp_millis()),
        until_ms: Some((day + Duration::days(days)).timestamp_millis()),
    }
}

/// `--scan DIR/index-N --days D`: reopens a kept save as a restart does
/// (`MomentIndex::restore`) and times the search the service chooses for one camera and `days`
/// days, over `SCAN_QUERIES` queries. The scan's cost grows with the windows selected: ten
/// days at 10^6 select as many as one day at 10^7, without a two-hour build. Prints a digest
/// of every answer, so that two builds compared can be checked to have found the same.
fn filtered_scan(dir: &std::path::Path, days: i64) {
    let index = MomentIndex::new(20_000, models());
    let started = Instant::now();
    index
        .restore(dir)
        .unwrap()
        .unwrap_or_else(|| panic!("no save in {}", dir.display()));
    println!(
        "{}: {} windows, reopened in {:.1} s",
        dir.display(),
        index.len(),
        started.elapsed().as_secs_f64()
    );
    let epoch: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    let queries = queries_for_a_save(SCAN_QUERIES);
    let filters: Vec<WindowFilter> = (0..SCAN_QUERIES)
        .map(|q| camera_days(epoch, q, days))
        .collect();
    let selected: usize = filters
        .iter()
        .map(|filter| {
            let camera = filter.cameras.as_ref().unwrap().iter().next().unwrap();
            index
                .windows_between(camera, filter.since_ms.unwrap(), filter.until_ms.unwrap())
                .len()
        })
        .sum();
    let mut method = None;
    let mut answers = std::collections::hash_map::DefaultHasher::new();
    let latency = measure(SCAN_QUERIES, |q| {
        let (hits, used) = index
            .search(Space::Text, &queries[q], &filters[q], K)
            .unwrap();
        assert_eq!(hits.len(), K, "a selection holds more than {K} windows");
        for (window, _) in &hits {
            std::hash::Hash::hash(&(&*window.camera_id, window.start_ms), &mut answers);
        }
        method = Some(used);
    });
    println!(
        "1 camera, {days} days (~{} windows): {:?}, p50 / p99 {:.2} / {:.2} ms over \
         {SCAN_QUERIES} queries; answers' digest {:016x}",
        selected / SCAN_QUERIES,
        method.unwrap(),
        latency.p50,
        latency.p99,
        std::hash::Hasher::finish(&answers)
    );
}

fn main() {
    let arg = |name: &str| std::env::args().skip_while(|a| a != name).nth(1);
    let expansions: Option<Vec<usize>> = arg("--expansions").map(|list| {
        list.split(',')
            .map(|n| n.parse().expect("--expansions N,N"))
            .collect()
    });
    if let Some(dir) = arg("--scan") {
        let days = arg("--days").map_or(1, |d| d.parse().expect("--days D"));
        assert!((1..=DAYS).contains(&days), "--days D: from 1 to {DAYS}");
        return filtered_scan(std::path::Path::new(&dir), days);
    }
    if let Some(dir) = arg("--reopen") {
        let expansions = expansions.unwrap_or_else(|| vec![64, 128, 256, 512]);
        return expansion_sweep(std::path::Path::new(&dir), &expansions);
    }
    let sizes: Vec<usize> = arg("--sizes")
        .map(|list| {
            list.split(',')
                .map(|n| n.parse().expect("--sizes N,N"))
                .collect()
        })
        .unwrap_or_else(|| vec![100_000, 1_000_000]);
    let connectivity: usize = arg("--connectivity").map_or(DEFAULT_CONNECTIVITY, |m| {
        m.parse().expect("--connectivity M")
    });
    let epoch: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let centres: Vec<Vec<f32>> = (0..TOPICS)
        .map(|_| normalised((0..DIMENSION).map(|_| gaussian(&mut rng)).collect()))
        .collect();
    println!(
        "{DIMENSION}-d embeddings around {TOPICS} topics, {CAMERAS} cameras over {DAYS} days; \
         {QUERIES} queries, top {K}; graph connectivity {connectivity}"
    );
    println!(
        "{:>9} {:>12} {:>22} {:>22} {:>10} {:>10}   filter",
        "windows", "insert/s", "exact p50/p99 ms", "approx p50/p99 ms", "speed-up", "recall@10"
    );
    for &size in &sizes {
        // The service's default threshold, so `auto` shows what it would choose.
        let resident_before = resident_bytes();
        let index = MomentIndex::new(20_000, models()).with_connectivity(connectivity);
        let span_ms = DAYS * 86_400_000;
        let mut inserting = std::time::Duration::ZERO;
        let mut batch = Vec::with_capacity(BATCH);
        for n in 0..size {
            let camera = format!("camera-{:02}", n % CAMERAS);
            let start = epoch + Duration::milliseconds(rng.random_range(0..span_ms) / 2000 * 2000);
            let topic = &centres[rng.random_range(0..TOPICS)];
            batch.push(MomentWindow {
                schema_version: 1,
                message_id: uuid::Uuid::now_v7(),
                camera_id: camera,
                start,
                end: start + Duration::seconds(2),
                frames: 2,
                ocr_text: vec![],
                tags: vec![],
                objects: vec![],
                caption: None,
                embedding_model: "synthetic".into(),
                text_embedding: Some(around(topic, SPREAD, &mut rng)),
                appearance: vec![],
                visual_model: None,
                visual_embedding: None,
                produced_at: start,
            });
            if batch.len() == BATCH || n + 1 == size {
                let started = Instant::now();
                index.insert_many(&batch).unwrap();
                inserting += started.elapsed();
                batch.clear();
                eprint!("\r{} / {size} windows indexed", n + 1);
            }
        }
        eprintln!();
        let insert_rate = size as f64 / inserting.as_secs_f64();
        let index_bytes = resident_bytes().saturating_sub(resident_before);
        let queries: Vec<Vec<f32>> = (0..QUERIES)
            .map(|_| around(&centres[rng.random_range(0..TOPICS)], SPREAD, &mut rng))
            .collect();
        let filters: Vec<WindowFilter> = (0..QUERIES).map(|q| camera_days(epoch, q, 1)).collect();
        for (label, filtered) in [("all", false), ("1 cam, 1 day", true)] {
            // A filter this selective is what the exact scan is for (the service picks it
            // below moments.exact_search_below); filtered HNSW walks most of the graph, so it
            // is measured on fewer queries.
            let queries_run = if filtered { FILTERED_QUERIES } else { QUERIES };
            let filter = |q: usize| {
                if filtered {
                    filters[q].clone()
                } else {
                    WindowFilter::default()
                }
            };
            let keys = |method: SearchMethod, q: usize| -> Vec<(String, i64)> {
                index
                    .search_using(method, Space::Text, &queries[q], &filter(q), K)
                    .unwrap()
                    .into_iter()
                    .map(|(w, _)| (w.camera_id.to_string(), w.start_ms))
                    .collect()
            };
            let exact = measure(queries_run, |q| {
                keys(SearchMethod::Exact, q);
            });
            let approximate = measure(queries_run, |q| {
                keys(SearchMethod::Approximate, q);
            });
            let auto = index
                .search(Space::Text, &queries[0], &filter(0), K)
                .unwrap()
                .1;
            let (mut found, mut wanted) = (0usize, 0usize);
            for q in 0..queries_run {
                let truth: HashSet<_> = keys(SearchMethod::Exact, q).into_iter().collect();
                let got: HashSet<_> = keys(SearchMethod::Approximate, q).into_iter().collect();
                wanted += truth.len();
                found += truth.intersection(&got).count();
            }
            println!(
                "{:>9} {:>12.0} {:>10.2} / {:>9.2} {:>10.3} / {:>9.3} {:>9.1}x {:>10.3}   {label}; auto: {auto:?}",
                size,
                insert_rate,
                exact.p50,
                exact.p99,
                approximate.p50,
                approximate.p99,
                exact.p50 / approximate.p50,
                found as f64 / wanted.max(1) as f64
            );
        }
        let answers = |index: &MomentIndex| -> Vec<Vec<(String, i64)>> {
            (0..QUERIES)
                .map(|q| {
                    index
                        .search_using(
                            SearchMethod::Approximate,
                            Space::Text,
                            &queries[q],
                            &WindowFilter::default(),
                            K,
                        )
                        .unwrap()
                        .into_iter()
                        .map(|(w, _)| (w.camera_id.to_string(), w.start_ms))
                        .collect()
                })
                .collect()
        };
        let before_restart = answers(&index);
        // `--keep DIR` keeps the save for `--reopen DIR/index-N` (a 10^7 build takes two hours).
        let folder = tempfile::tempdir().unwrap();
        let saved = arg("--keep").map_or_else(
            || folder.path().join("index"),
            |dir| std::path::Path::new(&dir).join(format!("index-{size}")),
        );
        let started = Instant::now();
        index.save(&saved, LogPosition::default()).unwrap();
        let save_s = started.elapsed().as_secs_f64();
        // Fewer than `size`: a window drawn at a camera's start already taken replaced it.
        let windows = index.len();
        drop(index);
        let reopened = MomentIndex::new(20_000, models());
        let started = Instant::now();
        reopened
            .restore(&saved)
            .unwrap()
            .expect("the save just written");
        let restore_s = started.elapsed().as_secs_f64();
        assert_eq!(reopened.len(), windows, "the reopened index lost windows");
        let same = answers(&reopened)
            .iter()
            .zip(&before_restart)
            .filter(|(a, b)| a == b)
            .count();
        println!(
            "{:>9} memory {:.0} MB ({:.0} B per window); save {save_s:.1} s, {:.0} MB on disk; \
             reopen (start-to-ready of the index) {restore_s:.1} s; {same} of {QUERIES} answers \
             the same after reopening",
            size,
            index_bytes as f64 / 1e6,
            index_bytes as f64 / size as f64,
            folder_bytes(&saved) as f64 / 1e6,
        );
        // `--keep DIR --expansions ...` sweeps the beam over the save just kept, in the same
        // run: the reopened index goes first, two copies of a 10^7 graph would not fit in RAM.
        if let (Some(expansions), Some(_)) = (&expansions, arg("--keep")) {
            drop(reopened);
            expansion_sweep(&saved, expansions);
        }
    }
}

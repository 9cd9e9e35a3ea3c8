//! Objects benchmark: what motion gating saves, and how many cameras the objects stage keeps
//! up with at `objects.fps = 5`, gating off against on, in one run.
//!
//!     source deploy/env.sh
//!     cargo bench -p argus-pipeline --bench objects --profile dev
//!
//! Both parts run the service's own objects stage (`operators::objects::ObjectTracking`: the
//! batched NanoDet worker, ByteTrack, the motion gate) on frames decoded by the service's own
//! source pipeline at 5 fps.
//!
//! 1. **Static scene**: the street of `vtest.avi` without its people (the per-pixel median of
//!    frames spread over the video, which keeps the parked van and car), two minutes at 5 fps
//!    with seeded sensor noise (σ ≈ 2 grey levels) on every frame. Detector calls are counted
//!    with gating off and on, and scaled to a camera-hour; the parked vehicles must stay one
//!    track each.
//! 2. **Cameras**: N cameras (1, 4, 8), each playing `vtest.avi` from its own offset, fed to
//!    the stage as fast as it takes them (20 s of video each) (each camera's frames in order, cameras at once, so
//!    frames share detector batches as they do in the service). Frames per second over all
//!    cameras, divided by 5, is how many 5 fps cameras the stage keeps up with. Gating off and
//!    on alternate, twice each; the better round of each counts. Decoding is measured apart
//!    (the same frames through the source pipeline) and reported beside it.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use argus::config::{AnalysisConfig, Config, ObjectsConfig};
use argus::metrics::Metrics;
use argus::objects::book::ZoneBook;
use argus::operators::detector::ObjectDetector;
use argus::operators::objects::ObjectTracking;
use argus::source::{self, Recording};
use argus::stream::ObjectAnalyser;
use argus_operators::BgrImage;
use chrono::{DateTime, TimeZone, Utc};
use rand::{Rng, SeedableRng};

const VTEST: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";
const FPS: f64 = 5.0;
const STATIC_SECONDS: usize = 120;
/// Frames each camera plays in the cameras part (20 s of video).
const CAMERA_FRAMES: usize = 100;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap()
}

fn stage(config: &Config, min_motion: f32) -> (ObjectTracking, Metrics) {
    let metrics = Metrics::new();
    let objects = ObjectsConfig {
        min_motion,
        ..config.objects.clone()
    };
    let detector = ObjectDetector::start(
        &objects.model_dir(&config.models),
        objects.detector.clone(),
        &AnalysisConfig::default(),
        metrics.clone(),
    )
    .expect("the COCO detector (deploy/setup.sh converts it)");
    (
        ObjectTracking::new(
            &objects,
            detector,
            ZoneBook::new(&objects.zones, &objects.lines),
            metrics.clone(),
        ),
        metrics,
    )
}

fn detector_calls(metrics: &Metrics, camera: &str) -> u64 {
    metrics.object_detections.with_label_values(&[camera]).get()
}

/// The per-pixel median of `frames`: the scene without what moves through it.
fn median(frames: &[&BgrImage]) -> BgrImage {
    let (width, height) = (frames[0].width(), frames[0].height());
    let mut values = vec![0u8; frames.len()];
    let data = (0..frames[0].data().len())
        .map(|i| {
            for (value, frame) in values.iter_mut().zip(frames) {
                *value = frame.data()[i];
            }
            values.sort_unstable();
            values[values.len() / 2]
        })
        .collect();
    BgrImage::new(width, height, data).unwrap()
}

/// `background` with seeded Gaussian-like noise (σ ≈ 2), as a fixed camera's sensor gives.
fn noisy(background: &BgrImage, rng: &mut rand::rngs::StdRng) -> BgrImage {
    let data = (background.data().iter())
        .map(|&v| {
            // The sum of four uniform draws in [-2, 2] has σ ≈ 2.3 and is cheap.
            let noise: f32 = (0..4).map(|_| rng.random_range(-2.0f32..2.0)).sum::<f32>() / 2.0;
            (v as f32 + noise).round().clamp(0.0, 255.0) as u8
        })
        .collect();
    BgrImage::new(background.width(), background.height(), data).unwrap()
}

struct StaticScene {
    calls: u64,
    frames: usize,
    vehicle_tracks: usize,
    tracks_started: usize,
}

async fn static_scene(config: &Config, frames: &[Arc<BgrImage>], min_motion: f32) -> StaticScene {
    let (stage, metrics) = stage(config, min_motion);
    let mut started = 0;
    let mut vehicles = std::collections::BTreeSet::new();
    for (i, image) in frames.iter().enumerate() {
        let at = start() + chrono::Duration::milliseconds((i as f64 * 1000.0 / FPS) as i64);
        if let Some(objects) = stage.observe("static", at, image.clone()).await {
            started += (objects.events.iter())
                .filter(|e| e.kind.name() == "track_started")
                .count();
            vehicles.extend(
                (objects.tracks.iter())
                    .filter(|t| matches!(t.class, "car" | "truck" | "bus"))
                    .map(|t| t.track_id),
            );
        }
    }
    StaticScene {
        calls: detector_calls(&metrics, "static"),
        frames: frames.len(),
        vehicle_tracks: vehicles.len(),
        tracks_started: started,
    }
}

/// Frames per second the stage took over `cameras` cameras, and detector calls made.
async fn cameras_round(
    config: &Config,
    frames: &Arc<Vec<Arc<BgrImage>>>,
    cameras: usize,
    min_motion: f32,
) -> (f64, usize, u64) {
    let (stage, metrics) = stage(config, min_motion);
    let per_camera = CAMERA_FRAMES;
    let began = Instant::now();
    let tasks: Vec<_> = (0..cameras)
        .map(|camera| {
            let (stage, frames) = (stage.clone(), frames.clone());
            tokio::spawn(async move {
                let name = format!("camera-{camera}");
                // Each camera plays the video from its own offset, so they do not show the
                // same frame at the same time.
                let offset = camera * 37;
                for i in 0..per_camera {
                    let image = frames[(offset + i) % frames.len()].clone();
                    let at =
                        start() + chrono::Duration::milliseconds((i as f64 * 1000.0 / FPS) as i64);
                    stage.observe(&name, at, image).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = began.elapsed().as_secs_f64();
    let calls = (0..cameras)
        .map(|camera| detector_calls(&metrics, &format!("camera-{camera}")))
        .sum();
    (
        (cameras * per_camera) as f64 / elapsed,
        cameras * per_camera,
        calls,
    )
}

fn main() {
    // `cargo bench ... -- static` or `-- cameras` runs one part.
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    argus_operators::onnx::environment().expect("ONNX Runtime (source deploy/env.sh)");
    source::init().unwrap();
    let config = Config::load(None).expect("the embedded configuration");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let path = Path::new(VTEST);

    // Decoding, measured apart: the whole video at 5 fps through the source pipeline.
    let began = Instant::now();
    let decoded = runtime
        .block_on(async {
            let mut recording = Recording::open(path, FPS, 1280, start())?;
            let mut frames = Vec::new();
            while let Some(frame) = recording.next().await? {
                frames.push(frame);
            }
            Ok::<_, argus::source::DecoderError>(frames)
        })
        .expect("vtest.avi decodes (apt install opencv-doc)");
    let decode_ms = began.elapsed().as_secs_f64() * 1e3 / decoded.len() as f64;
    let frames: Arc<Vec<Arc<BgrImage>>> =
        Arc::new(decoded.into_iter().map(|f| Arc::new(f.image)).collect());
    println!(
        "decoded {} frames of {} at {FPS} fps: {decode_ms:.1} ms per frame (decode, scale, convert)",
        frames.len(),
        path.display()
    );

    if wants("static") {
        static_part(&runtime, &config, &frames);
    }
    if wants("cameras") {
        cameras_part(&runtime, &config, &frames, decode_ms);
    }
    // The processes' own CPU use would explain the figures; the load is recorded beside them.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\nload average at the end: {}", load.trim());
}

fn static_part(runtime: &tokio::runtime::Runtime, config: &Config, frames: &[Arc<BgrImage>]) {
    let spread: Vec<&BgrImage> = (frames.iter().step_by(frames.len() / 41 + 1))
        .map(AsRef::as_ref)
        .collect();
    let background = median(&spread);
    let found = runtime
        .block_on(
            ObjectDetector::start(
                &config.objects.model_dir(&config.models),
                config.objects.detector.clone(),
                &AnalysisConfig::default(),
                Metrics::new(),
            )
            .unwrap()
            .detect(Arc::new(background.clone())),
        )
        .unwrap();
    let found: Vec<String> = (found.iter())
        .map(|d| format!("{} {:.2}", d.class, d.score))
        .collect();
    println!("the background's detections: {}", found.join(", "));
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let still: Vec<Arc<BgrImage>> = (0..STATIC_SECONDS * FPS as usize)
        .map(|_| Arc::new(noisy(&background, &mut rng)))
        .collect();
    println!(
        "\nstatic scene: median of {} frames, {STATIC_SECONDS} s at {FPS} fps with noise",
        spread.len()
    );
    println!("| gating | detector calls | per camera-hour | vehicle tracks | tracks started |");
    println!("|---|---|---|---|---|");
    let mut per_hour = Vec::new();
    for (name, min_motion) in [("off", 0.0), ("on", config.objects.min_motion)] {
        let scene = runtime.block_on(static_scene(config, &still, min_motion));
        let hourly = scene.calls as f64 * 3600.0 / (scene.frames as f64 / FPS);
        per_hour.push(hourly);
        println!(
            "| {name} | {} of {} frames | {hourly:.0} | {} | {} |",
            scene.calls, scene.frames, scene.vehicle_tracks, scene.tracks_started
        );
    }
    println!(
        "gating cuts detector calls on a static scene {:.0}x",
        per_hour[0] / per_hour[1].max(1.0)
    );
}

fn cameras_part(
    runtime: &tokio::runtime::Runtime,
    config: &Config,
    frames: &Arc<Vec<Arc<BgrImage>>>,
    decode_ms: f64,
) {
    println!(
        "\ncameras on vtest.avi ({} frames each, {FPS} fps):",
        frames.len()
    );
    println!("| cameras | gating | frames/s (best of 2) | 5 fps cameras kept up with | detector calls / frames |");
    println!("|---|---|---|---|---|");
    let gatings = [("off", 0.0), ("on", config.objects.min_motion)];
    for cameras in [1, 4, 8] {
        let mut best = [(0.0f64, 0usize, 0u64); 2];
        for _ in 0..2 {
            for (best, (_, min_motion)) in best.iter_mut().zip(gatings) {
                let round = runtime.block_on(cameras_round(config, frames, cameras, min_motion));
                if round.0 > best.0 {
                    *best = round;
                }
            }
        }
        for ((name, _), (rate, total, calls)) in gatings.into_iter().zip(best) {
            // Decoding each camera's frames costs its share of the same cores.
            let with_decode = 1.0 / (1.0 / rate + decode_ms / 1e3);
            println!(
                "| {cameras} | {name} | {rate:.1} | {:.1} (with decoding: {:.1}) | {calls} / {total} |",
                rate / FPS,
                with_decode / FPS
            );
        }
    }
}

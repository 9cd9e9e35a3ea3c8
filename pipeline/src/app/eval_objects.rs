//! `argus eval-objects`: how well the objects stage detects, tracks and counts (issue 17).
//!
//! Two sets, scored with [`crate::objects::eval`]:
//!
//! * **Labelled real frames** (`tests/data/objects/vtest-labels.json`): the video is decoded
//!   by the service's own decoder ([`crate::source`]) at its native rate, and each labelled
//!   frame goes to the COCO detector on its model worker, as the stage sends it. AP@0.5 for
//!   people and for vehicles, and their mean.
//! * **The synthetic clip** (`deploy/make_synthetic_objects.py`): decoded at `objects.fps`
//!   and fed, frame by frame, to the objects stage ([`ObjectTracking`], the path `argus run`
//!   takes) with the clip's zones and lines; each frame also goes to the detector alone for
//!   AP. Tracks of class person are scored against the true identities (MOTA, IDF1; the
//!   clip's truth has only people, so the parked van and car, which the stage rightly tracks,
//!   are left out rather than counted false); the stage's zone counts against the true ones;
//!   its line crossings, zone entries and dwell events against the true ones, within a time
//!   tolerance.
//!
//! Only frames the stage answered are scored: with the clip decoded at `objects.fps` that is
//! every frame. Frames where too little moved (`objects.min_motion`) are scored too, with the
//! tracks the stage kept where they were, as the service publishes them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::messages::ObjectEventKind;
use crate::metrics::Metrics;
use crate::objects::book::ZoneBook;
use crate::objects::eval::{
    self, AveragePrecision, ClassGroup, DetectionFrame, EventScores, IdentityScores, LabelSet,
    MotScores, ScoredBox, SyntheticTruth, TimedEvent, TrackingFrame, TrueBox, ZoneCountError,
    ZoneCounts,
};
use crate::objects::zones::Direction;
use crate::operators::detector::ObjectDetector;
use crate::operators::objects::ObjectTracking;
use crate::source::{self, Frame, Recording};
use crate::stream::ObjectAnalyser;

/// The labels and the truth are in fractions of the frame: any size would do, and the
/// native one spares a resize.
const MAX_WIDTH: u32 = 4096;

/// The recorded time the evaluated videos start at (any fixed time does).
const VIDEO_START: &str = "2026-01-01T00:00:00Z";

/// The synthetic clip's ground truth, next to the clip, as the generator names it.
pub const SYNTHETIC_TRUTH: &str = "synthetic-objects.json";

/// What to score.
pub struct ObjectsEvalJob {
    /// `vtest-labels.json`, or none.
    pub labels: Option<PathBuf>,
    /// The labelled video; default: the labels' `video` in `$ARGUS_SAMPLE_DIR`.
    pub labelled_video: Option<PathBuf>,
    /// The folder `make_synthetic_objects.py --out` wrote, or none.
    pub synthetic: Option<PathBuf>,
    /// How far (seconds) a predicted crossing or zone event may be from the true one.
    pub tolerance_s: f64,
}

#[derive(Debug, Serialize)]
pub struct ObjectsReport {
    /// The detector as configured: architecture and score threshold.
    pub detector: String,
    pub labelled: Option<LabelledReport>,
    pub synthetic: Option<SyntheticReport>,
}

#[derive(Debug, Serialize)]
pub struct LabelledReport {
    pub video: String,
    pub frames: usize,
    pub person: AveragePrecision,
    pub vehicle: AveragePrecision,
    /// Mean of the two APs.
    pub map: Option<f64>,
    pub detect_ms_mean: f64,
}

#[derive(Debug, Serialize)]
pub struct SyntheticReport {
    pub video: String,
    /// Frames the stage answered, all scored.
    pub frames: usize,
    pub person: AveragePrecision,
    pub mot: MotScores,
    pub identity: IdentityScores,
    /// Distinct person tracks the stage reported, against the true people.
    pub person_tracks: usize,
    pub true_people: usize,
    /// The background's parked vehicles: distinct vehicle tracks, and how often one started
    /// (a parked car must stay one track, started once).
    pub vehicle_tracks: usize,
    pub vehicle_track_starts: usize,
    pub zone_counts: BTreeMap<String, ZoneCountError>,
    pub crossings: EventScores,
    pub zone_entries: EventScores,
    pub dwell: EventScores,
    /// Every crossing, zone entry and dwell the stage reported, for reading the misses.
    pub reported: Vec<ReportedEvent>,
}

#[derive(Debug, Serialize)]
pub struct ReportedEvent {
    pub track: u64,
    /// `line_crossed`, `zone_entered` or `dwell_exceeded`.
    pub kind: &'static str,
    /// The line and direction (`kerb:left_to_right`), or the zone.
    pub key: String,
    pub time_s: f64,
}

/// The frame's index in the video, from its media time.
fn frame_index(frame: &Frame, fps: f64) -> anyhow::Result<u64> {
    let pts = frame
        .pts
        .context("a decoded recording frame has no media time")?;
    Ok((pts.as_secs_f64() * fps).round() as u64)
}

fn seconds_since(start: DateTime<Utc>, at: DateTime<Utc>) -> f64 {
    (at - start).num_microseconds().unwrap_or(0) as f64 / 1e6
}

/// Scores what the job names with the configured detector, tracker and stage.
pub async fn run(config: Config, job: ObjectsEvalJob) -> anyhow::Result<ObjectsReport> {
    source::init()?;
    let metrics = Metrics::new();
    let dir = config.objects.model_dir(&config.models);
    let detector = ObjectDetector::start(
        &dir,
        config.objects.detector.clone(),
        &config.analysis,
        metrics.clone(),
    )
    .with_context(|| format!("loading the object detector from {}", dir.display()))?;
    let labelled = match &job.labels {
        Some(path) => Some(score_labels(path, job.labelled_video.as_deref(), &detector).await?),
        None => None,
    };
    let synthetic = match &job.synthetic {
        Some(folder) => {
            Some(score_synthetic(&config, folder, &detector, metrics, job.tolerance_s).await?)
        }
        None => None,
    };
    Ok(ObjectsReport {
        detector: format!(
            "{} at score >= {}",
            config.objects.detector.architecture.name(),
            config.objects.detector.score_threshold
        ),
        labelled,
        synthetic,
    })
}

/// One frame's detections split by class group.
fn detections_by_group(
    detections: &[argus_operators::detection::Detection],
) -> HashMap<ClassGroup, Vec<ScoredBox>> {
    let mut groups: HashMap<ClassGroup, Vec<ScoredBox>> = HashMap::new();
    for detection in detections {
        if let Some(group) = ClassGroup::of(detection.class) {
            let b = detection.bbox;
            groups.entry(group).or_default().push(ScoredBox {
                bbox: [b.x1, b.y1, b.x2, b.y2],
                score: detection.score,
            });
        }
    }
    groups
}

async fn score_labels(
    path: &Path,
    video: Option<&Path>,
    detector: &ObjectDetector,
) -> anyhow::Result<LabelledReport> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let labels: LabelSet = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a label set", path.display()))?;
    let video = match video {
        Some(video) => video.to_owned(),
        None => {
            let samples = std::env::var("ARGUS_SAMPLE_DIR")
                .unwrap_or_else(|_| "/usr/share/doc/opencv-doc/examples/data".into());
            Path::new(&samples).join(&labels.video)
        }
    };
    let wanted: HashMap<u64, usize> = (labels.frames.iter().enumerate())
        .map(|(i, frame)| (frame.index, i))
        .collect();
    let mut frames: BTreeMap<ClassGroup, Vec<DetectionFrame>> = ClassGroup::ALL
        .into_iter()
        .map(|group| (group, vec![DetectionFrame::default(); labels.frames.len()]))
        .collect();
    for (i, labelled) in labels.frames.iter().enumerate() {
        for object in &labelled.objects {
            let group = ClassGroup::of(&object.class).with_context(|| {
                format!(
                    "frame {}: class `{}` is not scored",
                    labelled.index, object.class
                )
            })?;
            frames.get_mut(&group).expect("every group")[i]
                .truth
                .push(TrueBox {
                    bbox: object.bbox,
                    difficult: object.difficult,
                });
        }
    }
    let start: DateTime<Utc> = VIDEO_START.parse().expect("a valid constant");
    let mut recording = Recording::open(&video, labels.fps, MAX_WIDTH, start)?;
    let mut seen = 0;
    let mut detect_ms = 0.0;
    while let Some(frame) = recording.next().await? {
        let Some(&slot) = wanted.get(&frame_index(&frame, labels.fps)?) else {
            continue;
        };
        let started = Instant::now();
        let detections = detector.detect(Arc::new(frame.image)).await?;
        detect_ms += started.elapsed().as_secs_f64() * 1e3;
        for (group, boxes) in detections_by_group(&detections) {
            frames.get_mut(&group).expect("every group")[slot].detected = boxes;
        }
        seen += 1;
    }
    anyhow::ensure!(
        seen == labels.frames.len(),
        "{} has {} of the {} labelled frames",
        video.display(),
        seen,
        labels.frames.len()
    );
    let person = eval::average_precision(&frames[&ClassGroup::Person]);
    let vehicle = eval::average_precision(&frames[&ClassGroup::Vehicle]);
    let aps: Vec<f64> = [person.ap, vehicle.ap].into_iter().flatten().collect();
    Ok(LabelledReport {
        video: video.display().to_string(),
        frames: seen,
        map: (!aps.is_empty()).then(|| aps.iter().sum::<f64>() / aps.len() as f64),
        person,
        vehicle,
        detect_ms_mean: detect_ms / seen.max(1) as f64,
    })
}

async fn score_synthetic(
    config: &Config,
    folder: &Path,
    detector: &ObjectDetector,
    metrics: Metrics,
    tolerance_s: f64,
) -> anyhow::Result<SyntheticReport> {
    let truth_path = folder.join(SYNTHETIC_TRUTH);
    let text = std::fs::read_to_string(&truth_path).with_context(|| {
        format!(
            "cannot read {}: build the clip with deploy/make_synthetic_objects.py --out {}",
            truth_path.display(),
            folder.display()
        )
    })?;
    let truth: SyntheticTruth = serde_json::from_str(&text)
        .with_context(|| format!("{}: not the synthetic clip's truth", truth_path.display()))?;
    let camera = (truth.zones.iter().map(|z| z.camera.clone()))
        .chain(truth.lines.iter().map(|l| l.camera.clone()))
        .next()
        .unwrap_or_else(|| "synthetic".into());
    let objects = &config.objects;
    // The truth's zones and lines, in place of any configured ones.
    let zones = ZoneBook::new(&truth.zones, &truth.lines);
    let tracking = ObjectTracking::new(objects, detector.clone(), zones, metrics);
    let truth_frames: HashMap<u64, &eval::TruthFrame> =
        truth.frames.iter().map(|f| (f.index, f)).collect();

    let start: DateTime<Utc> = VIDEO_START.parse().expect("a valid constant");
    let video = folder.join(&truth.video);
    let mut recording = Recording::open(&video, objects.fps, MAX_WIDTH, start)?;
    let mut detection_frames = Vec::new();
    let mut tracking_frames = Vec::new();
    let mut zone_frames: Vec<(ZoneCounts, ZoneCounts)> = Vec::new();
    let (mut crossings, mut entries, mut dwells) = (Vec::new(), Vec::new(), Vec::new());
    let mut reported = Vec::new();
    let mut vehicle_ids = Vec::new();
    let mut vehicle_track_starts = 0;
    while let Some(frame) = recording.next().await? {
        let index = frame_index(&frame, truth.fps)?;
        let expected = truth_frames
            .get(&index)
            .with_context(|| format!("{} has no truth for frame {index}", truth_path.display()))?;
        let image = Arc::new(frame.image);
        let detections = detector.detect(image.clone()).await?;
        detection_frames.push(DetectionFrame {
            truth: (expected.objects.iter())
                .filter(|o| ClassGroup::of(&o.class) == Some(ClassGroup::Person))
                .map(|o| TrueBox {
                    bbox: o.bbox,
                    difficult: false,
                })
                .collect(),
            detected: detections_by_group(&detections)
                .remove(&ClassGroup::Person)
                .unwrap_or_default(),
        });
        let Some(seen) = tracking.observe(&camera, frame.wall_time, image).await else {
            continue;
        };
        tracking_frames.push(TrackingFrame {
            truth: expected.objects.iter().map(|o| (o.id, o.bbox)).collect(),
            tracked: (seen.tracks.iter())
                .filter(|t| t.class == "person")
                .map(|t| (t.track_id, t.bbox))
                .collect(),
        });
        zone_frames.push((
            expected.zone_counts.clone(),
            seen.zone_counts.iter().cloned().collect(),
        ));
        vehicle_ids.extend(
            (seen.tracks.iter())
                .filter(|t| matches!(t.class, "car" | "truck" | "bus"))
                .map(|t| t.track_id),
        );
        vehicle_track_starts += (seen.events.iter())
            .filter(|e| {
                e.kind == ObjectEventKind::TrackStarted
                    && matches!(e.object.class, "car" | "truck" | "bus")
            })
            .count();
        for happening in &seen.events {
            let time_s = seconds_since(start, happening.at);
            let (scored, event) = match &happening.kind {
                ObjectEventKind::LineCrossed { line, direction } => {
                    let parsed: Direction =
                        serde_json::from_value(serde_json::Value::String(direction.clone()))
                            .with_context(|| {
                                format!("the stage named a direction `{direction}`")
                            })?;
                    (&mut crossings, TimedEvent::crossing(line, parsed, time_s))
                }
                ObjectEventKind::ZoneEntered { zone } => (
                    &mut entries,
                    TimedEvent {
                        key: zone.clone(),
                        time_s,
                    },
                ),
                ObjectEventKind::DwellExceeded { zone, .. } => (
                    &mut dwells,
                    TimedEvent {
                        key: zone.clone(),
                        time_s,
                    },
                ),
                _ => continue,
            };
            reported.push(ReportedEvent {
                track: happening.object.track_id,
                kind: happening.kind.name(),
                key: event.key.clone(),
                time_s,
            });
            scored.push(event);
        }
    }
    anyhow::ensure!(
        !tracking_frames.is_empty(),
        "the objects stage answered no frame of {}",
        video.display()
    );
    let true_crossings: Vec<TimedEvent> = (truth.crossings.iter())
        .map(|c| TimedEvent::crossing(&c.line, c.direction, c.time_s))
        .collect();
    let true_entries: Vec<TimedEvent> = (truth.zone_entries.iter())
        .map(|e| TimedEvent {
            key: e.zone.clone(),
            time_s: e.entered_s,
        })
        .collect();
    let dwell_of = |zone: &str| {
        (truth.zones.iter())
            .find(|z| z.id == zone)
            .and_then(|z| z.dwell_s)
    };
    let true_dwells: Vec<TimedEvent> = (truth.zone_entries.iter())
        .filter(|e| e.dwell_exceeded)
        .filter_map(|e| {
            dwell_of(&e.zone).map(|limit| TimedEvent {
                key: e.zone.clone(),
                time_s: e.entered_s + limit,
            })
        })
        .collect();
    let distinct = |ids: &mut dyn Iterator<Item = u64>| {
        let mut ids: Vec<u64> = ids.collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    };
    Ok(SyntheticReport {
        video: video.display().to_string(),
        frames: tracking_frames.len(),
        person: eval::average_precision(&detection_frames),
        mot: eval::clear_mot(&tracking_frames),
        identity: eval::identity_scores(&tracking_frames),
        person_tracks: distinct(
            &mut tracking_frames
                .iter()
                .flat_map(|f| f.tracked.iter().map(|t| t.0)),
        ),
        true_people: distinct(
            &mut tracking_frames
                .iter()
                .flat_map(|f| f.truth.iter().map(|t| t.0)),
        ),
        vehicle_tracks: distinct(&mut vehicle_ids.into_iter()),
        vehicle_track_starts,
        zone_counts: eval::zone_count_errors(&zone_frames),
        crossings: eval::match_events(&true_crossings, &crossings, tolerance_s),
        zone_entries: eval::match_events(&true_entries, &entries, tolerance_s),
        dwell: eval::match_events(&true_dwells, &dwells, tolerance_s),
        reported,
    })
}

fn percent(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{:.1}", v * 100.0))
}

fn ap_line(name: &str, ap: &AveragePrecision) -> String {
    format!(
        "  AP@0.5 {name:<8} {:>6}  ({} of {} found, {} false, {} on difficult boxes)",
        percent(ap.ap),
        ap.true_positives,
        ap.positives,
        ap.false_positives,
        ap.ignored
    )
}

fn events_line(name: &str, scores: &EventScores) -> String {
    format!(
        "  {name:<14} precision {:>6}  recall {:>6}  ({} matched, {} false, {} missed)",
        percent(scores.precision),
        percent(scores.recall),
        scores.matched,
        scores.false_positives,
        scores.misses
    )
}

/// The report as text.
pub fn print(report: &ObjectsReport) {
    println!("detector: {}", report.detector);
    if let Some(labelled) = &report.labelled {
        println!(
            "labelled frames: {} of {} ({:.0} ms per detection)",
            labelled.frames, labelled.video, labelled.detect_ms_mean
        );
        println!("{}", ap_line("person", &labelled.person));
        println!("{}", ap_line("vehicle", &labelled.vehicle));
        println!("  mAP@0.5         {:>6}", percent(labelled.map));
    }
    if let Some(synthetic) = &report.synthetic {
        println!(
            "synthetic clip: {} frames of {}",
            synthetic.frames, synthetic.video
        );
        println!("{}", ap_line("person", &synthetic.person));
        let mot = &synthetic.mot;
        println!(
            "  MOTA {:>6}  MOTP {:.3}  ({} true boxes: {} missed, {} false, {} identity switches)",
            percent(Some(mot.mota)),
            mot.motp,
            mot.truth_boxes,
            mot.misses,
            mot.false_positives,
            mot.id_switches
        );
        println!(
            "  IDF1 {:>6}  IDP {:>6}  IDR {:>6}  ({} person tracks for {} people)",
            percent(Some(synthetic.identity.idf1)),
            percent(Some(synthetic.identity.idp)),
            percent(Some(synthetic.identity.idr)),
            synthetic.person_tracks,
            synthetic.true_people
        );
        println!(
            "  parked vehicles: {} tracks, started {} times",
            synthetic.vehicle_tracks, synthetic.vehicle_track_starts
        );
        for (zone, error) in &synthetic.zone_counts {
            println!(
                "  zone {zone:<9} count error {:.3} per frame (wrong in {} of {} frames)",
                error.mean_absolute_error, error.frames_wrong, error.frames
            );
        }
        println!("{}", events_line("line crossings", &synthetic.crossings));
        println!("{}", events_line("zone entries", &synthetic.zone_entries));
        println!("{}", events_line("dwell", &synthetic.dwell));
        for event in &synthetic.reported {
            println!(
                "    {:>5.1} s  track {:<3} {} {}",
                event.time_s, event.track, event.kind, event.key
            );
        }
    }
}

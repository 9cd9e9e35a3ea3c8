//! `[objects]`: COCO object detection and tracking, and the zones and lines drawn on each
//! camera's view.

use std::path::PathBuf;

use argus_operators::detection::{DetectorConfig, COCO_CLASSES};
use argus_operators::tracking::TrackerConfig;
use serde::{Deserialize, Serialize};

use super::ModelsConfig;
use crate::objects::zones::{LineConfig, ZoneConfig};

/// Objects: people and vehicles detected, tracked per camera, and what they do in zones and
/// across lines.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectsConfig {
    pub enabled: bool,
    /// Frames per second the detector runs at, at most (each stream's `sample_fps` bounds it).
    pub fps: f64,
    /// The detector's folder: under the model folder, or a path.
    pub model: PathBuf,
    /// Detection is skipped on frames where less than this share of the view changed since
    /// the last detection (frame differencing, as Frigate does); tracks are kept meanwhile.
    /// 0 runs the detector on every frame.
    pub min_motion: f32,
    /// However still the view, the detector runs at least this often (seconds): a parked car
    /// that scored too low to start a track the first time gets another chance, and tracks
    /// are checked against what is really there.
    pub refresh_s: f64,
    /// Architecture, thresholds and classes (`argus_operators::detection`'s defaults).
    #[serde(default)]
    pub detector: DetectorConfig,
    /// Association and track life (`argus_operators::tracking`'s defaults).
    #[serde(default)]
    pub tracking: TrackerConfig,
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    #[serde(default)]
    pub lines: Vec<LineConfig>,
}

/// The `[objects]` section of the embedded default.toml.
impl Default for ObjectsConfig {
    fn default() -> Self {
        super::EMBEDDED.objects.clone()
    }
}

impl ObjectsConfig {
    pub fn model_dir(&self, models: &ModelsConfig) -> PathBuf {
        if self.model.is_absolute() {
            self.model.clone()
        } else {
            models.resolve_dir().join(&self.model)
        }
    }

    /// What is wrong with the section, if anything.
    pub fn problem(&self) -> Option<String> {
        if !(self.fps > 0.0 && self.fps <= 30.0) {
            return Some(format!("objects.fps {} must be in (0, 30]", self.fps));
        }
        if self.refresh_s.is_nan() || self.refresh_s <= 0.0 {
            return Some(format!(
                "objects.refresh_s {} must be above 0",
                self.refresh_s
            ));
        }
        if !(0.0..1.0).contains(&self.min_motion) {
            return Some(format!(
                "objects.min_motion {} must be in [0, 1)",
                self.min_motion
            ));
        }
        if let Some(class) =
            (self.detector.classes.iter()).find(|c| !COCO_CLASSES.contains(&c.as_str()))
        {
            return Some(format!(
                "objects.detector.classes: `{class}` is not a COCO class (person, bicycle, car, \
                 motorcycle, bus, truck, ...)"
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for zone in &self.zones {
            if let Err(error) = zone.validate() {
                return Some(format!("objects.zones: {error}"));
            }
            if !ids.insert(("zone", &zone.camera, &zone.id)) {
                return Some(format!(
                    "objects.zones: `{}` is used twice on camera `{}`",
                    zone.id, zone.camera
                ));
            }
        }
        for line in &self.lines {
            if let Err(error) = line.validate() {
                return Some(format!("objects.lines: {error}"));
            }
            if !ids.insert(("line", &line.camera, &line.id)) {
                return Some(format!(
                    "objects.lines: `{}` is used twice on camera `{}`",
                    line.id, line.camera
                ));
            }
        }
        None
    }
}

//! The zones and lines in force on every camera, shared by the objects stage, which reads
//! them on every frame it looks at, and the API, which changes them while streams run.
//!
//! Configured ones (`[[objects.zones]]`, `[[objects.lines]]`) are read-only: the API may add,
//! replace and remove only those drawn through it, so the configuration file stays the truth
//! for what it names. Keeping drawn ones across restarts is the API's side
//! (`query::zones`, in Redis): this module knows no storage, so that the stage
//! (`operators`, below `query`) can read it.
//!
//! Reading is cheap: a change bumps one atomic counter, and the stage compares it with the
//! one it last saw before it looks any further (see [`ZoneBook::camera_changed`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::Serialize;

use super::zones::{GeometryError, LineConfig, ZoneConfig};

/// A zone or a line, as errors name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Zone,
    Line,
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Shape::Zone => "zone",
            Shape::Line => "line",
        })
    }
}

/// Where a zone or line comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The configuration file: read-only through the API.
    Config,
    /// Drawn through the API.
    Api,
}

/// A zone or line with where it comes from, as the API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Drawn<T> {
    #[serde(flatten)]
    pub shape: T,
    pub origin: Origin,
}

/// One camera's zones and lines, in the order they were added.
#[derive(Debug, Clone, Default)]
pub struct CameraGeometry {
    pub zones: Vec<Drawn<ZoneConfig>>,
    pub lines: Vec<Drawn<LineConfig>>,
    /// Bumped on every change to this camera's zones or lines.
    revision: u64,
}

impl CameraGeometry {
    /// The zones as the stage uses them.
    pub fn zone_configs(&self) -> Vec<ZoneConfig> {
        self.zones.iter().map(|z| z.shape.clone()).collect()
    }

    pub fn line_configs(&self) -> Vec<LineConfig> {
        self.lines.iter().map(|l| l.shape.clone()).collect()
    }

    /// Changes to this camera's zones and lines so far.
    pub fn revision(&self) -> u64 {
        self.revision
    }
}

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BookError {
    #[error(transparent)]
    Invalid(#[from] GeometryError),
    #[error("{kind} `{id}` on camera `{camera}` is set in the configuration (objects.{kind}s): change it there")]
    Configured {
        kind: Shape,
        camera: String,
        id: String,
    },
}

/// The zones and lines of every camera; cheap to clone.
#[derive(Clone, Default)]
pub struct ZoneBook {
    cameras: Arc<RwLock<HashMap<String, CameraGeometry>>>,
    /// Bumped on every change to any camera.
    version: Arc<AtomicU64>,
}

impl ZoneBook {
    /// The configured zones and lines, already validated with the configuration.
    pub fn new(zones: &[ZoneConfig], lines: &[LineConfig]) -> Self {
        let book = Self::default();
        {
            let mut cameras = book.cameras.write().expect("zone book lock");
            for zone in zones {
                (cameras.entry(zone.camera.clone()).or_default().zones).push(Drawn {
                    shape: zone.clone(),
                    origin: Origin::Config,
                });
            }
            for line in lines {
                (cameras.entry(line.camera.clone()).or_default().lines).push(Drawn {
                    shape: line.clone(),
                    origin: Origin::Config,
                });
            }
        }
        book
    }

    /// Changes to any camera so far; compare with an earlier answer to know whether to look.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The camera's zones and lines (empty for a camera without any).
    pub fn camera(&self, camera: &str) -> CameraGeometry {
        let cameras = self.cameras.read().expect("zone book lock");
        cameras.get(camera).cloned().unwrap_or_default()
    }

    /// For a reader that last saw the book at `*seen_version` and the camera at `*revision`:
    /// the camera's geometry when it changed since, and both marks brought up to date. One
    /// atomic load when nothing changed anywhere.
    pub fn camera_changed(
        &self,
        camera: &str,
        seen_version: &mut u64,
        revision: &mut u64,
    ) -> Option<CameraGeometry> {
        let version = self.version();
        if version == *seen_version {
            return None;
        }
        *seen_version = version;
        let geometry = self.camera(camera);
        if geometry.revision == *revision {
            return None;
        }
        *revision = geometry.revision;
        Some(geometry)
    }

    /// Whether [`Self::put_zone`] would take the zone: it is valid and not a configured one.
    pub fn check_zone(&self, zone: &ZoneConfig) -> Result<(), BookError> {
        zone.validate()?;
        self.check_not_configured(&zone.camera, Shape::Zone, &zone.id)
    }

    /// Whether [`Self::put_line`] would take the line: it is valid and not a configured one.
    pub fn check_line(&self, line: &LineConfig) -> Result<(), BookError> {
        line.validate()?;
        self.check_not_configured(&line.camera, Shape::Line, &line.id)
    }

    /// Refuses a change to a configured zone or line.
    pub fn check_not_configured(
        &self,
        camera: &str,
        kind: Shape,
        id: &str,
    ) -> Result<(), BookError> {
        let geometry = self.camera(camera);
        let configured = match kind {
            Shape::Zone => {
                (geometry.zones.iter()).any(|z| z.shape.id == id && z.origin == Origin::Config)
            }
            Shape::Line => {
                (geometry.lines.iter()).any(|l| l.shape.id == id && l.origin == Origin::Config)
            }
        };
        match configured {
            true => Err(BookError::Configured {
                kind,
                camera: camera.to_owned(),
                id: id.to_owned(),
            }),
            false => Ok(()),
        }
    }

    /// Adds the zone, or replaces the one drawn with its id on its camera.
    pub fn put_zone(&self, zone: ZoneConfig) -> Result<(), BookError> {
        zone.validate()?;
        let camera = zone.camera.clone();
        self.change(&camera, |geometry| {
            put(&mut geometry.zones, zone, &camera, Shape::Zone, |z| &z.id)
        })
        .map(|_| ())
    }

    /// Adds the line, or replaces the one drawn with its id on its camera.
    pub fn put_line(&self, line: LineConfig) -> Result<(), BookError> {
        line.validate()?;
        let camera = line.camera.clone();
        self.change(&camera, |geometry| {
            put(&mut geometry.lines, line, &camera, Shape::Line, |l| &l.id)
        })
        .map(|_| ())
    }

    /// Removes a zone drawn through the API; `Ok(false)` when there is none with that id.
    pub fn remove_zone(&self, camera: &str, id: &str) -> Result<bool, BookError> {
        self.change(camera, |geometry| {
            remove(&mut geometry.zones, camera, id, Shape::Zone, |z| &z.id)
        })
    }

    /// Removes a line drawn through the API; `Ok(false)` when there is none with that id.
    pub fn remove_line(&self, camera: &str, id: &str) -> Result<bool, BookError> {
        self.change(camera, |geometry| {
            remove(&mut geometry.lines, camera, id, Shape::Line, |l| &l.id)
        })
    }

    /// Applies a change to the camera's geometry, which answers whether it changed anything;
    /// only then are the revision and version bumped (so readers rebuild nothing in vain).
    fn change(
        &self,
        camera: &str,
        apply: impl FnOnce(&mut CameraGeometry) -> Result<bool, BookError>,
    ) -> Result<bool, BookError> {
        let mut cameras = self.cameras.write().expect("zone book lock");
        let known = cameras.contains_key(camera);
        let geometry = cameras.entry(camera.to_owned()).or_default();
        let changed = apply(geometry);
        match changed {
            Ok(true) => {
                geometry.revision += 1;
                self.version.fetch_add(1, Ordering::Release);
            }
            // A refused or empty change to a camera the book did not know leaves no entry. (One
            // it knew keeps its entry, emptied or not: a revision must never go back.)
            _ if !known => {
                cameras.remove(camera);
            }
            _ => {}
        }
        changed
    }
}

fn put<T>(
    drawn: &mut Vec<Drawn<T>>,
    shape: T,
    camera: &str,
    kind: Shape,
    id: impl Fn(&T) -> &String,
) -> Result<bool, BookError> {
    match drawn.iter_mut().find(|d| id(&d.shape) == id(&shape)) {
        Some(existing) if existing.origin == Origin::Config => Err(BookError::Configured {
            kind,
            camera: camera.to_owned(),
            id: id(&shape).clone(),
        }),
        Some(existing) => {
            existing.shape = shape;
            Ok(true)
        }
        None => {
            drawn.push(Drawn {
                shape,
                origin: Origin::Api,
            });
            Ok(true)
        }
    }
}

fn remove<T>(
    drawn: &mut Vec<Drawn<T>>,
    camera: &str,
    wanted: &str,
    kind: Shape,
    id: impl Fn(&T) -> &String,
) -> Result<bool, BookError> {
    let Some(at) = drawn.iter().position(|d| id(&d.shape) == wanted) else {
        return Ok(false);
    };
    if drawn[at].origin == Origin::Config {
        return Err(BookError::Configured {
            kind,
            camera: camera.to_owned(),
            id: wanted.to_owned(),
        });
    }
    drawn.remove(at);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(id: &str, x: f32) -> ZoneConfig {
        ZoneConfig {
            id: id.into(),
            camera: "gate".into(),
            points: vec![[x, 0.1], [x + 0.2, 0.1], [x + 0.2, 0.5]],
            dwell_s: None,
            classes: vec![],
        }
    }

    #[test]
    fn a_put_with_a_known_id_replaces_and_configured_ones_stay_read_only() {
        let book = ZoneBook::new(&[zone("lane", 0.0)], &[]);
        book.put_zone(zone("door", 0.1)).expect("valid");
        book.put_zone(zone("door", 0.5)).expect("valid");
        let gate = book.camera("gate");
        assert_eq!(gate.zones.len(), 2);
        assert_eq!(gate.zones[1].shape.points[0], [0.5, 0.1]);
        assert_eq!(gate.zones[1].origin, Origin::Api);
        let configured = BookError::Configured {
            kind: Shape::Zone,
            camera: "gate".into(),
            id: "lane".into(),
        };
        assert_eq!(book.put_zone(zone("lane", 0.5)), Err(configured.clone()));
        assert_eq!(book.remove_zone("gate", "lane"), Err(configured));
        assert_eq!(book.remove_zone("gate", "door"), Ok(true));
        assert_eq!(book.remove_zone("gate", "door"), Ok(false));
        assert!(matches!(
            book.put_zone(zone("off-view", 0.9)),
            Err(BookError::Invalid(GeometryError::OutOfRange { .. }))
        ));
    }

    #[test]
    fn a_reader_sees_a_change_once_and_only_on_its_camera() {
        let book = ZoneBook::default();
        let (mut version, mut revision) = (book.version(), 0);
        assert!(book
            .camera_changed("gate", &mut version, &mut revision)
            .is_none());
        book.put_zone(zone("door", 0.1)).expect("valid");
        let changed = book.camera_changed("gate", &mut version, &mut revision);
        assert_eq!(changed.map(|g| g.zones.len()), Some(1));
        assert!(book
            .camera_changed("gate", &mut version, &mut revision)
            .is_none());
        // Another camera's change moves the version, not this camera's revision.
        book.put_zone(ZoneConfig {
            camera: "yard".into(),
            ..zone("door", 0.1)
        })
        .expect("valid");
        assert!(book
            .camera_changed("gate", &mut version, &mut revision)
            .is_none());
        assert_eq!(version, book.version());
        // Removing nothing changes nothing.
        assert_eq!(book.remove_zone("gate", "nothing"), Ok(false));
        assert!(book
            .camera_changed("gate", &mut version, &mut revision)
            .is_none());
    }
}

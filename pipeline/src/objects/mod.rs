//! What objects do in a camera's view: what the objects stage saw in a frame
//! ([`FrameObjects`]), the zones and lines drawn on the view and the events tracks raise with
//! them ([`zones`]), those in force on each camera as the API changes them ([`book`]), a box's
//! coarse colour ([`colour`]), each track as a whole for the track store ([`tracks`]), and
//! count questions answered from it ([`counting`]). Detection and tracking themselves are
//! operators (`argus_operators::detection`, `argus_operators::tracking`); the stage that runs
//! them per camera is `operators::objects`.

pub mod activity;
pub mod book;
pub mod colour;
pub mod counting;
pub mod eval;
pub mod tracks;
pub mod zones;

use chrono::{DateTime, Utc};

use crate::messages::ObjectEventKind;

/// One tracked object as a frame shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenObject {
    /// Stable while the track lives; unique per camera until Argus restarts.
    pub track_id: u64,
    /// The COCO class, by vote over the track's detections.
    pub class: &'static str,
    pub score: f32,
    /// `[x1, y1, x2, y2]`, fractions of the frame's width and height.
    pub bbox: [f32; 4],
    pub first_seen: DateTime<Utc>,
    /// The box's dominant colour by vote over the track's detections ("white", "red", ...);
    /// `None` until one has been measured.
    pub colour: Option<&'static str>,
}

/// Something a track did: started, ended, entered or left a zone, stayed, crossed a line.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectHappening {
    pub object: SeenObject,
    /// The frame time it happened at.
    pub at: DateTime<Utc>,
    pub kind: ObjectEventKind,
}

/// What the objects stage found in one frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameObjects {
    /// The detector ran on this frame. When too little of the view changed it does not, and
    /// `tracks` are the live tracks where they were last seen (a parked car stays put).
    pub detected: bool,
    /// The tracks matched in this frame (or, without detection, the live ones).
    pub tracks: Vec<SeenObject>,
    /// What tracks did in this frame, in order.
    pub events: Vec<ObjectHappening>,
    /// Tracks inside each zone of the camera, by zone id.
    pub zone_counts: Vec<(String, usize)>,
}

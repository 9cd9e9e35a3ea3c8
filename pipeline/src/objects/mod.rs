//! What objects do in a camera's view: zones and lines drawn on it, and the events tracks
//! raise with them ([`zones`]). Detection and tracking themselves are operators
//! (`argus_operators::tracking`).

pub mod eval;
pub mod zones;

//! What analysts ask of stored video: moments by text or image ([`moments`]), questions over
//! a time range ([`questions`]), the alert rules with the alerts they fired ([`alerts`]), and
//! the zones and lines drawn through the API ([`zones`]), clips of any recorded span
//! ([`clips`]), and each camera's timeline ([`timeline`]).

pub mod alerts;
pub mod clips;
pub mod moments;
pub mod questions;
pub mod reembed;
pub mod timeline;
pub mod zones;

//! What analysts ask of stored video: moments by text or image ([`moments`]), questions over
//! a time range ([`questions`]), and the alert rules with the alerts they fired ([`alerts`]).

pub mod alerts;
pub mod moments;
pub mod questions;
pub mod reembed;

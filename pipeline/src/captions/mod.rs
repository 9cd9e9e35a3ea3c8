//! What captions are made of: a camera's frames cut into chunks ([`chunk`]), the evidence a
//! chunk or a question shows the LLM ([`evidence`], [`questions`]), and the standing alert
//! rules checked on every chunk ([`alerts`]), with the evidence that question rules must
//! agree with before they fire ([`trust`]) and the word matching it shares with moment
//! search ([`words`]).
//!
//! This module is plain data and rules. The model that writes captions and answers is
//! `operators::captioning`; chunks are cut and captions published by `sinks::captions`;
//! questions and rules are served by `query`.

pub mod alerts;
pub mod chunk;
pub mod evidence;
pub mod questions;
pub mod trust;
pub mod words;

/// The Redis sorted set of a camera's newest captions, scored by chunk start (ms).
pub fn captions_key(prefix: &str, camera: &str) -> String {
    format!("{prefix}:captions:{camera}")
}

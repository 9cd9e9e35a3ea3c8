//! Argus, the service: ingest, scheduling, publishing, HTTP API, metrics and config.
//! The compute it schedules lives in the `argus-operators` crate.

pub mod access;
pub mod analysis;
pub mod api;
pub mod captions;
pub mod cluster;
pub mod config;
pub mod ingest;
pub mod metrics;
pub mod moments;
pub mod publish;
pub mod service;
pub mod streams;
pub mod tail;

//! Argus, the service: ingest, scheduling, publishing, HTTP API, metrics and config.
//! The compute it schedules lives in the `argus-operators` crate.
//!
//! The modules follow the path of the data. Each may import only the modules listed before
//! it in this table, never one after it (`deploy/check-layers.py`, run by `make test`,
//! enforces this; the `mod` lines below are in rustfmt's order, not this one):
//!
//! | layer | module | what it owns |
//! |---|---|---|
//! | shared | [`redact`] | passwords out of everything shown |
//! | shared | [`metrics`] | the Prometheus registry |
//! | shared | [`messages`] | the versioned Kafka message schemas |
//! | source | [`source`] | URIs, the GStreamer decoder, frame queues |
//! | shared | [`objects`] | zones and lines (the book of those in force), and the events tracks raise with them |
//! | shared | [`config`] | settings (TOML + env), defaults in `config/default.toml` |
//! | domain | [`captions`] | chunks, evidence and alert rules (plain data) |
//! | stream | [`stream`] | each stream's state machine; the analyser and sink interfaces |
//! | operators | [`operators`] | the models, each on the one model worker |
//! | sinks | [`publish`] | the Kafka producer (with its spill file) and the Redis writer |
//! | sinks | [`recordings`] | recorded segments of live cameras: their index, clip links |
//! | sinks | [`moments`] | windows, the index, the store, clips, scoring |
//! | sinks | [`sinks`] | where analysed frames go: frame results, moment index, captions |
//! | query | [`query`] | moment search, questions, alert rules and history |
//! | api | [`cluster`] | scale-out: cameras shared by a Kafka consumer group |
//! | api | [`access`] | API tokens, rate limit, CORS |
//! | api | [`api`] | the HTTP routers, one per resource |
//! | app | [`app`] | the wiring, and the CLI commands |

pub mod access;
pub mod api;
pub mod app;
pub mod captions;
pub mod cluster;
pub mod config;
pub mod messages;
pub mod metrics;
pub mod moments;
pub mod objects;
pub mod operators;
pub mod publish;
pub mod query;
pub mod recordings;
pub mod redact;
pub mod sinks;
pub mod source;
pub mod stream;

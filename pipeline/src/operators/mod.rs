//! The models, each on a [`worker::ModelWorker`]: a dedicated thread that owns it, batching
//! the jobs that arrive together. The compute itself lives in the `argus-operators` crate;
//! these handles are what the async service holds.
//!
//! - [`ocr`]: the per-frame operator (PP-OCRv4), the stream's [`crate::stream::FrameAnalyser`];
//! - [`embedder`]: the moment index's text and image-text encoders;
//! - [`rerank`]: the LLM that reranks a query's best moments;
//! - [`captioning`]: the tagger and the LLM that write captions and answer questions;
//! - [`detector`]: the COCO object detector (people, vehicles);
//! - [`objects`]: the objects stage: detection, tracking, zones and lines per camera, the
//!   stream's [`crate::stream::ObjectAnalyser`].

pub mod captioning;
pub mod detector;
pub mod embedder;
pub mod objects;
pub mod ocr;
pub mod rerank;
pub mod worker;

//! Argus operators: the pure-compute half of Argus.
//!
//! Everything here takes tensors or images in and gives tensors or typed results out.
//! It reads model files from disk, but never touches the network, never spawns an async
//! runtime and knows nothing about streams, Kafka or Redis: the `pipeline` crate schedules
//! these operators and publishes what they return.
//!
//! * [`image`]: the frame type every vision operator takes (packed BGR, as OpenCV and the
//!   PaddleOCR models expect).
//! * [`onnx`]: the process-wide ONNX Runtime environment (`ort`, loaded dynamically).
//! * [`ocr`]: PP-OCRv4 text detection (DB) and recognition (CTC) through `ort` + `opencv`.
//! * [`text_embedding`]: sentence embeddings (all-MiniLM-L6-v2, any HF BERT checkpoint) with `tch`.

pub mod error;
pub mod image;
pub mod ocr;
pub mod onnx;
pub mod text_embedding;

pub use error::OperatorError;
pub use image::BgrImage;

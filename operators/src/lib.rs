//! Argus operators: the pure-compute half of Argus.
//!
//! Everything here takes tensors or images in and gives tensors or typed results out.
//! It reads model files from disk, but never touches the network, never spawns an async
//! runtime and knows nothing about streams, Kafka or Redis: the `pipeline` crate schedules
//! these operators and publishes what they return.
//!
//! * [`appearance`]: the MPEG-7 colour layout descriptor of a frame, for image-conditioned
//!   search without an image-text model.
//! * [`ccam`]: the Video-CCAM projector (causal cross-attention from learnable queries to
//!   the frames' visual tokens; batch or streaming) with `tch`.
//! * [`checkpoint`]: loading Hugging Face checkpoint folders (config, safetensors weights,
//!   device) for the `tch` operators.
//! * [`detection`]: COCO-80 object detection (NanoDet by default, or CenterNet) through
//!   `ort` + `opencv`: people and vehicles as boxes, for counting and tracking.
//! * [`image`]: the frame type every vision operator takes (packed BGR, as OpenCV and the
//!   PaddleOCR models expect).
//! * [`image_text`]: one embedding space for frames and texts (CLIP / SigLIP, Hugging Face
//!   checkpoints with `tch` or ONNX exports with `ort`), for text → image moment search.
//! * [`llm`]: text generation with Llama-family decoders (SmolLM2, any HF Llama checkpoint) with `tch`.
//! * [`motion`]: motion between consecutive frames of a camera (frame differencing with
//!   `opencv`): how much changed and where, as regions named by their place in the frame.
//! * [`onnx`]: the process-wide ONNX Runtime environment (`ort`, loaded dynamically).
//! * [`ocr`]: PP-OCRv4 text detection (DB) and recognition (CTC) through `ort` + `opencv`.
//! * [`self_correction`]: CyberV's test-time self-correction: a sensor over candidate answers
//!   and a controller that accepts one or picks the segments to look at again.
//! * [`tagging`]: whole-frame ImageNet tags (EfficientNet-Lite0) through `ort` + `opencv`.
//! * [`text_embedding`]: sentence embeddings (all-MiniLM-L6-v2, any HF BERT checkpoint) with `tch`.
//! * [`tracking`]: one multi-object tracker per camera (ByteTrack association), with each
//!   track's class by vote, its first and last sighting and its path.
//! * [`video_llm`]: captions and answers about a chunk of video from the frames themselves:
//!   vision tower, streaming CCAM and LLM chained (the full path, with VLM weights).
//! * [`video_qa`]: captions and answers about a chunk of video written by the LLM from the
//!   perception operators' timestamped observations (the default path without VLM weights).
//! * [`vision`]: SigLIP and CLIP ViT encoders (HF checkpoints) with `tch`, and token merging
//!   inside the tower (ToMe) and across a fixed camera's frames.

pub mod appearance;
pub mod ccam;
pub mod checkpoint;
pub mod detection;
pub mod error;
pub mod image;
pub mod image_text;
pub mod llm;
pub mod motion;
mod nn;
pub mod ocr;
pub mod onnx;
pub mod rerank;
pub mod self_correction;
pub mod tagging;
pub mod text_embedding;
pub mod tracking;
pub mod video_llm;
pub mod video_qa;
pub mod vision;

pub use error::OperatorError;
pub use image::BgrImage;

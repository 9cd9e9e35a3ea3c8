//! Moment retrieval: every stream is cut into short windows ([`window`]), each summarised by
//! its on-screen text, tags, caption and colour layout, embedded ([`embedder`]: a sentence
//! model for the text and, when configured, a CLIP or SigLIP encoder for the frame), published on
//! the moments topic, stored in Redis ([`store`]) and indexed in memory ([`index`]). Analysts'
//! queries — text or an example image, with camera and time filters — score windows, merge
//! adjacent hits into moments and return the best ([`query`]), optionally reranked by the LLM
//! ([`rerank`]). [`eval`] scores the answers
//! against ground truth as the public benchmarks do.

pub mod benchmark;
pub mod client;
pub mod clip;
pub mod embedder;
pub mod eval;
pub mod index;
pub mod indexer;
pub mod query;
pub mod recording;
pub mod reembed;
pub mod rerank;
pub mod search;
pub mod store;
pub mod window;

pub use embedder::{Embedder, VisualEmbedder};
pub use index::{IndexModels, MomentIndex, SearchMethod, Space, WindowFilter};
pub use indexer::MomentIndexer;
pub use search::MomentSearch;
pub use store::MomentStore;
pub use window::{MomentWindow, WindowBuilder};

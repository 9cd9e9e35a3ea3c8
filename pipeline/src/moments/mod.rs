//! What moment retrieval is made of: every stream is cut into short windows ([`window`]),
//! each summarised by its on-screen text, tags, caption and colour layout, stored in Redis
//! ([`store`], in the compact layout of [`stored`]; thumbnails on disk, [`thumbnails`]) and
//! indexed in memory ([`index`], saved beside the store and reopened at start). Queries score
//! windows, merge adjacent hits into moments ([`query`]); recordings' moments can be cut as
//! clips ([`clip`]); [`eval`] scores answers against ground truth as the public benchmarks do.
//!
//! Windows are built and indexed by `sinks::moment_index`; searched by `query::moments`.

pub mod clip;
pub mod eval;
pub mod index;
pub mod query;
pub mod store;
pub mod stored;
pub mod thumbnails;
pub mod window;

pub use index::{IndexModels, MomentIndex, SearchMethod, Space, WindowFilter};
pub use store::MomentStore;
pub use thumbnails::{DiskThumbnails, ThumbnailStore};
pub use window::{MomentWindow, WindowBuilder};

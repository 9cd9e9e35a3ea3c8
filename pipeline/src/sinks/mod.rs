//! Where analysed frames go. Each sink is one module implementing
//! [`crate::stream::FrameSink`]; `app` builds the list the streams call, in order:
//!
//! - [`moment_index`]: windows embedded, stored, published and indexed for moment search;
//! - [`captions`]: chunks captioned with self-correction, and the alerts they fire;
//! - [`objects`]: people and vehicles detected, tracked, and their zone and line events;
//! - [`object_alerts`]: the object alert rules, checked on what the tracks did;
//! - [`recording`]: the object events and motion `events` mode keeps recorded video around,
//!   and recorded files marked as having video for clips;
//! - [`frame_results`]: each frame's result to Kafka and Redis, and the streams' events.

pub mod captions;
pub mod frame_results;
pub mod moment_index;
pub mod object_alerts;
pub mod objects;
pub mod recording;

pub use captions::CaptionSink;
pub use frame_results::FrameResults;
pub use moment_index::MomentIndexer;
pub use object_alerts::ObjectAlertSink;
pub use objects::ObjectSink;
pub use recording::{RecordedFiles, RecordingMarker};

//! How one window is kept in Redis (layout 2): a MessagePack map of what a query needs, with
//! the embeddings as float16.
//!
//! Layout 1 was the published JSON (`schemas/moment-window.v1.json`): 384 floats written as
//! decimal text are ~4 KB of a ~6 KB window. Here a text embedding is 768 bytes and a whole
//! window shaped like the sample camera's ~1.2 KB of value, 1.6 KB of Redis memory with its key
//! and entries (BENCHMARKS.md, "Moment index at month scale").
//!
//! Why float16 rather than int8 with a scale: the vectors are unit length, where float16 keeps
//! ~3 significant digits of every component (cosines move by ~1e-4, below any ranking
//! difference) with no per-vector scale to keep; int8 would save another 384 bytes a window
//! but moves cosines by ~1e-3, enough to swap near-ties, and the 2 KB goal is met without it.
//! Every vector the service indexes goes through [`to_stored_precision`] first, so the index
//! built live and the index rebuilt from Redis hold the same values: a restart gives the same
//! answers.
//!
//! MessagePack with named fields: compact, and any language's msgpack library reads it
//! (`msgpack.unpackb(redis.get(key))` in Python); fields can be added as optional ones.

use chrono::{DateTime, Utc};
use half::f16;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::window::MomentWindow;
use crate::objects::activity::ObjectGroup;

/// What a window costs Redis beside its value's bytes: its key, its member of the camera's
/// timeline and its share of the log, as `MEMORY USAGE` measures them over a stored day
/// (`benches/moment_store.rs`). Retention's memory budget counts each window as its value
/// plus this.
pub const REDIS_BYTES_BESIDE_VALUE: u64 = 330;

/// Which layout a stored value is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The published JSON, as stored before layout 2 (migrated at start).
    Json,
    /// [`encode`]'s MessagePack.
    Packed,
}

#[derive(Debug, thiserror::Error)]
pub enum StoredError {
    #[error("a stored window that is not MessagePack: {0}")]
    Packed(#[from] rmp_serde::decode::Error),
    #[error("a stored window of layout 1 that is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("a stored window with a bad time: {0} ms")]
    Time(i64),
    #[error("a stored vector of {0} bytes (float16 takes 2 each)")]
    Vector(usize),
}

/// Layout 2, field by field. The camera and start are in the key too, but a value read in a
/// batch (MGET) is whole on its own.
#[derive(Serialize, Deserialize)]
struct Packed {
    id: uuid::Uuid,
    camera: String,
    start_ms: i64,
    end_ms: i64,
    frames: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ocr: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    caption: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    objects: Vec<ObjectGroup>,
    model: String,
    /// float16, little-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<ByteBuf>,
    /// The colour layout, float16 little-endian (DCT coefficients of 0–255 values: steps of
    /// at most 0.125 at the top of the range, far below what tells two scenes apart).
    appearance: ByteBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    visual_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    visual: Option<ByteBuf>,
    produced_ms: i64,
}

fn to_f16_bytes(values: &[f32]) -> ByteBuf {
    ByteBuf::from(
        values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect::<Vec<u8>>(),
    )
}

fn from_f16_bytes(bytes: &[u8]) -> Result<Vec<f32>, StoredError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(StoredError::Vector(bytes.len()));
    }
    Ok(bytes
        .chunks_exact(2)
        .map(|pair| f16::from_le_bytes([pair[0], pair[1]]).to_f32())
        .collect())
}

fn time(ms: i64) -> Result<DateTime<Utc>, StoredError> {
    DateTime::from_timestamp_millis(ms).ok_or(StoredError::Time(ms))
}

/// Rounds the window's vectors to what Redis keeps of them (see the module's notes).
pub fn to_stored_precision(window: &mut MomentWindow) {
    let round = |values: &mut [f32]| {
        values
            .iter_mut()
            .for_each(|v| *v = f16::from_f32(*v).to_f32())
    };
    if let Some(text) = &mut window.text_embedding {
        round(text);
    }
    round(&mut window.appearance);
    if let Some(visual) = &mut window.visual_embedding {
        round(visual);
    }
}

/// The window in layout 2.
pub fn encode(window: &MomentWindow) -> Vec<u8> {
    let packed = Packed {
        id: window.message_id,
        camera: window.camera_id.clone(),
        start_ms: window.start_ms(),
        end_ms: window.end.timestamp_millis(),
        frames: window.frames,
        ocr: window.ocr_text.clone(),
        tags: window.tags.clone(),
        caption: window.caption.clone(),
        objects: window.objects.clone(),
        model: window.embedding_model.clone(),
        text: window.text_embedding.as_deref().map(to_f16_bytes),
        appearance: to_f16_bytes(&window.appearance),
        visual_model: window.visual_model.clone(),
        visual: window.visual_embedding.as_deref().map(to_f16_bytes),
        produced_ms: window.produced_at.timestamp_millis(),
    };
    rmp_serde::to_vec_named(&packed).expect("moment windows serialise")
}

/// A stored value in either layout: layout 1 is JSON (it opens with `{`, which no MessagePack
/// map does).
pub fn decode(bytes: &[u8]) -> Result<(MomentWindow, Layout), StoredError> {
    if bytes.first() == Some(&b'{') {
        return Ok((serde_json::from_slice(bytes)?, Layout::Json));
    }
    let packed: Packed = rmp_serde::from_slice(bytes)?;
    let window = MomentWindow {
        schema_version: MomentWindow::SCHEMA_VERSION,
        message_id: packed.id,
        camera_id: packed.camera,
        start: time(packed.start_ms)?,
        end: time(packed.end_ms)?,
        frames: packed.frames,
        ocr_text: packed.ocr,
        tags: packed.tags,
        caption: packed.caption,
        objects: packed.objects,
        embedding_model: packed.model,
        text_embedding: packed
            .text
            .as_deref()
            .map(|b| from_f16_bytes(b))
            .transpose()?,
        appearance: from_f16_bytes(&packed.appearance)?,
        visual_model: packed.visual_model,
        visual_embedding: packed
            .visual
            .as_deref()
            .map(|b| from_f16_bytes(b))
            .transpose()?,
        produced_at: time(packed.produced_ms)?,
    };
    Ok((window, Layout::Packed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::activity::Movement;

    fn window() -> MomentWindow {
        let start = DateTime::from_timestamp_millis(1_767_225_600_000).unwrap();
        let text: Vec<f32> = (0..384).map(|i| ((i as f32) * 0.37).sin() / 14.0).collect();
        MomentWindow {
            schema_version: 1,
            message_id: uuid::Uuid::now_v7(),
            camera_id: "gate 3".into(),
            start,
            end: start + chrono::Duration::seconds(2),
            frames: 4,
            ocr_text: vec!["GATE 3".into(), "NO ENTRY".into()],
            tags: vec![],
            caption: Some("a truck waits at the gate".into()),
            objects: vec![ObjectGroup {
                class: "car".into(),
                colour: Some("red".into()),
                count: 2,
                movement: Movement::Still,
                place: Some("bottom right".into()),
                since: Some(start),
                track_ids: vec![4, 9],
            }],
            embedding_model: "all-minilm-l6-v2".into(),
            text_embedding: Some(text),
            appearance: (0..27).map(|i| 200.0 - i as f32 * 7.3).collect(),
            visual_model: None,
            visual_embedding: None,
            produced_at: start + chrono::Duration::seconds(3),
        }
    }

    #[test]
    fn a_window_comes_back_as_stored_at_its_stored_precision() {
        let mut window = window();
        let encoded = encode(&window);
        let (decoded, layout) = decode(&encoded).unwrap();
        assert_eq!(layout, Layout::Packed);
        assert_ne!(decoded, window, "the vectors were rounded");
        to_stored_precision(&mut window);
        assert_eq!(decoded, window);
        assert_eq!(encode(&decoded), encoded, "rounding twice changes nothing");
        assert!(
            encoded.len() < 1200,
            "384 float16 and the rest: {} bytes",
            encoded.len()
        );
    }

    #[test]
    fn float16_keeps_cosines_to_a_ten_thousandth() {
        let original = window().text_embedding.unwrap();
        let mut rounded = window();
        to_stored_precision(&mut rounded);
        let rounded = rounded.text_embedding.unwrap();
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let cosine = dot(&original, &rounded)
            / dot(&original, &original).sqrt()
            / dot(&rounded, &rounded).sqrt();
        assert!((1.0 - cosine).abs() < 1e-4, "{cosine}");
    }

    #[test]
    fn layout_1_json_is_still_read() {
        let window = window();
        let json = serde_json::to_vec(&window).unwrap();
        let (decoded, layout) = decode(&json).unwrap();
        assert_eq!(layout, Layout::Json);
        assert_eq!(decoded, window, "JSON kept full precision");
        assert!(decode(b"\x93garbage").is_err());
    }
}

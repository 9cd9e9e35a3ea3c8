//! Re-embedding stored windows after a model change.
//!
//! A window keeps the text it was embedded from (OCR, tags, caption) and a JPEG thumbnail of
//! one of its frames, so when `moments.text_model` or `moments.visual_model` changes, the
//! windows already stored can join the new model's space without the video. At start the
//! service re-embeds them in the background, writes them back to Redis and re-inserts them.
//! Until then the index leaves their old vectors out of the new space (see
//! [`super::index::IndexModels`]): they are found by appearance and by any space still current,
//! and no query fails on a dimension mismatch.
//!
//! A visual embedding is recomputed from the thumbnail, a smaller copy of a frame of the
//! window; a window without a thumbnail keeps no visual vector.

use std::sync::Arc;

use argus_operators::BgrImage;

use crate::moments::index::MomentIndex;
use crate::moments::store::MomentStore;
use crate::moments::stored;
use crate::moments::window::MomentWindow;
use crate::operators::embedder::{Embedder, VisualEmbedder};

/// Windows re-embedded per model call.
const BATCH: usize = 32;

/// Re-embeds the `outdated` windows (camera, start ms) with the index's models; returns how
/// many were brought up to date. Stops at the first Redis or model failure, which is logged:
/// the rest stay out of the new space until the next start.
pub async fn reembed_outdated(
    store: MomentStore,
    index: Arc<MomentIndex>,
    embedder: Embedder,
    visual: Option<VisualEmbedder>,
    outdated: Vec<(String, i64)>,
) -> usize {
    let total = outdated.len();
    tracing::info!(
        windows = total,
        text_model = %index.models().text,
        visual_model = ?index.models().visual,
        "re-embedding stored moment windows made with other models"
    );
    let mut done = 0;
    for chunk in outdated.chunks(BATCH) {
        match reembed_batch(&store, &index, &embedder, visual.as_ref(), chunk).await {
            Ok(count) => done += count,
            Err(error) => {
                tracing::warn!(%error, done, total,
                    "re-embedding stopped; the remaining windows stay out of the new model's \
                     space until the next start");
                return done;
            }
        }
        tracing::info!(done, total, "re-embedding stored moment windows");
    }
    tracing::info!(windows = done, "stored moment windows re-embedded");
    done
}

async fn reembed_batch(
    store: &MomentStore,
    index: &Arc<MomentIndex>,
    embedder: &Embedder,
    visual: Option<&VisualEmbedder>,
    keys: &[(String, i64)],
) -> anyhow::Result<usize> {
    let models = index.models();
    let mut windows: Vec<MomentWindow> = Vec::with_capacity(keys.len());
    for (camera, start_ms) in keys {
        // Gone since loading (retention) is fine.
        if let Some(window) = store.get(camera, *start_ms).await? {
            windows.push(window);
        }
    }

    let text_stale: Vec<usize> = (0..windows.len())
        .filter(|&i| !models.text_is_current(&windows[i]))
        .collect();
    if !text_stale.is_empty() {
        let documents = text_stale.iter().map(|&i| windows[i].document()).collect();
        let embeddings = embedder.embed(documents).await?;
        for (&i, embedding) in text_stale.iter().zip(embeddings) {
            windows[i].text_embedding = Some(embedding);
            windows[i].embedding_model = models.text.clone();
        }
    }

    if let (Some(visual), Some(model)) = (visual, &models.visual) {
        let mut frames = Vec::new();
        for (i, window) in windows.iter().enumerate() {
            if models.visual_is_current(window) {
                continue;
            }
            let thumbnail = store
                .thumbnail(&window.camera_id, window.start_ms())
                .await?;
            match thumbnail.map(|jpeg| BgrImage::decode(&jpeg)) {
                Some(Ok(image)) => frames.push((i, Arc::new(image))),
                Some(Err(error)) => tracing::warn!(camera = %window.camera_id,
                    start_ms = window.start_ms(), %error, "an unreadable thumbnail"),
                None => {}
            }
        }
        if !frames.is_empty() {
            let images = frames.iter().map(|(_, image)| image.clone()).collect();
            let embeddings = visual.embed_images(images).await?;
            for ((i, _), embedding) in frames.iter().zip(embeddings) {
                windows[*i].visual_embedding = Some(embedding);
                windows[*i].visual_model = Some(model.clone());
            }
        }
    }

    for window in &mut windows {
        stored::to_stored_precision(window);
        store.put(window, None).await;
    }
    // HNSW insertion is CPU work under the index's write lock: not on an async worker.
    let (index, count) = (index.clone(), windows.len());
    tokio::task::spawn_blocking(move || index.insert_many(&windows)).await??;
    Ok(count)
}

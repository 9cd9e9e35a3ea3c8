//! Where windows' thumbnails are kept: not in Redis (a 2 s window's JPEG is ~14 KB, ten times
//! the window itself), but behind [`ThumbnailStore`], on local disk today ([`DiskThumbnails`]),
//! in object storage when a deployment needs it shared. Retention deletes them with their
//! windows ([`super::store::MomentStore::delete_before`]).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

#[derive(Debug, thiserror::Error)]
#[error("thumbnail {path}: {source}")]
pub struct ThumbnailError {
    path: PathBuf,
    source: std::io::Error,
}

/// One JPEG per (camera, window start).
#[async_trait]
pub trait ThumbnailStore: Send + Sync {
    /// Stores (or replaces) a window's thumbnail.
    async fn put(&self, camera: &str, start_ms: i64, jpeg: Vec<u8>) -> Result<(), ThumbnailError>;
    async fn get(&self, camera: &str, start_ms: i64) -> Result<Option<Vec<u8>>, ThumbnailError>;
    /// Deletes the thumbnails of these windows, if they have one.
    async fn delete(&self, camera: &str, starts: Vec<i64>) -> Result<(), ThumbnailError>;
}

/// Camera ids become folder names: anything but letters, digits, `-` and `_` is
/// percent-encoded, so no id can climb out of the folder (`..`, `/`).
const CAMERA_NAME: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// Thumbnails as files: `{root}/{camera}/{day}/{start_ms}.jpg`, one folder per UTC day so
/// that no folder holds more than a day of windows (43,200 at 2 s).
#[derive(Debug, Clone)]
pub struct DiskThumbnails {
    root: PathBuf,
}

impl DiskThumbnails {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn path(&self, camera: &str, start_ms: i64) -> PathBuf {
        let day = chrono::DateTime::from_timestamp_millis(start_ms).map_or_else(
            || "invalid".to_owned(),
            |t| t.format("%Y-%m-%d").to_string(),
        );
        self.root
            .join(utf8_percent_encode(camera, CAMERA_NAME).to_string())
            .join(day)
            .join(format!("{start_ms}.jpg"))
    }
}

fn error(path: &Path) -> impl FnOnce(std::io::Error) -> ThumbnailError + '_ {
    move |source| ThumbnailError {
        path: path.to_owned(),
        source,
    }
}

/// File IO runs on the blocking pool, never on an async worker.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ThumbnailError> + Send + 'static,
) -> Result<T, ThumbnailError> {
    tokio::task::spawn_blocking(work)
        .await
        .expect("a thumbnail task panicked")
}

#[async_trait]
impl ThumbnailStore for DiskThumbnails {
    async fn put(&self, camera: &str, start_ms: i64, jpeg: Vec<u8>) -> Result<(), ThumbnailError> {
        let path = self.path(camera, start_ms);
        blocking(move || {
            let folder = path.parent().expect("a thumbnail path has a folder");
            std::fs::create_dir_all(folder).map_err(error(folder))?;
            // Written aside and renamed: a reader never sees half a JPEG.
            let temporary = path.with_extension("jpg.part");
            std::fs::write(&temporary, &jpeg).map_err(error(&temporary))?;
            std::fs::rename(&temporary, &path).map_err(error(&path))
        })
        .await
    }

    async fn get(&self, camera: &str, start_ms: i64) -> Result<Option<Vec<u8>>, ThumbnailError> {
        let path = self.path(camera, start_ms);
        blocking(move || match std::fs::read(&path) {
            Ok(jpeg) => Ok(Some(jpeg)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(error(&path)(e)),
        })
        .await
    }

    async fn delete(&self, camera: &str, starts: Vec<i64>) -> Result<(), ThumbnailError> {
        let paths: Vec<PathBuf> = starts
            .into_iter()
            .map(|start| self.path(camera, start))
            .collect();
        blocking(move || {
            let mut folders = std::collections::BTreeSet::new();
            for path in &paths {
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(error(path)(e)),
                }
                folders.extend(path.parent().map(Path::to_owned));
            }
            // A day's folder goes with its last thumbnail; one still in use stays (the
            // removal of a non-empty folder fails, which is the test).
            for folder in folders {
                let _ = std::fs::remove_dir(&folder);
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn thumbnails_are_files_per_camera_and_day_and_deletion_empties_the_day() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskThumbnails::new(dir.path().to_owned());
        let (day_one, day_two) = (1_767_225_600_000, 1_767_225_600_000 + 86_400_000);
        store
            .put("../gate 3", day_one, b"one".to_vec())
            .await
            .unwrap();
        store
            .put("../gate 3", day_two, b"two".to_vec())
            .await
            .unwrap();
        assert_eq!(
            store.get("../gate 3", day_one).await.unwrap().as_deref(),
            Some(&b"one"[..])
        );
        let camera = dir.path().join("%2E%2E%2Fgate%203");
        assert!(camera
            .join("2026-01-01")
            .join(format!("{day_one}.jpg"))
            .is_file());

        store.delete("../gate 3", vec![day_one, 42]).await.unwrap();
        assert_eq!(store.get("../gate 3", day_one).await.unwrap(), None);
        assert!(!camera.join("2026-01-01").exists(), "the empty day goes");
        assert!(store.get("../gate 3", day_two).await.unwrap().is_some());
    }
}

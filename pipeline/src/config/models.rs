//! `[models]`: the folder the shipped models are read from.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

// Every setting is optional, so the derived default (nothing set) is the embedded section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    pub dir: Option<PathBuf>,
}

impl ModelsConfig {
    /// The model folder: configured, else `$ARGUS_MODEL_DIR`, else `~/.cache/argus/models`.
    pub fn resolve_dir(&self) -> PathBuf {
        if let Some(dir) = &self.dir {
            return dir.clone();
        }
        if let Some(dir) = std::env::var_os("ARGUS_MODEL_DIR") {
            return PathBuf::from(dir);
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        home.join(".cache/argus/models")
    }
}

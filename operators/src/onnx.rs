//! The process-wide ONNX Runtime.
//!
//! `ort` is built with `load-dynamic`: the shared library comes from the PyPI `onnxruntime`
//! wheel that `deploy/setup.sh` installs, found through `ORT_DYLIB_PATH` (set by
//! `deploy/env.sh`). ONNX Runtime allows one environment per process, so it lives here.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;

use crate::OperatorError;

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// The ONNX Runtime environment, loaded on first use from `ORT_DYLIB_PATH`.
pub fn environment() -> Result<&'static Environment, OperatorError> {
    ENVIRONMENT
        .get_or_init(|| {
            let path = std::env::var_os("ORT_DYLIB_PATH")
                .map(PathBuf::from)
                .ok_or_else(|| {
                    "ORT_DYLIB_PATH is not set; it must name libonnxruntime.so \
                 (`source deploy/env.sh`, which `make run` and `make test` do for you)"
                        .to_string()
                })?;
            ort::init_from(&path)
                .map_err(|e| format!("cannot load {}: {e}", path.display()))?
                .with_name("argus")
                .build()
                .map_err(|e| format!("cannot start the environment from {}: {e}", path.display()))
        })
        .as_ref()
        .map_err(|message| OperatorError::Runtime(message.clone()))
}

/// Opens an ONNX model for CPU inference with `threads` intra-op threads (0 = ORT's choice).
/// `spin_wait`: whether idle intra-op threads spin waiting for work (ONNX Runtime's default),
/// which shortens one inference a little and burns CPU between inferences.
pub fn load_session(
    path: &Path,
    threads: usize,
    spin_wait: bool,
) -> Result<Session, OperatorError> {
    if !path.is_file() {
        return Err(OperatorError::MissingModel {
            path: path.to_owned(),
            hint: "run deploy/setup.sh to fetch the shipped models".into(),
        });
    }
    let load_error = |message: String| OperatorError::ModelLoad {
        path: path.to_owned(),
        message,
    };
    let mut builder = Session::builder(environment()?).map_err(|e| load_error(e.to_string()))?;
    if threads > 0 {
        builder = builder
            .with_intra_threads(threads)
            .map_err(|e| load_error(e.to_string()))?;
    }
    if !spin_wait {
        builder = builder
            .with_intra_op_spinning(false)
            .map_err(|e| load_error(e.to_string()))?;
    }
    builder
        .commit_from_file(path)
        .map_err(|e| load_error(e.to_string()))
}

/// One custom metadata entry of a model: what Argus's conversion scripts write beside the
/// weights (labels, alphabet, input size, normalisation), so a model file carries its own
/// contract. A missing entry is an error naming the file, the key and `remedy`.
pub fn custom_metadata(
    session: &Session,
    path: &Path,
    key: &str,
    remedy: &str,
) -> Result<String, OperatorError> {
    let load_error = |message: String| OperatorError::ModelLoad {
        path: path.to_owned(),
        message,
    };
    session
        .metadata()
        .map_err(|e| load_error(format!("cannot read the metadata: {e}")))?
        .custom(key)
        .ok_or_else(|| load_error(format!("the model has no `{key}` metadata; {remedy}")))
}

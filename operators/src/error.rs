use std::path::PathBuf;

/// Errors of the operators. Each names the file, model or tensor it is about, so a user
/// who sees it in a log knows what to fix without reading our code.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("model file {path} is missing ({hint})")]
    MissingModel { path: PathBuf, hint: String },

    #[error("ONNX Runtime is not available: {0}")]
    Runtime(String),

    #[error("could not load model {path}: {message}")]
    ModelLoad { path: PathBuf, message: String },

    #[error("inference with {model} failed: {message}")]
    Inference { model: String, message: String },

    #[error("model {model} returned an unexpected output: {message}")]
    UnexpectedOutput { model: String, message: String },

    #[error("tensor {name} is missing from {path}")]
    MissingTensor { path: PathBuf, name: String },

    #[error("tensor {name} in {path} has shape {actual:?}, expected {expected:?}")]
    TensorShape {
        path: PathBuf,
        name: String,
        expected: Vec<i64>,
        actual: Vec<i64>,
    },

    #[error("{path} describes a model this operator does not support: {message}")]
    UnsupportedModel { path: PathBuf, message: String },

    #[error("invalid input: {0}")]
    InvalidInput(String),

    #[error("image processing failed: {0}")]
    ImageProcessing(#[from] opencv::Error),
}

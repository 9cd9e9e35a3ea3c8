//! Reading Hugging Face checkpoint folders: the files every `tch` operator needs
//! (`config.json`, safetensors weights in one file or in shards) and the device to put them on.
//!
//! Each operator writes its own forward pass, but they all load weights the same way: by
//! their checkpoint name, with the shape the config implies checked before use, so a
//! mismatched file fails at load time with an error naming the tensor rather than with a
//! libtorch shape error in the middle of inference.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tch::{Device, Kind, Tensor};

use crate::OperatorError;

/// Sets `tokenizer` to cut its encodings at `max_tokens` (special tokens included) and to pad
/// nothing, as `transformers` tokenizes one text. Errors say why in a sentence.
pub(crate) fn truncate_tokenizer(
    tokenizer: &mut tokenizers::Tokenizer,
    max_tokens: usize,
) -> Result<(), String> {
    // `tokenizers` subtracts these from the limit unchecked, so a smaller limit would panic.
    let special = tokenizer.get_post_processor().map_or(0, |processor| {
        tokenizers::PostProcessor::added_tokens(processor, false)
    });
    if max_tokens <= special {
        return Err(format!(
            "a limit of {max_tokens} tokens leaves no room beside {special} special tokens"
        ));
    }
    tokenizer
        .with_padding(None)
        .with_truncation(Some(tokenizers::TruncationParams {
            max_length: max_tokens,
            ..tokenizers::TruncationParams::default()
        }))
        .map_err(|e| format!("cannot truncate to {max_tokens} tokens: {e}"))?;
    Ok(())
}

/// The model's hyper-parameters.
pub const CONFIG_FILE: &str = "config.json";
/// The `tokenizers` tokenizer.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The weights of an unsharded checkpoint, as `save_pretrained` names them.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The index of a sharded checkpoint: `weight_map` names the shard holding each tensor.
pub const WEIGHTS_INDEX_FILE: &str = "model.safetensors.index.json";

/// Parses a device name from configuration: `cpu`, `cuda` (= `cuda:0`), `cuda:N`, or `auto`
/// (the first GPU when libtorch sees one, else the CPU). Asking for a GPU that libtorch
/// cannot see is an error here rather than a crash at the first tensor moved there.
pub fn device_from_name(name: &str) -> Result<Device, OperatorError> {
    let index = match name.trim().to_ascii_lowercase().as_str() {
        "cpu" => return Ok(Device::Cpu),
        "auto" => return Ok(Device::cuda_if_available()),
        "cuda" => 0,
        other => other
            .strip_prefix("cuda:")
            .and_then(|index| index.parse::<usize>().ok())
            .ok_or_else(|| {
                OperatorError::InvalidInput(format!(
                    "unknown device {name:?}; expected cpu, cuda, cuda:N or auto"
                ))
            })?,
    };
    let visible = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
    if index >= visible {
        return Err(OperatorError::InvalidInput(format!(
            "device {name:?} requested but libtorch sees {visible} CUDA device(s)"
        )));
    }
    Ok(Device::Cuda(index))
}

/// `dir/name` if it is a file; otherwise [`OperatorError::MissingModel`] with `hint`, which
/// should say what the folder needs and what installs it.
pub fn required_file(dir: &Path, name: &str, hint: &str) -> Result<PathBuf, OperatorError> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(OperatorError::MissingModel {
            path,
            hint: hint.into(),
        })
    }
}

/// Parses the JSON file at `path`; unreadable or malformed files are
/// [`OperatorError::ModelLoad`] naming it.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, OperatorError> {
    let load_error = |message: String| OperatorError::ModelLoad {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| load_error(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| load_error(e.to_string()))
}

/// The tensors of a safetensors checkpoint, handed out once each by name with their shape
/// checked. Tensors are read into host memory at open and moved to the device as they are
/// taken, so what a model does not take is freed with the checkpoint.
pub struct Checkpoint {
    /// What errors name: the weights file, or the shard index of a sharded checkpoint.
    source: PathBuf,
    tensors: HashMap<String, Tensor>,
    device: Device,
}

impl Checkpoint {
    /// Opens one safetensors file.
    pub fn open(path: &Path, device: Device) -> Result<Self, OperatorError> {
        Ok(Self {
            source: path.to_owned(),
            tensors: read_safetensors(path)?.into_iter().collect(),
            device,
        })
    }

    /// Opens the weights of the checkpoint folder `dir`: [`WEIGHTS_FILE`], or else every shard
    /// that [`WEIGHTS_INDEX_FILE`] lists. Without either, [`OperatorError::MissingModel`]
    /// names the single file and carries `hint`.
    pub fn open_dir(dir: &Path, device: Device, hint: &str) -> Result<Self, OperatorError> {
        let single = dir.join(WEIGHTS_FILE);
        let index = dir.join(WEIGHTS_INDEX_FILE);
        if single.is_file() || !index.is_file() {
            return Self::open(&required_file(dir, WEIGHTS_FILE, hint)?, device);
        }
        #[derive(Deserialize)]
        struct Index {
            weight_map: HashMap<String, String>,
        }
        let shards: BTreeSet<String> = read_json::<Index>(&index)?
            .weight_map
            .into_values()
            .collect();
        let mut tensors = HashMap::new();
        for shard in shards {
            let path = required_file(dir, &shard, hint)?;
            tensors.extend(read_safetensors(&path)?);
        }
        Ok(Self {
            source: index,
            tensors,
            device,
        })
    }

    /// The file errors about this checkpoint name.
    pub fn path(&self) -> &Path {
        &self.source
    }

    /// Whether the checkpoint still holds a tensor called `name` (one not yet taken).
    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The tensor `name` as float32 on the device, if it has shape `expected`. Each tensor
    /// can be taken once; a second take reports it missing.
    pub fn take(&mut self, name: &str, expected: &[i64]) -> Result<Tensor, OperatorError> {
        let tensor = self
            .tensors
            .remove(name)
            .ok_or_else(|| OperatorError::MissingTensor {
                path: self.source.clone(),
                name: name.to_owned(),
            })?;
        if tensor.size() != expected {
            return Err(OperatorError::TensorShape {
                path: self.source.clone(),
                name: name.to_owned(),
                expected: expected.to_vec(),
                actual: tensor.size(),
            });
        }
        // Half-precision checkpoints are widened: the parity tests hold float32 to 1e-4.
        tensor
            .f_to_kind(Kind::Float)
            .and_then(|t| t.f_to_device(self.device))
            .map_err(|e| OperatorError::ModelLoad {
                path: self.source.clone(),
                message: format!("cannot move tensor {name} to {:?}: {e}", self.device),
            })
    }
}

fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>, OperatorError> {
    Tensor::read_safetensors(path).map_err(|e| OperatorError::ModelLoad {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

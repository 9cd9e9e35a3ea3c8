//! Sentence embeddings from a Hugging Face BERT checkpoint, run with `tch` (libtorch).
//!
//! [`TextEmbedder`] reproduces what `sentence-transformers` computes for models such as
//! all-MiniLM-L6-v2: the BERT encoder, mean pooling over the real (non-padding) tokens and
//! L2 normalisation, so cosine similarity is a plain dot product. It reads the checkpoint
//! folder as the Hub ships it — `config.json`, `model.safetensors`, `tokenizer.json`, plus
//! the optional sentence-transformers files — so any BERT-family sentence model whose pooling
//! is the mean works without conversion.

mod bert;

use std::path::Path;

use serde::Deserialize;
use tch::{Device, Kind, TchError, Tensor};
use tokenizers::{Encoding, Tokenizer};

use crate::checkpoint::{read_json, required_file, truncate_tokenizer};
use crate::OperatorError;
use bert::{Bert, BertConfig};

/// File names inside the checkpoint folder, as the Hugging Face Hub lays them out.
pub use crate::checkpoint::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
/// sentence-transformers' own files; both optional.
pub const POOLING_CONFIG_FILE: &str = "1_Pooling/config.json";
pub const SENTENCE_CONFIG_FILE: &str = "sentence_bert_config.json";

/// Token limit when `sentence_bert_config.json` gives none: all-MiniLM-L6-v2's `max_seq_length`.
/// Longer texts are cut, as sentence-transformers does; the model only ever saw 256 in training.
pub const DEFAULT_MAX_TOKENS: usize = 256;

/// Texts per forward pass. Bounds memory for long inputs; texts are batched with others of
/// similar length so little compute goes to padding.
const BATCH_SIZE: usize = 32;

const MISSING_HINT: &str = "a BERT checkpoint folder needs config.json, model.safetensors and \
                            tokenizer.json; deploy/setup.sh installs all-MiniLM-L6-v2";

/// A loaded sentence-embedding model. It is `Send` but not `Sync`, because `tch` tensors are
/// not: move it into the worker that runs it, or put it behind a `Mutex`.
pub struct TextEmbedder {
    /// The checkpoint folder's name, for error messages.
    name: String,
    tokenizer: Tokenizer,
    bert: Bert,
    dimension: usize,
    max_tokens: usize,
    device: Device,
}

impl TextEmbedder {
    /// Loads the checkpoint in `dir` onto `device`.
    pub fn load(dir: &Path, device: Device) -> Result<Self, OperatorError> {
        let config_path = required_file(dir, CONFIG_FILE, MISSING_HINT)?;
        let weights_path = required_file(dir, WEIGHTS_FILE, MISSING_HINT)?;
        let tokenizer_path = required_file(dir, TOKENIZER_FILE, MISSING_HINT)?;

        let config = BertConfig::load(&config_path)?;
        check_pooling(&dir.join(POOLING_CONFIG_FILE))?;
        let max_tokens = max_tokens(&dir.join(SENTENCE_CONFIG_FILE))?
            .min(usize::try_from(config.max_position_embeddings).unwrap_or(0));
        let tokenizer = load_tokenizer(&tokenizer_path, max_tokens)?;
        let bert = Bert::load(&config, &weights_path, device)?;
        Ok(Self {
            name: dir.file_name().map_or_else(
                || dir.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            tokenizer,
            bert,
            dimension: usize::try_from(config.hidden_size).unwrap_or(0),
            max_tokens,
            device,
        })
    }

    /// Length of every embedding (the model's hidden size; 384 for all-MiniLM-L6-v2).
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Tokens per text, counting `[CLS]` and `[SEP]`; the rest of a longer text is ignored.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// One unit-length embedding per text, in order. An empty text is embedded too (from its
    /// `[CLS]` and `[SEP]` tokens alone), as sentence-transformers does.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, OperatorError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| self.inference_error(format!("tokenization failed: {e}")))?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());

        let mut embeddings = vec![Vec::new(); texts.len()];
        for batch in order.chunks(BATCH_SIZE) {
            let batch_encodings: Vec<&Encoding> = batch.iter().map(|&i| &encodings[i]).collect();
            let rows = tch::no_grad(|| self.embed_batch(&batch_encodings))
                .map_err(|e| self.inference_error(e.to_string()))?;
            for (&i, row) in batch.iter().zip(rows) {
                embeddings[i] = row;
            }
        }
        Ok(embeddings)
    }

    fn embed_batch(&self, encodings: &[&Encoding]) -> Result<Vec<Vec<f32>>, TchError> {
        // Padded here rather than by the tokenizer: tokenizer.json files often carry a fixed
        // padding length (128 for all-MiniLM-L6-v2) that would waste work on short texts.
        let tokens = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut ids = vec![0_i64; encodings.len() * tokens];
        let mut type_ids = vec![0_i64; encodings.len() * tokens];
        let mut mask = vec![0_f32; encodings.len() * tokens];
        for (row, encoding) in encodings.iter().enumerate() {
            let start = row * tokens;
            for (column, (&id, &type_id)) in encoding
                .get_ids()
                .iter()
                .zip(encoding.get_type_ids())
                .enumerate()
            {
                ids[start + column] = i64::from(id);
                type_ids[start + column] = i64::from(type_id);
                mask[start + column] = 1.0;
            }
        }
        let shape = [encodings.len() as i64, tokens as i64];
        let to_device = |data: Tensor| data.f_view(shape)?.f_to_device(self.device);
        let ids = to_device(Tensor::f_from_slice(&ids)?)?;
        let type_ids = to_device(Tensor::f_from_slice(&type_ids)?)?;
        let mask = to_device(Tensor::f_from_slice(&mask)?)?;

        let states = self.bert.forward(&ids, &type_ids, &mask)?;
        let embeddings = mean_pool_normalized(&states, &mask)?.f_to_device(Device::Cpu)?;
        Vec::<Vec<f32>>::try_from(&embeddings)
    }

    fn inference_error(&self, message: String) -> OperatorError {
        OperatorError::Inference {
            model: self.name.clone(),
            message,
        }
    }
}

/// sentence-transformers' `Pooling(mean)` then `Normalize`: the average of the token states
/// under `mask`, scaled to unit length. The clamps are theirs, so results match to the bit.
fn mean_pool_normalized(states: &Tensor, mask: &Tensor) -> Result<Tensor, TchError> {
    let summed = states
        .f_mul(&mask.f_unsqueeze(-1)?)?
        .f_sum_dim_intlist(1, false, Kind::Float)?;
    let counts = mask
        .f_sum_dim_intlist(1, true, Kind::Float)?
        .f_clamp_min(1e-9)?;
    let mean = summed.f_div(&counts)?;
    let norm = mean.f_norm_scalaropt_dim(2, 1, true)?.f_clamp_min(1e-12)?;
    mean.f_div(&norm)
}

/// Refuses checkpoints that sentence-transformers would pool other than by the mean (CLS,
/// max, last token, ...): they would load and give plausible but wrong vectors. A folder
/// without the file is a bare BERT checkpoint, for which mean pooling is the usual choice.
fn check_pooling(path: &Path) -> Result<(), OperatorError> {
    if !path.is_file() {
        return Ok(());
    }
    let config: serde_json::Map<String, serde_json::Value> = read_json(path)?;
    let modes: Vec<&str> = config
        .iter()
        .filter(|(key, value)| key.starts_with("pooling_mode_") && value.as_bool() == Some(true))
        .map(|(key, _)| key.as_str())
        .collect();
    if modes != ["pooling_mode_mean_tokens"] {
        return Err(OperatorError::UnsupportedModel {
            path: path.to_owned(),
            message: format!(
                "pooling modes {modes:?}; only pooling_mode_mean_tokens is implemented"
            ),
        });
    }
    Ok(())
}

/// The token limit from `sentence_bert_config.json`, or [`DEFAULT_MAX_TOKENS`] without one.
fn max_tokens(path: &Path) -> Result<usize, OperatorError> {
    #[derive(Deserialize)]
    struct SentenceConfig {
        max_seq_length: Option<usize>,
    }
    if !path.is_file() {
        return Ok(DEFAULT_MAX_TOKENS);
    }
    let config: SentenceConfig = read_json(path)?;
    Ok(config.max_seq_length.unwrap_or(DEFAULT_MAX_TOKENS))
}

/// The tokenizer with our truncation in place of the file's: tokenizer.json often says 128
/// (all-MiniLM-L6-v2's does), while sentence-transformers truncates at `max_seq_length`.
fn load_tokenizer(path: &Path, max_tokens: usize) -> Result<Tokenizer, OperatorError> {
    let load_error = |message: String| OperatorError::ModelLoad {
        path: path.to_owned(),
        message,
    };
    let mut tokenizer = Tokenizer::from_file(path).map_err(|e| load_error(e.to_string()))?;
    truncate_tokenizer(&mut tokenizer, max_tokens).map_err(load_error)?;
    Ok(tokenizer)
}

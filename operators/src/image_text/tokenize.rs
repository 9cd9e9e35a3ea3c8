//! Texts to token batches as each family's processor makes them, and the position each text
//! is pooled at.
//!
//! CLIP: the tokenizer as it is (bos … eos), cut at `max_position_embeddings`, padded to the
//! longest text of the batch (the causal mask keeps padding out of every real token), pooled
//! at its end token. SigLIP: eos appended, cut at and padded to 64 tokens (or fewer when the
//! position table is shorter), as the processor's `padding="max_length"`: the model pools the
//! last position, so it only ever saw texts of that length.

use std::path::{Path, PathBuf};

use tokenizers::{Encoding, Tokenizer};

use super::config::TextConfig;
use super::ImageTextFamily;
use crate::checkpoint::truncate_tokenizer;
use crate::OperatorError;

/// SigLIP's processor length (`padding="max_length"`, the tokenizer's `model_max_length`).
pub(super) const SIGLIP_TEXT_LENGTH: usize = 64;

/// Where a text's embedding is read from the text tower's states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pooling {
    /// CLIP: the first position holding this (end-of-text) id.
    FirstEos(i64),
    /// CLIP checkpoints whose config says `eos_token_id` 2, from before `transformers` read
    /// the real one: the position of the highest id, which OpenAI's end token is.
    HighestId,
    /// SigLIP: the last position.
    Last,
}

impl Pooling {
    /// The position `transformers` pools `ids` (one unpadded text) at. CLIP's rules, like
    /// `transformers`' `argmax`, take the first match, and position 0 when nothing matches.
    pub(super) fn position(self, ids: &[i64], padded_length: usize) -> usize {
        match self {
            Self::FirstEos(eos) => ids.iter().position(|&id| id == eos).unwrap_or(0),
            Self::HighestId => {
                ids.iter()
                    .enumerate()
                    .fold(
                        (0, i64::MIN),
                        |best, (i, &id)| {
                            if id > best.1 {
                                (i, id)
                            } else {
                                best
                            }
                        },
                    )
                    .0
            }
            Self::Last => padded_length.saturating_sub(1),
        }
    }
}

/// A padded batch of texts, row-major `[rows, length]`.
pub(super) struct TokenBatch {
    pub(super) ids: Vec<i64>,
    /// 1 for a text's own tokens, 0 for padding.
    pub(super) mask: Vec<i64>,
    pub(super) rows: usize,
    pub(super) length: usize,
    /// Per row, the position its embedding is pooled at.
    pub(super) pool: Vec<i64>,
}

pub(super) struct TextTokenizer {
    tokenizer: Tokenizer,
    path: PathBuf,
    pooling: Pooling,
    pad_id: i64,
    /// SigLIP pads every text to this; CLIP pads to the longest in the batch.
    fixed_length: Option<usize>,
}

impl TextTokenizer {
    /// `tokenizer.json` at `path`, cut and padded as `family`'s processor does.
    pub(super) fn load(
        path: &Path,
        family: ImageTextFamily,
        config: &TextConfig,
    ) -> Result<Self, OperatorError> {
        let load_error = |message: String| OperatorError::ModelLoad {
            path: path.to_owned(),
            message,
        };
        let mut tokenizer = Tokenizer::from_file(path).map_err(|e| load_error(e.to_string()))?;
        let positions = usize::try_from(config.max_position_embeddings).unwrap_or(0);
        let (max_tokens, fixed_length, pooling) = match family {
            ImageTextFamily::Clip => {
                let pooling = if config.eos_token_id == 2 {
                    Pooling::HighestId
                } else {
                    Pooling::FirstEos(config.eos_token_id)
                };
                (positions, None, pooling)
            }
            ImageTextFamily::Siglip => {
                let length = SIGLIP_TEXT_LENGTH.min(positions);
                (length, Some(length), Pooling::Last)
            }
        };
        // The tokenizer's own padding token if it names one (SigLIP 2's Gemma tokenizer does),
        // else the config's.
        let pad_id = tokenizer
            .get_padding()
            .map_or(config.pad_token_id, |padding| i64::from(padding.pad_id));
        truncate_tokenizer(&mut tokenizer, max_tokens).map_err(load_error)?;
        let this = Self {
            tokenizer,
            path: path.to_owned(),
            pooling,
            pad_id,
            fixed_length,
        };
        this.check_end_token(config)?;
        Ok(this)
    }

    /// CLIP pools at the end token: a tokenizer that does not add the one the config names
    /// would give every text the embedding of its first token. Refused here instead.
    fn check_end_token(&self, config: &TextConfig) -> Result<(), OperatorError> {
        let Pooling::FirstEos(eos) = self.pooling else {
            return Ok(());
        };
        let ids = self
            .encode(&["a"])
            .map_err(|message| OperatorError::ModelLoad {
                path: self.path.clone(),
                message,
            })?;
        if !ids[0].get_ids().iter().any(|&id| i64::from(id) == eos) {
            return Err(OperatorError::UnsupportedModel {
                path: self.path.clone(),
                message: format!(
                    "the tokenizer does not end texts with eos_token_id {eos} of config.json \
                     (vocabulary of {}), where CLIP reads the text's embedding",
                    config.vocab_size
                ),
            });
        }
        Ok(())
    }

    /// Each text's tokens, cut to the model's limit, unpadded.
    pub(super) fn encode(&self, texts: &[&str]) -> Result<Vec<Encoding>, String> {
        self.tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| format!("tokenization failed: {e}"))
    }

    /// `encodings` padded into one batch.
    pub(super) fn batch(&self, encodings: &[&Encoding]) -> TokenBatch {
        let longest = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
        let length = self.fixed_length.unwrap_or(longest).max(1);
        let mut batch = TokenBatch {
            ids: vec![self.pad_id; encodings.len() * length],
            mask: vec![0; encodings.len() * length],
            rows: encodings.len(),
            length,
            pool: Vec::with_capacity(encodings.len()),
        };
        for (row, encoding) in encodings.iter().enumerate() {
            let ids: Vec<i64> = encoding.get_ids().iter().map(|&id| i64::from(id)).collect();
            let start = row * length;
            batch.ids[start..start + ids.len()].copy_from_slice(&ids);
            batch.mask[start..start + ids.len()].fill(1);
            batch.pool.push(self.pooling.position(&ids, length) as i64);
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_pools_at_the_end_token_and_legacy_configs_at_the_highest_id() {
        // bos 49406, "a photo", eos 49407, then padding with eos.
        let ids = [49406, 320, 1125, 49407];
        assert_eq!(Pooling::FirstEos(49407).position(&ids, 6), 3);
        assert_eq!(Pooling::HighestId.position(&ids, 6), 3);
        // An end token of a lower id than some word: only the first-eos rule finds it.
        let ids = [2, 40, 41, 1];
        assert_eq!(Pooling::FirstEos(1).position(&ids, 4), 3);
        assert_eq!(Pooling::HighestId.position(&ids, 4), 2);
        // Ties go to the first, and no end token to position 0, as transformers' argmax.
        assert_eq!(Pooling::HighestId.position(&[5, 9, 9], 3), 1);
        assert_eq!(Pooling::FirstEos(7).position(&[5, 9, 9], 3), 0);
        assert_eq!(Pooling::Last.position(&[5, 9], 16), 15);
    }
}

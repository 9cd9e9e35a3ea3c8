//! The fields of a Llama-family `config.json` the decoder needs, and the checks that refuse
//! checkpoints whose forward pass differs from the one in [`super::model`].

use std::path::Path;

use serde::Deserialize;

use crate::checkpoint::read_json;
use crate::OperatorError;

/// `eos_token_id` is one id in most configs and a list in newer ones (Llama 3 lists several).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    pub(super) fn to_vec(&self) -> Vec<u32> {
        match self {
            Self::One(id) => vec![*id],
            Self::Many(ids) => ids.clone(),
        }
    }
}

/// `rope_scaling` (transformers 4) or `rope_parameters` (transformers 5). Only the plain
/// rotary embedding is implemented; the key is `type` in older files.
#[derive(Debug, Deserialize)]
struct RopeParameters {
    #[serde(alias = "type")]
    rope_type: Option<String>,
    rope_theta: Option<f64>,
}

#[derive(Debug, Deserialize)]
pub(super) struct LlamaConfig {
    model_type: String,
    pub(super) vocab_size: i64,
    pub(super) hidden_size: i64,
    pub(super) intermediate_size: i64,
    pub(super) num_hidden_layers: i64,
    pub(super) num_attention_heads: i64,
    /// Absent means plain multi-head attention: as many key-value heads as query heads.
    num_key_value_heads: Option<i64>,
    head_dim: Option<i64>,
    pub(super) max_position_embeddings: i64,
    pub(super) rms_norm_eps: f64,
    #[serde(default = "silu")]
    hidden_act: String,
    rope_theta: Option<f64>,
    rope_scaling: Option<RopeParameters>,
    rope_parameters: Option<RopeParameters>,
    #[serde(default)]
    pub(super) tie_word_embeddings: bool,
    /// Llama: biases on all four attention projections.
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    pub(super) mlp_bias: bool,
    /// Qwen2 attends within a window when this is set, which is not implemented.
    #[serde(default)]
    use_sliding_window: bool,
    /// transformers 5 names each layer's attention; only `full_attention` is implemented.
    #[serde(default)]
    layer_types: Vec<String>,
    pub(super) eos_token_id: Option<TokenIds>,
}

fn silu() -> String {
    "silu".into()
}

/// Which projections of the attention block carry a bias.
#[derive(Debug, Clone, Copy)]
pub(super) struct AttentionBias {
    pub(super) qkv: bool,
    pub(super) output: bool,
}

impl LlamaConfig {
    pub(super) fn load(path: &Path) -> Result<Self, OperatorError> {
        let config: Self = read_json(path)?;
        config.check(path)?;
        Ok(config)
    }

    pub(super) fn key_value_heads(&self) -> i64 {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub(super) fn head_dim(&self) -> i64 {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// The rotary base; transformers' default when the config names none.
    pub(super) fn rope_theta(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|p| p.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(10_000.0)
    }

    pub(super) fn attention_bias(&self) -> AttentionBias {
        match self.model_type.as_str() {
            // Qwen2 is Llama with biased query, key and value projections.
            "qwen2" => AttentionBias {
                qkv: true,
                output: false,
            },
            _ => AttentionBias {
                qkv: self.attention_bias,
                output: self.attention_bias,
            },
        }
    }

    /// Rejects checkpoints whose forward pass differs from the one implemented, rather than
    /// letting them load and generate plausible but wrong text.
    fn check(&self, path: &Path) -> Result<(), OperatorError> {
        let unsupported = |message: String| {
            Err(OperatorError::UnsupportedModel {
                path: path.to_owned(),
                message,
            })
        };
        if !matches!(self.model_type.as_str(), "llama" | "qwen2") {
            return unsupported(format!(
                "model_type is {:?}; only \"llama\" and \"qwen2\" are implemented",
                self.model_type
            ));
        }
        if self.use_sliding_window {
            return unsupported(
                "use_sliding_window is set; sliding-window attention is not implemented".into(),
            );
        }
        if let Some(other) = self.layer_types.iter().find(|t| *t != "full_attention") {
            return unsupported(format!(
                "layer_types has {other:?}; only \"full_attention\" is implemented"
            ));
        }
        if self.hidden_act != "silu" {
            return unsupported(format!(
                "hidden_act {:?}; only \"silu\" (SwiGLU) is implemented",
                self.hidden_act
            ));
        }
        for parameters in [&self.rope_scaling, &self.rope_parameters]
            .into_iter()
            .flatten()
        {
            match parameters.rope_type.as_deref() {
                None | Some("default") => {}
                Some(other) => {
                    return unsupported(format!(
                        "rope type {other:?}; only the default rotary embedding is implemented"
                    ))
                }
            }
        }
        let (heads, kv_heads) = (self.num_attention_heads, self.key_value_heads());
        if heads <= 0 || kv_heads <= 0 || heads % kv_heads != 0 {
            return unsupported(format!(
                "{heads} attention heads do not share {kv_heads} key-value heads evenly"
            ));
        }
        if self.head_dim() <= 0 || self.head_dim() % 2 != 0 {
            return unsupported(format!(
                "head dimension {} is not a positive even number, as rotary embeddings need",
                self.head_dim()
            ));
        }
        Ok(())
    }
}

//! `config.json` of a two-tower image-text model: which family it is, the text tower's
//! hyper-parameters (with `transformers`' defaults for the fields Hub configs leave out), the
//! vision tower's (read by [`VisionConfig`]) and the length of the shared embedding.

use std::path::Path;

use serde::Deserialize;

use super::ImageTextFamily;
use crate::checkpoint::read_json;
use crate::vision::{Activation, VisionConfig};
use crate::OperatorError;

/// The text tower of a CLIP or SigLIP model.
#[derive(Debug, Clone)]
pub(super) struct TextConfig {
    pub(super) vocab_size: i64,
    pub(super) hidden_size: i64,
    pub(super) intermediate_size: i64,
    pub(super) num_hidden_layers: i64,
    pub(super) num_attention_heads: i64,
    pub(super) max_position_embeddings: i64,
    pub(super) activation: Activation,
    pub(super) layer_norm_eps: f64,
    pub(super) pad_token_id: i64,
    /// CLIP pools the text at this token (see [`super::tokenize::Pooling`]).
    pub(super) eos_token_id: i64,
}

#[derive(Deserialize)]
struct RawTextConfig {
    vocab_size: Option<i64>,
    hidden_size: Option<i64>,
    intermediate_size: Option<i64>,
    num_hidden_layers: Option<i64>,
    num_attention_heads: Option<i64>,
    max_position_embeddings: Option<i64>,
    hidden_act: Option<String>,
    layer_norm_eps: Option<f64>,
    pad_token_id: Option<i64>,
    eos_token_id: Option<i64>,
    /// SigLIP's text head output; its hidden size when absent.
    projection_size: Option<i64>,
}

#[derive(Deserialize)]
struct RawModelConfig {
    #[serde(default)]
    model_type: String,
    text_config: Option<serde_json::Value>,
    vision_config: Option<serde_json::Value>,
    /// CLIP's shared embedding length (the text config's own `projection_dim` is unused).
    projection_dim: Option<i64>,
    logit_scale: Option<f64>,
    logit_bias: Option<f64>,
}

/// Everything [`super::ImageTextEncoder`] reads from `config.json`.
#[derive(Debug, Clone)]
pub(super) struct ModelConfig {
    pub(super) family: ImageTextFamily,
    pub(super) text: TextConfig,
    pub(super) vision: VisionConfig,
    /// Length of both towers' outputs.
    pub(super) dimension: i64,
    /// The learned `logit_scale` (before `exp`) and `logit_bias`, when an exporter wrote them
    /// into `config.json`; ONNX folders have no other place for them.
    pub(super) logit_scale: Option<f64>,
    pub(super) logit_bias: Option<f64>,
}

impl ModelConfig {
    /// Reads `config.json`, refusing anything but a full CLIP or SigLIP model.
    pub(super) fn load(path: &Path) -> Result<Self, OperatorError> {
        let unsupported = |message: String| OperatorError::UnsupportedModel {
            path: path.to_owned(),
            message,
        };
        let raw: RawModelConfig = read_json(path)?;
        let family = match raw.model_type.as_str() {
            "clip" => ImageTextFamily::Clip,
            "siglip" => ImageTextFamily::Siglip,
            other => {
                return Err(unsupported(format!(
                    "model_type {other:?}; image-text embeddings need a full two-tower \"clip\" \
                     or \"siglip\" model"
                )))
            }
        };
        let text = raw.text_config.ok_or_else(|| {
            unsupported(format!(
                "model_type {:?} without a text_config",
                raw.model_type
            ))
        })?;
        let text: RawTextConfig =
            serde_json::from_value(text).map_err(|e| OperatorError::ModelLoad {
                path: path.to_owned(),
                message: format!("text config: {e}"),
            })?;
        // Also refuses a config without a vision_config.
        let vision = VisionConfig::load(path)?;
        let use_head = raw
            .vision_config
            .as_ref()
            .and_then(|v| v.get("vision_use_head"))
            .and_then(serde_json::Value::as_bool);
        if family == ImageTextFamily::Siglip && use_head == Some(false) {
            return Err(unsupported(
                "vision_use_head is false: SigLIP's image embedding is its attention-pooling \
                 head's output"
                    .into(),
            ));
        }

        let clip = family == ImageTextFamily::Clip;
        let hidden_act = text.hidden_act.unwrap_or_else(|| {
            if clip {
                "quick_gelu"
            } else {
                "gelu_pytorch_tanh"
            }
            .into()
        });
        let activation = Activation::from_name(&hidden_act).ok_or_else(|| {
            unsupported(format!(
                "text hidden_act {hidden_act:?}; only gelu, gelu_pytorch_tanh and quick_gelu \
                 are implemented"
            ))
        })?;
        let hidden_size = text.hidden_size.unwrap_or(if clip { 512 } else { 768 });
        let config = TextConfig {
            vocab_size: text.vocab_size.unwrap_or(if clip { 49408 } else { 32000 }),
            hidden_size,
            intermediate_size: text
                .intermediate_size
                .unwrap_or(if clip { 2048 } else { 3072 }),
            num_hidden_layers: text.num_hidden_layers.unwrap_or(12),
            num_attention_heads: text
                .num_attention_heads
                .unwrap_or(if clip { 8 } else { 12 }),
            max_position_embeddings: text.max_position_embeddings.unwrap_or(if clip {
                77
            } else {
                64
            }),
            activation,
            layer_norm_eps: text
                .layer_norm_eps
                .unwrap_or(if clip { 1e-5 } else { 1e-6 }),
            pad_token_id: text.pad_token_id.unwrap_or(1),
            eos_token_id: text.eos_token_id.unwrap_or(49407),
        };
        if config.num_attention_heads <= 0 || config.hidden_size % config.num_attention_heads != 0 {
            return Err(unsupported(format!(
                "text hidden_size {} does not split into {} attention heads",
                config.hidden_size, config.num_attention_heads
            )));
        }
        if config.max_position_embeddings <= 0 {
            return Err(unsupported(format!(
                "text max_position_embeddings {} leaves no room for a token",
                config.max_position_embeddings
            )));
        }
        let dimension = if clip {
            raw.projection_dim.unwrap_or(512)
        } else {
            // SigLIP has no projection: the text head maps into the vision tower's width.
            let projection = text.projection_size.unwrap_or(hidden_size);
            if projection != vision.hidden_size {
                return Err(unsupported(format!(
                    "the text head's projection_size {projection} differs from the vision \
                     hidden_size {}: the two towers would not share one embedding space",
                    vision.hidden_size
                )));
            }
            projection
        };
        if dimension <= 0 {
            return Err(unsupported(format!(
                "embedding length {dimension} is not positive"
            )));
        }
        Ok(Self {
            family,
            text: config,
            vision,
            dimension,
            logit_scale: raw.logit_scale,
            logit_bias: raw.logit_bias,
        })
    }
}

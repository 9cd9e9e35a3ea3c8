//! The BERT encoder (Hugging Face `BertModel`) written out with `tch` ops over a safetensors
//! checkpoint: embeddings, then post-norm transformer layers. Dropout is absent because this
//! is inference only; the pooler head is not loaded because sentence embeddings pool the
//! token states themselves.

use std::path::Path;

use serde::Deserialize;
use tch::{Device, Kind, TchError, Tensor};

use crate::checkpoint::{read_json, Checkpoint};
use crate::nn::{LayerNorm, Linear};
use crate::OperatorError;

/// The fields of `config.json` the encoder needs; everything else there is ignored.
#[derive(Debug, Deserialize)]
pub(super) struct BertConfig {
    model_type: String,
    #[serde(default)]
    architectures: Vec<String>,
    pub(super) hidden_size: i64,
    num_hidden_layers: i64,
    num_attention_heads: i64,
    intermediate_size: i64,
    hidden_act: String,
    layer_norm_eps: f64,
    pub(super) max_position_embeddings: i64,
    type_vocab_size: i64,
    vocab_size: i64,
    #[serde(default = "absolute")]
    position_embedding_type: String,
}

fn absolute() -> String {
    "absolute".into()
}

impl BertConfig {
    pub(super) fn load(path: &Path) -> Result<Self, OperatorError> {
        let config: Self = read_json(path)?;
        config.check(path)?;
        Ok(config)
    }

    /// Rejects checkpoints whose forward pass differs from the one written below, rather than
    /// letting them load and return plausible but wrong embeddings.
    fn check(&self, path: &Path) -> Result<(), OperatorError> {
        let unsupported = |message: String| {
            Err(OperatorError::UnsupportedModel {
                path: path.to_owned(),
                message,
            })
        };
        if self.model_type != "bert" {
            return unsupported(format!(
                "model_type is {:?}; only \"bert\" is implemented",
                self.model_type
            ));
        }
        if let Some(other) = self.architectures.iter().find(|a| !a.starts_with("Bert")) {
            return unsupported(format!("architecture {other:?} is not a BERT model"));
        }
        if self.position_embedding_type != "absolute" {
            return unsupported(format!(
                "position_embedding_type {:?}; only \"absolute\" is implemented",
                self.position_embedding_type
            ));
        }
        if gelu_approximation(&self.hidden_act).is_none() {
            return unsupported(format!(
                "hidden_act {:?}; only the GELU variants are implemented",
                self.hidden_act
            ));
        }
        if self.num_attention_heads <= 0 || self.hidden_size % self.num_attention_heads != 0 {
            return unsupported(format!(
                "hidden_size {} does not split into {} attention heads",
                self.hidden_size, self.num_attention_heads
            ));
        }
        Ok(())
    }
}

/// `tch`'s name for the GELU flavour of each Hugging Face `hidden_act`.
fn gelu_approximation(hidden_act: &str) -> Option<&'static str> {
    match hidden_act {
        "gelu" => Some("none"),
        "gelu_new" | "gelu_pytorch_tanh" => Some("tanh"),
        _ => None,
    }
}

/// The checkpoint's tensors by their `BertModel` names.
struct Weights {
    checkpoint: Checkpoint,
    /// `"bert."` when the file was saved from a task model (`BertForMaskedLM`, ...), which
    /// nests the encoder under that name; empty for a bare `BertModel`.
    prefix: &'static str,
}

impl Weights {
    fn open(path: &Path, device: Device) -> Result<Self, OperatorError> {
        let checkpoint = Checkpoint::open(path, device)?;
        let prefix = if checkpoint.has("bert.embeddings.word_embeddings.weight") {
            "bert."
        } else {
            ""
        };
        Ok(Self { checkpoint, prefix })
    }

    /// The tensor `name` (without prefix) as float32 on the device, if it has shape `expected`.
    fn take(&mut self, name: &str, expected: &[i64]) -> Result<Tensor, OperatorError> {
        self.checkpoint
            .take(&format!("{}{name}", self.prefix), expected)
    }

    fn linear(&mut self, name: &str, inputs: i64, outputs: i64) -> Result<Linear, OperatorError> {
        Ok(Linear::new(
            self.take(&format!("{name}.weight"), &[outputs, inputs])?,
            Some(self.take(&format!("{name}.bias"), &[outputs])?),
        ))
    }

    fn layer_norm(&mut self, name: &str, size: i64, eps: f64) -> Result<LayerNorm, OperatorError> {
        Ok(LayerNorm::new(
            self.take(&format!("{name}.weight"), &[size])?,
            self.take(&format!("{name}.bias"), &[size])?,
            eps,
        ))
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_output: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

pub(super) struct Bert {
    word_embeddings: Tensor,
    position_embeddings: Tensor,
    token_type_embeddings: Tensor,
    embeddings_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: i64,
    gelu: &'static str,
}

impl Bert {
    pub(super) fn load(
        config: &BertConfig,
        weights: &Path,
        device: Device,
    ) -> Result<Self, OperatorError> {
        let mut checkpoint = Weights::open(weights, device)?;
        let (hidden, eps) = (config.hidden_size, config.layer_norm_eps);
        let inner = config.intermediate_size;
        let word_embeddings = checkpoint.take(
            "embeddings.word_embeddings.weight",
            &[config.vocab_size, hidden],
        )?;
        let position_embeddings = checkpoint.take(
            "embeddings.position_embeddings.weight",
            &[config.max_position_embeddings, hidden],
        )?;
        let token_type_embeddings = checkpoint.take(
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size, hidden],
        )?;
        let embeddings_norm = checkpoint.layer_norm("embeddings.LayerNorm", hidden, eps)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                Ok(Layer {
                    query: checkpoint.linear(
                        &format!("{p}.attention.self.query"),
                        hidden,
                        hidden,
                    )?,
                    key: checkpoint.linear(&format!("{p}.attention.self.key"), hidden, hidden)?,
                    value: checkpoint.linear(
                        &format!("{p}.attention.self.value"),
                        hidden,
                        hidden,
                    )?,
                    attention_output: checkpoint.linear(
                        &format!("{p}.attention.output.dense"),
                        hidden,
                        hidden,
                    )?,
                    attention_norm: checkpoint.layer_norm(
                        &format!("{p}.attention.output.LayerNorm"),
                        hidden,
                        eps,
                    )?,
                    intermediate: checkpoint.linear(
                        &format!("{p}.intermediate.dense"),
                        hidden,
                        inner,
                    )?,
                    output: checkpoint.linear(&format!("{p}.output.dense"), inner, hidden)?,
                    output_norm: checkpoint.layer_norm(
                        &format!("{p}.output.LayerNorm"),
                        hidden,
                        eps,
                    )?,
                })
            })
            .collect::<Result<Vec<_>, OperatorError>>()?;
        Ok(Self {
            word_embeddings,
            position_embeddings,
            token_type_embeddings,
            embeddings_norm,
            layers,
            heads: config.num_attention_heads,
            // `check` accepted the config, so the activation is known.
            gelu: gelu_approximation(&config.hidden_act).unwrap_or("none"),
        })
    }

    /// Token states `[batch, tokens, hidden]` for token ids and type ids `[batch, tokens]`
    /// (int64); `mask` `[batch, tokens]` (float, 1 = token, 0 = padding) keeps padding out of
    /// every token's attention.
    pub(super) fn forward(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
    ) -> Result<Tensor, TchError> {
        let (batch, tokens) = ids.size2()?;
        let positions = Tensor::f_arange(tokens, (Kind::Int64, ids.device()))?;
        let embeddings = Tensor::f_embedding(&self.word_embeddings, ids, -1, false, false)?
            .f_add(&Tensor::f_embedding(
                &self.position_embeddings,
                &positions,
                -1,
                false,
                false,
            )?)?
            .f_add(&Tensor::f_embedding(
                &self.token_type_embeddings,
                type_ids,
                -1,
                false,
                false,
            )?)?;
        let mut x = self.embeddings_norm.forward(&embeddings)?;

        // Added to the attention scores: 0 for tokens, the most negative float for padding,
        // as `transformers` does (a boolean mask would turn an all-padding row into NaN).
        let attention_mask = mask
            .f_neg()?
            .f_add_scalar(1.0)?
            .f_mul_scalar(f64::from(f32::MIN))?
            .f_view([batch, 1, 1, tokens])?;
        let hidden = x.size()[2];
        let head_dim = hidden / self.heads;
        let split_heads = |t: Tensor| -> Result<Tensor, TchError> {
            t.f_view([batch, tokens, self.heads, head_dim])?
                .f_transpose(1, 2)
        };
        for layer in &self.layers {
            let query = split_heads(layer.query.forward(&x)?)?;
            let key = split_heads(layer.key.forward(&x)?)?;
            let value = split_heads(layer.value.forward(&x)?)?;
            let context = Tensor::f_scaled_dot_product_attention(
                &query,
                &key,
                &value,
                Some(&attention_mask),
                0.0,
                false,
                None,
                false,
            )?
            .f_transpose(1, 2)?
            .f_reshape([batch, tokens, hidden])?;
            x = layer
                .attention_norm
                .forward(&layer.attention_output.forward(&context)?.f_add(&x)?)?;
            let inner = layer.intermediate.forward(&x)?.f_gelu(self.gelu)?;
            x = layer
                .output_norm
                .forward(&layer.output.forward(&inner)?.f_add(&x)?)?;
        }
        Ok(x)
    }
}

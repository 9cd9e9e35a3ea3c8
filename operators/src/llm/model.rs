//! The Llama decoder (Hugging Face `LlamaForCausalLM`) written out with `tch` ops: token
//! embeddings, pre-norm layers of RMSNorm, rotary grouped-query attention and a SwiGLU MLP,
//! a final RMSNorm and the output head. Attention is computed explicitly (scores, softmax,
//! weighted sum) rather than fused, so its probabilities can be handed back to the caller.

use tch::{Kind, TchError, Tensor};

use super::config::LlamaConfig;
use crate::checkpoint::Checkpoint;
use crate::nn::Linear;
use crate::OperatorError;

/// Llama's RMSNorm: scale by the reciprocal root mean square, then by a learned weight.
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn load(
        checkpoint: &mut Checkpoint,
        name: &str,
        size: i64,
        eps: f64,
    ) -> Result<Self, OperatorError> {
        Ok(Self {
            weight: checkpoint.take(&format!("{name}.weight"), &[size])?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let variance = x
            .f_pow_tensor_scalar(2)?
            .f_mean_dim(-1, true, Kind::Float)?;
        x.f_mul(&variance.f_add_scalar(self.eps)?.f_rsqrt()?)?
            .f_mul(&self.weight)
    }
}

struct Layer {
    input_norm: RmsNorm,
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
    post_attention_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// Keys and values of every position seen so far, per layer, so each new token costs one
/// position's work instead of a pass over the whole sequence.
pub(super) struct KvCache {
    /// `[1, key-value heads, positions, head dim]` keys (rotated) and values per layer.
    layers: Vec<Option<(Tensor, Tensor)>>,
    positions: i64,
}

pub(super) struct Llama {
    embeddings: Tensor,
    layers: Vec<Layer>,
    norm: RmsNorm,
    /// The output head: the embedding matrix itself when the checkpoint ties them.
    lm_head: Tensor,
    heads: i64,
    kv_heads: i64,
    head_dim: i64,
    /// Rotary frequencies `1 / theta^(2i / head_dim)`, float32 as transformers computes them.
    inverse_frequencies: Tensor,
}

impl Llama {
    pub(super) fn load(
        config: &LlamaConfig,
        checkpoint: &mut Checkpoint,
    ) -> Result<Self, OperatorError> {
        let hidden = config.hidden_size;
        let (heads, kv_heads, head_dim) = (
            config.num_attention_heads,
            config.key_value_heads(),
            config.head_dim(),
        );
        let inner = config.intermediate_size;
        let eps = config.rms_norm_eps;
        let bias = config.attention_bias();
        let embeddings =
            checkpoint.take("model.embed_tokens.weight", &[config.vocab_size, hidden])?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let p = format!("model.layers.{i}");
                let attention = format!("{p}.self_attn");
                let mlp = format!("{p}.mlp");
                Ok(Layer {
                    input_norm: RmsNorm::load(
                        checkpoint,
                        &format!("{p}.input_layernorm"),
                        hidden,
                        eps,
                    )?,
                    query: Linear::load(
                        checkpoint,
                        &format!("{attention}.q_proj"),
                        hidden,
                        heads * head_dim,
                        bias.qkv,
                    )?,
                    key: Linear::load(
                        checkpoint,
                        &format!("{attention}.k_proj"),
                        hidden,
                        kv_heads * head_dim,
                        bias.qkv,
                    )?,
                    value: Linear::load(
                        checkpoint,
                        &format!("{attention}.v_proj"),
                        hidden,
                        kv_heads * head_dim,
                        bias.qkv,
                    )?,
                    output: Linear::load(
                        checkpoint,
                        &format!("{attention}.o_proj"),
                        heads * head_dim,
                        hidden,
                        bias.output,
                    )?,
                    post_attention_norm: RmsNorm::load(
                        checkpoint,
                        &format!("{p}.post_attention_layernorm"),
                        hidden,
                        eps,
                    )?,
                    gate: Linear::load(
                        checkpoint,
                        &format!("{mlp}.gate_proj"),
                        hidden,
                        inner,
                        config.mlp_bias,
                    )?,
                    up: Linear::load(
                        checkpoint,
                        &format!("{mlp}.up_proj"),
                        hidden,
                        inner,
                        config.mlp_bias,
                    )?,
                    down: Linear::load(
                        checkpoint,
                        &format!("{mlp}.down_proj"),
                        inner,
                        hidden,
                        config.mlp_bias,
                    )?,
                })
            })
            .collect::<Result<Vec<_>, OperatorError>>()?;
        let norm = RmsNorm::load(checkpoint, "model.norm", hidden, eps)?;
        let lm_head = if config.tie_word_embeddings {
            embeddings.shallow_clone()
        } else {
            checkpoint.take("lm_head.weight", &[config.vocab_size, hidden])?
        };
        let inverse_frequencies =
            rotary_inverse_frequencies(config.rope_theta(), head_dim, embeddings.device())
                .map_err(|e| OperatorError::ModelLoad {
                    path: checkpoint.path().to_owned(),
                    message: format!("cannot compute rotary frequencies: {e}"),
                })?;
        Ok(Self {
            embeddings,
            layers,
            norm,
            lm_head,
            heads,
            kv_heads,
            head_dim,
            inverse_frequencies,
        })
    }

    pub(super) fn hidden_size(&self) -> i64 {
        self.embeddings.size()[1]
    }

    pub(super) fn vocab_size(&self) -> i64 {
        self.embeddings.size()[0]
    }

    pub(super) fn new_cache(&self) -> KvCache {
        KvCache {
            layers: (0..self.layers.len()).map(|_| None).collect(),
            positions: 0,
        }
    }

    /// Embedding rows `[tokens, hidden]` for int64 ids `[tokens]`.
    pub(super) fn embed(&self, ids: &Tensor) -> Result<Tensor, TchError> {
        Tensor::f_embedding(&self.embeddings, ids, -1, false, false)
    }

    /// Runs `inputs` (`[1, tokens, hidden]` embeddings) at the positions after those in
    /// `cache`, appending their keys and values. Returns the final normed hidden states
    /// `[1, tokens, hidden]` and, with `attention`, each layer's attention probabilities
    /// `[1, heads, tokens, all positions]`.
    pub(super) fn forward(
        &self,
        inputs: &Tensor,
        cache: &mut KvCache,
        attention: bool,
    ) -> Result<(Tensor, Vec<Tensor>), TchError> {
        let tokens = inputs.size3()?.1;
        let past = cache.positions;
        let device = inputs.device();
        let positions = Tensor::f_arange_start(past, past + tokens, (Kind::Float, device))?;
        let angles = positions
            .f_unsqueeze(1)?
            .f_mul(&self.inverse_frequencies.f_unsqueeze(0)?)?;
        let angles = Tensor::f_cat(&[&angles, &angles], -1)?;
        let cos = angles.f_cos()?.f_view([1, 1, tokens, self.head_dim])?;
        let sin = angles.f_sin()?.f_view([1, 1, tokens, self.head_dim])?;
        // Each query sees every cached position and the new ones up to itself.
        let mask = if tokens > 1 {
            Some(Tensor::f_ones([tokens, past + tokens], (Kind::Bool, device))?.f_triu(past + 1)?)
        } else {
            None
        };

        let mut x = inputs.shallow_clone();
        let mut attentions = Vec::new();
        for (layer, slot) in self.layers.iter().zip(cache.layers.iter_mut()) {
            let normed = layer.input_norm.forward(&x)?;
            let split = |t: Tensor, heads: i64| -> Result<Tensor, TchError> {
                t.f_view([1, tokens, heads, self.head_dim])?
                    .f_transpose(1, 2)
            };
            let query = rotate(
                &split(layer.query.forward(&normed)?, self.heads)?,
                &cos,
                &sin,
            )?;
            let key = rotate(
                &split(layer.key.forward(&normed)?, self.kv_heads)?,
                &cos,
                &sin,
            )?;
            let value = split(layer.value.forward(&normed)?, self.kv_heads)?;
            let (key, value) = match slot.take() {
                Some((past_key, past_value)) => (
                    Tensor::f_cat(&[&past_key, &key], 2)?,
                    Tensor::f_cat(&[&past_value, &value], 2)?,
                ),
                None => (key, value),
            };
            let scores = query
                .f_matmul(&self.repeat_kv(&key)?.f_transpose(2, 3)?)?
                .f_mul_scalar(1.0 / (self.head_dim as f64).sqrt())?;
            let scores = match &mask {
                Some(mask) => scores.f_masked_fill(mask, f64::NEG_INFINITY)?,
                None => scores,
            };
            let probabilities = scores.f_softmax(-1, Kind::Float)?;
            let context = probabilities
                .f_matmul(&self.repeat_kv(&value)?)?
                .f_transpose(1, 2)?
                .f_reshape([1, tokens, self.heads * self.head_dim])?;
            *slot = Some((key, value));
            if attention {
                attentions.push(probabilities);
            }
            x = x.f_add(&layer.output.forward(&context)?)?;
            let normed = layer.post_attention_norm.forward(&x)?;
            let gated = layer
                .gate
                .forward(&normed)?
                .f_silu()?
                .f_mul(&layer.up.forward(&normed)?)?;
            x = x.f_add(&layer.down.forward(&gated)?)?;
        }
        cache.positions += tokens;
        Ok((self.norm.forward(&x)?, attentions))
    }

    /// Next-token logits from final hidden states.
    pub(super) fn logits(&self, hidden: &Tensor) -> Result<Tensor, TchError> {
        hidden.f_matmul(&self.lm_head.f_tr()?)
    }

    /// Repeats each key-value head for the query heads that share it: query head `h` reads
    /// key-value head `h / (heads / kv_heads)`, as transformers' `repeat_kv` lays them out.
    fn repeat_kv(&self, t: &Tensor) -> Result<Tensor, TchError> {
        let repeats = self.heads / self.kv_heads;
        if repeats == 1 {
            return Ok(t.shallow_clone());
        }
        let (batch, kv_heads, positions, head_dim) = t.size4()?;
        t.f_unsqueeze(2)?
            .f_expand([batch, kv_heads, repeats, positions, head_dim], false)?
            .f_reshape([batch, kv_heads * repeats, positions, head_dim])
    }
}

fn rotary_inverse_frequencies(
    theta: f64,
    head_dim: i64,
    device: tch::Device,
) -> Result<Tensor, TchError> {
    let exponents = Tensor::f_arange_start_step(0, head_dim, 2, (Kind::Float, device))?
        .f_div_scalar(head_dim as f64)?;
    Tensor::f_pow_scalar(theta, &exponents)?.f_reciprocal()
}

/// The rotary embedding in transformers' "rotate half" layout: the first and second halves
/// of each head are the two coordinates of each rotated pair.
fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor, TchError> {
    let half = x.size()[3] / 2;
    let first = x.f_narrow(3, 0, half)?;
    let second = x.f_narrow(3, half, half)?;
    let rotated = Tensor::f_cat(&[&second.f_neg()?, &first], 3)?;
    x.f_mul(cos)?.f_add(&rotated.f_mul(sin)?)
}

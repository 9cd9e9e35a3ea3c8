//! SigLIP's image embedding: `transformers`' `SiglipMultiheadAttentionPoolingHead`. A learned
//! probe token attends over the vision tower's post-LayerNorm patch tokens
//! (`nn.MultiheadAttention`, its packed input projection split here into query, key and
//! value), then a pre-norm MLP with a residual; the probe's output is the embedding. SigLIP has
//! no class token and no projection: this head is where the image is summarised.

use tch::{TchError, Tensor};

use crate::checkpoint::Checkpoint;
use crate::nn::{LayerNorm, Linear};
use crate::vision::{Activation, VisionConfig};
use crate::OperatorError;

pub(super) struct AttentionPoolingHead {
    /// `[1, 1, hidden]`.
    probe: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: i64,
    activation: Activation,
}

impl AttentionPoolingHead {
    /// The tensors under `prefix` (`"vision_model.head."` in full models).
    pub(super) fn load(
        checkpoint: &mut Checkpoint,
        prefix: &str,
        config: &VisionConfig,
        activation: Activation,
    ) -> Result<Self, OperatorError> {
        let (hidden, inner, eps) = (
            config.hidden_size,
            config.intermediate_size,
            config.layer_norm_eps,
        );
        let p = prefix;
        let probe = checkpoint.take(&format!("{p}probe"), &[1, 1, hidden])?;
        let in_weight = checkpoint.take(
            &format!("{p}attention.in_proj_weight"),
            &[3 * hidden, hidden],
        )?;
        let in_bias = checkpoint.take(&format!("{p}attention.in_proj_bias"), &[3 * hidden])?;
        // nn.MultiheadAttention packs the query, key and value projections in that order.
        let part = |i: i64| -> Result<Linear, OperatorError> {
            let slice = |t: &Tensor| t.f_narrow(0, i * hidden, hidden);
            let weight = slice(&in_weight).and_then(|w| w.f_contiguous());
            let bias = slice(&in_bias).and_then(|b| b.f_contiguous());
            match (weight, bias) {
                (Ok(weight), Ok(bias)) => Ok(Linear::new(weight, Some(bias))),
                (Err(e), _) | (_, Err(e)) => Err(OperatorError::ModelLoad {
                    path: checkpoint.path().to_owned(),
                    message: format!("cannot split {p}attention.in_proj_weight: {e}"),
                }),
            }
        };
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        Ok(Self {
            probe,
            q,
            k,
            v,
            out: Linear::load(
                checkpoint,
                &format!("{p}attention.out_proj"),
                hidden,
                hidden,
                true,
            )?,
            norm: LayerNorm::load(checkpoint, &format!("{p}layernorm"), hidden, eps)?,
            fc1: Linear::load(checkpoint, &format!("{p}mlp.fc1"), hidden, inner, true)?,
            fc2: Linear::load(checkpoint, &format!("{p}mlp.fc2"), inner, hidden, true)?,
            heads: config.num_attention_heads,
            activation,
        })
    }

    /// `[B, hidden]` embeddings of `tokens` `[B, T, hidden]`.
    pub(super) fn forward(&self, tokens: &Tensor) -> Result<Tensor, TchError> {
        let (batch, count, hidden) = tokens.size3()?;
        let heads = self.heads;
        let split = |t: Tensor, length: i64| -> Result<Tensor, TchError> {
            t.f_view([batch, length, heads, hidden / heads])?
                .f_transpose(1, 2)
        };
        let probe = self.probe.f_expand([batch, 1, hidden], false)?;
        let q = split(self.q.forward(&probe)?, 1)?;
        let k = split(self.k.forward(tokens)?, count)?;
        let v = split(self.v.forward(tokens)?, count)?;
        let context = Tensor::f_scaled_dot_product_attention(
            &q,
            &k,
            &v,
            None::<&Tensor>,
            0.0,
            false,
            None,
            false,
        )?
        .f_transpose(1, 2)?
        .f_reshape([batch, 1, hidden])?;
        let x = self.out.forward(&context)?;
        let inner = self
            .activation
            .forward(&self.fc1.forward(&self.norm.forward(&x)?)?)?;
        x.f_add(&self.fc2.forward(&inner)?)?.f_select(1, 0)
    }
}

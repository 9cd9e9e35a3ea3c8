//! The text transformer of CLIP and SigLIP (`transformers`' `CLIPTextTransformer` /
//! `SiglipTextTransformer`, without their heads): token and learned position embeddings,
//! pre-norm encoder blocks, the final LayerNorm, and the states of one position per text.
//!
//! The two differ in the attention mask only. CLIP's is causal (plus the padding mask, which
//! with padding on the right changes nothing a real token sees). SigLIP's has none: it was
//! trained attending to its padding, which is why its texts are always padded to one length.
//! (`transformers` masks SigLIP's padding when it is handed an `attention_mask`; the model's
//! own training and `get_text_features(input_ids)` do not, and that is what is run here.)

use tch::{Device, Kind, TchError, Tensor};

use super::config::TextConfig;
use crate::checkpoint::Checkpoint;
use crate::nn::LayerNorm;
use crate::vision::{Activation, Layer};
use crate::OperatorError;

pub(super) struct TextTower {
    token_embedding: Tensor,
    position_embedding: Tensor,
    layers: Vec<Layer>,
    final_norm: LayerNorm,
    heads: i64,
    activation: Activation,
    causal: bool,
    device: Device,
}

impl TextTower {
    /// The tensors under `prefix` (`"text_model."` in full models).
    pub(super) fn load(
        checkpoint: &mut Checkpoint,
        prefix: &str,
        config: &TextConfig,
        causal: bool,
        device: Device,
    ) -> Result<Self, OperatorError> {
        let (hidden, inner, eps) = (
            config.hidden_size,
            config.intermediate_size,
            config.layer_norm_eps,
        );
        let p = prefix;
        let token_embedding = checkpoint.take(
            &format!("{p}embeddings.token_embedding.weight"),
            &[config.vocab_size, hidden],
        )?;
        let position_embedding = checkpoint.take(
            &format!("{p}embeddings.position_embedding.weight"),
            &[config.max_position_embeddings, hidden],
        )?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(checkpoint, p, i, (hidden, inner), eps))
            .collect::<Result<Vec<_>, OperatorError>>()?;
        let final_norm = LayerNorm::load(checkpoint, &format!("{p}final_layer_norm"), hidden, eps)?;
        Ok(Self {
            token_embedding,
            position_embedding,
            layers,
            final_norm,
            heads: config.num_attention_heads,
            activation: config.activation,
            causal,
            device,
        })
    }

    /// The final-LayerNorm states `[B, hidden]` at `pool` (`[B]` positions) of `ids` and
    /// `mask` (both `[B, T]` int64; `mask` 1 for real tokens).
    pub(super) fn pooled(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        pool: &Tensor,
    ) -> Result<Tensor, TchError> {
        let (batch, tokens) = ids.size2()?;
        let hidden = self.token_embedding.size()[1];
        let ids = ids.f_to_device(self.device)?;
        let mut x = self
            .token_embedding
            .f_index_select(0, &ids.f_reshape([-1])?)?
            .f_view([batch, tokens, hidden])?
            .f_add(&self.position_embedding.f_narrow(0, 0, tokens)?)?;
        let attention_mask = if self.causal {
            let causal = Tensor::f_ones([tokens, tokens], (Kind::Bool, self.device))?
                .f_tril(0)?
                .f_view([1, 1, tokens, tokens])?;
            let keys = mask
                .f_to_device(self.device)?
                .f_ne(0)?
                .f_view([batch, 1, 1, tokens])?;
            Some(causal.f_logical_and(&keys)?)
        } else {
            None
        };
        for layer in &self.layers {
            x = self.attention(layer, &x, attention_mask.as_ref())?;
            let inner = self
                .activation
                .forward(&layer.fc1.forward(&layer.norm2.forward(&x)?)?)?;
            x = x.f_add(&layer.fc2.forward(&inner)?)?;
        }
        let x = self.final_norm.forward(&x)?;
        let index = pool
            .f_to_device(self.device)?
            .f_view([batch, 1, 1])?
            .f_expand([batch, 1, hidden], false)?;
        x.f_gather(1, &index, false)?.f_squeeze_dim(1)
    }

    /// `x` plus self-attention over its LayerNorm; `mask` (bool, `true` = may attend) is
    /// broadcast over heads.
    fn attention(
        &self,
        layer: &Layer,
        x: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor, TchError> {
        let (batch, tokens, hidden) = x.size3()?;
        let heads = self.heads;
        let split = |t: Tensor| -> Result<Tensor, TchError> {
            t.f_view([batch, tokens, heads, hidden / heads])?
                .f_transpose(1, 2)
        };
        let h = layer.norm1.forward(x)?;
        let q = split(layer.q.forward(&h)?)?;
        let k = split(layer.k.forward(&h)?)?;
        let v = split(layer.v.forward(&h)?)?;
        let context =
            Tensor::f_scaled_dot_product_attention(&q, &k, &v, mask, 0.0, false, None, false)?
                .f_transpose(1, 2)?
                .f_reshape([batch, tokens, hidden])?;
        x.f_add(&layer.out.forward(&context)?)
    }
}

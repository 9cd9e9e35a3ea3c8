//! The Llama decoder (Hugging Face `LlamaForCausalLM`) written out with `tch` ops: token
//! embeddings, pre-norm layers of RMSNorm, rotary grouped-query attention and a SwiGLU MLP,
//! a final RMSNorm and the output head.
//!
//! Decoding one token of a small model on a CPU reads every weight once, and the few hundred
//! libtorch calls around those reads cost time of their own, so the layers are laid out for
//! fast reads and few calls: weights in the layout the CPU kernels stream fastest
//! ([`Dense`]), query, key and value as one matrix (gate and up as another), residual
//! additions inside the matrix products, rotary tables computed once at load, a key-value
//! cache written in place, and libtorch's fused attention. Only when the caller asks for
//! attention probabilities are scores and softmax computed explicitly, since the fused kernel
//! does not return them. Activations are `[tokens, hidden]`: one sequence at a time.

use tch::{Device, Kind, TchError, Tensor};

use super::config::LlamaConfig;
use crate::checkpoint::Checkpoint;
use crate::OperatorError;

/// Llama's RMSNorm: scale by the reciprocal root mean square, then by a learned weight.
/// libtorch's `rms_norm` computes transformers' formula (float32: the same bits).
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        x.f_rms_norm(self.weight.size(), Some(&self.weight), self.eps)
    }
}

/// A dense layer `x · weightᵀ + bias`, its weight stored in the layout this precision's CPU
/// kernel streams fastest when `x` is one token (decoding reads every weight once per token,
/// so this sets the decoding speed). For float32 that is `[inputs, outputs]`, transposed
/// from the checkpoint: MKL's one-row product reads it 1.2–1.4x faster than the
/// `[outputs, inputs]` that `linear` (and transformers) reads — every SmolLM2-135M matrix
/// once in 38.5 against 45–48 ms, 1 or 2 threads, AVX-512 EPYC (the `smollm2` part of the
/// `mllm` bench measures both layouts). oneDNN's bfloat16 product is as fast or faster on
/// `[outputs, inputs]`. For prompts (many rows) the layouts are even.
struct Dense {
    weight: Tensor,
    bias: Option<Tensor>,
    /// `weight` is `[inputs, outputs]`.
    transposed: bool,
}

impl Dense {
    /// From a checkpoint's `[outputs, inputs]` weight, already in the model's precision.
    fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self, TchError> {
        let transposed = weight.kind() == Kind::Float;
        let weight = if transposed {
            weight.f_tr()?.f_contiguous()?
        } else {
            weight
        };
        Ok(Self {
            weight,
            bias,
            transposed,
        })
    }

    /// `[tokens, inputs]` to `[tokens, outputs]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        match (self.transposed, &self.bias) {
            (true, Some(bias)) => bias.f_addmm(x, &self.weight),
            (true, None) => x.f_mm(&self.weight),
            (false, bias) => x.f_linear(&self.weight, bias.as_ref()),
        }
    }

    /// `residual + forward(x)`, the addition done inside the product where the kernel can.
    fn forward_add(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor, TchError> {
        if self.transposed && self.bias.is_none() {
            residual.f_addmm(x, &self.weight)
        } else {
            residual.f_add(&self.forward(x)?)
        }
    }
}

struct Layer {
    input_norm: RmsNorm,
    /// `q_proj`, `k_proj` and `v_proj` stacked: outputs are the query heads, then the
    /// key heads, then the value heads.
    qkv: Dense,
    output: Dense,
    post_attention_norm: RmsNorm,
    /// `gate_proj` and `up_proj` stacked: the gate's outputs, then up's.
    gate_up: Dense,
    down: Dense,
}

/// Keys and values of every position seen so far, per layer, so each new token costs one
/// position's work instead of a pass over the whole sequence. The buffers are allocated
/// once for every position the caller will reach (a generation knows its prompt and its
/// token budget) and new positions are copied into place, so a step does not copy the whole
/// cache as concatenating would.
pub(super) struct KvCache {
    /// `[1, key-value heads, capacity, head dim]` keys (rotated) and values per layer; the
    /// first `positions` are filled.
    layers: Vec<(Tensor, Tensor)>,
    capacity: i64,
    positions: i64,
}

pub(super) struct Llama {
    /// `[vocab, hidden]`; or, with `embeddings_by_column`, the tied output head's
    /// `[hidden, vocab]` weight (see [`Dense`]): one copy serves both, a token's embedding
    /// being a column.
    embeddings: Tensor,
    embeddings_by_column: bool,
    layers: Vec<Layer>,
    norm: RmsNorm,
    /// The output head: the embedding matrix itself when the checkpoint ties them.
    lm_head: Dense,
    hidden: i64,
    vocab: i64,
    heads: i64,
    kv_heads: i64,
    head_dim: i64,
    /// `[max positions, head dim]` rotary `cos` of every position, and `sin` with the sign of
    /// "rotate half" folded in (negative first half): rotating is then
    /// `x * cos + roll(x, head dim / 2) * sin`. Computed in float32 as transformers does,
    /// then stored in the model's precision, as transformers casts them.
    cos: Tensor,
    sin: Tensor,
    kind: Kind,
}

/// The weight `name` `[shape]` in the model's precision.
fn take(
    checkpoint: &mut Checkpoint,
    name: &str,
    shape: &[i64],
    kind: Kind,
) -> Result<Tensor, OperatorError> {
    let tensor = checkpoint.take(name, shape)?;
    tensor.f_to_kind(kind).map_err(|e| {
        load_error(
            checkpoint,
            format!("cannot convert {name} to {kind:?}: {e}"),
        )
    })
}

fn load_error(checkpoint: &Checkpoint, message: String) -> OperatorError {
    OperatorError::ModelLoad {
        path: checkpoint.path().to_owned(),
        message,
    }
}

/// The linear layers `names` (each `[outputs, inputs]`, with a bias if `bias`) stacked into
/// one whose outputs are theirs in order, so one matrix product computes them all.
fn stacked_dense(
    checkpoint: &mut Checkpoint,
    names: &[(String, i64)],
    inputs: i64,
    bias: bool,
    kind: Kind,
) -> Result<Dense, OperatorError> {
    let mut weights = Vec::with_capacity(names.len());
    let mut biases = Vec::with_capacity(names.len());
    for (name, outputs) in names {
        weights.push(take(
            checkpoint,
            &format!("{name}.weight"),
            &[*outputs, inputs],
            kind,
        )?);
        if bias {
            biases.push(take(
                checkpoint,
                &format!("{name}.bias"),
                &[*outputs],
                kind,
            )?);
        }
    }
    let dense = || {
        let weight = Tensor::f_cat(&weights, 0)?;
        let bias = if bias {
            Some(Tensor::f_cat(&biases, 0)?)
        } else {
            None
        };
        Dense::new(weight, bias)
    };
    dense().map_err(|e| load_error(checkpoint, format!("cannot lay out {}: {e}", names[0].0)))
}

fn dense(
    checkpoint: &mut Checkpoint,
    name: String,
    inputs: i64,
    outputs: i64,
    bias: bool,
    kind: Kind,
) -> Result<Dense, OperatorError> {
    stacked_dense(checkpoint, &[(name, outputs)], inputs, bias, kind)
}

impl Llama {
    /// Loads the weights in `kind` (float32 or bfloat16): the activations follow them.
    pub(super) fn load(
        config: &LlamaConfig,
        checkpoint: &mut Checkpoint,
        kind: Kind,
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
        let norm = |checkpoint: &mut Checkpoint, name: String| -> Result<RmsNorm, OperatorError> {
            Ok(RmsNorm {
                weight: take(checkpoint, &format!("{name}.weight"), &[hidden], kind)?,
                eps,
            })
        };
        let embeddings = take(
            checkpoint,
            "model.embed_tokens.weight",
            &[config.vocab_size, hidden],
            kind,
        )?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let p = format!("model.layers.{i}");
                let attention = format!("{p}.self_attn");
                let mlp = format!("{p}.mlp");
                Ok(Layer {
                    input_norm: norm(checkpoint, format!("{p}.input_layernorm"))?,
                    qkv: stacked_dense(
                        checkpoint,
                        &[
                            (format!("{attention}.q_proj"), heads * head_dim),
                            (format!("{attention}.k_proj"), kv_heads * head_dim),
                            (format!("{attention}.v_proj"), kv_heads * head_dim),
                        ],
                        hidden,
                        bias.qkv,
                        kind,
                    )?,
                    output: dense(
                        checkpoint,
                        format!("{attention}.o_proj"),
                        heads * head_dim,
                        hidden,
                        bias.output,
                        kind,
                    )?,
                    post_attention_norm: norm(checkpoint, format!("{p}.post_attention_layernorm"))?,
                    gate_up: stacked_dense(
                        checkpoint,
                        &[
                            (format!("{mlp}.gate_proj"), inner),
                            (format!("{mlp}.up_proj"), inner),
                        ],
                        hidden,
                        config.mlp_bias,
                        kind,
                    )?,
                    down: dense(
                        checkpoint,
                        format!("{mlp}.down_proj"),
                        inner,
                        hidden,
                        config.mlp_bias,
                        kind,
                    )?,
                })
            })
            .collect::<Result<Vec<_>, OperatorError>>()?;
        let norm = norm(checkpoint, "model.norm".into())?;
        let (cos, sin) = rotary_tables(
            config.rope_theta(),
            head_dim,
            config.max_position_embeddings,
            embeddings.device(),
            kind,
        )
        .map_err(|e| load_error(checkpoint, format!("cannot compute rotary tables: {e}")))?;
        let head_weight = if config.tie_word_embeddings {
            embeddings.shallow_clone()
        } else {
            take(
                checkpoint,
                "lm_head.weight",
                &[config.vocab_size, hidden],
                kind,
            )?
        };
        let lm_head = Dense::new(head_weight, None)
            .map_err(|e| load_error(checkpoint, format!("cannot lay out the output head: {e}")))?;
        let embeddings_by_column = config.tie_word_embeddings && lm_head.transposed;
        let embeddings = if embeddings_by_column {
            lm_head.weight.shallow_clone()
        } else {
            embeddings
        };
        Ok(Self {
            embeddings,
            embeddings_by_column,
            layers,
            norm,
            lm_head,
            hidden,
            vocab: config.vocab_size,
            heads,
            kv_heads,
            head_dim,
            cos,
            sin,
            kind,
        })
    }

    pub(super) fn hidden_size(&self) -> i64 {
        self.hidden
    }

    pub(super) fn vocab_size(&self) -> i64 {
        self.vocab
    }

    /// The precision of the weights and activations.
    pub(super) fn kind(&self) -> Kind {
        self.kind
    }

    /// An empty cache with room for `capacity` positions.
    pub(super) fn new_cache(&self, capacity: i64) -> Result<KvCache, TchError> {
        let buffer = || {
            Tensor::f_empty(
                [1, self.kv_heads, capacity, self.head_dim],
                (self.kind, self.embeddings.device()),
            )
        };
        Ok(KvCache {
            layers: self
                .layers
                .iter()
                .map(|_| Ok((buffer()?, buffer()?)))
                .collect::<Result<_, TchError>>()?,
            capacity,
            positions: 0,
        })
    }

    /// Embedding rows `[tokens, hidden]` for int64 ids `[tokens]`, in the model's precision.
    pub(super) fn embed(&self, ids: &Tensor) -> Result<Tensor, TchError> {
        if self.embeddings_by_column {
            self.embeddings
                .f_index_select(1, ids)?
                .f_tr()?
                .f_contiguous()
        } else {
            Tensor::f_embedding(&self.embeddings, ids, -1, false, false)
        }
    }

    /// Runs `inputs` (`[tokens, hidden]` embeddings in the model's precision) at the
    /// positions after those in `cache`, appending their keys and values. Returns the final
    /// normed hidden states `[tokens, hidden]` and, with `attention`, each layer's attention
    /// probabilities `[1, heads, tokens, all positions]` (float32).
    pub(super) fn forward(
        &self,
        inputs: &Tensor,
        cache: &mut KvCache,
        attention: bool,
    ) -> Result<(Tensor, Vec<Tensor>), TchError> {
        let tokens = inputs.size2()?.0;
        let past = cache.positions;
        let total = past + tokens;
        if total > cache.capacity {
            return Err(TchError::Shape(format!(
                "{total} positions overflow a key-value cache of {}",
                cache.capacity
            )));
        }
        let (heads, kv_heads, head_dim) = (self.heads, self.kv_heads, self.head_dim);
        let table = |t: &Tensor| t.f_narrow(0, past, tokens)?.f_view([tokens, 1, head_dim]);
        let (cos, sin) = (table(&self.cos)?, table(&self.sin)?);
        let scale = 1.0 / (head_dim as f64).sqrt();
        // `[tokens, some heads, head dim]` to `[1, some heads, tokens, head dim]`.
        let by_head = |t: Tensor| t.f_transpose(0, 1)?.f_unsqueeze(0);

        let mut x = inputs.shallow_clone();
        let mut attentions = Vec::new();
        for (layer, (key_cache, value_cache)) in self.layers.iter().zip(&cache.layers) {
            let normed = layer.input_norm.forward(&x)?;
            // `[tokens, heads + 2 kv heads, head dim]`: query, key and value heads.
            let qkv =
                layer
                    .qkv
                    .forward(&normed)?
                    .f_view([tokens, heads + 2 * kv_heads, head_dim])?;
            // Query and key heads are adjacent, so one rotation covers both.
            let rotated = rotate(&qkv.f_narrow(1, 0, heads + kv_heads)?, &cos, &sin)?;
            let query = by_head(rotated.f_narrow(1, 0, heads)?)?;
            key_cache
                .f_narrow(2, past, tokens)?
                .f_copy_(&by_head(rotated.f_narrow(1, heads, kv_heads)?)?)?;
            value_cache
                .f_narrow(2, past, tokens)?
                .f_copy_(&by_head(qkv.f_narrow(1, heads + kv_heads, kv_heads)?)?)?;
            let key = key_cache.f_narrow(2, 0, total)?;
            let value = value_cache.f_narrow(2, 0, total)?;
            let context = if attention {
                let (context, probabilities) =
                    self.explicit_attention(&query, &key, &value, past, scale)?;
                attentions.push(probabilities);
                context
            } else {
                fused_attention(&query, &key, &value, past, scale)?
            };
            // `[1, heads, tokens, head dim]` to `[tokens, heads × head dim]`.
            let context = context
                .f_squeeze_dim(0)?
                .f_transpose(0, 1)?
                .f_reshape([tokens, heads * head_dim])?;
            x = layer.output.forward_add(&context, &x)?;
            let normed = layer.post_attention_norm.forward(&x)?;
            let gate_up = layer.gate_up.forward(&normed)?;
            let inner = gate_up.size()[1] / 2;
            let gated = gate_up
                .f_narrow(1, 0, inner)?
                .f_silu()?
                .f_mul(&gate_up.f_narrow(1, inner, inner)?)?;
            x = layer.down.forward_add(&gated, &x)?;
        }
        cache.positions = total;
        Ok((self.norm.forward(&x)?, attentions))
    }

    /// Next-token logits `[tokens, vocab]` (float32) from final hidden states
    /// `[tokens, hidden]`.
    pub(super) fn logits(&self, hidden: &Tensor) -> Result<Tensor, TchError> {
        self.lm_head.forward(hidden)?.f_to_kind(Kind::Float)
    }

    /// Attention written out, for its probabilities: returns the context
    /// `[1, heads, tokens, head dim]` and the probabilities `[1, heads, tokens, positions]`
    /// (float32, as transformers' eager attention takes its softmax).
    ///
    /// Query head `h` reads key-value head `h / (heads / kv_heads)`, as transformers'
    /// `repeat_kv` lays them out; rather than repeating the cached keys and values, the
    /// queries that share a key-value head are stacked as rows of one product with it.
    fn explicit_attention(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        past: i64,
        scale: f64,
    ) -> Result<(Tensor, Tensor), TchError> {
        let (_, heads, tokens, head_dim) = query.size4()?;
        let (kv_heads, positions) = (self.kv_heads, key.size()[2]);
        let group = heads / kv_heads;
        let grouped = query.f_reshape([1, kv_heads, group * tokens, head_dim])?;
        let scores = grouped
            .f_matmul(&key.f_transpose(2, 3)?)?
            .f_mul_scalar(scale)?
            .f_view([1, heads, tokens, positions])?;
        // Each query sees every cached position and the new ones up to itself.
        let scores = if tokens > 1 {
            let future = Tensor::f_ones([tokens, positions], (Kind::Bool, query.device()))?
                .f_triu(past + 1)?;
            scores.f_masked_fill(&future, f64::NEG_INFINITY)?
        } else {
            scores
        };
        let probabilities = scores.f_softmax(-1, Kind::Float)?;
        let context = probabilities
            .f_to_kind(self.kind)?
            .f_view([1, kv_heads, group * tokens, positions])?
            .f_matmul(value)?
            .f_view([1, heads, tokens, head_dim])?;
        Ok((context, probabilities))
    }
}

/// libtorch's fused attention (flash attention on the CPU), grouped-query heads read in
/// place; returns the context `[1, heads, tokens, head dim]`.
///
/// In bfloat16 a single query (a decoding step) is grouped by key-value head: the query
/// heads sharing a key-value head become that head's rows,
/// `[1, kv heads, heads / kv heads, head dim]`, which attend the same positions with
/// nothing to mask. That gives the same numbers as `enable_gqa`, which libtorch 2.11 runs
/// 2–7x slower in bfloat16 (SmolLM2's 9 heads over 3, 64–512 positions; in float32 the two
/// are even). Otherwise `enable_gqa`, causal from the first position or with the cached
/// positions unmasked.
fn fused_attention(
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    past: i64,
    scale: f64,
) -> Result<Tensor, TchError> {
    let (_, heads, tokens, head_dim) = query.size4()?;
    let (kv_heads, positions) = (key.size()[1], key.size()[2]);
    if tokens == 1 && query.kind() == Kind::BFloat16 {
        let grouped = query.f_reshape([1, kv_heads, heads / kv_heads, head_dim])?;
        return Tensor::f_scaled_dot_product_attention(
            &grouped,
            key,
            value,
            None::<Tensor>,
            0.0,
            false,
            scale,
            false,
        )?
        .f_reshape([1, heads, 1, head_dim]);
    }
    // One query sees everything; a first block is plainly causal; a later block of several
    // tokens needs its mask offset by the cached positions (`true` = may attend).
    let (mask, causal) = match (tokens, past) {
        (1, _) => (None, false),
        (_, 0) => (None, true),
        _ => (
            Some(Tensor::f_ones([tokens, positions], (Kind::Bool, query.device()))?.f_tril(past)?),
            false,
        ),
    };
    Tensor::f_scaled_dot_product_attention(query, key, value, mask, 0.0, causal, scale, true)
}

/// `[positions, head dim]` tables of `cos` and of sign-folded `sin` (see [`Llama::cos`]) for
/// rotary frequencies `1 / theta^(2i / head_dim)`.
fn rotary_tables(
    theta: f64,
    head_dim: i64,
    positions: i64,
    device: Device,
    kind: Kind,
) -> Result<(Tensor, Tensor), TchError> {
    let exponents = Tensor::f_arange_start_step(0, head_dim, 2, (Kind::Float, device))?
        .f_div_scalar(head_dim as f64)?;
    let inverse_frequencies = Tensor::f_pow_scalar(theta, &exponents)?.f_reciprocal()?;
    let angles = Tensor::f_arange(positions, (Kind::Float, device))?
        .f_unsqueeze(1)?
        .f_mul(&inverse_frequencies.f_unsqueeze(0)?)?;
    let (cos, sin) = (angles.f_cos()?, angles.f_sin()?);
    let cos = Tensor::f_cat(&[&cos, &cos], 1)?.f_to_kind(kind)?;
    let sin = Tensor::f_cat(&[&sin.f_neg()?, &sin], 1)?.f_to_kind(kind)?;
    Ok((cos, sin))
}

/// The rotary embedding in transformers' "rotate half" layout (the first and second halves
/// of each head are the two coordinates of each rotated pair): `x * cos + rotate_half(x) *
/// sin` with `rotate_half(x) = [-second, first]`, i.e. `roll(x, half) * sign-folded sin`.
/// `x` is `[tokens, heads, head dim]`, `cos` and `sin` `[tokens, 1, head dim]`.
fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor, TchError> {
    let half = x.size()[2] / 2;
    x.f_mul(cos)?.f_add_(&x.f_roll([half], [2])?.f_mul(sin)?)
}

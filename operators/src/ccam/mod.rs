//! The Video-CCAM projector: visual tokens of a clip's frames in, a fixed number of LLM
//! input embeddings out, with causal cross-attention so a query never sees a later frame.
//!
//! `N` learnable queries attend to the visual tokens of all `T` frames. The queries are
//! split into `T` ordered blocks, **block `k` = queries `[⌊k·N/T⌋, ⌊(k+1)·N/T⌋)`**, and
//! block `k` attends only to the tokens of frames `0..=k`. When `N` is not a multiple of `T`
//! the blocks differ in size by at most one, later blocks taking the extra queries; when
//! `N < T` some blocks are empty. There is no self-attention among queries, so nothing else
//! crosses blocks, and a block's output depends only on frames up to its own — which is what
//! [`CcamStream`] uses: as frame `t` arrives only block `t` is computed, and finished blocks
//! are kept, giving exactly the batch output.
//!
//! One layer, pre-norm:
//!
//! ```text
//! x = queries + out_proj(attn(q_proj(query_norm(queries)), k_proj/v_proj(visual_norm(visual))))
//! x = x + down_proj(silu(gate_proj(mlp_norm(x))) * up_proj(mlp_norm(x)))
//! y = output_proj(output_norm(x))
//! ```
//!
//! The checkpoint folder holds [`CONFIG_FILE`] (see [`CcamConfig`]) and
//! `model.safetensors` with these tensors (`d` = `hidden_size`, `v` = `visual_size`,
//! `m` = `intermediate_size`, `o` = `output_size`):
//!
//! | tensor | shape |
//! |---|---|
//! | `queries` | `[N, d]` |
//! | `query_norm.{weight,bias}`, `mlp_norm.*`, `output_norm.*` | `[d]` |
//! | `visual_norm.{weight,bias}` | `[v]` |
//! | `cross_attn.q_proj.weight`, `cross_attn.out_proj.weight` | `[d, d]` |
//! | `cross_attn.k_proj.weight`, `cross_attn.v_proj.weight` | `[d, v]` |
//! | `cross_attn.{q,k,v,out}_proj.bias` | `[d]` |
//! | `mlp.gate_proj.weight`, `mlp.up_proj.weight` (no bias) | `[m, d]` |
//! | `mlp.down_proj.weight` (no bias) | `[d, m]` |
//! | `output_proj.weight`, `output_proj.bias` | `[o, d]`, `[o]` |

use std::path::Path;

use serde::Deserialize;
use tch::{Device, Kind, TchError, Tensor};

use crate::checkpoint::{read_json, required_file, Checkpoint};
use crate::nn::{LayerNorm, Linear};
use crate::OperatorError;

/// The projector's configuration file, beside `model.safetensors`.
pub const CONFIG_FILE: &str = "ccam_config.json";

const MISSING_HINT: &str = "a CCAM projector folder needs ccam_config.json and model.safetensors";

/// `ccam_config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct CcamConfig {
    /// `N`, the learnable queries: the embeddings handed to the LLM per clip.
    pub num_queries: i64,
    /// `d`, the queries' width.
    pub hidden_size: i64,
    pub num_heads: i64,
    /// `v`, the width of the vision tower's tokens.
    pub visual_size: i64,
    /// `m`, the SwiGLU MLP's inner width.
    pub intermediate_size: i64,
    /// `o`, the LLM's hidden size.
    pub output_size: i64,
    pub layer_norm_eps: f64,
}

/// Block `k` of `n` queries over `frames` frames: `[⌊k·n/frames⌋, ⌊(k+1)·n/frames⌋)`.
pub fn query_block(n: i64, frames: i64, k: i64) -> std::ops::Range<i64> {
    k * n / frames..(k + 1) * n / frames
}

/// A loaded Video-CCAM projector. `Send` but not `Sync`, as `tch` tensors are.
pub struct Ccam {
    name: String,
    config: CcamConfig,
    queries: Tensor,
    /// `[heads, N, head_dim]`: the queries' attention queries, the same for every clip.
    query_heads: Tensor,
    visual_norm: LayerNorm,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    mlp_norm: LayerNorm,
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
    output_norm: LayerNorm,
    output_proj: Linear,
    device: Device,
}

impl Ccam {
    /// Loads the projector folder `dir` onto `device`.
    pub fn load(dir: &Path, device: Device) -> Result<Self, OperatorError> {
        let config_path = required_file(dir, CONFIG_FILE, MISSING_HINT)?;
        let config: CcamConfig = read_json(&config_path)?;
        let (n, d, v, m, o) = (
            config.num_queries,
            config.hidden_size,
            config.visual_size,
            config.intermediate_size,
            config.output_size,
        );
        if config.num_heads <= 0 || d % config.num_heads != 0 || n <= 0 {
            return Err(OperatorError::UnsupportedModel {
                path: config_path,
                message: format!(
                    "{n} queries of width {d} in {} heads: need at least one query and \
                     a width that splits into the heads",
                    config.num_heads
                ),
            });
        }
        let eps = config.layer_norm_eps;
        let mut c = Checkpoint::open(
            &required_file(dir, "model.safetensors", MISSING_HINT)?,
            device,
        )?;
        let queries = c.take("queries", &[n, d])?;
        let query_norm = LayerNorm::load(&mut c, "query_norm", d, eps)?;
        let q_proj = Linear::load(&mut c, "cross_attn.q_proj", d, d, true)?;
        let heads = config.num_heads;
        let query_heads = tch::no_grad(|| {
            q_proj
                .forward(&query_norm.forward(&queries)?)?
                .f_view([n, heads, d / heads])?
                .f_transpose(0, 1)?
                .f_contiguous()
        })
        .map_err(|e| OperatorError::ModelLoad {
            path: dir.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Self {
            name: dir.display().to_string(),
            queries,
            query_heads,
            visual_norm: LayerNorm::load(&mut c, "visual_norm", v, eps)?,
            k_proj: Linear::load(&mut c, "cross_attn.k_proj", v, d, true)?,
            v_proj: Linear::load(&mut c, "cross_attn.v_proj", v, d, true)?,
            out_proj: Linear::load(&mut c, "cross_attn.out_proj", d, d, true)?,
            mlp_norm: LayerNorm::load(&mut c, "mlp_norm", d, eps)?,
            gate_proj: Linear::load(&mut c, "mlp.gate_proj", d, m, false)?,
            up_proj: Linear::load(&mut c, "mlp.up_proj", d, m, false)?,
            down_proj: Linear::load(&mut c, "mlp.down_proj", m, d, false)?,
            output_norm: LayerNorm::load(&mut c, "output_norm", d, eps)?,
            output_proj: Linear::load(&mut c, "output_proj", d, o, true)?,
            config,
            device,
        })
    }

    pub fn config(&self) -> &CcamConfig {
        &self.config
    }

    /// `[N, output_size]` for a clip given as each frame's visual tokens `[n_t, visual_size]`
    /// in time order (frames may keep different numbers of tokens, e.g. after
    /// [`crate::vision::tome::merge_across_frames`]).
    pub fn project(&self, frames: &[Tensor]) -> Result<Tensor, OperatorError> {
        if frames.is_empty() {
            return Err(OperatorError::InvalidInput(format!(
                "{} needs at least one frame",
                self.name
            )));
        }
        for frame in frames {
            self.check_frame(frame)?;
        }
        tch::no_grad(|| self.project_batch(frames)).map_err(|e| self.inference_error(e))
    }

    /// A stream over a clip of `frames` frames, fed one frame at a time.
    pub fn stream(&self, frames: usize) -> Result<CcamStream<'_>, OperatorError> {
        if frames == 0 {
            return Err(OperatorError::InvalidInput(format!(
                "{} needs at least one frame",
                self.name
            )));
        }
        Ok(CcamStream {
            ccam: self,
            frames: frames as i64,
            keys: Vec::with_capacity(frames),
            values: Vec::with_capacity(frames),
            blocks: Vec::with_capacity(frames),
        })
    }

    fn check_frame(&self, frame: &Tensor) -> Result<(), OperatorError> {
        let size = frame.size();
        if size.len() != 2 || size[0] == 0 || size[1] != self.config.visual_size {
            return Err(OperatorError::InvalidInput(format!(
                "{} takes frames of tokens [n >= 1, {}], got {size:?}",
                self.name, self.config.visual_size
            )));
        }
        Ok(())
    }

    fn inference_error(&self, e: TchError) -> OperatorError {
        OperatorError::Inference {
            model: self.name.clone(),
            message: e.to_string(),
        }
    }

    /// A frame's keys and values, `[heads, n_t, head_dim]` each.
    fn keys_values(&self, frame: &Tensor) -> Result<(Tensor, Tensor), TchError> {
        let heads = self.config.num_heads;
        let head_dim = self.config.hidden_size / heads;
        let visual = self
            .visual_norm
            .forward(&frame.f_to_kind(Kind::Float)?.f_to_device(self.device)?)?;
        let split = |t: Tensor| t.f_view([-1, heads, head_dim])?.f_transpose(0, 1);
        Ok((
            split(self.k_proj.forward(&visual)?)?,
            split(self.v_proj.forward(&visual)?)?,
        ))
    }

    /// Queries `rows` attending to `keys`/`values` under `mask` (or all of them), through
    /// the rest of the layer: `[rows, output_size]`.
    fn attend(
        &self,
        rows: std::ops::Range<i64>,
        keys: &Tensor,
        values: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor, TchError> {
        let count = rows.end - rows.start;
        let q = self.query_heads.f_narrow(1, rows.start, count)?;
        let context = Tensor::f_scaled_dot_product_attention(
            &q, keys, values, mask, 0.0, false, None, false,
        )?
        .f_transpose(0, 1)?
        .f_reshape([count, self.config.hidden_size])?;
        let x = self
            .queries
            .f_narrow(0, rows.start, count)?
            .f_add(&self.out_proj.forward(&context)?)?;
        let h = self.mlp_norm.forward(&x)?;
        let inner = self
            .gate_proj
            .forward(&h)?
            .f_silu()?
            .f_mul(&self.up_proj.forward(&h)?)?;
        let x = x.f_add(&self.down_proj.forward(&inner)?)?;
        self.output_proj.forward(&self.output_norm.forward(&x)?)
    }

    fn project_batch(&self, frames: &[Tensor]) -> Result<Tensor, TchError> {
        let (keys, values): (Vec<Tensor>, Vec<Tensor>) = frames
            .iter()
            .map(|f| self.keys_values(f))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .unzip();
        let keys = Tensor::f_cat(&keys, 1)?;
        let values = Tensor::f_cat(&values, 1)?;
        // The frame of every visual token and the last frame every query may see.
        let n = self.config.num_queries;
        let t = frames.len() as i64;
        let mut frame_of = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            frame_of.extend(std::iter::repeat_n(i as i64, frame.size()[0] as usize));
        }
        let mut block_of = vec![0_i64; n as usize];
        for k in 0..t {
            for q in query_block(n, t, k) {
                block_of[q as usize] = k;
            }
        }
        let frame_of = Tensor::f_from_slice(&frame_of)?.f_to_device(self.device)?;
        let block_of = Tensor::f_from_slice(&block_of)?.f_to_device(self.device)?;
        let hidden = frame_of
            .f_unsqueeze(0)?
            .f_gt_tensor(&block_of.f_unsqueeze(1)?)?;
        let mask = Tensor::f_zeros(hidden.size(), (Kind::Float, self.device))?
            .f_masked_fill(&hidden, f64::NEG_INFINITY)?;
        self.attend(0..n, &keys, &values, Some(&mask))
    }
}

/// Streaming [`Ccam::project`]: push frames in order; each push returns the output rows of
/// the block that frame completes, and [`CcamStream::finish`] the whole `[N, output_size]`,
/// equal to the batch output. Keys and values of earlier frames are kept, not recomputed.
pub struct CcamStream<'a> {
    ccam: &'a Ccam,
    frames: i64,
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
    blocks: Vec<Tensor>,
}

impl CcamStream<'_> {
    /// Frames pushed so far.
    pub fn pushed(&self) -> usize {
        self.blocks.len()
    }

    /// Adds the next frame's tokens `[n_t, visual_size]`; returns block `t`'s output rows
    /// `[len, output_size]` (`len` may be 0 when there are fewer queries than frames).
    pub fn push(&mut self, frame: &Tensor) -> Result<Tensor, OperatorError> {
        let t = self.blocks.len() as i64;
        if t == self.frames {
            return Err(OperatorError::InvalidInput(format!(
                "{} stream was opened for {} frames",
                self.ccam.name, self.frames
            )));
        }
        self.ccam.check_frame(frame)?;
        let block = tch::no_grad(|| -> Result<Tensor, TchError> {
            let (k, v) = self.ccam.keys_values(frame)?;
            self.keys.push(k);
            self.values.push(v);
            let keys = Tensor::f_cat(&self.keys, 1)?;
            let values = Tensor::f_cat(&self.values, 1)?;
            let rows = query_block(self.ccam.config.num_queries, self.frames, t);
            self.ccam.attend(rows, &keys, &values, None)
        })
        .map_err(|e| self.ccam.inference_error(e))?;
        self.blocks.push(block.shallow_clone());
        Ok(block)
    }

    /// All blocks, `[N, output_size]`, once every frame has been pushed.
    pub fn finish(self) -> Result<Tensor, OperatorError> {
        if self.pushed() as i64 != self.frames {
            return Err(OperatorError::InvalidInput(format!(
                "{} stream got {} of its {} frames",
                self.ccam.name,
                self.pushed(),
                self.frames
            )));
        }
        Tensor::f_cat(&self.blocks, 0).map_err(|e| self.ccam.inference_error(e))
    }
}

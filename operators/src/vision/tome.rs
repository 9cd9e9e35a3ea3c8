//! Token merging: fewer visual tokens for the projector and the LLM, at little cost in quality.
//!
//! * Inside the tower, ToMe (Bolya et al., as TinyChart applies it to SigLIP): in each layer,
//!   between the attention residual and the MLP, the `r` most redundant tokens are merged
//!   away by bipartite soft matching. The metric is the attention keys averaged over heads
//!   and L2-normalised; tokens split alternately into A (even positions) and B (odd); each A
//!   token is linked to its most similar B token; the `r` A tokens with the most similar
//!   partners are averaged into them, weighted by size. Sizes (patches per token) carry from
//!   layer to layer and enter attention as `log(size)` on the logits (proportional
//!   attention). After a merge the tokens are the unmerged A tokens in their previous order,
//!   then B. A class token (CLIP) is never merged, and at most half of a layer's other
//!   tokens are, so `r` larger than that merges half.
//! * Across frames, for fixed cameras: [`merge_across_frames`] merges a frame's tokens into
//!   the previous frame's tokens they repeat, so static background is encoded once.

use tch::{Kind, TchError, Tensor};

use crate::OperatorError;

/// How many tokens ToMe merges in each layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeSchedule {
    /// The plain model.
    None,
    /// `r` tokens in every layer.
    Constant(i64),
    /// `r` of layer `i` at index `i`; must cover every layer that runs.
    PerLayer(Vec<i64>),
}

impl MergeSchedule {
    /// Refuses negative `r` and a per-layer schedule shorter than the `layers` that run.
    pub(crate) fn check(&self, layers: i64) -> Result<(), OperatorError> {
        match self {
            Self::None => Ok(()),
            Self::Constant(r) if *r < 0 => Err(OperatorError::InvalidInput(format!(
                "token merging r = {r} is negative"
            ))),
            Self::Constant(_) => Ok(()),
            Self::PerLayer(rs) => {
                if let Some(r) = rs.iter().find(|r| **r < 0) {
                    return Err(OperatorError::InvalidInput(format!(
                        "token merging schedule {rs:?} has a negative r = {r}"
                    )));
                }
                if (rs.len() as i64) < layers {
                    return Err(OperatorError::InvalidInput(format!(
                        "token merging schedule {rs:?} covers {} layers, {layers} run",
                        rs.len()
                    )));
                }
                Ok(())
            }
        }
    }

    /// `r` for layer `layer`.
    pub(crate) fn r(&self, layer: usize) -> i64 {
        match self {
            Self::None => 0,
            Self::Constant(r) => *r,
            Self::PerLayer(rs) => rs.get(layer).copied().unwrap_or(0),
        }
    }
}

/// One ToMe step over `x` `[N, T, D]` with `sizes` `[N, T, 1]`, `assignment` `[N, P]` (each
/// original token's current index) and `metric` `[N, T, C]`; the first `protected` tokens
/// (0 or 1) are never merged. Returns the merged tokens, their sizes and the new assignment.
pub(crate) fn bipartite_merge(
    x: &Tensor,
    sizes: &Tensor,
    assignment: &Tensor,
    metric: &Tensor,
    r: i64,
    protected: i64,
) -> Result<(Tensor, Tensor, Tensor), TchError> {
    let (batch, tokens, _) = x.size3()?;
    let r = r.min((tokens - protected) / 2);
    if r <= 0 {
        return Ok((
            x.shallow_clone(),
            sizes.shallow_clone(),
            assignment.shallow_clone(),
        ));
    }
    let metric = metric.f_div(&metric.f_norm_scalaropt_dim(2, [-1], true)?)?;
    let a = metric.f_slice(1, 0, None, 2)?;
    let b = metric.f_slice(1, 1, None, 2)?;
    let mut scores = a.f_matmul(&b.f_transpose(1, 2)?)?;
    if protected > 0 {
        let first = Tensor::f_zeros([1], (Kind::Int64, x.device()))?;
        scores = scores.f_index_fill(1, &first, f64::NEG_INFINITY)?;
    }
    let (best, best_index) = scores.f_max_dim(-1, false)?;
    let (count_a, count_b) = (a.size()[1], b.size()[1]);
    // Stable, so equal scores merge in position order on every device.
    let (_, order) = best.f_sort_stable(true, -1, true)?;
    let src = order.f_narrow(1, 0, r)?;
    let (unmerged, _) = order.f_narrow(1, r, count_a - r)?.f_sort(-1, false)?;
    let dst = best_index.f_gather(1, &src, false)?;

    let merge = |t: &Tensor| -> Result<Tensor, TchError> {
        let channels = t.size()[2];
        let ta = t.f_slice(1, 0, None, 2)?;
        let tb = t.f_slice(1, 1, None, 2)?;
        let expand = |index: &Tensor, rows: i64| {
            index
                .f_unsqueeze(-1)?
                .f_expand([batch, rows, channels], false)
        };
        let kept = ta.f_gather(1, &expand(&unmerged, count_a - r)?, false)?;
        let moved = ta.f_gather(1, &expand(&src, r)?, false)?;
        let tb = tb.f_scatter_add(1, &expand(&dst, r)?, &moved)?;
        Tensor::f_cat(&[&kept, &tb], 1)
    };
    let summed = merge(&x.f_mul(sizes)?)?;
    let new_sizes = merge(sizes)?;
    let merged = summed.f_div(&new_sizes)?;

    // Each current token's index after the merge, then each original token's.
    let device = x.device();
    let kept_count = count_a - r;
    let positions = |start: i64, count: i64| -> Result<Tensor, TchError> {
        Tensor::f_arange_start(start, start + count, (Kind::Int64, device))?
            .f_unsqueeze(0)?
            .f_expand([batch, count], false)
    };
    let new_a = Tensor::f_zeros([batch, count_a], (Kind::Int64, device))?
        .f_scatter(1, &unmerged, &positions(0, kept_count)?)?
        .f_scatter(1, &src, &dst.f_add_scalar(kept_count)?)?;
    let new_b = positions(kept_count, count_b)?;
    let even = Tensor::f_arange_start_step(0, tokens, 2, (Kind::Int64, device))?
        .f_unsqueeze(0)?
        .f_expand([batch, count_a], false)?;
    let odd = Tensor::f_arange_start_step(1, tokens, 2, (Kind::Int64, device))?
        .f_unsqueeze(0)?
        .f_expand([batch, count_b], false)?;
    let new_index = Tensor::f_zeros([batch, tokens], (Kind::Int64, device))?
        .f_scatter(1, &even, &new_a)?
        .f_scatter(1, &odd, &new_b)?;
    let assignment = new_index.f_gather(1, assignment, false)?;
    Ok((merged, new_sizes, assignment))
}

/// Tokens of consecutive frames after [`merge_across_frames`].
pub struct CrossFrameTokens {
    /// Per frame, `[k_t, D]`: the tokens it keeps, merged tokens averaged in.
    pub tokens: Vec<Tensor>,
    /// Per frame, `[k_t]` float: the patches (over all frames) each kept token stands for.
    pub sizes: Vec<Tensor>,
    /// Per frame, `k_t`: how many of its tokens it keeps.
    pub kept: Vec<usize>,
}

/// Merges the tokens of a fixed camera's consecutive frames, `tokens` `[F, n, D]` with
/// `sizes` `[F, n]`, in frame order. A token of frame `t ≥ 1` whose best cosine match among
/// frame `t − 1`'s tokens exceeds `threshold` joins that token's group — the kept token the
/// match is, or was itself merged into — so a patch static for many frames stays one token,
/// kept in the frame where it first appeared. Each group becomes the size-weighted average of
/// its members with their sizes summed. Matching is against all of frame `t − 1`'s tokens,
/// merged or not, since those are what frame `t` repeats.
pub fn merge_across_frames(
    tokens: &Tensor,
    sizes: &Tensor,
    threshold: f64,
) -> Result<CrossFrameTokens, OperatorError> {
    let shape = tokens.size();
    if shape.len() != 3 || sizes.size() != shape[..2] {
        return Err(OperatorError::InvalidInput(format!(
            "cross-frame merging takes tokens [F, n, D] and sizes [F, n], got {shape:?} and {:?}",
            sizes.size()
        )));
    }
    tch::no_grad(|| cross_frame(tokens, sizes, threshold)).map_err(|e| OperatorError::Inference {
        model: "cross-frame token merging".into(),
        message: e.to_string(),
    })
}

fn cross_frame(
    tokens: &Tensor,
    sizes: &Tensor,
    threshold: f64,
) -> Result<CrossFrameTokens, TchError> {
    let (frames, n, dim) = tokens.size3()?;
    let device = tokens.device();
    let unit = tokens.f_div(&tokens.f_norm_scalaropt_dim(2, [-1], true)?)?;
    let mut root: Vec<i64> = (0..frames * n).collect();
    for t in 1..frames {
        let similarity = unit
            .f_get(t)?
            .f_matmul(&unit.f_get(t - 1)?.f_transpose(0, 1)?)?;
        let (best, index) = similarity.f_max_dim(1, false)?;
        let best = Vec::<f32>::try_from(&best.f_to_device(tch::Device::Cpu)?)?;
        let index = Vec::<i64>::try_from(&index.f_to_device(tch::Device::Cpu)?)?;
        for (i, (&score, &j)) in best.iter().zip(&index).enumerate() {
            if f64::from(score) > threshold {
                root[(t * n) as usize + i] = root[((t - 1) * n + j) as usize];
            }
        }
    }
    let flat = tokens
        .f_reshape([frames * n, dim])?
        .f_to_kind(Kind::Float)?;
    let flat_sizes = sizes.f_reshape([frames * n])?.f_to_kind(Kind::Float)?;
    let root_index = Tensor::f_from_slice(&root)?.f_to_device(device)?;
    let summed = flat.f_zeros_like()?.f_index_add(
        0,
        &root_index,
        &flat.f_mul(&flat_sizes.f_unsqueeze(1)?)?,
    )?;
    let group_sizes = flat_sizes
        .f_zeros_like()?
        .f_index_add(0, &root_index, &flat_sizes)?;
    let mut out = CrossFrameTokens {
        tokens: Vec::with_capacity(frames as usize),
        sizes: Vec::with_capacity(frames as usize),
        kept: Vec::with_capacity(frames as usize),
    };
    for frame in root.chunks(n as usize).enumerate().map(|(t, roots)| {
        let start = t as i64 * n;
        roots
            .iter()
            .enumerate()
            .filter(|&(i, &r)| r == start + i as i64)
            .map(|(i, _)| start + i as i64)
            .collect::<Vec<i64>>()
    }) {
        let index = Tensor::f_from_slice(&frame)?.f_to_device(device)?;
        let frame_sizes = group_sizes.f_index_select(0, &index)?;
        out.tokens.push(
            summed
                .f_index_select(0, &index)?
                .f_div(&frame_sizes.f_unsqueeze(1)?)?,
        );
        out.sizes.push(frame_sizes);
        out.kept.push(frame.len());
    }
    Ok(out)
}

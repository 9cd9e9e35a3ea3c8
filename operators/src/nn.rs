//! Small layers shared by the `tch` models, each loaded from a [`Checkpoint`] by its tensor
//! names (`{name}.weight`, `{name}.bias`) with the shapes checked.

use tch::{TchError, Tensor};

use crate::checkpoint::Checkpoint;
use crate::OperatorError;

/// A dense layer: `x · weightᵀ + bias`.
pub(crate) struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    pub(crate) fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// `name.weight` `[outputs, inputs]` and, if `bias`, `name.bias` `[outputs]`.
    pub(crate) fn load(
        checkpoint: &mut Checkpoint,
        name: &str,
        inputs: i64,
        outputs: i64,
        bias: bool,
    ) -> Result<Self, OperatorError> {
        Ok(Self {
            weight: checkpoint.take(&format!("{name}.weight"), &[outputs, inputs])?,
            bias: if bias {
                Some(checkpoint.take(&format!("{name}.bias"), &[outputs])?)
            } else {
                None
            },
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        x.f_linear(&self.weight, self.bias.as_ref())
    }
}

/// LayerNorm over the last dimension, with weight and bias.
pub(crate) struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub(crate) fn new(weight: Tensor, bias: Tensor, eps: f64) -> Self {
        Self { weight, bias, eps }
    }

    pub(crate) fn load(
        checkpoint: &mut Checkpoint,
        name: &str,
        size: i64,
        eps: f64,
    ) -> Result<Self, OperatorError> {
        Ok(Self {
            weight: checkpoint.take(&format!("{name}.weight"), &[size])?,
            bias: checkpoint.take(&format!("{name}.bias"), &[size])?,
            eps,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        x.f_layer_norm(
            self.weight.size(),
            Some(&self.weight),
            Some(&self.bias),
            self.eps,
            true,
        )
    }
}

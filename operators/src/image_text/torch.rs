//! The Hugging Face layout run with `tch`: `transformers`' `CLIPModel` / `SiglipModel`
//! `get_image_features` and `get_text_features` over the checkpoint's safetensors.
//!
//! CLIP: the vision tower's class token through the post-LayerNorm, then `visual_projection`;
//! the text tower's end token, then `text_projection` (both without bias). SigLIP: the vision
//! tower's post-LayerNorm tokens through the attention-pooling head; the text tower's last
//! token through `text_model.head` (with bias).

use std::path::Path;

use tch::{Device, Kind, TchError, Tensor};

use super::config::ModelConfig;
use super::siglip_head::AttentionPoolingHead;
use super::text_tower::TextTower;
use super::tokenize::TokenBatch;
use super::ImageTextFamily;
use crate::checkpoint::Checkpoint;
use crate::nn::Linear;
use crate::vision::tome::MergeSchedule;
use crate::vision::{Activation, FeatureLayer, VisionTower};
use crate::OperatorError;

enum ImageHead {
    ClipProjection(Linear),
    Siglip(AttentionPoolingHead),
}

pub(super) struct TorchModel {
    vision: VisionTower,
    image_head: ImageHead,
    text: TextTower,
    text_head: Linear,
    logit_scale: f32,
    logit_bias: f32,
    /// What errors call the model.
    name: String,
}

impl TorchModel {
    pub(super) fn load(
        dir: &Path,
        name: &str,
        config: &ModelConfig,
        device: Device,
        hint: &str,
    ) -> Result<Self, OperatorError> {
        let mut checkpoint = Checkpoint::open_dir(dir, device, hint)?;
        let vision = VisionTower::from_checkpoint(
            name.to_owned(),
            config.vision.clone(),
            &mut checkpoint,
            device,
        )?;
        let (dimension, text_hidden) = (config.dimension, config.text.hidden_size);
        let clip = config.family == ImageTextFamily::Clip;
        let text = TextTower::load(&mut checkpoint, "text_model.", &config.text, clip, device)?;
        let (image_head, text_head, logit_scale, logit_bias) = if clip {
            let visual = Linear::load(
                &mut checkpoint,
                "visual_projection",
                config.vision.hidden_size,
                dimension,
                false,
            )?;
            let textual = Linear::load(
                &mut checkpoint,
                "text_projection",
                text_hidden,
                dimension,
                false,
            )?;
            let scale = checkpoint.take("logit_scale", &[])?;
            (ImageHead::ClipProjection(visual), textual, scale, None)
        } else {
            // `VisionConfig::load` accepted the activation.
            let activation =
                Activation::from_name(&config.vision.hidden_act).unwrap_or(Activation::Gelu);
            let head = AttentionPoolingHead::load(
                &mut checkpoint,
                "vision_model.head.",
                &config.vision,
                activation,
            )?;
            let textual = Linear::load(
                &mut checkpoint,
                "text_model.head",
                text_hidden,
                dimension,
                true,
            )?;
            let scale = checkpoint.take("logit_scale", &[1])?;
            let bias = checkpoint.take("logit_bias", &[1])?;
            (ImageHead::Siglip(head), textual, scale, Some(bias))
        };
        let value = |t: &Tensor| -> Result<f32, OperatorError> {
            t.f_reshape([1])
                .and_then(|t| t.f_double_value(&[0]))
                .map(|v| v as f32)
                .map_err(|e| OperatorError::ModelLoad {
                    path: checkpoint.path().to_owned(),
                    message: format!("cannot read the logit scale or bias: {e}"),
                })
        };
        Ok(Self {
            vision,
            image_head,
            text,
            text_head,
            logit_scale: value(&logit_scale)?.exp(),
            logit_bias: logit_bias.as_ref().map(value).transpose()?.unwrap_or(0.0),
            name: name.to_owned(),
        })
    }

    pub(super) fn logit_scale(&self) -> f32 {
        self.logit_scale
    }

    pub(super) fn logit_bias(&self) -> f32 {
        self.logit_bias
    }

    /// Un-normalised embeddings of `count` frames of `size` (`[count, 3, height, width]`
    /// values, row-major).
    pub(super) fn embed_images(
        &self,
        pixels: &[f32],
        count: usize,
        size: (i32, i32),
    ) -> Result<Vec<Vec<f32>>, OperatorError> {
        let shape = [count as i64, 3, i64::from(size.0), i64::from(size.1)];
        let pixels = Tensor::f_from_slice(pixels)
            .and_then(|t| t.f_view(shape))
            .map_err(|e| self.inference_error(e))?;
        let out = self
            .vision
            .encode(&pixels, FeatureLayer::PostNorm, &MergeSchedule::None)?;
        tch::no_grad(|| match &self.image_head {
            // The post-LayerNorm is per token, so this is post_layernorm(CLS).
            ImageHead::ClipProjection(projection) => match &out.class_token {
                Some(class) => projection.forward(class),
                None => Err(TchError::Kind("the CLIP tower gave no class token".into())),
            },
            ImageHead::Siglip(head) => head.forward(&out.tokens),
        })
        .and_then(|t| rows(&t))
        .map_err(|e| self.inference_error(e))
    }

    /// Un-normalised embeddings of a token batch.
    pub(super) fn embed_texts(&self, batch: &TokenBatch) -> Result<Vec<Vec<f32>>, OperatorError> {
        tch::no_grad(|| {
            let shape = [batch.rows as i64, batch.length as i64];
            let ids = Tensor::f_from_slice(&batch.ids)?.f_view(shape)?;
            let mask = Tensor::f_from_slice(&batch.mask)?.f_view(shape)?;
            let pool = Tensor::f_from_slice(&batch.pool)?;
            let pooled = self.text.pooled(&ids, &mask, &pool)?;
            rows(&self.text_head.forward(&pooled)?)
        })
        .map_err(|e| self.inference_error(e))
    }

    fn inference_error(&self, error: TchError) -> OperatorError {
        OperatorError::Inference {
            model: self.name.clone(),
            message: error.to_string(),
        }
    }
}

fn rows(t: &Tensor) -> Result<Vec<Vec<f32>>, TchError> {
    Vec::<Vec<f32>>::try_from(&t.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?)
}

//! ViT vision encoders from Hugging Face SigLIP and CLIP checkpoints, run with `tch`.
//!
//! [`VisionTower`] turns a batch of frames — `[N, 3, H, W]` float, already resized to the
//! checkpoint's `image_size` and normalised as its processor does — into patch tokens, the
//! input a video-LLM projector (such as [`crate::ccam`]) takes. It reads the checkpoint folder
//! as the Hub ships it: `config.json` (a vision model, or a full SigLIP / CLIP model whose
//! `vision_config` is used) and the weights in one safetensors file or in shards. Text towers
//! and projection heads in the same files are ignored.
//!
//! The forward pass is `transformers`' `SiglipVisionTransformer` / `CLIPVisionTransformer`:
//! patch embedding (a strided convolution), learned position embeddings, CLIP's class token
//! and pre-LayerNorm, pre-norm encoder blocks, and the post-LayerNorm. Video-LLMs take the
//! hidden states of an inner layer rather than the last one (Video-CCAM uses the
//! second-to-last of SigLIP-SO400M), so the layer is chosen per call with [`FeatureLayer`]
//! and the layers after it are not run. Token merging ([`tome`]) can run inside the tower.

pub mod tome;

use std::path::Path;

use serde::Deserialize;
use tch::{Device, Kind, TchError, Tensor};

use crate::checkpoint::{read_json, required_file, Checkpoint, CONFIG_FILE};
use crate::nn::{LayerNorm, Linear};
use crate::OperatorError;
use tome::{bipartite_merge, MergeSchedule};

const MISSING_HINT: &str = "a SigLIP or CLIP checkpoint folder needs config.json and \
                            model.safetensors (or sharded safetensors with their index)";

/// The two ViT families; they differ in details the forward pass must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisionFamily {
    /// SigLIP: no class token, patch embedding with bias, post-LayerNorm on every token.
    Siglip,
    /// CLIP: a class token, a LayerNorm before the encoder, a bias-free patch embedding.
    Clip,
}

/// Which hidden states [`VisionTower::encode`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureLayer {
    /// `transformers`' `hidden_states[i]`: 0 is the embeddings, `i` the output of layer `i`,
    /// negative counts from the end (−1 = last layer, −2 = second-to-last, as LLaVA's and
    /// Video-CCAM's `vision_feature_layer`). No post-LayerNorm.
    Hidden(i64),
    /// The last layer's output through the post-LayerNorm (SigLIP's `last_hidden_state`).
    PostNorm,
}

/// The vision hyper-parameters, with each family's `transformers` defaults for fields a
/// `config.json` leaves out (Hub configs such as SigLIP-SO400M's list only overrides).
#[derive(Debug, Clone)]
pub struct VisionConfig {
    pub family: VisionFamily,
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub num_channels: i64,
    pub image_size: i64,
    pub patch_size: i64,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
}

#[derive(Deserialize)]
struct RawVisionConfig {
    hidden_size: Option<i64>,
    intermediate_size: Option<i64>,
    num_hidden_layers: Option<i64>,
    num_attention_heads: Option<i64>,
    num_channels: Option<i64>,
    image_size: Option<i64>,
    patch_size: Option<i64>,
    hidden_act: Option<String>,
    layer_norm_eps: Option<f64>,
}

impl VisionConfig {
    /// Reads `config.json`, refusing model types other than SigLIP and CLIP.
    pub fn load(path: &Path) -> Result<Self, OperatorError> {
        let unsupported = |message: String| OperatorError::UnsupportedModel {
            path: path.to_owned(),
            message,
        };
        let json: serde_json::Value = read_json(path)?;
        let model_type = json
            .get("model_type")
            .and_then(|t| t.as_str())
            .unwrap_or("");
        let (family, vision) = match model_type {
            "siglip_vision_model" => (VisionFamily::Siglip, json.clone()),
            "clip_vision_model" => (VisionFamily::Clip, json.clone()),
            "siglip" | "clip" => {
                let family = if model_type == "clip" {
                    VisionFamily::Clip
                } else {
                    VisionFamily::Siglip
                };
                let vision = json.get("vision_config").cloned().ok_or_else(|| {
                    unsupported(format!("model_type {model_type:?} without a vision_config"))
                })?;
                (family, vision)
            }
            other => {
                return Err(unsupported(format!(
                    "model_type {other:?}; only siglip, siglip_vision_model, clip and \
                     clip_vision_model are implemented"
                )))
            }
        };
        let raw: RawVisionConfig =
            serde_json::from_value(vision).map_err(|e| OperatorError::ModelLoad {
                path: path.to_owned(),
                message: format!("vision config: {e}"),
            })?;
        let siglip = family == VisionFamily::Siglip;
        let config = Self {
            family,
            hidden_size: raw.hidden_size.unwrap_or(768),
            intermediate_size: raw.intermediate_size.unwrap_or(3072),
            num_hidden_layers: raw.num_hidden_layers.unwrap_or(12),
            num_attention_heads: raw.num_attention_heads.unwrap_or(12),
            num_channels: raw.num_channels.unwrap_or(3),
            image_size: raw.image_size.unwrap_or(224),
            patch_size: raw.patch_size.unwrap_or(if siglip { 16 } else { 32 }),
            hidden_act: raw.hidden_act.unwrap_or_else(|| {
                if siglip {
                    "gelu_pytorch_tanh"
                } else {
                    "quick_gelu"
                }
                .into()
            }),
            layer_norm_eps: raw
                .layer_norm_eps
                .unwrap_or(if siglip { 1e-6 } else { 1e-5 }),
        };
        if Activation::from_name(&config.hidden_act).is_none() {
            return Err(unsupported(format!(
                "hidden_act {:?}; only gelu, gelu_pytorch_tanh and quick_gelu are implemented",
                config.hidden_act
            )));
        }
        if config.num_attention_heads <= 0 || config.hidden_size % config.num_attention_heads != 0 {
            return Err(unsupported(format!(
                "hidden_size {} does not split into {} attention heads",
                config.hidden_size, config.num_attention_heads
            )));
        }
        if config.patch_size <= 0 || config.image_size % config.patch_size != 0 {
            return Err(unsupported(format!(
                "image_size {} is not a multiple of patch_size {}",
                config.image_size, config.patch_size
            )));
        }
        Ok(config)
    }

    /// Patches per frame: the tokens a frame gives before merging (class token not counted).
    pub fn patches(&self) -> i64 {
        (self.image_size / self.patch_size).pow(2)
    }
}

/// The MLP activations of the ViT families (shared with the text towers in
/// [`crate::image_text`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Activation {
    Gelu,
    GeluTanh,
    /// CLIP's `x * sigmoid(1.702 x)`.
    QuickGelu,
}

impl Activation {
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Self::Gelu),
            "gelu_pytorch_tanh" | "gelu_new" => Some(Self::GeluTanh),
            "quick_gelu" => Some(Self::QuickGelu),
            _ => None,
        }
    }

    pub(crate) fn forward(self, x: &Tensor) -> Result<Tensor, TchError> {
        match self {
            Self::Gelu => x.f_gelu("none"),
            Self::GeluTanh => x.f_gelu("tanh"),
            Self::QuickGelu => x.f_mul(&x.f_mul_scalar(1.702)?.f_sigmoid()?),
        }
    }
}

/// One pre-norm encoder block of CLIP and SigLIP, the same in their vision and text towers
/// (`transformers`' `CLIPEncoderLayer` / `SiglipEncoderLayer`): each tower runs it its own way.
pub(crate) struct Layer {
    pub(crate) norm1: LayerNorm,
    pub(crate) q: Linear,
    pub(crate) k: Linear,
    pub(crate) v: Linear,
    pub(crate) out: Linear,
    pub(crate) norm2: LayerNorm,
    pub(crate) fc1: Linear,
    pub(crate) fc2: Linear,
}

impl Layer {
    /// The block `{prefix}encoder.layers.{index}` of width `hidden`, MLP width `inner`.
    pub(crate) fn load(
        checkpoint: &mut Checkpoint,
        prefix: &str,
        index: i64,
        (hidden, inner): (i64, i64),
        eps: f64,
    ) -> Result<Self, OperatorError> {
        let l = format!("{prefix}encoder.layers.{index}");
        let c = checkpoint;
        Ok(Self {
            norm1: LayerNorm::load(c, &format!("{l}.layer_norm1"), hidden, eps)?,
            q: Linear::load(c, &format!("{l}.self_attn.q_proj"), hidden, hidden, true)?,
            k: Linear::load(c, &format!("{l}.self_attn.k_proj"), hidden, hidden, true)?,
            v: Linear::load(c, &format!("{l}.self_attn.v_proj"), hidden, hidden, true)?,
            out: Linear::load(c, &format!("{l}.self_attn.out_proj"), hidden, hidden, true)?,
            norm2: LayerNorm::load(c, &format!("{l}.layer_norm2"), hidden, eps)?,
            fc1: Linear::load(c, &format!("{l}.mlp.fc1"), hidden, inner, true)?,
            fc2: Linear::load(c, &format!("{l}.mlp.fc2"), inner, hidden, true)?,
        })
    }
}

/// What [`VisionTower::encode`] returns for a batch of `N` frames.
pub struct TowerOutput {
    /// `[N, T, D]` patch tokens; `T` is [`VisionConfig::patches`] without merging, fewer with
    /// it. The class token is not among them.
    pub tokens: Tensor,
    /// `[N, D]` CLIP's class token at the same layer; `None` for SigLIP.
    pub class_token: Option<Tensor>,
    /// `[N, T]` float: how many patches each token stands for (all 1 without merging).
    pub sizes: Tensor,
    /// `[N, P]` int64: for each of the `P` patches (row-major), the index in `tokens` of the
    /// token it was merged into.
    pub assignment: Tensor,
}

/// A loaded SigLIP or CLIP vision encoder. `Send` but not `Sync`, as `tch` tensors are.
pub struct VisionTower {
    name: String,
    config: VisionConfig,
    activation: Activation,
    patch_weight: Tensor,
    patch_bias: Option<Tensor>,
    class_embedding: Option<Tensor>,
    position_embedding: Tensor,
    pre_norm: Option<LayerNorm>,
    layers: Vec<Layer>,
    post_norm: LayerNorm,
    device: Device,
}

impl VisionTower {
    /// Loads the checkpoint folder `dir` onto `device`.
    pub fn load(dir: &Path, device: Device) -> Result<Self, OperatorError> {
        let config = VisionConfig::load(&required_file(dir, CONFIG_FILE, MISSING_HINT)?)?;
        let mut checkpoint = Checkpoint::open_dir(dir, device, MISSING_HINT)?;
        Self::from_checkpoint(dir.display().to_string(), config, &mut checkpoint, device)
    }

    /// Takes the tower's tensors out of an opened `checkpoint`, leaving the rest (a full
    /// model's text tower and heads) for the caller, so the weights are read once. `name` is
    /// what errors call the model.
    pub fn from_checkpoint(
        name: String,
        config: VisionConfig,
        checkpoint: &mut Checkpoint,
        device: Device,
    ) -> Result<Self, OperatorError> {
        // Full SigLIP / CLIP models nest the tower under `vision_model.`, and so do
        // vision-only models saved by transformers 4; transformers 5 saves those bare.
        let p = if checkpoint.has("vision_model.embeddings.patch_embedding.weight") {
            "vision_model."
        } else {
            ""
        };
        let clip = config.family == VisionFamily::Clip;
        let (hidden, inner, eps) = (
            config.hidden_size,
            config.intermediate_size,
            config.layer_norm_eps,
        );
        let patch = config.patch_size;
        let patch_weight = checkpoint.take(
            &format!("{p}embeddings.patch_embedding.weight"),
            &[hidden, config.num_channels, patch, patch],
        )?;
        let patch_bias = if clip {
            None
        } else {
            Some(checkpoint.take(&format!("{p}embeddings.patch_embedding.bias"), &[hidden])?)
        };
        let class_embedding = if clip {
            Some(checkpoint.take(&format!("{p}embeddings.class_embedding"), &[hidden])?)
        } else {
            None
        };
        let positions = config.patches() + i64::from(clip);
        let position_embedding = checkpoint.take(
            &format!("{p}embeddings.position_embedding.weight"),
            &[positions, hidden],
        )?;
        let pre_norm = if clip {
            // The misspelling is `transformers`' own.
            Some(LayerNorm::load(
                checkpoint,
                &format!("{p}pre_layrnorm"),
                hidden,
                eps,
            )?)
        } else {
            None
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(checkpoint, p, i, (hidden, inner), eps))
            .collect::<Result<Vec<_>, OperatorError>>()?;
        let post_norm = LayerNorm::load(checkpoint, &format!("{p}post_layernorm"), hidden, eps)?;
        Ok(Self {
            name,
            // `VisionConfig::load` accepted the activation.
            activation: Activation::from_name(&config.hidden_act).unwrap_or(Activation::Gelu),
            config,
            patch_weight,
            patch_bias,
            class_embedding,
            position_embedding,
            pre_norm,
            layers,
            post_norm,
            device,
        })
    }

    pub fn config(&self) -> &VisionConfig {
        &self.config
    }

    /// Patch tokens of `layer` for `pixels` `[N, C, image_size, image_size]`, merging
    /// `merging` tokens inside the tower (pass [`MergeSchedule::None`] for the plain model).
    pub fn encode(
        &self,
        pixels: &Tensor,
        layer: FeatureLayer,
        merging: &MergeSchedule,
    ) -> Result<TowerOutput, OperatorError> {
        let c = &self.config;
        let expected = [c.num_channels, c.image_size, c.image_size];
        let size = pixels.size();
        if size.len() != 4 || size[1..] != expected {
            return Err(OperatorError::InvalidInput(format!(
                "{} takes frames [N, {}, {}, {}], got {size:?}",
                self.name, expected[0], expected[1], expected[2]
            )));
        }
        let layers = c.num_hidden_layers;
        let (run, post_norm) = match layer {
            FeatureLayer::PostNorm => (layers, true),
            FeatureLayer::Hidden(i) => {
                let index = if i < 0 { layers + 1 + i } else { i };
                if !(0..=layers).contains(&index) {
                    return Err(OperatorError::InvalidInput(format!(
                        "feature layer {i} is outside the {} hidden states of {}",
                        layers + 1,
                        self.name
                    )));
                }
                (index, false)
            }
        };
        merging.check(run)?;
        tch::no_grad(|| self.forward(pixels, run, post_norm, merging)).map_err(|e| {
            OperatorError::Inference {
                model: self.name.clone(),
                message: e.to_string(),
            }
        })
    }

    fn forward(
        &self,
        pixels: &Tensor,
        run: i64,
        post_norm: bool,
        merging: &MergeSchedule,
    ) -> Result<TowerOutput, TchError> {
        let patch = self.config.patch_size;
        let pixels = pixels.f_to_kind(Kind::Float)?.f_to_device(self.device)?;
        let batch = pixels.size()[0];
        let mut x = pixels
            .f_conv2d(
                &self.patch_weight,
                self.patch_bias.as_ref(),
                [patch, patch],
                [0, 0],
                [1, 1],
                1,
            )?
            .f_flatten(2, 3)?
            .f_transpose(1, 2)?;
        let hidden = self.config.hidden_size;
        if let Some(class) = &self.class_embedding {
            let class = class
                .f_view([1, 1, hidden])?
                .f_expand([batch, 1, hidden], false)?;
            x = Tensor::f_cat(&[&class, &x], 1)?;
        }
        x = x.f_add(&self.position_embedding)?;
        if let Some(norm) = &self.pre_norm {
            x = norm.forward(&x)?;
        }
        let protected = i64::from(self.class_embedding.is_some());
        let tokens = x.size()[1];
        let mut sizes = Tensor::f_ones([batch, tokens, 1], (Kind::Float, self.device))?;
        let mut assignment = Tensor::f_arange(tokens, (Kind::Int64, self.device))?
            .f_unsqueeze(0)?
            .f_expand([batch, tokens], false)?
            .f_contiguous()?;
        let mut merged = false;
        for (i, layer) in self.layers.iter().take(run as usize).enumerate() {
            let (attended, keys) = self.attention(layer, &x, merged.then_some(&sizes))?;
            x = attended;
            let r = merging.r(i);
            if r > 0 {
                (x, sizes, assignment) =
                    bipartite_merge(&x, &sizes, &assignment, &keys, r, protected)?;
                merged = true;
            }
            let inner = self
                .activation
                .forward(&layer.fc1.forward(&layer.norm2.forward(&x)?)?)?;
            x = x.f_add(&layer.fc2.forward(&inner)?)?;
        }
        if post_norm {
            x = self.post_norm.forward(&x)?;
        }
        let count = x.size()[1] - protected;
        let (class_token, tokens, sizes, assignment) = if protected == 1 {
            (
                Some(x.f_select(1, 0)?),
                x.f_narrow(1, 1, count)?,
                sizes.f_narrow(1, 1, count)?,
                // The class token stays at index 0 and keeps its own slot.
                assignment
                    .f_narrow(1, 1, assignment.size()[1] - 1)?
                    .f_sub_scalar(1)?,
            )
        } else {
            (None, x, sizes, assignment)
        };
        Ok(TowerOutput {
            tokens,
            class_token,
            sizes: sizes.f_squeeze_dim(-1)?,
            assignment,
        })
    }

    /// The attention half of a block: `x` plus attention over its LayerNorm, and the keys
    /// averaged over heads (ToMe's similarity metric). With `sizes`, attention is ToMe's
    /// proportional attention: `log(size)` added to every logit, so a merged token weighs
    /// as much as the patches it stands for.
    fn attention(
        &self,
        layer: &Layer,
        x: &Tensor,
        sizes: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor), TchError> {
        let (batch, tokens, hidden) = x.size3()?;
        let heads = self.config.num_attention_heads;
        let split = |t: Tensor| -> Result<Tensor, TchError> {
            t.f_view([batch, tokens, heads, hidden / heads])?
                .f_transpose(1, 2)
        };
        let h = layer.norm1.forward(x)?;
        let q = split(layer.q.forward(&h)?)?;
        let k = split(layer.k.forward(&h)?)?;
        let v = split(layer.v.forward(&h)?)?;
        let bias = sizes
            .map(|s| s.f_log()?.f_view([batch, 1, 1, tokens]))
            .transpose()?;
        let context = Tensor::f_scaled_dot_product_attention(
            &q,
            &k,
            &v,
            bias.as_ref(),
            0.0,
            false,
            None,
            false,
        )?
        .f_transpose(1, 2)?
        .f_reshape([batch, tokens, hidden])?;
        let keys = k.f_mean_dim(1, false, Kind::Float)?;
        Ok((x.f_add(&layer.out.forward(&context)?)?, keys))
    }
}

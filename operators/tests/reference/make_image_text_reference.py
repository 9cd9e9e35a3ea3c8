"""Tiny image-text checkpoints and reference embeddings for operators/tests/image_text.rs.

* A CLIPModel and a SiglipModel (two towers each) built with `transformers` from a fixed seed
  and saved in the Hub's layout: config.json, model.safetensors, preprocessor_config.json and a
  real tokenizer.json (a word-level tokenizer trained here with `tokenizers` on camera-ish
  phrases: CLIP's template adds bos and eos, SigLIP's appends eos and pads with its own token).
* The CLIP pair exported to ONNX as Hugging Face optimum / transformers.js ship it:
  onnx/vision_model.onnx (`pixel_values` -> `image_embeds`) and onnx/text_model.onnx
  (`input_ids`, `attention_mask` -> `text_embeds`), both un-normalised projections, as those
  exports are; the operator normalises.
* Reference embeddings from `transformers` itself, in float64. Texts go through the tokenizer
  half of CLIPProcessor / SiglipProcessor with the processor's arguments (CLIP: padding=True,
  truncation to max_position_embeddings; SigLIP: padding="max_length", truncation). The image
  half cannot run here: `transformers`' image processors need torchvision (or Pillow for the
  slow ones) and neither is in the venv. So `processor_pixels` below follows the torchvision
  backend that CLIPImageProcessor / SiglipImageProcessor use (image_processing_backends.py)
  step by step: shortest-edge or fixed-size resize with uint8 antialiased bicubic (what
  torchvision runs on CPU, the same kernel as Pillow), centre crop, fused rescale + normalise.

Images are seeded uint8 BGR arrays. The "exact" ones are already the size the model takes (or
need only a crop), so no resampling happens and the Rust preprocessing must match to float
precision. The "resized" ones (odd sizes) go through the resize, where OpenCV's filters and the
processor's antialiased bicubic differ by design: the Rust test holds those to a cosine.

SigLIP's text embeddings are computed from `input_ids` alone: the model was trained attending
to its padding (big_vision has no text mask), and `get_text_features(input_ids=...)` is that.

Usage (from the repository root, after `source deploy/env.sh`):

    python operators/tests/reference/make_image_text_reference.py

It rewrites operators/tests/fixtures/{clip-pair-tiny,siglip-pair-tiny,clip-pair-tiny-onnx}/ and
image_text_reference.{safetensors,json} beside this file; commit the result.
"""

import io
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerFast, SiglipConfig, SiglipModel

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"

OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

CORPUS = [
    "a white delivery truck waiting at the north gate",
    "a red car parked near the loading dock at night",
    "two people walking past the gate in the rain",
    "a forklift moving pallets inside the warehouse",
    "an empty parking lot under street lights",
    "a cyclist crossing the road near the camera",
    "a bus stopping at the station entrance",
    "smoke rising behind the fence",
    "a dog running across the yard",
    "the barrier opens and a van drives in",
]

TEXTS = [
    "A white truck at the north gate.",
    "two people walking in the rain",
    "",
    "A forklift, a van and a zeppelin near the dock",  # "zeppelin" is not in the vocabulary
    # Longer than both models' limits: truncation keeps the start and the end token.
    "a red car parked near the loading dock at night while a bus stops at the station "
    "entrance and a cyclist crosses the road near the camera",
]

# (height, width) of the seeded images. Exact: 32x32 (the input), 32x45 and 41x32 (CLIP crops
# them without resizing; shortest edge already 32). Resized: odd sizes on both sides.
EXACT = {"clip": [(32, 32), (32, 45), (41, 32)], "siglip": [(32, 32)]}
RESIZED = [(41, 53), (53, 41), (24, 30)]


def perturb(model, generator):
    """Default initialisation leaves LayerNorms at 1/0 and biases at 0, which would hide a
    missing bias or norm weight: every parameter gets seeded noise instead."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator, dtype=torch.float64)
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * noise)
            elif name in ("logit_scale", "logit_bias"):
                p.copy_(noise)
            else:
                p.copy_(0.2 * noise)


def fresh(directory):
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)


def build_tokenizer(specials, template, pad):
    """A word-level tokenizer over CORPUS: lower-cased, split on whitespace and punctuation,
    `specials` first (so their ids are 0, 1, ...), `template` adding the model's tokens."""
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(CORPUS, trainers.WordLevelTrainer(special_tokens=specials))
    ids = {token: tokenizer.token_to_id(token) for token in specials}
    tokenizer.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(t, ids[t]) for t in specials if t in template]
    )
    if pad is not None:
        tokenizer.enable_padding(pad_id=ids[pad], pad_token=pad)
    return tokenizer, ids


def save_tokenizer(tokenizer, directory):
    tokenizer.save(str(directory / "tokenizer.json"))


def hf_tokenizer(directory, **special):
    return PreTrainedTokenizerFast(tokenizer_file=str(directory / "tokenizer.json"), **special)


def processor_pixels(bgr, config):
    """The torchvision-backend image processor on one uint8 BGR [H, W, 3] array."""
    image = torch.from_numpy(bgr[:, :, ::-1].copy()).permute(2, 0, 1)[None]  # RGB, NCHW
    height, width = image.shape[-2:]
    size = config["size"]
    if "shortest_edge" in size:
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = size["shortest_edge"], int(size["shortest_edge"] * long / short)
        new = (new_long, new_short) if width <= height else (new_short, new_long)
    else:
        new = (size["height"], size["width"])
    if tuple(new) != (height, width):
        image = F.interpolate(image, size=new, mode="bicubic", antialias=True, align_corners=False)
    if config.get("do_center_crop"):
        crop_h, crop_w = config["crop_size"]["height"], config["crop_size"]["width"]
        height, width = image.shape[-2:]
        assert crop_h <= height and crop_w <= width
        top, left = int((height - crop_h) / 2.0), int((width - crop_w) / 2.0)
        image = image[..., top : top + crop_h, left : left + crop_w]
    mean = torch.tensor(config["image_mean"]) / config["rescale_factor"]
    std = torch.tensor(config["image_std"]) / config["rescale_factor"]
    return ((image.float() - mean[:, None, None]) / std[:, None, None]).double()


def seeded_image(height, width, generator):
    """A smooth image (coarse colours blown up, plus a little noise) as uint8 BGR, as camera
    frames are smooth: plain noise would make any two resamplers disagree wildly."""
    coarse = torch.rand(1, 3, 4, 5, generator=generator, dtype=torch.float64) * 255
    smooth = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=True)
    noise = torch.randn(1, 3, height, width, generator=generator, dtype=torch.float64) * 6
    return (smooth + noise).clamp(0, 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()


def normalised(t):
    return t / t.norm(dim=-1, keepdim=True)


def build_clip(generator):
    directory = FIXTURES / "clip-pair-tiny"
    fresh(directory)
    # eos is not the highest id, nor id 2: pooling must take transformers' "first eos" rule.
    tokenizer, ids = build_tokenizer(
        ["<unk>", "<|endoftext|>", "<|startoftext|>"],
        "<|startoftext|> $A <|endoftext|>",
        pad=None,
    )
    config = CLIPConfig(
        text_config=dict(
            vocab_size=tokenizer.get_vocab_size(),
            hidden_size=24,
            intermediate_size=40,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=12,
            hidden_act="gelu",
            bos_token_id=ids["<|startoftext|>"],
            eos_token_id=ids["<|endoftext|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            hidden_act="quick_gelu",
        ),
        projection_dim=16,
    )
    model = CLIPModel(config)
    perturb(model, generator)
    model.save_pretrained(directory)
    save_tokenizer(tokenizer, directory)
    preprocessor = {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": 32},
        "do_center_crop": True,
        "crop_size": {"height": 32, "width": 32},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": OPENAI_CLIP_MEAN,
        "image_std": OPENAI_CLIP_STD,
        "resample": 3,
    }
    (directory / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
    return model.eval(), directory, preprocessor


def build_siglip(generator):
    directory = FIXTURES / "siglip-pair-tiny"
    fresh(directory)
    # Its own pad token (as SigLIP 2's Gemma tokenizer has), so padding with eos would show.
    tokenizer, ids = build_tokenizer(["<pad>", "</s>", "<unk>"], "$A </s>", pad="<pad>")
    config = SiglipConfig(
        text_config=dict(
            vocab_size=tokenizer.get_vocab_size(),
            hidden_size=32,
            intermediate_size=40,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=16,
            hidden_act="gelu_pytorch_tanh",
            pad_token_id=ids["<pad>"],
            bos_token_id=None,  # SigLIP has none
            eos_token_id=ids["</s>"],
        ),
        vision_config=dict(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            hidden_act="gelu",
        ),
    )
    model = SiglipModel(config)
    perturb(model, generator)
    model.save_pretrained(directory)
    save_tokenizer(tokenizer, directory)
    # SigLIP's processor defaults except the size (and no image_mean: the 0.5 fallback is used).
    preprocessor = {
        "image_processor_type": "SiglipImageProcessor",
        "do_resize": True,
        "size": {"height": 32, "width": 32},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "resample": 3,
    }
    (directory / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
    preprocessor = dict(preprocessor, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return model.eval(), directory, preprocessor


class VisionExport(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model.get_image_features(pixel_values=pixel_values).pooler_output


class TextExport(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model.get_text_features(
            input_ids=input_ids, attention_mask=attention_mask
        ).pooler_output


def export(module, inputs, names, output, dynamic_axes, path):
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is chosen on purpose (the default one needs onnxscript); its
        # deprecation notices would only clutter the output. The comparison with PyTorch below
        # is what says the export is right.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            inputs,
            buffer,
            input_names=names,
            output_names=[output],
            dynamic_axes=dynamic_axes,
            opset_version=17,
            dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    proto.ir_version = 10  # onnxruntime 1.31 refuses the IR version onnx 1.23 writes
    onnx.checker.check_model(proto)
    path.write_bytes(proto.SerializeToString())
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def build_clip_onnx(model, source, pixels, tokens):
    directory = FIXTURES / "clip-pair-tiny-onnx"
    fresh(directory)
    (directory / "onnx").mkdir()
    for name in ("tokenizer.json", "preprocessor_config.json"):
        shutil.copy(source / name, directory / name)
    config = json.loads((source / "config.json").read_text())
    # Exports carry no logit scale; ours writes the learned one (the checkpoint's tensor, before
    # exp) into config.json, which the operator reads when present.
    config["logit_scale"] = model.logit_scale.item()
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    model = model.float()
    vision = export(
        VisionExport(model),
        (pixels.float(),),
        ["pixel_values"],
        "image_embeds",
        {"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
        directory / "onnx" / "vision_model.onnx",
    )
    text = export(
        TextExport(model),
        (tokens["input_ids"], tokens["attention_mask"]),
        ["input_ids", "attention_mask"],
        "text_embeds",
        {
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "text_embeds": {0: "batch"},
        },
        directory / "onnx" / "text_model.onnx",
    )
    # The graphs must compute what PyTorch does, at other batch sizes and lengths too.
    with torch.no_grad():
        for batch in (pixels[:1], pixels):
            expected = VisionExport(model)(batch.float()).numpy()
            (actual,) = vision.run(None, {"pixel_values": batch.float().numpy()})
            assert np.abs(actual - expected).max() < 1e-5, "vision export differs"
        for rows, length in ((slice(0, 1), 4), (slice(None), None)):
            ids = tokens["input_ids"][rows, :length]
            mask = tokens["attention_mask"][rows, :length]
            expected = TextExport(model)(ids, mask).numpy()
            (actual,) = text.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
            assert np.abs(actual - expected).max() < 1e-5, "text export differs"
    print("ONNX exports match PyTorch; inputs:", [i.name for i in text.get_inputs()])


def main():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(20261128)
    out = {}
    meta = {"texts": TEXTS}

    images = {
        "exact.clip": [seeded_image(h, w, generator) for h, w in EXACT["clip"]],
        "exact.siglip": [seeded_image(h, w, generator) for h, w in EXACT["siglip"]],
        "resized": [seeded_image(h, w, generator) for h, w in RESIZED],
    }
    for group, arrays in images.items():
        meta[f"images.{group}"] = len(arrays)
        for i, array in enumerate(arrays):
            out[f"images.{group}.{i}"] = torch.from_numpy(array.copy())

    clip, clip_dir, clip_pre = build_clip(generator)
    siglip, siglip_dir, siglip_pre = build_siglip(generator)

    with torch.no_grad():
        # CLIP: the processor's tokenizer arguments, truncated to the position table.
        clip_tokenizer = hf_tokenizer(
            clip_dir, bos_token="<|startoftext|>", eos_token="<|endoftext|>",
            pad_token="<|endoftext|>", unk_token="<unk>",
        )
        clip_tokens = clip_tokenizer(
            TEXTS, padding=True, truncation=True, max_length=12, return_tensors="pt"
        )
        assert clip_tokens["input_ids"].shape[1] == 12, "the long text must be truncated"
        model = clip.double()
        text = model.get_text_features(
            input_ids=clip_tokens["input_ids"], attention_mask=clip_tokens["attention_mask"]
        ).pooler_output
        out["clip.text"] = normalised(text)
        for group in ("exact.clip", "resized"):
            pixels = torch.cat([processor_pixels(a, clip_pre) for a in images[group]])
            out[f"clip.{group}"] = normalised(
                model.get_image_features(pixel_values=pixels).pooler_output
            )
        meta["clip.logit_scale"] = float(model.logit_scale.exp())

        # SigLIP: padding="max_length" to min(64, max_position_embeddings) = 16.
        siglip_tokenizer = hf_tokenizer(
            siglip_dir, eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
        )
        siglip_tokens = siglip_tokenizer(
            TEXTS, padding="max_length", truncation=True, max_length=16, return_tensors="pt"
        )
        assert (siglip_tokens["attention_mask"] == 0).any(), "some texts must be padded"
        model = siglip.double()
        text = model.get_text_features(input_ids=siglip_tokens["input_ids"]).pooler_output
        out["siglip.text"] = normalised(text)
        for group in ("exact.siglip", "resized"):
            pixels = torch.cat([processor_pixels(a, siglip_pre) for a in images[group]])
            out[f"siglip.{group}"] = normalised(
                model.get_image_features(pixel_values=pixels).pooler_output
            )
        meta["siglip.logit_scale"] = float(model.logit_scale.exp())
        meta["siglip.logit_bias"] = float(model.logit_bias)

    # The ONNX exports are traced from the float32 model.
    clip_pixels = torch.cat([processor_pixels(a, clip_pre) for a in images["exact.clip"]])
    build_clip_onnx(clip, clip_dir, clip_pixels, clip_tokens)

    save_file(
        {k: (t if t.dtype == torch.uint8 else t.float()).contiguous() for k, t in out.items()},
        str(HERE / "image_text_reference.safetensors"),
    )
    (HERE / "image_text_reference.json").write_text(json.dumps(meta, indent=2) + "\n")
    similarity = out["clip.text"] @ out["clip.exact.clip"].T
    print("CLIP text x image cosines:\n", similarity.numpy().round(3))


if __name__ == "__main__":
    main()

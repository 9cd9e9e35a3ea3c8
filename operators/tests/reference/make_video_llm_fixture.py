"""The tiny full-path model for operators/tests/video_llm.rs: fixtures/video-llm-tiny/.

A video-LLM folder as `argus_operators::video_llm::VideoLlm::load` reads it:

* vision/: the SigLIP tower of fixtures/siglip-tiny (hidden size 32), copied unchanged;
* llm/: the Llama of fixtures/tiny-llama (hidden size 64, word-level tokenizer, chat
  template), copied unchanged without its reference outputs;
* projector/: a new seeded CCAM projector whose visual_size (32) and output_size (64) are
  read from those two configs, so the three chain;
* video_llm.json: ToMe merging 2 tokens per layer on the second-to-last layer
  (Video-CCAM's), at most 16 frames.

The copied files are byte-identical to the fixtures they come from, so git stores them once;
rerun this after make_vision_reference.py or make_llm_reference.py rewrites those. The
projector comes from a fixed seed, so reruns write the same bytes.

Usage (from the repository root, after `source deploy/env.sh`):

    python operators/tests/reference/make_video_llm_fixture.py
"""

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"
TARGET = FIXTURES / "video-llm-tiny"

VISION_FILES = ["config.json", "model.safetensors"]
LLM_FILES = [
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
]
VIDEO_LLM = {"feature_layer": -2, "tome_r": 2, "max_frames": 16}


def copy(source, names, destination):
    destination.mkdir(parents=True)
    for name in names:
        shutil.copyfile(source / name, destination / name)


def hidden_size(config_path):
    return json.loads(config_path.read_text())["hidden_size"]


def build_projector(directory, visual_size, output_size):
    """A CCAM projector in the layout operators/src/ccam/mod.rs documents, weights drawn
    from a fixed seed (LayerNorm weights around 1, everything else around 0)."""
    config = dict(
        num_queries=12,
        hidden_size=16,
        num_heads=2,
        visual_size=visual_size,
        intermediate_size=24,
        output_size=output_size,
        layer_norm_eps=1e-6,
    )
    d, v, m, o = config["hidden_size"], visual_size, config["intermediate_size"], output_size
    shapes = {
        "queries": [config["num_queries"], d],
        "query_norm.weight": [d],
        "query_norm.bias": [d],
        "visual_norm.weight": [v],
        "visual_norm.bias": [v],
        "cross_attn.q_proj.weight": [d, d],
        "cross_attn.q_proj.bias": [d],
        "cross_attn.k_proj.weight": [d, v],
        "cross_attn.k_proj.bias": [d],
        "cross_attn.v_proj.weight": [d, v],
        "cross_attn.v_proj.bias": [d],
        "cross_attn.out_proj.weight": [d, d],
        "cross_attn.out_proj.bias": [d],
        "mlp_norm.weight": [d],
        "mlp_norm.bias": [d],
        "mlp.gate_proj.weight": [m, d],
        "mlp.up_proj.weight": [m, d],
        "mlp.down_proj.weight": [d, m],
        "output_norm.weight": [d],
        "output_norm.bias": [d],
        "output_proj.weight": [o, d],
        "output_proj.bias": [o],
    }
    generator = torch.Generator().manual_seed(20261128)
    weights = {}
    for name, shape in shapes.items():
        noise = torch.randn(shape, generator=generator, dtype=torch.float64)
        weights[name] = (1.0 + 0.2 * noise if "norm.weight" in name else 0.3 * noise).float()
    directory.mkdir(parents=True)
    save_file(weights, str(directory / "model.safetensors"))
    (directory / "ccam_config.json").write_text(json.dumps(config, indent=2) + "\n")


def main():
    if TARGET.exists():
        shutil.rmtree(TARGET)
    copy(FIXTURES / "siglip-tiny", VISION_FILES, TARGET / "vision")
    copy(FIXTURES / "tiny-llama", LLM_FILES, TARGET / "llm")
    build_projector(
        TARGET / "projector",
        visual_size=hidden_size(TARGET / "vision" / "config.json"),
        output_size=hidden_size(TARGET / "llm" / "config.json"),
    )
    (TARGET / "video_llm.json").write_text(json.dumps(VIDEO_LLM, indent=2) + "\n")
    total = sum(f.stat().st_size for f in TARGET.rglob("*") if f.is_file())
    print(f"wrote {TARGET} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()

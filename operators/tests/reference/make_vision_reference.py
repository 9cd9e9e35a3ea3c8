"""Tiny checkpoints and reference outputs for operators/tests/vision.rs and ccam.rs.

* A SigLIP vision tower (saved as `SiglipVisionModel`) and a CLIP model (saved as a full
  `CLIPModel`, sharded, so the loader reads `vision_config` and several safetensors files),
  built with `transformers` from a fixed seed in the Hub's real layout. Their hidden states for
  seeded frames come from `transformers` itself.
* Token merging (ToMe) and the Video-CCAM projector have no `transformers` implementation, so
  they are written here in plain PyTorch, independently of the Rust code, from the rules in
  operators/src/vision/tome.rs and operators/src/ccam/mod.rs. Everything runs in float64.

Usage (from the repository root, after `source deploy/env.sh`):

    python operators/tests/reference/make_vision_reference.py

It rewrites operators/tests/fixtures/{siglip-tiny,clip-tiny,ccam-tiny}/ and
vision_reference.safetensors / ccam_reference.safetensors beside this file; commit the result.
"""

import json
import math
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import (
    CLIPConfig,
    CLIPModel,
    SiglipVisionConfig,
    SiglipVisionModel,
)

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"

VISION = dict(
    image_size=32,
    patch_size=8,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
)


def perturb(model, generator):
    """Default initialisation leaves LayerNorms at 1/0 and biases at 0, which would hide a
    missing bias or norm weight: every parameter gets seeded noise instead."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator, dtype=torch.float64)
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * noise)
            else:
                p.copy_(0.2 * noise)


def fresh(directory):
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)


def build_towers(generator):
    siglip = SiglipVisionModel(
        SiglipVisionConfig(**VISION, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
    )
    perturb(siglip, generator)
    fresh(FIXTURES / "siglip-tiny")
    siglip.save_pretrained(FIXTURES / "siglip-tiny")

    clip = CLIPModel(
        CLIPConfig(
            text_config=dict(
                vocab_size=16,
                hidden_size=8,
                intermediate_size=16,
                num_hidden_layers=1,
                num_attention_heads=2,
                max_position_embeddings=8,
                bos_token_id=0,
                eos_token_id=1,
                pad_token_id=1,
            ),
            vision_config=dict(**VISION, hidden_act="quick_gelu"),
            projection_dim=8,
        )
    )
    perturb(clip, generator)
    fresh(FIXTURES / "clip-tiny")
    clip.save_pretrained(FIXTURES / "clip-tiny", max_shard_size="100KB")
    return siglip.double().eval(), clip.vision_model.double().eval()


# ---------------------------------------------------------------------------------------
# ToMe, plain PyTorch.


def layer_norm(x, weights, name, eps):
    return F.layer_norm(x, x.shape[-1:], weights[f"{name}.weight"], weights[f"{name}.bias"], eps)


def linear(x, weights, name):
    return F.linear(x, weights[f"{name}.weight"], weights[f"{name}.bias"])


def bipartite_merge(x, size, assignment, metric, r, protected):
    """One ToMe step: A = even tokens, B = odd; each A token's best B match by cosine; the r
    best edges merged into B by a size-weighted average. Output order: the unmerged A tokens in
    their original order, then B. Returns x, size and each original patch's new token index."""
    batch, tokens, _ = x.shape
    r = min(r, (tokens - protected) // 2)
    if r <= 0:
        return x, size, assignment
    metric = metric / metric.norm(dim=-1, keepdim=True)
    a, b = metric[:, ::2], metric[:, 1::2]
    scores = a @ b.transpose(1, 2)
    if protected:
        scores[:, 0, :] = -math.inf
    best, best_index = scores.max(dim=-1)
    order = torch.sort(best, dim=-1, descending=True, stable=True).indices
    src = order[:, :r]
    unmerged = order[:, r:].sort(dim=-1).values
    dst = best_index.gather(1, src)

    def merge(t):
        channels = t.shape[-1]
        ta, tb = t[:, ::2], t[:, 1::2]
        kept = ta.gather(1, unmerged[..., None].expand(-1, -1, channels))
        moved = ta.gather(1, src[..., None].expand(-1, -1, channels))
        tb = tb.scatter_reduce(1, dst[..., None].expand(-1, -1, channels), moved, reduce="sum")
        return torch.cat([kept, tb], dim=1)

    merged = merge(x * size)
    size = merge(size)
    x = merged / size

    # New index of every current token, then of every original patch.
    n_a, n_b = a.shape[1], b.shape[1]
    kept_count = n_a - r
    new_a = torch.empty(batch, n_a, dtype=torch.long)
    new_a.scatter_(1, unmerged, torch.arange(kept_count).expand(batch, -1).contiguous())
    new_a.scatter_(1, src, kept_count + dst)
    new_b = kept_count + torch.arange(n_b).expand(batch, -1)
    new_index = torch.empty(batch, tokens, dtype=torch.long)
    new_index[:, ::2] = new_a
    new_index[:, 1::2] = new_b
    return x, size, new_index.gather(1, assignment)


def tome_tower(w, pixels, config, clip, schedule, feature_layer):
    """The vision tower with ToMe inside each layer; returns the hidden states of
    `feature_layer` (HF `hidden_states` index), sizes and assignments. `w` holds the
    tower's weights without the `vision_model.` prefix."""
    eps = config["layer_norm_eps"]
    heads = config["num_attention_heads"]
    hidden = config["hidden_size"]
    head_dim = hidden // heads
    patches = F.conv2d(
        pixels,
        w["embeddings.patch_embedding.weight"],
        w.get("embeddings.patch_embedding.bias"),
        stride=config["patch_size"],
    )
    x = patches.flatten(2).transpose(1, 2)
    batch = x.shape[0]
    if clip:
        cls = w["embeddings.class_embedding"].expand(batch, 1, -1)
        x = torch.cat([cls, x], dim=1)
    x = x + w["embeddings.position_embedding.weight"]
    if clip:
        x = layer_norm(x, w, "pre_layrnorm", eps)
    tokens = x.shape[1]
    size = torch.ones(batch, tokens, 1, dtype=x.dtype)
    assignment = torch.arange(tokens).expand(batch, -1).contiguous()
    layers = config["num_hidden_layers"]
    stop = feature_layer % (layers + 1)
    activation = (
        (lambda t: t * torch.sigmoid(1.702 * t))
        if clip
        else (lambda t: F.gelu(t, approximate="tanh"))
    )
    for i in range(stop):
        p = f"encoder.layers.{i}"
        h = layer_norm(x, w, f"{p}.layer_norm1", eps)
        n = x.shape[1]

        def split(t):
            return t.view(batch, n, heads, head_dim).transpose(1, 2)

        q = split(linear(h, w, f"{p}.self_attn.q_proj"))
        k = split(linear(h, w, f"{p}.self_attn.k_proj"))
        v = split(linear(h, w, f"{p}.self_attn.v_proj"))
        logits = q @ k.transpose(-1, -2) / math.sqrt(head_dim)
        logits = logits + size.log().view(batch, 1, 1, n)
        context = (logits.softmax(-1) @ v).transpose(1, 2).reshape(batch, n, hidden)
        x = x + linear(context, w, f"{p}.self_attn.out_proj")
        x, size, assignment = bipartite_merge(
            x, size, assignment, k.mean(dim=1), schedule[i], 1 if clip else 0
        )
        h = layer_norm(x, w, f"{p}.layer_norm2", eps)
        x = x + linear(activation(linear(h, w, f"{p}.mlp.fc1")), w, f"{p}.mlp.fc2")
    return x, size[..., 0], assignment


def cross_frame_merge(tokens, sizes, threshold):
    """Frame t's tokens whose best cosine match in frame t-1 exceeds `threshold` join that
    token's group (the kept token it, or what it joined, belongs to); each group becomes one
    token, the size-weighted average of its members. Returns the kept mask [T, n] and merged
    tokens and sizes in frame order."""
    frames, n, _ = tokens.shape
    unit = tokens / tokens.norm(dim=-1, keepdim=True)
    root = list(range(frames * n))
    for t in range(1, frames):
        best, index = (unit[t] @ unit[t - 1].T).max(dim=-1)
        for i in range(n):
            if best[i] > threshold:
                root[t * n + i] = root[(t - 1) * n + int(index[i])]
    flat = tokens.reshape(frames * n, -1)
    flat_sizes = sizes.reshape(frames * n)
    root = torch.tensor(root)
    summed = torch.zeros_like(flat).index_add_(0, root, flat * flat_sizes[:, None])
    total = torch.zeros_like(flat_sizes).index_add_(0, root, flat_sizes)
    kept = root == torch.arange(frames * n)
    return kept.view(frames, n), summed[kept] / total[kept, None], total[kept]


# ---------------------------------------------------------------------------------------
# Video-CCAM projector, plain PyTorch.

CCAM = dict(
    num_queries=10,
    hidden_size=16,
    num_heads=2,
    visual_size=32,
    intermediate_size=24,
    output_size=12,
    layer_norm_eps=1e-6,
)


def build_ccam(generator):
    d, v, m, o, q = (
        CCAM["hidden_size"],
        CCAM["visual_size"],
        CCAM["intermediate_size"],
        CCAM["output_size"],
        CCAM["num_queries"],
    )
    shapes = {
        "queries": [q, d],
        "visual_norm.weight": [v],
        "visual_norm.bias": [v],
        "query_norm.weight": [d],
        "query_norm.bias": [d],
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
    weights = {}
    for name, shape in shapes.items():
        noise = torch.randn(shape, generator=generator, dtype=torch.float64)
        weights[name] = 1.0 + 0.2 * noise if "norm.weight" in name else 0.3 * noise
    fresh(FIXTURES / "ccam-tiny")
    save_file(
        {k: t.float().contiguous() for k, t in weights.items()},
        str(FIXTURES / "ccam-tiny" / "model.safetensors"),
    )
    (FIXTURES / "ccam-tiny" / "ccam_config.json").write_text(json.dumps(CCAM, indent=2) + "\n")
    return {k: t.float().double() for k, t in weights.items()}


def query_blocks(queries, frames):
    """Block k holds queries [floor(k*N/T), floor((k+1)*N/T))."""
    return [(k * queries // frames, (k + 1) * queries // frames) for k in range(frames)]


def ccam(w, frames_tokens):
    eps = CCAM["layer_norm_eps"]
    d, heads = CCAM["hidden_size"], CCAM["num_heads"]
    head_dim = d // heads
    n = CCAM["num_queries"]
    visual = torch.cat(frames_tokens, dim=0)
    frame_of = torch.cat([torch.full((t.shape[0],), i) for i, t in enumerate(frames_tokens)])
    block_of = torch.empty(n, dtype=torch.long)
    for k, (start, end) in enumerate(query_blocks(n, len(frames_tokens))):
        block_of[start:end] = k
    allowed = frame_of[None, :] <= block_of[:, None]
    mask = torch.zeros(n, visual.shape[0], dtype=torch.float64).masked_fill(~allowed, -math.inf)

    x = w["queries"]
    h = layer_norm(x, w, "query_norm", eps)
    kv = layer_norm(visual, w, "visual_norm", eps)
    q = linear(h, w, "cross_attn.q_proj").view(n, heads, head_dim).transpose(0, 1)
    k = linear(kv, w, "cross_attn.k_proj").view(-1, heads, head_dim).transpose(0, 1)
    v = linear(kv, w, "cross_attn.v_proj").view(-1, heads, head_dim).transpose(0, 1)
    logits = q @ k.transpose(-1, -2) / math.sqrt(head_dim) + mask
    context = (logits.softmax(-1) @ v).transpose(0, 1).reshape(n, d)
    x = x + linear(context, w, "cross_attn.out_proj")
    h = layer_norm(x, w, "mlp_norm", eps)
    gate = F.silu(F.linear(h, w["mlp.gate_proj.weight"]))
    x = x + F.linear(gate * F.linear(h, w["mlp.up_proj.weight"]), w["mlp.down_proj.weight"])
    return linear(layer_norm(x, w, "output_norm", eps), w, "output_proj")


def main():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(20261127)
    siglip, clip = build_towers(generator)
    pixels = torch.randn(3, 3, 32, 32, generator=generator, dtype=torch.float64)
    # Frame 2 repeats frame 1 except in its top rows, as a fixed camera's frames do when
    # something moves: some of its tokens merge into frame 1, the rest stay.
    pixels[2] = pixels[1]
    pixels[2, :, :8] = torch.randn(3, 8, 32, generator=generator, dtype=torch.float64)

    out = {"pixels": pixels}
    with torch.no_grad():
        for name, model in [("siglip", siglip), ("clip", clip)]:
            result = model(pixel_values=pixels, output_hidden_states=True)
            for i, state in enumerate(result.hidden_states):
                out[f"{name}.hidden.{i}"] = state
            out[f"{name}.last"] = result.last_hidden_state

        for name, model, is_clip in [("siglip", siglip, False), ("clip", clip, True)]:
            weights = {k.removeprefix("vision_model."): t for k, t in model.state_dict().items()}
            cfg = model.config.to_dict()
            # Plain tower without merging: checks this file's forward against transformers.
            plain, _, _ = tome_tower(weights, pixels, cfg, is_clip, [0] * 3, -1)
            assert (plain - out[f"{name}.hidden.3"]).abs().max() < 1e-9, name
            for label, schedule, layer in [("r4", [4, 4, 4], -2), ("sched", [2, 5, 9], -1)]:
                x, size, assignment = tome_tower(weights, pixels, cfg, is_clip, schedule, layer)
                out[f"{name}.tome.{label}.tokens"] = x
                out[f"{name}.tome.{label}.sizes"] = size
                out[f"{name}.tome.{label}.assignment"] = assignment

        tokens = out["siglip.hidden.2"]
        ones = torch.ones(tokens.shape[:2], dtype=tokens.dtype)
        kept, merged, sizes = cross_frame_merge(tokens, ones, 0.9)
        out["cross.kept"] = kept.to(torch.int64)
        out["cross.tokens"] = merged
        out["cross.sizes"] = sizes

    save_file(
        {k: (t if t.dtype == torch.int64 else t.float()).contiguous() for k, t in out.items()},
        str(HERE / "vision_reference.safetensors"),
    )

    ccam_weights = build_ccam(generator)
    frames = [
        torch.randn(count, CCAM["visual_size"], generator=generator, dtype=torch.float64)
        for count in (6, 4, 5, 6)
    ]
    frames = [f.float().double() for f in frames]
    ccam_out = {f"frame.{i}": f.float() for i, f in enumerate(frames)}
    ccam_out["output"] = ccam(ccam_weights, frames).float()
    save_file(ccam_out, str(HERE / "ccam_reference.safetensors"))
    print("cross-frame kept per frame:", kept.sum(dim=1).tolist())


if __name__ == "__main__":
    main()

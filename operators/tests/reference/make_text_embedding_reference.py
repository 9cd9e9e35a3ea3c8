"""Reference embeddings for operators/tests/text_embedding.rs.

Runs all-MiniLM-L6-v2 the way sentence-transformers does (BERT encoder, mean pooling over
non-padding tokens, L2 normalisation) from the same files the Rust operator reads, but
written independently: plain PyTorch in float64, weights read with `safetensors`, tokens from
the `tokenizers` Python package with its own batch padding. `transformers` is deliberately not
used, so the reference needs nothing beyond deploy/requirements.txt.

Usage (from the repository root, after `source deploy/env.sh`):

    python operators/tests/reference/make_text_embedding_reference.py

It rewrites text_embedding_reference.json beside this file; commit the result.
"""

import json
import math
import os
from pathlib import Path

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

# sentence-transformers' max_seq_length for this model (sentence_bert_config.json). The
# tokenizer.json itself says 128 and fixed padding to 128: both are overridden below, as
# sentence-transformers does.
MAX_TOKENS = 256

LONG = " ".join(
    f"Camera {i} at the north gate saw a white delivery truck waiting behind the barrier."
    for i in range(30)
)
SENTENCES = [
    "A white truck is waiting at the north gate.",
    "",
    "Two people walk past the loading dock at night, near the Café sign.",
    LONG,
]


def main() -> None:
    model_dir = Path(os.environ["ARGUS_MODEL_DIR"]) / "all-minilm-l6-v2"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == "bert" and config["hidden_act"] == "gelu", config
    weights = {
        name.removeprefix("bert."): tensor.to(torch.float64)
        for name, tensor in load_file(str(model_dir / "model.safetensors")).items()
    }

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.enable_padding()  # pad to the longest in the batch
    encodings = tokenizer.encode_batch(SENTENCES)
    ids = torch.tensor([e.ids for e in encodings])
    type_ids = torch.tensor([e.type_ids for e in encodings])
    mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.float64)

    tokenizer.no_truncation()
    untruncated = len(tokenizer.encode(LONG).ids)
    assert untruncated > MAX_TOKENS, f"the long sentence has only {untruncated} tokens"
    assert int(mask[3].sum()) == MAX_TOKENS and int(mask[1].sum()) == 2  # [CLS] [SEP]

    embeddings = bert_mean_pooled(weights, config, ids, type_ids, mask)
    out = {
        "model": "all-minilm-l6-v2",
        "max_tokens": MAX_TOKENS,
        "token_counts": [int(n) for n in mask.sum(dim=1)],
        "sentences": SENTENCES,
        "embeddings": [[float(x) for x in row] for row in embeddings.to(torch.float32)],
    }
    path = Path(__file__).with_name("text_embedding_reference.json")
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {path}: {len(SENTENCES)} embeddings, tokens {out['token_counts']} "
          f"(long sentence: {untruncated} before truncation)")


def bert_mean_pooled(w, config, ids, type_ids, mask):
    """The eager BertModel forward pass, then sentence-transformers' Pooling + Normalize."""
    eps = config["layer_norm_eps"]
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    head_dim = hidden // heads
    batch, length = ids.shape

    def linear(x, prefix):
        return x @ w[f"{prefix}.weight"].T + w[f"{prefix}.bias"]

    def layer_norm(x, prefix):
        return torch.nn.functional.layer_norm(
            x, (hidden,), w[f"{prefix}.weight"], w[f"{prefix}.bias"], eps
        )

    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][torch.arange(length)][None]
        + w["embeddings.token_type_embeddings.weight"][type_ids]
    )
    x = layer_norm(x, "embeddings.LayerNorm")
    # Additive mask as in transformers: padding keys get the most negative float.
    additive = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float64).min

    def split(t):
        return t.view(batch, length, heads, head_dim).transpose(1, 2)

    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q = split(linear(x, f"{p}.attention.self.query"))
        k = split(linear(x, f"{p}.attention.self.key"))
        v = split(linear(x, f"{p}.attention.self.value"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim) + additive
        context = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, length, hidden)
        x = layer_norm(linear(context, f"{p}.attention.output.dense") + x,
                       f"{p}.attention.output.LayerNorm")
        inner = torch.nn.functional.gelu(linear(x, f"{p}.intermediate.dense"))
        x = layer_norm(linear(inner, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")

    summed = (x * mask[:, :, None]).sum(dim=1)
    pooled = summed / mask.sum(dim=1, keepdim=True).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


if __name__ == "__main__":
    main()

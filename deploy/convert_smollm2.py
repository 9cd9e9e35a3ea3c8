"""Converts the shipped SmolLM2-135M-Instruct GGUF file to the Hugging Face layout that the
Rust LLM decoder (operators/src/llm) reads: config.json, model.safetensors (float32) and the
tokenizer files with the chat template.

transformers dequantizes GGUF on load, but refuses `save_pretrained` on such a model, so the
state dict, config and tokenizer are written out one by one.

    python deploy/convert_smollm2.py GGUF_FILE OUTPUT_DIR
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} GGUF_FILE OUTPUT_DIR")
    gguf = Path(sys.argv[1])
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)

    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)

    state = {name: t.contiguous() for name, t in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        # the output projection is the embedding matrix; storing it twice would only
        # make loaders guess which copy wins
        state.pop("lm_head.weight", None)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.to_json_file(out / "config.json", use_diff=False)
    tokenizer.save_pretrained(out)


if __name__ == "__main__":
    main()

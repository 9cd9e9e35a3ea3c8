"""SmolLM2 greedy decoding with transformers, the baseline of `cargo bench --bench mllm`.

The bench (operators/benches/mllm.rs) spawns this once with the prompt ids Argus tokenized and
the thread count tch uses, then drives it round by round so that transformers' rounds
interleave with Argus's in time (the machine is shared and its load drifts):

* once both models are loaded (float32 and bfloat16, the same checkpoint) and warmed up, this
  prints one JSON line: versions, threads and attention implementation;
* for every line `float32`, `bfloat16` or `float32+attention` read from stdin, it runs
  `generate` (the last with every step's attention weights returned, through the eager
  attention that can return them, as the captioner's Argus side does) with
  max_new_tokens = 1 and then = --new-tokens on that model and prints one JSON line with both
  wall-clock times and the generated ids, so the bench computes time to first token and
  decode speed the same way for both sides.

It exits when stdin closes.
"""

import argparse
import json
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM

# name: (dtype, return the attention weights)
VARIANTS = {
    "float32": (torch.float32, False),
    "bfloat16": (torch.bfloat16, False),
    "float32+attention": (torch.float32, True),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--prompt-ids", required=True, help="JSON list of token ids")
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    def load(dtype, attention):
        # Only the eager implementation can return attention weights.
        extra = {"attn_implementation": "eager"} if attention else {}
        return AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=dtype, **extra).eval()

    models = {name: load(dtype, attention) for name, (dtype, attention) in VARIANTS.items()}
    ids = torch.tensor([json.loads(args.prompt_ids)], dtype=torch.long)
    mask = torch.ones_like(ids)

    def generate(name: str, new_tokens: int):
        model = models[name]
        attention = VARIANTS[name][1]
        with torch.inference_mode():
            start = time.perf_counter()
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=model.config.eos_token_id,
                output_attentions=attention,
                return_dict_in_generate=attention,
            )
            elapsed = time.perf_counter() - start
            if attention:
                assert out.attentions, "attention weights were asked for"
                out = out.sequences
            return elapsed, out[0, ids.shape[1] :].tolist()

    for name in models:
        generate(name, 1)
        generate(name, args.new_tokens)
    model = models["float32"]
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "threads": torch.get_num_threads(),
                "attn_implementation": model.config._attn_implementation,
            }
        ),
        flush=True,
    )
    for line in sys.stdin:
        name = line.strip()
        first, _ = generate(name, 1)
        full, generated = generate(name, args.new_tokens)
        print(
            json.dumps({"first_token_s": first, "full_s": full, "generated_ids": generated}),
            flush=True,
        )


if __name__ == "__main__":
    main()

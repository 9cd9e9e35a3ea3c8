"""SmolLM2 greedy decoding with transformers, the baseline of `cargo bench --bench mllm`.

The bench (operators/benches/mllm.rs) spawns this once with the prompt ids Argus tokenized and
the thread count tch uses, then drives it round by round so that transformers' rounds
interleave with Argus's in time (the machine is shared and its load drifts):

* once both models are loaded (float32 and bfloat16, the same checkpoint) and warmed up, this
  prints one JSON line: versions, threads and attention implementation;
* for every line `float32` or `bfloat16` read from stdin, it runs `generate` with
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

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--prompt-ids", required=True, help="JSON list of token ids")
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    models = {
        name: AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=dtype).eval()
        for name, dtype in DTYPES.items()
    }
    ids = torch.tensor([json.loads(args.prompt_ids)], dtype=torch.long)
    mask = torch.ones_like(ids)

    def generate(model, new_tokens: int):
        with torch.inference_mode():
            start = time.perf_counter()
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=model.config.eos_token_id,
            )
            return time.perf_counter() - start, out[0, ids.shape[1] :].tolist()

    for model in models.values():
        generate(model, 1)
        generate(model, args.new_tokens)
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
        model = models[line.strip()]
        first, _ = generate(model, 1)
        full, generated = generate(model, args.new_tokens)
        print(
            json.dumps({"first_token_s": first, "full_s": full, "generated_ids": generated}),
            flush=True,
        )


if __name__ == "__main__":
    main()

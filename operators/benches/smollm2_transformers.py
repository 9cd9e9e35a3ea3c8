"""SmolLM2 greedy decoding with transformers, the baseline of `cargo bench --bench mllm`.

The bench (operators/benches/mllm.rs) spawns this with the prompt ids Argus tokenized, the
thread count tch uses and the run counts; it prints one JSON object on stdout with the
wall-clock time of every `generate` call (max_new_tokens = 1, and = --new-tokens), so the
bench computes time to first token and decode speed the same way for both sides.
"""

import argparse
import json
import time

import torch
import transformers
from transformers import AutoModelForCausalLM


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--prompt-ids", required=True, help="JSON list of token ids")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32)
    model.eval()
    ids = torch.tensor([json.loads(args.prompt_ids)], dtype=torch.long)
    mask = torch.ones_like(ids)

    def generate(new_tokens: int):
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

    for _ in range(args.warmup):
        generate(1)
        generate(args.new_tokens)
    first, full, generated = [], [], []
    # Interleaved, as the Rust side does, so load drift hits both the same.
    for _ in range(args.runs):
        seconds, _ = generate(1)
        first.append(seconds)
        seconds, generated = generate(args.new_tokens)
        full.append(seconds)
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "threads": torch.get_num_threads(),
                "attn_implementation": model.config._attn_implementation,
                "first_token_s": first,
                "full_s": full,
                "generated_ids": generated,
            }
        )
    )


if __name__ == "__main__":
    main()

"""Writes the references that operators/tests/llm.rs checks the Rust decoder against.

* smollm2_greedy_reference.json: for three chat prompts, the prompt transformers renders with
  the checkpoint's chat template, its token ids, and transformers' greedy continuation (at most
  24 new tokens) with the log-probability of each generated token. Needs the converted
  checkpoint in $ARGUS_MODEL_DIR/smollm2-135m-instruct-hf (deploy/setup.sh makes it).
* fixtures/tiny-llama/: a seeded random Llama (hidden 64, 2 layers, 4 heads, 2 key-value
  heads, untied output head) written by transformers, a word-level tokenizer whose token i is
  "t<i>", and in reference.json the float32 logits and eager attention probabilities of a
  fixed id sequence.
* fixtures/tiny-qwen2/: the same for Qwen2 (Llama with biased query, key and value
  projections and tied embeddings), logits only.

    python operators/tests/reference/make_llm_reference.py
"""

import json
import os
from pathlib import Path

import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

HERE = Path(__file__).resolve().parent
FIXTURE = HERE.parent / "fixtures" / "tiny-llama"
QWEN2_FIXTURE = HERE.parent / "fixtures" / "tiny-qwen2"
MAX_NEW_TOKENS = 24
PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "You describe traffic camera scenes in one sentence."},
        {"role": "user", "content": "A red car stops at the crossing while two people walk past."},
    ],
    [{"role": "user", "content": "List three colours."}],
]
# Whitespace around block tags, filters, Python string methods and raise_exception: what
# renders differently unless the Jinja settings match transformers' (trim_blocks, lstrip_blocks).
TINY_TEMPLATE = """{{ bos_token }}
{%- for message in messages %}
    {% if message['role'] == 'system' %}
<<SYS>> {{ message['content'] | trim }} <</SYS>>
    {% elif message['role'] == 'user' %}
[USER] {{ message['content'].strip() }}
    {% elif message['role'] == 'assistant' %}
[BOT] {{ message['content'] }}{{ eos_token }}
    {% else %}
{{ raise_exception('unknown role ' + message['role']) }}
    {% endif %}
{% endfor %}
{% if add_generation_prompt %}
[BOT]
{% endif %}"""
TINY_CHATS = [
    [{"role": "user", "content": "  t5 t6  "}],
    [
        {"role": "system", "content": " be brief "},
        {"role": "user", "content": "t7"},
        {"role": "assistant", "content": "t8 t9"},
        {"role": "user", "content": "t10"},
    ],
]
TINY_IDS = [1, 17, 42, 99, 3, 250, 7, 7, 128, 64, 5, 200]


def smollm2() -> None:
    model_dir = Path(os.environ["ARGUS_MODEL_DIR"]) / "smollm2-135m-instruct-hf"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    cases = []
    for messages in PROMPTS:
        rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
        )
        with torch.no_grad():
            out = model.generate(
                **inputs,
                max_new_tokens=MAX_NEW_TOKENS,
                do_sample=False,
                output_logits=True,
                return_dict_in_generate=True,
                pad_token_id=tokenizer.pad_token_id,
            )
        prompt_len = inputs["input_ids"].shape[1]
        generated = out.sequences[0, prompt_len:].tolist()
        logprobs = [
            torch.log_softmax(step[0].float(), dim=-1)[token].item()
            for step, token in zip(out.logits, generated)
        ]
        cases.append(
            {
                "messages": messages,
                "rendered": rendered,
                "prompt_ids": inputs["input_ids"][0].tolist(),
                "generated_ids": generated,
                "logprobs": logprobs,
                "text": tokenizer.decode(generated, skip_special_tokens=True),
            }
        )
    (HERE / "smollm2_greedy_reference.json").write_text(
        json.dumps({"max_new_tokens": MAX_NEW_TOKENS, "cases": cases}, indent=1) + "\n"
    )


def tiny_llama() -> None:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rope_theta=10000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=[2, 3],
    )
    model = LlamaForCausalLM(config).eval()
    # default init is tiny (std 0.02): widen it so the logits differ visibly between positions
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0.0, 0.2)
            else:
                parameter.uniform_(0.5, 1.5)
    FIXTURE.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(FIXTURE, safe_serialization=True)
    tokenizer = Tokenizer(WordLevel({f"t{i}": i for i in range(config.vocab_size)}, unk_token="t0"))
    tokenizer.pre_tokenizer = WhitespaceSplit()
    tokenizer.save(str(FIXTURE / "tokenizer.json"))
    # the template inline, as older checkpoints keep it (SmolLM2 has chat_template.jinja)
    (FIXTURE / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "t1",
                "eos_token": "t3",
                "chat_template": TINY_TEMPLATE,
            },
            indent=1,
        )
        + "\n"
    )
    hf_tokenizer = AutoTokenizer.from_pretrained(FIXTURE)
    chats = [
        {
            "messages": messages,
            "add_generation_prompt": add,
            "rendered": hf_tokenizer.apply_chat_template(
                messages, add_generation_prompt=add, tokenize=False
            ),
        }
        for messages in TINY_CHATS
        for add in (True, False)
    ]
    model = LlamaForCausalLM.from_pretrained(FIXTURE, attn_implementation="eager").eval()
    with torch.no_grad():
        out = model(torch.tensor([TINY_IDS]), output_attentions=True)
    (FIXTURE / "reference.json").write_text(
        json.dumps(
            {
                "chats": chats,
                "ids": TINY_IDS,
                "logits": out.logits[0].tolist(),
                # [layer][head][query][key]
                "attentions": [a[0].tolist() for a in out.attentions],
            }
        )
        + "\n"
    )


def tiny_qwen2() -> None:
    torch.manual_seed(1)
    config = Qwen2Config(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rope_theta=1000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        eos_token_id=2,
    )
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0.0, 0.2)
            else:
                parameter.uniform_(0.5, 1.5)
    QWEN2_FIXTURE.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(QWEN2_FIXTURE, safe_serialization=True)
    (QWEN2_FIXTURE / "tokenizer.json").write_bytes((FIXTURE / "tokenizer.json").read_bytes())
    model = Qwen2ForCausalLM.from_pretrained(QWEN2_FIXTURE, attn_implementation="eager").eval()
    with torch.no_grad():
        logits = model(torch.tensor([TINY_IDS])).logits[0]
    (QWEN2_FIXTURE / "reference.json").write_text(
        json.dumps({"ids": TINY_IDS, "logits": logits.tolist()}) + "\n"
    )


if __name__ == "__main__":
    tiny_llama()
    tiny_qwen2()
    smollm2()

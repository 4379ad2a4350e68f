"""Greedy decoding with the real SmolLM2-135M-Instruct: our GPT beside Hugging Face's model.

Both models hold the same weights (`GPT.from_hf`). Four measurements, in one run:

- Hugging Face ``model.generate`` (greedy, KV cache), stopping at the end-of-turn token;
- our `nlpbook.generation.generate` on our `GPT`, same prompt, same stopping rule
  (the tokens must be identical);
- our GPT producing exactly `--new` tokens with the KV cache, and without it (each step
  re-reads the whole sequence): the ratio is the KV cache's speed-up.

    python benchmarks/generation.py --threads 1 --new 256

Times are medians over `--repeats` runs (the uncached run is timed once: it is slow).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from nlpbook.generation import generate
from nlpbook.gpt import GPT
from nlpbook.pretrained import load_causal_lm

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def timed(fn, repeats: int) -> tuple[torch.Tensor, float]:
    seconds, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        seconds.append(time.perf_counter() - start)
    return out, statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--new", type=int, default=256, help="tokens for the KV-cache comparison")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    tokenizer, hf = load_causal_lm("smollm2-135m-instruct")
    hf.eval()
    ours = GPT.from_hf(hf).eval()
    chat = [{"role": "user", "content": PROMPT}]
    text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt").input_ids  # (1, T)
    eos = tokenizer.eos_token_id
    budget = args.new

    hf_out, hf_s = timed(
        lambda: hf.generate(
            ids, max_new_tokens=budget, do_sample=False, eos_token_id=eos, pad_token_id=eos
        ),
        args.repeats,
    )
    our_out, our_s = timed(
        lambda: generate(ours, ids, max_new_tokens=budget, eos_token_id=eos), args.repeats
    )
    same = torch.equal(hf_out, our_out)
    n_stop = hf_out.size(1) - ids.size(1)

    cached, cached_s = timed(lambda: generate(ours, ids, max_new_tokens=budget), args.repeats)
    uncached, uncached_s = timed(
        lambda: generate(ours, ids, max_new_tokens=budget, use_cache=False), 1
    )
    if not torch.equal(cached, uncached):
        raise AssertionError("generation with and without the KV cache gave different tokens")

    print(f"SmolLM2-135M-Instruct, fp32, {args.threads} thread(s), prompt {ids.size(1)} tokens")
    print(f"{'decoder':<34}{'tokens':>8}{'seconds':>10}{'tokens/s':>10}")
    rows = [
        ("HF generate, KV cache", n_stop, hf_s),
        ("ours, KV cache", our_out.size(1) - ids.size(1), our_s),
        (f"ours, KV cache, {budget} tokens", budget, cached_s),
        (f"ours, no cache, {budget} tokens", budget, uncached_s),
    ]
    for name, n, s in rows:
        print(f"{name:<34}{n:>8}{s:>10.2f}{n / s:>10.1f}")
    print(f"same tokens as HF: {same}")
    print(f"ours / HF tokens per second: {hf_s / our_s:.2f}")
    print(f"KV-cache speed-up for {budget} new tokens: {uncached_s / cached_s:.1f}x")
    print(tokenizer.decode(hf_out[0, ids.size(1) :], skip_special_tokens=True)[:300])


if __name__ == "__main__":
    main()

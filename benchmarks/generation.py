"""Decoding strategies with the real SmolLM2-135M-Instruct: speed, likelihood, diversity.

The prompts are held-out text: the openings (speaker and first two lines) of passages evenly
spaced through the last 10% of Tiny Shakespeare, the part the book never trains on, all in
one left-padded batch. For every strategy of `nlpbook.textmetrics.STRATEGIES` (greedy, beam
search of width 2/4/8, sampling at temperature 0.7/1.0/1.3, top-k 50, top-p 0.9, greedy with a
repetition penalty or n-gram blocking) the script runs our `GPT` with our `generate` and
Hugging Face's model with its own ``generate``, alternately, `repeats` times each, with the
same seed for sampling (after one untimed warm-up call of each), and reports:

- tokens/s of both (generated tokens over the median wall-clock time) and their ratio;
- whether the two produced the same tokens;
- the mean log-likelihood per token of our continuations under the model, their distinct-1
  and distinct-2 (over all prompts) and their repetition rate (repeated 4-grams per text).

A last row measures the text that really follows each prompt in the play (its first
`new_tokens` tokens), for reference. The chapter ``book/text-generation.ipynb`` computes
its table with the same `nlpbook.textmetrics.measure_decoding`.

    python benchmarks/generation.py [--profile smoke|cpu|gpu] [--threads 1]

`--kv-cache` measures instead greedy decoding of one chat prompt, ours against Hugging
Face's (same tokens, tokens/s), and the KV cache's speed-up for `--new` tokens (our GPT with
and without the cache):

    python benchmarks/generation.py --kv-cache --threads 1 --new 256
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import nlpbook
from nlpbook import data
from nlpbook.generation import generate
from nlpbook.gpt import GPT
from nlpbook.pretrained import load_causal_lm
from nlpbook.textmetrics import (
    STRATEGIES,
    continuation_loglik,
    continuations,
    distinct_n,
    hf_arguments,
    measure_decoding,
    passage_openings,
    repetition_rate,
)

PROFILES = {
    # prompts: passages of held-out Tiny Shakespeare, decoded in one batch; new_tokens: the
    # length of each continuation (both as in the chapter's settings of the same profile);
    # repeats: timed runs of each decoder (the median is kept)
    "smoke": dict(prompts=2, new_tokens=4, repeats=1),
    "cpu": dict(prompts=8, new_tokens=48, repeats=3),
    "gpu": dict(prompts=32, new_tokens=128, repeats=5),
}
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[torch.Tensor, float]:
    """The output of `fn` and the median of `repeats` wall-clock timings."""
    seconds, out = [], None
    for _ in range(repeats):
        _sync()
        start = time.perf_counter()
        out = fn()
        _sync()
        seconds.append(time.perf_counter() - start)
    return out, statistics.median(seconds)


def strategies_table(args: argparse.Namespace, tokenizer, hf, ours, device) -> None:
    cfg = PROFILES[args.profile]
    text = data.tiny_shakespeare()
    held_out = text[int(0.9 * len(text)) :]
    openings = passage_openings(held_out, n=cfg["prompts"], lines=3)
    tokenizer.padding_side = "left"
    batch = tokenizer([p for p, _ in openings], return_tensors="pt", padding=True).to(device)
    ids, mask, n = batch.input_ids, batch.attention_mask, cfg["new_tokens"]
    eos = tokenizer.eos_token_id
    names = args.strategies or list(STRATEGIES)
    print(
        f"SmolLM2-135M-Instruct, fp32, {device}, {torch.get_num_threads()} thread(s); "
        f"{len(openings)} prompts of held-out Tiny Shakespeare ({ids.size(1)} tokens, padded), "
        f"{n} new tokens, median of {cfg['repeats']} runs\n"
    )
    # warm up: the first call of each decoder pays one-time costs
    generate(ours, ids, attention_mask=mask, max_new_tokens=4, eos_token_id=eos)
    hf.generate(ids, attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=eos)
    header = (
        f"{'strategy':<32}{'ours tok/s':>11}{'HF tok/s':>10}{'ours/HF':>9}{'same':>6}"
        f"{'loglik':>8}{'dist-1':>8}{'dist-2':>8}{'rep-4':>7}{'len':>6}"
    )
    print(header)
    print("-" * len(header))
    for name in names:
        strategy = STRATEGIES[name]
        our_s, hf_s, result, hf_out = [], [], None, None
        for _ in range(cfg["repeats"]):  # alternate, so that both see the same machine load
            torch.manual_seed(args.seed)
            _sync()
            result = measure_decoding(
                ours, ids, attention_mask=mask, max_new_tokens=n, eos_token_id=eos, seed=None,
                **strategy,
            )  # fmt: skip
            our_s.append(result.seconds)
            torch.manual_seed(args.seed)
            hf_out, seconds = timed(
                lambda s=strategy: hf.generate(
                    ids, attention_mask=mask, max_new_tokens=n, eos_token_id=eos,
                    pad_token_id=eos, **hf_arguments(s),
                ),
                1,
            )  # fmt: skip
            hf_s.append(seconds)
        hf_texts = continuations(hf_out, ids.size(1), eos_token_id=eos)
        ours_tps = result.tokens / statistics.median(our_s)
        hf_tps = sum(len(t) for t in hf_texts) / statistics.median(hf_s)
        same = "yes" if hf_texts == result.texts else "no"
        print(
            f"{name:<32}{ours_tps:>11.1f}{hf_tps:>10.1f}{ours_tps / hf_tps:>9.2f}{same:>6}"
            f"{result.loglik:>8.2f}{result.distinct_1:>8.2f}{result.distinct_2:>8.2f}"
            f"{result.repetition:>7.2f}{result.tokens / len(result.texts):>6.1f}",
            flush=True,
        )
    human = [tokenizer(rest).input_ids[:n] for _, rest in openings]
    loglik, _ = continuation_loglik(ours, ids, human, attention_mask=mask)
    rep = sum(repetition_rate(t, 4) for t in human) / len(human)
    print(
        f"{'the play (human text)':<32}{'':>11}{'':>10}{'':>9}{'':>6}{loglik:>8.2f}"
        f"{distinct_n(human, 1):>8.2f}{distinct_n(human, 2):>8.2f}{rep:>7.2f}"
        f"{sum(len(t) for t in human) / len(human):>6.1f}"
    )
    print(
        "\nloglik: mean log-probability per generated token under the model; dist-n: distinct "
        "n-grams / n-grams over all texts;\nrep-4: share of each text's 4-grams seen earlier in "
        "it; len: generated tokens per text (to the end-of-turn token if any)"
    )


def kv_cache_section(args: argparse.Namespace, tokenizer, hf, ours, device) -> None:
    """Greedy decoding of one chat prompt: ours vs HF, then our GPT with and without cache."""
    chat = [{"role": "user", "content": PROMPT}]
    text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt").input_ids.to(device)  # (1, T)
    eos, budget = tokenizer.eos_token_id, args.new

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

    threads = torch.get_num_threads()
    print(f"SmolLM2-135M-Instruct, fp32, {threads} thread(s), prompt {ids.size(1)} tokens")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=tuple(PROFILES), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--strategies", nargs="+", choices=tuple(STRATEGIES), default=None)
    parser.add_argument("--seed", type=int, default=0, help="seeds the sampling strategies")
    parser.add_argument(
        "--kv-cache", action="store_true", help="measure the KV cache's speed-up instead"
    )
    parser.add_argument("--new", type=int, default=256, help="--kv-cache: tokens generated")
    parser.add_argument("--repeats", type=int, default=3, help="--kv-cache: timed runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = nlpbook.auto_device()

    tokenizer, hf = load_causal_lm("smollm2-135m-instruct", device=device)
    ours = GPT.from_hf(hf).to(device).eval()
    start = time.perf_counter()
    if args.kv_cache:
        kv_cache_section(args, tokenizer, hf, ours, device)
    else:
        strategies_table(args, tokenizer, hf, ours, device)
    print(f"\nwall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

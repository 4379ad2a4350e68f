"""Speed of BPE training and encoding: ours (fast and naive trainers) vs Hugging Face.

All on the full Tiny Shakespeare (1.1 MB) with a vocabulary of 4,096 (256 bytes + 3,840
merges), GPT-2's regex pre-tokenizer on both sides. Times are medians of `--repeats` runs,
except the naive trainer: it recounts every pair of the whole text for each merge, so it
runs `--naive-merges` merges once and the full time is extrapolated linearly (a slight
overestimate: the text gets shorter as merges proceed).

    python benchmarks/bpe.py [--repeats 3] [--naive-merges 40]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from nlpbook import assets, data
from nlpbook.bpe import BPETokenizer, load_gpt2, train_naive
from nlpbook.pretokenize import pretokenize

VOCAB_SIZE = 4096


def median_time(fn: Callable[[], object], *, repeats: int) -> float:
    """Median wall-clock seconds of `repeats` calls of `fn`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def hf_train(text: str, vocab_size: int) -> Tokenizer:
    """A byte-level BPE trained by HF `tokenizers` with GPT-2's regex (its ByteLevel default)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([text], trainer)
    return tok


def fresh(tok: BPETokenizer) -> BPETokenizer:
    """A copy of `tok` with an empty chunk cache."""
    return BPETokenizer(
        pattern=tok.pattern,
        merges=tok.merges,
        special_tokens=tok.special_tokens,
        byte_ids=tok.byte_ids,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-merges", type=int, default=40)
    args = parser.parse_args()

    text = data.tiny_shakespeare()
    megabytes = len(text.encode("utf-8")) / 1e6
    merges = VOCAB_SIZE - 256
    rows: list[tuple[str, str, str]] = []

    # --- training
    t_fast = median_time(lambda: BPETokenizer().train(text, VOCAB_SIZE), repeats=args.repeats)
    ours = BPETokenizer().train(text, VOCAB_SIZE)
    t_hf = median_time(lambda: hf_train(text, VOCAB_SIZE), repeats=args.repeats)
    hf = hf_train(text, VOCAB_SIZE)
    start = time.perf_counter()
    chunks = pretokenize(text)
    train_naive(chunks, args.naive_merges)
    t_naive_part = time.perf_counter() - start
    t_naive = t_naive_part / args.naive_merges * merges
    rows += [
        ("train: ours, fast (incremental counts)", f"{t_fast:.2f} s", f"{t_fast / t_hf:.1f}x HF"),
        (
            f"train: ours, naive (extrapolated from {args.naive_merges} merges)",
            f"{t_naive:.0f} s",
            f"{t_naive / t_fast:.0f}x fast ({t_naive_part:.1f} s measured)",
        ),
        ("train: HF tokenizers BpeTrainer", f"{t_hf:.2f} s", "1.0x HF"),
    ]

    # --- encoding, MB/s; cold = a fresh chunk cache for every run
    gpt2 = load_gpt2()
    folder = assets.locate("gpt2-tokenizer")
    hf_gpt2 = Tokenizer(
        models.BPE.from_file(str(folder / "encoder.json"), str(folder / "vocab.bpe"))
    )
    hf_gpt2.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    for name, ours_tok, hf_tok in [("Shakespeare 4k", ours, hf), ("GPT-2 50k", gpt2, hf_gpt2)]:
        cold = []
        for _ in range(args.repeats):
            tok = fresh(ours_tok)
            start = time.perf_counter()
            tok.encode(text)
            cold.append(time.perf_counter() - start)
        t_cold = statistics.median(cold)
        t_warm = median_time(lambda t=tok: t.encode(text), repeats=args.repeats)
        t_hf_enc = median_time(lambda t=hf_tok: t.encode(text), repeats=args.repeats)
        ids_ours, ids_hf = len(tok.encode(text)), len(hf_tok.encode(text).ids)
        rows += [
            (
                f"encode {name}: ours, cold cache",
                f"{megabytes / t_cold:.2f} MB/s",
                f"{ids_ours:,} ids",
            ),
            (f"encode {name}: ours, warm cache", f"{megabytes / t_warm:.2f} MB/s", ""),
            (
                f"encode {name}: HF tokenizers",
                f"{megabytes / t_hf_enc:.2f} MB/s",
                f"{ids_hf:,} ids",
            ),
        ]

    print(f"Tiny Shakespeare: {megabytes:.2f} MB; vocabulary {VOCAB_SIZE:,} ({merges:,} merges)")
    print(f"medians of {args.repeats} runs\n")
    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'result':>12}  note")
    print("-" * (width + 40))
    for what, result, note in rows:
        print(f"{what:<{width}}  {result:>12}  {note}")


if __name__ == "__main__":
    main()

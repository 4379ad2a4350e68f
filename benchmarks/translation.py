"""German -> English translation on Multi30k: BLEU of the GRU encoder-decoder with attention.

Trains `nlpbook.seq2seq.Seq2Seq` (bidirectional GRU encoder, Bahdanau attention, GRU
decoder, teacher forcing) on the 29k training pairs, lowercased and split into words and
punctuation, then translates `test_2016_flickr` (1,000 sentences) greedily and with beam
search and scores both with sacrebleu (13a tokenization, case-insensitive, against the raw
references). `<unk>` is dropped from the hypotheses before scoring (`detokenize`): left in,
13a splits it into three tokens that lengthen the output and hide the brevity penalty. Prints
one table, with the brevity penalty and the output/reference length ratio.

The `cpu` profile trains for a wall-clock budget (the target is a BLEU within 10 minutes on
2 cores). The `gpu` profile trains for a fixed number of steps with the sizes of the
chapter's `gpu` settings, so its BLEU does not depend on the machine: on a GPU it measures
the published page's translator in minutes, and on a CPU the same model in hours.

    python benchmarks/translation.py [--profile cpu|gpu|smoke] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

import nlpbook
from nlpbook import data
from nlpbook.seq2seq import (
    Seq2Seq,
    Seq2SeqConfig,
    TranslationBatches,
    bleu,
    detokenize,
    encode_pairs,
    translate,
)
from nlpbook.vocab import BOS, EOS, TokenVocab, tokenize

PROFILES = {
    # training stops at `minutes` of wall clock or after `steps` (None: no such limit);
    # model sizes and batch as in the chapter's settings; the same keys in every profile
    "smoke": dict(minutes=0.2, steps=None, train_pairs=2000, test_pairs=50, embed=64, hidden=64,
                  batch=32),
    "cpu": dict(minutes=10.0, steps=None, train_pairs=None, test_pairs=None, embed=256, hidden=256,
                batch=64),
    "gpu": dict(minutes=None, steps=3000, train_pairs=None, test_pairs=None, embed=512, hidden=512,
                batch=128),
}  # fmt: skip


def _train(
    model: Seq2Seq, batches: TranslationBatches, *, minutes: float | None, steps: int | None
) -> tuple[int, float]:
    """Adam at 1e-3 with gradient clipping, in chunks of 100 steps, until the step limit or
    until the next chunk would overrun the time budget. Returns (steps, mean recent loss)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    budget = float("inf") if minutes is None else minutes * 60
    limit = steps if steps is not None else float("inf")
    done, start, last_loss, chunk_s = 0, time.perf_counter(), float("nan"), 0.0
    while done < limit and time.perf_counter() - start + chunk_s <= budget:
        chunk_start, chunk = time.perf_counter(), int(min(100, limit - done))
        history = nlpbook.fit(
            model, batches, optimizer=optimizer, steps=chunk, grad_clip=1.0, progress=False
        )
        done += chunk
        chunk_s = time.perf_counter() - chunk_start
        last_loss = sum(history.loss[-20:]) / len(history.loss[-20:])
        print(
            f"{done} steps, {time.perf_counter() - start:.0f} s, loss {last_loss:.3f}", flush=True
        )
    return done, last_loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=tuple(PROFILES), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cfg = PROFILES[args.profile]
    torch.set_num_threads(args.threads)
    nlpbook.set_seed(args.seed)
    device = nlpbook.auto_device()

    train = data.multi30k("train", "de", "en")[: cfg["train_pairs"]]
    test = data.multi30k("test_2016_flickr", "de", "en")[: cfg["test_pairs"]]
    specials = (BOS, EOS)
    src_vocab = TokenVocab.build((tokenize(s) for s, _ in train), min_count=3, specials=specials)
    tgt_vocab = TokenVocab.build((tokenize(t) for _, t in train), min_count=3, specials=specials)
    pairs = encode_pairs(train, src_vocab, tgt_vocab, tokenize=tokenize)
    pairs = [(s, t) for s, t in pairs if len(s) <= 40 and len(t) <= 40]
    batches = TranslationBatches(pairs, batch_size=cfg["batch"], seed=args.seed)

    config = Seq2SeqConfig(
        len(src_vocab),
        len(tgt_vocab),
        embed_dim=cfg["embed"],
        hidden_size=cfg["hidden"],
        attn_dim=cfg["hidden"],
        dropout=0.2,
        label_smoothing=0.1,
    )
    model = Seq2Seq(config).to(device)
    start = time.perf_counter()
    steps, last_loss = _train(model, batches, minutes=cfg["minutes"], steps=cfg["steps"])
    train_s = time.perf_counter() - start

    sources, references = [s for s, _ in test], [t for _, t in test]
    rows = []
    for name, beam in (("greedy", 1), (f"beam {args.beam}", args.beam)):
        t0 = time.perf_counter()
        out = translate(model, sources, src_vocab, tgt_vocab, tokenize=tokenize, beam=beam)
        seconds = time.perf_counter() - t0
        hyps = [detokenize(tr.ids, tgt_vocab) for tr in out]
        scored = bleu(hyps, references)
        rows.append((name, scored.score, scored.bp, scored.sys_len / scored.ref_len, seconds))

    print()
    print(
        f"Multi30k de->en, test_2016_flickr ({len(test)} sentences), profile {args.profile}, "
        f"{args.threads} thread(s), device {device}"
    )
    print(
        f"vocab {len(src_vocab)} de / {len(tgt_vocab)} en, {len(pairs)} training pairs, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters"
    )
    print(
        f"training: {steps} steps of {cfg['batch']} ({steps * cfg['batch'] / len(pairs):.1f} "
        f"epochs) in {train_s / 60:.1f} min, final loss {last_loss:.3f}"
    )
    print(f"{'decoding':<10} {'BLEU':>6} {'BP':>6} {'ratio':>6} {'seconds':>8}")
    for name, score, bp, ratio, seconds in rows:
        print(f"{name:<10} {score:>6.1f} {bp:>6.3f} {ratio:>6.3f} {seconds:>8.1f}")


if __name__ == "__main__":
    main()

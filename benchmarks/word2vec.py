"""Our NumPy skip-gram vs gensim's Word2Vec: speed and quality on the same corpus.

Both train on WikiText-2 valid + test (the splits the book has) with the same
hyperparameters and epochs, in one run, so the speed ratio is measured under the same
load. Speed is corpus words per second (each epoch counted, before subsampling);
quality is Spearman's rho on WS-353 and SimLex-999 (pairs with unknown words skipped).
On a corpus this small rho moves by a few hundredths from seed to seed, so each model
trains once per seed and the table shows mean and standard deviation.

    python benchmarks/word2vec.py [--epochs 20] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from gensim.models import Word2Vec as GensimWord2Vec

from nlpbook import data
from nlpbook.corpus import Vocab, sentences
from nlpbook.embeddings import similarity
from nlpbook.word2vec import Word2Vec, Word2VecConfig

BENCHMARKS = ("ws353", "simlex999")


def train_gensim(sents, config: Word2VecConfig, *, min_count: int, workers: int, seed: int):
    """gensim skip-gram with `config`'s hyperparameters; returns (KeyedVectors, seconds)."""
    model = GensimWord2Vec(
        vector_size=config.dim,
        window=config.window,
        negative=config.negative,
        sample=config.sample,
        ns_exponent=config.ns_exponent,
        alpha=config.lr,
        min_alpha=config.min_lr,
        min_count=min_count,
        sg=1,
        workers=workers,
        seed=seed,
    )
    model.build_vocab(sents)
    start = time.perf_counter()
    model.train(sents, total_examples=len(sents), epochs=config.epochs)
    return model.wv, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2, help="gensim's worker threads")
    args = parser.parse_args()

    sents = sentences(data.wikitext2("valid") + data.wikitext2("test"))
    config = Word2VecConfig(
        dim=100, window=5, negative=5, sample=1e-3, lr=0.025, min_lr=1e-4, epochs=args.epochs
    )
    min_count = 5
    vocab = Vocab.build(sents, min_count=min_count)
    encoded = vocab.encode(sents)
    words = sum(len(s) for s in sents)
    print(f"corpus: {len(sents):,} sentences, {words:,} words, vocabulary {len(vocab):,}")
    print(f"settings: {config}, min_count={min_count}, seeds={args.seeds}\n")

    results: dict[str, list[tuple[float, ...]]] = {"nlpbook (NumPy)": [], "gensim": []}
    for seed in args.seeds:  # alternate the two so that both see the same machine load
        ours = Word2Vec(vocab, config, seed=seed)
        seconds = ours.fit(encoded, progress=False).seconds
        runs = [("nlpbook (NumPy)", ours.keyed_vectors(), seconds)]
        kv, seconds = train_gensim(
            sents, config, min_count=min_count, workers=args.workers, seed=seed
        )
        assert len(kv) == len(vocab), "both must train the same vocabulary"
        runs.append(("gensim", kv, seconds))
        for name, kv, seconds in runs:
            rhos = [similarity(kv, data.word_similarity(b)).rho for b in BENCHMARKS]
            results[name].append((words * args.epochs / seconds, seconds, *rhos))

    print(f"{'model':<22} {'words/s':>10} {'seconds':>8} {'WS-353 rho':>14} {'SimLex rho':>14}")
    means = {}
    for name, runs in results.items():
        r = np.array(runs)  # (seeds, 4)
        means[name] = r.mean(axis=0)
        label = name if name != "gensim" else f"gensim (workers={args.workers})"
        ws, sl = (f"{r[:, i].mean():.3f} ± {r[:, i].std():.3f}" for i in (2, 3))
        print(f"{label:<22} {r[:, 0].mean():>10,.0f} {r[:, 1].mean():>8.1f} {ws:>14} {sl:>14}")
    pairs = [similarity(ours.keyed_vectors(), data.word_similarity(b)) for b in BENCHMARKS]
    print(
        "\npairs scored: "
        + ", ".join(
            f"{b} {p.pairs} of {p.pairs + p.oov}" for b, p in zip(BENCHMARKS, pairs, strict=True)
        )
    )
    ours_m, gensim_m = means["nlpbook (NumPy)"], means["gensim"]
    print(f"speed ratio (ours / gensim): {ours_m[0] / gensim_m[0]:.2f}  (target >= 0.20)")
    print(f"WS-353 mean rho, ours - gensim: {ours_m[2] - gensim_m[2]:+.3f}  (target within 0.03)")


if __name__ == "__main__":
    main()

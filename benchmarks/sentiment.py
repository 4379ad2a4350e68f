"""SST-2 sentiment with bidirectional recurrent classifiers: plain RNN, LSTM and GRU, GloVe
initialisation vs random embeddings.

Trains `nlpbook.textclf.RNNClassifier` on the 67k GLUE SST-2 training phrases (lowercase,
tokenized) exactly as the chapter does: a plain (Elman) RNN, an LSTM and a GRU with their
embeddings started from GloVe 6B-50d, and the LSTM with random embeddings. Reports accuracy on
the 872 dev sentences after the last step (no early stopping on dev) for each seed, and the
mean ± standard deviation over seeds. The `cpu` profile trains 1,000 steps per run (about one
epoch), as the chapter does to fit its 12 runs into the page's budget; `gpu` trains 4,000.

    python benchmarks/sentiment.py [--profile cpu|gpu|smoke] [--seeds 0 1 2]
                                   [--models rnn-glove lstm-glove lstm-random gru-glove]
"""

from __future__ import annotations

import argparse
import time
from typing import NamedTuple

import numpy as np
import torch

import nlpbook
from nlpbook import data
from nlpbook.embeddings import load_glove
from nlpbook.textclf import (
    ClassificationBatches,
    ClassifierConfig,
    RNNClassifier,
    accuracy,
    embedding_matrix,
    train_classifier,
)
from nlpbook.vocab import TokenVocab

PROFILES = {
    # the same settings as the chapter's classifiers in each profile
    "smoke": dict(train_examples=2000, steps=50, hidden=32, batch=64, lr=2e-3),
    "cpu": dict(train_examples=None, steps=1000, hidden=128, batch=64, lr=2e-3),
    "gpu": dict(train_examples=None, steps=4000, hidden=128, batch=64, lr=2e-3),
}


MODELS = {
    "rnn-glove": ("rnn", True),
    "lstm-glove": ("lstm", True),
    "lstm-random": ("lstm", False),
    "gru-glove": ("gru", True),
}


class Setup(NamedTuple):
    """What every run shares: the training phrases, vocabulary, dev batches and GloVe matrix."""

    texts: list[str]
    labels: np.ndarray
    vocab: TokenVocab
    train: list[list[int]]
    dev: ClassificationBatches
    glove: torch.Tensor
    coverage: float  # the fraction of the vocabulary that has a GloVe vector
    dev_size: int  # dev sentences


def prepare(cfg: dict, *, dev: tuple[list[str], np.ndarray] | None = None) -> Setup:
    """The data of a profile's runs, as the chapter prepares it (`dev`: default SST-2 dev)."""
    texts, labels = data.sst2("train")
    texts, labels = texts[: cfg["train_examples"]], labels[: cfg["train_examples"]]
    dev_texts, dev_labels = dev if dev is not None else data.sst2("dev")
    vocab = TokenVocab.build((t.split() for t in texts), min_count=1)
    train = [vocab.encode(t.split()) for t in texts]
    dev_batches = ClassificationBatches(
        [vocab.encode(t.split()) for t in dev_texts], dev_labels, batch_size=256, shuffle=False
    )
    glove, coverage = embedding_matrix(vocab, load_glove(), seed=0)  # as in the chapter
    return Setup(texts, labels, vocab, train, dev_batches, glove, coverage, len(dev_texts))


def train_one(setup: Setup, cfg: dict, name: str, *, seed: int) -> tuple[float, float, int]:
    """Train model `name` (one of MODELS) once; (dev accuracy, seconds, non-embedding params)."""
    cell, pretrained = MODELS[name]
    nlpbook.set_seed(seed)  # the seed sets the initial weights and the batch order
    model = RNNClassifier(
        ClassifierConfig(len(setup.vocab), embed_dim=50, hidden_size=cfg["hidden"], cell=cell)
    )
    if pretrained:
        model.load_embeddings(setup.glove)
    start = time.perf_counter()
    train_classifier(
        model,
        setup.train,
        setup.labels,
        steps=cfg["steps"],
        batch_size=cfg["batch"],
        lr=cfg["lr"],
        seed=seed,
    )
    seconds = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters() if p is not model.embed.weight)
    return accuracy(model, setup.dev), seconds, params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=tuple(PROFILES), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per seed")
    parser.add_argument("--models", nargs="+", choices=tuple(MODELS), default=list(MODELS))
    args = parser.parse_args()
    cfg = PROFILES[args.profile]
    torch.set_num_threads(args.threads)

    setup = prepare(cfg)
    texts, vocab, coverage = setup.texts, setup.vocab, setup.coverage

    rows = []
    for name in args.models:
        for seed in args.seeds:
            acc, seconds, params = train_one(setup, cfg, name, seed=seed)
            rows.append((name, seed, acc, seconds, params))
            print(f"{name} seed {seed}: {rows[-1][2]:.1%} in {seconds:.0f} s", flush=True)

    print(
        f"\nSST-2 dev ({setup.dev_size} sentences), profile {args.profile}, {args.threads} "
        f"thread(s): {len(texts)} training phrases, vocabulary {len(vocab)} "
        f"({coverage:.1%} in GloVe), {cfg['steps']} steps of {cfg['batch']}, "
        f"bidirectional, hidden {cfg['hidden']}, seeds {args.seeds}"
    )
    print(f"{'model':<12} {'dev acc (mean ± sd)':>20} {'runs':>22} {'train s':>8} {'params':>9}")
    for name in args.models:
        accs = np.array([r[2] for r in rows if r[0] == name]) * 100
        secs = np.median([r[3] for r in rows if r[0] == name])
        params = next(r[4] for r in rows if r[0] == name)
        runs = " ".join(f"{a:.1f}" for a in accs)
        print(
            f"{name:<12} {accs.mean():>12.1f} ± {accs.std(ddof=1) if len(accs) > 1 else 0:.1f}  "
            f"{runs:>22} {secs:>8.0f} "
            f"{params:>9,}"
        )
    print("params: without the embedding table; train s: median over seeds")


if __name__ == "__main__":
    main()

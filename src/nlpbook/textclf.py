"""Sentence classification: padded batches, two classifiers behind one interface, training.

The pipeline, from text to a prediction::

    "a gripping movie ."  --tokenize, TokenVocab-->  [4, 1871, 19, 3]        (`nlpbook.vocab`)
                          --pad_batch-->             ids (B, T), lengths (B,) (`nlpbook.batching`)
                          --a classifier-->          logits (B, num_classes)

Both classifiers take ``forward(ids, lengths, targets=None) -> (logits, loss)``
(`SentenceClassifier`), so `train_classifier` and `accuracy` serve either.
`RNNClassifier` packs the padded batch (`nn.utils.rnn.pack_padded_sequence`) so that its
plain RNN, LSTM or GRU never reads padding, and reads the final state of each direction.
`TransformerClassifier` runs the book's transformer blocks with padding masked and averages
the real tokens. `embedding_matrix` starts either's embeddings from pretrained vectors such
as GloVe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from nlpbook.attention import SinusoidalPositions, padding_mask
from nlpbook.batching import bucket_batches, pad_batch
from nlpbook.train import History, fit
from nlpbook.transformer import Block, MLPKind, Norm, make_norm
from nlpbook.vocab import TokenVocab


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


@dataclass(frozen=True)
class TransformerClassifierConfig:
    vocab_size: int
    num_classes: int = 2
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int | None = None  # None: 4 * d_model
    max_len: int = 512  # longest sentence, in tokens
    positions: Literal["learned", "sinusoidal"] = "learned"
    norm: Norm = "layer"
    prenorm: bool = True
    mlp: MLPKind = "gelu"
    dropout: float = 0.1
    pad_id: int = 0


class TransformerClassifier(SentenceClassifier):
    """Embed tokens and positions, run encoder blocks, average the real tokens, classify.

    Padding keys are masked in every block and left out of the average, so a sentence gets
    the same logits alone or in a padded batch. ``forward(ids (B, T), lengths (B,),
    targets=None) -> (logits (B, num_classes), loss)``, like `RNNClassifier`, so
    `train_classifier` and `accuracy` work unchanged.
    """

    def __init__(self, config: TransformerClassifierConfig) -> None:
        super().__init__()
        if config.positions not in ("learned", "sinusoidal"):
            raise ValueError(
                f"positions must be 'learned' or 'sinusoidal', got {config.positions!r}"
            )
        self.config = config
        C = config.d_model
        self.embed = nn.Embedding(config.vocab_size, C, padding_idx=config.pad_id)
        if config.positions == "learned":
            self.pos: nn.Module = nn.Embedding(config.max_len, C)
        else:
            self.pos = SinusoidalPositions(config.max_len, C)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(
                d_model=C,
                n_heads=config.n_heads,
                d_ff=config.d_ff or 4 * C,
                norm=config.norm,
                mlp=config.mlp,
                prenorm=config.prenorm,
                dropout=config.dropout,
            )
            for _ in range(config.n_layers)
        )
        self.norm = make_norm(config.norm, C, eps=1e-5) if config.prenorm else nn.Identity()
        self.head = nn.Linear(C, config.num_classes)
        # GPT-2's embedding init: small words and positions, not nn.Embedding's N(0, 1),
        # so that neither drowns the other (nor pretrained word vectors loaded later)
        for table in (self.embed, self.pos):
            if isinstance(table, nn.Embedding):
                nn.init.normal_(table.weight, mean=0.0, std=0.02)
        with torch.no_grad():
            self.embed.weight[config.pad_id].zero_()

    def forward(
        self, ids: Tensor, lengths: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        check_batch(ids, lengths)
        B, T = ids.shape
        if T > self.config.max_len:
            raise ValueError(
                f"sequences of {T} tokens are longer than max_len={self.config.max_len}"
            )
        lengths = lengths.to(ids.device)
        real = torch.arange(T, device=ids.device) < lengths[:, None]  # (B, T)
        positions = torch.arange(T, device=ids.device)
        x = self.drop(self.embed(ids) + self.pos(positions))  # (B, T, C)
        mask = padding_mask(real)  # (B, 1, 1, T)
        for block in self.blocks:
            x = block(x, mask=mask)
        x = self.norm(x)
        weights = real.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        sentence = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)  # (B, C)
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

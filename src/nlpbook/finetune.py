"""Fine-tuning a pretrained encoder for classification: head, batches, loss and evaluation.

`BertForMeanPooledClassification` puts a new linear layer on the *mean* of a pretrained
BERT's token vectors, the sentence vector sentence-transformers models such as MiniLM were
trained to produce (Hugging Face's ``BertForSequenceClassification`` classifies the ``[CLS]``
vector instead). It is a Hugging Face ``PreTrainedModel``: ``from_pretrained(folder,
num_labels=2)`` loads the encoder's weights from a folder such as
``nlpbook.assets.locate("minilm-l6")`` and ``save_pretrained`` saves the fine-tuned model.
It trains with the book's loop, `nlpbook.fit`, given `classification_loss`:

    texts --tokenizer (once, no padding)--> id lists of different lengths
          --DynamicPadding (per batch)----> input_ids, attention_mask (B, T), labels (B,)
          --model------------------------> logits (B, num_labels) --cross-entropy--> loss

Dynamic padding pads each batch only to *its* longest sequence, not to a fixed length:
most sentences are short, so most batches are much narrower than the longest text, and an
encoder's cost grows with the padded width. `LengthGroupedSampler` puts sentences of
similar lengths into the same batch, which leaves even less padding.

>>> collate = DynamicPadding(pad_token_id=0)
>>> batch = collate([{"input_ids": [101, 7, 102], "label": 1},
...                  {"input_ids": [101, 102], "label": 0}])
>>> batch["input_ids"].tolist(), batch["attention_mask"].tolist(), batch["labels"].tolist()
([[101, 7, 102], [101, 102, 0]], [[1, 1, 1], [1, 1, 0]], [1, 0])
>>> accuracy([1, 0, 0, 1], [1, 1, 0, 1])
0.75
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor, nn
from torch.nn import functional as F
from transformers import BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from nlpbook.batching import bucket_batches
from nlpbook.bert import mean_pool
from nlpbook.schedule import warmup_cosine
from nlpbook.train import History, evaluating, fit, text_list

Feature = Mapping[str, Any]  # {"input_ids": list[int], "label": int (optional)}


class BertForMeanPooledClassification(BertPreTrainedModel):
    """A BERT encoder, the mean of its real tokens' last vectors, dropout and a linear layer.

    ``forward(input_ids, attention_mask, token_type_ids=None, labels=None)`` returns an
    output with ``logits`` (B, num_labels) and, given ``labels`` (B,), the cross-entropy
    ``loss``, like Hugging Face's classifiers. Loading a plain encoder's folder with
    ``from_pretrained(folder, num_labels=...)`` starts the linear layer at random (the
    loading report lists it as missing) and drops the encoder's unused ``pooler``.
    """

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()  # Hugging Face's initialisation of the new layer

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        labels: Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        out = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            **kwargs,
        )
        sentence = mean_pool(out.last_hidden_state, attention_mask)  # (B, T, C) -> (B, C)
        logits = self.classifier(self.dropout(sentence))  # (B, num_labels)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
        )


@dataclass(frozen=True)
class DynamicPadding:
    """Collate tokenized examples into a batch padded to the longest one (a ``collate_fn``).

    Each example is a mapping with ``input_ids`` (a list of token ids, already truncated)
    and optionally ``label``. Returns ``input_ids`` and ``attention_mask`` (B, T) with T the
    longest example of this batch, padded on the right with `pad_token_id` (mask 0), and
    ``labels`` (B,) when the examples have labels. The same batches as Hugging Face's
    ``DataCollatorWithPadding``, without the tokenizer.
    """

    pad_token_id: int

    def __call__(self, examples: Sequence[Feature]) -> dict[str, Tensor]:
        if len(examples) == 0:
            raise ValueError("cannot collate an empty batch")
        lengths = [len(e["input_ids"]) for e in examples]
        if min(lengths) == 0:
            raise ValueError(f"example {lengths.index(0)} of the batch has no tokens")
        input_ids = torch.full((len(examples), max(lengths)), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)  # (B, T)
        for row, (example, n) in enumerate(zip(examples, lengths, strict=True)):
            input_ids[row, :n] = torch.as_tensor(example["input_ids"], dtype=torch.long)
            attention_mask[row, :n] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        has_label = ["label" in e for e in examples]
        if any(has_label):
            if not all(has_label):
                raise ValueError("some examples of the batch have a label and some do not")
            batch["labels"] = torch.tensor([int(e["label"]) for e in examples], dtype=torch.long)
        return batch


class LengthGroupedSampler:
    """Batches of indices of examples with similar lengths, in a new order every epoch.

    A ``batch_sampler`` for `torch.utils.data.DataLoader`: with dynamic padding, a batch of
    similar lengths has little padding, so a step costs less. Each epoch shuffles the
    examples, sorts them by length within chunks of 50 batches and shuffles the batches
    (`nlpbook.batching.bucket_batches`); epoch ``e`` uses seed ``seed + e``, so a run repeats.

    >>> sampler = LengthGroupedSampler([5, 1, 4, 2, 3, 1], batch_size=2, seed=0)
    >>> sorted(sorted(b) for b in sampler)  # every index once per epoch, lengths paired
    [[0, 2], [1, 5], [3, 4]]
    """

    def __init__(self, lengths: Sequence[int], *, batch_size: int, seed: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if len(lengths) == 0:
            raise ValueError("no examples to batch")
        self.lengths, self.batch_size, self.seed = list(lengths), batch_size, seed
        self.epoch = 0

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        batches = bucket_batches(
            self.lengths, batch_size=self.batch_size, seed=self.seed + self.epoch
        )
        self.epoch += 1
        return iter([b.tolist() for b in batches])


def classification_loss(model: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
    """Mean cross-entropy of ``model(input_ids, attention_mask).logits`` against ``labels``.

    The `loss_fn` to give `nlpbook.fit` for a Hugging Face sequence classifier. (Such a
    model computes the same loss itself when given ``labels``; writing it out keeps the
    objective in view.)
    """
    if "labels" not in batch:
        raise ValueError("the batch has no 'labels'; collate labelled examples to train")
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.cross_entropy(logits, batch["labels"])  # logits (B, num_labels), labels (B,)


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_length: int = 128,
) -> np.ndarray:
    """Logits (N, num_labels) of a sequence classifier for `texts`, in the input order.

    Texts are tokenized, cut to `max_length` tokens and sorted by length, so each batch is
    padded only to its own longest text (`DynamicPadding`); the model is in eval mode
    meanwhile (no dropout), and its training mode is restored afterwards.
    """
    texts = text_list(texts, batch_size=batch_size)
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    order = np.argsort([len(x) for x in ids], kind="stable")
    collate = DynamicPadding(tokenizer.pad_token_id)
    device = next(model.parameters()).device
    out: np.ndarray | None = None
    with evaluating(model):
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            batch = collate([{"input_ids": ids[i]} for i in rows])
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits  # (b, num_labels)
            if out is None:
                out = np.empty((len(texts), logits.shape[-1]), dtype=np.float32)
            out[rows] = logits.float().cpu().numpy()
    return out


def fine_tune(
    model: nn.Module,
    features: Sequence[Feature],
    *,
    collate: Callable[[Sequence[Feature]], dict[str, Tensor]],
    loss_fn: Callable[[nn.Module, Mapping[str, Tensor]], Tensor],
    steps: int,
    batch_size: int,
    lr: float,
    warmup_steps: int,
    seed: int = 0,
    desc: str = "fine-tuning",
    progress: bool = True,
) -> History:
    """The book's fine-tuning recipe for a pretrained encoder with a new head; returns `fit`'s
    history.

    Batches of `batch_size` features of similar lengths (``LengthGroupedSampler``, seeded by
    `seed`, each ``features[i]["input_ids"]`` giving the length) are padded by `collate`;
    AdamW (weight decay 0.01) updates the parameters that require gradients (freeze some
    first to leave them as pretrained), its learning rate rising linearly to `lr` over
    `warmup_steps`, then decaying along a cosine to 0 at `steps`; `nlpbook.fit` runs the
    loop with `loss_fn`. The classifier of *Pretrained transformers*, the token classifier
    (`nlpbook.tokenclf`) and the question-answering model (`nlpbook.qa`) all train this way.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("no parameter of the model requires gradients: nothing to train")
    batches = torch.utils.data.DataLoader(
        features,
        batch_sampler=LengthGroupedSampler(
            [len(f["input_ids"]) for f in features], batch_size=batch_size, seed=seed
        ),
        collate_fn=collate,
    )
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.01)
    schedule = warmup_cosine(optimizer, warmup_steps=warmup_steps, total_steps=steps, min_lr=0.0)
    return fit(
        model,
        batches,
        optimizer=optimizer,
        scheduler=schedule,
        steps=steps,
        loss_fn=loss_fn,
        progress=progress,
        desc=desc,
    )


def accuracy(predictions: ArrayLike, labels: ArrayLike) -> float:
    """The fraction of examples whose predicted class equals the label.

    `predictions` are class ids (N,) or scores (N, C), such as logits or log-probabilities,
    of which the highest counts (the first one on a tie); `labels` are class ids (N,).

    >>> accuracy([[2.0, -1.0], [0.1, 0.3], [0.5, 0.5]], [0, 1, 1])
    0.6666666666666666
    """
    if isinstance(predictions, torch.Tensor):
        predictions = predictions.detach().cpu().numpy()
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.ndim not in (1, 2):
        raise ValueError(
            f"predictions must be class ids (N,) or scores (N, C), got shape {predictions.shape}"
        )
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D array of class ids, got shape {labels.shape}")
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions but {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("no examples to score")
    if predictions.ndim == 2:
        predictions = predictions.argmax(axis=1)  # (N, C) -> (N,): the first maximum wins
    elif not np.issubdtype(predictions.dtype, np.integer):
        raise ValueError(
            f"1-D predictions must be integer class ids, got {predictions.dtype}; pass scores "
            "as (N, C)"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer class ids, got {labels.dtype}")
    return float(np.mean(predictions == labels))

"""A training loop that knows nothing about the model it trains.

The model follows the book's convention ``model(*inputs) -> (logits, loss)`` (the last
element of a batch is usually the targets), or the caller passes `loss_fn` to say how a
batch becomes a loss. The loop moves batches to the model's device, steps the optimizer,
clips gradients if asked, evaluates now and then, shows a progress bar and returns the
history. It never plots: `nlpbook.plots.loss_curve` does that.

The same call trains with data parallelism when the script runs under ``torchrun`` and has
called `nlpbook.distributed.init`: see `fit`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from nlpbook import distributed

Batch = Any  # a tensor, a tuple/list of tensors, or a dict of tensors


@dataclass
class History:
    """What happened during `fit`, one entry per optimizer step unless said otherwise."""

    loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)  # before clipping
    lr: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)  # steps at which eval_fn ran
    eval: list[float] = field(default_factory=list)  # what eval_fn returned there
    seconds: float = 0.0  # wall-clock time of the whole run


def to_device(batch: Batch, device: torch.device) -> Batch:
    """Move a tensor, or the tensors inside a tuple, list or dict, to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def _default_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    if isinstance(batch, dict):
        out = model(**batch)
    elif isinstance(batch, (tuple, list)):
        out = model(*batch)
    else:
        out = model(batch)
    loss = out[1] if isinstance(out, tuple) else getattr(out, "loss", None)
    if loss is None:
        raise ValueError(
            "the model returned no loss; expected model(*batch) -> (logits, loss) with the "
            "targets in the batch, or pass loss_fn=(model, batch) -> loss"
        )
    return loss


def _cycle(batches: Iterable[Batch]) -> Iterator[Batch]:
    """Iterate over `batches` again and again (one pass = one epoch)."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ValueError("the batches iterable yielded nothing; expected at least one batch")


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put `model` in eval mode (no dropout) for the block, then back in the mode it was in.

    >>> with evaluating(model):  # doctest: +SKIP
    ...     logits = model(x)
    """
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def text_list(texts: Sequence[str], *, batch_size: int) -> list[str]:
    """`texts` as a list, after the checks every batched prediction over texts needs.

    A single string is refused (iterating over it would give its characters), as are an
    empty sequence and a batch size below 1.

    >>> text_list(("a film", "a book"), batch_size=2)
    ['a film', 'a book']
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    texts = list(texts)
    if not texts:
        raise ValueError("no texts given; expected at least one")
    return texts


def fit(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    *,
    optimizer: torch.optim.Optimizer,
    steps: int,
    loss_fn: Callable[[torch.nn.Module, Batch], torch.Tensor] | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    grad_clip: float | None = None,
    eval_fn: Callable[[torch.nn.Module], float] | None = None,
    eval_every: int | None = None,
    callbacks: Iterable[Callable[[int, float, torch.nn.Module], None]] = (),
    progress: bool = True,
    desc: str = "training",
    shard_batches: bool = True,
) -> History:
    """Train `model` for `steps` optimizer steps over `batches` (re-iterated as needed).

    `eval_fn(model)` runs in eval mode under `torch.no_grad` every `eval_every` steps and
    after the last one; each callback is called as ``callback(step, loss, model)``.
    A loss that becomes NaN or infinite stops training with an error naming the step.

    Data parallelism: when a process group of more than one process is initialised
    (`nlpbook.distributed.init` under ``torchrun``), the model is wrapped in
    ``DistributedDataParallel``, which averages the gradients of all processes. With
    `shard_batches` every process iterates over the same global batches and trains on its
    own slice of each (`nlpbook.distributed.shard`), so N processes take exactly the steps
    one process would take on the whole batches; pass ``shard_batches=False`` when each
    process already loads its own share (e.g. with a ``DistributedSampler``). The recorded
    loss is the average over processes, and only process 0 shows the progress bar.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if eval_every is not None and eval_every < 1:
        raise ValueError(f"eval_every must be at least 1 or None, got {eval_every}")
    loss_fn = loss_fn or _default_loss
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    history = History()
    start = time.perf_counter()
    parallel = distributed.world_size() > 1
    trained = model  # what computes the loss: the model, or its DDP wrapper
    if parallel and not isinstance(model, DistributedDataParallel):
        device_ids = [device] if device.type == "cuda" else None
        trained = DistributedDataParallel(model, device_ids=device_ids)

    def evaluate(step: int) -> None:
        model.eval()
        with torch.no_grad():
            history.eval.append(float(eval_fn(model)))
        history.eval_steps.append(step)
        model.train()

    model.train()
    show = progress and distributed.is_main()
    bar = tqdm(total=steps, desc=desc, disable=not show, mininterval=1.0)
    for step, batch in enumerate(_cycle(batches), start=1):
        if parallel and shard_batches:
            batch = distributed.shard(batch)
        loss = loss_fn(trained, to_device(batch, device))
        # averaged before the check, so that every process stops at the same step
        mean_loss = distributed.mean_over_processes(loss.detach()).item()
        if not math.isfinite(mean_loss):
            raise FloatingPointError(
                f"loss is {mean_loss} at step {step}; lower the learning rate?"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip else math.inf)
        optimizer.step()
        history.lr.append(optimizer.param_groups[0]["lr"])
        if scheduler is not None:
            scheduler.step()
        history.loss.append(mean_loss)
        history.grad_norm.append(norm.item())
        for callback in callbacks:
            callback(step, history.loss[-1], model)
        if eval_fn is not None and (step == steps or (eval_every and step % eval_every == 0)):
            evaluate(step)
        bar.set_postfix(loss=f"{history.loss[-1]:.4f}", refresh=False)
        bar.update()
        if step == steps:
            break
    bar.close()
    model.eval()
    history.seconds = time.perf_counter() - start
    return history

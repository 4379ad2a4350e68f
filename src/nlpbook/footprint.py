"""What training a model costs in memory: its weights, and what a training step adds.

A step of Adam keeps, besides the weights,

- one **gradient** per trainable parameter;
- the optimizer's **state**: Adam's two moving averages, two more numbers per trainable
  parameter;
- the **activations saved for the backward pass**: the forward pass keeps every tensor that
  a derivative will need (the input of a linear layer whose weight trains, the output of a
  softmax, ...) until backward has used it.

Freezing a parameter removes its gradient and its optimizer state, and an activation is only
saved if some derivative needs it: a frozen layer that no trainable parameter lies *before*
saves nothing at all. `step_footprint` counts these tensors, by kind, on a real batch;
`saved_activations` is the counter of the last kind.

>>> layer = nn.Linear(4, 3, bias=False)
>>> with saved_activations(layer) as saved:
...     _ = layer(torch.ones(2, 4))       # the weight trains: its input (2 x 4 floats) is kept
>>> saved.bytes
32
>>> layer.requires_grad_(False)
Linear(in_features=4, out_features=3, bias=False)
>>> with saved_activations(layer) as saved:
...     _ = layer(torch.ones(2, 4))       # nothing trains: nothing is kept
>>> saved.bytes
0
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` numbers of parameters of `model`, each shared tensor once.

    >>> model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))   # 6 + 3 parameters
    >>> _ = model[0].requires_grad_(False)
    >>> parameter_counts(model)
    (3, 9)
    """
    # named_parameters() yields a tied weight (embeddings = output layer) only once
    params = [p for _, p in model.named_parameters()]
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


@dataclass
class SavedBytes:
    """Bytes of the distinct storages saved for backward inside `saved_activations`."""

    bytes: int = 0
    tensors: int = 0  # how many saved tensors were counted (a storage saved twice: once)
    _seen: set[int] = field(default_factory=set, repr=False)


@contextmanager
def saved_activations(model: nn.Module | None = None) -> Iterator[SavedBytes]:
    """Count the memory of the tensors that autograd saves for backward in this block.

    Each saved tensor is counted by its whole storage, once, however many views of it are
    saved. The parameters and buffers of `model` are left out: a frozen weight that a
    derivative needs is saved too, but it is in memory anyway. The tensors themselves are
    saved as usual, so the forward pass and its gradients are unchanged.
    """
    exclude = set()
    if model is not None:
        exclude = {_storage(t)[0] for t in [*model.parameters(), *model.buffers()]}
    saved = SavedBytes()

    def pack(tensor: Tensor) -> Tensor:
        pointer, size = _storage(tensor)
        if pointer not in exclude and pointer not in saved._seen:
            saved._seen.add(pointer)
            saved.bytes += size
            saved.tensors += 1
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        yield saved


def step_footprint(
    model: nn.Module,
    batch: Any,
    *,
    loss_fn: Callable[[nn.Module, Any], Tensor],
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, int]:
    """Bytes that one training step of `model` on `batch` holds, by kind.

    ``weights``: all parameters; ``gradients``: one per trainable parameter;
    ``optimizer state``: the tensors `optimizer` keeps (Adam's two averages, once it has
    taken a step; 0 without an optimizer); ``activations``: what ``loss_fn(model, batch)``
    saves for backward, measured by running the forward pass once in training mode (the
    random state is restored afterwards, the weights are not touched, no backward runs).

    The sum is what a step needs at least, a lower bound of the real peak: it leaves out
    temporary buffers, the allocator's rounding and whatever else the process holds.
    """
    params = {_storage(p)[0]: p for p in model.parameters()}.values()  # tied: once
    weights = sum(p.numel() * p.element_size() for p in params)
    gradients = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
    state = 0
    if optimizer is not None:
        state = sum(
            t.numel() * t.element_size()
            for per_param in optimizer.state.values()
            for t in per_param.values()
            if isinstance(t, Tensor) and t.dim() > 0  # Adam's step counter is a scalar
        )
    was_training = model.training
    model.train()
    with torch.random.fork_rng(devices=_devices(model)), saved_activations(model) as saved:
        loss = loss_fn(model, batch)
    del loss  # frees the graph and the saved tensors
    model.train(was_training)
    return {
        "weights": weights,
        "gradients": gradients,
        "optimizer state": state,
        "activations": saved.bytes,
    }


def _storage(tensor: Tensor) -> tuple[int, int]:
    """``(address, bytes)`` of the memory block that holds `tensor` (shared by its views)."""
    storage = tensor.untyped_storage()
    return storage.data_ptr(), storage.nbytes()


def _devices(model: nn.Module) -> list[int]:
    """The CUDA devices of `model`, whose random state `fork_rng` must restore too."""
    return sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})

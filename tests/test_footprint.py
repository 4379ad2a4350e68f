"""Counting parameters and a training step's memory, on cases worked by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nlpbook.footprint import parameter_counts, saved_activations, step_footprint


def _mlp() -> nn.Sequential:
    """Two bias-free linear layers 3 -> 5 -> 2 with a ReLU: 15 + 10 parameters."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5, bias=False), nn.ReLU(), nn.Linear(5, 2, bias=False))


def _loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    return model(batch).square().mean()


def test_parameter_counts_by_hand_and_tied_weights_once():
    model = _mlp()
    assert parameter_counts(model) == (25, 25)
    model[0].requires_grad_(False)
    assert parameter_counts(model) == (10, 25)
    tied = nn.Sequential(nn.Embedding(7, 4), nn.Linear(4, 7, bias=False))
    tied[1].weight = tied[0].weight  # an output layer that reuses the embeddings
    assert parameter_counts(tied) == (28, 28)


@pytest.mark.parametrize(
    "frozen, expected",
    [
        # everything trains: x (4x3) for the first weight, the ReLU output (4x5) for the
        # second weight and for ReLU's own derivative (one storage, counted once)
        ((), 4 * 3 * 4 + 4 * 5 * 4),
        # first layer frozen: its input is not needed, the ReLU output still is
        ((0,), 4 * 5 * 4),
        # only the first layer trains: the backward pass crosses ReLU and the second
        # layer, which needs the second weight (a parameter: not counted) and ReLU's output
        ((2,), 4 * 3 * 4 + 4 * 5 * 4),
        # nothing trains: no graph, nothing saved
        ((0, 2), 0),
    ],
)
def test_saved_activations_by_hand(frozen, expected):
    model = _mlp()
    for i in frozen:
        model[i].requires_grad_(False)
    with saved_activations(model) as saved:
        loss = _loss(model, torch.randn(4, 3))
    # the square's input (4x2) is saved as well whenever anything trains
    assert saved.bytes == (expected + 4 * 2 * 4 if expected else 0)
    del loss


def test_frozen_weights_are_not_counted_as_activations():
    layer = nn.Linear(6, 6, bias=False).requires_grad_(False)
    x = torch.randn(2, 6, requires_grad=True)  # the gradient w.r.t. x needs only the weight
    with saved_activations(layer) as saved:
        y = layer(x)
    assert saved.bytes == 0
    with saved_activations() as unfiltered:  # without the model, the weight is counted
        y = layer(x)
    assert unfiltered.bytes == 6 * 6 * 4
    del y


def test_step_footprint_by_hand_and_without_side_effects():
    model = _mlp()
    model[0].requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    batch = torch.randn(4, 3)
    _loss(model, batch).backward()
    optimizer.step()
    before = [p.detach().clone() for p in model.parameters()]
    rng = torch.get_rng_state()
    model.eval()
    parts = step_footprint(model, batch, loss_fn=_loss, optimizer=optimizer)
    assert parts == {
        "weights": 25 * 4,
        "gradients": 10 * 4,
        "optimizer state": 2 * 10 * 4,  # Adam's two averages; its scalar step is left out
        "activations": 4 * 5 * 4 + 4 * 2 * 4,
    }
    assert not model.training  # the mode is restored
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_step_footprint_dropout_does_not_move_the_random_state():
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    batch = torch.randn(2, 3)
    rng = torch.get_rng_state()
    parts = step_footprint(model, batch, loss_fn=_loss)
    assert torch.equal(torch.get_rng_state(), rng)
    assert parts["optimizer state"] == 0
    assert parts["activations"] > 0

"""The model-agnostic training loop on small problems with known answers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nlpbook import fit, set_seed
from nlpbook.train import evaluating, to_device


class Regressor(nn.Module):
    """y = w x + b with the book's convention forward(x, targets) -> (pred, loss)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, x, targets=None):
        pred = self.linear(x)
        loss = None if targets is None else nn.functional.mse_loss(pred, targets)
        return pred, loss


def _line_batches(n_batches=8, batch=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        x = torch.randn(batch, 1, generator=g)
        out.append((x, 3 * x - 2))
    return out


def test_fit_learns_a_line_and_records_history():
    """Loss falls by orders of magnitude and the weights approach w=3, b=-2 (tolerance 1e-2)."""
    set_seed(0)
    model = Regressor()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    hist = fit(model, _line_batches(), optimizer=opt, steps=200, progress=False)
    assert len(hist.loss) == len(hist.grad_norm) == len(hist.lr) == 200
    assert hist.loss[-1] < 1e-3 * hist.loss[0]
    assert model.linear.weight.item() == pytest.approx(3, abs=1e-2)
    assert model.linear.bias.item() == pytest.approx(-2, abs=1e-2)
    assert not model.training and hist.seconds > 0


def test_fit_is_deterministic_under_a_seed():
    def run():
        set_seed(123)
        model = Regressor()
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        return fit(model, _line_batches(), optimizer=opt, steps=30, progress=False).loss

    assert run() == run()


def test_eval_callbacks_scheduler_and_clipping():
    set_seed(0)
    model = Regressor()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
    seen = []
    hist = fit(
        model,
        _line_batches(),
        optimizer=opt,
        steps=12,
        scheduler=sched,
        grad_clip=0.5,
        eval_fn=lambda m: float(m.training),
        eval_every=5,
        callbacks=[lambda step, loss, m: seen.append(step)],
        progress=False,
    )
    assert hist.eval_steps == [5, 10, 12]
    assert hist.eval == [0.0, 0.0, 0.0]  # eval_fn runs in eval mode
    assert seen == list(range(1, 13))
    assert hist.lr[:6] == pytest.approx([0.1] * 5 + [0.05])
    # gradient norms are recorded before clipping, so they can exceed the clip value
    assert max(hist.grad_norm) > 0.5


def test_custom_loss_fn_and_dict_batches():
    set_seed(0)
    model = nn.Linear(2, 1)
    batches = [{"x": torch.ones(4, 2), "y": torch.zeros(4, 1)}]

    def loss_fn(m, b):
        return ((m(b["x"]) - b["y"]) ** 2).mean()

    hist = fit(
        model,
        batches,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        steps=20,
        loss_fn=loss_fn,
        progress=False,
    )
    assert hist.loss[-1] < hist.loss[0]


def test_bad_inputs():
    model = Regressor()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="steps must be at least 1"):
        fit(model, _line_batches(), optimizer=opt, steps=0)
    with pytest.raises(ValueError, match="yielded nothing"):
        fit(model, [], optimizer=opt, steps=3, progress=False)
    with pytest.raises(ValueError, match="returned no loss"):
        fit(model, [(torch.ones(2, 1),)], optimizer=opt, steps=1, progress=False)


def test_diverging_loss_stops_with_the_step():
    model = Regressor()
    opt = torch.optim.SGD(model.parameters(), lr=1e6)
    with pytest.raises(FloatingPointError, match="at step"):
        fit(model, _line_batches(), optimizer=opt, steps=100, progress=False)


def test_to_device_keeps_structure():
    batch = {"a": (torch.ones(1), [torch.zeros(2)]), "n": 3}
    moved = to_device(batch, torch.device("cpu"))
    assert isinstance(moved["a"], tuple) and isinstance(moved["a"][1], list) and moved["n"] == 3
    assert math.isclose(moved["a"][0].item(), 1.0)


@pytest.mark.parametrize("mode", [True, False])
def test_evaluating_restores_the_mode_even_after_an_error(mode):
    model = torch.nn.Dropout(0.5).train(mode)
    with pytest.raises(RuntimeError), evaluating(model):
        assert not model.training
        raise RuntimeError("inside the block")
    assert model.training is mode

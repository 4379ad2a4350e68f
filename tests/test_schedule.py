"""The warm-up + cosine schedule, against nanoGPT's formula worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from nlpbook.schedule import warmup_cosine


def _reference(step: int, *, lr: float, warmup: int, total: int, min_lr: float) -> float:
    if step < warmup:
        return lr * (step + 1) / (warmup + 1)
    if step > total:
        return min_lr
    ratio = (step - warmup) / (total - warmup)
    return min_lr + 0.5 * (1 + math.cos(math.pi * ratio)) * (lr - min_lr)


def test_learning_rates_seen_by_the_optimizer_follow_the_formula():
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=1e-3)
    schedule = warmup_cosine(opt, warmup_steps=10, total_steps=50, min_lr=1e-4)
    seen = []
    for _ in range(60):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    expected = [_reference(i, lr=1e-3, warmup=10, total=50, min_lr=1e-4) for i in range(60)]
    assert seen == pytest.approx(expected, rel=1e-9)
    assert seen[10] == pytest.approx(1e-3) and seen[50] == pytest.approx(1e-4)


def test_bad_settings_are_refused():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
    with pytest.raises(ValueError, match="warmup_steps < total_steps"):
        warmup_cosine(opt, warmup_steps=10, total_steps=10, min_lr=0.0)
    with pytest.raises(ValueError, match="above the optimizer"):
        warmup_cosine(opt, warmup_steps=1, total_steps=10, min_lr=1.0)

"""Learning-rate schedules that `nlpbook.fit` steps once per optimizer step.

Transformers are usually trained with a short linear *warm-up* (large early steps through
a randomly initialised network are unstable, and Adam's moment estimates are still noisy)
followed by a *cosine decay* to a floor, so that the last steps settle the weights.

>>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
>>> schedule = warmup_cosine(opt, warmup_steps=2, total_steps=6, min_lr=0.1)
>>> [round(schedule.lr_lambdas[0](step), 3) for step in range(8)]  # times lr = 1.0
[0.333, 0.667, 1.0, 0.868, 0.55, 0.232, 0.1, 0.1]
"""

from __future__ import annotations

import math

import torch


def warmup_cosine(
    optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int, min_lr: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `warmup_steps`, then cosine decay to `min_lr` at `total_steps`.

    Step ``i`` (counting from 0) uses ``lr * (i + 1) / (warmup_steps + 1)`` while warming
    up, then ``min_lr + (lr - min_lr) * (1 + cos(pi * progress)) / 2``, and `min_lr` after
    `total_steps`; ``lr`` is each parameter group's initial learning rate.
    """
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(
            f"expected 0 <= warmup_steps < total_steps, got {warmup_steps} and {total_steps}"
        )
    base = [group["lr"] for group in optimizer.param_groups]
    if any(min_lr > lr for lr in base):
        raise ValueError(f"min_lr {min_lr} is above the optimizer's learning rate {max(base)}")

    def factor(step: int, lr: float) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        if step > total_steps:
            return min_lr / lr
        progress = (step - warmup_steps) / (total_steps - warmup_steps)
        return (min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)) / lr

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, [lambda step, lr=lr: factor(step, lr) for lr in base]
    )

"""One call that makes a run repeatable: seed Python, NumPy and PyTorch together."""

from __future__ import annotations

import random

import numpy as np
import torch


def set_seed(seed: int) -> np.random.Generator:
    """Seed `random`, NumPy's legacy global state and torch (CPU and CUDA).

    Returns a fresh NumPy `Generator` seeded with `seed`, which is what library code in
    this package takes as its source of randomness.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - code outside the book may use it
    torch.manual_seed(seed)  # also seeds every CUDA device
    return np.random.default_rng(seed)

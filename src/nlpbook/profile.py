"""Execution profiles: one knob, ``NLPBOOK_PROFILE``, sets how big every chapter's runs are.

- ``smoke``: seconds per notebook, for CI and quick checks; the numbers mean nothing.
- ``cpu``: a few minutes per notebook on a 2-core laptop; reaches each chapter's targets.
- ``gpu``: larger models and longer training, for the published book.

Without the variable, the profile is ``gpu`` when CUDA is available and ``cpu`` otherwise.
A notebook's settings cell is the only place that looks at the profile:

>>> cfg = settings(smoke=dict(steps=10), cpu=dict(steps=2_000), gpu=dict(steps=20_000))
>>> cfg.steps   # doctest: +SKIP
2000
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

PROFILES = ("smoke", "cpu", "gpu")
ENV = "NLPBOOK_PROFILE"


def active() -> str:
    """The profile in force: ``$NLPBOOK_PROFILE``, else 'gpu' with CUDA, else 'cpu'."""
    name = os.environ.get(ENV, "").strip().lower()
    if name:
        if name not in PROFILES:
            raise ValueError(
                f"{ENV}={name!r} is not a profile; expected one of {', '.join(PROFILES)}"
            )
        return name
    import torch  # imported here so that reading the variable stays cheap

    return "gpu" if torch.cuda.is_available() else "cpu"


def settings(
    *,
    smoke: dict[str, Any],
    cpu: dict[str, Any],
    gpu: dict[str, Any],
    profile: str | None = None,
) -> SimpleNamespace:
    """The sizes for the active (or given) profile, as attributes, plus ``.profile``.

    All three profiles must name the same settings, so that no cell can depend on a value
    that exists in one profile only.
    """
    table = {"smoke": smoke, "cpu": cpu, "gpu": gpu}
    keys = set(cpu)
    for name, values in table.items():
        if set(values) != keys:
            diff = sorted(set(values) ^ keys)
            raise ValueError(f"profile {name!r} names different settings from 'cpu': {diff}")
    if "profile" in keys:
        raise ValueError("'profile' is reserved for the profile's own name")
    chosen = profile or active()
    if chosen not in PROFILES:
        raise ValueError(f"unknown profile {chosen!r}; expected one of {', '.join(PROFILES)}")
    return SimpleNamespace(profile=chosen, **table[chosen])

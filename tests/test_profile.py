"""Profiles: the variable, the CUDA default, and the settings helper's checks."""

from __future__ import annotations

import pytest
import torch

from nlpbook import profile

SIZES = dict(
    smoke=dict(steps=1, width=8), cpu=dict(steps=100, width=64), gpu=dict(steps=1000, width=256)
)


@pytest.mark.parametrize("name", profile.PROFILES)
def test_variable_selects_profile(monkeypatch, name):
    monkeypatch.setenv(profile.ENV, name.upper())
    assert profile.active() == name
    cfg = profile.settings(**SIZES)
    assert cfg.profile == name and cfg.steps == SIZES[name]["steps"]


def test_default_follows_cuda(monkeypatch):
    monkeypatch.delenv(profile.ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert profile.active() == "gpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert profile.active() == "cpu"


def test_unknown_profile_is_an_error(monkeypatch):
    monkeypatch.setenv(profile.ENV, "laptop")
    with pytest.raises(
        ValueError, match="'laptop' is not a profile; expected one of smoke, cpu, gpu"
    ):
        profile.active()
    with pytest.raises(ValueError, match="unknown profile 'tpu'"):
        profile.settings(**SIZES, profile="tpu")


def test_profiles_must_name_the_same_settings():
    with pytest.raises(
        ValueError, match=r"profile 'gpu' names different settings from 'cpu': \['width'\]"
    ):
        profile.settings(smoke=SIZES["smoke"], cpu=SIZES["cpu"], gpu=dict(steps=5))
    with pytest.raises(ValueError, match="reserved"):
        profile.settings(smoke=dict(profile=1), cpu=dict(profile=1), gpu=dict(profile=1))


def test_explicit_profile_overrides_the_variable(monkeypatch):
    monkeypatch.setenv(profile.ENV, "gpu")
    assert profile.settings(**SIZES, profile="smoke").width == 8

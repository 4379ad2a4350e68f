"""set_seed, auto_device, plots, assets and glue."""

from __future__ import annotations

import random

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from nlpbook import assets, auto_device, glue, plots, set_seed  # noqa: E402


def test_set_seed_repeats_every_source_of_randomness():
    def draw(seed):
        rng = set_seed(seed)
        legacy = np.random.rand()  # noqa: NPY002 - the legacy global state is what is tested
        return random.random(), legacy, torch.rand(1).item(), rng.random()

    first, again, other = draw(7), draw(7), draw(8)
    assert first == again
    assert all(x != y for x, y in zip(first, other, strict=True))


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_set_seed_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="non-negative int"):
        set_seed(bad)


def test_auto_device():
    assert auto_device("cpu") == torch.device("cpu")
    expected = (
        "cuda"
        if torch.cuda.is_available()
        else ("mps" if torch.backends.mps.is_available() else "cpu")
    )
    assert auto_device().type == expected == auto_device(None).type


def test_plots_draw_what_they_are_given():
    ax = plots.loss_curve([3, 2, 1.5, 1.2], eval_steps=[2, 4], eval=[2.5, 1.4], window=2)
    lines = ax.get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), [3, 2, 1.5, 1.2])
    np.testing.assert_allclose(lines[2].get_xdata(), [2, 4])
    ax = plots.bar_table(["a", "b"], [1.0, 2.5], xlabel="x")
    assert [p.get_width() for p in ax.patches] == [1.0, 2.5]
    ax = plots.heatmap(np.eye(2, 3), xticklabels=list("xyz"), yticklabels=list("ab"))
    assert [t.get_text() for t in ax.get_xticklabels()] == list("xyz")
    with pytest.raises(ValueError, match="does not match the labels"):
        plots.heatmap(np.eye(2), xticklabels=list("xyz"), yticklabels=list("ab"))
    with pytest.raises(ValueError, match="2 eval_steps but 1 eval values"):
        plots.loss_curve([1, 2], eval_steps=[1, 2], eval=[1])
    ax = plots.loss_curve([1, 2], label="run A", color="C3")  # two runs on one axes
    plots.loss_curve([2, 1], label="run B", ax=ax)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["run A", "run B"]
    assert matplotlib.colors.same_color(ax.get_lines()[1].get_color(), "C3")
    matplotlib.pyplot.close("all")


def test_gpt2_tokenizer_asset_is_verified_and_complete():
    folder = assets.locate("gpt2-tokenizer")
    assert sorted(p.name for p in folder.iterdir()) == ["encoder.json", "vocab.bpe"]
    assert (folder / "vocab.bpe").read_text(encoding="utf-8").startswith("#version: 0.2")


def test_unknown_asset():
    with pytest.raises(KeyError, match="unknown asset 'gpt5'; expected one of"):
        assets.locate("gpt5")


def test_glue_stores_numpy_and_torch_scalars_as_python_numbers(monkeypatch):
    import myst_nb

    stored = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display: stored.update({name: value}))
    glue("a", np.float64(0.25))
    glue("b", torch.tensor(3))
    glue("c", np.arange(3))
    assert type(stored["a"]) is float and stored["a"] == 0.25
    assert type(stored["b"]) is int and stored["b"] == 3
    assert isinstance(stored["c"], np.ndarray)


def test_glue_outside_the_build_still_shows_the_value(capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_myst(name, *args, **kwargs):
        if name == "myst_nb":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_myst)
    glue("answer", 42)
    assert "42" in capsys.readouterr().out

"""nlpbook.plots: the centred smoothing of loss curves and the labelled embedding map."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from nlpbook import plots  # noqa: E402


def test_smooth_is_a_centred_mean_inside_the_series():
    # worked by hand, weights 1, 2, 1: (0 + 2*3 + 0) / 4 = 1.5, (3 + 2*0 + 3) / 4 = 1.5; the
    # end points have no neighbour on one side, so their centred window is the point alone
    np.testing.assert_allclose(plots.smooth([0, 3, 0, 3, 0], window=3), [0, 1.5, 1.5, 1.5, 0])
    # window 5, weights 1, 2, 3, 2, 1 / 9 in the middle: (1 + 4 + 18 + 8 + 5) / 9 = 4;
    # the second point's window shrinks to 3 points: (1 + 2*2 + 6) / 4 = 2.75
    smoothed = plots.smooth([1, 2, 6, 4, 5, 9, 1], window=5)
    np.testing.assert_allclose(smoothed[:3], [1, 2.75, 4])
    np.testing.assert_allclose(smoothed[::-1], plots.smooth([1, 9, 5, 4, 6, 2, 1], window=5))
    x = np.random.default_rng(0).standard_normal(50)
    triangle = np.array([1, 2, 3, 4, 3, 2, 1]) / 16
    inner = plots.smooth(x, window=7)[3:-3]
    np.testing.assert_allclose(inner, np.convolve(x, triangle, mode="valid"), atol=1e-12)


@pytest.mark.parametrize("window", [2, 5, 20, 51, 1000])
def test_smooth_has_no_lag_on_a_trend(window):
    # a trailing mean of a falling line sits above every point (by (window - 1) / 2 steps);
    # the centred smoother returns the line itself, ends included (tolerance 1e-9)
    line = 10.0 - 0.01 * np.arange(300)
    np.testing.assert_allclose(plots.smooth(line, window=window), line, atol=1e-9)


def test_smooth_has_no_lag_or_kink_at_the_start_of_a_falling_curve():
    # a loss-like curve that falls fast, plus noise. Over the first window, a trailing mean
    # lags above the true curve by about 0.17 on average; the centred one stays within 0.03
    # (what remains is the curvature of the exponential), and it has no jump where the full
    # window begins.
    steps = np.arange(2_000)
    truth = 2 + np.exp(-steps / 100)
    noisy = truth + 0.05 * np.random.default_rng(0).standard_normal(len(steps))
    window = 101
    smoothed = plots.smooth(noisy, window=window)
    csum = np.cumsum(noisy)
    trailing = (csum - np.concatenate([np.zeros(window), csum[:-window]])) / np.minimum(
        steps + 1, window
    )
    assert np.mean(trailing[:window] - truth[:window]) > 0.1  # the defect being fixed
    assert abs(np.mean(smoothed[:window] - truth[:window])) < 0.03
    assert np.abs(smoothed[10:-10] - truth[10:-10]).max() < 0.04
    half = window // 2
    assert np.abs(np.diff(smoothed[half - 5 : half + 5])).max() < 0.01
    # one steep first step (4 then 2s): the point leaving the window has the least weight,
    # so the curve has no step where the full window begins (a box window jumps by 2/11)
    steep = plots.smooth([4.0] + [2.0] * 40, window=10)
    assert np.abs(np.diff(steep[4:])).max() < 2 / 11 / 2


def test_smooth_short_inputs_and_bad_window():
    np.testing.assert_allclose(plots.smooth([2, 4, 6], window=10), [2, 4, 6])
    np.testing.assert_allclose(plots.smooth([5.0], window=4), [5.0])
    assert plots.smooth([], window=3).shape == (0,)
    with pytest.raises(ValueError, match="window must be at least 1"):
        plots.smooth([1], window=0)


def test_loss_curve_draws_the_centred_smoothing():
    loss = [4.0, 3.0, 2.0, 1.0]
    ax = plots.loss_curve(loss, window=3)
    raw, smoothed = ax.get_lines()[:2]
    np.testing.assert_allclose(raw.get_ydata(), loss)
    np.testing.assert_allclose(smoothed.get_ydata(), loss)  # a straight line: no lag
    matplotlib.pyplot.close("all")


def test_embedding_map_labels_every_point_inside_the_axes():
    rng = np.random.default_rng(0)
    words = [f"word{i}" for i in range(30)]
    vectors = rng.standard_normal((30, 10))
    ax = plots.embedding_map(words, vectors, method="pca", groups=["a", "b", "c"] * 10)
    assert ax.get_xlabel() == "PC 1" and ax.get_ylabel() == "PC 2"
    texts = [t for t in ax.texts if t.get_text() in words]
    assert sorted(t.get_text() for t in texts) == sorted(words)
    ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    # the text's own box, without the leader line an annotation's extent includes
    boxes = [matplotlib.text.Text.get_window_extent(t, renderer) for t in texts]
    for box in boxes:  # no label sticks out of the plot
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1
        assert frame.y0 <= box.y0 and box.y1 <= frame.y1
    overlaps = sum(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    assert overlaps == 0
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.x0 >= frame.x1  # the legend sits beside the plot, hiding nothing
    matplotlib.pyplot.close("all")


def test_embedding_map_rejects_bad_input():
    with pytest.raises(ValueError, match="need one row per word"):
        plots.embedding_map(["a", "b", "c"], np.zeros((2, 4)))
    with pytest.raises(ValueError, match="method must be"):
        plots.embedding_map(["a", "b", "c"], np.eye(3), method="umap")

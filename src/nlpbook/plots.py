"""Figures the chapters share. Every function draws on an `Axes` (new or given) and returns it."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes


def _axes(ax: Axes | None, figsize: tuple[float, float] = (6, 3.5)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def smooth(values: Sequence[float], *, window: int) -> np.ndarray:
    """Centred, triangle-weighted moving average, same length as the input, without lag.

    Each point becomes a weighted mean of itself and the ``window // 2`` points on each side,
    with weights falling linearly away from it (``[1, 2, 3, 2, 1]`` for ``window=5``). Near
    the ends, where fewer points exist on one side, the window shrinks on *both* sides to
    stay centred, down to the raw point at each end. So the curve never lags behind the data
    (a trailing mean sits above a falling loss), and because points enter and leave the
    window with the smallest weight, a steep first step does not make a kink where the
    full window begins. A straight line comes back unchanged.

    >>> smooth([1, 3, 5, 7, 9], window=3)  # a trend is not delayed
    array([1., 3., 5., 7., 9.])
    >>> smooth([0, 4, 0, 4, 0], window=3)  # (0 + 2*4 + 0) / 4 = 2, (4 + 0 + 4) / 4 = 2
    array([0., 2., 2., 2., 0.])
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    x = np.asarray(values, dtype=float)
    n, half = len(x), window // 2
    out = np.empty(n)
    if n > 2 * half:  # the middle: one convolution with the full triangle
        out[half : n - half] = np.convolve(x, _triangle(half), mode="valid")
    for i in [*range(min(half, n)), *range(max(n - half, min(half, n)), n)]:  # the ends
        h = min(half, i, n - 1 - i)
        out[i] = x[i - h : i + h + 1] @ _triangle(h)
    return out


def _triangle(half: int) -> np.ndarray:
    """Weights ``1, 2, ..., half + 1, ..., 2, 1``, normalised to sum to one."""
    weights = half + 1 - np.abs(np.arange(-half, half + 1))
    return weights / weights.sum()


def loss_curve(
    loss: Sequence[float],
    *,
    eval_steps: Sequence[int] = (),
    eval: Sequence[float] = (),
    eval_label: str = "validation",
    label: str = "training",
    color: str = "C0",
    window: int = 20,
    log: bool = False,
    title: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Training loss per step (raw, faint, and smoothed) with optional evaluation points.

    The smoothed line is `smooth`'s centred, triangle-weighted average over `window` steps:
    it follows the raw points without lagging behind them. Call it again with the same `ax`
    and another `label` and `color` to compare runs.
    """
    if len(eval_steps) != len(eval):
        raise ValueError(f"{len(eval_steps)} eval_steps but {len(eval)} eval values")
    ax = _axes(ax)
    steps = np.arange(1, len(loss) + 1)
    ax.plot(steps, loss, color=color, alpha=0.25, linewidth=0.8)
    ax.plot(steps, smooth(loss, window=window), color=color, label=label)
    if len(eval):
        ax.plot(eval_steps, eval, "o-", color="C1", label=eval_label)
    ax.set(xlabel="step", ylabel="loss", title=title)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def bar_table(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    xlabel: str,
    title: str | None = None,
    fmt: str = "{:.2f}",
    ax: Axes | None = None,
) -> Axes:
    """Horizontal bars, one per label, annotated with their value."""
    if len(labels) != len(values):
        raise ValueError(f"{len(labels)} labels but {len(values)} values")
    ax = _axes(ax, figsize=(6, 0.35 * len(labels) + 1))
    y = np.arange(len(labels))
    ax.barh(y, values, color="C0")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    for yi, v in zip(y, values, strict=True):
        ax.annotate(fmt.format(v), (v, yi), xytext=(3, 0), textcoords="offset points", va="center")
    ax.set(xlabel=xlabel, title=title)
    ax.margins(x=0.15)
    return ax


def heatmap(
    matrix: np.ndarray,
    *,
    xticklabels: Sequence[str],
    yticklabels: Sequence[str],
    xlabel: str = "",
    ylabel: str = "",
    title: str | None = None,
    cmap: str = "viridis",
    ax: Axes | None = None,
) -> Axes:
    """A labelled matrix (attention weights, confusion matrices) with a colour bar."""
    matrix = np.asarray(matrix)
    if matrix.shape != (len(yticklabels), len(xticklabels)):
        raise ValueError(
            f"matrix shape {matrix.shape} does not match the labels "
            f"({len(yticklabels)} rows, {len(xticklabels)} columns)"
        )
    ax = _axes(ax, figsize=(0.4 * len(xticklabels) + 2, 0.4 * len(yticklabels) + 1.5))
    image = ax.imshow(matrix, cmap=cmap, aspect="auto")
    ax.set_xticks(range(len(xticklabels)), xticklabels, rotation=60, ha="right")
    ax.set_yticks(range(len(yticklabels)), yticklabels)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.figure.colorbar(image, ax=ax, fraction=0.05)
    return ax


def embedding_map(
    words: Sequence[str],
    vectors: np.ndarray,
    *,
    method: str = "tsne",
    groups: Sequence[str] | None = None,
    perplexity: float = 30.0,
    seed: int = 0,
    title: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Word vectors projected to 2-D and drawn as labelled points.

    `method` is 'tsne' (scikit-learn's t-SNE on cosine distances: local neighbourhoods,
    global distances meaningless) or 'pca' (a quick linear projection). `groups` colours
    the points, one label per word, with a legend.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) != len(words):
        raise ValueError(f"need one row per word: {len(words)} words, vectors {vectors.shape}")
    if groups is not None and len(groups) != len(words):
        raise ValueError(f"{len(groups)} groups for {len(words)} words")
    if len(words) < 3:
        raise ValueError(f"need at least 3 words to draw a map, got {len(words)}")
    if method == "pca":
        from sklearn.decomposition import PCA

        points = PCA(n_components=2, random_state=seed).fit_transform(vectors)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        tsne = TSNE(
            n_components=2,
            perplexity=min(perplexity, (len(words) - 1) / 3),
            metric="cosine",
            init="pca",
            random_state=seed,
        )
        points = tsne.fit_transform(vectors)
    else:
        raise ValueError(f"method must be 'tsne' or 'pca', got {method!r}")
    ax = _axes(ax, figsize=(9, 7))
    labels = list(groups) if groups is not None else [""] * len(words)
    for colour, group in enumerate(dict.fromkeys(labels)):
        mask = np.array([g == group for g in labels])
        ax.scatter(*points[mask].T, s=12, color=f"C{colour % 10}", label=group or None)
    widths = np.array([_CHAR_WIDTH * len(word) + 0.01 for word in words])
    label_pos = _spread_labels(points, widths)
    for word, point, label in zip(words, points, label_pos, strict=True):
        # the annotation's `xy` is the point itself, so callers can find a word's point
        ax.annotate(
            word,
            point,
            xytext=label,
            fontsize=8,
            ha="center",
            va="center",
            arrowprops=dict(arrowstyle="-", alpha=0.35, lw=0.5, shrinkA=0, shrinkB=2),
        )
    # limits that hold every label box, not only the points: nothing is clipped
    span = np.ptp(points, axis=0) + 1e-12
    half = np.stack([widths / 2, np.full(len(words), _LABEL_HEIGHT / 2)], axis=1) * span
    low = np.minimum(points, label_pos - half).min(axis=0)
    high = np.maximum(points, label_pos + half).max(axis=0)
    pad = 0.02 * (high - low)
    ax.set(xlim=(low[0] - pad[0], high[0] + pad[0]), ylim=(low[1] - pad[1], high[1] + pad[1]))
    names = ("PC 1", "PC 2") if method == "pca" else ("t-SNE 1", "t-SNE 2")
    ax.set(title=title, xticks=[], yticks=[], xlabel=names[0], ylabel=names[1])
    if groups is not None:
        # outside the plot, so that it never hides points or labels
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    return ax


_CHAR_WIDTH = 0.0085  # width of one character of an 8-point label, as a fraction of a 9-inch map
_LABEL_HEIGHT = 0.03


def _spread_labels(
    points: np.ndarray, widths: np.ndarray, *, steps: int = 1_500, spring: float = 0.005
) -> np.ndarray:
    """Label centres near `points` (N, 2) whose boxes overlap neither each other nor the points.

    Works in plot fractions: label i is a box `widths[i]` wide and `_LABEL_HEIGHT` high,
    starting just above its point. Overlapping boxes push each other apart, points push
    boxes off themselves, and a weak spring pulls each label back towards its point; a few
    hundred small steps.
    """
    lo, span = points.min(axis=0), np.ptp(points, axis=0) + 1e-12
    anchor = (points - lo) / span  # (N, 2) in [0, 1]
    home = anchor + [0.0, 0.7 * _LABEL_HEIGHT]  # just above the point
    pos = home.copy()
    size = np.stack([widths, np.full(len(widths), _LABEL_HEIGHT)], axis=1)  # (N, 2)
    dot = np.array([0.012, 0.012])  # the box a point occupies
    for step in range(steps):
        pair_size = (size[:, None, :] + size[None, :, :]) / 2  # (N, N, 2)
        delta = pos[:, None, :] - pos[None, :, :]  # (N, N, 2)
        overlap = np.maximum(0.0, pair_size - np.abs(delta))  # (N, N, 2) overlap per axis
        both = overlap.prod(axis=2) > 0
        np.fill_diagonal(both, False)
        to_dot = pos[:, None, :] - anchor[None, :, :]  # (N, N, 2) label -> every point
        dot_overlap = np.maximum(0.0, (size[:, None, :] + dot) / 2 - np.abs(to_dot))
        on_dot = dot_overlap.prod(axis=2) > 0
        if not both.any() and not on_dot.any():
            break
        # move along the axis of least overlap, the cheap way out of a box
        push = np.where(overlap[..., 1:] <= overlap[..., :1], [0.0, 1.0], [1.0, 0.0])
        push = (both[..., None] * push * overlap * np.sign(delta + 1e-9)).sum(axis=1)
        push_dot = np.where(dot_overlap[..., 1:] <= dot_overlap[..., :1], [0.0, 1.0], [1.0, 0.0])
        push_dot = (on_dot[..., None] * push_dot * dot_overlap * np.sign(to_dot + 1e-9)).sum(axis=1)
        # the spring fades out, so that late steps only separate what still overlaps
        pos += 0.5 * push + 0.5 * push_dot + spring * (1 - step / steps) * (home - pos)
    return lo + pos * span


def gradient_norms(
    norms: dict[str, Sequence[float]],
    *,
    log: bool = True,
    title: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Gradient norm per time step, one curve per model: ``{"RNN": [...], "LSTM": [...]}``.

    Each curve is ``||dL/dh_t||`` for t = 1..T with the loss at the last step T (as
    `nlpbook.rnn.hidden_gradient_norms` returns); a log scale shows vanishing gradients as
    straight falling lines.
    """
    if not norms:
        raise ValueError("no curves to draw")
    ax = _axes(ax)
    for name, values in norms.items():
        values = np.asarray(values, dtype=float)
        ax.plot(np.arange(1, len(values) + 1), values, label=name)
    ax.set(
        xlabel="time step t (the loss is at the last step)", ylabel=r"$\|\partial L/\partial h_t\|$"
    )
    ax.set_title(title)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def lstm_diagram(ax: Axes | None = None) -> Axes:
    """A schematic of one LSTM step: the cell-state highway on top, the four gates below."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    ax = _axes(ax, figsize=(8, 4.2))

    def box(x, y, text, color, w=0.9, h=0.5):
        ax.add_patch(
            FancyBboxPatch(
                (x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05", fc=color, ec="black"
            )
        )
        ax.text(x, y, text, ha="center", va="center", fontsize=10)

    def circle(x, y, text):
        ax.add_patch(plt.Circle((x, y), 0.22, fc="white", ec="black"))
        ax.text(x, y, text, ha="center", va="center", fontsize=11)

    def arrow(p, q, **kw):
        ax.add_patch(FancyArrowPatch(p, q, arrowstyle="-|>", mutation_scale=12, lw=1.2, **kw))

    gates = [(2.0, "forget\n$f=\\sigma$", "C3"), (3.5, "input\n$i=\\sigma$", "C2"),
             (5.0, "candidate\n$g=\\tanh$", "C0"), (6.5, "output\n$o=\\sigma$", "C1")]  # fmt: skip
    for x, text, color in gates:
        box(x, 1.0, text, color, w=1.1, h=0.7)
        arrow((x, -0.2), (x, 0.62))
    ax.plot([0.8, 7.2], [-0.2, -0.2], color="black", lw=1.2)
    ax.text(0.2, -0.2, "$[h_{t-1}, x_t]$", ha="center", va="center", fontsize=11)
    circle(2.0, 3.0, r"$\times$")
    circle(4.25, 3.0, "+")
    circle(4.25, 2.2, r"$\times$")
    circle(7.2, 1.9, r"$\times$")
    box(7.2, 2.55, "tanh", "lightgrey", w=0.6, h=0.28)
    arrow((0.3, 3.0), (1.78, 3.0))
    ax.text(0.3, 3.25, "$c_{t-1}$", fontsize=11)
    arrow((2.22, 3.0), (4.03, 3.0))
    arrow((4.47, 3.0), (8.6, 3.0))
    ax.text(8.1, 3.2, "$c_t$", fontsize=11)
    arrow((2.0, 1.35), (2.0, 2.78))
    arrow((3.5, 1.35), (4.05, 2.1))
    arrow((5.0, 1.35), (4.45, 2.1))
    arrow((4.25, 2.42), (4.25, 2.78))
    arrow((6.5, 1.35), (7.0, 1.8))
    arrow((7.2, 3.0), (7.2, 2.72))
    arrow((7.2, 2.38), (7.2, 2.12))
    arrow((7.42, 1.9), (8.6, 1.9))
    ax.text(8.1, 1.65, "$h_t$", fontsize=11)
    ax.text(4.25, 3.6, "cell state: erased by $f$, written by $i \\cdot g$, never squashed",
            ha="center", fontsize=9, style="italic")  # fmt: skip
    ax.set(xlim=(-0.3, 8.8), ylim=(-0.6, 3.9), aspect="equal")
    ax.axis("off")
    return ax

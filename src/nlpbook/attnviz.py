"""Looking at attention: extract the maps, measure what heads do, draw them in a web page.

Every attention layer computes, for each query position i, weights ``w[i, j]`` over the key
positions j that sum to one. Stacked for a whole model they form one tensor::

    maps = attention_maps(model, input_ids)   # (L, B, H, Tq, Tk), layers in order

`attention_maps` reads them from the book's own models (`BERT`, `GPT`: any module built from
`MultiHeadAttention`), `hf_attention_maps` from a Hugging Face model with
``output_attentions=True``. `offset_share` and `key_share` measure simple head roles
(attend to the previous token, to [SEP], ...) as in Clark et al. (2019); `rollout` follows
attention through the layers (Abnar & Zuidema 2020); `attention_view_html` writes a
self-contained interactive view (no external script) for one sentence.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from nlpbook.attention import MultiHeadAttention


def _attention_layers(model: nn.Module) -> list[MultiHeadAttention]:
    layers = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    if not layers:
        raise ValueError(
            f"{type(model).__name__} has no MultiHeadAttention layer; for a Hugging Face "
            "model use hf_attention_maps"
        )
    return layers


@contextlib.contextmanager
def kept_weights(model: nn.Module) -> Iterator[list[MultiHeadAttention]]:
    """Switch on ``keep_weights`` in every attention layer of `model` for a `with` block.

    Yields the layers in the order they were built (the order they run in for the book's
    models); afterwards each layer is back as it was and its ``last_weights`` are cleared.
    """
    layers = _attention_layers(model)
    before = [layer.keep_weights for layer in layers]
    for layer in layers:
        layer.keep_weights = True
    try:
        yield layers
    finally:
        for layer, keep in zip(layers, before, strict=True):
            layer.keep_weights = keep
            layer.last_weights = None


def attention_maps(model: nn.Module, *args: Any, **kwargs: Any) -> Tensor:
    """Run ``model(*args, **kwargs)`` and return every layer's attention, (L, B, H, Tq, Tk).

    Works for the book's models (`BERT`, `GPT`, ...), whose attention is `MultiHeadAttention`.
    Runs without gradients; the weights are those before dropout.

    >>> maps = attention_maps(bert, ids)  # doctest: +SKIP
    >>> maps.shape  # MiniLM: 6 layers, 1 sentence, 12 heads, 9 tokens  # doctest: +SKIP
    torch.Size([6, 1, 12, 9, 9])
    """
    with kept_weights(model) as layers, torch.no_grad():
        model(*args, **kwargs)
        maps = [layer.last_weights for layer in layers]
        if any(m is None for m in maps):
            raise RuntimeError("some attention layers did not run in the forward pass")
        return torch.stack(maps)  # type: ignore[arg-type]


def hf_attention_maps(hf_model: nn.Module, **inputs: Any) -> Tensor:
    """Attention of a Hugging Face model as one tensor (L, B, H, Tq, Tk).

    Fused attention kernels never form the weights, so the model is switched to the
    "eager" implementation for this call (and back afterwards).
    """
    set_impl = getattr(hf_model, "set_attn_implementation", None)
    before = getattr(hf_model.config, "_attn_implementation", None)
    if set_impl is not None and before != "eager":
        set_impl("eager")
    try:
        with torch.no_grad():
            out = hf_model(**inputs, output_attentions=True)
    finally:
        if set_impl is not None and before not in (None, "eager"):
            set_impl(before)
    if not out.attentions:
        raise RuntimeError(f"{type(hf_model).__name__} returned no attention weights")
    return torch.stack(out.attentions)  # (L, B, H, Tq, Tk)


def _check_maps(weights: Tensor) -> None:
    if weights.dim() < 2 or weights.size(-1) != weights.size(-2):
        raise ValueError(f"expected self-attention weights (..., T, T), got {tuple(weights.shape)}")


def offset_share(weights: Tensor, offset: int) -> Tensor:
    """Mean weight each query gives the key ``offset`` places away: -1 previous, +1 next.

    weights (..., T, T) -> (...). The mean is over the queries that have such a key
    (for -1: all but the first). ``offset=0`` is the weight on the token itself.

    >>> w = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    >>> round(offset_share(w, -1).item(), 2)   # rows 1 and 2: 1.0 and 0.5
    0.75
    """
    _check_maps(weights)
    T = weights.size(-1)
    if abs(offset) >= T:
        raise ValueError(f"offset {offset} leaves no query with a key in {T} positions")
    diagonal = torch.diagonal(weights, offset=offset, dim1=-2, dim2=-1)  # (..., T - |offset|)
    return diagonal.mean(-1)


def key_share(weights: Tensor, keys: Tensor | Sequence[bool]) -> Tensor:
    """Mean over queries of the total weight on the key positions where `keys` is True.

    weights (..., Tq, Tk), keys (Tk,) boolean -> (...). E.g. ``keys = ids == sep_id``
    gives the share of attention that goes to [SEP]. The queries may be any subset of the
    positions (cross-attention, or a slice that leaves some queries out).

    >>> w = torch.tensor([[0.5, 0.5], [0.25, 0.75]])
    >>> key_share(w, [False, True]).item()
    0.625
    """
    if weights.dim() < 2:
        raise ValueError(f"expected attention weights (..., Tq, Tk), got {tuple(weights.shape)}")
    keys = torch.as_tensor(keys, device=weights.device)
    if keys.dtype != torch.bool or keys.shape != (weights.size(-1),):
        raise ValueError(
            f"keys must be a boolean vector of length {weights.size(-1)}, got "
            f"{keys.dtype} {tuple(keys.shape)}"
        )
    return (weights * keys).sum(-1).mean(-1)


def rollout(weights: Tensor, *, residual: float = 0.5) -> Tensor:
    """Attention rollout (Abnar & Zuidema 2020): how much each layer's output mixes inputs.

    weights (L, H, T, T) of one sentence -> (L, T, T), where row i of ``out[l]`` says how
    much of token i's vector after layer l comes from each input token. Heads are averaged,
    the residual connection is added as ``residual * I + (1 - residual) * W`` (each row
    still sums to one) and the layers are chained by matrix products::

        R_0 = A_0,   R_l = A_l @ R_{l-1}

    >>> rollout(torch.eye(2).expand(3, 1, 2, 2)).shape
    torch.Size([3, 2, 2])
    """
    if weights.dim() != 4 or weights.size(-1) != weights.size(-2):
        raise ValueError(
            f"expected weights (L, H, T, T) of one sentence, got {tuple(weights.shape)}"
        )
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual must lie in [0, 1], got {residual}")
    T = weights.size(-1)
    eye = torch.eye(T, dtype=weights.dtype, device=weights.device)
    mixed = residual * eye + (1 - residual) * weights.mean(1)  # (L, T, T)
    mixed = mixed / mixed.sum(-1, keepdim=True)  # rows of padded queries may not sum to 1
    out, total = [], eye
    for layer in mixed:
        total = layer @ total  # (T, T)
        out.append(total)
    return torch.stack(out)


_VIEW = """
<div class="attnviz" id="{id}" style="font-family: sans-serif; font-size: 14px; margin: 0.5em 0;">
  <div style="margin-bottom: 0.4em;">
    <label>Layer <select class="attnviz-layer"></select></label>
    <label style="margin-left: 1em;">Head <select class="attnviz-head"></select></label>
    <span class="attnviz-note" style="margin-left: 1em; color: #555;"></span>
  </div>
  <svg class="attnviz-svg" role="img" aria-label="{label}"></svg>
</div>
<script>
(function () {{
  const data = {data};
  const root = document.getElementById("{id}");
  const layerSel = root.querySelector(".attnviz-layer");
  const headSel = root.querySelector(".attnviz-head");
  const note = root.querySelector(".attnviz-note");
  const svg = root.querySelector(".attnviz-svg");
  const NS = "http://www.w3.org/2000/svg";
  const T = data.tokens.length, rowH = 20, left = 10, gap = 220, colW = 110;
  const width = left + colW + gap + colW, height = T * rowH + 10;
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", "0 0 " + width + " " + height);
  function option(sel, value, text) {{
    const o = document.createElement("option");
    o.value = value; o.textContent = text; sel.appendChild(o);
  }}
  // values are the numbers shown, counted from 1 as in the text
  for (let l = 1; l <= data.weights.length; l++) option(layerSel, l, String(l));
  option(headSel, "mean", "mean of heads");
  for (let h = 1; h <= data.weights[0].length; h++) option(headSel, h, String(h));
  headSel.value = "1";
  let hovered = null;
  function matrix() {{
    const layer = data.weights[Number(layerSel.value) - 1];
    if (headSel.value !== "mean") return layer[Number(headSel.value) - 1];
    return layer[0].map((row, i) => row.map((_, j) =>
      layer.reduce((s, head) => s + head[i][j], 0) / layer.length));
  }}
  const x0 = left + colW, x1 = left + colW + gap;
  const lines = document.createElementNS(NS, "g");
  lines.setAttribute("pointer-events", "none");
  svg.appendChild(lines);
  function text(x, y, s, anchor, i, side) {{
    const t = document.createElementNS(NS, "text");
    t.setAttribute("x", x); t.setAttribute("y", y);
    t.setAttribute("text-anchor", anchor);
    t.setAttribute("dominant-baseline", "middle");
    t.setAttribute("class", "attnviz-token attnviz-" + side);
    t.setAttribute("data-index", i);
    t.textContent = s;
    svg.appendChild(t);
    return t;
  }}
  // the tokens are drawn once; hovering or picking a head redraws only the lines
  const queries = [], keys = [];
  for (let i = 0; i < T; i++) {{
    const y = 10 + i * rowH + rowH / 2;
    const q = text(x0, y, data.tokens[i], "end", i, "query");
    q.style.cursor = "pointer";
    q.addEventListener("mouseenter", () => {{ hovered = i; draw(); }});
    q.addEventListener("mouseleave", () => {{ hovered = null; draw(); }});
    queries.push(q);
    keys.push(text(x1, y, data.tokens[i], "start", i, "key"));
  }}
  function draw() {{
    while (lines.firstChild) lines.removeChild(lines.firstChild);
    const w = matrix();
    for (let i = 0; i < T; i++) {{
      if (hovered !== null && hovered !== i) continue;
      for (let j = 0; j < T; j++) {{
        if (w[i][j] < 0.005) continue;  // what rounds to 0.00 is not drawn
        const line = document.createElementNS(NS, "line");
        line.setAttribute("x1", x0 + 4); line.setAttribute("y1", 10 + i * rowH + rowH / 2);
        line.setAttribute("x2", x1 - 4); line.setAttribute("y2", 10 + j * rowH + rowH / 2);
        line.setAttribute("stroke", "{color}");
        line.setAttribute("stroke-width", 2);
        line.setAttribute("stroke-opacity", w[i][j].toFixed(2));
        line.setAttribute("class", "attnviz-line");
        line.setAttribute("data-weight", w[i][j].toFixed(2));
        lines.appendChild(line);
      }}
    }}
    for (let i = 0; i < T; i++) {{
      queries[i].setAttribute("font-weight", hovered === i ? "bold" : "normal");
      keys[i].setAttribute("fill-opacity", hovered === null ? "1" :
        (0.3 + 0.7 * Math.min(1, w[hovered][i] * 2)).toFixed(2));
    }}
    note.textContent = hovered === null
      ? "hover a token on the left to see where it looks"
      : "\\u201c" + data.tokens[hovered] + "\\u201d attends to the tokens on the right";
  }}
  layerSel.addEventListener("change", draw);
  headSel.addEventListener("change", draw);
  draw();
}})();
</script>
"""


def attention_view_html(
    weights: Tensor,
    tokens: Sequence[str],
    *,
    decimals: int = 2,
    color: str = "#1f77b4",
) -> str:
    """A self-contained HTML view of one sentence's attention: pick a layer and a head.

    weights (L, H, T, T). Each query token on the left is joined to the key tokens on the
    right by lines as opaque as the weight; hovering a token shows only its lines. The data
    travels inside the page as JSON, rounded to `decimals` places, and the script is inline
    (no external library), so the view works offline in a static page. Display it in a
    notebook with ``IPython.display.HTML(attention_view_html(...))``.
    """
    if weights.dim() != 4 or weights.size(-1) != weights.size(-2):
        raise ValueError(f"expected weights (L, H, T, T), got {tuple(weights.shape)}")
    if len(tokens) != weights.size(-1):
        raise ValueError(f"got {len(tokens)} tokens for attention over {weights.size(-1)}")
    if not color.startswith("#") or not all(c in "0123456789abcdefABCDEF" for c in color[1:]):
        raise ValueError(f"color must be a hex colour such as '#1f77b4', got {color!r}")
    rounded = torch.round(weights.detach().double().cpu(), decimals=decimals).tolist()
    payload = json.dumps({"tokens": list(tokens), "weights": rounded}, separators=(",", ":"))
    payload = payload.replace("</", "<\\/")  # a token "</script>" must not end the script
    view_id = "attnviz-" + hashlib.sha1(payload.encode()).hexdigest()[:10]
    return _VIEW.format(
        id=view_id,
        data=payload,
        color=color,
        label="attention lines between the tokens of a sentence",
    )

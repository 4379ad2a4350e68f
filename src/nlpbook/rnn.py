"""Recurrent cells written out from their equations, and a wrapper that runs one over time.

A recurrent cell maps the input at one time step and the previous state to the next state.
The three cells here use the same parameter names, shapes and gate order as PyTorch's
`nn.RNNCell`, `nn.LSTMCell` and `nn.GRUCell`, so a state dict moves between them unchanged
and the tests can check that the outputs agree:

>>> import torch
>>> ours, theirs = LSTMCell(3, 4), torch.nn.LSTMCell(3, 4)
>>> _ = theirs.load_state_dict(ours.state_dict())
>>> x = torch.randn(2, 3)
>>> torch.allclose(ours(x)[0], theirs(x)[0], atol=1e-6)
True

`Recurrent` runs any of them along a batch of sequences, ``(B, T, C) -> (B, T, H)``, and
keeps each sequence's state fixed once its length is reached, so padding never leaks in.
`hidden_gradient_norms` measures how the gradient of a loss at the last step shrinks or
grows as it flows back through time, the vanishing and exploding gradients of BPTT.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

State = Tensor | tuple[Tensor, Tensor]  # h for RNN and GRU cells, (h, c) for the LSTM


class _Cell(nn.Module):
    """The parameters every cell shares: ``gates`` stacked blocks of input and hidden weights."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool = True) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(
                f"input_size and hidden_size must be positive, got {input_size}, {hidden_size}"
            )
        self.input_size, self.hidden_size = input_size, hidden_size
        rows = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(rows)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(rows)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's initialisation: every weight uniform in ``±1/sqrt(hidden_size)``."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _affine(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """``W_ih x + b_ih`` and ``W_hh h + b_hh``, each (B, gates*H)."""
        if x.dim() != 2 or x.size(1) != self.input_size:
            raise ValueError(f"expected input (B, {self.input_size}), got {tuple(x.shape)}")
        return (
            nn.functional.linear(x, self.weight_ih, self.bias_ih),
            nn.functional.linear(h, self.weight_hh, self.bias_hh),
        )

    def initial_state(self, batch: int, *, like: Tensor) -> State:
        """The zero state for `batch` sequences, on `like`'s device and dtype."""
        return like.new_zeros(batch, self.hidden_size)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class RNNCell(_Cell):
    """Elman's simple recurrent cell: ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        bias: bool = True,
        nonlinearity: Literal["tanh", "relu"] = "tanh",
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias=bias)
        self.nonlinearity = nonlinearity

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """One step: input (B, C) and state (B, H) to the next state (B, H)."""
        h = self.initial_state(x.size(0), like=x) if h is None else h
        xi, hh = self._affine(x, h)
        return torch.tanh(xi + hh) if self.nonlinearity == "tanh" else torch.relu(xi + hh)


class LSTMCell(_Cell):
    """Long short-term memory: a cell state ``c`` that gates write to, erase and read from.

    With ``i, f, g, o`` the input, forget, candidate and output gates (PyTorch's order)::

        i, f, o = sigmoid(...), g = tanh(...)     # from W_ih x + b_ih + W_hh h + b_hh
        c' = f * c + i * g                        # additive update: gradients flow through
        h' = o * tanh(c')
    """

    gates = 4

    def initial_state(self, batch: int, *, like: Tensor) -> tuple[Tensor, Tensor]:
        zeros = like.new_zeros(batch, self.hidden_size)
        return zeros, zeros

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """One step: input (B, C) and ``(h, c)``, each (B, H), to the next ``(h, c)``."""
        h, c = self.initial_state(x.size(0), like=x) if state is None else state
        xi, hh = self._affine(x, h)
        i, f, g, o = (xi + hh).chunk(4, dim=1)  # 4 x (B, H)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class GRUCell(_Cell):
    """Gated recurrent unit: a reset gate ``r`` and an update gate ``z``, no separate memory.

    In PyTorch's order ``r, z, n``::

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h                  # z near 1 copies the old state
    """

    gates = 3

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """One step: input (B, C) and state (B, H) to the next state (B, H)."""
        h = self.initial_state(x.size(0), like=x) if h is None else h
        xi, hh = self._affine(x, h)
        x_r, x_z, x_n = xi.chunk(3, dim=1)  # 3 x (B, H)
        h_r, h_z, h_n = hh.chunk(3, dim=1)  # 3 x (B, H)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return (1 - z) * n + z * h


CELLS: dict[str, type[_Cell]] = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


def make_cell(kind: str, input_size: int, hidden_size: int) -> _Cell:
    """A cell by name: 'rnn', 'lstm' or 'gru'."""
    if kind not in CELLS:
        raise ValueError(f"unknown cell {kind!r}; expected one of {', '.join(CELLS)}")
    return CELLS[kind](input_size, hidden_size)


def _hidden(state: State) -> Tensor:
    return state[0] if isinstance(state, tuple) else state


class Recurrent(nn.Module):
    """Run a cell along sequences: inputs (B, T, C) to outputs (B, T, H) and the final state.

    With `lengths` (B,), sequence b stops updating after ``lengths[b]`` steps: its outputs
    past that point are zeros and its final state is the one at its last real token, which
    is what `nn.utils.rnn.pack_padded_sequence` gives PyTorch's fused layers.

    >>> layer = Recurrent(GRUCell(5, 8))
    >>> out, h = layer(torch.randn(2, 7, 5), lengths=torch.tensor([7, 3]))
    >>> out.shape, h.shape, bool(out[1, 3:].abs().sum() == 0)
    (torch.Size([2, 7, 8]), torch.Size([2, 8]), True)
    """

    def __init__(self, cell: _Cell) -> None:
        super().__init__()
        self.cell = cell

    def forward(
        self,
        x: Tensor,
        state: State | None = None,
        *,
        lengths: Tensor | None = None,
        keep_states: list[State] | None = None,
    ) -> tuple[Tensor, State]:
        """`keep_states`, if given a list, receives the state after every step, in order."""
        if x.dim() != 3 or x.size(2) != self.cell.input_size:
            raise ValueError(f"expected inputs (B, T, {self.cell.input_size}), got {x.shape}")
        B, T, _ = x.shape
        if T == 0:
            raise ValueError("cannot run a recurrent layer over sequences of length 0")
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=x.device)
            if lengths.shape != (B,):
                raise ValueError(f"lengths must have shape ({B},), got {tuple(lengths.shape)}")
            if lengths.min() < 1 or lengths.max() > T:
                raise ValueError(f"lengths must lie in 1..{T}, got {lengths.tolist()}")
        state = self.cell.initial_state(B, like=x) if state is None else state
        outputs = []
        for t in range(T):
            new = self.cell(x[:, t], state)
            if lengths is not None:
                alive = (t < lengths).unsqueeze(1)  # (B, 1): still inside the sequence?
                if isinstance(new, tuple):
                    new = tuple(torch.where(alive, n, s) for n, s in zip(new, state, strict=True))
                else:
                    new = torch.where(alive, new, state)
                outputs.append(_hidden(new) * alive)
            else:
                outputs.append(_hidden(new))
            state = new
            if keep_states is not None:
                keep_states.append(state)
        return torch.stack(outputs, dim=1), state  # (B, T, H)


def hidden_gradient_norms(cell: _Cell, x: Tensor) -> Tensor:
    """How much the last step's output depends on each earlier state: ``||dL/dh_t||`` per t.

    Runs `cell` over `x` (B, T, C), takes ``L = sum(h_T)`` (any loss at the last step
    would do) and returns the gradient norm with respect to every hidden state
    ``h_1..h_T``, averaged over the batch: a (T,) tensor. A curve that falls steeply
    towards t=1 is a vanishing gradient; one that rises is an exploding one.
    """
    states: list[State] = []
    Recurrent(cell)(x, keep_states=states)
    hiddens = [_hidden(s) for s in states]
    loss = hiddens[-1].sum()
    grads = torch.autograd.grad(loss, hiddens)
    return torch.stack([g.norm(dim=1).mean() for g in grads]).detach()

"""Recurrent cells from scratch against PyTorch's, the sequence wrapper, gradient norms."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nlpbook.rnn import GRUCell, LSTMCell, Recurrent, RNNCell, hidden_gradient_norms, make_cell

TOL = dict(atol=1e-6, rtol=1e-5)  # float32 round-off of the same operations in another order


def _run(cell, x, state):
    """Three steps; returns the final hidden state (h of the LSTM's (h, c))."""
    for t in range(x.size(0)):
        state = cell(x[t], state)
    return state


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(RNNCell, nn.RNNCell), (LSTMCell, nn.LSTMCell), (GRUCell, nn.GRUCell)],
)
def test_cells_equal_pytorch_given_the_same_weights(ours, theirs):
    """Three steps from a random state: states and input gradients agree within 1e-6."""
    torch.manual_seed(0)
    a, b = ours(5, 7), theirs(5, 7)
    b.load_state_dict(a.state_dict())  # same names and shapes, so this must succeed
    x = torch.randn(3, 4, 5)
    state = (torch.randn(4, 7), torch.randn(4, 7)) if ours is LSTMCell else torch.randn(4, 7)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_a, out_b = _run(a, xa, state), _run(b, xb, state)
    for sa, sb in zip(
        out_a if isinstance(out_a, tuple) else (out_a,),
        out_b if isinstance(out_b, tuple) else (out_b,),
        strict=True,
    ):
        torch.testing.assert_close(sa, sb, **TOL)
    ha, hb = (out_a[0], out_b[0]) if ours is LSTMCell else (out_a, out_b)
    (ga,), (gb,) = torch.autograd.grad(ha.sum(), xa), torch.autograd.grad(hb.sum(), xb)
    torch.testing.assert_close(ga, gb, **TOL)


def test_cell_rejects_wrong_input_size():
    with pytest.raises(ValueError, match=r"expected input \(B, 5\)"):
        GRUCell(5, 3)(torch.randn(2, 4))


def test_rnn_relu_and_no_bias_match_pytorch():
    torch.manual_seed(1)
    a = RNNCell(3, 4, bias=False, nonlinearity="relu")
    b = nn.RNNCell(3, 4, bias=False, nonlinearity="relu")
    b.load_state_dict(a.state_dict())
    x = torch.randn(6, 3)
    torch.testing.assert_close(a(x), b(x), **TOL)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_recurrent_equals_pytorch_layer_and_respects_lengths(kind):
    """The wrapper over our cell equals nn.RNN/LSTM/GRU on packed sequences (1e-5)."""
    torch.manual_seed(2)
    cell = make_cell(kind, 4, 6)
    layer = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind](4, 6, batch_first=True)
    layer.load_state_dict({f"{k}_l0": v for k, v in cell.state_dict().items()})
    x = torch.randn(3, 5, 4)
    lengths = torch.tensor([5, 2, 4])
    out, state = Recurrent(cell)(x, lengths=lengths)
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    ref_packed, ref_state = layer(packed)
    ref, _ = nn.utils.rnn.pad_packed_sequence(ref_packed, batch_first=True)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    h = state[0] if kind == "lstm" else state
    h_ref = ref_state[0][0] if kind == "lstm" else ref_state[0]
    torch.testing.assert_close(h, h_ref, atol=1e-5, rtol=1e-5)
    assert out[1, 2:].abs().sum() == 0  # nothing written past a sequence's end


def test_recurrent_rejects_bad_input():
    layer = Recurrent(GRUCell(4, 3))
    with pytest.raises(ValueError, match="expected inputs"):
        layer(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="length 0"):
        layer(torch.randn(2, 0, 4))
    with pytest.raises(ValueError, match="lengths must have shape"):
        layer(torch.randn(2, 5, 4), lengths=torch.tensor([5, 2, 1]))
    with pytest.raises(ValueError, match="lengths must lie"):
        layer(torch.randn(2, 5, 4), lengths=torch.tensor([6, 2]))
    with pytest.raises(ValueError, match="unknown cell"):
        make_cell("transformer", 4, 3)


def test_gradient_norms_vanish_for_a_small_rnn_but_not_for_an_lstm_with_open_forget_gate():
    """With small recurrent weights the RNN's gradient at t=1 is orders of magnitude below
    the one at T; an LSTM whose forget gate is biased open keeps it within a factor of 10."""
    torch.manual_seed(3)
    x = torch.randn(8, 40, 10)
    rnn = RNNCell(10, 32)
    with torch.no_grad():
        rnn.weight_hh.mul_(0.5)
    norms = hidden_gradient_norms(rnn, x)
    assert norms.shape == (40,)
    assert norms[0] < 1e-4 * norms[-1]
    lstm = LSTMCell(10, 32)
    with torch.no_grad():
        lstm.bias_ih[32:64] = 5.0  # forget gate ~ sigmoid(5) = 0.993
    lstm_norms = hidden_gradient_norms(lstm, x)
    assert lstm_norms[0] > 0.1 * lstm_norms[-1]
    assert lstm_norms[0] / lstm_norms[-1] > 1e3 * (norms[0] / norms[-1])


def test_gru_language_model_learns_a_repeating_text_and_generates_it():
    """On 'abcd' repeated, perplexity falls from ~vocab size to near 1 and samples continue
    the pattern."""
    from nlpbook import fit, set_seed
    from nlpbook.lmdata import RandomChunks
    from nlpbook.rnnlm import GRULanguageModel, GRULMConfig, perplexity

    set_seed(0)
    ids = torch.tensor([0, 1, 2, 3] * 100)
    model = GRULanguageModel(GRULMConfig(vocab_size=6, embed_dim=8, hidden_size=32))
    before = perplexity(model, ids)
    fit(
        model,
        RandomChunks(ids, block_size=16, batch_size=16),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        steps=100,
        progress=False,
    )
    after = perplexity(model, ids, block_size=50)
    assert before > 4 and after < 1.2
    out = model.generate(torch.tensor([[0, 1]]), 10, temperature=0.5, seed=0)
    assert out[0].tolist() == [0, 1] + [2, 3, 0, 1] * 2 + [2, 3]
    with pytest.raises(ValueError, match="temperature"):
        model.generate(torch.tensor([[0]]), 3, temperature=0)

"""A GPT: a stack of causal transformer blocks that predicts the next token.

The same class covers two generations of decoders; `GPTConfig` switches between them:

=============  ======================  ====================================
feature        GPT-2 (2019)            Llama, SmolLM2 (2023-24)
=============  ======================  ====================================
positions      learned, added to x     rotary (RoPE), applied to q and k
normalisation  LayerNorm               RMSNorm
MLP            GELU (tanh)             SwiGLU
attention      multi-head              grouped-query (fewer k/v heads)
biases         yes                     no
output layer   tied to the embeddings  tied or not, as the checkpoint says
=============  ======================  ====================================

``forward(idx (B, T), targets=None) -> (logits (B, T, V), loss)`` as in nanoGPT, plus
what generation needs: an ``attention_mask`` for left-padded batches and a `KVCache`.
`GPT.from_hf` copies the weights of a Hugging Face ``GPT2LMHeadModel`` or
``LlamaForCausalLM`` into it, after which both give the same logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from nlpbook.attention import RotaryEmbedding, causal_mask
from nlpbook.transformer import Block, KVCache, MLPKind, Norm, init_weights, make_norm


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    block_size: int  # longest context, in tokens
    n_layer: int = 4
    n_head: int = 4
    n_kv_head: int | None = None  # None: n_head (plain multi-head attention)
    n_embd: int = 128
    d_ff: int | None = None  # None: 4 * n_embd
    positions: Literal["learned", "rope"] = "learned"
    rope_theta: float = 10000.0  # base of the rotary frequencies
    norm: Norm = "layer"
    norm_eps: float = 1e-5
    mlp: MLPKind = "gelu"
    bias: bool = True  # in every Linear and LayerNorm
    tie_weights: bool = True  # the output layer reuses the token embeddings
    dropout: float = 0.0

    @classmethod
    def gpt2(cls, **overrides: Any) -> GPTConfig:
        """GPT-2 small (124M): 12 layers, 12 heads, 768 channels, context 1024."""
        base = dict(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)
        return cls(**(base | dict(mlp="gelu_tanh") | overrides))

    @classmethod
    def llama(cls, **overrides: Any) -> GPTConfig:
        """A Llama-style decoder; without overrides, the shape of SmolLM2-135M."""
        # fmt: off
        base = dict(
            vocab_size=49152, block_size=8192, n_layer=30, n_head=9, n_kv_head=3, n_embd=576,
            d_ff=1536, positions="rope", rope_theta=100000.0, norm="rms", norm_eps=1e-5,
            mlp="swiglu", bias=False, tie_weights=True,
        )
        # fmt: on
        return cls(**(base | overrides))


class GPT(nn.Module):
    """Token embeddings, (positions), `n_layer` pre-LN causal `Block`s, a norm, the LM head."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if config.positions not in ("learned", "rope"):
            raise ValueError(f"positions must be 'learned' or 'rope', got {config.positions!r}")
        self.config = config
        C = config.n_embd
        self.tok_emb = nn.Embedding(config.vocab_size, C)
        if config.positions == "learned":
            self.pos_emb = nn.Embedding(config.block_size, C)
        else:
            self.rope = RotaryEmbedding(
                C // config.n_head, base=config.rope_theta, max_len=config.block_size
            )
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(
                d_model=C,
                n_heads=config.n_head,
                n_kv_heads=config.n_kv_head,
                d_ff=config.d_ff or 4 * C,
                norm=config.norm,
                norm_eps=config.norm_eps,
                mlp=config.mlp,
                prenorm=True,
                bias=config.bias,
                dropout=config.dropout,
            )
            for _ in range(config.n_layer)
        )
        self.norm = make_norm(config.norm, C, eps=config.norm_eps, bias=config.bias)
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.tok_emb.weight
        self.apply(init_weights)
        # GPT-2's scaled init: each residual branch adds to the stream, so shrink its output
        for name, p in self.named_parameters():
            if name.endswith(("o_proj.weight", "mlp.proj.weight", "down_proj.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def num_params(self, *, non_embedding: bool = True) -> int:
        """Parameters, counting tied weights once; without the position table by default."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and self.config.positions == "learned":
            n -= self.pos_emb.weight.numel()
        return n

    def new_cache(self, batch_size: int) -> KVCache:
        """An empty `KVCache` for decoding `batch_size` sequences with this model."""
        return KVCache(self.config.n_layer, batch_size=batch_size)

    def forward(
        self,
        idx: Tensor,
        targets: Tensor | None = None,
        *,
        attention_mask: Tensor | None = None,
        cache: KVCache | None = None,
        positions: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Logits (B, T, V) for every position; the loss when `targets` (B, T) are given.

        `targets` are the next tokens, already shifted (``targets[:, t] = idx[:, t+1]``);
        positions whose target is -100 are left out of the mean cross-entropy.
        `attention_mask` (B, past + T), 1 for real tokens and 0 for padding, covers the
        cached tokens and the new ones, as in Hugging Face. Without `positions`, they count
        real tokens only (``cumsum(mask) - 1``), so a left-padded prompt gets the positions
        it would have alone. With a `cache`, `idx` holds only the new tokens.
        """
        B, T = self._check_inputs(idx, targets, cache)
        past = 0 if cache is None else cache.length
        if attention_mask is not None:
            if attention_mask.shape != (B, past + T):
                raise ValueError(
                    f"expected attention_mask of shape ({B}, {past + T}) for {past} cached and "
                    f"{T} new tokens, got {tuple(attention_mask.shape)}"
                )
            if bool(attention_mask.all()):
                attention_mask = None  # no padding: the fast causal path
        if positions is None:  # within 0..past+T-1, which _check_inputs bounded
            if attention_mask is None:
                positions = torch.arange(past, past + T, device=idx.device)  # (T,)
            else:
                positions = attention_mask.long().cumsum(-1) - 1  # (B, past + T)
                positions = positions.masked_fill(attention_mask == 0, 0)[:, -T:]  # (B, T)
        elif positions.shape not in ((T,), (B, T)):
            raise ValueError(
                f"expected positions ({T},) or ({B}, {T}), got {tuple(positions.shape)}"
            )
        elif int(positions.min()) < 0 or int(positions.max()) >= self.config.block_size:
            raise ValueError(f"positions must lie in 0..{self.config.block_size - 1}")

        x = self.tok_emb(idx)  # (B, T, C)
        rope = None
        if self.config.positions == "learned":
            x = x + self.pos_emb(positions)  # (B, T, C) + (T, C) or (B, T, C)
        else:
            rope = self.rope(positions)  # cos, sin: (T, hs) or (B, T, hs)
        x = self.drop(x)

        mask = None if attention_mask is None else _decoder_mask(attention_mask, T)
        is_causal = mask is None  # PyTorch builds the triangle itself, without a tensor
        for i, block in enumerate(self.blocks):
            layer_cache = None if cache is None else cache.layers[i]
            x = block(x, mask=mask, is_causal=is_causal, rope=rope, cache=layer_cache)
        logits = self.lm_head(self.norm(x))  # (B, T, V)

        loss = None
        if targets is not None:
            V = logits.size(-1)
            loss = F.cross_entropy(logits.view(-1, V), targets.reshape(-1), ignore_index=-100)
        return logits, loss

    def _check_inputs(
        self, idx: Tensor, targets: Tensor | None, cache: KVCache | None
    ) -> tuple[int, int]:
        if idx.dim() != 2 or idx.dtype != torch.long:
            raise ValueError(
                f"expected idx (B, T) of int64 token ids, got {idx.dtype} {tuple(idx.shape)}"
            )
        B, T = idx.shape
        if T == 0:
            raise ValueError("expected at least one token per sequence, got T=0")
        past = 0 if cache is None else cache.length
        if past + T > self.config.block_size:
            raise ValueError(
                f"cannot run {past + T} tokens ({past} cached + {T} new); "
                f"block_size is {self.config.block_size}"
            )
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= self.config.vocab_size:
            raise ValueError(
                f"token ids must lie in 0..{self.config.vocab_size - 1}, got {lo}..{hi}"
            )
        if targets is not None and targets.shape != idx.shape:
            raise ValueError(f"targets {tuple(targets.shape)} must match idx {tuple(idx.shape)}")
        if cache is not None and cache.batch_size not in (None, B):
            raise ValueError(f"the cache holds {cache.batch_size} sequences, idx has {B}")
        return B, T

    def configure_optimizer(
        self,
        *,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.95),
    ) -> torch.optim.AdamW:
        """AdamW that decays the matrices only, not biases and norm weights (nanoGPT's recipe)."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=lr, betas=betas)

    @classmethod
    def from_hf(cls, hf_model: nn.Module, *, dropout: float = 0.0) -> GPT:
        """Our GPT with the weights of a Hugging Face ``GPT2LMHeadModel`` or ``LlamaForCausalLM``.

        The sizes come from ``hf_model.config``; the result is in eval mode, on the same
        device and in the same dtype as `hf_model`, and gives the same logits.
        """
        kind = type(hf_model).__name__
        if kind == "GPT2LMHeadModel":
            config, state = _from_gpt2(hf_model)
        elif kind == "LlamaForCausalLM":
            config, state = _from_llama(hf_model)
        else:
            raise ValueError(
                f"GPT.from_hf supports GPT2LMHeadModel and LlamaForCausalLM, got {kind} "
                f"(model_type {getattr(getattr(hf_model, 'config', None), 'model_type', '?')!r})"
            )
        param = next(hf_model.parameters())
        model = cls(replace(config, dropout=dropout)).to(device=param.device, dtype=param.dtype)
        model.load_state_dict(state, strict=True)
        return model.eval()


def _decoder_mask(attention_mask: Tensor, T: int) -> Tensor:
    """Causal and padding mask (B, 1, T, past + T) for the last T of the mask's tokens.

    A padding query may see its own key, so that no row of the softmax is empty; real
    queries never see padding.
    """
    past = attention_mask.size(1) - T
    device = attention_mask.device
    causal = causal_mask(T, past=past, device=device)  # (T, past + T)
    keys = torch.arange(past + T, device=device)
    own = keys[None, :] == (past + torch.arange(T, device=device))[:, None]  # (T, past + T)
    real_key = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, past + T)
    return causal & (real_key | own)  # (B, 1, T, past + T)


def _from_gpt2(hf: nn.Module) -> tuple[GPTConfig, dict[str, Tensor]]:
    """Config and state dict from a GPT2LMHeadModel; its Conv1D weights are (in, out)."""
    c = hf.config
    act = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}
    if c.activation_function not in act:
        raise ValueError(f"unsupported GPT-2 activation {c.activation_function!r}")
    if getattr(c, "scale_attn_by_inverse_layer_idx", False) or not c.scale_attn_weights:
        raise ValueError("only GPT-2's standard 1/sqrt(hs) attention scaling is supported")
    config = GPTConfig(
        vocab_size=c.vocab_size,
        block_size=c.n_positions,
        n_layer=c.n_layer,
        n_head=c.n_head,
        n_embd=c.n_embd,
        d_ff=c.n_inner or 4 * c.n_embd,
        positions="learned",
        norm="layer",
        norm_eps=c.layer_norm_epsilon,
        mlp=act[c.activation_function],
        bias=True,
        tie_weights=bool(getattr(c, "tie_word_embeddings", True)),
    )
    sd = hf.state_dict()
    C = c.n_embd
    state = {
        "tok_emb.weight": sd["transformer.wte.weight"],
        "pos_emb.weight": sd["transformer.wpe.weight"],
        "norm.weight": sd["transformer.ln_f.weight"],
        "norm.bias": sd["transformer.ln_f.bias"],
        "lm_head.weight": sd["lm_head.weight"],
    }
    for i in range(c.n_layer):
        h, b = f"transformer.h.{i}.", f"blocks.{i}."
        w_qkv, b_qkv = sd[h + "attn.c_attn.weight"], sd[h + "attn.c_attn.bias"]  # (C, 3C), (3C,)
        for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
            state[b + f"attn.{name}.weight"] = w_qkv[:, j * C : (j + 1) * C].t()  # (C, C) out-in
            state[b + f"attn.{name}.bias"] = b_qkv[j * C : (j + 1) * C]
        pairs = {"attn.o_proj": "attn.c_proj", "mlp.fc": "mlp.c_fc", "mlp.proj": "mlp.c_proj"}
        for ours, theirs in pairs.items():
            state[b + ours + ".weight"] = sd[h + theirs + ".weight"].t()  # Conv1D: (in, out)
            state[b + ours + ".bias"] = sd[h + theirs + ".bias"]
        for ours, theirs in {"norm1": "ln_1", "norm2": "ln_2"}.items():
            state[b + ours + ".weight"] = sd[h + theirs + ".weight"]
            state[b + ours + ".bias"] = sd[h + theirs + ".bias"]
    return config, state


def _from_llama(hf: nn.Module) -> tuple[GPTConfig, dict[str, Tensor]]:
    """Config and state dict from a LlamaForCausalLM of any size (SmolLM2 is one)."""
    c = hf.config
    rope = dict(getattr(c, "rope_parameters", None) or getattr(c, "rope_scaling", None) or {})
    theta = rope.get("rope_theta", getattr(c, "rope_theta", 10000.0))
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise ValueError(f"only the default RoPE is supported, got {rope}")
    if c.hidden_act != "silu":
        raise ValueError(f"expected Llama's silu (SwiGLU) MLP, got hidden_act={c.hidden_act!r}")
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    if head_dim * c.num_attention_heads != c.hidden_size:
        raise ValueError(
            f"head_dim {head_dim} x {c.num_attention_heads} heads must equal "
            f"hidden_size {c.hidden_size}"
        )
    bias = bool(getattr(c, "attention_bias", False))
    if bias != bool(getattr(c, "mlp_bias", False)):
        raise ValueError("attention_bias and mlp_bias must agree (one bias switch here)")
    config = GPTConfig(
        vocab_size=c.vocab_size,
        block_size=c.max_position_embeddings,
        n_layer=c.num_hidden_layers,
        n_head=c.num_attention_heads,
        n_kv_head=c.num_key_value_heads or c.num_attention_heads,
        n_embd=c.hidden_size,
        d_ff=c.intermediate_size,
        positions="rope",
        rope_theta=float(theta),
        norm="rms",
        norm_eps=c.rms_norm_eps,
        mlp="swiglu",
        bias=bias,
        tie_weights=bool(getattr(c, "tie_word_embeddings", False)),
    )
    sd = hf.state_dict()
    state = {
        "tok_emb.weight": sd["model.embed_tokens.weight"],
        "norm.weight": sd["model.norm.weight"],
        "lm_head.weight": sd.get("lm_head.weight", sd["model.embed_tokens.weight"]),
    }
    names = {
        "attn.q_proj": "self_attn.q_proj",
        "attn.k_proj": "self_attn.k_proj",
        "attn.v_proj": "self_attn.v_proj",
        "attn.o_proj": "self_attn.o_proj",
        "mlp.gate_proj": "mlp.gate_proj",
        "mlp.up_proj": "mlp.up_proj",
        "mlp.down_proj": "mlp.down_proj",
        "norm1": "input_layernorm",
        "norm2": "post_attention_layernorm",
    }
    for i in range(c.num_hidden_layers):
        for ours, theirs in names.items():
            for suffix in (".weight", ".bias"):
                key = f"model.layers.{i}.{theirs}{suffix}"
                if key in sd:
                    state[f"blocks.{i}.{ours}{suffix}"] = sd[key]
    return config, state

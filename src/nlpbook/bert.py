"""BERT (Devlin et al. 2019): a bidirectional transformer encoder, from the book's Block.

BERT adds three embeddings (token, position, segment), normalises them, and runs post-LN
encoder blocks in which every token attends to every real token, left and right::

    x = LayerNorm(tok[ids] + pos[0..T-1] + seg[token_type_ids])
    for each block:  x = LayerNorm(x + attn(x));  x = LayerNorm(x + mlp(x))

`BERT.forward` returns the last hidden states (B, T, C); `mean_pool` turns them into one
vector per sentence (the sentence-transformers recipe). `BERTForMaskedLM` adds the
masked-language-model head used to pretrain BERT. `BERT.from_hf` and
`BERTForMaskedLM.from_hf` load Hugging Face weights, e.g. MiniLM from
`nlpbook.pretrained.load_encoder`:

>>> tokenizer, hf = load_encoder("minilm-l6")    # doctest: +SKIP
>>> bert = BERT.from_hf(hf)    # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from nlpbook.attention import padding_mask
from nlpbook.transformer import Block, init_weights

IGNORE_INDEX = -100  # labels with this value (unmasked tokens) add nothing to the MLM loss


@dataclass(frozen=True)
class BERTConfig:
    vocab_size: int
    block_size: int = 512  # longest input, in tokens (learned positions)
    type_vocab_size: int = 2  # segments: sentence A and sentence B
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    d_ff: int | None = None  # None: 4 * n_embd
    norm_eps: float = 1e-12
    dropout: float = 0.1  # on embeddings, attention weights and residual branches
    pad_id: int = 0

    @classmethod
    def bert_base(cls, **overrides: Any) -> BERTConfig:
        """BERT-base, uncased (110M): 12 layers, 12 heads, 768 channels, WordPiece 30,522."""
        return cls(**(dict(vocab_size=30522) | overrides))

    @classmethod
    def minilm_l6(cls, **overrides: Any) -> BERTConfig:
        """The shape of all-MiniLM-L6-v2 (22.7M): 6 layers, 12 heads, 384 channels."""
        base = dict(vocab_size=30522, n_layer=6, n_head=12, n_embd=384, d_ff=1536)
        return cls(**(base | overrides))


class BERT(nn.Module):
    """The BERT encoder: ``forward(input_ids (B, T), attention_mask=None, token_type_ids=None)
    -> (B, T, C)`` last hidden states. Hugging Face's pooler (a tanh layer over [CLS]) is
    left out: the book pools by averaging (`mean_pool`).
    """

    def __init__(self, config: BERTConfig) -> None:
        super().__init__()
        self.config = config
        C = config.n_embd
        self.embed = nn.Embedding(config.vocab_size, C, padding_idx=config.pad_id)
        self.pos = nn.Embedding(config.block_size, C)
        self.segment = nn.Embedding(config.type_vocab_size, C)
        self.embed_norm = nn.LayerNorm(C, eps=config.norm_eps)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(
                d_model=C,
                n_heads=config.n_head,
                d_ff=config.d_ff or 4 * C,
                norm="layer",
                norm_eps=config.norm_eps,
                mlp="gelu",
                prenorm=False,
                bias=True,
                dropout=config.dropout,
            )
            for _ in range(config.n_layer)
        )
        self.apply(_init_weights)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
    ) -> Tensor:
        """`attention_mask` (B, T) is 1 for real tokens and 0 for padding (default: all real);
        `token_type_ids` (B, T) is 0 for sentence A and 1 for sentence B (default: all 0);
        `position_ids` (B, T) is each token's position (default: 0..T-1 in every row; XLM's
        translation LM restarts them at the second sentence)."""
        c = self.config
        _check_ids("input_ids", input_ids, c.vocab_size)
        B, T = input_ids.shape
        if T > c.block_size:
            raise ValueError(f"sequences of {T} tokens are longer than block_size={c.block_size}")
        optional = {
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
            "position_ids": position_ids,
        }
        for label, other in optional.items():
            if other is not None and other.shape != input_ids.shape:
                raise ValueError(
                    f"{label} has shape {tuple(other.shape)}, expected that of input_ids {(B, T)}"
                )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        _check_ids("token_type_ids", token_type_ids, c.type_vocab_size)
        if position_ids is None:
            positions = torch.arange(T, device=input_ids.device)  # (T,): the same in every row
        else:
            _check_ids("position_ids", position_ids, c.block_size)
            positions = position_ids  # (B, T)
        x = self.embed(input_ids) + self.pos(positions) + self.segment(token_type_ids)
        x = self.drop(self.embed_norm(x))  # (B, T, C)
        mask = None if attention_mask is None else padding_mask(attention_mask)  # (B, 1, 1, T)
        for block in self.blocks:
            x = block(x, mask=mask)
        return x

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @classmethod
    def from_hf(cls, hf_model: nn.Module, *, dropout: float = 0.0) -> BERT:
        """Our BERT with the weights of a Hugging Face ``BertModel`` (or the ``.bert`` of a
        ``BertFor...`` model); in eval mode, on `hf_model`'s device and dtype, and giving
        the same last hidden states.
        """
        hf_bert = _hf_bert(hf_model)
        config = replace(_config_from_hf(hf_bert.config), dropout=dropout)
        model = _like(cls(config), hf_bert)
        model.load_state_dict(_bert_state(hf_bert.state_dict()), strict=True)
        return model.eval()


def mean_pool(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """The average of the real tokens' vectors: (B, T, C) and (B, T) -> (B, C).

    This is how sentence-transformers turns MiniLM's outputs into sentence embeddings
    (followed by L2 normalisation). Padding does not change a sentence's vector.
    """
    if attention_mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"attention_mask has shape {tuple(attention_mask.shape)}, expected "
            f"{tuple(hidden.shape[:2])} to match hidden (B, T, C)"
        )
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


class MLMHead(nn.Module):
    """Predicts each token from its hidden state: dense + GELU + LayerNorm, then a decoder
    to the vocabulary whose weight is the word-embedding matrix (tied) plus its own bias.
    """

    def __init__(self, config: BERTConfig, embedding: nn.Embedding) -> None:
        super().__init__()
        C = config.n_embd
        self.dense = nn.Linear(C, C)
        self.norm = nn.LayerNorm(C, eps=config.norm_eps)
        self.decoder = nn.Linear(C, config.vocab_size)
        self.decoder.weight = embedding.weight  # tied: (V, C), one matrix in and out
        nn.init.zeros_(self.decoder.bias)

    def forward(self, hidden: Tensor) -> Tensor:
        """(B, T, C) -> logits (B, T, V)."""
        return self.decoder(self.norm(F.gelu(self.dense(hidden))))


class BERTForMaskedLM(nn.Module):
    """BERT plus `MLMHead`: ``forward(input_ids, attention_mask=None, token_type_ids=None,
    labels=None) -> (logits (B, T, V), loss)``.

    `labels` (B, T) holds the original token where the input was masked and
    `IGNORE_INDEX` (-100) elsewhere; the loss is the mean cross-entropy over masked tokens.
    """

    def __init__(self, config: BERTConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = BERT(config)
        self.head = MLMHead(config, self.bert.embed)
        _init_weights(self.head.dense)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        labels: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        if labels is not None and labels.shape != input_ids.shape:
            raise ValueError(
                f"labels has shape {tuple(labels.shape)}, expected that of input_ids "
                f"{tuple(input_ids.shape)}"
            )
        logits = self.head(self.bert(input_ids, attention_mask, token_type_ids))  # (B, T, V)
        if labels is None:
            return logits, None
        V = logits.size(-1)
        loss = F.cross_entropy(logits.view(-1, V), labels.view(-1), ignore_index=IGNORE_INDEX)
        return logits, loss

    @classmethod
    def from_hf(cls, hf_model: nn.Module, *, dropout: float = 0.0) -> BERTForMaskedLM:
        """Our model with the weights of a Hugging Face ``BertForMaskedLM``; same logits."""
        if type(hf_model).__name__ != "BertForMaskedLM":
            raise ValueError(
                f"BERTForMaskedLM.from_hf expects a Hugging Face BertForMaskedLM, got "
                f"{type(hf_model).__name__}"
            )
        hf_bert = _hf_bert(hf_model.bert)
        config = replace(_config_from_hf(hf_bert.config), dropout=dropout)
        model = _like(cls(config), hf_bert)
        sd = hf_model.state_dict()
        state = {f"bert.{k}": v for k, v in _bert_state(hf_bert.state_dict()).items()}
        p = "cls.predictions."
        state |= {
            "head.dense.weight": sd[p + "transform.dense.weight"],
            "head.dense.bias": sd[p + "transform.dense.bias"],
            "head.norm.weight": sd[p + "transform.LayerNorm.weight"],
            "head.norm.bias": sd[p + "transform.LayerNorm.bias"],
            "head.decoder.weight": sd[p + "decoder.weight"],
            "head.decoder.bias": sd[p + "bias"],
        }
        if not torch.equal(sd[p + "decoder.weight"], sd["bert.embeddings.word_embeddings.weight"]):
            raise ValueError("the MLM decoder is not tied to the word embeddings; expected tied")
        model.load_state_dict(state, strict=True)
        return model.eval()


def _init_weights(module: nn.Module) -> None:
    """BERT's initialisation: GPT-2's (`init_weights`), zero padding rows, unit LayerNorms."""
    init_weights(module)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        with torch.no_grad():
            module.weight[module.padding_idx].zero_()
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def _check_ids(label: str, ids: Tensor, size: int) -> None:
    if ids.dim() != 2 or ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"{label} must be integer ids (B, T), got {ids.dtype} {tuple(ids.shape)}")
    if ids.numel() and (ids.min() < 0 or ids.max() >= size):
        raise ValueError(
            f"{label} must lie in [0, {size}), got values from {ids.min().item()} to "
            f"{ids.max().item()}"
        )


def _hf_bert(hf_model: nn.Module) -> nn.Module:
    """The ``BertModel`` inside `hf_model`, or a clear error for another architecture."""
    config = getattr(hf_model, "config", None)
    kind = getattr(config, "model_type", "?")
    if kind == "bert" and type(hf_model).__name__ != "BertModel":
        hf_model = getattr(hf_model, "bert", hf_model)
    if type(hf_model).__name__ != "BertModel":
        raise ValueError(
            f"expected a Hugging Face BertModel (model_type 'bert'), got "
            f"{type(hf_model).__name__} (model_type {kind!r})"
        )
    return hf_model


def _config_from_hf(c: Any) -> BERTConfig:
    if c.hidden_act != "gelu":
        raise ValueError(f"only BERT's exact GELU is supported, got hidden_act={c.hidden_act!r}")
    if getattr(c, "position_embedding_type", None) not in (None, "absolute"):
        raise ValueError(
            f"only absolute positions are supported, got {c.position_embedding_type!r}"
        )
    if getattr(c, "is_decoder", False):
        raise ValueError("expected an encoder (is_decoder=False), got a BERT decoder")
    return BERTConfig(
        vocab_size=c.vocab_size,
        block_size=c.max_position_embeddings,
        type_vocab_size=c.type_vocab_size,
        n_layer=c.num_hidden_layers,
        n_head=c.num_attention_heads,
        n_embd=c.hidden_size,
        d_ff=c.intermediate_size,
        norm_eps=c.layer_norm_eps,
        pad_id=c.pad_token_id if c.pad_token_id is not None else 0,
    )


def _like(model: nn.Module, hf_model: nn.Module) -> Any:
    """`model` moved to the device and dtype of `hf_model`'s weights."""
    param = next(hf_model.parameters())
    return model.to(device=param.device, dtype=param.dtype)


def _bert_state(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a Hugging Face BertModel state dict to ours (the pooler is dropped)."""
    state = {
        "embed.weight": sd["embeddings.word_embeddings.weight"],
        "pos.weight": sd["embeddings.position_embeddings.weight"],
        "segment.weight": sd["embeddings.token_type_embeddings.weight"],
        "embed_norm.weight": sd["embeddings.LayerNorm.weight"],
        "embed_norm.bias": sd["embeddings.LayerNorm.bias"],
    }
    names = {
        "attention.self.query": "attn.q_proj",
        "attention.self.key": "attn.k_proj",
        "attention.self.value": "attn.v_proj",
        "attention.output.dense": "attn.o_proj",
        "attention.output.LayerNorm": "norm1",
        "intermediate.dense": "mlp.fc",
        "output.dense": "mlp.proj",
        "output.LayerNorm": "norm2",
    }
    i = 0
    while f"encoder.layer.{i}.output.dense.weight" in sd:
        for theirs, ours in names.items():
            for kind in ("weight", "bias"):
                state[f"blocks.{i}.{ours}.{kind}"] = sd[f"encoder.layer.{i}.{theirs}.{kind}"]
        i += 1
    return state

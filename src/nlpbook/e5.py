"""A NumPy reader for the 4-bit ``E5S1`` file that holds multilingual-e5-small.

multilingual-e5-small (Wang et al. 2024) is an XLM-R-vocabulary BERT encoder (12 layers,
384 channels, 250,037 embedding rows) trained for sentence embeddings. The book's copy
ships as one file, ``e5-small-q4.bin``, in a compact format of its own (the layout below
follows its C loader, ``e5_parse`` in ``e5.c``). Every number is little-endian::

    "E5S1"  u32 version (1)
    i32 H, NL, NH, FF, VOC, MAXP, TVS   f32 eps   i32 qk (32, the Q4_0 block size)
    tokenizer:  i32 pieces, bos, eos, pad, unk   u64 piece bytes
                u32 offsets[pieces + 1]   f32 scores[pieces]   the piece bytes (UTF-8)
                i32 entries   u32 bytes   per entry: u32 codepoint, u8 k, u32 codepoints[k]
    tensors:    i32 count, per tensor: u16 name length, name, u8 dtype (0 fp32, 1 Q4_0),
                u32 elements, u64 absolute offset, u64 byte size

Linear weights and word embeddings are 4-bit (`dequantize_q4_0`); positions, token types,
biases and LayerNorms are float32. `read_e5` returns everything as float32 arrays and
`e5_state_dict` renames them to the keys of a Hugging Face ``BertModel`` without pooler:

>>> config, tokenizer, tensors = read_e5("e5-small-q4.bin")    # doctest: +SKIP
>>> config["hidden_size"], tensors["l0.q.w"].shape, tokenizer["pieces"][:3]    # doctest: +SKIP
(384, (384, 384), ['<s>', '<pad>', '</s>'])
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

MAGIC = b"E5S1"
VERSION = 1
QK = 32  # weights per Q4_0 block
Q4_0_BLOCK_BYTES = 18  # an fp16 scale and 16 bytes of nibbles
FP32, Q4_0 = 0, 1  # the dtype codes of the tensor directory

_CONFIG_FIELDS = (  # the header's seven i32, in file order, with their BertConfig names
    "hidden_size",  # H
    "num_hidden_layers",  # NL
    "num_attention_heads",  # NH
    "intermediate_size",  # FF
    "vocab_size",  # VOC: embedding rows (250,037), more than the tokenizer's pieces
    "max_position_embeddings",  # MAXP
    "type_vocab_size",  # TVS
)
# The file's tensor names -> HF BertModel keys; `l{i}.` is `encoder.layer.{i}.`.
_EMBEDDINGS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


class E5FormatError(ValueError):
    """The file is not a well-formed ``E5S1`` model (bad magic, truncated, ...)."""


def dequantize_q4_0(blocks: bytes | np.ndarray, n: int) -> np.ndarray:
    """`n` float32 weights from their Q4_0 blocks (``n / 32`` blocks of 18 bytes).

    A block is an fp16 scale ``d`` and 16 bytes; byte ``j`` holds weight ``j`` in its low
    nibble and weight ``j + 16`` in its high nibble, and a nibble ``q`` means ``(q - 8) * d``.
    With ``d = 0.5``, byte 0 = ``0x2F`` and the other bytes ``0x88``: weight 0 is
    ``(15 - 8) * 0.5 = 3.5``, weight 16 is ``(2 - 8) * 0.5 = -3.0``, the rest 0.
    """
    if n < 0 or n % QK:
        raise ValueError(f"n must be a non-negative multiple of {QK} (whole Q4_0 blocks), got {n}")
    raw = np.frombuffer(blocks, dtype=np.uint8) if isinstance(blocks, bytes) else blocks
    raw = np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1)
    expected = n // QK * Q4_0_BLOCK_BYTES
    if raw.size != expected:
        raise ValueError(
            f"{n} Q4_0 weights need {expected} bytes ({n // QK} blocks of "
            f"{Q4_0_BLOCK_BYTES}), got {raw.size}"
        )
    raw = raw.reshape(-1, Q4_0_BLOCK_BYTES)  # (blocks, 18)
    d = raw[:, :2].copy().view("<f2").astype(np.float32)  # (blocks, 1)
    qs = raw[:, 2:]  # (blocks, 16)
    w = np.empty((len(raw), QK), dtype=np.float32)  # (blocks, 32), filled in place: 96M weights
    w[:, :16] = qs & 0x0F  # weights 0..15
    w[:, 16:] = qs >> 4  # weights 16..31
    w -= 8.0
    w *= d
    return w.reshape(-1)


class _Reader:
    """Little-endian reads from the file's bytes that fail clearly past its end."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.path, self.pos = data, path, 0

    def take(self, size: int, what: str) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise E5FormatError(
                f"{self.path} is truncated: expected {size} more bytes for {what} at offset "
                f"{self.pos}, but the file has {len(self.data)} bytes"
            )
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, fmt: str, what: str) -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        return np.frombuffer(self.take(count * np.dtype(dtype).itemsize, what), dtype=dtype)


def read_e5(path: str | Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """The config, the tokenizer section and the float32 tensors of an ``E5S1`` file.

    - config: the `_CONFIG_FIELDS` (BertConfig names), ``layer_norm_eps`` and ``version``;
    - tokenizer: ``pieces`` (list of str, one per id), ``scores`` (float32, the unigram
      log-probabilities), ``bos_id``/``eos_id``/``pad_id``/``unk_id`` and ``normalization``
      ({codepoint: tuple of codepoints});
    - tensors: {name: array}, Q4_0 weights dequantized, matrices shaped [out, in] like
      ``nn.Linear`` (embeddings [rows, H]).

    Raises `E5FormatError`, naming the file and what was expected, on a bad magic, another
    version, a truncated file, an unknown dtype or a tensor outside the file.
    """
    path = Path(path)
    r = _Reader(path.read_bytes(), path)
    magic = r.take(4, "the magic")
    if magic != MAGIC:
        raise E5FormatError(f"{path} starts with {magic!r}, expected the magic {MAGIC!r}")
    (version,) = r.unpack("I", "the version")
    if version != VERSION:
        raise E5FormatError(f"{path} is format version {version}, expected {VERSION}")
    config: dict[str, Any] = dict(zip(_CONFIG_FIELDS, r.unpack("7i", "the header"), strict=True))
    eps, qk = r.unpack("fi", "the header")
    # eps is stored as float32; its shortest round-trip decimal is the intended value (1e-12)
    config |= {"layer_norm_eps": float(str(np.float32(eps))), "version": version}
    if qk != QK:
        raise E5FormatError(f"{path} has Q4_0 blocks of {qk} weights, expected {QK}")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise E5FormatError(
            f"{path}: hidden size {config['hidden_size']} is not a multiple of "
            f"{config['num_attention_heads']} heads"
        )
    tokenizer = _read_tokenizer(r)
    tensors = _read_tensors(r, config)
    return config, tokenizer, tensors


def _read_tokenizer(r: _Reader) -> dict[str, Any]:
    n, bos, eos, pad, unk = r.unpack("5i", "the tokenizer header")
    (blob_len,) = r.unpack("Q", "the tokenizer header")
    if n <= 0 or not all(0 <= i < n for i in (bos, eos, pad, unk)):
        raise E5FormatError(
            f"{r.path}: expected a positive piece count and special ids below it, got "
            f"{n} pieces with bos={bos} eos={eos} pad={pad} unk={unk}"
        )
    offsets = r.array("<u4", n + 1, "the piece offsets").astype(np.int64)
    scores = r.array("<f4", n, "the piece scores").astype(np.float32)
    blob = r.take(blob_len, "the piece bytes")
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets) < 0):
        raise E5FormatError(
            f"{r.path}: piece offsets must rise from 0 to the {blob_len} piece bytes"
        )
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    n_norm, norm_len = r.unpack("iI", "the normalization map")
    norm = r.take(norm_len, "the normalization map")
    normalization: dict[int, tuple[int, ...]] = {}
    at = 0
    try:
        for _ in range(n_norm):
            cp, k = struct.unpack_from("<IB", norm, at)
            normalization[cp] = struct.unpack_from(f"<{k}I", norm, at + 5)
            at += 5 + 4 * k
    except struct.error:
        at = -1
    if at != norm_len:
        raise E5FormatError(
            f"{r.path}: the normalization map's {n_norm} entries do not fill its {norm_len} bytes"
        )
    specials = {"bos_id": bos, "eos_id": eos, "pad_id": pad, "unk_id": unk}
    return {"pieces": pieces, "scores": scores, **specials, "normalization": normalization}


def _read_tensors(r: _Reader, config: dict[str, Any]) -> dict[str, np.ndarray]:
    (count,) = r.unpack("i", "the tensor count")
    tensors: dict[str, np.ndarray] = {}
    for i in range(count):
        (name_len,) = r.unpack("H", f"tensor {i}'s name length")
        name = r.take(name_len, f"tensor {i}'s name").decode("utf-8")
        dtype, n, offset, size = r.unpack("BIQQ", f"tensor {name!r}'s entry")
        if dtype not in (FP32, Q4_0):
            raise E5FormatError(
                f"{r.path}: tensor {name!r} has dtype {dtype}, expected {FP32} (fp32) or "
                f"{Q4_0} (Q4_0)"
            )
        expected = n * 4 if dtype == FP32 else n // QK * Q4_0_BLOCK_BYTES
        if size != expected or (dtype == Q4_0 and n % QK):
            kind = "fp32" if dtype == FP32 else "Q4_0"
            raise E5FormatError(
                f"{r.path}: tensor {name!r} ({n} {kind} values) has {size} bytes, "
                f"expected {expected}"
            )
        if offset + size > len(r.data):
            raise E5FormatError(
                f"{r.path}: tensor {name!r} lies at bytes {offset}..{offset + size}, past "
                f"the end of the file ({len(r.data)} bytes); expected it inside (truncated?)"
            )
        raw = np.frombuffer(r.data, dtype=np.uint8, count=size, offset=offset)
        values = raw.view("<f4").astype(np.float32) if dtype == FP32 else dequantize_q4_0(raw, n)
        tensors[name] = values.reshape(_shape(name, n, config, r.path))
    return tensors


def _shape(name: str, n: int, config: dict[str, Any], path: Path) -> tuple[int, ...]:
    """The shape tensor `name` must have: [out, in] for weights, [rows, H] for embeddings."""
    H, FF = config["hidden_size"], config["intermediate_size"]
    rows = {
        "emb.word": config["vocab_size"],
        "emb.pos": config["max_position_embeddings"],
        "emb.type": config["type_vocab_size"],
    }
    kind = name.rsplit(".", 1)[-1]
    part = name.split(".")[1] if "." in name else ""
    if name in rows:
        shape: tuple[int, ...] = (rows[name], H)
    elif kind == "w" and part in ("q", "k", "v", "ao"):
        shape = (H, H)
    elif kind == "w" and part == "fi":
        shape = (FF, H)
    elif kind == "w" and part == "fo":
        shape = (H, FF)
    elif kind == "b" and part == "fi":
        shape = (FF,)
    else:  # biases and LayerNorm weights
        shape = (H,)
    if int(np.prod(shape)) != n:
        raise E5FormatError(f"{path}: tensor {name!r} has {n} values, expected shape {shape}")
    return shape


def e5_state_dict(tensors: dict[str, np.ndarray], *, num_layers: int) -> dict[str, torch.Tensor]:
    """`tensors` from `read_e5` under the keys of ``BertModel(add_pooling_layer=False)``.

    ``emb.word`` -> ``embeddings.word_embeddings.weight``, ``l3.fi.b`` ->
    ``encoder.layer.3.intermediate.dense.bias``, ``emb.ln.w`` ->
    ``embeddings.LayerNorm.weight``, ... Every one of the model's tensors must be there,
    and nothing else.
    """
    expected = dict(_EMBEDDINGS)
    for i in range(num_layers):
        for short, long in _LAYER.items():
            expected[f"l{i}.{short}.w"] = f"encoder.layer.{i}.{long}.weight"
            expected[f"l{i}.{short}.b"] = f"encoder.layer.{i}.{long}.bias"
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise KeyError(
            f"expected the {len(expected)} tensors of a {num_layers}-layer e5 model; "
            f"missing {missing[:5]}, unexpected {extra[:5]}"
        )
    return {key: torch.from_numpy(tensors[name]) for name, key in expected.items()}

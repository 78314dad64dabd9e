"""Models: the catalog, the model cache, `codellama-lsp models`, the server's default model.

Nothing here reaches the network: conftest sets HF_HUB_OFFLINE and points the
model cache at an empty temporary directory; the "downloaded" model is the
generated test model placed where a download would have put it.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import pytest
from lsprotocol import types

from codellama_lsp.quant.catalog import (
    CATALOG,
    DEFAULT_MODEL,
    MODELS_DIR_ENV,
    UnknownModelError,
    cached_path,
    local_path,
    lookup,
)
from codellama_lsp.quant.download import OfflineError, download, remote_size
from codellama_lsp.quant.engine import CompletionRequest, Engine, EngineConfig, memory_estimate
from codellama_lsp.quant.errors import ModelFormatError

from test_server_session import session

# -- catalog -----------------------------------------------------------------


def test_catalog_has_every_build_and_a_7b_base_default() -> None:
    code_llama = [e for e in CATALOG if e.family == "codellama"]
    assert len(code_llama) == 2 * 3 * 3  # 7B/13B x base/Python/Instruct x Q4_K_M/Q5_K_M/Q8_0
    assert len({e.name for e in CATALOG}) == len(CATALOG)
    default = lookup(DEFAULT_MODEL)
    assert (default.params, default.variant, default.quant) == ("7b", "base", "Q4_K_M")
    assert default.repo_id == "TheBloke/CodeLlama-7B-GGUF"
    assert default.filename == "codellama-7b.Q4_K_M.gguf" and default.size_gb > 3.5
    python13 = lookup("CodeLlama-13B-Python-Q8_0")  # names are case-insensitive
    assert python13.filename == "codellama-13b-python.Q8_0.gguf"
    assert python13.repo_id == "TheBloke/CodeLlama-13B-Python-GGUF"
    assert not lookup("codellama-7b-instruct-q5_k_m").for_infill
    sizes = {(e.params, e.variant, e.quant): e.size_gb for e in code_llama}
    for (params, variant, quant), size in sizes.items():
        assert size < sizes[(params, variant, "Q8_0")] or quant == "Q8_0"
        assert size < sizes[("13b", variant, quant)] or params == "13b"


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(UnknownModelError, match="codellama-7b-q4_k_m"):
        lookup("codellama-70b")


def test_cache_location_and_offline_download(tmp_path: Path) -> None:
    entry = lookup(DEFAULT_MODEL)
    assert local_path(entry, tmp_path) == (
        tmp_path / "TheBloke--CodeLlama-7B-GGUF" / "codellama-7b.Q4_K_M.gguf"
    )
    assert cached_path(entry, tmp_path) is None
    with pytest.raises(OfflineError, match="not downloaded"):
        download(entry, root=tmp_path)
    with pytest.raises(OfflineError):
        remote_size(entry)
    local_path(entry, tmp_path).parent.mkdir(parents=True)
    local_path(entry, tmp_path).write_bytes(b"GGUF")
    assert download(entry, root=tmp_path) == local_path(entry, tmp_path)  # cached: no network


# -- `codellama-lsp models` ------------------------------------------------------


def place_default_model(model_path: Path, models_dir: Path) -> Path:
    """The generated model where downloading the default model would have put it."""
    target = local_path(lookup(DEFAULT_MODEL), models_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(model_path, target)
    return target


def run(codellama_bin: str, *args: str, models_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, MODELS_DIR_ENV: str(models_dir)}
    return subprocess.run(
        [codellama_bin, *args], check=False, capture_output=True, text=True, timeout=120, env=env
    )


def test_models_list_and_path(codellama_bin: str, model_path: Path, tmp_path: Path) -> None:
    listed = run(codellama_bin, "models", "list", models_dir=tmp_path)
    assert listed.returncode == 0, listed.stderr
    names = {e.name for e in CATALOG}
    rows = [line for line in listed.stdout.splitlines() if line.split(" ", 1)[0] in names]
    assert len(rows) == len(CATALOG)
    assert "(default)" in rows[0] and "downloaded" not in listed.stdout
    missing = run(codellama_bin, "models", "path", DEFAULT_MODEL, models_dir=tmp_path)
    assert missing.returncode == 1 and missing.stdout == ""
    assert f"models download {DEFAULT_MODEL}" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    target = place_default_model(model_path, tmp_path)
    found = run(codellama_bin, "models", "path", DEFAULT_MODEL, models_dir=tmp_path)
    assert found.returncode == 0 and found.stdout == f"{target}\n"
    listed = run(codellama_bin, "models", "list", models_dir=tmp_path)
    assert "downloaded" in listed.stdout.splitlines()[1]


def test_models_download_offline_is_one_clear_line(codellama_bin: str, tmp_path: Path) -> None:
    done = run(codellama_bin, "models", "download", "codellama-13b-q8_0", models_dir=tmp_path)
    assert done.returncode == 1
    assert "codellama-13b-q8_0 is not downloaded" in done.stderr
    assert "Traceback" not in done.stderr
    assert not any(tmp_path.iterdir())  # nothing half-written
    unknown = run(codellama_bin, "models", "download", "gpt-5", models_dir=tmp_path)
    assert unknown.returncode == 1 and "unknown model 'gpt-5'" in unknown.stderr


def test_models_quantize_then_complete(
    codellama_bin: str, model_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tiny-q8.gguf"
    done = run(
        codellama_bin, "models", "quantize", str(model_path), str(out), "--type", "q8_0",
        models_dir=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size < model_path.stat().st_size
    assert "Q8_0" in done.stdout
    source = tmp_path / "a.py"
    source.write_text("def add(a, b):\n    \n")
    completed = run(
        codellama_bin, "complete", f"{source}:2:5", "--model", str(out), models_dir=tmp_path
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip()
    bad = run(
        codellama_bin, "models", "quantize", str(model_path), str(out), "--type", "Q3_XXL",
        models_dir=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 1 and "valid types" in bad.stderr


def test_complete_without_model_uses_the_downloaded_default(
    codellama_bin: str, model_path: Path, tmp_path: Path
) -> None:
    source = tmp_path / "a.py"
    source.write_text("def add(a, b):\n    \n")
    missing = run(codellama_bin, "complete", f"{source}:2:5", models_dir=tmp_path)
    assert missing.returncode == 2 and f"models download {DEFAULT_MODEL}" in missing.stderr
    place_default_model(model_path, tmp_path)
    done = run(codellama_bin, "complete", f"{source}:2:5", models_dir=tmp_path)
    assert done.returncode == 0 and done.stdout == " pass\n", done.stderr


# -- the server's default model ------------------------------------------------------


async def test_server_loads_the_cached_default_model(model_path: Path, tmp_path: Path) -> None:
    place_default_model(model_path, tmp_path)
    async with session("visual-studio-code", env={MODELS_DIR_ENV: str(tmp_path)}) as s:
        status = await s.wait_status("ready")
        assert "codellama-7b.Q4_K_M.gguf" in status["message"]
        s.open()
        assert (await s.inline(2, 4)).items[0].insert_text == " pass"
        assert not [m for m in s.client.messages if "download" in m.message]


@pytest.mark.parametrize("profile", ["visual-studio-code", "neovim"])
async def test_server_offline_without_the_model_says_how_to_get_it(
    profile: str, tmp_path: Path
) -> None:
    async with session(profile, env={MODELS_DIR_ENV: str(tmp_path)}) as s:
        message = await s.wait_message("not downloaded")
        assert message.type == types.MessageType.Warning
        assert f"codellama-lsp models download {DEFAULT_MODEL}" in message.message
        assert "4.1 GB" in message.message and "codellama.model.path" in message.message
        status = await s.wait_status("no-model")
        assert "offline" in status["message"]
        s.open()
        assert list((await s.inline(2, 4)).items) == []
        # A settings change re-resolves the model but does not repeat the message.
        s.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(
                settings={"codellama": {"completion": {"maxTokens": 9}}}
            )
        )
        assert list((await s.inline(2, 4)).items) == []
        assert len([m for m in s.client.messages if "not downloaded" in m.message]) == 1
        assert not any(tmp_path.iterdir())


async def test_server_with_downloads_off(tmp_path: Path) -> None:
    options = {"model": {"name": "codellama-13b-python-q5_k_m", "download": False}}
    async with session("neovim", options, env={MODELS_DIR_ENV: str(tmp_path)}) as s:
        message = await s.wait_message("codellama.model.download is off")
        assert "Code Llama 13B Python Q5_K_M (9.2 GB)" in message.message
        assert "models download codellama-13b-python-q5_k_m" in message.message


# -- GPU-related settings and load logs ----------------------------------------------


def test_kv_cache_q8_0_turns_flash_attention_on(
    model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="codellama_lsp.quant.engine")
    plain = Engine.load(EngineConfig(str(model_path), n_ctx=2048))
    small = Engine.load(EngineConfig(str(model_path), n_ctx=2048, kv_cache_type="q8_0"))
    request = CompletionRequest(prefix="def add(a, b):\n    ", suffix="", max_tokens=8)
    assert small.complete(request).text == plain.complete(request).text
    text = caplog.text
    assert "CPU only" in text  # this machine's llama.cpp has no GPU backend
    assert "kv_cache=q8_0" in text and "flash_attn=on" in text
    assert "memory estimate" in text and "layers on GPU 0/" in text
    assert small.memory_bytes < plain.memory_bytes
    with pytest.raises(ModelFormatError, match="KV cache type"):
        Engine.load(EngineConfig(str(model_path), kv_cache_type="q2"))
    plain.close()
    small.close()


def test_memory_estimate_of_a_7b_model() -> None:
    meta = {
        "general.architecture": "llama",
        "llama.block_count": "32",
        "llama.embedding_length": "4096",
        "llama.attention.head_count": "32",
        "llama.attention.head_count_kv": "32",
    }
    weights = 4_080_000_000
    # 16k context in f16: 2 (K and V) x 32 layers x 16384 x 4096 x 2 bytes = 8.6 GB.
    assert memory_estimate(meta, weights, 16384, "f16") == weights + 8_589_934_592
    assert memory_estimate(meta, weights, 16384, "q8_0") < weights + 5_000_000_000
    assert memory_estimate({}, weights, 16384, "f16") == weights

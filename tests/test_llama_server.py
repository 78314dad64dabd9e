"""llama.cpp's llama-server, built from the vendored sources, answers like llama.vim expects.

The keystroke benchmark (bench/keystroke.py) compares our server with this
binary; these tests make sure the build works and that ``/infill`` and
``/v1/completions`` return the fields the benchmark reads, with the same
generated model our own tests use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from codellama_lsp.quant import llama_server
from codellama_lsp.quant.llama_server import (
    LlamaServerError,
    LlamaServerProcess,
    ensure_llama_server,
)


@pytest.fixture(scope="module")
def server(model_path: Path) -> Iterator[LlamaServerProcess]:
    with LlamaServerProcess(model_path, ctx_size=2048, extra_args=("--threads", "2")) as running:
        yield running


def test_binary_is_cached_and_executable() -> None:
    path = ensure_llama_server()
    assert path.name.startswith("llama-server")
    assert os.access(path, os.X_OK)
    assert ensure_llama_server() == path  # the second call reuses the build
    assert (path.parent.parent / "build-info.json").exists()


def test_health(server: LlamaServerProcess) -> None:
    assert server.get("/health") == {"status": "ok"}


def test_infill_answers_with_content_and_timings(server: LlamaServerProcess) -> None:
    body = {
        "input_prefix": "def add(a, b):\n   ",
        "input_suffix": "\n\nprint(add(1, 2))\n",
        "n_predict": 16,
        "cache_prompt": True,
        "temperature": 0.0,
        "top_k": 1,
    }
    first = server.post("/infill", body)
    assert isinstance(first["content"], str)
    # The generated model is scripted: after <MID> it writes " return a + b", then <EOT>.
    assert "return a + b" in first["content"]
    assert first["tokens_evaluated"] > 10
    assert first["timings"]["prompt_n"] == first["tokens_evaluated"]
    assert first["timings"]["predicted_n"] >= 1

    # The same request again reuses the cached prompt (what --cache-reuse builds on).
    again = server.post("/infill", body)
    assert again["content"] == first["content"]
    assert again["timings"]["prompt_n"] < first["timings"]["prompt_n"]
    assert again["timings"]["cache_n"] > 0


def test_openai_completions(server: LlamaServerProcess) -> None:
    answer = server.post(
        "/v1/completions", {"prompt": "import os\n", "max_tokens": 8, "temperature": 0.0}
    )
    choice = answer["choices"][0]
    assert isinstance(choice["text"], str)
    assert choice["finish_reason"] in ("stop", "length")
    assert answer["usage"]["prompt_tokens"] > 0
    assert answer["usage"]["completion_tokens"] <= 8


def test_infill_rejects_a_missing_prefix(server: LlamaServerProcess) -> None:
    with pytest.raises(LlamaServerError, match="input_prefix"):
        server.post("/infill", {"input_suffix": "", "n_predict": 4})


def test_start_failure_quotes_the_server_log(tmp_path: Path) -> None:
    missing = tmp_path / "missing.gguf"
    with pytest.raises(LlamaServerError, match="exited with status"):
        LlamaServerProcess(missing, startup_timeout=60).start()


def _fake_build(calls: list[int]) -> object:
    def build(source: Path, build_dir: Path, log_file: object, jobs: int) -> Path:
        calls.append(jobs)
        threading.Event().wait(0.3)  # long enough for the other caller to queue up
        build_dir.mkdir(parents=True)
        binary = build_dir / llama_server.BINARY_NAME
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o755)
        return binary

    return build


def test_concurrent_callers_build_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(llama_server, "download_sdist", lambda dest, version: dest)
    monkeypatch.setattr(llama_server, "extract_llama_cpp", lambda sdist, dest: dest)
    monkeypatch.setattr(llama_server, "build_llama_server", _fake_build(calls))
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(ensure_llama_server(tmp_path, jobs=1)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [1]
    assert len(set(results)) == 1
    assert results[0].exists()
    # Only the finished version directory and the lock file remain: no staging leftovers.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [llama_server.llama_cpp_version(), f"{llama_server.llama_cpp_version()}.lock"]
    )


def test_failed_build_leaves_no_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(source: Path, build_dir: Path, log_file: object, jobs: int) -> Path:
        raise LlamaServerError("cmake build failed with exit status 2")

    monkeypatch.setattr(llama_server, "download_sdist", lambda dest, version: dest)
    monkeypatch.setattr(llama_server, "extract_llama_cpp", lambda sdist, dest: dest)
    monkeypatch.setattr(llama_server, "build_llama_server", fail)
    with pytest.raises(LlamaServerError, match="exit status 2"):
        ensure_llama_server(tmp_path)
    assert not llama_server.binary_path(tmp_path).exists()
    version = llama_server.llama_cpp_version()
    assert not (tmp_path / version).exists()
    assert (tmp_path / f"{version}-failed-build.log").exists()
    assert not [p for p in tmp_path.iterdir() if "-build-" in p.name]

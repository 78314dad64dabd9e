"""The command line: complete and prompt at FILE:LINE:COL, flags, and clear errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from codellama_lsp.quant.synthetic import SCRIPTED_COMPLETION


def run(bin_: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([bin_, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "add.py"
    path.write_text("def add(a, b):\n    # 😀 日本 loop\n    \n", encoding="utf-8")
    return path


def test_version(codellama_bin: str) -> None:
    result = run(codellama_bin, "--version")
    assert result.returncode == 0 and result.stdout.startswith("codellama-lsp ")


def test_complete_prints_the_completion(codellama_bin: str, model_path: Path, source: Path) -> None:
    result = run(
        codellama_bin, "complete", f"{source}:3:5", "--model", str(model_path), "--fim-order", "psm"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == SCRIPTED_COMPLETION + "\n"
    assert "prompt_tokens=" in result.stderr  # timings are logged to stderr, not stdout


def test_columns_are_one_based_characters(
    codellama_bin: str, model_path: Path, source: Path
) -> None:
    # Line 2 is "    # 😀 日本 loop": column 16 is just after "loop" (emoji = one character).
    result = run(
        codellama_bin, "complete", f"{source}:2:16", "--model", str(model_path), "--max-tokens", "3"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == " loop loop loop\n"


def test_prompt_prints_the_exact_prompt(codellama_bin: str, model_path: Path, source: Path) -> None:
    result = run(
        codellama_bin,
        "prompt",
        f"{source}:3:5",
        "--workspace",
        str(source.parent),
        "--model",
        str(model_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "<s>▁<PRE>▁<SUF>\n▁<MID> def add(a, b):\n    # 😀 日本 loop\n    \n"


def test_missing_model_is_one_clear_line(codellama_bin: str, source: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.gguf"
    result = run(codellama_bin, "complete", f"{source}:1:1", "--model", str(missing))
    assert result.returncode == 1
    assert result.stderr.strip() == f"codellama-lsp: error: model file not found: {missing}"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("fixture", ["corrupt_model_path", "not_gguf_path", "nofim_model_path"])
def test_bad_model_files_are_one_clear_line(
    codellama_bin: str, source: Path, fixture: str, request: pytest.FixtureRequest
) -> None:
    path: Path = request.getfixturevalue(fixture)
    result = run(codellama_bin, "complete", f"{source}:1:1", "--model", str(path))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and str(path) in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("{src}:9:1", "past the end of the file"),
        ("{src}:1:99", "past the end of the line"),
        ("{src}:0:1", "1-based"),
        ("{src}", "FILE:LINE:COL"),
        ("{dir}/nothere.py:1:1", "file not found"),
    ],
)
def test_bad_locations(
    codellama_bin: str, model_path: Path, source: Path, location: str, message: str
) -> None:
    where = location.format(src=source, dir=source.parent)
    result = run(codellama_bin, "complete", where, "--model", str(model_path))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_log_file(codellama_bin: str, model_path: Path, source: Path, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "server.log"
    result = run(
        codellama_bin,
        "complete",
        f"{source}:3:5",
        "--model",
        str(model_path),
        "--log-file",
        str(log),
    )
    assert result.returncode == 0
    assert result.stderr == ""
    assert "prompt_tokens=" in log.read_text()

"""The command line: complete and prompt at FILE:LINE:COL, flags, and clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.synthetic import SCRIPTED_COMPLETION


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


# -- repository context and the index command -----------------------------------------

SECRET = "sk-live-7f3a9c-do-not-leak"
IGNORED_SECRET = "sk-ignored-b41e"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """main.py imports parse_config from util.py; other/legacy.py has an unrelated one."""
    root = tmp_path / "ws"
    (root / "other").mkdir(parents=True)
    (root / "util.py").write_text(
        "def parse_config(path: str, strict: bool = False) -> dict[str, str]:\n"
        '    """Read a config file."""\n'
        "    return {}\n",
        encoding="utf-8",
    )
    (root / "other" / "legacy.py").write_text(
        "def parse_config(blob: bytes, version: int) -> list[int]:\n    return []\n",
        encoding="utf-8",
    )
    (root / "private_settings.py").write_text(
        f"def token_for(name: str) -> str:\n    return {IGNORED_SECRET!r}\n", encoding="utf-8"
    )
    (root / ".gitignore").write_text("private_settings.py\n", encoding="utf-8")
    (root / ".env").write_text(f"API_KEY={SECRET}\n", encoding="utf-8")
    (root / "main.py").write_text(
        "from util import parse_config\n"
        "from private_settings import token_for\n\n\n"
        "def run():\n"
        "    key = token_for('api')\n"
        "    cfg = parse_config(\n",
        encoding="utf-8",
    )
    return root


def cursor(workspace: Path) -> str:
    return f"{workspace / 'main.py'}:7:24"  # just after "parse_config("


def test_prompt_with_workspace_shows_the_imported_signature(
    codellama_bin: str, model_path: Path, workspace: Path
) -> None:
    result = run(
        codellama_bin,
        "prompt",
        cursor(workspace),
        "--workspace",
        str(workspace),
        "--model",
        str(model_path),
    )
    assert result.returncode == 0, result.stderr
    prompt = result.stdout
    assert "# Path: util.py\n" in prompt
    assert "def parse_config(path: str, strict: bool = False) -> dict[str, str]:" in prompt
    assert "legacy.py" not in prompt and "blob: bytes" not in prompt
    # The context comes first (stable across keystrokes); spm puts the code before
    # the cursor last, after <MID>.
    assert prompt.startswith("<s> # Path: util.py\n")
    assert prompt.index("# Path: util.py") < prompt.index("▁<PRE>") < prompt.index("▁<MID>")
    assert prompt.index("▁<MID>") < prompt.index("def run():")
    assert prompt.rstrip("\n").endswith("    cfg = parse_config(")
    assert "util.py:1 (callee)" in result.stderr
    assert "context: " in result.stderr and "prompt: " in result.stderr


def test_secret_and_ignored_files_never_reach_the_prompt(
    codellama_bin: str, model_path: Path, workspace: Path
) -> None:
    for extra in ([], ["--model", str(model_path)]):
        result = run(
            codellama_bin, "prompt", cursor(workspace), "--workspace", str(workspace), *extra
        )
        assert result.returncode == 0, result.stderr
        assert "# Path: util.py" in result.stdout  # context was built
        assert SECRET not in result.stdout and SECRET not in result.stderr
        assert IGNORED_SECRET not in result.stdout
        assert "# Path: private_settings.py" not in result.stdout
        assert "def token_for" not in result.stdout


@pytest.mark.parametrize("order", ["spm", "psm"])
def test_prompt_without_a_model_is_the_same_layout_untokenized(
    codellama_bin: str, model_path: Path, workspace: Path, order: str
) -> None:
    args = ["prompt", cursor(workspace), "--workspace", str(workspace), "--fim-order", order]
    exact = run(codellama_bin, *args, "--model", str(model_path))
    text = run(codellama_bin, *args)
    assert exact.returncode == 0 and text.returncode == 0, exact.stderr + text.stderr
    assert text.stdout == exact.stdout  # plain ASCII code round-trips through the tokenizer
    assert text.stdout.startswith("<s> # Path: util.py\n")  # the context first
    warnings = [line for line in text.stderr.splitlines() if "untokenized" in line]
    assert len(warnings) == 1 and "no model" in warnings[0]
    assert "untokenized" not in exact.stderr


def test_context_tokens_flag(codellama_bin: str, workspace: Path) -> None:
    off = run(
        codellama_bin,
        "prompt",
        cursor(workspace),
        "--workspace",
        str(workspace),
        "--context-tokens",
        "0",
    )
    assert off.returncode == 0, off.stderr
    assert "# Path:" not in off.stdout and "def parse_config(path" not in off.stdout
    bad = run(
        codellama_bin,
        "prompt",
        cursor(workspace),
        "--workspace",
        str(workspace),
        "--context-tokens",
        "-5",
    )
    assert bad.returncode == 2 and "--context-tokens" in bad.stderr


def test_prompt_for_a_file_outside_the_workspace(
    codellama_bin: str, workspace: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "scratch" / "script.py"
    outside.parent.mkdir()
    outside.write_text("from util import parse_config\n\nparse_config(\n", encoding="utf-8")
    result = run(codellama_bin, "prompt", f"{outside}:3:14", "--workspace", str(workspace))
    assert result.returncode == 0, result.stderr
    assert "# Path:" not in result.stdout
    assert result.stdout.endswith("▁<MID> from util import parse_config\n\nparse_config(\n")


def test_prompt_workspace_errors_are_usage_errors(codellama_bin: str, source: Path) -> None:
    result = run(codellama_bin, "prompt", f"{source}:1:1", "--workspace", str(source))
    assert result.returncode == 2
    assert result.stderr.strip() == f"codellama-lsp: error: workspace is not a directory: {source}"


def test_complete_uses_workspace_context(
    codellama_bin: str, model_path: Path, workspace: Path
) -> None:
    base = ["complete", cursor(workspace), "--model", str(model_path), "--max-tokens", "4"]
    with_context = run(codellama_bin, *base, "--workspace", str(workspace))
    without = run(codellama_bin, *base)
    assert with_context.returncode == 0 and without.returncode == 0, with_context.stderr
    assert "util.py:1 (callee)" in with_context.stderr
    tokens = {
        name: int(r.stderr.split("prompt_tokens=")[1].split()[0])
        for name, r in (("with", with_context), ("without", without))
    }
    assert tokens["with"] > tokens["without"]
    assert "context_tokens=0 " in without.stderr


def _stats(output: str) -> dict[str, str]:
    pairs = (line.split(": ", 1) for line in output.splitlines())
    return {name: value for name, value in pairs}


def test_index_stats(codellama_bin: str, workspace: Path) -> None:
    result = run(codellama_bin, "index", str(workspace), "--stats")
    assert result.returncode == 0, result.stderr
    stats = _stats(result.stdout)
    assert list(stats) == ["files", "definitions", "time_s", "memory_mb"]
    # main.py, util.py, other/legacy.py: not .env, not the gitignored module.
    assert int(stats["files"]) == 3
    assert int(stats["definitions"]) == 3  # run and the two parse_config
    assert 0 < float(stats["time_s"]) < 60
    assert 0 <= float(stats["memory_mb"]) < 300
    excluded = run(codellama_bin, "index", str(workspace), "--stats", "--exclude", "other/")
    assert _stats(excluded.stdout)["files"] == "2"


def test_index_lists_files(codellama_bin: str, workspace: Path) -> None:
    result = run(codellama_bin, "index", str(workspace), "--exclude", "util.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["main.py", "other/legacy.py"]


@pytest.mark.parametrize(("name", "message"), [("missing", "not found"), ("file.txt", "not a")])
def test_index_errors(codellama_bin: str, tmp_path: Path, name: str, message: str) -> None:
    (tmp_path / "file.txt").write_text("x\n", encoding="utf-8")
    target = tmp_path / name
    result = run(codellama_bin, "index", str(target), "--stats")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and message in lines[0] and str(target) in lines[0]


def test_protocol_stdout_survives_native_writes_and_redirects() -> None:
    """llama-cpp-python points fd 1 at /dev/null while a model loads on a worker
    thread; protocol messages written meanwhile must still reach the client."""
    script = (
        "import os, sys\n"
        "from llama_cpp._utils import suppress_stdout_stderr\n"
        "from codellama_lsp.server.cli import private_protocol_stdout\n"
        "out = private_protocol_stdout()\n"
        "with suppress_stdout_stderr(disable=False):\n"
        "    out.write(b'message-during-load'); out.flush()\n"
        "os.write(1, b'native-noise')\n"
        "print('stray-print')\n"
        "out.write(b'|message-after'); out.flush()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, check=True
    )
    assert done.stdout == b"message-during-load|message-after"
    assert b"native-noise" in done.stderr and b"stray-print" in done.stderr

"""The invariants ARCHITECTURE.md states, checked on the sources."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Package folder -> the top-level names its modules must never import.
FORBIDDEN = {
    "context": ("lsprotocol", "pygls", "codellama_lsp.quant", "codellama_lsp.core",
                "codellama_lsp.server"),
    "quant": ("lsprotocol", "pygls", "codellama_lsp.context", "codellama_lsp.core",
              "codellama_lsp.server"),
    "core": ("lsprotocol", "pygls", "codellama_lsp.server"),
}  # fmt: skip
#: The only modules that load llama.cpp's native library.
LLAMA_CPP_USERS = {"quant/engine.py", "quant/quantize.py"}


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every module ``path`` imports, at any depth (lazy imports count too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def _sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_pure_packages_import_no_protocol_and_not_each_other(folder: str) -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in _sources(folder)
        for line, name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[folder])
    ]
    assert not bad, "\n".join(bad)


def test_only_the_local_engine_loads_llama_cpp() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line}"
        for folder in ("server", "core", "context", "quant")
        for path in _sources(folder)
        if str(path.relative_to(ROOT)) not in LLAMA_CPP_USERS
        for line, name in _imports(path)
        if name == "llama_cpp" or name.startswith("llama_cpp.")
    ]
    assert not bad, "llama_cpp imported outside the local engine: " + ", ".join(bad)


def test_the_server_and_remote_backends_run_without_the_native_library() -> None:
    code = (
        "import sys\n"
        "from codellama_lsp.server.app import CodeLlamaServer\n"
        "from codellama_lsp.server.features import register_all\n"
        "from codellama_lsp.server import commands\n"
        "from codellama_lsp.core.backends import connect_remote, remote_config\n"
        "from codellama_lsp.core.settings import parse_settings\n"
        "settings, _ = parse_settings({'backend': {'type': 'openai'}})\n"
        "connect_remote(remote_config(settings))\n"
        "register_all(CodeLlamaServer())\n"
        "print('llama_cpp' in sys.modules, 'numpy' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_handlers_never_dispatch_on_the_backend_class() -> None:
    """The pipeline talks to the Backend protocol, never to a concrete engine class."""
    bad = []
    for folder in ("server", "core"):
        for path in _sources(folder):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id == "isinstance"
                    and any(
                        isinstance(n, ast.Name) and n.id in ("Engine", "RemoteEngine")
                        for n in ast.walk(node.args[1])
                    )
                ):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, ", ".join(bad)

"""The VS Code extension's npm tool chain (``npm ci``, build, ``vsce package``), run from pytest.

A test tool, not part of the installed package (see tests/support/__init__.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "vscode-client"
NODE = shutil.which("node")
NPM = shutil.which("npm")


class NpmError(RuntimeError):
    """An npm step failed or ran too long; the message holds the end of its output."""


def run_npm(args: Sequence[str], timeout: float, env: Mapping[str, str] | None = None) -> str:
    """Run in vscode-client/ and return the output; raise NpmError with it when it fails."""
    try:
        result = subprocess.run(
            list(args),
            cwd=CLIENT,
            env={**os.environ, "npm_config_update_notifier": "false", **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise NpmError(
            f"{' '.join(args)} ran past {timeout} s\n{out[-6000:]}\n{err[-6000:]}"
        ) from exc
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise NpmError(f"{' '.join(args)} exited with {result.returncode}\n{output[-12000:]}")
    return output


def build_client() -> Path:
    """node_modules from the lock file, then the type-checked bundle and compiled tests."""
    assert NPM is not None
    run_npm([NPM, "ci", "--no-audit", "--no-fund"], timeout=600)
    run_npm([NPM, "run", "build"], timeout=180)
    bundle = CLIENT / "dist" / "extension.js"
    if not bundle.is_file():
        raise NpmError(f"npm run build left no {bundle}")
    return bundle


def package_client(out: Path) -> Path:
    """The .vsix a user installs, from the built client."""
    assert NPM is not None
    run_npm([NPM, "run", "package", "--", "--out", str(out)], timeout=180)
    return out

"""Shared fixtures: the generated Code Llama-shaped test models (never downloaded)."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from codellama_lsp.quant.catalog import MODELS_DIR_ENV
from codellama_lsp.quant.synthetic import ensure_model

# No test ever reaches the model hub, and none sees models the developer has
# downloaded: the servers the tests start inherit both settings.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ[MODELS_DIR_ENV] = tempfile.mkdtemp(prefix="codellama-lsp-test-models-")


@pytest.fixture(scope="session")
def model_path() -> Path:
    """Tiny Code Llama-shaped GGUF with the real SPM vocabulary and FIM tokens."""
    return ensure_model("tiny")


@pytest.fixture(scope="session")
def nofim_model_path() -> Path:
    """The same shape without the FIM tokens, like a plain Llama model."""
    return ensure_model("tiny", with_fim=False)


@pytest.fixture(scope="session")
def corrupt_model_path(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GGUF cut short, as an interrupted download leaves it."""
    path = tmp_path_factory.mktemp("models") / "truncated.gguf"
    with model_path.open("rb") as src, path.open("wb") as dst:
        dst.write(src.read(1_000_000))
    return path


@pytest.fixture(scope="session")
def not_gguf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "readme.gguf"
    path.write_text("this is not a model\n")
    return path


@pytest.fixture(scope="session")
def codellama_bin() -> str:
    """The installed console script (next to this interpreter in a virtualenv)."""
    beside = Path(sys.executable).parent / "codellama-lsp"
    found = str(beside) if beside.exists() else shutil.which("codellama-lsp")
    assert found, "the codellama-lsp console script is not installed"
    return found


#: No single test may take longer; a hang fails one test instead of the whole run.
TEST_TIMEOUT_S = 300


@pytest.fixture(autouse=True)
def _test_timeout() -> Iterator[None]:
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"test ran past {TEST_TIMEOUT_S} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TEST_TIMEOUT_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)

"""Shared fixtures: the generated Code Llama-shaped test models (never downloaded),
llama.cpp's llama-server built once per session, and the per-test time limit.

Setup that can take minutes on a cold cache (generating the models, building
llama-server, the VS Code extension's ``npm ci``) lives in session fixtures:
pytest sets those up before a test's function-scoped fixtures, so the per-test
alarm (``TEST_TIMEOUT_S``) is not running yet, and each has its own, longer,
limit instead.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

# llama_cpp before numpy (which tests.support.synthetic and gguf import): on a CUDA
# machine (numpy 2.5, system libstdc++) loading a model segfaulted when numpy's
# libraries had been loaded first, and the tests load models in this process.
import llama_cpp  # noqa: F401
import pytest

# tests.support (generated models, llama-server) is not in the installed package:
# it is imported from the repository root (see tests/support/__init__.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codellama_lsp.core.stats import STATS_DIR_ENV
from codellama_lsp.quant.catalog import MODELS_DIR_ENV
from tests.support import llama_server
from tests.support.synthetic import ensure_model, model_file

# No test ever reaches the model hub, and none sees models the developer has
# downloaded: the servers the tests start inherit these settings.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ[MODELS_DIR_ENV] = tempfile.mkdtemp(prefix="codellama-lsp-test-models-")
# Acceptance counts of every server the tests start land here, never in the user's data.
os.environ[STATS_DIR_ENV] = tempfile.mkdtemp(prefix="codellama-lsp-test-stats-")


@contextlib.contextmanager
def long_setup(request: pytest.FixtureRequest, what: str) -> Iterator[None]:
    """One-time setup that may take minutes, said on the terminal while it runs.

    pytest's ``faulthandler_timeout`` dump is paused meanwhile: it would print
    every thread's stack part-way through a long build as if the run had hung
    (or end the run, with ``faulthandler_exit_on_timeout``).  It is armed again
    afterwards for the rest of the test, writing to this process's stderr.
    """
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\n[conftest] {what} ...")
    faulthandler.cancel_dump_traceback_later()
    try:
        yield
    finally:
        if request.config.pluginmanager.has_plugin("faulthandler"):
            dump_after = float(request.config.getini("faulthandler_timeout") or 0)
            exit_too = bool(request.config.getini("faulthandler_exit_on_timeout"))
            if dump_after > 0 and sys.__stderr__ is not None:
                faulthandler.dump_traceback_later(dump_after, file=sys.__stderr__, exit=exit_too)


def _tiny_model(request: pytest.FixtureRequest, *, with_fim: bool) -> Path:
    if model_file("tiny", with_fim=with_fim).exists():
        return ensure_model("tiny", with_fim=with_fim)
    # On a cold cache pip fetches the llama-cpp-python sdist (~75 MB) for the vocabulary.
    what = f"generating the tiny test model{'' if with_fim else ' without FIM tokens'}"
    with long_setup(request, f"{what} into {model_file('tiny', with_fim=with_fim).parent}"):
        return ensure_model("tiny", with_fim=with_fim)


@pytest.fixture(scope="session")
def model_path(request: pytest.FixtureRequest) -> Path:
    """Tiny Code Llama-shaped GGUF with the real SPM vocabulary and FIM tokens."""
    return _tiny_model(request, with_fim=True)


@pytest.fixture(scope="session")
def nofim_model_path(request: pytest.FixtureRequest) -> Path:
    """The same shape without the FIM tokens, like a plain Llama model."""
    return _tiny_model(request, with_fim=False)


#: The FIM families besides Code Llama that the tests generate models of.
OTHER_FAMILIES = ("qwen2.5-coder", "starcoder2", "deepseek-coder")


@pytest.fixture(scope="session")
def family_model_paths(request: pytest.FixtureRequest) -> dict[str, Path]:
    """Tiny generated models of the other FIM families, on the real vocabularies of the
    llama-cpp-python sdist, in their own architectures (qwen2, starcoder2, llama)."""
    found: dict[str, Path] = {}
    for family in OTHER_FAMILIES:
        if not model_file("tiny", family=family).exists():
            where = model_file("tiny", family=family).parent
            with long_setup(request, f"generating the tiny {family} test model into {where}"):
                ensure_model("tiny", family=family)
        found[family] = ensure_model("tiny", family=family)
    return found


#: Building llama-server from the vendored llama.cpp takes ~7 min on two cores.
LLAMA_SERVER_BUILD_TIMEOUT_S = 40 * 60


@pytest.fixture(scope="session")
def llama_server_binary(request: pytest.FixtureRequest) -> Path:
    """llama.cpp's llama-server, built once per cache (``XDG_CACHE_HOME``) and session.

    Every test that starts ``LlamaServerProcess`` passes this as ``binary=``, so
    no test builds it inside the per-test alarm.  A failed build fails each of
    those tests with the end of the build log, and is not retried in the session.
    """
    if llama_server.binary_path().exists():
        return llama_server.binary_path()
    what = (
        f"building llama-server {llama_server.llama_cpp_version()} from the vendored llama.cpp "
        f"into {llama_server.default_cache_dir()} (first use: ~7 min on two cores, "
        f"at most {LLAMA_SERVER_BUILD_TIMEOUT_S // 60} min)"
    )
    try:
        with long_setup(request, what):
            return llama_server.ensure_llama_server(timeout=LLAMA_SERVER_BUILD_TIMEOUT_S)
    except (llama_server.LlamaServerError, OSError) as exc:
        tail = ""
        log_path = getattr(exc, "log_path", None)
        if log_path is not None and log_path.exists():
            lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
            tail = "\nlast lines of the build log:\n" + "\n".join(lines[-40:])
        pytest.fail(
            f"could not build llama-server for the tests "
            f"(limit {LLAMA_SERVER_BUILD_TIMEOUT_S // 60} min): {exc}{tail}\n"
            f"build it by hand with: python -m tests.support.llama_server",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def vscode_client_bundle(request: pytest.FixtureRequest) -> Path:
    """vscode-client built once per session (``npm ci``, type check, bundle), outside the alarm."""
    from tests.support import vscode_client

    if vscode_client.NODE is None or vscode_client.NPM is None:
        pytest.skip("node and npm are not on PATH (VS Code extension build)")
    try:
        with long_setup(request, "building vscode-client (npm ci, npm run build)"):
            return vscode_client.build_client()
    except vscode_client.NpmError as exc:
        pytest.fail(str(exc), pytrace=False)


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

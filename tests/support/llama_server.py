"""Build and run llama.cpp's own ``llama-server``, as a reference to benchmark against.

llama.vim and similar editor plugins talk to ``llama-server`` over HTTP
(``/infill`` with ``--cache-reuse``).  To compare our in-process server with
that setup on equal terms, the binary is compiled from exactly the llama.cpp
that the installed llama-cpp-python vendors: same kernels, same GGUF loader,
so any difference measured comes from prompt construction and KV-cache reuse,
not from two different llama.cpp versions.

Nothing is downloaded but the llama-cpp-python sdist from the package index
(pip fetches it, and caches it), and the build runs once per llama-cpp-python
version; the binary is kept in the user cache directory
(``~/.cache/codellama-lsp/llama-server/<version>``, under ``XDG_CACHE_HOME``).
The first build takes minutes (~7 on two cores): the tests get it from the
session fixture ``llama_server_binary`` in tests/conftest.py, outside the
per-test time limit, and ``python -m tests.support.llama_server`` from the
repository root builds it ahead of time.

A test and benchmark tool, not part of the installed package (see
tests/support/__init__.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

log = logging.getLogger(__name__)

BINARY_NAME = "llama-server.exe" if sys.platform == "win32" else "llama-server"
VENDOR_DIR = "vendor/llama.cpp/"

# Options of the llama.cpp vendored by llama-cpp-python 0.3.36 (checked in its
# CMakeLists.txt and tools/ui/CMakeLists.txt):
# - LLAMA_USE_PREBUILT_UI defaults to ON and would download the web UI from a
#   Hugging Face bucket at build time; LLAMA_BUILD_UI (npm) is already OFF.
#   With both OFF the server embeds an empty asset table: the API still works.
# - LLAMA_CURL is deprecated there ("will be ignored"), so it is not passed.
# - LLAMA_OPENSSL OFF: the server listens on 127.0.0.1 only, no TLS needed,
#   and the binary does not depend on the host's libssl.
# - BUILD_SHARED_LIBS OFF: one self-contained executable that can be moved out
#   of the build tree (a shared build would point its RPATH at the temp dir).
# - LLAMA_BUILD_TOOLS stays ON (the default) because tools/server lives there.
CMAKE_OPTIONS: tuple[str, ...] = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_OPENSSL=OFF",
    "-DGGML_NATIVE=ON",
    "-DBUILD_SHARED_LIBS=OFF",
)


class LlamaServerError(RuntimeError):
    """Building or starting llama-server failed; the message says which step.

    ``log_path`` is the build log kept after a failed build, if there is one.
    """

    def __init__(self, message: str, *, log_path: Path | None = None) -> None:
        super().__init__(message)
        self.log_path = log_path


def llama_cpp_version() -> str:
    """Version of the installed llama-cpp-python, which pins the vendored llama.cpp."""
    from importlib.metadata import version

    return version("llama-cpp-python")


def default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("codellama-lsp")) / "llama-server"


def binary_path(cache_dir: Path | None = None, version: str | None = None) -> Path:
    """Where the binary for ``version`` lives (whether or not it is built yet)."""
    cache_dir = cache_dir or default_cache_dir()
    return cache_dir / (version or llama_cpp_version()) / "bin" / BINARY_NAME


def download_sdist(
    dest: Path, version: str, log_file: IO[str], deadline: float | None = None
) -> Path:
    """The llama-cpp-python sdist for ``version``, fetched into ``dest`` with pip.

    tests/support/synthetic.py fetches the same archive but keeps only the
    vocabulary, so the download is repeated here; pip's HTTP cache makes the
    second one cheap.
    """
    _run_logged(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--dest",
            str(dest),
            f"llama-cpp-python=={version}",
        ],
        log_file,
        "pip download",
        deadline,
    )
    sdists = sorted(dest.glob("llama_cpp_python-*.tar.gz"))
    if not sdists:
        raise LlamaServerError("pip download did not produce the llama-cpp-python sdist")
    return sdists[0]


def extract_llama_cpp(sdist: Path, dest: Path) -> Path:
    """Extract only ``vendor/llama.cpp`` from the sdist; returns its directory."""
    with tarfile.open(sdist) as tar:
        members = []
        root = ""
        for member in tar.getmembers():
            top, _, rest = member.name.partition("/")
            if rest.startswith(VENDOR_DIR) or rest == VENDOR_DIR.rstrip("/"):
                members.append(member)
                root = top
        if not members:
            raise LlamaServerError(f"{sdist.name} has no {VENDOR_DIR}")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=members, filter="data")
        else:  # Python < 3.10.12 has no extraction filters
            tar.extractall(dest, members=members)
    return dest / root / VENDOR_DIR.rstrip("/")


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


@contextlib.contextmanager
def _file_lock(path: Path, deadline: float | None = None) -> Iterator[None]:
    """An exclusive advisory lock, so concurrent callers build only once.

    Waits for another holder (a build in another process) until ``deadline``
    (``time.monotonic()``), or for ever if it is None.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as handle:
        if sys.platform == "win32":
            import msvcrt

            def try_lock() -> bool:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
                except OSError:
                    return False
                return True

            def unlock() -> None:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            def try_lock() -> bool:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True

            def unlock() -> None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

        while not try_lock():
            if _remaining(deadline) == 0.0:
                raise LlamaServerError(
                    f"another llama-server build (lock {path}) did not finish in time"
                )
            time.sleep(0.1)
        try:
            yield
        finally:
            unlock()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill ``proc`` and everything it started (make/ninja, the compilers)."""
    if sys.platform == "win32":
        proc.kill()
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@contextlib.contextmanager
def _terminate_kills_group(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """While in the block, SIGTERM first kills ``proc``'s group, then does what it did."""
    if sys.platform == "win32" or threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is None:  # set outside Python: restoring SIG_DFL is the closest
        previous = signal.SIG_DFL
    if previous == signal.SIG_IGN:
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # no wait() here: the main thread is in it
        signal.signal(signal.SIGTERM, previous)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_logged(
    command: Sequence[str], log_file: IO[str], step: str, deadline: float | None = None
) -> None:
    """Run one build step with its output in the log, stopping it at ``deadline``.

    The step gets its own process group, so that a timeout or an interrupt
    (KeyboardInterrupt, a test's alarm) also ends the compilers cmake started
    instead of leaving them running.  Being in its own group, it no longer gets
    the signals sent to ours, so a SIGTERM to this process kills the step too.
    """
    log_file.write(f"$ {' '.join(command)}\n")
    log_file.flush()
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=sys.platform != "win32",
    )
    try:
        with _terminate_kills_group(proc):
            returncode = proc.wait(timeout=_remaining(deadline))
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise LlamaServerError(f"{step} ran past the build's time limit and was stopped") from None
    except BaseException:
        _kill_group(proc)
        raise
    if returncode != 0:
        raise LlamaServerError(f"{step} failed with exit status {returncode}")


def build_llama_server(
    source: Path, build_dir: Path, log_file: IO[str], jobs: int, deadline: float | None = None
) -> Path:
    """Configure and compile the ``llama-server`` target; returns the built binary."""
    cmake = shutil.which("cmake")
    if cmake is None:
        raise LlamaServerError("cmake is not on PATH; it is needed to build llama-server")
    _run_logged(
        [cmake, "-S", str(source), "-B", str(build_dir), *CMAKE_OPTIONS],
        log_file,
        "cmake configure",
        deadline,
    )
    _run_logged(
        [
            cmake,
            "--build",
            str(build_dir),
            "--config",
            "Release",
            "--target",
            "llama-server",
            "-j",
            str(jobs),
        ],
        log_file,
        "cmake build",
        deadline,
    )
    for candidate in (build_dir / "bin" / BINARY_NAME, build_dir / "bin" / "Release" / BINARY_NAME):
        if candidate.exists():
            return candidate
    raise LlamaServerError(f"the build finished but {BINARY_NAME} is not in {build_dir}/bin")


def ensure_llama_server(
    cache_dir: Path | None = None, *, jobs: int | None = None, timeout: float | None = None
) -> Path:
    """Path of ``llama-server`` built from the installed llama-cpp-python's llama.cpp.

    Built on first use (minutes: ~7 on two cores) and then reused.  The build
    happens in a temporary directory next to the cache and the finished version
    directory is renamed into place, so an interrupted build never leaves a
    half-written binary; a lock file makes a second process wait for the first
    build instead of starting its own.  ``timeout`` (seconds) bounds everything,
    waiting for another process's build included: past it the running step is
    killed and LlamaServerError raised.  A failed build's log is kept next to
    the cache (``LlamaServerError.log_path``).
    """
    cache_dir = cache_dir or default_cache_dir()
    version = llama_cpp_version()
    target = binary_path(cache_dir, version)
    if target.exists():
        return target
    deadline = None if timeout is None else time.monotonic() + timeout
    with _file_lock(cache_dir / f"{version}.lock", deadline):
        if target.exists():  # built by another process while we waited
            return target
        started = time.perf_counter()
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-build-", dir=cache_dir))
        try:
            log_path = staging / "build.log"
            with log_path.open("w", encoding="utf-8") as log_file:
                log.info("building llama-server %s (log: %s)", version, log_path)
                sdist = download_sdist(staging / "sdist", version, log_file, deadline)
                source = extract_llama_cpp(sdist, staging / "src")
                built = build_llama_server(
                    source, staging / "build", log_file, jobs or os.cpu_count() or 2, deadline
                )
            out = staging / "out"
            (out / "bin").mkdir(parents=True)
            shutil.copy2(built, out / "bin" / BINARY_NAME)
            shutil.copy2(log_path, out / "build.log")
            elapsed = time.perf_counter() - started
            (out / "build-info.json").write_text(
                json.dumps(
                    {
                        "llama_cpp_python": version,
                        "cmake_options": list(CMAKE_OPTIONS),
                        "build_seconds": round(elapsed, 1),
                    },
                    indent=2,
                )
                + "\n",
                encoding="utf-8",
            )
            final = cache_dir / version
            if final.exists():  # leftovers without a binary (e.g. deleted by hand)
                shutil.rmtree(final)
            out.rename(final)
            log.info("built %s in %.0f s", target, elapsed)
        except BaseException as exc:
            failed_log = cache_dir / f"{version}-failed-build.log"
            kept: Path | None = failed_log
            try:
                shutil.copy2(staging / "build.log", failed_log)
                log.error("llama-server build failed; log kept at %s", failed_log)
            except OSError:
                kept = None
            if isinstance(exc, LlamaServerError):
                where = f"; build log: {kept}" if kept else ""
                raise LlamaServerError(f"{exc}{where}", log_path=kept) from exc
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class LlamaServerProcess:
    """``llama-server`` on 127.0.0.1 and a free port, for the lifetime of a ``with`` block.

    Its output goes to a temporary log file (not a pipe, which would block the
    server once full) and is quoted in the error if the server fails to start.
    """

    def __init__(
        self,
        model: Path | str,
        *,
        ctx_size: int = 4096,
        parallel: int = 1,
        cache_reuse: int = 256,
        extra_args: Sequence[str] = (),
        binary: Path | None = None,
        startup_timeout: float = 120.0,
        port: int = 0,
    ) -> None:
        self.model = Path(model)
        self.ctx_size = ctx_size
        self.parallel = parallel
        self.cache_reuse = cache_reuse
        self.extra_args = tuple(extra_args)
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.host = "127.0.0.1"
        #: 0 picks a free port at start(); a restart keeps the port it had.
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        binary = self.binary or ensure_llama_server()
        return [
            str(binary),
            "-m",
            str(self.model),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--ctx-size",
            str(self.ctx_size),
            "--parallel",
            str(self.parallel),
            "--cache-reuse",
            str(self.cache_reuse),
            *self.extra_args,
        ]

    def start(self) -> LlamaServerProcess:
        if not self.port:
            self.port = free_port(self.host)
        command = self.command()
        # Closed in stop(), which every exit path of the server's lifetime reaches.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115
        log.info("starting %s", " ".join(command))
        self.proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def output(self) -> str:
        """Everything the server printed so far (its log)."""
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def _wait_healthy(self) -> None:
        # /health answers 503 while the model loads and 200 {"status": "ok"} after.
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise LlamaServerError(
                    f"llama-server exited with status {self.proc.returncode} while starting:\n"
                    + self.output()[-4000:]
                )
            try:
                if self.get("/health", timeout=2.0).get("status") == "ok":
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise LlamaServerError(
            f"llama-server was not healthy after {self.startup_timeout:.0f} s:\n"
            + self.output()[-4000:]
        )

    def get(self, path: str, *, timeout: float = 60.0) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def post(self, path: str, body: dict[str, Any], *, timeout: float = 600.0) -> dict[str, Any]:
        """POST JSON and return the decoded JSON answer; HTTP errors carry the body."""
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                result: dict[str, Any] = json.loads(response.read())
                return result
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise LlamaServerError(f"POST {path}: HTTP {exc.code}: {detail}") from exc

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server, killing it if it does not exit within ``timeout``."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LlamaServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.llama_server",
        description="Build llama.cpp's llama-server from the installed llama-cpp-python "
        "sources (once) and print its path.",
    )
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("-j", "--jobs", type=int, default=None, help="parallel compile jobs")
    parser.add_argument("--timeout", type=float, default=None, help="give up after SECONDS")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        path = ensure_llama_server(args.cache_dir, jobs=args.jobs, timeout=args.timeout)
    except LlamaServerError as exc:
        log.error("%s", exc)
        return 1
    sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

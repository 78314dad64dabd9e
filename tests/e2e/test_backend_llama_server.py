"""llama.cpp's llama-server, built from the vendored sources, answers like llama.vim expects.

The keystroke benchmark (bench/keystroke.py) compares our server with this
binary; these tests make sure the build works and that ``/infill`` and
``/v1/completions`` return the fields the benchmark reads, with the same
generated model our own tests use.

The binary comes from the session fixture ``llama_server_binary`` (conftest.py):
built once, on a cold cache, outside the per-test time limit.  The build logic
itself (locking, staging, failures, time limit) is tested with a fake ``cmake``
on PATH, a real subprocess that "builds" in well under a second.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import llama_server
from tests.support.llama_server import (
    LlamaServerError,
    LlamaServerProcess,
    ensure_llama_server,
)


@pytest.fixture(scope="module")
def server(model_path: Path, llama_server_binary: Path) -> Iterator[LlamaServerProcess]:
    with LlamaServerProcess(
        model_path, ctx_size=2048, extra_args=("--threads", "2"), binary=llama_server_binary
    ) as running:
        yield running


def test_binary_is_cached_and_executable(llama_server_binary: Path) -> None:
    path = llama_server_binary
    assert path.name.startswith("llama-server")
    assert os.access(path, os.X_OK)
    started = time.perf_counter()
    assert ensure_llama_server() == path  # the next call reuses the build ...
    assert time.perf_counter() - started < 5  # ... without building again
    assert (path.parent.parent / "build-info.json").exists()
    version = subprocess.run(
        [str(path), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert version.returncode == 0, version.stdout + version.stderr


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


def test_start_failure_quotes_the_server_log(tmp_path: Path, llama_server_binary: Path) -> None:
    missing = tmp_path / "missing.gguf"
    with pytest.raises(LlamaServerError, match="exited with status"):
        LlamaServerProcess(missing, startup_timeout=60, binary=llama_server_binary).start()


# -- the build logic, with a fake cmake ----------------------------------------------

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="the fake cmake is a sh script")

#: Stands in for cmake: logs its arguments, "builds" a llama-server script on
#: ``--build DIR``, can start a grandchild (like make starting compilers), and
#: exits with FAKE_CMAKE_EXIT.
FAKE_CMAKE = """#!/bin/sh
echo "$@" >> "$FAKE_CMAKE_CALLS"
if [ "$1" = "--build" ]; then
  if [ -n "$FAKE_CMAKE_CHILD" ]; then
    sleep 60 &
    echo $! > "$FAKE_CMAKE_CHILD"
  fi
  sleep "${FAKE_CMAKE_BUILD_S:-0.3}"
  mkdir -p "$2/bin"
  printf '#!/bin/sh\\necho fake llama-server\\n' > "$2/bin/llama-server"
  chmod +x "$2/bin/llama-server"
fi
exit "${FAKE_CMAKE_EXIT:-0}"
"""


@pytest.fixture
def fake_cmake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """cmake on PATH is the script above; no sdist is downloaded or extracted.

    Returns the file each cmake call appends its arguments to.
    """
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    cmake = bin_dir / "cmake"
    cmake.write_text(FAKE_CMAKE)
    cmake.chmod(0o755)
    calls = tmp_path / "cmake-calls.txt"
    calls.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_CMAKE_CALLS", str(calls))
    monkeypatch.setattr(
        llama_server, "download_sdist", lambda dest, version, log_file, deadline=None: dest
    )
    monkeypatch.setattr(llama_server, "extract_llama_cpp", lambda sdist, dest: dest)
    return calls


def _build_calls(calls: Path) -> list[str]:
    return [line for line in calls.read_text().splitlines() if line.startswith("--build")]


def _staging_leftovers(cache: Path) -> list[str]:
    return [p.name for p in cache.iterdir() if "-build-" in p.name]


@posix_only
def test_build_runs_cmake_and_installs_the_binary(fake_cmake: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = ensure_llama_server(cache, jobs=3)
    assert path == llama_server.binary_path(cache)
    assert os.access(path, os.X_OK)
    ran = subprocess.run([str(path)], capture_output=True, text=True, timeout=10, check=True)
    assert ran.stdout == "fake llama-server\n"
    configure, build = fake_cmake.read_text().splitlines()
    assert configure.startswith("-S ") and "-DLLAMA_USE_PREBUILT_UI=OFF" in configure.split()
    assert build.split()[-4:] == ["--target", "llama-server", "-j", "3"]
    info = (path.parent.parent / "build-info.json").read_text()
    assert llama_server.llama_cpp_version() in info
    assert "$ " in (path.parent.parent / "build.log").read_text()  # the commands, logged
    assert ensure_llama_server(cache) == path
    assert len(_build_calls(fake_cmake)) == 1  # reused, not rebuilt


@posix_only
def test_concurrent_callers_build_once(fake_cmake: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(ensure_llama_server(cache, jobs=1)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(_build_calls(fake_cmake)) == 1
    assert len(results) == 3 and len(set(results)) == 1
    assert results[0].exists()
    # Only the finished version directory and the lock file remain: no staging leftovers.
    version = llama_server.llama_cpp_version()
    assert sorted(p.name for p in cache.iterdir()) == sorted([version, f"{version}.lock"])


@posix_only
def test_failed_build_leaves_no_binary_and_keeps_the_log(
    fake_cmake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CMAKE_EXIT", "2")
    cache = tmp_path / "cache"
    with pytest.raises(LlamaServerError, match="cmake configure failed with exit status 2") as e:
        ensure_llama_server(cache)
    version = llama_server.llama_cpp_version()
    assert not llama_server.binary_path(cache).exists()
    assert not (cache / version).exists()
    assert e.value.log_path == cache / f"{version}-failed-build.log"
    assert str(e.value.log_path) in str(e.value)
    assert "-DLLAMA_BUILD_SERVER=ON" in e.value.log_path.read_text()
    assert not _staging_leftovers(cache)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, not yet reaped


@posix_only
def test_a_build_past_its_time_limit_is_stopped_with_its_children(
    fake_cmake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    child = tmp_path / "child.pid"
    monkeypatch.setenv("FAKE_CMAKE_BUILD_S", "60")
    monkeypatch.setenv("FAKE_CMAKE_CHILD", str(child))
    cache = tmp_path / "cache"
    started = time.monotonic()
    with pytest.raises(LlamaServerError, match="cmake build ran past the build's time limit"):
        ensure_llama_server(cache, timeout=1.5)
    assert time.monotonic() - started < 15
    assert not llama_server.binary_path(cache).exists()
    assert not _staging_leftovers(cache)
    # cmake's own child (make, the compilers) is killed with it, not left running.
    pid = int(child.read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


#: A build in a process of its own, with the network steps skipped (as in fake_cmake).
BUILD_SCRIPT = """
import sys
from pathlib import Path

sys.path.insert(0, sys.argv[1])
from tests.support import llama_server

llama_server.download_sdist = lambda dest, version, log_file, deadline=None: dest
llama_server.extract_llama_cpp = lambda sdist, dest: dest
llama_server.ensure_llama_server(Path(sys.argv[2]))
"""


@posix_only
def test_sigterm_during_a_build_stops_its_children_too(
    fake_cmake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The steps run in their own process group (to be killed as a whole on a
    # timeout), so a SIGTERM to the building process must reach them explicitly.
    child = tmp_path / "child.pid"
    monkeypatch.setenv("FAKE_CMAKE_BUILD_S", "60")
    monkeypatch.setenv("FAKE_CMAKE_CHILD", str(child))
    root = Path(__file__).resolve().parents[2]
    builder = subprocess.Popen(
        [sys.executable, "-c", BUILD_SCRIPT, str(root), str(tmp_path / "cache")]
    )
    try:
        deadline = time.monotonic() + 60
        while not (child.exists() and child.read_text().strip()):
            assert builder.poll() is None, "the build ended before cmake --build started"
            assert time.monotonic() < deadline, "cmake --build never started"
            time.sleep(0.05)
        builder.terminate()
        assert builder.wait(timeout=20) == -signal.SIGTERM  # and it still dies of it
    finally:
        if builder.poll() is None:
            builder.kill()
            builder.wait()
    pid = int(child.read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


@posix_only
def test_waiting_for_another_build_is_bounded_too(fake_cmake: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    version = llama_server.llama_cpp_version()
    with llama_server._file_lock(cache / f"{version}.lock"):  # another build is running
        started = time.monotonic()
        with pytest.raises(LlamaServerError, match="did not finish in time"):
            ensure_llama_server(cache, timeout=0.5)
        assert 0.4 < time.monotonic() - started < 10
    assert _build_calls(fake_cmake) == []
    # Once the other build is gone, the next caller builds.
    assert ensure_llama_server(cache, timeout=60).exists()


def test_only_the_vendored_llama_cpp_is_extracted(tmp_path: Path) -> None:
    sdist = tmp_path / "llama_cpp_python-0.0.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for name in (
            "llama_cpp_python-0.0.0/vendor/llama.cpp/CMakeLists.txt",
            "llama_cpp_python-0.0.0/llama_cpp/llama.py",
        ):
            data = name.encode()
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    source = llama_server.extract_llama_cpp(sdist, tmp_path / "src")
    assert source == tmp_path / "src" / "llama_cpp_python-0.0.0" / "vendor" / "llama.cpp"
    assert (source / "CMakeLists.txt").is_file()
    assert not (tmp_path / "src" / "llama_cpp_python-0.0.0" / "llama_cpp").exists()

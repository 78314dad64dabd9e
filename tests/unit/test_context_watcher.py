"""The workspace watcher on real directories: disk changes reach the index, secrets never do."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from codellama_lsp.context.index import RepositoryIndex
from codellama_lsp.context.watcher import WorkspaceWatcher

TIMEOUT_S = 10.0
# watchdog's inotify backend races with itself when nested directories appear at
# once (``mkdir -p``) and warns that it re-registered a watch; nothing is lost.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id .* already exists:RuntimeWarning")


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {TIMEOUT_S} s waiting for {what}")


def names(index: RepositoryIndex, name: str) -> list[str]:
    return [d.path for d in index.definitions(name)]


class Watched:
    """An index of a temporary workspace under a running watcher."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.open: set[str] = set()
        self.changes: list[str] = []
        self.index = RepositoryIndex.build(root)
        self.watcher = WorkspaceWatcher(
            self.index, is_open=self.open.__contains__, on_change=self.changes.append
        )

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def settle(self) -> None:
        """Wait until everything written so far has been applied, via a marker file."""
        marker = f"marker_{len(self.changes)}_{time.monotonic_ns()}"
        self.write(f"{marker}.py", f"def {marker}():\n    pass\n")
        wait_for(lambda: bool(self.index.definitions(marker)), f"marker {marker}")
        (self.root / f"{marker}.py").unlink()
        wait_for(lambda: not self.index.definitions(marker), f"marker {marker} removed")


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[Watched]:
    root = tmp_path / "ws"
    root.mkdir()
    (root / ".gitignore").write_text("build/\n*.gen.py\n", encoding="utf-8")
    (root / "keep.py").write_text("def kept():\n    return 1\n", encoding="utf-8")
    state = Watched(root)
    state.watcher.start()
    try:
        yield state
    finally:
        state.watcher.stop()


def test_created_file_is_indexed(watched: Watched) -> None:
    watched.write("pkg/new_module.py", "def fresh_function(a, b):\n    return a + b\n")
    wait_for(lambda: names(watched.index, "fresh_function") == ["pkg/new_module.py"], "creation")
    assert "pkg/new_module.py" in watched.changes
    assert names(watched.index, "kept") == ["keep.py"]  # untouched files stay


def test_modified_file_is_reindexed(watched: Watched) -> None:
    watched.write("keep.py", "def replaced():\n    return 2\n")
    wait_for(lambda: names(watched.index, "replaced") == ["keep.py"], "modification")
    assert watched.index.definitions("kept") == []


def test_deleted_file_leaves_the_index(watched: Watched) -> None:
    (watched.root / "keep.py").unlink()
    wait_for(lambda: "keep.py" not in watched.index, "deletion")
    assert watched.index.definitions("kept") == []


def test_renamed_file_moves_in_the_index(watched: Watched) -> None:
    (watched.root / "keep.py").rename(watched.root / "renamed.py")
    wait_for(lambda: names(watched.index, "kept") == ["renamed.py"], "rename")
    assert "keep.py" not in watched.index


def test_new_and_moved_directories_are_picked_up(watched: Watched) -> None:
    staging = watched.root.parent / "staging"
    (staging / "deep").mkdir(parents=True)
    (staging / "deep" / "inner.py").write_text("def inner():\n    pass\n", encoding="utf-8")
    shutil.move(staging, watched.root / "moved_in")  # a directory arriving whole: no file events
    wait_for(lambda: names(watched.index, "inner") == ["moved_in/deep/inner.py"], "moved-in dir")
    (watched.root / "moved_in").rename(watched.root / "elsewhere")
    wait_for(lambda: names(watched.index, "inner") == ["elsewhere/deep/inner.py"], "dir rename")
    shutil.rmtree(watched.root / "elsewhere")
    wait_for(lambda: watched.index.definitions("inner") == [], "dir deletion")


def test_secret_and_ignored_files_never_enter(watched: Watched) -> None:
    watched.write(".env", "API_KEY=sk-live-secret\n")
    watched.write("config.env.py", "def from_env():\n    pass\n")  # neither a secret nor ignored
    watched.write("build/out.py", "def built():\n    pass\n")
    watched.write("schema.gen.py", "def generated():\n    pass\n")
    watched.write("node_modules/lib/index.js", "function vendored() {}\n")
    watched.write(".git/hooks/hook.py", "def hook():\n    pass\n")
    wait_for(lambda: bool(watched.index.definitions("from_env")), "the allowed file")
    watched.settle()
    assert watched.index.files() == ["config.env.py", "keep.py"]
    for name in ("built", "generated", "vendored", "hook"):
        assert watched.index.definitions(name) == [], name
    assert not any("build/" in c or "node_modules" in c or ".git/" in c for c in watched.changes)


def test_gitignore_changes_apply(watched: Watched) -> None:
    watched.write("later.py", "def later():\n    pass\n")
    wait_for(lambda: "later.py" in watched.index, "creation")
    watched.write(".gitignore", "build/\n*.gen.py\nlater.py\n")
    wait_for(lambda: "later.py" not in watched.index, "newly ignored file dropped")
    (watched.root / ".gitignore").unlink()
    watched.write("build/out.py", "def built():\n    pass\n")
    wait_for(lambda: names(watched.index, "built") == ["build/out.py"], "no longer ignored")


def test_open_documents_keep_the_editors_text(watched: Watched) -> None:
    path = watched.root / "keep.py"
    watched.index.update_file(path, "def typed_in_editor():\n    pass\n")
    watched.open.add(str(path))
    watched.write("keep.py", "def saved_elsewhere():\n    pass\n")
    path.rename(watched.root / "keep_tmp.py")  # an atomic save's rename dance
    (watched.root / "keep_tmp.py").rename(path)
    watched.settle()
    assert names(watched.index, "typed_in_editor") == ["keep.py"]
    assert watched.index.definitions("saved_elsewhere") == []
    watched.open.clear()
    watched.write("keep.py", "def saved_after_close():\n    pass\n")
    wait_for(lambda: names(watched.index, "saved_after_close") == ["keep.py"], "closed file")


def test_bursts_are_coalesced(tmp_path: Path) -> None:
    (tmp_path / "burst.py").write_text("def v0():\n    pass\n", encoding="utf-8")
    index = RepositoryIndex.build(tmp_path)
    applied: list[str] = []
    watcher = WorkspaceWatcher(
        index, is_open=lambda _: False, on_change=applied.append, debounce_s=0.3
    )
    watcher.start()
    try:
        for version in range(1, 21):
            (tmp_path / "burst.py").write_text(f"def v{version}():\n    pass\n", encoding="utf-8")
        wait_for(lambda: names(index, "v20") == ["burst.py"], "the last version")
        time.sleep(0.5)
        assert applied.count("burst.py") < 5  # 20 writes, a few updates
        assert index.definitions("v10") == []
    finally:
        watcher.stop()


def test_a_failing_update_does_not_stop_the_watcher(tmp_path: Path) -> None:
    index = RepositoryIndex.build(tmp_path)
    calls: list[str] = []

    def flaky(rel: str) -> None:
        calls.append(rel)
        if rel == "first.py":
            raise RuntimeError("callback broke")

    watcher = WorkspaceWatcher(index, is_open=lambda _: False, on_change=flaky)
    watcher.start()
    try:
        (tmp_path / "first.py").write_text("def first():\n    pass\n", encoding="utf-8")
        wait_for(lambda: "first.py" in calls, "the failing callback")
        (tmp_path / "second.py").write_text("def second():\n    pass\n", encoding="utf-8")
        wait_for(lambda: names(index, "second") == ["second.py"], "the next change")
    finally:
        watcher.stop()


def test_stop_ends_the_threads_and_changes_stop_applying(tmp_path: Path) -> None:
    index = RepositoryIndex.build(tmp_path)
    watcher = WorkspaceWatcher(index, is_open=lambda _: False)
    before = set(threading.enumerate())
    watcher.start()
    watcher.start()  # idempotent
    started = set(threading.enumerate()) - before
    assert started and watcher.running
    watcher.stop()
    watcher.stop()  # idempotent
    assert not watcher.running
    assert not any(t.is_alive() for t in started)
    (tmp_path / "after.py").write_text("def after_stop():\n    pass\n", encoding="utf-8")
    time.sleep(0.3)
    assert index.definitions("after_stop") == []
    watcher.start()  # a stopped watcher can watch again
    try:
        (tmp_path / "again.py").write_text("def again():\n    pass\n", encoding="utf-8")
        wait_for(lambda: names(index, "again") == ["again.py"], "after restart")
    finally:
        watcher.stop()

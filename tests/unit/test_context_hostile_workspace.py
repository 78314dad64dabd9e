"""Hostile workspaces: names, depths, links, pipes, .gitignore lines and sizes that
once crashed, hung or leaked through the index and the watcher.

Each test builds the hostile thing for real on disk (bytes paths, ``os.mkfifo``,
symlinks out of the workspace, 1,100 nested directories).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from codellama_lsp.context.index import RepositoryIndex
from codellama_lsp.context.retrieval import build_context
from codellama_lsp.context.watcher import WatchError, WorkspaceWatcher
from codellama_lsp.context.workspace import (
    HARD_MAX_FILE_BYTES,
    MAX_DEPTH,
    WorkspaceOptions,
    read_source,
)
from tests.support.trees import remove_tree

TIMEOUT_S = 10.0
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id .* already exists:RuntimeWarning")

MAIN = "from mod import helper\n\n\ndef run(path):\n    cfg = helper(path)\n    \n"
HELPER = "def helper(path: str, hostile_marker: int = 7) -> dict:\n    return {}\n"


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {TIMEOUT_S} s waiting for {what}")


def names(index: RepositoryIndex, name: str) -> list[str]:
    return [d.path for d in index.definitions(name)]


def nest(root: Path, depth: int, files: dict[int, str] | None = None) -> list[str]:
    """``depth`` directories ``d/d/...`` under ``root`` (dir_fd: no path gets long);
    ``files`` puts ``f{level}.py`` defining the given name at those levels.

    Returns the relative directory at each level (index 0: the root).
    """
    files = files or {}
    rels = [""]
    fd = os.open(root, os.O_RDONLY)
    try:
        for level in range(1, depth + 1):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
            rels.append(f"{rels[-1]}/d" if rels[-1] else "d")
            if level in files:
                flags = os.O_WRONLY | os.O_CREAT
                with open(os.open(f"f{level}.py", flags, dir_fd=fd), "w") as handle:
                    handle.write(f"def {files[level]}():\n    pass\n")
    finally:
        os.close(fd)
    return rels


def write_at(root: Path, rel_dir: str, name: str, text: str) -> None:
    """Write a file in a directory whose absolute path may be too long to open."""
    fd = os.open(root, os.O_RDONLY)
    try:
        for part in rel_dir.split("/") if rel_dir else []:
            inner = os.open(part, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        with open(os.open(name, os.O_WRONLY | os.O_CREAT, dir_fd=fd), "w") as handle:
            handle.write(text)
    finally:
        os.close(fd)


class Watched:
    """An index of a temporary workspace under a running watcher."""

    def __init__(self, root: Path, options: WorkspaceOptions | None = None) -> None:
        self.root = root
        self.index = RepositoryIndex.build(root, options)
        self.watcher = WorkspaceWatcher(self.index, is_open=lambda _: False)

    def settle(self) -> None:
        """Wait until everything written so far has been applied, via a marker file."""
        marker = f"marker_{time.monotonic_ns()}"
        (self.root / f"{marker}.py").write_text(f"def {marker}():\n    pass\n")
        wait_for(lambda: bool(self.index.definitions(marker)), f"marker {marker}")
        (self.root / f"{marker}.py").unlink()
        wait_for(lambda: not self.index.definitions(marker), f"marker {marker} removed")


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "keep.py").write_text("def kept():\n    return 1\n")
    yield root
    remove_tree(root)


@pytest.fixture
def watched(workspace: Path) -> Iterator[Watched]:
    state = Watched(workspace)
    state.watcher.start()
    try:
        yield state
    finally:
        state.watcher.stop()


# -- 7: names that are not UTF-8 ---------------------------------------------------


def test_undecodable_names_never_reach_the_index_or_a_prompt(workspace: Path) -> None:
    raw = os.fsencode(workspace)
    os.mkdir(raw + b"/pkg\xfe")
    with open(raw + b"/pkg\xfe/mod.py", "w") as handle:
        handle.write(HELPER)
    with open(raw + b"/bad\xff.py", "w") as handle:
        handle.write("def undecodable_name():\n    pass\n")
    (workspace / "main.py").write_text(MAIN)
    index = RepositoryIndex.build(workspace)
    assert index.files() == ["keep.py", "main.py"]
    for rel in index.files():
        rel.encode("utf-8")  # strict: a surrogate would raise
    # The watcher's way in (and an editor closing such a file) is refused too.
    assert index.update_file(os.fsdecode(raw + b"/pkg\xfe/mod.py")) is False
    assert index.update_file(os.fsdecode(raw + b"/bad\xff.py")) is False
    assert not index.is_allowed(os.fsdecode(raw + b"/pkg\xfe/mod.py"))
    context = build_context(index, workspace / "main.py", MAIN, len(MAIN) - 1, [], 4000)
    context.encode("utf-8")
    assert "hostile_marker" not in context


def test_undecodable_names_created_while_watching_are_skipped(watched: Watched) -> None:
    raw = os.fsencode(watched.root)
    os.mkdir(raw + b"/new\xfe")
    with open(raw + b"/new\xfe/mod.py", "w") as handle:
        handle.write(HELPER)
    with open(raw + b"/late\xff.py", "w") as handle:
        handle.write("def late_undecodable():\n    pass\n")
    watched.settle()
    assert watched.index.files() == ["keep.py"]
    assert watched.index.definitions("helper") == []


# -- 8: 1,100 levels of nesting ------------------------------------------------------


def test_deep_nesting_is_indexed_to_a_bound_quickly(workspace: Path) -> None:
    levels = nest(workspace, 1100, {5: "shallow", MAX_DEPTH: "deepest_kept", 1100: "too_deep"})
    started = time.perf_counter()
    index = RepositoryIndex.build(workspace)
    elapsed = time.perf_counter() - started
    assert names(index, "shallow") == [f"{levels[5]}/f5.py"]
    assert names(index, "deepest_kept") == [f"{levels[MAX_DEPTH]}/f{MAX_DEPTH}.py"]
    assert index.definitions("too_deep") == []
    # The walk stops at the bound: 1,100 levels cost what 64 do (was 5.8 s here).
    assert elapsed < 2.0, elapsed
    # Nothing below the bound gets in by another way either.
    deep_file = workspace / levels[MAX_DEPTH + 1] / "x.py"
    assert not index.is_allowed(deep_file)
    assert index.update_file(deep_file, "def sneaked_in():\n    pass\n") is False


def test_watcher_starts_on_a_deep_tree_and_watches_within_the_bound(workspace: Path) -> None:
    levels = nest(workspace, 1100)
    state = Watched(workspace)
    state.watcher.start()  # watchdog's own walk overflowed Python's stack here
    try:
        state.settle()  # the root is watched
        write_at(workspace, levels[10], "ten.py", "def at_ten():\n    pass\n")
        write_at(workspace, levels[MAX_DEPTH], "edge.py", "def at_edge():\n    pass\n")
        write_at(workspace, levels[MAX_DEPTH + 1], "below.py", "def below_edge():\n    pass\n")
        write_at(workspace, levels[1000], "far.py", "def far_below():\n    pass\n")
        wait_for(lambda: names(state.index, "at_ten") == [f"{levels[10]}/ten.py"], "level 10")
        wait_for(lambda: bool(state.index.definitions("at_edge")), f"level {MAX_DEPTH}")
        state.settle()
        assert state.index.definitions("below_edge") == []
        assert state.index.definitions("far_below") == []
        # A new directory beside the deep chain is watched once it appears.
        (workspace / "side").mkdir()
        state.settle()
        (workspace / "side" / "later.py").write_text("def side_later():\n    pass\n")
        wait_for(lambda: names(state.index, "side_later") == ["side/later.py"], "side dir")
    finally:
        state.watcher.stop()


def test_a_deep_tree_the_index_skips_is_watched_around(workspace: Path) -> None:
    # node_modules is never walked by the index, so only watchdog's walk meets it.
    (workspace / "node_modules").mkdir()
    nest(workspace / "node_modules", 1100)
    (workspace / "src").mkdir()
    state = Watched(workspace)
    state.watcher.start()
    try:
        state.settle()
        (workspace / "src" / "new.py").write_text("def in_src():\n    pass\n")
        wait_for(lambda: names(state.index, "in_src") == ["src/new.py"], "a file in src/")
    finally:
        state.watcher.stop()


def test_a_root_that_cannot_be_watched_is_one_error_and_no_threads(workspace: Path) -> None:
    index = RepositoryIndex.build(workspace)
    remove_tree(workspace)
    watcher = WorkspaceWatcher(index, is_open=lambda _: False)
    before = set(threading.enumerate())
    with pytest.raises(WatchError):
        watcher.start()
    assert not watcher.running
    time.sleep(0.1)
    # watchdog's process-wide inotify reader may stay; no observer or worker of ours.
    left = {t for t in threading.enumerate() if type(t).__name__ != "InotifyFD"} - before
    assert not left
    workspace.mkdir()  # for the fixture's clean-up


# -- 9: symlinks out of the workspace ------------------------------------------------


def test_symlinks_created_while_watching_follow_the_first_index(
    watched: Watched, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("def outside_secret():\n    return 'sk-outside'\n")
    (outside / "pkg").mkdir()
    (outside / "pkg" / "inner.py").write_text("def outside_inner():\n    pass\n")
    (watched.root / "link.py").symlink_to(outside / "secret.py")
    (watched.root / "linkdir").symlink_to(outside / "pkg", target_is_directory=True)
    watched.settle()
    assert watched.index.files() == ["keep.py"]
    # The same symlink policy as the first index: a rebuild agrees.
    assert RepositoryIndex.build(watched.root).files() == ["keep.py"]
    # And a change to the target, seen through the link, still does not count.
    (watched.root / "link.py").touch()
    watched.settle()
    assert watched.index.definitions("outside_secret") == []
    assert watched.index.update_file(watched.root / "link.py") is False
    assert watched.index.update_file(watched.root / "linkdir" / "inner.py") is False


# -- 10: FIFOs and other files that are not regular ----------------------------------


def _unblock(fifo: Path) -> None:
    """Open the write end, so that a reader stuck in open() (the bug) gets free."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_reading_a_fifo_returns_at_once(workspace: Path) -> None:
    fifo = workspace / "pipe.py"
    os.mkfifo(fifo)
    result: list[bytes | None] = []
    reader = threading.Thread(target=lambda: result.append(read_source(fifo)), daemon=True)
    reader.start()
    reader.join(2.0)
    try:
        assert not reader.is_alive(), "read_source blocked on a FIFO"
        assert result == [None]
    finally:
        _unblock(fifo)


def test_a_fifo_created_while_watching_blocks_nothing(watched: Watched) -> None:
    fifos = [watched.root / "pipe.py", watched.root / "sub" / ".gitignore"]
    (watched.root / "sub").mkdir()
    try:
        for fifo in fifos:
            os.mkfifo(fifo)
        (watched.root / "sub" / "after.py").write_text("def after_fifo():\n    pass\n")
        wait_for(lambda: names(watched.index, "after_fifo") == ["sub/after.py"], "a later file")
        watched.settle()
        assert "pipe.py" not in watched.index
        stopper = threading.Thread(target=watched.watcher.stop, daemon=True)
        stopper.start()
        stopper.join(5.0)
        assert not stopper.is_alive(), "stop() hung"
    finally:
        for fifo in fifos:
            _unblock(fifo)


def test_a_fifo_gitignore_at_the_first_index_blocks_nothing(workspace: Path) -> None:
    (workspace / "sub").mkdir()
    os.mkfifo(workspace / "sub" / ".gitignore")
    (workspace / "sub" / "code.py").write_text("def beside_fifo():\n    pass\n")
    built: list[RepositoryIndex] = []
    builder = threading.Thread(target=lambda: built.append(RepositoryIndex.build(workspace)))
    builder.daemon = True
    builder.start()
    builder.join(5.0)
    try:
        assert not builder.is_alive(), "the build blocked on a FIFO .gitignore"
        assert built[0].files() == ["keep.py", "sub/code.py"]
    finally:
        _unblock(workspace / "sub" / ".gitignore")


# -- 11: .gitignore lines git tolerates ----------------------------------------------

BAD_GITIGNORE = "!\n\\\n[z-a]\nignored_dir/\n*.tmp.py\n"


def test_bad_gitignore_lines_are_skipped_and_the_rest_applies(
    workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sub = workspace / "sub"
    (sub / "ignored_dir").mkdir(parents=True)
    (sub / ".gitignore").write_text(BAD_GITIGNORE)
    (sub / "code.py").write_text("def sub_code():\n    pass\n")
    (sub / "scratch.tmp.py").write_text("def scratch():\n    pass\n")
    (sub / "ignored_dir" / "x.py").write_text("def in_ignored_dir():\n    pass\n")
    with caplog.at_level(logging.INFO, logger="codellama_lsp.context"):
        index = RepositoryIndex.build(workspace)
        index.rescan()
        assert not index.is_allowed(sub / "ignored_dir" / "y.py")
    assert index.files() == ["keep.py", "sub/code.py"]
    warnings = [r for r in caplog.records if "sub/.gitignore" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert not any(r.exc_info for r in caplog.records)


def test_bad_exclude_patterns_are_skipped_too(
    workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (workspace / "gen.py").write_text("def generated():\n    pass\n")
    with caplog.at_level(logging.INFO, logger="codellama_lsp.context"):
        index = RepositoryIndex.build(workspace, WorkspaceOptions(exclude=("!", "gen.py")))
    assert index.files() == ["keep.py"]
    assert any("'!'" in r.getMessage() for r in caplog.records)


def test_a_bad_gitignore_written_while_watching_applies_without_tracebacks(
    watched: Watched, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="codellama_lsp.context"):
        (watched.root / "scratch.tmp.py").write_text("def scratch():\n    pass\n")
        wait_for(lambda: "scratch.tmp.py" in watched.index, "the file before the rule")
        (watched.root / ".gitignore").write_text(BAD_GITIGNORE)
        wait_for(lambda: "scratch.tmp.py" not in watched.index, "the good rule applied")
        for n in range(5):
            (watched.root / f"f{n}.py").write_text(f"def f{n}():\n    pass\n")
        watched.settle()
    assert not any(r.exc_info for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert sum(".gitignore" in r.getMessage() for r in caplog.records) == 1


# -- 12: huge files ------------------------------------------------------------------


def test_files_over_the_hard_cap_are_skipped_whatever_the_setting(
    workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    big = "def first_of_huge():\n    pass\n" + "x = 1\n" * (HARD_MAX_FILE_BYTES // 6 + 1)
    (workspace / "huge.py").write_text(big)
    options = WorkspaceOptions(max_file_bytes=100_000_000)
    with caplog.at_level(logging.INFO, logger="codellama_lsp.context"):
        index = RepositoryIndex.build(workspace, options)
        index.rescan()
    assert index.files() == ["keep.py"]
    assert sum("huge.py" in r.getMessage() for r in caplog.records) == 1
    # Open documents are held to the same cap: the editor's text is never parsed.
    assert index.update_file(workspace / "huge.py", big) is False
    assert index.parse_text("huge.py", big) is None
    assert index.line_tokens("huge.py", big) == ()

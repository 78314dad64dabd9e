"""Keeps a repository index in step with the disk while the server runs.

watchdog reports changes on its own thread; they are filtered there (skipped
directories, files no grammar reads) and queued, and one worker thread applies
them in coalesced batches, so a ``git checkout`` touching a thousand files costs
one pass rather than a thousand interleaved ones.  Open documents are left
alone: the editor's text is newer than the disk's.

watchdog walks the whole tree of a recursive watch, recursively (1,100 nested
directories overflow Python's stack), so a tree deeper than ``MAX_DEPTH`` is
watched by a plan: the directories on the way to the too-deep ones alone, the
other subdirectories recursively, nothing below the bound.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from .errors import CodeLlamaLspError
from .index import RepositoryIndex
from .languages import language_for_path
from .workspace import MAX_DEPTH, WorkspaceFilter, decodable, dir_depth

log = logging.getLogger(__name__)

#: At most this many watches (watchdog runs a thread for each) for a deep tree.
MAX_WATCHES = 128
#: How long ``stop`` waits for the worker (a read of a slow disk) before leaving it.
_STOP_WAIT_S = 5.0


class WatchError(CodeLlamaLspError):
    """The workspace cannot be watched (inotify limits, a tree watchdog cannot walk)."""


#: (relative directory, recursive?) pairs to hand to watchdog.
WatchPlan = list[tuple[str, bool]]


def watch_plan(
    workspace: WorkspaceFilter, too_deep: tuple[str, ...], flat: Iterable[str] = ()
) -> WatchPlan:
    """What to watch so that no walk goes below ``MAX_DEPTH``: the root recursively,
    unless directories at the bound have subdirectories (``too_deep``) or a
    recursive watch of a directory failed (``flat``: its tree is too deep for
    watchdog, in a part the index skips, such as ``node_modules``)."""
    flat = tuple(flat)
    if not too_deep and not flat:
        return [("", True)]
    spine: set[str] = {""}
    for rel in (*too_deep, *flat):
        parts = rel.split("/")
        for depth in range(1, len(parts) + 1):
            spine.add("/".join(parts[:depth]))
    plan: WatchPlan = []
    deep = set(too_deep)
    for directory in sorted(spine, key=lambda d: (dir_depth(d) if d else -1, d)):
        plan.append((directory, False))
        if directory in deep:
            continue  # its subdirectories are below the bound
        for name in _subdirectories(workspace.root / directory if directory else workspace.root):
            rel = f"{directory}/{name}" if directory else name
            if rel not in spine and not workspace.skip_dir(rel):
                plan.append((rel, True))
    return plan


def _subdirectories(path: os.PathLike[str]) -> list[str]:
    try:
        with os.scandir(path) as scan:
            return sorted(
                e.name for e in scan if decodable(e.name) and e.is_dir(follow_symlinks=False)
            )
    except OSError:
        return []


#: Kernel events asked for: opens, reads and attribute changes never alter the index.
_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]
_GITIGNORE = ".gitignore"


@dataclass(frozen=True)
class _Change:
    """One filtered change: ``rel`` is workspace-relative."""

    rel: str
    #: "update" (read from disk), "remove", or "rescan" (a directory changed).
    action: str


_STOP = _Change("", "stop")


class _Handler(FileSystemEventHandler):
    """Runs on watchdog's thread: turn events into queued changes, cheaply."""

    def __init__(self, watcher: WorkspaceWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self._watcher._enqueue(event)
        except Exception:  # a failure here must not stop watchdog's dispatch thread
            log.exception("dropping file event %s", event)


class WorkspaceWatcher:
    """Applies disk changes under ``index.root`` to ``index`` until stopped."""

    def __init__(
        self,
        index: RepositoryIndex,
        *,
        is_open: Callable[[str], bool],
        on_change: Callable[[str], None] | None = None,
        debounce_s: float = 0.05,
    ) -> None:
        self.index = index
        self._is_open = is_open
        self._on_change = on_change
        self._debounce_s = max(0.0, debounce_s)
        # A steady stream of events must not postpone every update forever.
        self._max_batch_s = max(0.5, 10 * self._debounce_s)
        self._queue: queue.Queue[_Change] = queue.Queue()
        self._lock = threading.Lock()
        self._observer: BaseObserver | None = None
        self._worker: threading.Thread | None = None
        self._handler = _Handler(self)
        #: What is watched now, by (relative directory, recursive?).
        self._watches: dict[tuple[str, bool], ObservedWatch] = {}
        #: Directories whose recursive watch failed: watched one level at a time.
        self._flat: set[str] = set()
        self._plan_lock = threading.Lock()

    @property
    def running(self) -> bool:
        with self._lock:
            return self._worker is not None

    def start(self) -> None:
        """Begin watching; WatchError when the root cannot be watched (inotify limits,
        a tree watchdog cannot walk), with no thread of ours left running."""
        with self._lock:
            if self._worker is not None:
                return
            observer = Observer()
            observer.daemon = True
            try:
                observer.start()
                self._sync_watches(observer, strict=True)
            except Exception as exc:
                self._watches.clear()
                observer.stop()
                if observer.is_alive():
                    observer.join()
                raise WatchError(_describe(exc)) from exc
            worker = threading.Thread(target=self._run, name="index-watcher", daemon=True)
            worker.start()
            self._observer, self._worker = observer, worker
            log.info(
                "watching %s for changes%s",
                self.index.root,
                f" ({len(self._watches)} watches, nothing deeper than {MAX_DEPTH} levels)"
                if len(self._watches) > 1
                else "",
            )

    def _sync_watches(self, observer: BaseObserver, *, strict: bool = False) -> bool:
        """Make the watches match the plan for the index's last walk; whether they changed.

        A recursive watch that overflows watchdog's walk is replaced by watches
        one level down; another failing watch is logged and left out, except the
        root's with ``strict`` (nothing would be watched at all).
        """
        with self._plan_lock:
            if not strict and self._observer is not observer:
                return False  # stopped meanwhile: a watch added now would outlive it
            changed = False
            for _ in range(MAX_WATCHES):
                plan = watch_plan(self.index.workspace, self.index.too_deep, sorted(self._flat))
                if len(plan) > MAX_WATCHES:
                    self.index.workspace.reporter.once(
                        "watch cap",
                        "watching only %d of the %d directories of a tree this deep",
                        MAX_WATCHES,
                        len(plan),
                    )
                    plan = plan[:MAX_WATCHES]
                wanted = set(plan)
                for key in [k for k in self._watches if k not in wanted]:
                    observer.unschedule(self._watches.pop(key))
                    changed = True
                overflowed, added = self._schedule(observer, plan, strict=strict)
                changed = changed or added
                if overflowed is None:
                    break
                log.info("watching %s one level at a time: %s", overflowed or ".", _OVERFLOW)
                self._flat.add(overflowed)
            return changed

    def _schedule(
        self, observer: BaseObserver, plan: WatchPlan, *, strict: bool
    ) -> tuple[str | None, bool]:
        """Add the planned watches that are missing.  Returns the first directory
        whose recursive watch overflowed watchdog's walk, if any (the plan must
        change), and whether a watch was added."""
        added = False
        for rel, recursive in plan:
            if (rel, recursive) in self._watches:
                continue
            path = self.index.root / rel if rel else self.index.root
            try:
                watch = observer.schedule(
                    self._handler, str(path), recursive=recursive, event_filter=_EVENTS
                )
            except RecursionError:
                if recursive:
                    return rel, added
                raise
            except Exception as exc:  # OSError: gone meanwhile, inotify limits
                if strict and not rel:
                    raise
                log.warning("not watching %s: %s", rel, _describe(exc))
                continue
            self._watches[(rel, recursive)] = watch
            added = True
        return None, added

    def stop(self) -> None:
        """Stop watching and wait for both threads; pending changes are dropped.

        The worker gets ``_STOP_WAIT_S`` (it only ever waits on a disk read);
        shutting the server down must not hang on it.
        """
        with self._lock:
            observer, worker = self._observer, self._worker
            self._observer = self._worker = None
        if observer is not None:
            with self._plan_lock:  # not while the worker changes the watches
                observer.stop()
                self._watches.clear()
            observer.join()
        if worker is not None:
            self._queue.put(_STOP)
            worker.join(_STOP_WAIT_S)
            if worker.is_alive():
                log.warning(
                    "the index watcher did not stop within %.0f s; leaving it", _STOP_WAIT_S
                )
        # A later start() begins from an empty queue.
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break

    # -- watchdog's thread ----------------------------------------------------

    def _enqueue(self, event: FileSystemEvent) -> None:
        src = self._relevant(event.src_path, event.is_directory)
        if event.is_directory:
            if isinstance(event, DirMovedEvent):
                dest = self._relevant(event.dest_path, True)
                if src is not None or dest is not None:
                    self._queue.put(_Change(dest or src or "", "rescan"))
            elif isinstance(event, (DirCreatedEvent, DirDeletedEvent)) and src is not None:
                self._queue.put(_Change(src, "rescan"))
            return  # DirModifiedEvent: the file events say what changed
        if isinstance(event, FileMovedEvent):
            if src is not None:
                self._queue.put(_Change(src, "remove"))
            dest = self._relevant(event.dest_path, False)
            if dest is not None:
                self._queue.put(_Change(dest, "update"))
        elif isinstance(event, FileDeletedEvent):
            if src is not None:
                self._queue.put(_Change(src, "remove"))
        elif src is not None:
            self._queue.put(_Change(src, "update"))

    def _relevant(self, path: bytes | str, is_dir: bool) -> str | None:
        """Relative path of a change the index may care about, None to drop it early."""
        raw = os.fsdecode(path)
        if not raw:
            return None
        workspace = self.index.workspace
        rel = workspace.relative(raw)
        if rel is None or not decodable(rel):
            return None
        if dir_depth(rel) >= MAX_DEPTH + (0 if is_dir else 1):
            return None  # below the bound: never indexed
        parts = rel.split("/")
        name = parts[-1]
        if not is_dir and name == _GITIGNORE:
            # Now, not when the worker gets to it: the events queued after this
            # one are filtered with the new rules.
            workspace.invalidate("/".join(parts[:-1]))
        elif not is_dir and language_for_path(name) is None:
            return None
        for depth in range(1, len(parts) + (1 if is_dir else 0)):
            if workspace.skip_dir("/".join(parts[:depth])):
                return None
        return rel

    # -- the worker thread ----------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stopping = self._collect(first)
            try:
                self._apply(batch)
            except Exception:
                log.exception("applying file changes to the index failed")
            if stopping:
                return

    def _collect(self, first: _Change) -> tuple[_Batch, bool]:
        """Changes until the disk is quiet for ``debounce_s``: the last action per path wins."""
        batch = _Batch()
        change = first
        deadline = time.monotonic() + self._max_batch_s
        while True:
            batch.add(change)
            timeout = min(self._debounce_s, deadline - time.monotonic())
            if timeout <= 0:
                return batch, False
            try:
                change = self._queue.get(timeout=timeout)
            except queue.Empty:
                return batch, False
            if change is _STOP:
                return batch, True

    def _apply(self, batch: _Batch) -> None:
        index = self.index
        if batch.rescans:
            # The walk skips unchanged files by size and mtime, and finds the
            # files under a created or moved-in directory that had no event.
            if self._safely(next(iter(batch.rescans)), index.rescan):
                # The tree may have grown past the bound, or a directory appeared
                # beside a deep one: watch by the new plan, and walk again for
                # what arrived before its watch did.
                if self._replan():
                    self._safely(next(iter(batch.rescans)), index.rescan)
                for rel in [*batch.rescans, *batch.files]:
                    self._changed(rel)
            return
        for rel, action in batch.files.items():
            if self._is_open(str(index.root / rel)):
                # The server re-reads the disk when the document closes.
                log.debug("%s changed on disk while open: the editor's text stays", rel)
                continue
            if action == "remove" and rel.rsplit("/", 1)[-1] != _GITIGNORE:
                applied = self._safely(rel, index.remove_file, rel)
            else:
                # A deleted .gitignore goes here too: update_file rescans for it.
                applied = self._safely(rel, index.update_file, rel)
                if rel.rsplit("/", 1)[-1] == _GITIGNORE and self._replan():
                    self._safely(rel, index.rescan)  # what the new rules let in
            if applied:
                self._changed(rel)

    def _replan(self) -> bool:
        with self._lock:
            observer = self._observer
        if observer is None:
            return False
        try:
            return self._sync_watches(observer)
        except Exception:
            log.exception("updating the watched directories failed")
            return False

    def _safely(self, rel: str, action: Callable[..., object], *args: str) -> bool:
        """Run one index update; a failure is logged, never raised out of the thread."""
        try:
            action(*args)
        except Exception:
            log.exception("re-indexing %s failed", rel or ".")
            return False
        return True

    def _changed(self, rel: str) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(rel)
        except Exception:
            log.exception("on_change callback failed for %s", rel or ".")


_OVERFLOW = "its directories are nested too deep for watchdog's walk"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return _OVERFLOW
    return str(exc) or type(exc).__name__


class _Batch:
    """Coalesced changes: directories to rescan, and the latest action per file."""

    def __init__(self) -> None:
        self.rescans: dict[str, None] = {}
        self.files: dict[str, str] = {}

    def add(self, change: _Change) -> None:
        if change.action == "rescan":
            self.rescans[change.rel] = None
            return
        self.files.pop(change.rel, None)  # ordered by each path's latest change
        self.files[change.rel] = change.action

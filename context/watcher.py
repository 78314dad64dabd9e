"""Keeps a repository index in step with the disk while the server runs.

watchdog reports changes on its own thread; they are filtered there (skipped
directories, files no grammar reads) and queued, and one worker thread applies
them in coalesced batches, so a ``git checkout`` touching a thousand files costs
one pass rather than a thousand interleaved ones.  Open documents are left
alone: the editor's text is newer than the disk's.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
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
from watchdog.observers.api import BaseObserver

from .index import RepositoryIndex
from .languages import language_for_path

log = logging.getLogger(__name__)

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

    @property
    def running(self) -> bool:
        with self._lock:
            return self._worker is not None

    def start(self) -> None:
        """Begin watching; OSError when the platform refuses (inotify limits, for one)."""
        with self._lock:
            if self._worker is not None:
                return
            observer = Observer()
            observer.schedule(
                _Handler(self), str(self.index.root), recursive=True, event_filter=_EVENTS
            )
            observer.daemon = True
            observer.start()  # raises before any thread of ours exists
            worker = threading.Thread(target=self._run, name="index-watcher", daemon=True)
            worker.start()
            self._observer, self._worker = observer, worker
            log.info("watching %s for changes", self.index.root)

    def stop(self) -> None:
        """Stop watching and wait for both threads; pending changes are dropped."""
        with self._lock:
            observer, worker = self._observer, self._worker
            self._observer = self._worker = None
        if observer is not None:
            observer.stop()
            observer.join()
        if worker is not None:
            self._queue.put(_STOP)
            worker.join()
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
        if rel is None:
            return None
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
            if applied:
                self._changed(rel)

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

"""The repository index behind workspace context: built off the loop, then kept current.

The first build reports ``$/progress`` (when the client accepts it) and
``codellama/status``; completions meanwhile go out without repository context
rather than waiting.  Afterwards watchdog applies disk changes, and open
documents are re-indexed from the editor's text, which wins over the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.uris import to_fs_path

from codellama_lsp.context.documents import Document, DocumentStore
from codellama_lsp.context.edits import EditHistory, RecentEdit, union_span
from codellama_lsp.context.errors import CodeLlamaLspError
from codellama_lsp.context.index import RepositoryIndex, index_stats
from codellama_lsp.context.watcher import WatchError, WorkspaceWatcher
from codellama_lsp.context.workspace import WorkspaceOptions

from .progress import Progress, send_status
from .worker import run_off_loop

if TYPE_CHECKING:
    from .app import CodeLlamaServer

log = logging.getLogger(__name__)

#: Typing pauses this long before an open document is re-indexed.
UPDATE_DELAY_S = 0.5
RECENT_LIMIT = 20


def uri_path(uri: str) -> str | None:
    """Filesystem path of a ``file:`` URI, None for other schemes (untitled:, etc.)."""
    if not uri.startswith("file:"):
        return None
    path = to_fs_path(uri)
    return str(Path(path).resolve()) if path else None


class WorkspaceContext:
    """The index of the workspace root, its watcher, and the recently used documents.

    The index is published only once its first build is done; open documents
    are indexed from the editor's text, closed ones from the disk again.
    """

    def __init__(self, ls: CodeLlamaServer) -> None:
        self._ls = ls
        self.index: RepositoryIndex | None = None
        self._options: WorkspaceOptions | None = None
        self._watcher: WorkspaceWatcher | None = None
        self._open_paths: set[str] = set()
        #: Most recently used documents last; their text feeds neighbour snippets.
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._updates: dict[str, asyncio.TimerHandle] = {}
        #: Hunks the user changed recently, offered as context elsewhere.
        self.edits = EditHistory()
        #: Counts ensure() and stop(): a build that finishes after either is dropped.
        self._generation = 0

    @property
    def root(self) -> Path | None:
        """The workspace folder (excluded-file patterns are relative to it)."""
        return self.index.root if self.index is not None else workspace_root(self._ls)

    @staticmethod
    def path_of(uri: str) -> str | None:
        return uri_path(uri)

    def recent_files(self, current: str, documents: DocumentStore) -> list[tuple[str, str]]:
        """(path, text) of the other open documents, most recently used first."""
        found: list[tuple[str, str]] = []
        for uri in reversed(self._recent):
            doc = documents.get(uri)
            path = uri_path(uri)
            if uri != current and doc is not None and path is not None:
                found.append((path, doc.text))
        return found

    def edited(
        self, uri: str, before: str, document: Document, spans: list[tuple[int, int, int]]
    ) -> None:
        """Record a change as a recent-edit hunk (files on disk only; the index's
        policy decides at use time whether a file may be shown)."""
        path = uri_path(uri)
        span = union_span(spans)
        if path is None or span is None or self._ls.settings.context.recent_edits <= 0:
            return
        self.edits.record(
            uri, path, before, document.text, span, time.monotonic(), document.line_of
        )

    def recent_edits(self, uri: str, line: int) -> tuple[RecentEdit, ...]:
        """The hunks to offer at ``line`` of ``uri``: none without an index."""
        index, settings = self.index, self._ls.settings.context
        if index is None or settings.recent_edits <= 0:
            return ()
        return self.edits.recent(
            uri,
            line,
            now=time.monotonic(),
            limit=settings.recent_edits,
            max_age_s=settings.recent_edits_minutes * 60,
            allowed=index.is_allowed,
        )

    # -- building -----------------------------------------------------------------

    async def ensure(self) -> None:
        """Build (or rebuild, when its settings changed) the index of the workspace root."""
        root = workspace_root(self._ls)
        options = _options(self._ls)
        if root is None or options is None:
            if self.index is not None:
                log.info("workspace context off")
            self.stop()
            return
        if self.index is not None and self._options == options and self.index.root == root:
            return
        self.stop()
        self._options = options
        self._generation += 1
        generation = self._generation
        built = await self._build(root, options)
        if built is None:
            return
        index, progress, summary = built
        if self._generation != generation:  # stopped or rebuilt meanwhile
            progress.end("superseded")
            return
        self.index = index
        # "indexed" once changes are watched: whoever waits for it sees every later one.
        watcher = await self._watch(index, root)
        progress.end(summary)
        send_status(self._ls, "indexed", summary)
        if self._generation != generation:
            if watcher is not None:
                watcher.stop()
            return
        self._watcher = watcher

    async def _watch(self, index: RepositoryIndex, root: Path) -> WorkspaceWatcher | None:
        """A started watcher, or None (logged in one line) when the tree cannot be watched."""
        watcher = WorkspaceWatcher(index, is_open=self._open_paths.__contains__)
        try:
            # Off the loop: watchdog walks the tree to add its watches.
            await run_off_loop(watcher.start, name="index-watch")
        except (WatchError, OSError) as exc:  # inotify limits, a tree too deep for watchdog
            log.warning("not watching %s for changes: %s", root, exc)
            return None
        return watcher

    async def _build(
        self, root: Path, options: WorkspaceOptions
    ) -> tuple[RepositoryIndex, Progress, str] | None:
        """The first build, off the loop; its progress (still open) and summary, or None
        when it failed (the progress ended, the user told) or went stale."""
        progress = await Progress.begin(self._ls, "Code Llama: indexing", root.name)
        send_status(self._ls, "indexing", f"indexing {root}")
        started = time.perf_counter()
        try:
            index = await run_off_loop(
                lambda: RepositoryIndex.build(
                    root, options, lambda files: progress.report(f"{files} files")
                ),
                name="index",
            )
            if self._options != options:  # settings changed while building
                progress.end("superseded")
                return None
            # Open documents: the editor's text, not the disk's.
            documents = self._ls.documents
            opened = [
                (path, doc.text)
                for uri in documents.uris()
                if (doc := documents.get(uri)) is not None and (path := uri_path(uri)) is not None
            ]
            await run_off_loop(
                lambda: [index.update_file(p, t) for p, t in opened], name="index-open"
            )
        except Exception as exc:  # whatever it was, the progress ends and the user is told
            expected = isinstance(exc, (CodeLlamaLspError, OSError))
            if not expected:
                log.debug("indexing %s failed", root, exc_info=True)
            reason = str(exc) if expected else f"{type(exc).__name__}: {exc}"
            self._options = None
            self._ls.notify(
                f"codellama-lsp could not index {root}: {reason}", types.MessageType.Error
            )
            progress.end(f"failed: {reason}")
            return None
        stats = index_stats(index)
        summary = (
            f"{stats.files} files, {stats.definitions} definitions in "
            f"{time.perf_counter() - started:.1f} s"
        )
        log.info("indexed %s: %s", root, summary)
        return index, progress, summary

    def stop(self) -> None:
        self._generation += 1
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        for handle in self._updates.values():
            handle.cancel()
        self._updates.clear()
        self.index = None
        self._options = None

    # -- documents ----------------------------------------------------------------

    def _touch(self, uri: str) -> None:
        """Mark a document as most recently used (it feeds neighbour snippets)."""
        self._recent.pop(uri, None)
        self._recent[uri] = None
        while len(self._recent) > RECENT_LIMIT:
            self._recent.popitem(last=False)

    def opened(self, uri: str) -> None:
        self._touch(uri)
        self.edits.forget(uri)  # the old hunks' line numbers no longer hold
        path = uri_path(uri)
        if path is not None:
            self._open_paths.add(path)
        self._schedule_update(uri, delay=0.0)

    def changed(self, uri: str) -> None:
        self._touch(uri)
        self._schedule_update(uri)

    def closed(self, uri: str) -> None:
        self._recent.pop(uri, None)
        path = uri_path(uri)
        if path is None:
            return
        self._open_paths.discard(path)
        handle = self._updates.pop(uri, None)
        if handle is not None:
            handle.cancel()
        index = self.index
        if index is not None:
            # The disk is the truth again (the user may have closed without saving).
            future = run_off_loop(lambda: index.update_file(path), name="index-close")
            future.add_done_callback(_log_failure)

    def _schedule_update(self, uri: str, delay: float = UPDATE_DELAY_S) -> None:
        """Re-index an open document after typing pauses, off the loop."""
        if self.index is None or uri_path(uri) is None:
            return
        previous = self._updates.pop(uri, None)
        if previous is not None:
            previous.cancel()
        loop = asyncio.get_running_loop()
        self._updates[uri] = loop.call_later(delay, self._update_now, uri)

    def _update_now(self, uri: str) -> None:
        self._updates.pop(uri, None)
        index, doc, path = self.index, self._ls.documents.get(uri), uri_path(uri)
        if index is None or doc is None or path is None:
            return
        text = doc.text
        future = run_off_loop(lambda: index.update_file(path, text), name="index-update")
        future.add_done_callback(_log_failure)


def workspace_root(ls: CodeLlamaServer) -> Path | None:
    root = ls.workspace.root_path
    if not root:
        folders = list(ls.workspace.folders.values())
        root = to_fs_path(folders[0].uri) if folders else None
    if not root or not Path(root).is_dir():
        return None
    return Path(root).resolve()


def _options(ls: CodeLlamaServer) -> WorkspaceOptions | None:
    c = ls.settings.context
    if not c.enable or c.max_tokens == 0:
        return None
    return WorkspaceOptions(exclude=c.exclude, max_file_bytes=c.max_file_bytes)


def _log_failure(future: asyncio.Future[bool]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        exc = future.exception()
        if exc is not None:
            log.warning("re-indexing an open document failed: %s", exc)

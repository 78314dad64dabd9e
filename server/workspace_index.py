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
from pathlib import Path

from lsprotocol import types
from pygls.uris import to_fs_path

from codellama_lsp.context.errors import CodeLlamaLspError
from codellama_lsp.context.index import RepositoryIndex, index_stats
from codellama_lsp.context.watcher import WorkspaceWatcher
from codellama_lsp.context.workspace import WorkspaceOptions

from .app import CodeLlamaServer
from .model import send_status
from .worker import run_off_loop

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


def workspace_root(ls: CodeLlamaServer) -> Path | None:
    root = ls.workspace.root_path
    if not root:
        folders = list(ls.workspace.folders.values())
        root = to_fs_path(folders[0].uri) if folders else None
    if not root or not Path(root).is_dir():
        return None
    return Path(root).resolve()


def _options(ls: CodeLlamaServer) -> WorkspaceOptions | None:
    s = ls.settings
    if not s.context_enable or s.context_max_tokens == 0:
        return None
    return WorkspaceOptions(exclude=s.context_exclude, max_file_bytes=s.context_max_file_bytes)


def stop_index(ls: CodeLlamaServer) -> None:
    if ls.watcher is not None:
        ls.watcher.stop()
        ls.watcher = None
    for handle in ls.index_updates.values():
        handle.cancel()
    ls.index_updates.clear()
    ls.index = None
    ls.index_options = None


async def ensure_index(ls: CodeLlamaServer) -> None:
    """Build (or rebuild, when its settings changed) the index of the workspace root."""
    root = workspace_root(ls)
    options = _options(ls)
    if root is None or options is None:
        if ls.index is not None:
            log.info("workspace context off")
        stop_index(ls)
        return
    if ls.index is not None and ls.index_options == options and ls.index.root == root:
        return
    stop_index(ls)
    ls.index_options = options
    loop = asyncio.get_running_loop()
    progress = await _begin_progress(ls, root)
    send_status(ls, "indexing", f"indexing {root}")

    def report(files: int) -> None:
        if progress is not None:
            loop.call_soon_threadsafe(
                ls.work_done_progress.report,
                progress,
                types.WorkDoneProgressReport(message=f"{files} files"),
            )

    started = time.perf_counter()
    building = run_off_loop(lambda: RepositoryIndex.build(root, options, report), name="index")
    ls.index_building = building
    try:
        index = await building
    except (CodeLlamaLspError, OSError) as exc:
        ls.index_options = None
        ls.notify(f"codellama-lsp could not index {root}: {exc}", types.MessageType.Error)
        _end_progress(ls, progress, f"failed: {exc}")
        return
    finally:
        if ls.index_building is building:
            ls.index_building = None
    if ls.index_options != options:  # settings changed while building
        _end_progress(ls, progress, "superseded")
        return
    # Open documents: the editor's text, not the disk's.
    opened = [
        (path, doc.text)
        for uri in ls.documents.uris()
        if (doc := ls.documents.get(uri)) is not None and (path := uri_path(uri)) is not None
    ]
    await run_off_loop(lambda: [index.update_file(p, t) for p, t in opened], name="index-open")
    ls.index = index
    watcher = WorkspaceWatcher(index, is_open=ls.open_paths.__contains__)
    try:
        watcher.start()
        ls.watcher = watcher
    except OSError as exc:  # inotify limits, for one
        log.warning("not watching %s for changes: %s", root, exc)
    stats = index_stats(index)
    summary = (
        f"{stats.files} files, {stats.definitions} definitions in "
        f"{time.perf_counter() - started:.1f} s"
    )
    log.info("indexed %s: %s", root, summary)
    _end_progress(ls, progress, summary)
    send_status(ls, "indexed", summary)


async def _begin_progress(ls: CodeLlamaServer, root: Path) -> str | None:
    capabilities = ls.client_capabilities.window
    if capabilities is None or not capabilities.work_done_progress:
        return None
    token = f"codellama-index-{ls.next_request_number()}"
    try:
        await asyncio.wait_for(ls.work_done_progress.create_async(token), 5)
    except Exception as exc:  # the client refused or never answered: index anyway
        log.info("no progress for indexing: %s", exc)
        return None
    ls.work_done_progress.begin(
        token,
        types.WorkDoneProgressBegin(title="Code Llama: indexing", message=root.name),
    )
    return token


def _end_progress(ls: CodeLlamaServer, token: str | None, message: str) -> None:
    if token is not None:
        ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))


def touch(ls: CodeLlamaServer, uri: str) -> None:
    """Mark a document as most recently used (it feeds neighbour snippets)."""
    ls.recent.pop(uri, None)
    ls.recent[uri] = None
    while len(ls.recent) > RECENT_LIMIT:
        ls.recent.popitem(last=False)


def document_opened(ls: CodeLlamaServer, uri: str) -> None:
    touch(ls, uri)
    path = uri_path(uri)
    if path is not None:
        ls.open_paths.add(path)
    schedule_update(ls, uri, delay=0.0)


def document_changed(ls: CodeLlamaServer, uri: str) -> None:
    touch(ls, uri)
    schedule_update(ls, uri)


def document_closed(ls: CodeLlamaServer, uri: str) -> None:
    ls.recent.pop(uri, None)
    path = uri_path(uri)
    if path is None:
        return
    ls.open_paths.discard(path)
    handle = ls.index_updates.pop(uri, None)
    if handle is not None:
        handle.cancel()
    index = ls.index
    if index is not None:
        # The disk is the truth again (the user may have closed without saving).
        future = run_off_loop(lambda: index.update_file(path), name="index-close")
        future.add_done_callback(_log_failure)


def schedule_update(ls: CodeLlamaServer, uri: str, delay: float = UPDATE_DELAY_S) -> None:
    """Re-index an open document after typing pauses, off the loop."""
    if ls.index is None or uri_path(uri) is None:
        return
    previous = ls.index_updates.pop(uri, None)
    if previous is not None:
        previous.cancel()
    loop = asyncio.get_running_loop()
    ls.index_updates[uri] = loop.call_later(delay, _update_now, ls, uri)


def _update_now(ls: CodeLlamaServer, uri: str) -> None:
    ls.index_updates.pop(uri, None)
    index, doc, path = ls.index, ls.documents.get(uri), uri_path(uri)
    if index is None or doc is None or path is None:
        return
    text = doc.text
    future = run_off_loop(lambda: index.update_file(path, text), name="index-update")
    future.add_done_callback(_log_failure)


def _log_failure(future: asyncio.Future[bool]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        exc = future.exception()
        if exc is not None:
            log.warning("re-indexing an open document failed: %s", exc)


def recent_files(ls: CodeLlamaServer, current: str) -> list[tuple[str, str]]:
    """(path, text) of the other open documents, most recently used first."""
    found: list[tuple[str, str]] = []
    for uri in reversed(ls.recent):
        doc = ls.documents.get(uri)
        path = uri_path(uri)
        if uri != current and doc is not None and path is not None:
            found.append((path, doc.text))
    return found

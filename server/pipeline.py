"""The LSP side of one completion: check the request, wait where needed, run the core pipeline.

    to_input → reuse → debounce → backend ready → run_model (off the loop) → answer

The stages themselves live in :mod:`codellama_lsp.core.pipeline`, shared with
the command line; this module only translates LSP positions and errors and
does the waiting that needs the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from codellama_lsp.context.documents import Position
from codellama_lsp.context.errors import PositionOutOfRangeError
from codellama_lsp.context.workspace import blocks_completion
from codellama_lsp.core.pipeline import (
    EXCLUDED_MESSAGE,
    Answer,
    CompletionInput,
    prefetch,
    reuse,
    run_model,
    should_complete,
    warm,
)
from codellama_lsp.core.state import InFlight
from codellama_lsp.quant.backend import Backend
from codellama_lsp.quant.errors import BackendUnavailable, ModelError

from .app import CodeLlamaServer

log = logging.getLogger(__name__)


class JsonRpcRequestFailed(JsonRpcException):
    """LSP's RequestFailed: the request was valid but could not be served."""

    CODE = types.LSPErrorCodes.RequestFailed.value


@dataclass(frozen=True)
class Suggestion:
    """What to show at ``position``: one or more candidate texts, best first."""

    texts: tuple[str, ...]
    position: types.Position
    #: Where the text it replaces ends (the editor's selected popup item), else None.
    replaces_to: types.Position | None = None
    #: How the answer was found (``model``, ``typed_through``, ``cache``, ``prefetch``).
    source: str = "model"
    #: From the request's arrival to the answer, milliseconds.
    latency_ms: float = 0.0

    @property
    def text(self) -> str:
        return self.texts[0]


async def suggest(
    ls: CodeLlamaServer,
    method: str,
    uri: str,
    position: types.Position,
    *,
    invoked: bool = False,
    selected: types.SelectedCompletionInfo | None = None,
) -> Suggestion | None:
    """The model's suggestion at ``position``, or None when there is none to show.

    ``invoked``: the user asked explicitly (a key binding, not typing), so the
    answer is built from a fresh prompt, not from the suggestion on screen.
    ``selected``: the item selected in the editor's completion popup; the
    suggestion then continues the text as if it were accepted, and starts with it.
    """
    started = time.perf_counter()
    request_id = ls.protocol.msg_id
    doc, cursor = to_input(ls, uri, position, invoked)
    replaced: tuple[Position, Position] | None = None
    if selected is not None and ls.settings.completion.follow_popup:
        doc, replaced = with_selected(ls, doc, selected)
    if not ls.settings.enable:
        return None
    # A newer request for the same document supersedes older work at once, even
    # one that is answered without the model.
    mine = ls.completions.begin(uri, request_id)
    try:
        answer = await _answer(ls, method, doc, mine, started)
    finally:
        ls.completions.end(uri, mine)
    if answer is None:
        return None
    log.info("%s id=%s %s", method, request_id, answer.log_fields())
    if answer.suggestion is None or mine.cancel.is_set():
        return None
    if replaced is None:
        # Selected popup items are left out: the ghost text then replaces a range.
        prefetch_ahead(ls, doc, answer.suggestion)
    texts = answer.suggestions
    if replaced is not None:
        # A candidate of only blanks adds nothing: the popup already shows the item alone.
        assert selected is not None
        texts = tuple(selected.text + text for text in texts if text.strip())
        if not texts:
            return None
        start, end = replaced
        return Suggestion(
            texts,
            types.Position(start.line, start.character),
            types.Position(end.line, end.character),
            answer.source,
            answer.total_ms,
        )
    return Suggestion(
        texts, types.Position(cursor.line, cursor.character), None, answer.source, answer.total_ms
    )


def with_selected(
    ls: CodeLlamaServer, doc: CompletionInput, selected: types.SelectedCompletionInfo
) -> tuple[CompletionInput, tuple[Position, Position]]:
    """The input as if the popup's selected item were inserted (Tabby folds it into the
    prefix): the model continues after it, so the ghost text extends what is selected."""
    document = ls.documents.get(doc.key)
    assert document is not None  # to_input checked it
    try:
        start = document.offset_at(
            Position(selected.range.start.line, selected.range.start.character)
        )
        end = document.offset_at(Position(selected.range.end.line, selected.range.end.character))
    except PositionOutOfRangeError as exc:
        raise JsonRpcInvalidParams(f"selectedCompletionInfo: {exc}") from exc
    if not start <= end or not start <= doc.offset:
        raise JsonRpcInvalidParams(
            "selectedCompletionInfo: its range must start at or before the cursor and not end "
            "before it starts"
        )
    text = doc.text[:start] + selected.text + doc.text[end:]
    folded = replace(doc, text=text, offset=start + len(selected.text), invoked=True)
    return folded, (document.position_at(start), document.position_at(end))


def to_input(
    ls: CodeLlamaServer, uri: str, position: types.Position, invoked: bool
) -> tuple[CompletionInput, Position]:
    """The request as the core pipeline takes it; bad requests get their LSP error."""
    doc = ls.documents.get(uri)
    if doc is None:
        raise JsonRpcInvalidParams(f"{uri} is not open: send textDocument/didOpen first")
    if ls.documents.is_out_of_sync(uri):
        raise JsonRpcRequestFailed(
            f"{uri} is out of sync after a rejected edit; reopen it or send its full text"
        )
    try:
        offset = doc.offset_at(Position(position.line, position.character))
    except PositionOutOfRangeError as exc:
        raise JsonRpcInvalidParams(str(exc)) from exc
    cursor = doc.position_at(offset)  # a column past the line end clamps to it
    context = ls.workspace_context
    path = context.path_of(uri)
    settings = ls.settings.context
    found = CompletionInput(
        key=uri,
        text=doc.text,  # the text the offset belongs to, whatever arrives while we wait
        offset=offset,
        language=doc.language_id,
        path=path,
        index=context.index,
        recent=context.recent_files(uri, ls.documents) if context.index is not None else (),
        invoked=invoked,
        cursor=(cursor.line, cursor.character),
        excluded=path is not None
        and blocks_completion(path, context.root, settings.exclude, settings.complete_excluded),
        edits=context.recent_edits(uri, cursor.line),
    )
    return found, cursor


async def _answer(
    ls: CodeLlamaServer, method: str, doc: CompletionInput, mine: InFlight, started: float
) -> Answer | None:
    skipped = should_complete(doc, started)
    if skipped is not None:
        ls.completions.count(skipped.source)
        log.info("%s id=%s %s: %s", method, mine.request_id, doc.key, EXCLUDED_MESSAGE)
        return skipped
    answer = reuse(doc, ls.completions, started)
    if answer is not None:
        return answer
    if not await _debounce(ls, method, mine):
        return None
    backend = await ls.backends.ready(f"{method} id={mine.request_id}")
    if backend is None:
        return None
    return await _run_model(ls, method, doc, backend, mine, started)


async def _debounce(ls: CodeLlamaServer, method: str, mine: InFlight) -> bool:
    """Wait out a typing burst; False when a newer keystroke took over meanwhile."""
    delay = ls.settings.completion.debounce_ms
    if delay <= 0:
        return True
    await asyncio.sleep(delay / 1000)
    if not mine.cancel.is_set():
        return True
    ls.completions.count("superseded")
    log.info("%s id=%s superseded while debouncing", method, mine.request_id)
    return False


async def _run_model(
    ls: CodeLlamaServer,
    method: str,
    doc: CompletionInput,
    backend: Backend,
    mine: InFlight,
    started: float,
) -> Answer | None:
    """The blocking stages on a worker thread; backend outages become one message."""
    settings, state = ls.settings, ls.completions
    try:
        answer = await ls.model_work.run(
            lambda: run_model(doc, settings, backend, state, mine.cancel, started)
        )
    except asyncio.CancelledError:
        mine.cancel.set()  # $/cancelRequest: stop the worker between tokens
        log.info("%s id=%s cancelled by the client", method, mine.request_id)
        raise
    except BackendUnavailable as exc:
        ls.backends.failed(backend, str(exc))
        log.info("%s id=%s backend failed: %s", method, mine.request_id, exc)
        return None
    except ModelError as exc:
        raise JsonRpcRequestFailed(str(exc)) from exc
    if answer.result is not None and answer.result.answered:
        # Superseded before the server said anything: not a sign that it is back.
        ls.backends.succeeded(backend)
    return answer


#: Warming starts after the user has been idle this long (seconds).
WARM_IDLE_S = 0.3


def warm_ahead(ls: CodeLlamaServer, uri: str, position: types.Position) -> None:
    """Evaluate ``uri``'s prompt at ``position`` in the background, if the user stays idle.

    A real request (for any document) stops it within one batch; so does a
    newer warming.  Nothing is shown and nothing is counted as an answer.
    """
    if not ls.settings.enable or not ls.settings.completion.warm_ahead:
        return
    mine = ls.completions.begin_warming(uri)
    if mine is None:
        return
    _in_background(_warm(ls, uri, position, mine))


_WARMING: set[asyncio.Future[None]] = set()


def _in_background(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` as a task that is kept referenced until it is done."""
    task = asyncio.ensure_future(work)
    _WARMING.add(task)
    task.add_done_callback(_WARMING.discard)


def prefetch_ahead(ls: CodeLlamaServer, doc: CompletionInput, shown: str) -> None:
    """Compute, in the background, the suggestion after ``shown`` as if it were accepted.

    It runs in the warming slot (only when no request runs; the next request
    of any document stops it within one batch or token), so the request that
    follows an accept is answered from it (``source=prefetch``).  The first
    line of a multi-line suggestion (accept-line) needs nothing computed: the
    rest of the suggestion on screen answers it (``typed_through``).
    """
    if not ls.settings.completion.prefetch or doc.excluded:
        return
    mine = ls.completions.begin_warming(doc.key)
    if mine is None:
        return
    _in_background(_prefetch(ls, doc, shown, mine))


async def _prefetch(ls: CodeLlamaServer, doc: CompletionInput, shown: str, mine: InFlight) -> None:
    state = ls.completions
    try:
        backend = await ls.backends.ready(f"prefetch {doc.key}")
        if backend is None or mine.cancel.is_set():
            return
        settings = ls.settings
        started = time.perf_counter()
        found = await ls.model_work.run(
            lambda: prefetch(doc, shown, settings, backend, state, mine.cancel)
        )
        log.info(
            "prefetch %s after accepting %d chars: %s total_ms=%.1f",
            doc.key,
            len(shown),
            f"{len(found.suggestions)} suggestion(s) ready"
            if found is not None
            else "stopped (a request came)"
            if mine.cancel.is_set()
            else "already computed",
            (time.perf_counter() - started) * 1000,
        )
    except (BackendUnavailable, ModelError) as exc:
        log.info("prefetch %s failed: %s", doc.key, exc)
    finally:
        state.end_warming(mine)


async def _warm(ls: CodeLlamaServer, uri: str, position: types.Position, mine: InFlight) -> None:
    state = ls.completions
    try:
        await asyncio.sleep(WARM_IDLE_S)
        if mine.cancel.is_set():
            return
        backend = await ls.backends.ready(f"warm {uri}")
        if backend is None or mine.cancel.is_set():
            return
        try:
            doc, _ = to_input(ls, uri, position, invoked=False)
        except JsonRpcException:
            return  # closed or out of sync meanwhile
        if doc.excluded:
            return
        settings = ls.settings
        started = time.perf_counter()
        result = await ls.model_work.run(lambda: warm(doc, settings, backend, state, mine.cancel))
        log.info(
            "warm %s line=%d prompt_tokens=%d reused_tokens=%d evaluated_tokens=%d total_ms=%.1f%s",
            uri,
            position.line,
            result.prompt_tokens,
            result.reused_tokens,
            result.evaluated_tokens,
            (time.perf_counter() - started) * 1000,
            " (stopped: a request came)" if mine.cancel.is_set() else "",
        )
    except (BackendUnavailable, ModelError) as exc:
        log.info("warm %s failed: %s", uri, exc)
    finally:
        state.end_warming(mine)

"""should_complete -> build_prompt -> request_completion, shared by both completion features."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from codellama_lsp.context.assemble import PromptParts, assemble, auto_context_budget
from codellama_lsp.context.documents import Position
from codellama_lsp.context.errors import PositionOutOfRangeError
from codellama_lsp.context.postprocess import StopChecker, decide_policy, finalize
from codellama_lsp.context.reuse import ShownSuggestion, typed_through
from codellama_lsp.quant.engine import CompletionRequest, CompletionResult
from codellama_lsp.quant.errors import ModelError
from codellama_lsp.quant.remote import BackendUnavailable, RemoteEngine

from .app import CodeLlamaServer, InFlight, LastPrompt
from .model import backend_failed, backend_succeeded
from .worker import run_off_loop
from .workspace_index import recent_files, uri_path

log = logging.getLogger(__name__)


class JsonRpcRequestFailed(JsonRpcException):
    """LSP's RequestFailed: the request was valid but could not be served."""

    CODE = -32803


@dataclass(frozen=True)
class Suggestion:
    text: str
    position: types.Position


async def suggest(
    ls: CodeLlamaServer,
    method: str,
    uri: str,
    position: types.Position,
    *,
    invoked: bool = False,
) -> Suggestion | None:
    """The model's suggestion at ``position``, or None when there is none to show.

    ``invoked``: the user asked explicitly (a key binding, not typing), so the
    answer is built from a fresh prompt, not from the suggestion on screen.
    """
    started = time.perf_counter()
    request_id = ls.protocol.msg_id
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
    text = doc.text  # the text the offset belongs to, whatever arrives while we wait
    if not ls.settings.enable:
        return None

    # A newer request for the same document supersedes older work at once, even
    # one that is answered without the model.
    previous = ls.in_flight.get(uri)
    if previous is not None:
        previous.cancel.set()
    mine = InFlight(request_id)
    ls.in_flight[uri] = mine
    try:
        return await _answer(
            ls, method, uri, doc.language_id, text, offset, cursor, mine, started, invoked
        )
    finally:
        if ls.in_flight.get(uri) is mine:
            del ls.in_flight[uri]


def _count(ls: CodeLlamaServer, source: str) -> None:
    ls.answer_counts[source] = ls.answer_counts.get(source, 0) + 1


async def _answer(
    ls: CodeLlamaServer,
    method: str,
    uri: str,
    language: str,
    text: str,
    offset: int,
    cursor: Position,
    mine: InFlight,
    started: float,
    invoked: bool,
) -> Suggestion | None:
    request_id = mine.request_id
    position = types.Position(cursor.line, cursor.character)
    remainder = None if invoked else typed_through(ls.shown.get(uri), text, offset)
    if remainder is not None:
        ls.shown[uri] = ShownSuggestion(text, offset, remainder)
        _count(ls, "typed_through")
        log.info(
            "%s id=%s source=typed_through total_ms=%.2f",
            method,
            request_id,
            (time.perf_counter() - started) * 1000,
        )
        return Suggestion(remainder, position)
    ls.shown.pop(uri, None)

    settings = ls.settings
    if settings.debounce_ms > 0:
        await asyncio.sleep(settings.debounce_ms / 1000)
        if mine.cancel.is_set():
            _count(ls, "superseded")
            log.info("%s id=%s superseded while debouncing", method, request_id)
            return None
    if ls.engine is None and ls.engine_loading is not None:
        # The first keystrokes after start wait for the model instead of
        # getting nothing; a cancel from the client ends the wait.
        with contextlib.suppress(Exception):
            await asyncio.shield(ls.engine_loading)
    engine = ls.engine
    if engine is None:
        log.info("%s id=%s: no model loaded (%s)", method, request_id, ls.engine_error or "none")
        return None

    if isinstance(engine, RemoteEngine) and not engine.health.ready():
        log.info(
            "%s id=%s: backend down, next try later (%s)",
            method,
            request_id,
            engine.health.last_error,
        )
        return None

    max_tokens = ls.effective_max_tokens()
    index = ls.index if settings.context_enable else None
    context_tokens = settings.context_max_tokens
    if context_tokens < 0:
        context_tokens = auto_context_budget(
            engine.config.n_ctx,
            max_tokens,
            min(settings.max_prefix_chars, offset),
            min(settings.max_suffix_chars, len(text) - offset),
        )
    if index is None:
        context_tokens = 0
    path = uri_path(uri)
    recent = recent_files(ls, uri) if index is not None else []
    previous_parts = ls.prompt_parts.get(uri)
    cache = ls.suggestion_cache

    count_tokens = engine.count_tokens

    def work() -> _Work:
        # Retrieval and packing run here, off the loop, like the model call.
        build_started = time.perf_counter()
        parts = assemble(
            text,
            offset,
            max_prefix_chars=settings.max_prefix_chars,
            max_suffix_chars=settings.max_suffix_chars,
            path=path,
            index=index,
            recent=recent,
            context_tokens=context_tokens,
            count_tokens=count_tokens,
            previous=previous_parts,
        )
        request = CompletionRequest(
            prefix=parts.prefix,
            suffix=parts.suffix,
            context=parts.context,
            max_tokens=max_tokens,
            fim_order=settings.fim_order,
            time_budget_ms=settings.time_budget_ms,
            prompt_lookup=settings.prompt_lookup,
        )
        policy = decide_policy(
            parts.prefix, parts.suffix, language=language, max_lines=settings.max_lines
        )
        key = (engine.config.model_path, id(engine), request, policy)
        found, cached = cache.get(key)
        build_ms = (time.perf_counter() - build_started) * 1000
        if found:
            return _Work(parts, request, build_ms, None, cached)
        checker = StopChecker(policy, parts.prefix, parts.suffix)
        result = engine.complete(request, mine.cancel, stop=checker.check)
        generated = result.text
        if result.stop_reason == "time_budget" and policy.multiline and "\n" in generated:
            generated = generated[: generated.rfind("\n")]  # only complete lines
        final = None
        if result.stop_reason != "cancelled":
            final = finalize(generated, policy, parts.prefix, parts.suffix)
            if result.stop_reason != "time_budget":
                cache.put(key, final)
        return _Work(parts, request, build_ms, result, final)

    try:
        done = await run_off_loop(work, name=f"complete-{request_id}")
    except asyncio.CancelledError:
        mine.cancel.set()  # $/cancelRequest: stop the worker between tokens
        log.info("%s id=%s cancelled by the client", method, request_id)
        raise
    except BackendUnavailable as exc:
        if isinstance(engine, RemoteEngine) and ls.engine is engine:
            backend_failed(ls, engine, str(exc))
        log.info("%s id=%s backend failed: %s", method, request_id, exc)
        return None
    except ModelError as exc:
        raise JsonRpcRequestFailed(str(exc)) from exc
    if isinstance(engine, RemoteEngine) and done.result is not None and ls.engine is engine:
        backend_succeeded(ls, engine)
    parts, result = done.parts, done.result
    ls.prompt_parts[uri] = parts
    total_ms = (time.perf_counter() - started) * 1000
    if result is None:
        _count(ls, "cache")
        log.info(
            "%s id=%s source=cache build_prompt_ms=%.1f total_ms=%.1f",
            method,
            request_id,
            done.build_ms,
            total_ms,
        )
    else:
        ls.last_prompt = LastPrompt(
            uri,
            cursor.line,
            cursor.character,
            parts,
            done.request,
            result,
            engine,
        )
        _count(ls, "superseded" if result.stop_reason == "cancelled" else "model")
        log.info(
            "%s id=%s source=model prompt_tokens=%d context_tokens=%d context_chunks=%d "
            "context_kept=%s reused_tokens=%d evaluated_tokens=%d generated_tokens=%d "
            "drafted_tokens=%d accepted_tokens=%d build_prompt_ms=%.1f ttft_ms=%.1f "
            "total_ms=%.1f stop=%s",
            method,
            request_id,
            result.prompt_tokens,
            result.context_tokens,
            len(parts.chunks),
            parts.context_kept,
            result.reused_tokens,
            result.prompt_tokens - result.reused_tokens,
            result.generated_tokens,
            result.drafted_tokens,
            result.accepted_tokens,
            done.build_ms + result.tokenize_ms,
            # From the request's arrival, not the engine's start: waits count too.
            total_ms - result.total_ms + result.ttft_ms,
            total_ms,
            result.stop_reason,
        )
        if result.stop_reason == "cancelled":
            return None
    if done.suggestion is None or mine.cancel.is_set():
        return None
    ls.shown[uri] = ShownSuggestion(text, offset, done.suggestion)
    return Suggestion(done.suggestion, position)


@dataclass(frozen=True)
class _Work:
    parts: PromptParts
    request: CompletionRequest
    build_ms: float
    #: None when the suggestion came from the cache.
    result: CompletionResult | None
    suggestion: str | None

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
from codellama_lsp.quant.engine import CompletionRequest, CompletionResult
from codellama_lsp.quant.errors import ModelError

from .app import CodeLlamaServer, InFlight, LastPrompt
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
    ls: CodeLlamaServer, method: str, uri: str, position: types.Position
) -> Suggestion | None:
    """The model's suggestion at ``position``, or None when there is none to show."""
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
    if ls.engine is None and ls.engine_loading is not None:
        # The first keystrokes after start wait for the model instead of
        # getting nothing; a cancel from the client ends the wait.
        with contextlib.suppress(Exception):
            await asyncio.shield(ls.engine_loading)
    engine = ls.engine
    if engine is None:
        log.info("%s id=%s: no model loaded (%s)", method, request_id, ls.engine_error or "none")
        return None

    settings = ls.settings
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
    path = uri_path(uri)
    recent = recent_files(ls, uri) if index is not None else []

    def count_tokens(chunk: str) -> int:
        return len(engine.tokenize_suffix(chunk))

    def work() -> tuple[PromptParts, CompletionRequest, float, CompletionResult]:
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
        )
        request = CompletionRequest(
            prefix=parts.prefix,
            suffix=parts.suffix,
            context=parts.context,
            max_tokens=max_tokens,
            fim_order=settings.fim_order,
        )
        build_ms = (time.perf_counter() - build_started) * 1000
        return parts, request, build_ms, engine.complete(request, mine.cancel)

    # A newer request for the same document supersedes older work.
    previous = ls.in_flight.get(uri)
    if previous is not None:
        previous.cancel.set()
    mine = InFlight(request_id)
    ls.in_flight[uri] = mine
    try:
        parts, request, build_ms, result = await run_off_loop(work, name=f"complete-{request_id}")
    except asyncio.CancelledError:
        mine.cancel.set()  # $/cancelRequest: stop the worker between tokens
        log.info("%s id=%s cancelled by the client", method, request_id)
        raise
    except ModelError as exc:
        raise JsonRpcRequestFailed(str(exc)) from exc
    finally:
        if ls.in_flight.get(uri) is mine:
            del ls.in_flight[uri]
    ls.last_prompt = LastPrompt(uri, cursor.line, cursor.character, parts, request, result, engine)

    total_ms = (time.perf_counter() - started) * 1000
    log.info(
        "%s id=%s prompt_tokens=%d context_tokens=%d context_chunks=%d reused_tokens=%d "
        "evaluated_tokens=%d generated_tokens=%d build_prompt_ms=%.1f ttft_ms=%.1f "
        "total_ms=%.1f stop=%s",
        method,
        request_id,
        result.prompt_tokens,
        parts.context_tokens,
        len(parts.chunks),
        result.reused_tokens,
        result.prompt_tokens - result.reused_tokens,
        result.generated_tokens,
        build_ms + result.tokenize_ms,
        # From the request's arrival, not the engine's start: waits count too.
        total_ms - result.total_ms + result.ttft_ms,
        total_ms,
        result.stop_reason,
    )
    if result.stop_reason == "cancelled" or not result.text.strip():
        return None
    return Suggestion(result.text, types.Position(cursor.line, cursor.character))

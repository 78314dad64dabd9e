"""should_complete -> build_prompt -> request_completion, shared by both completion features."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from codellama_lsp.context.documents import Position
from codellama_lsp.context.errors import PositionOutOfRangeError
from codellama_lsp.context.prompt import fim_input
from codellama_lsp.quant.engine import CompletionRequest, CompletionResult
from codellama_lsp.quant.errors import ModelError

from .app import CodeLlamaServer, InFlight
from .worker import run_off_loop

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
    build_started = time.perf_counter()
    fim = fim_input(doc.text, offset, settings.max_prefix_chars, settings.max_suffix_chars)
    request = CompletionRequest(
        prefix=fim.prefix,
        suffix=fim.suffix,
        max_tokens=ls.effective_max_tokens(),
        fim_order=settings.fim_order,
    )
    build_ms = (time.perf_counter() - build_started) * 1000

    # A newer request for the same document supersedes older work.
    previous = ls.in_flight.get(uri)
    if previous is not None:
        previous.cancel.set()
    mine = InFlight(request_id)
    ls.in_flight[uri] = mine
    try:
        result: CompletionResult = await run_off_loop(
            lambda: engine.complete(request, mine.cancel), name=f"complete-{request_id}"
        )
    except asyncio.CancelledError:
        mine.cancel.set()  # $/cancelRequest: stop the worker between tokens
        log.info("%s id=%s cancelled by the client", method, request_id)
        raise
    except ModelError as exc:
        raise JsonRpcRequestFailed(str(exc)) from exc
    finally:
        if ls.in_flight.get(uri) is mine:
            del ls.in_flight[uri]

    log.info(
        "%s id=%s prompt_tokens=%d reused_tokens=%d evaluated_tokens=%d "
        "generated_tokens=%d build_prompt_ms=%.1f ttft_ms=%.1f total_ms=%.1f stop=%s",
        method,
        request_id,
        result.prompt_tokens,
        result.reused_tokens,
        result.prompt_tokens - result.reused_tokens,
        result.generated_tokens,
        build_ms + result.tokenize_ms,
        result.ttft_ms + (build_started - started) * 1000 + build_ms,
        (time.perf_counter() - started) * 1000,
        result.stop_reason,
    )
    if result.stop_reason == "cancelled" or not result.text.strip():
        return None
    return Suggestion(result.text, types.Position(cursor.line, cursor.character))

"""initialize / initialized / shutdown: settings, position encoding and the model."""

from __future__ import annotations

import asyncio
import logging

from lsprotocol import types

from codellama_lsp.context.documents import ENCODINGS, UTF16

from .app import CodeLlamaServer
from .model import ensure_engine
from .settings import parse_settings
from .workspace_index import ensure_index, stop_index

log = logging.getLogger(__name__)


def initialize(ls: CodeLlamaServer, params: types.InitializeParams) -> None:
    ls.settings, ls.pending_warnings = parse_settings(params.initialization_options)
    ls.suggestion_cache.resize(ls.settings.cache_size)
    encoding = str(ls.workspace.position_encoding or UTF16)
    ls.documents.encoding = encoding if encoding in ENCODINGS else UTF16
    client = params.client_info.name if params.client_info else "unknown client"
    log.info("initialize from %s; position encoding %s", client, ls.documents.encoding)


async def initialized(ls: CodeLlamaServer, params: types.InitializedParams) -> None:
    for warning in ls.pending_warnings:
        ls.notify(f"codellama-lsp: {warning}", types.MessageType.Warning)
    ls.pending_warnings = []
    # The model and the index load side by side; neither waits for the other.
    await asyncio.gather(ensure_engine(ls), ensure_index(ls))


def shutdown(ls: CodeLlamaServer, params: None) -> None:
    ls.download_cancel.set()  # a partial download resumes next time
    for in_flight in ls.in_flight.values():
        in_flight.cancel.set()
    ls.in_flight.clear()
    stop_index(ls)


def register(ls: CodeLlamaServer) -> None:
    ls.feature(types.INITIALIZE)(initialize)
    ls.feature(types.INITIALIZED)(initialized)
    ls.feature(types.SHUTDOWN)(shutdown)

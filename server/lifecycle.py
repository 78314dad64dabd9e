"""initialize / initialized / shutdown: settings, position encoding and the model."""

from __future__ import annotations

import asyncio
import logging

from lsprotocol import types

from codellama_lsp.context.documents import ENCODINGS, UTF16

from .app import CodeLlamaServer

log = logging.getLogger(__name__)


def initialize(ls: CodeLlamaServer, params: types.InitializeParams) -> None:
    warnings = ls.apply_settings(params.initialization_options)
    encoding = str(ls.workspace.position_encoding or UTF16)
    ls.documents.encoding = encoding if encoding in ENCODINGS else UTF16
    client = params.client_info.name if params.client_info else "unknown client"
    log.info("initialize from %s; position encoding %s", client, ls.documents.encoding)
    # Shown once the client is ready to show messages (after initialized).
    for warning in warnings:
        ls.defer_warning(f"codellama-lsp: {warning}")


async def initialized(ls: CodeLlamaServer, params: types.InitializedParams) -> None:
    ls.flush_warnings()
    # The model and the index load side by side; neither waits for the other.
    await asyncio.gather(ls.backends.ensure(), ls.workspace_context.ensure())


def shutdown(ls: CodeLlamaServer, params: None) -> None:
    ls.backends.shutdown()  # a partial download resumes next time
    ls.completions.cancel_all()
    ls.workspace_context.stop()


def register(ls: CodeLlamaServer) -> None:
    ls.feature(types.INITIALIZE)(initialize)
    ls.feature(types.INITIALIZED)(initialized)
    ls.feature(types.SHUTDOWN)(shutdown)

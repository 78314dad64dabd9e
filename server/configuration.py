"""workspace/didChangeConfiguration: new settings, and a model reload when they need one."""

from __future__ import annotations

import asyncio

from lsprotocol import types

from .app import CodeLlamaServer
from .model import ensure_engine
from .settings import SECTION, parse_settings
from .workspace_index import ensure_index


async def workspace_did_change_configuration(
    ls: CodeLlamaServer, params: types.DidChangeConfigurationParams
) -> None:
    raw = params.settings
    if raw is None:
        # Pull model: the client only says something changed.
        results = await ls.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
        )
        raw = results[0] if results else None
    # Settings are parsed from the defaults, not layered on the old values, so a
    # key the user removed goes back to its default.
    ls.settings, warnings = parse_settings(raw)
    ls.suggestion_cache.resize(ls.settings.cache_size)
    # The settings may change what a prompt produces: forget what was shown.
    ls.suggestion_cache.clear()
    ls.shown.clear()
    ls.prompt_parts.clear()
    for warning in warnings:
        ls.notify(f"codellama-lsp: {warning}", types.MessageType.Warning)
    await asyncio.gather(ensure_engine(ls), ensure_index(ls))


def register(ls: CodeLlamaServer) -> None:
    ls.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)(workspace_did_change_configuration)

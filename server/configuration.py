"""workspace/didChangeConfiguration: new settings, and a model reload when they need one."""

from __future__ import annotations

import asyncio

from lsprotocol import types

from codellama_lsp.core.settings import SECTION

from .app import CodeLlamaServer


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
    for warning in ls.apply_settings(raw):
        ls.notify(f"codellama-lsp: {warning}", types.MessageType.Warning)
    await asyncio.gather(ls.backends.ensure(), ls.workspace_context.ensure())


def register(ls: CodeLlamaServer) -> None:
    ls.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)(workspace_did_change_configuration)

"""A long working day in one process: nothing grows with the number of messages handled."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

from pygls.io_ import StdoutWriter

from codellama_lsp.server.app import CodeLlamaServer
from codellama_lsp.server.features import register_all

URI = "file:///workspace/day.py"


def feed(ls: CodeLlamaServer, message: dict[str, Any]) -> None:
    """One message as the stdio reader hands it to pygls."""
    ls.protocol.handle_message(
        json.loads(
            json.dumps({"jsonrpc": "2.0", **message}), object_hook=ls.protocol.structure_message
        )
    )


async def test_notifications_leave_no_futures_behind() -> None:
    ls = CodeLlamaServer()
    register_all(ls)
    ls.protocol.set_writer(StdoutWriter(io.BytesIO()))
    options = {"model": {"name": ""}, "context": {"enable": False}}
    feed(
        ls,
        {
            "id": 1,
            "method": "initialize",
            "params": {"capabilities": {}, "initializationOptions": options},
        },
    )
    await asyncio.sleep(0.05)
    feed(ls, {"method": "initialized", "params": {}})
    feed(
        ls,
        {
            "method": "textDocument/didOpen",
            "params": {
                "textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": ""}
            },
        },
    )
    keystrokes = 3000
    for i in range(keystrokes):
        at = {"line": 0, "character": i}
        feed(
            ls,
            {
                "method": "textDocument/didChange",
                "params": {
                    "textDocument": {"uri": URI, "version": i + 2},
                    "contentChanges": [{"range": {"start": at, "end": at}, "text": "x"}],
                },
            },
        )
        if i % 200 == 0:
            await asyncio.sleep(0)
    await asyncio.sleep(0.1)
    doc = ls.documents.get(URI)
    assert doc is not None and len(doc.text) == keystrokes
    # pygls kept one future per handled notification: 3,000 keystrokes, 3,000 futures.
    # Now finished ones go at the next message: at most the last one is left.
    assert len(ls.protocol._request_futures) <= 1

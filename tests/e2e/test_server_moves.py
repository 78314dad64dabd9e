"""A whole editing session through the real server: cursor moves, file switches, returns, warming.

What the model evaluated is read from ``codellama/lastPrompt``; timings are
``bench/session.py``'s business.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lsprotocol import types

from test_server_session import Session, model_options, session

A = "file:///workspace/orders.py"
B = "file:///workspace/billing.py"


def module(name: str, count: int) -> str:
    return "".join(
        f"def {name}_{i}(order, qty):\n"
        f'    """{name} {i} 😀."""\n'
        f"    total = order.cost * qty + {i}\n"
        f"    return total\n\n"
        for i in range(count)
    )


TEXT_A = module("order", 100)  # 500 lines
TEXT_B = module("bill", 60)
#: The near windows' most tokens (1200 + 300 characters; under 3 characters per token).
NEAR_TOKENS = 700


async def last(s: Session) -> Any:
    return await s.client.protocol.send_request_async("codellama/lastPrompt", None)


def end_of(text: str, line: int) -> int:
    return len(text.split("\n")[line])


async def request(s: Session, uri: str, text: str, line: int) -> Any:
    await s.inline(line, end_of(text, line), uri)
    return await last(s)


def type_at(s: Session, uri: str, version: int, line: int, character: int, text: str) -> None:
    at = types.Position(line=line, character=character)
    s.change(
        uri, version, types.TextDocumentContentChangePartial(range=types.Range(at, at), text=text)
    )


async def test_moves_switches_and_returns_reuse_the_cache(model_path: Path) -> None:
    options = model_options(model_path)
    options["completion"]["warmAhead"] = False  # this test measures the cold requests too
    async with session("visual-studio-code", options) as s:
        s.open(TEXT_A, A)
        await s.wait_status("ready")
        cold = await request(s, A, TEXT_A, 300)
        assert cold.evaluatedTokens == cold.promptTokens > 2000
        for line in (280, 340, 262, 299):  # moves inside the view: only the near windows
            moved = await request(s, A, TEXT_A, line)
            assert moved.evaluatedTokens <= NEAR_TOKENS, (line, moved)
            assert moved.reusedTokens >= cold.promptTokens - NEAR_TOKENS
        s.open(TEXT_B, B)
        other = await request(s, B, TEXT_B, 150)
        assert other.reusedTokens < 10  # a new file: nothing shared
        # Back in A, typing where the cursor was: A's KV state comes back, so
        # the keystroke costs its own tokens, not the whole prompt again.
        type_at(s, A, 2, 299, end_of(TEXT_A, 299), "x")
        await s.inline(299, end_of(TEXT_A, 299) + 1, A)
        back = await last(s)
        assert back.evaluatedTokens <= 6, back
        # And back in B likewise.
        type_at(s, B, 2, 150, end_of(TEXT_B, 150), "y")
        await s.inline(150, end_of(TEXT_B, 150) + 1, B)
        assert (await last(s)).evaluatedTokens <= 6
        # Far away the view is taken again, keeping the repository context.
        far = await request(s, A, TEXT_A, 20)
        assert far.evaluatedTokens > NEAR_TOKENS


async def test_an_active_document_is_warmed_while_the_user_is_idle(
    model_path: Path, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    async with session("neovim", model_options(model_path), args=("--log-file", str(log))) as s:
        s.open(TEXT_A, A)
        await s.wait_status("ready")
        s.client.protocol.notify(
            "codellama/documentActive",
            {"textDocument": {"uri": A}, "position": {"line": 200, "character": 0}},
        )
        for _ in range(100):
            await asyncio.sleep(0.1)
            if "warm file:///workspace/orders.py line=200" in log.read_text():
                break
        await s.inline(200, 0, A)
        warm = await last(s)
        assert warm.evaluatedTokens <= 2, warm  # the prompt was already evaluated
        assert "warm file:///workspace/orders.py line=200" in log.read_text()
        # A bad notification is ignored and the server keeps serving.
        s.client.protocol.notify("codellama/documentActive", {"textDocument": {}})
        assert (await s.inline(201, 0, A)).items is not None

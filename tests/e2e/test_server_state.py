"""State that belongs to a backend goes with it: a model reload leaves nothing of the old one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lsprotocol import types

from test_server_session import Session, model_options, session


async def _last(s: Session) -> Any:
    return await s.client.protocol.send_request_async("codellama/lastPrompt", None)


async def _reload(s: Session, options: dict[str, Any], ready_before: int) -> None:
    s.client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codellama": options})
    )

    async def loaded() -> None:
        while sum(st["state"] == "ready" for st in s.statuses) <= ready_before:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(loaded(), 30)


async def test_last_prompt_after_a_model_reload_never_uses_the_closed_engine(
    model_path: Path,
) -> None:
    async with session("visual-studio-code", model_options(model_path)) as s:
        s.open()
        await s.wait_status("ready")
        assert (await s.inline(2, 4)).items
        before = await _last(s)
        assert "▁<MID>" in before.prompt and before.promptTokens > 0

        # A different context window means a new engine; the old one is closed.
        reloaded = {"model": {"path": str(model_path), "nCtx": 2048}}
        await _reload(s, reloaded, ready_before=1)
        after = await _last(s)
        assert not hasattr(after, "prompt"), "the last prompt of the closed engine survived"
        assert after.answers.model == 1

        # The new engine answers and its own prompt is shown, from a fresh KV cache.
        assert (await s.inline(2, 4)).items
        fresh = await _last(s)
        assert fresh.prompt == before.prompt
        assert fresh.reusedTokens == 0 and fresh.answers.model == 2


async def test_a_model_reload_forgets_the_suggestion_on_screen(model_path: Path) -> None:
    async with session("visual-studio-code", model_options(model_path)) as s:
        s.open()
        await s.wait_status("ready")
        first = (await s.inline(2, 4)).items[0].insert_text
        # Unchanged text: the suggestion on screen answers, without the model.
        assert (await s.inline(2, 4)).items[0].insert_text == first
        assert (await _last(s)).answers.typed_through == 1
        await _reload(s, {"model": {"path": str(model_path), "nCtx": 2048}}, ready_before=1)
        # The new engine made nothing on screen: the model answers again.
        assert (await s.inline(2, 4)).items[0].insert_text == first
        answers = (await _last(s)).answers
        assert answers.typed_through == 1 and answers.model == 2

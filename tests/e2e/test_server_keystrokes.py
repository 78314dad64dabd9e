"""Keystroke speed through the real server: KV reuse, typed-through, cache, supersede.

Timings are the benchmark's business (bench/keystroke.py); these tests check the
mechanisms: what the model evaluated, and which answers needed no model at all.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from test_server_session import Session, long_options, model_options, session

URI = "file:///workspace/shop.py"
HEAD = "".join(
    f"def price_{i}(item, qty):\n"
    f'    """Price of {i} 😀 items."""\n'
    f"    return item.cost * qty + {i}\n\n\n"
    for i in range(12)
)
BODY = "def total(items):\n    "
TEXT = HEAD + BODY + "\n"
LINE = TEXT[: len(HEAD) + len(BODY)].count("\n")
COL = 4


async def last(s: Session) -> Any:
    return await s.client.protocol.send_request_async("codellama/lastPrompt", None)


def insert(s: Session, version: int, line: int, character: int, text: str) -> None:
    at = types.Position(line=line, character=character)
    s.change(
        URI, version, types.TextDocumentContentChangePartial(range=types.Range(at, at), text=text)
    )


def delete(s: Session, version: int, line: int, character: int) -> None:
    s.change(
        URI,
        version,
        types.TextDocumentContentChangePartial(
            range=types.Range(
                types.Position(line=line, character=character - 1),
                types.Position(line=line, character=character),
            ),
            text="",
        ),
    )


@pytest.mark.parametrize("profile", ["visual-studio-code", "neovim"])
async def test_each_keystroke_evaluates_only_its_new_tokens(profile: str, model_path: Path) -> None:
    # No warming after didOpen: the first request is measured cold.
    async with session(profile, model_options(model_path, warmAhead=False)) as s:
        s.open(TEXT, URI)
        await s.wait_status("ready")
        await s.inline(LINE, COL, URI)
        cold = await last(s)
        assert cold.reusedTokens == 0 and cold.evaluatedTokens == cold.promptTokens > 200
        previous, column, checked = cold, COL, 0
        for version, ch in enumerate("s = sum(x.cost for x in items)", start=2):
            insert(s, version, LINE, column, ch)
            column += 1
            await s.inline(LINE, column, URI)
            now = await last(s)
            if now.answers.model == previous.answers.model:
                continue  # answered without the model (typed through the suggestion)
            new_tokens = max(now.promptTokens - previous.promptTokens, 0)
            assert now.evaluatedTokens <= new_tokens + 4, (ch, now, previous)
            assert now.reusedTokens >= previous.promptTokens - 4
            previous, checked = now, checked + 1
        assert checked >= 20


async def test_typing_through_a_suggestion_needs_no_model(model_path: Path, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    async with session(
        "visual-studio-code", model_options(model_path), args=("--log-file", str(log))
    ) as s:
        s.open(TEXT, URI)
        await s.wait_status("ready")
        first = await s.inline(LINE, COL, URI)
        assert first.items[0].insert_text == " pass"
        before = await last(s)
        # The user types the suggestion's first characters: the rest comes back at once.
        for version, (ch, rest) in enumerate([(" ", "pass"), ("p", "ass"), ("a", "ss")], start=2):
            insert(s, version, LINE, COL + version - 2, ch)
            result = await s.inline(LINE, COL + version - 1, URI)
            assert [i.insert_text for i in result.items] == [rest]
            assert result.items[0].range == types.Range(
                types.Position(LINE, COL + version - 1), types.Position(LINE, COL + version - 1)
            )
        after = await last(s)
        assert after.answers.typed_through == 3
        assert after.answers.model == before.answers.model  # no model work
        assert after.promptTokens == before.promptTokens  # the last model prompt is unchanged
        # Typing something else asks the model again.
        insert(s, 5, LINE, COL + 3, "x")
        await s.inline(LINE, COL + 4, URI)
        assert (await last(s)).answers.model == before.answers.model + 1
    lines = [line for line in log.read_text().splitlines() if "source=typed_through" in line]
    assert len(lines) == 3 and all("total_ms=" in line for line in lines)


async def test_returning_to_an_earlier_text_is_answered_from_the_cache(model_path: Path) -> None:
    async with session("neovim", model_options(model_path)) as s:
        s.open(TEXT, URI)
        await s.wait_status("ready")
        original = await s.inline(LINE, COL, URI)
        insert(s, 2, LINE, COL, "x")
        await s.inline(LINE, COL + 1, URI)
        delete(s, 3, LINE, COL + 1)  # backspace: the text is what it was
        again = await s.inline(LINE, COL, URI)
        assert [i.insert_text for i in again.items] == [i.insert_text for i in original.items]
        answers = (await last(s)).answers
        assert answers.cache == 1 and answers.model == 2


async def test_debounce_lets_only_the_last_keystroke_reach_the_model(model_path: Path) -> None:
    options = model_options(model_path, debounceMs=300)
    async with session("visual-studio-code", options) as s:
        s.open(TEXT, URI)
        await s.wait_status("ready")
        pending = []
        for version, ch in enumerate("abc", start=2):
            insert(s, version, LINE, COL + version - 2, ch)
            pending.append(asyncio.ensure_future(s.inline(LINE, COL + version - 1, URI)))
            await asyncio.sleep(0.02)
        results = await asyncio.wait_for(asyncio.gather(*pending), 10)
        assert [list(r.items) for r in results[:2]] == [[], []]
        assert results[2].items[0].insert_text == " pass"
        answers = (await last(s)).answers
        assert answers.superseded == 2 and answers.model == 1


async def test_time_budget_ends_a_long_generation(model_path: Path) -> None:
    options = long_options(model_path)
    options["completion"]["timeBudgetMs"] = 150
    async with session("visual-studio-code", options) as s:
        # A first request warms llama.cpp's threads up, so that the budget measures
        # generation rather than a cold start on a busy machine.
        s.open("def add(a, b):\n    ", "file:///workspace/warm.py")
        await s.wait_status("ready")
        await s.inline(1, 4, "file:///workspace/warm.py")
        s.open("x = cycle", "file:///workspace/c.py")
        result = await asyncio.wait_for(s.inline(0, 9, "file:///workspace/c.py"), 5)
        text = result.items[0].insert_text
        endless = " through every item of the whole list again cycle" * 400
        assert len(text) > 20 and endless.startswith(text)
        info = await last(s)
        assert info.stopReason == "time_budget" and info.generatedTokens < 4000


@pytest.mark.parametrize("lookup", [0, 3])
async def test_prompt_lookup_gives_the_same_suggestion(lookup: int, model_path: Path) -> None:
    # The suffix repeats what the model will write, so drafts from the prompt are accepted.
    text = "x = cycle\ny = cycle through every item of the whole list again cycle through\n"
    options = model_options(model_path, maxTokens=12, promptLookup=lookup)
    async with session("neovim", options) as s:
        s.open(text, "file:///workspace/d.py")
        await s.wait_status("ready")
        result = await s.inline(0, 9, "file:///workspace/d.py")
        assert result.items[0].insert_text == (
            " through every item of the whole list again cycle through every item"
        )
        info = await last(s)
        if lookup:
            assert info.draftedTokens > 0 and info.acceptedTokens > 0
        else:
            assert info.draftedTokens == 0

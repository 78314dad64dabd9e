"""Every FIM family through the real server over stdio: completion, repository-level
context in the family's format, typed-through, and KV reuse per keystroke."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from tests.support.synthetic import SCRIPTED_COMPLETION

from test_server_session import Session, model_options, session

UTIL = "def helper(x):\n    return x * 2\n"
APP = "from util import helper\n\n\ndef add(a, b):\n    x = helper(a)\n    \n"
LINE, COL = 5, 4
#: What the prompt of each family must hold (the engine renders its tokens as text).
LAYOUT = {
    "qwen2.5-coder": (
        "<|repo_name|>shop\n",
        "<|file_sep|>util.py\ndef helper(x):",
        "<|file_sep|>app.py\n<|fim_prefix|>",
    ),
    "starcoder2": (
        "<repo_name>shop\n",
        "<file_sep>util.py\ndef helper(x):",
        "<file_sep><fim_prefix>app.py\n",
    ),
    "deepseek-coder": (
        "# Path: util.py\ndef helper(x):",
        "# Path: app.py\n",
        "<\uff5cfim\u2581begin\uff5c>",
    ),
}


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    root.mkdir()
    (root / "util.py").write_text(UTIL, encoding="utf-8")
    (root / "app.py").write_text(APP, encoding="utf-8")
    return root


async def last(s: Session) -> Any:
    return await s.client.protocol.send_request_async("codellama/lastPrompt", None)


def insert(s: Session, uri: str, version: int, character: int, text: str) -> None:
    at = types.Position(line=LINE, character=character)
    s.change(
        uri, version, types.TextDocumentContentChangePartial(range=types.Range(at, at), text=text)
    )


@pytest.mark.parametrize("family", sorted(LAYOUT))
async def test_a_family_completes_with_its_own_prompt_format(
    family: str, family_model_paths: dict[str, Path], shop: Path
) -> None:
    options = model_options(family_model_paths[family], warmAhead=False)
    async with session("visual-studio-code", options, root_uri=shop.as_uri()) as s:
        await s.wait_status("indexed")
        uri = (shop / "app.py").as_uri()
        s.open(APP, uri)
        await s.wait_status("ready")
        first = await s.inline(LINE, COL, uri)
        assert [i.insert_text for i in first.items] == [SCRIPTED_COMPLETION]
        shown = await last(s)
        assert shown.family == family and shown.fimOrder == "psm"  # "auto" for this family
        prompt = str(shown.prompt)
        positions = [prompt.index(part) for part in LAYOUT[family]]
        assert positions == sorted(positions), prompt
        assert "Path:" not in prompt or family == "deepseek-coder"
        # Typing the suggestion's start is answered from it, without the model.
        column, version = COL, 2
        for ch, rest in ((" ", "return a + b"), ("r", "eturn a + b")):
            insert(s, uri, version, column, ch)
            column, version = column + 1, version + 1
            result = await s.inline(LINE, column, uri)
            assert [i.insert_text for i in result.items] == [rest]
        assert (await last(s)).answers.typed_through == 2
        # Typing something else asks the model, which evaluates only the new tokens
        # (PSM: the prefix's new tokens, the short suffix and the middle token).
        previous, checked = shown, 0
        for ch in "esult = helper(a)":
            insert(s, uri, version, column, ch)
            column, version = column + 1, version + 1
            await s.inline(LINE, column, uri)
            now = await last(s)
            if now.answers.model == previous.answers.model:
                continue
            new_tokens = max(now.promptTokens - previous.promptTokens, 0)
            assert now.evaluatedTokens <= new_tokens + 4, (ch, now, previous)
            # What follows the changed word's last tokens (byte-level BPE merges a typed
            # character into the token before it): <SUF>, the suffix, <MID>.
            assert now.reusedTokens >= previous.promptTokens - 6, (ch, now, previous)
            previous, checked = now, checked + 1
        assert checked >= 10

"""Recent edits as context through the real server: shown, kept while typing, renewed.

An edit in another file reaches the prompt of the file being typed as a small
hunk; typing there keeps it byte for byte (the KV cache is reused in full); a
new edit elsewhere changes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from test_server_session import Session, model_options, session

#: Not imported by main.py: its re-indexing does not change main's repository context.
UTIL = "".join(f"def helper_{i}(value):\n    return value + {i}\n\n\n" for i in range(40))
#: Long enough for the "view" layout: the hunks come after the view of the file.
MAIN = "import os\n\n\ndef run(x):\n    \n" + "".join(
    f"\n\ndef step_{i}(x):\n    return os.path.join(x, '{i}')\n" for i in range(60)
)
LINE, COL = 4, 4


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "edits"
    root.mkdir()
    (root / "util.py").write_text(UTIL)
    (root / "main.py").write_text(MAIN)
    return root


async def last(s: Session) -> Any:
    return await s.client.protocol.send_request_async("codellama/lastPrompt", None)


def replace_line(s: Session, uri: str, version: int, line: int, old: str, new: str) -> None:
    s.change(
        uri,
        version,
        types.TextDocumentContentChangePartial(
            range=types.Range(types.Position(line, 0), types.Position(line, len(old))), text=new
        ),
    )


def section(prompt: str) -> str:
    """The edit section: from the first hunk to the path line that follows the hunks."""
    start = prompt.index("# Recent edit in")
    return prompt[start : prompt.index("# Path:", start)]


async def test_edit_elsewhere_is_shown_kept_while_typing_and_renewed(
    workspace: Path, model_path: Path
) -> None:
    options = model_options(model_path, warmAhead=False)
    # A fixed context budget: the measured speed (and so the prompt budget) varies.
    options["context"] = {"maxTokens": 600}
    async with session("visual-studio-code", options, root_uri=workspace.as_uri()) as s:
        await s.wait_status("indexed")
        util = (workspace / "util.py").as_uri()
        main = (workspace / "main.py").as_uri()
        s.open(UTIL, util)
        s.open(MAIN, main)
        # The user renames a parameter in util.py (line 9: "def helper_2(value):").
        replace_line(s, util, 2, 8, "def helper_2(value):", "def helper_2(amount, scale=1):")
        invoked = types.InlineCompletionTriggerKind.Invoked
        await s.inline(LINE, COL, main, invoked)
        first = await last(s)
        hunk = section(first.prompt)
        assert "# Recent edit in util.py:9" in hunk
        assert "# def helper_2(value):" in hunk and "def helper_2(amount, scale=1):" in hunk
        assert any(c.source == "edit" for c in first.context)
        assert first.prompt.index("# Recent edit") > first.prompt.index("def run(x):")
        previous, column = first, COL
        for version, ch in enumerate("y = x", start=2):
            at = types.Position(LINE, column)
            s.change(main, version, types.TextDocumentContentChangePartial(types.Range(at, at), ch))
            column += 1
            await s.inline(LINE, column, main, invoked)
            now = await last(s)
            assert section(now.prompt) == hunk  # byte for byte
            new_tokens = max(now.promptTokens - previous.promptTokens, 0)
            assert now.evaluatedTokens <= new_tokens + 4, (ch, now, previous)
            assert now.reusedTokens >= previous.promptTokens - 4
            previous = now
        # Another edit in util.py, far from the first: a second hunk, appended.
        replace_line(s, util, 3, 120, "def helper_30(value):", "def helper_30(items):")
        await s.inline(LINE, column, main, invoked)
        renewed = await last(s)
        both = section(renewed.prompt)
        assert both.startswith(hunk) and "def helper_30(items):" in both
        # Only the edit section and what follows it was evaluated again.
        assert renewed.reusedTokens >= renewed.promptTokens // 2
        assert renewed.evaluatedTokens < renewed.promptTokens // 2


async def test_recent_edits_off_and_secret_files(workspace: Path, model_path: Path) -> None:
    (workspace / ".env").write_text("TOKEN=abc\n")
    options = model_options(model_path, warmAhead=False)
    options["context"] = {"recentEdits": 0}
    async with session("neovim", options, root_uri=workspace.as_uri()) as s:
        await s.wait_status("indexed")
        util = (workspace / "util.py").as_uri()
        main = (workspace / "main.py").as_uri()
        s.open(UTIL, util)
        s.open(MAIN, main)
        replace_line(s, util, 2, 8, "def helper_2(value):", "def helper_2(amount):")
        await s.inline(LINE, COL, main, types.InlineCompletionTriggerKind.Invoked)
        assert "Recent edit" not in (await last(s)).prompt
    async with session(
        "neovim", model_options(model_path, warmAhead=False), root_uri=workspace.as_uri()
    ) as s:
        await s.wait_status("indexed")
        env = (workspace / ".env").as_uri()
        main = (workspace / "main.py").as_uri()
        s.open("TOKEN=abc\n", env)
        s.open(MAIN, main)
        replace_line(s, env, 2, 0, "TOKEN=abc", "TOKEN=sk-live-do-not-leak")
        await s.inline(LINE, COL, main, types.InlineCompletionTriggerKind.Invoked)
        prompt = (await last(s)).prompt
        assert "Recent edit" not in prompt and "do-not-leak" not in prompt

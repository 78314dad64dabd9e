"""``codellama-lsp complete`` prints exactly what ``textDocument/inlineCompletion`` shows.

Both run the one core pipeline (core/pipeline.py); these cases pin that down
for the paths where the two could drift: single-line and multi-line policies,
an empty line, stop rules, max tokens, and a generation ended by the time budget.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from test_server_session import session


@dataclass(frozen=True)
class Case:
    name: str
    filename: str
    language: str
    text: str
    #: 0-based, as LSP counts (the CLI gets them 1-based).
    line: int
    character: int
    completion: dict[str, Any]


CASES = [
    # Single-line: text after the cursor on its line.
    Case("single_line", "cycle.py", "python", "x = cycle\ny = 2\n", 0, 9, {"maxTokens": 12}),
    # Multi-line policy: a blank line in a function body.
    Case(
        "multi_line",
        "add.py",
        "python",
        "def add(a, b):\n    s = '😀 日本' # loop\n    \n",
        2,
        4,
        {},
    ),
    # An empty line at column 0 after a block opener.
    Case("empty_line", "opener.py", "python", "def add(a, b):\n\nprint(add(1, 2))\n", 1, 0, {}),
    # Another language's policy and stop rules.
    Case(
        "javascript",
        "sum.js",
        "javascript",
        "function add(a, b) {\n  \n}\nconst c = cycle",
        3,
        15,
        {"maxTokens": 30},
    ),
    # The time budget ends generation after the first token: deterministic (without
    # healing, whose first token would only spell the "cycle" already typed).
    Case(
        "time_budget",
        "budget.py",
        "python",
        "x = cycle",
        0,
        9,
        {"maxTokens": 4000, "timeBudgetMs": 1, "tokenHealing": False},
    ),
]


def _completion(case: Case) -> dict[str, Any]:
    """No time limit unless the case is about it: a busy machine must not change the answer."""
    return {"timeBudgetMs": 0, **case.completion}


def _options(model_path: Path, case: Case) -> dict[str, Any]:
    return {"model": {"path": str(model_path), "nCtx": 4096}, "completion": _completion(case)}


async def _server_answer(case: Case, path: Path, model_path: Path) -> str:
    options = _options(model_path, case)
    async with session("visual-studio-code", options) as s:
        uri = path.as_uri()
        s.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(
                    uri=uri, language_id=case.language, version=1, text=case.text
                )
            )
        )
        await s.wait_status("ready")
        result = await s.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Automatic
                ),
                text_document=types.TextDocumentIdentifier(uri=uri),
                # utf-16 columns: the cases' text before the cursor is in the BMP.
                position=types.Position(line=case.line, character=case.character),
            )
        )
        assert isinstance(result, types.InlineCompletionList)
        return result.items[0].insert_text if result.items else ""  # type: ignore[return-value]


def _cli_answer(case: Case, path: Path, model_path: Path, codellama_bin: str) -> str:
    settings = json.dumps({"completion": _completion(case), "model": {"nCtx": 4096}})
    where = f"{path}:{case.line + 1}:{case.character + 1}"
    result = subprocess.run(
        [codellama_bin, "complete", where, "--model", str(model_path), "--settings", settings],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "source=model" in result.stderr  # the model ran: nothing was answered from memory
    print(result.stderr)  # shown when the comparison fails
    return result.stdout.removesuffix("\n")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_cli_prints_what_the_server_shows(
    case: Case, tmp_path: Path, model_path: Path, codellama_bin: str
) -> None:
    path = tmp_path / case.filename
    path.write_text(case.text, encoding="utf-8")
    shown = await _server_answer(case, path, model_path)
    printed = _cli_answer(case, path, model_path, codellama_bin)
    assert printed == shown
    assert shown.strip()  # something to compare: two empty answers would prove nothing
    if case.name == "time_budget":
        assert shown == " through"  # one token, then the budget ran out

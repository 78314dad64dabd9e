"""Acceptance counted locally, end to end over stdio: item command → executeCommand → day file
→ ``codellama/stats`` and ``codellama-lsp stats --json``."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from codellama_lsp.core.stats import STATS_DIR_ENV
from codellama_lsp.server.stats import ACCEPTED

from test_server_session import PROFILES, TEXT, URI, column, model_options, session


def day_events(root: Path) -> list[dict[str, Any]]:
    files = sorted(root.glob("*.jsonl"))
    return [json.loads(line) for f in files for line in f.read_text("utf-8").splitlines()]


async def execute(s: Any, command: types.Command) -> Any:
    return await s.client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command.command, arguments=command.arguments)
    )


@pytest.mark.parametrize("profile", PROFILES)
async def test_an_accept_is_counted_without_code(
    profile: str, model_path: Path, tmp_path: Path, codellama_bin: str
) -> None:
    root = tmp_path / "stats"
    env = {STATS_DIR_ENV: str(root)}
    async with session(profile, model_options(model_path, fimOrder="psm"), env=env) as s:
        provider = s.result.capabilities.execute_command_provider
        assert provider is not None and ACCEPTED in provider.commands
        s.open()
        char = column("    ", s.encoding)
        first = await s.inline(2, char)
        (item,) = first.items
        text = item.insert_text
        assert isinstance(text, str) and text.strip()
        assert item.command is not None and item.command.command == ACCEPTED
        shown_id = item.command.arguments[0]["id"]  # type: ignore[index]

        # Typing the start of the suggestion shows its rest: the same suggestion, not a new one.
        typed = text[: len(text) - len(text.lstrip()) + 1]
        at = types.Position(line=2, character=char)
        s.change(URI, 2, types.TextDocumentContentChangePartial(types.Range(at, at), text=typed))
        rest = await s.inline(2, char + len(typed))
        (rest_item,) = rest.items
        assert rest_item.insert_text == text[len(typed) :]
        assert rest_item.command is not None
        assert list(rest_item.command.arguments or ()) == [
            {"id": shown_id, "chars": len(rest_item.insert_text)}
        ]

        assert await execute(s, rest_item.command) is None
        await execute(s, rest_item.command)  # a replayed accept counts nothing
        await execute(
            s, types.Command("x", ACCEPTED, arguments=[{"id": shown_id + 1000, "chars": 3}])
        )  # an id never given: ignored, not an error
        today = await s.client.protocol.send_request_async("codellama/stats", {})
        assert today.shown == 1 and today.accepted == 1 and today.enabled is True

    events = day_events(root)
    assert [e["event"] for e in events] == ["shown", "accepted"]
    shown, accepted = events
    assert shown["language"] == "python" and shown["backend"] == "local"
    assert shown["model"] == model_path.name
    assert shown["chars"] == len(text) and shown["latency_ms"] > 0
    assert accepted["chars"] == len(text) - len(typed)
    raw = "".join(f.read_text("utf-8") for f in root.glob("*.jsonl"))
    for code in (text.strip(), "def add", TEXT.splitlines()[1].strip()):
        assert code not in raw

    out = subprocess.run(
        [codellama_bin, "stats", "--json", "--days", "1"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(out.stdout)
    python = result["languages"]["python"]
    assert python["shown"] == 1 and python["accepted"] == 1 and python["rate"] == 1.0
    assert python["p50_ms"] == python["p95_ms"] == shown["latency_ms"]
    assert result["models"][model_path.name]["accepted"] == 1
    assert result["backends"]["local"]["shown"] == 1
    table = subprocess.run(
        [codellama_bin, "stats"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "python" in table and "100%" in table


async def test_stats_disabled_adds_no_command_and_writes_nothing(
    model_path: Path, tmp_path: Path
) -> None:
    root = tmp_path / "stats"
    options = {**model_options(model_path, fimOrder="psm"), "stats": {"enable": False}}
    async with session("visual-studio-code", options, env={STATS_DIR_ENV: str(root)}) as s:
        s.open()
        (item,) = (await s.inline(2, 4)).items
        assert item.insert_text and item.command is None
        await execute(s, types.Command("x", ACCEPTED, arguments=[{"id": 1, "chars": 3}]))
        today = await s.client.protocol.send_request_async("codellama/stats", {})
        assert today.enabled is False
    assert not root.exists() or not any(root.iterdir())


def test_stats_rejects_a_bad_day_count(codellama_bin: str) -> None:
    out = subprocess.run(
        [codellama_bin, "stats", "--days", "0"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "--days" in out.stderr

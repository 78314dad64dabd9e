"""Probe the server as a hostile client would: random frames, params and edits, seeded.

Deterministic (fixed seeds), fast, and run on every CI: after every burst the
server still answers a valid completion, every request got exactly one answer,
and nothing reached stderr as a traceback.  Long load runs are bench/soak.py's.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lsp_raw import RawServer

URI = "file:///workspace/fuzz.py"
TEXT = "def add(a, b):\n    \n"
METHODS = [
    "textDocument/inlineCompletion",
    "textDocument/completion",
    "codellama/lastPrompt",
    "textDocument/didChange",
    "textDocument/didOpen",
    "textDocument/didClose",
    "codellama/documentActive",
    "workspace/didChangeConfiguration",
    "$/cancelRequest",
    "no/such/method",
]
SCALARS: list[Any] = [
    None,
    0,
    -1,
    2**31,
    2**63,
    1.5,
    "",
    "\ud83d",
    "😀" * 50,
    "x" * 10_000,
    True,
    [],
    {},
]


def junk(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value, now and then shaped like the params a method expects."""
    roll = rng.random()
    if depth > 3 or roll < 0.4:
        return rng.choice(SCALARS)
    if roll < 0.7:
        keys = [
            "textDocument",
            "position",
            "uri",
            "line",
            "character",
            "contentChanges",
            "range",
            "start",
            "end",
            "text",
            "version",
            "context",
            "settings",
            "id",
        ]
        return {rng.choice(keys): junk(rng, depth + 1) for _ in range(rng.randrange(1, 5))}
    return [junk(rng, depth + 1) for _ in range(rng.randrange(0, 4))]


def plausible(rng: random.Random) -> dict[str, Any]:
    """Params that are nearly right: real URIs and shapes, wrong numbers and types."""
    line = rng.choice([0, 1, 2, 99, -1, 2**31])
    character = rng.choice([0, 4, 5, 200, -3])
    position = {"line": line, "character": character}
    return {
        "textDocument": {
            "uri": rng.choice([URI, "file:///elsewhere.py", "", "not a uri"]),
            "version": rng.randrange(0, 5),
        },
        "position": position,
        "context": {"triggerKind": rng.choice([1, 2, 3, "x"])},
        "contentChanges": [
            {
                "range": {"start": position, "end": position},
                "text": rng.choice(["x", "\n", "😀", ""]),
            }
        ],
    }


@pytest.fixture
def server(model_path: Path) -> Iterator[RawServer]:
    peer = RawServer(["--stdio", "--model", str(model_path)])
    peer.initialize({"completion": {"fimOrder": "psm"}})
    yield peer
    if peer.proc.poll() is None:
        peer.proc.kill()
        peer.proc.wait()


def serves(peer: RawServer) -> None:
    peer.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": URI, "languageId": "python", "version": 100, "text": TEXT}},
    )
    rid = peer.request(
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": URI},
            "position": {"line": 1, "character": 4},
            "context": {"triggerKind": 2},
        },
    )
    answer = peer.response(rid, timeout=60)
    assert "error" not in answer, answer
    assert answer["result"]["items"], answer


@pytest.mark.parametrize("seed", range(4))
def test_random_messages_never_break_the_server(server: RawServer, seed: int) -> None:
    rng = random.Random(seed)
    serves(server)
    asked: list[int] = []
    for _ in range(150):
        method = rng.choice(METHODS)
        params = plausible(rng) if rng.random() < 0.5 else junk(rng)
        if rng.random() < 0.5:
            asked.append(server.request(method, params))
        else:
            server.notify(method, params)
        if rng.random() < 0.05:  # a frame that is not JSON at all
            server.send_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))))
    # Every request gets exactly one answer, result or error (in any order).
    answers: dict[int, dict[str, Any]] = {}
    while len(answers) < len(asked):
        answer = server.wait_for(lambda m: "method" not in m and m.get("id") in asked, timeout=60)
        assert answer["id"] not in answers, answer
        answers[answer["id"]] = answer
    for answer in answers.values():
        assert ("result" in answer) != ("error" in answer), answer
        if "error" in answer:
            assert "Traceback" not in json.dumps(answer["error"])
    serves(server)
    assert server.proc.poll() is None
    assert not [line for line in server.stderr_lines if line.startswith("Traceback")]


def test_a_notification_sent_as_a_request_gets_an_error_not_silence(server: RawServer) -> None:
    for method in ("textDocument/didClose", "$/cancelRequest", "codellama/documentActive"):
        answer = server.response(server.request(method, {"textDocument": {"uri": URI}}))
        assert answer["error"]["code"] == -32600, answer  # InvalidRequest
        assert "notification" in answer["error"]["message"]
    serves(server)

"""JSON-RPC edge cases that a well-behaved client library never produces.

Each case checks the exact error answer and then that the same server process
still serves a real completion afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.synthetic import SCRIPTED_COMPLETION

from lsp_raw import RawServer

URI = "file:///work/demo.py"
TEXT = "def add(a, b):\n    \n"
# PSM ends the prompt with ▁<MID>, after which the generated model is scripted.
PSM = {"completion": {"fimOrder": "psm"}}


@pytest.fixture
def server(model_path: Path) -> Iterator[RawServer]:
    peer = RawServer(["--stdio", "--model", str(model_path)])
    yield peer
    if peer.proc.poll() is None:
        peer.proc.kill()
        peer.proc.wait()


def _open_and_complete(peer: RawServer) -> dict[str, object]:
    peer.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": TEXT}},
    )
    rid = peer.request(
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": URI},
            "position": {"line": 1, "character": 4},
            "context": {"triggerKind": 2},
        },
    )
    return peer.response(rid, timeout=60)


def _assert_serves(peer: RawServer) -> None:
    answer = _open_and_complete(peer)
    assert "error" not in answer, answer
    items = answer["result"]["items"]  # type: ignore[index]
    assert items[0]["insertText"] == SCRIPTED_COMPLETION


def test_request_before_initialize_is_refused(server: RawServer) -> None:
    rid = server.request(
        "textDocument/inlineCompletion",
        {"textDocument": {"uri": URI}, "position": {"line": 0, "character": 0}},
    )
    answer = server.response(rid)
    assert answer["error"]["code"] == -32002
    server.initialize(PSM)
    _assert_serves(server)


def test_malformed_json_gets_parse_error_and_server_goes_on(server: RawServer) -> None:
    server.initialize(PSM)
    server.send_bytes(b'{"jsonrpc": "2.0", "id": 7, "method": ')
    answer = server.wait_for(lambda m: "error" in m)
    assert answer["id"] is None
    assert answer["error"]["code"] == -32700
    _assert_serves(server)


def test_missing_params_is_invalid_params(server: RawServer) -> None:
    server.initialize(PSM)
    rid = server.request("textDocument/inlineCompletion", with_params=False)
    answer = server.response(rid)
    assert answer["error"]["code"] == -32602
    assert "textDocument" in answer["error"]["message"] or "params" in answer["error"]["message"]
    rid = server.request("textDocument/inlineCompletion", {"textDocument": {"uri": URI}})
    answer = server.response(rid)
    assert answer["error"]["code"] == -32602
    assert "position" in answer["error"]["message"]
    _assert_serves(server)


def test_unknown_method_is_method_not_found(server: RawServer) -> None:
    server.initialize(PSM)
    rid = server.request("codellama/noSuchThing", {})
    assert server.response(rid)["error"]["code"] == -32601
    _assert_serves(server)


def test_exit_after_shutdown_is_zero(server: RawServer) -> None:
    server.initialize(PSM)
    rid = server.request("shutdown")
    assert server.response(rid)["result"] is None
    server.notify("exit")
    assert server.close() == 0
    assert not any("Traceback" in line for line in server.stderr_lines)


def test_exit_without_shutdown_is_one(server: RawServer) -> None:
    server.initialize(PSM)
    server.notify("exit")
    assert server.close() == 1


def test_requests_after_shutdown_are_invalid_requests(server: RawServer) -> None:
    server.initialize(PSM)
    assert server.response(server.request("shutdown"))["result"] is None
    rid = server.request(
        "textDocument/inlineCompletion",
        {"textDocument": {"uri": URI}, "position": {"line": 0, "character": 0}},
    )
    answer = server.response(rid)
    assert answer["error"]["code"] == -32600 and "after shutdown" in answer["error"]["message"]
    assert server.response(server.request("shutdown"))["error"]["code"] == -32600
    server.notify("exit")
    assert server.close() == 0


def test_a_second_initialize_is_refused_and_keeps_the_settings(server: RawServer) -> None:
    server.initialize(PSM)
    rid = server.request(
        "initialize",
        {"processId": None, "rootUri": None, "capabilities": {}, "initializationOptions": {}},
    )
    answer = server.response(rid)
    assert answer["error"]["code"] == -32600 and "already" in answer["error"]["message"]
    _assert_serves(server)  # still PSM: the second initialize changed nothing


def test_a_lone_surrogate_in_a_document_is_text_not_an_error(server: RawServer) -> None:
    server.initialize(PSM)
    broken = "x = '\ud83d'\n"  # a high surrogate without its pair, as a client may send it
    server.notify(
        "textDocument/didOpen",
        {
            "textDocument": {
                "uri": "file:///work/broken.py",
                "languageId": "python",
                "version": 1,
                "text": broken + TEXT,
            }
        },
    )
    rid = server.request(
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": "file:///work/broken.py"},
            "position": {"line": 2, "character": 4},
            "context": {"triggerKind": 2},
        },
    )
    answer = server.response(rid, timeout=60)
    assert "error" not in answer, answer
    assert answer["result"]["items"][0]["insertText"] == SCRIPTED_COMPLETION
    # Typing a lone surrogate into an open document is cleaned the same way.
    server.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": "file:///work/broken.py", "version": 2},
            "contentChanges": [
                {
                    "range": {
                        "start": {"line": 0, "character": 0},
                        "end": {"line": 0, "character": 0},
                    },
                    "text": "\udc00",
                }
            ],
        },
    )
    _assert_serves(server)
    assert not any("Traceback" in line for line in server.stderr_lines)


def _raw(peer: RawServer, data: bytes) -> None:
    assert peer.proc.stdin is not None
    peer.proc.stdin.write(data)
    peer.proc.stdin.flush()


UNKNOWN = b'{"jsonrpc": "2.0", "id": 90, "method": "x", "params": {}}'


@pytest.mark.parametrize(
    "header",
    [b"content-length: %d\r\n\r\n", b"Content-Length:%d\r\n\r\n", b"Content-Length: %d\n\n"],
    ids=["lower-case", "no-space", "lf-only"],
)
def test_lenient_headers_are_understood(server: RawServer, header: bytes) -> None:
    server.initialize(PSM)
    _raw(server, header % len(UNKNOWN) + UNKNOWN)
    assert server.response(90)["error"]["code"] == -32601  # read, and answered: no such method
    _assert_serves(server)


@pytest.mark.parametrize(
    "bad",
    [
        b"Content-Length: lots\r\n\r\n{}",
        b'Content-Length: 80\r\n\r\n{"jsonrpc": "2.0", "id": 91, "method": "x"}',  # too long
        b'Content-Length: 20\r\n\r\n{"jsonrpc": "2.0", "id": 91, "method": "x"}',  # too short
        b"Content-Length: 4\r\n\r\n\xff\xfe{}",  # not UTF-8
        b"Content-Length: 200000\r\n\r\n" + b"[" * 100000 + b"]" * 100000,  # too deep
    ],
    ids=["non-numeric", "longer-than-body", "shorter-than-body", "not-utf8", "too-deep"],
)
def test_a_bad_frame_never_makes_the_server_deaf(server: RawServer, bad: bytes) -> None:
    server.initialize(PSM)
    _raw(server, bad)
    _assert_serves(server)

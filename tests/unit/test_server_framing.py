"""Lenient JSON-RPC framing: every header spelling clients send, and resync after a bad frame."""

from __future__ import annotations

import asyncio

import pytest

from codellama_lsp.server.framing import FrameReader, next_frame

BODY = b'{"jsonrpc": "2.0", "method": "x"}'


@pytest.mark.parametrize(
    "header",
    [
        b"Content-Length: %d\r\n\r\n",
        b"content-length: %d\r\n\r\n",
        b"Content-Length:%d\r\n\r\n",
        b"CONTENT-LENGTH :  %d  \n\n",
        b"Content-Length: %d\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n",
        b"Content-Type: application/json\nContent-Length: %d\n\n",
    ],
)
def test_header_spellings_all_frame_the_body(header: bytes) -> None:
    data = header % len(BODY) + BODY + b"tail"
    frame = next_frame(data)
    assert frame.kind == "body" and frame.body == BODY
    assert data[frame.consumed :] == b"tail"


def test_incomplete_input_asks_for_more_and_keeps_the_header() -> None:
    data = b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY[:5]
    frame = next_frame(data)
    assert frame.kind == "more" and frame.consumed == 0
    assert next_frame(b"Content-Len").kind == "more"


def test_a_non_numeric_length_is_a_bad_frame_and_reading_goes_on() -> None:
    data = b"Content-Length: lots\r\n\r\n" + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY
    bad = next_frame(data)
    assert bad.kind == "bad" and "not a number" in bad.problem
    good = next_frame(data[bad.consumed :])
    assert good.kind == "body" and good.body == BODY


def _read_all(chunks: list[bytes]) -> list[bytes]:
    pending = list(chunks)

    async def read() -> bytes:
        return pending.pop(0) if pending else b""

    async def run() -> list[bytes]:
        reader = FrameReader(read)
        bodies = []
        while (body := await reader.next_body()) is not None:
            bodies.append(body)
            if body.startswith(b"{") and not body.endswith(b"}"):
                reader.resync_within(body)  # what the server does with a body that is not JSON
        return bodies

    return asyncio.run(run())


def test_junk_between_frames_is_skipped() -> None:
    frame = b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY
    assert _read_all([b"garbage\r\n", frame, b"more junk", frame]) == [BODY, BODY]


def test_a_body_shorter_than_its_length_does_not_swallow_the_next_frame() -> None:
    frame = b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY
    short = b"Content-Length: %d\r\n\r\n" % (len(BODY) + 10) + BODY[:-1]
    bodies = _read_all([short, frame, frame])
    assert bodies[-2:] == [BODY, BODY]


def test_frames_split_at_any_byte_are_read_whole() -> None:
    frame = b"content-length:%d\n\n" % len(BODY) + BODY
    data = frame * 3
    assert _read_all([data[i : i + 1] for i in range(len(data))]) == [BODY] * 3

"""JSON-RPC over stdio, framed leniently: one bad frame never makes the server deaf.

pygls' own loop only accepts ``Content-Length: N\\r\\n`` exactly; a header in
lower case, without the space, with LF line ends or a wrong length leaves it
reading bodies as headers for good.  Here the ``Content-Length`` header is
found case-insensitively with optional whitespace and ``\\n`` or ``\\r\\n``, other
headers are skipped, and after a bad frame reading resumes at the next
``Content-Length``.  A body that is not UTF-8 JSON (or nests too deep) is
answered with a parse error by the caller.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

log = logging.getLogger(__name__)

_CONTENT_LENGTH = re.compile(rb"content-length[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?\n", re.IGNORECASE)
_NAME = b"content-length"
#: Bytes kept when no header is in sight: a header may be arriving in pieces.
_TAIL = 32
#: Headers after Content-Length longer than this are not headers.
_MAX_HEADERS = 8192
READ_SIZE = 65536


@dataclass(frozen=True)
class Frame:
    """What the buffer holds: a body, a bad frame, or not enough yet."""

    #: "body", "bad" or "more".
    kind: str
    #: Bytes of the buffer this frame used up (junk, headers, body).
    consumed: int
    body: bytes = b""
    problem: str = ""
    #: Bytes before the header that were not part of any frame.
    junk: int = 0


def next_frame(buf: bytes | bytearray) -> Frame:
    """The first frame in ``buf``; junk before a ``Content-Length`` is skipped."""
    found = _CONTENT_LENGTH.search(buf)
    if found is None:
        junk = max(0, len(buf) - _TAIL)
        return Frame("more", junk, junk=junk)
    junk = found.start()
    pos = found.end()
    while True:  # the other headers, up to the blank line
        end = buf.find(b"\n", pos)
        if end < 0:
            if len(buf) - found.end() > _MAX_HEADERS:
                return Frame("bad", found.end(), problem="headers never end", junk=junk)
            return Frame("more", junk, junk=junk)
        line = bytes(buf[pos:end]).strip()
        pos = end + 1
        if not line:
            break
        if b":" not in line or _CONTENT_LENGTH.match(line + b"\n"):
            return Frame("bad", found.end(), problem=f"not a header: {line[:60]!r}", junk=junk)
    value = found.group(1)
    if not value.isdigit():
        problem = f"Content-Length {value[:20]!r} is not a number"
        return Frame("bad", pos, problem=problem, junk=junk)
    length = int(value)
    if len(buf) - pos < length:
        return Frame("more", junk, junk=junk)
    return Frame("body", pos + length, bytes(buf[pos : pos + length]), junk=junk)


def _header_start(body: bytes) -> int:
    """Where a ``Content-Length`` header, or the start of one at the very end, begins."""
    lower = body.lower()
    start = lower.find(_NAME)
    if start >= 0:
        return start
    for i in range(max(0, len(body) - len(_NAME) + 1), len(body)):
        if _NAME.startswith(lower[i:]):
            return i
    return -1


class FrameReader:
    """Bodies from a byte stream, one at a time."""

    def __init__(self, read: Callable[[], Awaitable[bytes]]) -> None:
        self._read = read
        self._buf = bytearray()

    async def next_body(self) -> bytes | None:
        """The next frame's body; None when the stream ended."""
        while True:
            frame = next_frame(self._buf)
            if bytes(self._buf[: frame.junk]).strip():
                log.warning("skipped %d bytes that were not a frame", frame.junk)
            if frame.kind == "bad":
                log.warning("skipped a bad frame: %s", frame.problem)
            del self._buf[: frame.consumed]
            if frame.kind == "body":
                return frame.body
            if frame.kind == "more":
                chunk = await self._read()
                if not chunk:
                    return None
                self._buf += chunk

    def resync_within(self, body: bytes) -> None:
        """A body that was not JSON may hold the start of the next frame: read it again.

        A length longer than its body swallows the next frame's header, whole or
        in part (``...}Content-Len``); that part goes back into the buffer.
        """
        start = _header_start(body)
        if start >= 0:
            self._buf[:0] = body[start:]


def _whole_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


class _Protocol(Protocol):
    def structure_message(self, data: dict[str, Any]) -> Any: ...

    def handle_message(self, message: Any) -> None: ...

    def send_parse_error(self, detail: str) -> None: ...


async def serve(
    stdin: BinaryIO,
    protocol: _Protocol,
    stop: threading.Event,
    on_error: Callable[[Exception, Any], None],
    executor: ThreadPoolExecutor | None,
) -> None:
    """Read frames until EOF or ``stop``; each body goes to the protocol."""
    loop = asyncio.get_running_loop()
    read1 = getattr(stdin, "read1", None) or stdin.read

    def read() -> Awaitable[bytes]:
        return loop.run_in_executor(executor, read1, READ_SIZE)

    frames = FrameReader(read)
    while not stop.is_set():
        body = await frames.next_body()
        if body is None:
            return
        # Let the tasks the previous message started run before the next one is
        # handled, as when every message waits for its read: a burst of buffered
        # messages must not starve them (a model load that initialized begins).
        await asyncio.sleep(0)
        try:
            message = json.loads(body, object_hook=protocol.structure_message)
        except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, too deep
            log.warning("malformed JSON from the client: %s", exc)
            frames.resync_within(body)
            protocol.send_parse_error(str(exc) or type(exc).__name__)
            continue
        except Exception as exc:  # answered already, or bad params of a notification
            if not _whole_json(body):  # the hook ran before the parser saw the end
                frames.resync_within(body)
            on_error(exc, None)
            continue
        try:
            protocol.handle_message(message)
        except Exception as exc:
            log.exception("unable to handle message")
            on_error(exc, None)

"""A minimal JSON-RPC-over-stdio peer for the protocol edge cases a real client never sends.

pytest-lsp's client always sends well-formed messages after initialize; malformed
JSON, requests before initialize and missing params need bytes written by hand.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Sequence
from queue import Empty, Queue
from typing import Any


class RawServer:
    def __init__(self, args: Sequence[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "codellama_lsp.server", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.messages: Queue[dict[str, Any]] = Queue()
        self.stderr_lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self._next_id = 0

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line.decode("utf-8", "replace"))

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
            assert length is not None
            self.messages.put(json.loads(out.read(length)))

    def send_bytes(self, body: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_bytes(json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8"))

    def request(self, method: str, params: Any = None, *, with_params: bool = True) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method}
        if with_params:
            message["params"] = params
        self.send(message)
        return self._next_id

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"method": method, "params": params})

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
        """The first message matching ``predicate``; others are kept in ``seen``."""
        while True:
            try:
                message = self.messages.get(timeout=timeout)
            except Empty:
                raise TimeoutError("no matching message from the server") from None
            if predicate(message):
                return message

    def response(self, request_id: int | None, timeout: float = 30.0) -> dict[str, Any]:
        return self.wait_for(
            lambda m: "method" not in m and m.get("id") == request_id, timeout=timeout
        )

    def initialize(self, options: Any = None) -> dict[str, Any]:
        rid = self.request(
            "initialize",
            {
                "processId": None,
                "rootUri": None,
                "capabilities": {},
                "initializationOptions": options,
            },
        )
        result = self.response(rid)
        self.notify("initialized", {})
        return result

    def close(self, timeout: float = 10.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()

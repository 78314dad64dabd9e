"""Remote backends that misbehave on purpose: hung, trickling, flooding.

Each fake is a real server on 127.0.0.1 (raw sockets, so it can break HTTP
in ways a framework would not let it): it accepts and never answers, never
even completes the TCP handshake, sends one byte every so often, or sends a
line that never ends. The client must end every wait in time (cancel, the
time budget, ``backend.timeoutMs``), buffer nothing unbounded, and report one
outage per outage, with backoff, never "back" for a request that was only
superseded.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from codellama_lsp.quant.backend import CompletionRequest
from codellama_lsp.quant.errors import BackendUnavailable
from codellama_lsp.quant.remote import (
    MAX_BODY_BYTES,
    MAX_CHARS_PER_TOKEN,
    MAX_LINE_BYTES,
    RemoteConfig,
    RemoteEngine,
)

from test_server_session import Session, session

SSE_HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"

#: What the fake does with one completion POST: write to the socket, or not.
Answer = Callable[["Hostile", socket.socket], None]


class Hostile:
    """A completion server on 127.0.0.1 whose answers the test chooses, one per POST.

    ``answers[n]`` answers the n-th POST (the last one answers all later ones);
    GET (the client's probe) gets ``probe``, by default a short 200.
    """

    def __init__(
        self, *answers: Answer, probe: Answer | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        self.answers = answers
        self.tls = tls
        self.probe = probe or reply(200, b'{"status": "ok"}')
        self.posts = 0
        self.stopped = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> Hostile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self._listener.close()
        with self._lock:
            for conn in self._open:
                conn.close()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(body) < length:
                body += conn.recv(65536)
            if head.startswith(b"GET"):
                self.probe(self, conn)
            else:
                with self._lock:
                    n, self.posts = self.posts, self.posts + 1
                self.answers[min(n, len(self.answers) - 1)](self, conn)
        except OSError:
            pass  # the client hung up: that is often the point
        finally:
            if not self.stopped.is_set():
                conn.close()


def hang(server: Hostile, conn: socket.socket) -> None:
    """Accept, read the request, never answer (until the test ends)."""
    server.stopped.wait()


def reply(status: int, body: bytes) -> Answer:
    def answer(server: Hostile, conn: socket.socket) -> None:
        conn.sendall(
            f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
            "Content-Type: application/json\r\n\r\n".encode()
            + body
        )

    return answer


def events(*payloads: dict[str, Any]) -> Answer:
    """A well-formed stream of these events."""

    def answer(server: Hostile, conn: socket.socket) -> None:
        conn.sendall(
            SSE_HEADERS + b"".join(b"data: %s\n\n" % json.dumps(p).encode() for p in payloads)
        )

    return answer


def trickle(first: bytes, rest: bytes, every_s: float, headers: bytes = SSE_HEADERS) -> Answer:
    """``headers + first`` at once, then ``rest`` one byte every ``every_s``."""

    def answer(server: Hostile, conn: socket.socket) -> None:
        conn.sendall(headers + first)
        for byte in rest:
            if server.stopped.wait(every_s):
                return
            conn.sendall(bytes([byte]))

    return answer


def flood(head: bytes, unit: bytes, total: int) -> Answer:
    """``head``, then ``unit`` over and over, ``total`` bytes in all (or until the client goes)."""

    def answer(server: Hostile, conn: socket.socket) -> None:
        conn.sendall(head)
        sent = 0
        block = unit * max(1, 65536 // len(unit))
        while sent < total and not server.stopped.is_set():
            conn.sendall(block)
            sent += len(block)

    return answer


def content(text: str, stop: bool = False) -> dict[str, Any]:
    event: dict[str, Any] = {"content": text, "stop": stop}
    if stop:
        event.update(tokens_evaluated=5, timings={"prompt_n": 5, "predicted_n": 1})
    return event


def engine(
    url: str, protocol: str = "llama-server-completion", timeout_s: float = 5.0
) -> RemoteEngine:
    return RemoteEngine(RemoteConfig(protocol, url, timeout_s=timeout_s, n_ctx=4096))


REQUEST = CompletionRequest(prefix="def f():\n    ", suffix="", max_tokens=64, fim_order="psm")


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    return fn(), time.perf_counter() - started


@pytest.fixture
def hung() -> Iterator[Hostile]:
    with Hostile(hang) as server:
        yield server


# -- 16: a hung backend --------------------------------------------------------------


def test_cancel_ends_a_hung_request_at_once_and_it_is_no_answer(hung: Hostile) -> None:
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    result, took = timed(lambda: engine(hung.url).complete(REQUEST, cancel))
    assert result.stop_reason == "cancelled" and result.text == ""
    assert took < 1.0
    # Superseded before the server said anything: neither a success nor a failure.
    assert result.answered is False


@pytest.fixture
def unreachable() -> Iterator[str]:
    """A URL whose TCP handshake never completes: nothing accepts, its one-place queue is full."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    queued = socket.create_connection(listener.getsockname())
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        queued.close()
        listener.close()


def test_cancel_ends_a_connect_that_never_completes(unreachable: str) -> None:
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    result, took = timed(lambda: engine(unreachable, timeout_s=5).complete(REQUEST, cancel))
    assert result.stop_reason == "cancelled" and took < 1.0
    # Without a cancel the connect is bounded by backend.timeoutMs.
    with pytest.raises(BackendUnavailable, match=r"did not answer within 0\.5 s"):
        engine(unreachable, timeout_s=0.5).complete(REQUEST)


def test_superseded_waits_on_a_silent_server_add_up_to_one_outage(hung: Hostile) -> None:
    """A user who keeps typing supersedes every request before the timeout: the silence counts."""
    remote = engine(hung.url, timeout_s=1.0)
    results = []
    with pytest.raises(BackendUnavailable, match="did not answer within 1 s"):
        for _ in range(10):
            cancel = threading.Event()
            threading.Timer(0.25, cancel.set).start()
            results.append(remote.complete(REQUEST, cancel))
    assert len(results) == 3  # 3 x 0.25 s of silence, and the fourth makes 1 s
    assert all(r.stop_reason == "cancelled" and not r.answered for r in results)
    # Still silent: the next unanswered request is a failure at once (the backoff grows).
    cancel = threading.Event()
    threading.Timer(0.05, cancel.set).start()
    with pytest.raises(BackendUnavailable):
        remote.complete(REQUEST, cancel)


def test_an_answer_ends_the_silence() -> None:
    with Hostile(hang, events(content(" pass", stop=True)), hang) as server:
        remote = engine(server.url, timeout_s=1.0)
        for _ in range(2):  # the first hangs 0.6 s, the second answers, the third hangs again
            cancel = threading.Event()
            threading.Timer(0.6, cancel.set).start()
            result = remote.complete(REQUEST, cancel)
        assert result.text == " pass" and result.answered
        cancel = threading.Event()
        threading.Timer(0.6, cancel.set).start()
        assert not remote.complete(REQUEST, cancel).answered  # 0.6 s of silence, not 1.2


# -- 17: the time budget bounds every wait --------------------------------------------


def test_time_budget_ends_a_wait_for_the_first_byte(hung: Hostile) -> None:
    request = CompletionRequest(prefix="x", suffix="", time_budget_ms=500)
    result, took = timed(lambda: engine(hung.url, timeout_s=5).complete(request))
    assert result.stop_reason == "time_budget" and result.text == "" and not result.answered
    assert 0.45 < took < 1.5


@pytest.mark.parametrize("protocol", ["llama-server-completion", "openai"])
def test_time_budget_ends_a_trickle_with_what_was_received(protocol: str) -> None:
    if protocol == "openai":
        first = b'data: {"choices": [{"text": " total =", "finish_reason": null}]}\n\n'
        rest = b'data: {"choices": [{"text": " 0", "finish_reason": null}]}\n\n'
    else:
        first = b'data: {"content": " total =", "stop": false}\n\n'
        rest = b'data: {"content": " 0", "stop": false}\n\n'
    with Hostile(trickle(first, rest * 4, every_s=0.1)) as server:
        request = CompletionRequest(prefix="x", suffix="", time_budget_ms=800)
        result, took = timed(lambda: engine(server.url, protocol).complete(request))
    # One byte every 0.1 s would take 18 s for these events: the budget ends it at 0.8 s.
    assert result.stop_reason == "time_budget"
    assert result.text.startswith(" total =") and result.answered
    assert took < 2.0


def test_time_budget_ends_a_trickle_of_the_status_line() -> None:
    status = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
    with Hostile(trickle(b"", status, every_s=0.1, headers=b"")) as server:
        request = CompletionRequest(prefix="x", suffix="", time_budget_ms=500)
        result, took = timed(lambda: engine(server.url).complete(request))
    assert result.stop_reason == "time_budget" and not result.answered and took < 1.5


def test_without_a_budget_a_trickled_line_is_bounded_by_the_timeout() -> None:
    rest = b'data: {"content": " never ends", "stop": false}\n\n'
    with Hostile(trickle(b"", rest, every_s=0.1)) as server:
        started = time.perf_counter()
        with pytest.raises(BackendUnavailable, match="did not answer within 1 s"):
            engine(server.url, timeout_s=1.0).complete(REQUEST)
    assert time.perf_counter() - started < 2.5


# -- 18: nothing unbounded is buffered -------------------------------------------------


def peak_mib(fn: Callable[[], Any]) -> tuple[Any, float]:
    """What ``fn`` raised or returned, and the most memory Python held meanwhile, in MiB."""
    tracemalloc.start()
    try:
        try:
            outcome: Any = fn()
        except Exception as exc:  # the outcome under test
            outcome = exc
        return outcome, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("protocol", ["llama-server-infill", "openai"])
def test_a_line_that_never_ends_fails_with_bounded_memory(protocol: str) -> None:
    with Hostile(flood(SSE_HEADERS + b"data: ", b"x", 96 * 2**20)) as server:
        outcome, peak = peak_mib(lambda: engine(server.url, protocol).complete(REQUEST))
    assert isinstance(outcome, BackendUnavailable), outcome
    assert "line longer than" in str(outcome) and server.url in str(outcome)
    assert peak < 4 * MAX_LINE_BYTES / 2**20


def test_endless_events_are_bounded_in_total() -> None:
    with Hostile(flood(SSE_HEADERS, b": keep-alive\n", 96 * 2**20)) as server:
        outcome, peak = peak_mib(lambda: engine(server.url).complete(REQUEST))
    assert isinstance(outcome, BackendUnavailable), outcome
    assert "more than" in str(outcome) and "MiB" in str(outcome)
    assert peak < 16


def test_text_past_the_token_limit_is_not_kept() -> None:
    event = b'data: {"content": "%s", "stop": false}\n\n' % (b"a" * 1000)
    with Hostile(flood(SSE_HEADERS, event, 2 * 2**20)) as server:
        result, took = timed(lambda: engine(server.url).complete(REQUEST))
    assert result.stop_reason == "max_tokens"
    assert len(result.text) <= REQUEST.max_tokens * MAX_CHARS_PER_TOKEN + 256
    assert took < 2


def test_huge_error_body_and_huge_probe_are_bounded() -> None:
    huge = flood(b"HTTP/1.1 500 Oops\r\nContent-Type: text/plain\r\n\r\n", b"e", 96 * 2**20)
    with Hostile(huge, probe=huge) as server:
        remote = engine(server.url)
        outcome, peak = peak_mib(lambda: remote.complete(REQUEST))
        assert isinstance(outcome, BackendUnavailable) and "HTTP 500" in str(outcome)
        assert len(str(outcome)) < 400 and peak < 8
        outcome, peak = peak_mib(remote.probe)
        assert isinstance(outcome, BackendUnavailable) and "HTTP 500" in str(outcome)
        assert peak < 8
    big = flood(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n", b"{", 96 * 2**20)
    with Hostile(hang, probe=big) as server:
        outcome, peak = peak_mib(engine(server.url).probe)
        assert isinstance(outcome, BackendUnavailable), outcome
        assert f"more than {MAX_BODY_BYTES // 2**20} MiB" in str(outcome) and peak < 16


def test_a_trickled_probe_is_bounded_by_the_timeout() -> None:
    with Hostile(hang, probe=trickle(b"", b"HTTP/1.1 200 OK\r\n\r\n" * 10, 0.1, b"")) as server:
        started = time.perf_counter()
        with pytest.raises(BackendUnavailable, match="did not answer within 1 s"):
            engine(server.url, timeout_s=1.0).probe()
    assert time.perf_counter() - started < 2.5


# -- TLS: the same connect, wrapped ------------------------------------------------------


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_https_backend_with_its_own_certificate(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with Hostile(events(content(" pass"), content("", stop=True)), tls=context) as server:
        url = server.url
        trusting = RemoteEngine(
            RemoteConfig("llama-server-completion", url, timeout_s=2, verify_tls=False)
        )
        assert trusting.complete(REQUEST).text == " pass"
        strict = RemoteEngine(RemoteConfig("llama-server-completion", url, timeout_s=2))
        with pytest.raises(BackendUnavailable, match="TLS"):
            strict.complete(REQUEST)


# -- over LSP: one outage, backoff, nobody waits behind a hung request --------------------


def hostile_options(url: str, timeout_ms: int) -> dict[str, Any]:
    return {
        "model": {"nCtx": 4096},
        "backend": {
            "type": "llama-server",
            "endpoint": "completion",
            "url": url,
            "timeoutMs": timeout_ms,
        },
        "completion": {"fimOrder": "psm", "timeBudgetMs": 0},
    }


def inline_task(s: Session, uri: str, text: str) -> asyncio.Future[Any]:
    s.open(text, uri)
    lines = text.split("\n")
    return asyncio.ensure_future(s.inline(len(lines) - 1, len(lines[-1]), uri))


async def test_a_newer_request_in_another_document_does_not_wait_behind_a_hung_one() -> None:
    good = events(content(" return 1"), content("", stop=True))
    with Hostile(hang, good) as server:
        async with session("visual-studio-code", hostile_options(server.url, 5000)) as s:
            await s.wait_status("ready")
            stuck = inline_task(s, "file:///workspace/a.py", "def a():\n    ")
            await asyncio.sleep(0.3)
            started = time.perf_counter()
            newer = await asyncio.wait_for(
                inline_task(s, "file:///workspace/b.py", "def b():\n    "), 3
            )
            assert [i.insert_text for i in newer.items] == [" return 1"]
            assert time.perf_counter() - started < 2.5
            assert list((await asyncio.wait_for(stuck, 1)).items) == []
            assert not [m for m in s.client.messages if "not answering" in m.message]


async def test_a_hung_backend_is_one_outage_with_backoff(hung: Hostile, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    async with session(
        "visual-studio-code", hostile_options(hung.url, 1000), args=("--log-file", str(log))
    ) as s:
        await s.wait_status("ready")
        # One request waits out the timeout: the outage is told, backoff starts.
        first = await asyncio.wait_for(inline_task(s, "file:///workspace/w0.py", "x0 = "), 5)
        assert list(first.items) == []
        await s.wait_message("not answering")
        # Then the user types on for 3.5 s, in two documents: each request supersedes the last.
        tasks = []
        for n in range(1, 15):
            tasks.append(inline_task(s, f"file:///workspace/w{n % 2}.py", f"x{n} = "))
            await asyncio.sleep(0.25)
        started = time.perf_counter()
        answers = await asyncio.wait_for(asyncio.gather(*tasks), 5)
        # Only the last one can still be waiting, and only up to the timeout.
        assert time.perf_counter() - started < 2.5
        assert all(list(a.items) == [] for a in answers)
        outages = [m for m in s.client.messages if "not answering" in m.message]
        assert len(outages) == 1
        assert not [m for m in s.client.messages if f"{hung.url} is back" in m.message]
        # Backoff: 1 s, 2 s, 4 s between tries, not a connection per keystroke.
        assert hung.posts <= 6, hung.posts
    text = log.read_text()
    assert text.count("not answering") == 1 and f"{hung.url} is back" not in text


async def test_superseded_connects_free_their_threads_at_once(unreachable: str) -> None:
    """Requests stuck in a connect must not hold the threads completions run on."""
    async with session("visual-studio-code", hostile_options(unreachable, 2000)) as s:
        await s.wait_message("did not answer within 2 s")  # the probe: told once
        await asyncio.sleep(1.1)  # past the first backoff
        a = inline_task(s, "file:///workspace/a.py", "a = ")
        await asyncio.sleep(0.2)
        b = inline_task(s, "file:///workspace/b.py", "b = ")
        await asyncio.sleep(0.2)
        started = time.perf_counter()
        c = await asyncio.wait_for(inline_task(s, "file:///workspace/c.py", "c = "), 10)
        # c's own connect is all it waits for, not a or b's (2 s each, from their start).
        assert time.perf_counter() - started < 2.8
        assert [list(r.items) for r in (c, await a, await b)] == [[], [], []]
        assert len([m for m in s.client.messages if "not answering" in m.message]) == 1

"""Remote inference: the same completions from a shared server instead of the local model.

Three wire protocols, all streamed so that a cancelled or superseded request
closes its connection and the server stops generating:

* ``llama-server`` ``/infill``: prefix, suffix and the repository context as
  ``input_extra``; llama-server builds the FIM prompt with its own tokenizer.
* ``llama-server`` ``/completion``: our own prompt string (Code Llama's FIM
  text form), with ``cache_prompt`` so its KV cache is reused across keystrokes.
* ``openai``: ``/v1/completions`` with our prompt string (vLLM, Ollama,
  LM Studio and llama-server all serve it).

Every wait is bounded: the connect, the answer's head and each line are due
within ``timeout_s``, the whole answer within the request's time budget, and a
cancel ends any of them at once (the socket is shut down). Lines and bodies are
size-capped, so a broken server cannot fill memory.

Failures become :class:`BackendUnavailable` with one clear line; :class:`Health`
spaces out retries so that a down server costs nothing per keystroke, and
notices by itself when it comes back. A request superseded before the server
said anything is neither a success nor, until such waits add up to the
timeout, a failure (``CompletionResult.answered``).
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import json
import logging
import os
import selectors
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from .backend import (
    BackendInfo,
    CompletionRequest,
    CompletionResult,
    Health,
    StopReason,
    StopRule,
    StopRules,
)
from .errors import BackendUnavailable
from .fim import FAMILIES, request_text

log = logging.getLogger(__name__)

PROTOCOLS = ("llama-server-infill", "llama-server-completion", "openai")

# What a server can make us hold is capped: a broken one may send a line that
# never ends, or never stop sending; nothing it sends is buffered past these.
#: One line of a stream (one SSE event), plus twice the request's own size
#: (llama-server's last event repeats the prompt).
MAX_LINE_BYTES = 1 << 20
#: A whole body that is not streamed (the probe's); a stream may take this plus
#: its lines' allowance and ``STREAM_BYTES_PER_TOKEN`` per token asked for.
MAX_BODY_BYTES = 4 << 20
STREAM_BYTES_PER_TOKEN = 4096
#: An error body is read this far, for its one-line message.
MAX_ERROR_BYTES = 64 << 10
#: Generated text kept per token asked for (no token is longer): a server that
#: ignores the token limit is cut there, as if at ``max_tokens``.
MAX_CHARS_PER_TOKEN = 64


@dataclass(frozen=True)
class RemoteConfig:
    #: "llama-server-infill", "llama-server-completion" or "openai".
    protocol: str
    url: str
    model: str = ""
    #: Name of the environment variable holding the API key (never the key itself).
    api_key_env: str = ""
    timeout_s: float = 30.0
    verify_tls: bool = True
    #: The model's context window as the server was started with (budgets the prompt).
    n_ctx: int = 16384
    #: The FIM family the server runs (``quant.fim.FAMILIES``): the prompts written here.
    family: str = "codellama"

    @property
    def model_path(self) -> str:
        """A label that identifies the backend in logs and cache keys."""
        return f"{self.protocol} {self.url}" + (f" {self.model}" if self.model else "")


def _input_extra(request: CompletionRequest) -> list[dict[str, str]]:
    """``/infill``'s chunks: one per file (llama-server writes each after its model's
    file separator), or the commented preamble as one."""
    if request.files:
        return [{"filename": path, "text": text} for path, text in request.files]
    return [{"filename": "context", "text": request.context}] if request.context else []


class RemoteEngine:
    """A completion backend on another machine: a :class:`~.backend.Backend` like the local one."""

    def __init__(self, config: RemoteConfig) -> None:
        if config.protocol not in PROTOCOLS:
            raise BackendUnavailable(f"unknown backend protocol {config.protocol!r}")
        parsed = urllib.parse.urlsplit(config.url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise BackendUnavailable(
                f"backend url must be http(s)://host[:port], got {config.url!r}"
            )
        if config.family not in FAMILIES:
            raise BackendUnavailable(
                f"unknown model family {config.family!r}; expected one of {', '.join(FAMILIES)}"
            )
        self.config = config
        self._family = FAMILIES[config.family]
        self._parsed = parsed
        self._health = Health()
        #: Seconds spent waiting on this server since it last answered anything.
        self._silent_s = 0.0
        self._silence_lock = threading.Lock()

    # -- the backend interface --------------------------------------------------

    def describe(self) -> BackendInfo:
        kind = "openai" if self.config.protocol == "openai" else "llama-server"
        return BackendInfo(
            kind=kind,
            label=self.config.model_path,
            n_ctx=self.config.n_ctx,
            family=self._family.name,
            repo_level=self._family.repo_level,
        )

    def health(self) -> Health:
        return self._health

    def count_tokens(self, text: str) -> int:
        # No tokenizer here: about three characters per token, as for packing.
        return len(text) // 3 + 1

    def prompt_text(self, request: CompletionRequest) -> str:
        if self.config.protocol == "llama-server-infill":
            extra = "".join(f"[{e['filename']}]\n{e['text']}" for e in _input_extra(request))
            return (
                f"[input_extra]\n{extra}[input_prefix]\n{request.prefix}"
                f"[input_suffix]\n{request.suffix}"
            )
        return request_text(request, self._family)

    def forget(self, document: str) -> None:
        """Nothing per document is kept here (the server keeps its own cache)."""

    def close(self) -> None:
        pass

    def complete(
        self,
        request: CompletionRequest,
        cancel: threading.Event | None = None,
        stop: StopRule | None = None,
        more_stops: StopRules | None = None,
    ) -> CompletionResult:
        """One streamed answer: a server gives one candidate, and heals no tokens."""
        started = time.perf_counter()
        if request.warm and self.config.protocol == "openai":
            # An OpenAI-compatible server has no way to only evaluate a prompt.
            return CompletionResult("", 0, 0, 0, "max_tokens", 0.0, 0.0, 0.0)
        path, body = self._request_body(request)
        read = _StreamRead(started, request.time_budget_ms, stop, cancel, request.max_tokens)
        exchange = _Exchange(self, _Watch(self.config.timeout_s, cancel, read.deadline))
        try:
            with exchange:
                for event in self._events(exchange, path, body, request.max_tokens):
                    if read.take(*self._piece(event, read.stats)):
                        break
        except _Ended as ended:
            read.reason = ended.reason
        finally:
            silent_s = self._heard(exchange.answered, time.perf_counter() - started)
        if cancel is not None and cancel.is_set():
            read.reason = "cancelled"
        if not exchange.answered and silent_s >= self.config.timeout_s:
            # Each wait was ended (superseded, out of time) before the timeout, but
            # together they are one: the server is not answering.
            raise BackendUnavailable(self._timeout_error())
        stats = read.stats
        now = time.perf_counter()
        return CompletionResult(
            text=read.text,
            prompt_tokens=int(stats.get("prompt_tokens", 0)),
            reused_tokens=int(stats.get("reused_tokens", 0)),
            generated_tokens=int(stats.get("generated_tokens", 0)),
            stop_reason=read.reason,
            tokenize_ms=0.0,
            ttft_ms=read.ttft_ms or (now - started) * 1000,
            total_ms=(now - started) * 1000,
            context_tokens=self.count_tokens(request.context) if request.context else 0,
            answered=exchange.answered,
        )

    def probe(self) -> str:
        """A cheap request that shows the server is there; returns what it serves."""
        path = "/v1/models" if self.config.protocol == "openai" else "/health"
        with _Exchange(self, _Watch(self.config.timeout_s)) as exchange:
            response = exchange.send("GET", self._path(path))
            if response.status >= 400:
                data = exchange.body(response, MAX_ERROR_BYTES)
                raise BackendUnavailable(self._http_error(response.status, data))
            data = exchange.body(response, MAX_BODY_BYTES)
            self._heard(True, 0.0)
            if len(data) > MAX_BODY_BYTES:
                raise BackendUnavailable(
                    f"{self.config.url} answered {path} with more than {_mib(MAX_BODY_BYTES)}"
                )
            return data.decode("utf-8", "replace")[:200]

    def _heard(self, answered: bool, waited_s: float) -> float:
        """Add up the time spent waiting for a server that said nothing; an answer ends it."""
        with self._silence_lock:
            self._silent_s = 0.0 if answered else self._silent_s + waited_s
            return self._silent_s

    # -- wire formats -------------------------------------------------------------

    def _request_body(self, request: CompletionRequest) -> tuple[str, dict[str, Any]]:
        if self.config.protocol == "llama-server-infill":
            extra = _input_extra(request)
            return "/infill", {
                "input_prefix": request.prefix,
                "input_suffix": request.suffix,
                "input_extra": extra,
                "n_predict": 0 if request.warm else request.max_tokens,
                "temperature": 0.0,
                "top_k": 1,
                "cache_prompt": True,
                "stream": True,
            }
        prompt = request_text(request, self._family)
        if self.config.protocol == "llama-server-completion":
            return "/completion", {
                "prompt": prompt,
                "n_predict": 0 if request.warm else request.max_tokens,
                "temperature": 0.0,
                "top_k": 1,
                "cache_prompt": True,
                "stream": True,
            }
        body: dict[str, Any] = {
            "prompt": prompt,
            "max_tokens": request.max_tokens,
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
            "stop": ["<EOT>"],
        }
        if self.config.model:
            body["model"] = self.config.model
        return "/v1/completions", body

    def _piece(self, event: dict[str, Any], stats: dict[str, Any]) -> tuple[str, StopReason | None]:
        """The text in one streamed event, and a stop reason when it is the last one."""
        if self.config.protocol == "openai":
            usage = event.get("usage")
            if isinstance(usage, dict):
                stats["prompt_tokens"] = usage.get("prompt_tokens", 0)
                stats["generated_tokens"] = usage.get("completion_tokens", 0)
            choices = event.get("choices")
            if not isinstance(choices, list):
                if usage is not None:
                    return "", None
                raise BackendUnavailable(f"unexpected answer: {json.dumps(event)[:200]}")
            if not choices:
                return "", None
            choice = choices[0]
            finish = choice.get("finish_reason")
            piece = str(choice.get("text") or "")
            return piece, (None if finish is None else "eot" if finish == "stop" else "max_tokens")
        if "content" not in event and "stop" not in event:
            raise BackendUnavailable(f"unexpected answer: {json.dumps(event)[:200]}")
        piece = str(event.get("content") or "")
        if not event.get("stop"):
            return piece, None
        timings = event.get("timings") or {}
        evaluated = int(timings.get("prompt_n", 0))
        stats["prompt_tokens"] = int(event.get("tokens_evaluated", evaluated))
        stats["reused_tokens"] = max(0, stats["prompt_tokens"] - evaluated)
        stats["generated_tokens"] = int(timings.get("predicted_n", 0))
        return piece, "max_tokens" if event.get("stopped_limit") else "eot"

    # -- HTTP -----------------------------------------------------------------------

    def _open(self, watch: _Watch) -> socket.socket:
        """A connected socket; the connect and the TLS handshake end when ``watch`` says so."""
        host = self._parsed.hostname or ""
        port = self._parsed.port or (443 if self._parsed.scheme == "https" else 80)
        error: OSError = OSError(f"no address for {host}")
        for family, kind, proto, _, address in socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        ):
            sock = socket.socket(family, kind, proto)
            watch.attach(sock)
            try:
                _connect(sock, address, watch)
            except OSError as exc:
                sock.close()
                if watch.ended is not None:
                    raise
                error = exc
                continue
            sock.settimeout(self.config.timeout_s)
            if self._parsed.scheme != "https":
                return sock
            context = ssl.create_default_context()
            if not self.config.verify_tls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
            watch.attach(tls)
            try:
                tls.do_handshake()
            except BaseException:
                tls.close()
                raise
            return tls
        raise error

    def _path(self, path: str) -> str:
        base = self._parsed.path.rstrip("/")
        if self.config.protocol == "openai" and base.endswith("/v1") and path.startswith("/v1/"):
            path = path[3:]
        return base + path

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.config.api_key_env:
            key = os.environ.get(self.config.api_key_env, "")
            if key:
                headers["Authorization"] = f"Bearer {key}"
        return headers

    def _events(
        self, exchange: _Exchange, path: str, body: dict[str, Any], max_tokens: int
    ) -> Iterator[dict[str, Any]]:
        """The events of one streamed POST, each line and the whole stream size-capped."""
        url = self.config.url
        payload = json.dumps(body).encode("utf-8")
        response = exchange.send("POST", self._path(path), payload)
        if response.status >= 400:
            data = exchange.body(response, MAX_ERROR_BYTES)
            raise BackendUnavailable(self._http_error(response.status, data))
        # llama-server's last event repeats the prompt: lines may be as long as the request.
        echo = 2 * len(payload)
        line_limit = MAX_LINE_BYTES + echo
        stream_limit = MAX_BODY_BYTES + echo + STREAM_BYTES_PER_TOKEN * max_tokens
        for line in exchange.lines(response, line_limit, stream_limit):
            text = line.decode("utf-8", "replace").strip()
            if not text or text.startswith(":"):
                continue
            if text.startswith("error:"):
                raise BackendUnavailable(f"{url}: {text[6:].strip()[:200]}")
            if not text.startswith("data:"):
                raise BackendUnavailable(
                    f"{url} sent something that is not a completion stream: {text[:120]!r}"
                )
            raw = text[5:].strip()
            if raw == "[DONE]":
                return
            try:
                event = json.loads(raw)
            except ValueError as exc:
                raise BackendUnavailable(f"{url} sent invalid JSON: {raw[:120]!r}") from exc
            if not isinstance(event, dict):
                raise BackendUnavailable(f"{url} sent {raw[:120]!r}")
            if "error" in event and "choices" not in event and "content" not in event:
                error = event["error"]
                message = error.get("message", error) if isinstance(error, dict) else error
                raise BackendUnavailable(f"{url}: {str(message)[:200]}")
            yield event

    def _http_error(self, status: int, data: bytes) -> str:
        detail = data.decode("utf-8", "replace").strip()
        try:
            parsed = json.loads(detail)
            error = parsed.get("error", parsed) if isinstance(parsed, dict) else parsed
            detail = str(error.get("message", error) if isinstance(error, dict) else error)
        except ValueError:
            pass
        hint = ""
        if status in (401, 403):
            hint = (
                f" (check the API key in ${self.config.api_key_env})"
                if self.config.api_key_env
                else " (the server wants an API key: set codellama.backend.apiKeyEnv)"
            )
        return f"{self.config.url} answered HTTP {status}: {detail[:200]}{hint}"

    def _timeout_error(self) -> str:
        return f"{self.config.url} did not answer within {self.config.timeout_s:g} s"

    def _connection_error(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError | socket.timeout):
            return self._timeout_error()
        if isinstance(exc, ssl.SSLError):
            return f"TLS with {self.config.url} failed: {exc}"
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return f"cannot reach {self.config.url}: {reason}"


def _mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB"


def _connect(sock: socket.socket, address: Any, watch: _Watch) -> None:
    """``sock.connect`` that a cancel or the deadlines end (a blocking connect sees neither)."""
    sock.setblocking(False)
    code = sock.connect_ex(address)
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_WRITE)
        while code in _CONNECTING and watch.ended is None:
            if selector.select(_POLL_S):
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if watch.ended is not None:
        raise OSError(f"connect ended: {watch.ended}")
    if code:
        raise OSError(code, os.strerror(code))


_CONNECTING = (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY, errno.EINTR)
#: How often the watcher and a connect in progress look at the cancel event and the clock.
_POLL_S = 0.02


class _Ended(Exception):
    """The request was cancelled or ran out of its time budget: the answer is what came."""

    def __init__(self, reason: StopReason) -> None:
        super().__init__(reason)
        self.reason: StopReason = reason


class _Watch:
    """Ends one exchange from outside: on cancel, at the time budget, or at the timeout.

    A blocking read sees neither a cancel nor a deadline, and a server that
    trickles one byte at a time resets the socket timeout forever; so a thread
    shuts the socket down, the reading thread wakes up and :attr:`ended` says why.
    The next line (at first: the connect and the answer's head) is due within
    ``timeout_s`` of the last one.
    """

    def __init__(
        self,
        timeout_s: float,
        cancel: threading.Event | None = None,
        budget_at: float | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.cancel = cancel
        self.budget_at = budget_at
        self.due_at = time.perf_counter() + timeout_s
        self.ended: Literal["cancelled", "time_budget", "timeout"] | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        threading.Thread(target=self._run, name="remote-watch", daemon=True).start()

    def progress(self) -> None:
        """Something arrived: the next part is due within the timeout."""
        self.due_at = time.perf_counter() + self.timeout_s

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            ended = self.ended
        if ended is not None:
            _shutdown(sock)

    def close(self) -> None:
        self._done.set()

    def _run(self) -> None:
        while not self._done.wait(_POLL_S):
            now = time.perf_counter()
            if self.cancel is not None and self.cancel.is_set():
                reason: Literal["cancelled", "time_budget", "timeout"] = "cancelled"
            elif self.budget_at is not None and now >= self.budget_at:
                reason = "time_budget"
            elif now >= self.due_at:
                reason = "timeout"
            else:
                continue
            with self._lock:
                self.ended = reason
                sock = self._sock
            if sock is not None:
                _shutdown(sock)
            return


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


#: What http.client raises when a socket is shut down under it (ValueError,
#: AttributeError: a TLS socket after shutdown), besides socket errors.
_IO_ERRORS = (OSError, http.client.HTTPException, ValueError, AttributeError)


class _Exchange:
    """One HTTP request and its answer, every wait bounded by a :class:`_Watch`."""

    def __init__(self, engine: RemoteEngine, watch: _Watch) -> None:
        self._engine = engine
        self._watch = watch
        self._sock: socket.socket | None = None
        self._connection: http.client.HTTPConnection | None = None
        self._response: http.client.HTTPResponse | None = None
        #: The server sent the head of an answer (llama-server does when it starts the request).
        self.answered = False

    def __enter__(self) -> _Exchange:
        return self

    def __exit__(self, *exc: object) -> None:
        """Shut the socket down first: that is what stops the server generating."""
        self._watch.close()
        sock, self._sock = self._sock, None
        if sock is not None:
            _shutdown(sock)
        for part in (self._response, self._connection, sock):
            if part is not None:
                part.close()
        self._response = self._connection = None

    def send(self, method: str, path: str, body: bytes | None = None) -> http.client.HTTPResponse:
        engine = self._engine
        try:
            self._sock = engine._open(self._watch)
            # The socket is ours (connected under the watch): http.client only speaks HTTP on it.
            connection = http.client.HTTPConnection(
                engine._parsed.hostname or "", engine._parsed.port, timeout=engine.config.timeout_s
            )
            connection.sock = self._sock
            self._connection = connection
            connection.request(method, path, body=body, headers=engine._headers())
            self._response = response = connection.getresponse()
        except _IO_ERRORS as exc:
            raise self._failure(exc) from exc
        self.answered = True
        self._watch.progress()
        return response

    def body(self, response: http.client.HTTPResponse, limit: int) -> bytes:
        """At most ``limit + 1`` bytes of a body (one more: the caller can tell it is longer)."""
        try:
            data = response.read(limit + 1)
        except _IO_ERRORS as exc:
            raise self._failure(exc) from exc
        if self._watch.ended is not None:
            raise self._failure(None)
        return data

    def lines(
        self, response: http.client.HTTPResponse, line_limit: int, limit: int
    ) -> Iterator[bytes]:
        """The body's lines, none longer than ``line_limit``, all together within ``limit``."""
        url = self._engine.config.url
        received = 0
        while True:
            try:
                line = response.readline(line_limit + 1)
            except _IO_ERRORS as exc:
                raise self._failure(exc) from exc
            if self._watch.ended is not None:
                raise self._failure(None)  # what came with the shutdown is cut short
            if not line:
                return
            if len(line) > line_limit:
                raise BackendUnavailable(
                    f"{url} sent a line longer than {_mib(line_limit)}: not a completion stream"
                )
            received += len(line)
            if received > limit:
                raise BackendUnavailable(
                    f"{url} sent more than {_mib(limit)} for one completion: not a completion "
                    "stream"
                )
            self._watch.progress()
            yield line

    def _failure(self, exc: BaseException | None) -> Exception:
        """What an I/O error means: the watch ended it, else the server failed."""
        cancel = self._watch.cancel
        ended = self._watch.ended or (
            "cancelled" if cancel is not None and cancel.is_set() else None
        )
        if ended == "timeout":
            return BackendUnavailable(self._engine._timeout_error())
        if ended is not None:
            return _Ended(ended)
        if isinstance(exc, OSError | http.client.HTTPException):
            return BackendUnavailable(self._engine._connection_error(exc))
        return BackendUnavailable(f"{self._engine.config.url}: the connection broke")


class _StreamRead:
    """The text of one streamed answer so far, and whether it must end here."""

    def __init__(
        self,
        started: float,
        time_budget_ms: float,
        stop: StopRule | None,
        cancel: threading.Event | None,
        max_tokens: int,
    ) -> None:
        self.started = started
        self.deadline = started + time_budget_ms / 1000 if time_budget_ms > 0 else None
        self.stop = stop
        self.cancel = cancel
        self.max_chars = max(1, max_tokens) * MAX_CHARS_PER_TOKEN
        self.text = ""
        self.ttft_ms = 0.0
        self.reason: StopReason = "max_tokens"
        self.stats: dict[str, Any] = {}

    def take(self, piece: str, final: StopReason | None) -> bool:
        """Add one event's text; True when the answer is complete."""
        if piece:
            if not self.text:
                self.ttft_ms = (time.perf_counter() - self.started) * 1000
            self.text += piece
            if len(self.text) > self.max_chars:
                # More than the tokens asked for can hold: the server ignored the limit.
                self.text, self.reason = self.text[: self.max_chars], "max_tokens"
                return True
            keep = self.stop(self.text) if self.stop is not None else None
            if keep is not None:
                self.text, self.reason = self.text[:keep], "stop_rule"
                return True
        if final is not None:
            self.reason = final
            return True
        if self.cancel is not None and self.cancel.is_set():
            self.reason = "cancelled"
            return True
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            self.reason = "time_budget"
            return True
        return False

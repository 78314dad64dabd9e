"""Remote inference: the same completions from a shared server instead of the local model.

Three wire protocols, all streamed so that a cancelled or superseded request
closes its connection and the server stops generating:

* ``llama-server`` ``/infill``: prefix, suffix and the repository context as
  ``input_extra``; llama-server builds the FIM prompt with its own tokenizer.
* ``llama-server`` ``/completion``: our own prompt string (Code Llama's FIM
  text form), with ``cache_prompt`` so its KV cache is reused across keystrokes.
* ``openai``: ``/v1/completions`` with our prompt string (vLLM, Ollama,
  LM Studio and llama-server all serve it).

Failures become :class:`BackendUnavailable` with one clear line; :class:`Health`
spaces out retries so that a down server costs nothing per keystroke, and
notices by itself when it comes back.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .backend import (
    BackendInfo,
    CompletionRequest,
    CompletionResult,
    Health,
    StopReason,
    StopRule,
)
from .errors import BackendUnavailable
from .fim import fim_text

log = logging.getLogger(__name__)

PROTOCOLS = ("llama-server-infill", "llama-server-completion", "openai")


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

    @property
    def model_path(self) -> str:
        """A label that identifies the backend in logs and cache keys."""
        return f"{self.protocol} {self.url}" + (f" {self.model}" if self.model else "")


def _wire_prompt(request: CompletionRequest) -> str:
    return fim_text(request.context, request.prefix, request.suffix, request.fim_order)


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
        self.config = config
        self._parsed = parsed
        self._health = Health()

    # -- the backend interface --------------------------------------------------

    def describe(self) -> BackendInfo:
        kind = "openai" if self.config.protocol == "openai" else "llama-server"
        return BackendInfo(kind=kind, label=self.config.model_path, n_ctx=self.config.n_ctx)

    def health(self) -> Health:
        return self._health

    def count_tokens(self, text: str) -> int:
        # No tokenizer here: about three characters per token, as for packing.
        return len(text) // 3 + 1

    def prompt_text(self, request: CompletionRequest) -> str:
        if self.config.protocol == "llama-server-infill":
            return (
                f"[input_extra]\n{request.context}[input_prefix]\n{request.prefix}"
                f"[input_suffix]\n{request.suffix}"
            )
        return _wire_prompt(request)

    def forget(self, document: str) -> None:
        """Nothing per document is kept here (the server keeps its own cache)."""

    def close(self) -> None:
        pass

    def complete(
        self,
        request: CompletionRequest,
        cancel: threading.Event | None = None,
        stop: StopRule | None = None,
    ) -> CompletionResult:
        started = time.perf_counter()
        if request.warm and self.config.protocol == "openai":
            # An OpenAI-compatible server has no way to only evaluate a prompt.
            return CompletionResult("", 0, 0, 0, "max_tokens", 0.0, 0.0, 0.0)
        path, body = self._request_body(request)
        read = _StreamRead(started, request.time_budget_ms, stop, cancel)
        try:
            with self._stream(path, body, cancel) as events:
                for event in events:
                    if read.take(*self._piece(event, read.stats)):
                        break
        except _Cancelled:
            read.reason = "cancelled"
        if cancel is not None and cancel.is_set():
            read.reason = "cancelled"
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
        )

    def probe(self) -> str:
        """A cheap request that shows the server is there; returns what it serves."""
        path = "/v1/models" if self.config.protocol == "openai" else "/health"
        connection = self._connect()
        try:
            connection.request("GET", self._path(path), headers=self._headers())
            response = connection.getresponse()
            data = response.read()
            if response.status >= 400:
                raise BackendUnavailable(self._http_error(response.status, data))
            return data.decode("utf-8", "replace")[:200]
        except (OSError, http.client.HTTPException) as exc:
            raise BackendUnavailable(self._connection_error(exc)) from exc
        finally:
            connection.close()

    # -- wire formats -------------------------------------------------------------

    def _request_body(self, request: CompletionRequest) -> tuple[str, dict[str, Any]]:
        if self.config.protocol == "llama-server-infill":
            extra = [{"filename": "context", "text": request.context}] if request.context else []
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
        prompt = _wire_prompt(request)
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

    def _connect(self) -> http.client.HTTPConnection:
        host = self._parsed.hostname or ""
        port = self._parsed.port
        if self._parsed.scheme == "https":
            context = ssl.create_default_context()
            if not self.config.verify_tls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection(
                host, port, timeout=self.config.timeout_s, context=context
            )
        return http.client.HTTPConnection(host, port, timeout=self.config.timeout_s)

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

    def _stream(
        self, path: str, body: dict[str, Any], cancel: threading.Event | None
    ) -> _EventStream:
        return _EventStream(self, path, body, cancel)

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

    def _connection_error(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError | socket.timeout):
            return f"{self.config.url} did not answer within {self.config.timeout_s:g} s"
        if isinstance(exc, ssl.SSLError):
            return f"TLS with {self.config.url} failed: {exc}"
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return f"cannot reach {self.config.url}: {reason}"


class _Cancelled(Exception):
    pass


class _StreamRead:
    """The text of one streamed answer so far, and whether it must end here."""

    def __init__(
        self,
        started: float,
        time_budget_ms: float,
        stop: StopRule | None,
        cancel: threading.Event | None,
    ) -> None:
        self.started = started
        self.deadline = started + time_budget_ms / 1000 if time_budget_ms > 0 else None
        self.stop = stop
        self.cancel = cancel
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


class _EventStream:
    """One streamed POST; closing the socket on cancel stops the server's generation."""

    def __init__(
        self,
        engine: RemoteEngine,
        path: str,
        body: dict[str, Any],
        cancel: threading.Event | None,
    ) -> None:
        self._engine = engine
        self._path = path
        self._body = body
        self._cancel = cancel
        self._connection: http.client.HTTPConnection | None = None
        self._done = threading.Event()

    def __enter__(self) -> Iterator[dict[str, Any]]:
        engine = self._engine
        self._connection = connection = engine._connect()
        if self._cancel is not None:
            threading.Thread(target=self._watch, name="remote-cancel", daemon=True).start()
        try:
            connection.request(
                "POST",
                engine._path(self._path),
                body=json.dumps(self._body).encode("utf-8"),
                headers=engine._headers(),
            )
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            self._close()
            if self._cancel is not None and self._cancel.is_set():
                raise _Cancelled from exc
            raise BackendUnavailable(engine._connection_error(exc)) from exc
        if response.status >= 400:
            data = response.read()
            self._close()
            raise BackendUnavailable(engine._http_error(response.status, data))
        return self._events(response)

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _events(self, response: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
        engine = self._engine
        try:
            while True:
                line = response.readline()
                if not line:
                    return
                text = line.decode("utf-8", "replace").strip()
                if not text or text.startswith(":"):
                    continue
                if text.startswith("error:"):
                    raise BackendUnavailable(f"{engine.config.url}: {text[6:].strip()[:200]}")
                if not text.startswith("data:"):
                    raise BackendUnavailable(
                        f"{engine.config.url} sent something that is not a completion stream: "
                        f"{text[:120]!r}"
                    )
                payload = text[5:].strip()
                if payload == "[DONE]":
                    return
                try:
                    event = json.loads(payload)
                except ValueError as exc:
                    raise BackendUnavailable(
                        f"{engine.config.url} sent invalid JSON: {payload[:120]!r}"
                    ) from exc
                if not isinstance(event, dict):
                    raise BackendUnavailable(f"{engine.config.url} sent {payload[:120]!r}")
                if "error" in event and "choices" not in event and "content" not in event:
                    error = event["error"]
                    message = error.get("message", error) if isinstance(error, dict) else error
                    raise BackendUnavailable(f"{engine.config.url}: {str(message)[:200]}")
                yield event
        except (OSError, http.client.HTTPException, ValueError, AttributeError) as exc:
            # ValueError/AttributeError: http.client reading a socket shut down under it.
            if self._cancel is not None and self._cancel.is_set():
                raise _Cancelled from exc
            if isinstance(exc, ValueError | AttributeError):
                raise
            raise BackendUnavailable(engine._connection_error(exc)) from exc

    def _watch(self) -> None:
        """On cancel, shut the socket down: the reading thread wakes up and cleans up."""
        assert self._cancel is not None
        while not self._done.is_set():
            if self._cancel.wait(0.02):
                connection = self._connection
                sock = connection.sock if connection is not None else None
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                return

    def _close(self) -> None:
        self._done.set()
        connection, self._connection = self._connection, None
        if connection is None:
            return
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        connection.close()

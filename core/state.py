"""What completions remember between requests, in one component that owns it.

Everything here was produced by one backend under one set of settings, so a
change of either calls :meth:`CompletionState.reset`; a closed document calls
:meth:`CompletionState.forget`.  Worker threads read and write it (the model
stage runs off the event loop), hence the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from dataclasses import dataclass, field

from codellama_lsp.context.assemble import PromptParts
from codellama_lsp.context.postprocess import StopPolicy
from codellama_lsp.context.reuse import ShownSuggestion, SuggestionCache
from codellama_lsp.quant.backend import Backend, CompletionRequest, CompletionResult

#: How a request was answered; every answer counts under exactly one.
SOURCES = ("model", "typed_through", "cache", "superseded")


@dataclass(frozen=True)
class Prompt:
    """A built prompt: its text parts, the backend request and the stop policy."""

    parts: PromptParts
    request: CompletionRequest
    policy: StopPolicy
    cache_key: Hashable
    build_ms: float


@dataclass(frozen=True)
class LastPrompt:
    """The latest prompt sent to a model, for ``codellama/lastPrompt``."""

    key: str
    #: The cursor as the client counts it (line, character).
    cursor: tuple[int, int]
    prompt: Prompt
    result: CompletionResult
    #: The backend that ran it: only this one may render the prompt again.
    backend: Backend


@dataclass
class InFlight:
    """The latest request of one document, so that a newer one can stop it."""

    request_id: object
    cancel: threading.Event = field(default_factory=threading.Event)


class CompletionState:
    """Per-document memory of completions, the suggestion cache and the answer counts."""

    def __init__(self, cache_size: int) -> None:
        self._lock = threading.Lock()
        self._shown: dict[str, ShownSuggestion] = {}
        self._parts: dict[str, PromptParts] = {}
        self._in_flight: dict[str, InFlight] = {}
        self.cache = SuggestionCache(cache_size)
        self.last: LastPrompt | None = None
        self.counts: dict[str, int] = dict.fromkeys(SOURCES, 0)

    # -- what the user sees -------------------------------------------------------

    def shown(self, key: str) -> ShownSuggestion | None:
        with self._lock:
            return self._shown.get(key)

    def show(self, key: str, text: str, offset: int, suggestion: str) -> None:
        with self._lock:
            self._shown[key] = ShownSuggestion(text, offset, suggestion)

    def hide(self, key: str) -> None:
        with self._lock:
            self._shown.pop(key, None)

    # -- prompts ------------------------------------------------------------------

    def previous_parts(self, key: str) -> PromptParts | None:
        """The last prompt's parts of this document: its windows stay put while they fit."""
        with self._lock:
            return self._parts.get(key)

    def remember(self, key: str, parts: PromptParts) -> None:
        with self._lock:
            self._parts[key] = parts

    def count(self, source: str) -> None:
        with self._lock:
            self.counts[source] = self.counts.get(source, 0) + 1

    # -- requests in flight ---------------------------------------------------------

    def begin(self, key: str, request_id: object) -> InFlight:
        """Start a request for ``key``; the one it replaces stops at once."""
        mine = InFlight(request_id)
        with self._lock:
            previous = self._in_flight.get(key)
            self._in_flight[key] = mine
        if previous is not None:
            previous.cancel.set()
        return mine

    def end(self, key: str, mine: InFlight) -> None:
        with self._lock:
            if self._in_flight.get(key) is mine:
                del self._in_flight[key]

    def cancel(self, key: str) -> None:
        """The document changed: what is being computed for it is stale."""
        with self._lock:
            running = self._in_flight.get(key)
        if running is not None:
            running.cancel.set()

    def cancel_all(self) -> None:
        with self._lock:
            running = list(self._in_flight.values())
            self._in_flight.clear()
        for in_flight in running:
            in_flight.cancel.set()

    # -- lifetime -------------------------------------------------------------------

    def forget(self, key: str) -> None:
        """A closed document: nothing of it is reused."""
        self.cancel(key)
        with self._lock:
            self._in_flight.pop(key, None)
            self._shown.pop(key, None)
            self._parts.pop(key, None)

    def reset(self, cache_size: int | None = None) -> None:
        """The backend or the settings changed: nothing made before may be reused."""
        with self._lock:
            self._shown.clear()
            self._parts.clear()
            self.last = None
        if cache_size is not None:
            self.cache.resize(cache_size)
        self.cache.clear()

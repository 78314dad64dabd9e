"""What completions remember between requests, in one component that owns it.

Everything here was produced by one backend under one set of settings, so a
change of either calls :meth:`CompletionState.reset`; a closed document calls
:meth:`CompletionState.forget`.  Worker threads read and write it (the model
stage runs off the event loop), hence the lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable
from dataclasses import dataclass, field

from codellama_lsp.context.assemble import PromptBudget, PromptParts
from codellama_lsp.context.postprocess import StopPolicy
from codellama_lsp.context.reuse import ShownSuggestion, SuggestionCache
from codellama_lsp.quant.backend import Backend, CompletionRequest, CompletionResult

log = logging.getLogger(__name__)

#: How a request was answered; every answer counts under exactly one.
SOURCES = ("model", "typed_through", "prefetch", "cache", "superseded", "excluded")


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


@dataclass(frozen=True)
class Prefetched:
    """The suggestions computed ahead for a text the user has not written yet (an accept)."""

    text: str
    offset: int
    suggestions: tuple[str, ...]
    #: The prompt's parts: on a hit they become the document's last prompt (it is in the KV).
    parts: PromptParts


#: Texts computed ahead kept per document (the newest first): an accept is the next request.
_PREFETCHED_PER_DOCUMENT = 2


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
        self._prefetched: dict[str, list[Prefetched]] = {}
        #: Suggestions by prompt, best first (empty: the model had nothing to suggest).
        self.cache: SuggestionCache[tuple[str, ...]] = SuggestionCache(cache_size)
        self.last: LastPrompt | None = None
        self.counts: dict[str, int] = dict.fromkeys(SOURCES, 0)
        self._budget: PromptBudget | None = None
        self._warming: InFlight | None = None

    # -- what the user sees -------------------------------------------------------

    def shown(self, key: str) -> ShownSuggestion | None:
        with self._lock:
            return self._shown.get(key)

    def show(
        self, key: str, text: str, offset: int, suggestion: str, alternatives: tuple[str, ...] = ()
    ) -> None:
        with self._lock:
            self._shown[key] = ShownSuggestion(text, offset, suggestion, alternatives)

    def hide(self, key: str) -> None:
        with self._lock:
            self._shown.pop(key, None)

    # -- computed ahead -------------------------------------------------------------

    def store_prefetched(self, key: str, found: Prefetched) -> None:
        with self._lock:
            kept = [p for p in self._prefetched.get(key, ()) if p.text != found.text]
            self._prefetched[key] = [found, *kept][:_PREFETCHED_PER_DOCUMENT]

    def has_prefetched(self, key: str, text: str, offset: int) -> bool:
        with self._lock:
            return any(p.text == text and p.offset == offset for p in self._prefetched.get(key, ()))

    def take_prefetched(self, key: str, text: str, offset: int) -> Prefetched | None:
        """What was computed ahead for exactly this text and cursor, removed from the store."""
        with self._lock:
            kept = self._prefetched.get(key, [])
            for i, found in enumerate(kept):
                if found.text == text and found.offset == offset:
                    del kept[i]
                    return found
        return None

    # -- prompts ------------------------------------------------------------------

    def previous_parts(self, key: str) -> PromptParts | None:
        """The last prompt's parts of this document: its windows stay put while they fit."""
        with self._lock:
            return self._parts.get(key)

    def remember(self, key: str, parts: PromptParts) -> None:
        with self._lock:
            self._parts[key] = parts

    def settle_budget(self, proposed: PromptBudget) -> int:
        """The prompt budget to use: the current one unless ``proposed`` differs by a third.

        Every change of the budget changes the prompt and loses its KV cache, so
        a speed measured slightly differently on a later request changes nothing.
        """
        with self._lock:
            current = self._budget
            if current is not None and 0.75 * current.tokens <= proposed.tokens <= (
                1.34 * current.tokens
            ):
                return current.tokens
            self._budget = proposed
        log.info("prompt budget: %d tokens (%s)", proposed.tokens, proposed.reason)
        return proposed.tokens

    def count(self, source: str) -> None:
        with self._lock:
            self.counts[source] = self.counts.get(source, 0) + 1

    # -- requests in flight ---------------------------------------------------------

    def begin(self, key: str, request_id: object) -> InFlight:
        """Start a request for ``key``; what it replaces stops at once.

        The user's newest request wins: the document's previous request, those
        still running for other documents (the user has moved on from them)
        and any background warming all stop at their next batch or token.
        """
        mine = InFlight(request_id)
        with self._lock:
            stale = list(self._in_flight.values())
            self._in_flight = {key: mine}
            if self._warming is not None:
                stale.append(self._warming)
                self._warming = None
        for previous in stale:
            previous.cancel.set()
        return mine

    def begin_warming(self, key: str) -> InFlight | None:
        """Background work for ``key``, only when no request runs; None when one does."""
        mine = InFlight(("warm", key))
        with self._lock:
            if self._in_flight:
                return None
            previous, self._warming = self._warming, mine
        if previous is not None:
            previous.cancel.set()
        return mine

    def end_warming(self, mine: InFlight) -> None:
        with self._lock:
            if self._warming is mine:
                self._warming = None

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
            if self._warming is not None:
                running.append(self._warming)
                self._warming = None
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
            self._prefetched.pop(key, None)

    def reset(self, cache_size: int | None = None) -> None:
        """The backend or the settings changed: nothing made before may be reused."""
        with self._lock:
            self._shown.clear()
            self._parts.clear()
            self._prefetched.clear()
            self.last = None
            self._budget = None
        if cache_size is not None:
            self.cache.resize(cache_size)
        self.cache.clear()

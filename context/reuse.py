"""Answers that need no model work: typing through a suggestion, and prompts seen before."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar


@dataclass(frozen=True)
class ShownSuggestion:
    """The suggestion last shown for a document, with the text it was made for."""

    text: str
    offset: int
    suggestion: str
    #: The other candidates shown with it, best first.
    alternatives: tuple[str, ...] = ()


def typed_through_all(shown: ShownSuggestion | None, text: str, offset: int) -> tuple[str, ...]:
    """The rest of every shown candidate whose beginning the user typed, best first."""
    if shown is None:
        return ()
    found = []
    for candidate in (shown.suggestion, *shown.alternatives):
        rest = typed_through(ShownSuggestion(shown.text, shown.offset, candidate), text, offset)
        if rest is not None and rest not in found:
            found.append(rest)
    return tuple(found)


def typed_through(shown: ShownSuggestion | None, text: str, offset: int) -> str | None:
    """The rest of ``shown`` if the user typed its beginning and changed nothing else.

    Editors keep asking while the user types characters that match the ghost
    text; answering with the remainder at once keeps the suggestion steady and
    costs no model work.  None when anything other than the suggestion's own
    start was typed, or when nothing of it is left.
    """
    if shown is None:
        return None
    typed = offset - shown.offset
    if typed < 0 or len(text) != len(shown.text) + typed:
        return None
    if typed >= len(shown.suggestion):
        return None
    if not shown.suggestion.startswith(text[shown.offset : offset]):
        return None
    if text[offset:] != shown.text[shown.offset :]:
        return None
    if text[: shown.offset] != shown.text[: shown.offset]:
        return None
    return shown.suggestion[typed:]


V = TypeVar("V")


class SuggestionCache(Generic[V]):
    """Least-recently-used suggestions keyed by everything that decides the prompt.

    Thread-safe: looked up from worker threads.  A stored None means the model
    had nothing to suggest for that prompt, which is worth remembering too.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> tuple[bool, V | None]:
        """``(found, suggestion)``."""
        with self._lock:
            if key not in self._items:
                self.misses += 1
                return False, None
            self._items.move_to_end(key)
            self.hits += 1
            return True, self._items[key]

    def put(self, key: Hashable, suggestion: V) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._items[key] = suggestion
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def resize(self, capacity: int) -> None:
        with self._lock:
            self.capacity = capacity
            while len(self._items) > max(capacity, 0):
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

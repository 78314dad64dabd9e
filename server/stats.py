"""Acceptance counted locally: which suggestions were shown, which the client says it accepted.

Each inline item carries the command :data:`ACCEPTED` (LSP 3.18
``InlineCompletionItem.command``), which the client executes after inserting
the item; it comes back as ``workspace/executeCommand`` with the suggestion's id
and the length the accept inserted.  Partial accepts use the same command with
``"partial": true`` and the accepted length.  Only counts reach the disk
(:mod:`codellama_lsp.core.stats`); with ``stats.enable`` off no item carries a
command and nothing is written.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from codellama_lsp.core.stats import Event, StatsLog, model_label, today_summary

from .app import CodeLlamaServer
from .worker import run_off_loop

if TYPE_CHECKING:
    from .pipeline import Suggestion

log = logging.getLogger(__name__)

#: The command every inline item carries; VS Code and Neovim execute it on accept.
ACCEPTED = "codellama.suggestionAccepted"
#: Today's counts, for the VS Code status tooltip.
STATS_METHOD = "codellama/stats"
#: Shown suggestions remembered for an accept (an accept comes seconds after, not hours).
_REMEMBERED = 256


@dataclass
class _Shown:
    language: str
    model: str
    backend: str
    accepted: bool = False


class AcceptanceStats:
    """The shown suggestions an accept may name, and the events they lead to."""

    def __init__(self, ls: CodeLlamaServer, log_: StatsLog | None = None) -> None:
        self._ls = ls
        self._log = log_ or StatsLog()
        self._shown: OrderedDict[int, _Shown] = OrderedDict()
        #: The suggestion on screen in each document: typing through it shows no new one.
        self._on_screen: OrderedDict[str, int] = OrderedDict()
        self._next_id = 0

    def commands(self, uri: str, suggestion: Suggestion) -> list[types.Command | None]:
        """One command per candidate text; a shown suggestion is counted once.

        The rest of a suggestion the user typed through (``typed_through``) is the
        suggestion already counted; its accept counts what that accept inserts.
        """
        if not self._ls.settings.stats.enable:
            return [None] * len(suggestion.texts)
        shown_id = self._on_screen.get(uri)
        known = self._shown.get(shown_id) if shown_id is not None else None
        if suggestion.source != "typed_through" or known is None or known.accepted:
            shown_id = self._show(uri, suggestion)
        assert shown_id is not None
        return [
            types.Command(
                title="codellama-lsp: count an accepted suggestion",
                command=ACCEPTED,
                arguments=[{"id": shown_id, "chars": len(text)}],
            )
            for text in suggestion.texts
        ]

    def _show(self, uri: str, suggestion: Suggestion) -> int:
        self._next_id += 1
        shown = _Shown(self._language(uri), *self._labels())
        self._shown[self._next_id] = shown
        while len(self._shown) > _REMEMBERED:
            self._shown.popitem(last=False)
        self._on_screen[uri] = self._next_id
        self._on_screen.move_to_end(uri)
        while len(self._on_screen) > _REMEMBERED:
            self._on_screen.popitem(last=False)
        self._write(shown, "shown", len(suggestion.text), suggestion.latency_ms)
        return self._next_id

    def accepted(self, arguments: Any) -> bool:
        """The client inserted suggestion ``id`` (all of it, or ``partial``); True when counted.

        An id this server never gave (or forgot) and a second full accept of the
        same suggestion are ignored: a client replaying a command counts nothing.
        """
        if not self._ls.settings.stats.enable:
            return False
        if not isinstance(arguments, dict):
            return False
        shown_id, chars = arguments.get("id"), arguments.get("chars", 0)
        partial = arguments.get("partial") is True
        if not isinstance(shown_id, int) or not isinstance(chars, int) or chars < 0:
            return False
        shown = self._shown.get(shown_id)
        if shown is None or shown.accepted:
            return False
        if not partial:
            shown.accepted = True
        self._write(shown, "partial" if partial else "accepted", chars, 0.0)
        return True

    async def today(self) -> dict[str, Any]:
        """Today's counts of every server on this machine (read off the loop)."""
        if not self._ls.settings.stats.enable:
            return {"enabled": False}
        root = self._log.root
        summary = await run_off_loop(lambda: today_summary(root))
        return {"enabled": True, **summary}

    def _language(self, uri: str) -> str:
        document = self._ls.documents.get(uri)
        return (document.language_id if document is not None else "") or "unknown"

    def _labels(self) -> tuple[str, str]:
        backend = self._ls.backends.current
        if backend is None:
            return "unknown", "unknown"
        info = backend.describe()
        return model_label(info), info.kind

    def _write(self, shown: _Shown, event: str, chars: int, latency_ms: float) -> None:
        self._log.append(
            Event(event, shown.language, shown.model, shown.backend, chars, latency_ms)
        )


def suggestion_accepted(ls: CodeLlamaServer, *arguments: Any) -> None:
    """``workspace/executeCommand`` of :data:`ACCEPTED`: one object argument."""
    ls.stats.accepted(arguments[0] if arguments else None)


async def stats_today(ls: CodeLlamaServer, params: Any) -> dict[str, Any]:
    return await ls.stats.today()


def register(ls: CodeLlamaServer) -> None:
    # Module-level handlers: pygls reads their type hints to structure the arguments.
    ls.command(ACCEPTED)(suggestion_accepted)
    ls.feature(STATS_METHOD)(stats_today)

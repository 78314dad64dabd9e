"""A BM25 retriever over fixed line windows: the baseline ``eval`` compares against.

CrossCodeEval's retrieval baseline cuts every other file into windows of 20
lines (a new one every 10 lines), ranks them with BM25 against the lines just
before the cursor, and fills the prompt with the best ones.  It knows nothing
of imports or definitions, so it measures what plain lexical retrieval gets
with the same character budget as the prompt builder.  Tokens are identifiers
(:mod:`.tokens`), case kept.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from .packing import path_line
from .tokens import IDENTIFIER

WINDOW_LINES = 20
STRIDE_LINES = 10
#: Lines before the cursor that make the query.
QUERY_LINES = 20
#: Okapi BM25's usual constants.
K1 = 1.5
B = 0.75
#: Windows ranked before the budget is filled (more are ranked when these run out).
_FIRST_RANKED = 256
#: Windows passed over for their size before the budget counts as filled.
_MAX_MISFITS = 64


@dataclass(frozen=True, slots=True)
class Window:
    """Lines ``start_line``..``end_line`` (0-based, inclusive) of one file."""

    path: str
    start_line: int
    end_line: int
    text: str


def line_windows(
    text: str, size: int = WINDOW_LINES, stride: int = STRIDE_LINES
) -> list[tuple[int, int, str]]:
    """(first line, last line, text) of each window; the last one reaches the file's end."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    found: list[tuple[int, int, str]] = []
    start = 0
    while start < len(lines):
        end = min(len(lines), start + size)
        found.append((start, end - 1, "\n".join(lines[start:end])))
        if end == len(lines):
            break
        start += stride
    return found


def query_text(text: str, offset: int, lines: int = QUERY_LINES) -> str:
    """The ``lines`` lines before the cursor, the cursor's line up to it included."""
    start = offset
    for _ in range(lines):
        found = text.rfind("\n", 0, start)
        if found < 0:
            return text[:offset]
        start = found
    return text[start + 1 : offset]


class WindowIndex:
    """BM25 postings of every window of some files, built once and queried many times."""

    def __init__(self, files: Iterable[tuple[str, str]]) -> None:
        self.windows: list[Window] = []
        counts: list[Counter[str]] = []
        for path, text in files:
            for start, end, body in line_windows(text):
                self.windows.append(Window(path, start, end, body))
                counts.append(Counter(IDENTIFIER.findall(body)))
        total = sum(sum(c.values()) for c in counts)
        average = total / len(counts) if counts else 1.0
        self._postings: dict[str, list[tuple[int, float]]] = {}
        for wid, terms in enumerate(counts):
            length = sum(terms.values())
            norm = K1 * (1 - B + B * length / (average or 1.0))
            for term, tf in terms.items():
                self._postings.setdefault(term, []).append((wid, tf * (K1 + 1) / (tf + norm)))
        n = len(self.windows)
        self._idf = {
            term: math.log(1 + (n - len(posting) + 0.5) / (len(posting) + 0.5))
            for term, posting in self._postings.items()
        }

    def __len__(self) -> int:
        return len(self.windows)

    def scores(self, query: str, exclude_path: str | None = None) -> dict[int, float]:
        """BM25 score of every window sharing a token with ``query`` (others score 0)."""
        totals: dict[int, float] = {}
        for term, qtf in Counter(IDENTIFIER.findall(query)).items():
            posting = self._postings.get(term)
            if posting is None:
                continue
            weight = qtf * self._idf[term]
            get = totals.get
            for wid, part in posting:
                totals[wid] = get(wid, 0.0) + weight * part
        if exclude_path is not None:
            windows = self.windows
            totals = {w: s for w, s in totals.items() if windows[w].path != exclude_path}
        return totals

    def ranked(self, query: str, exclude_path: str | None = None) -> Iterable[Window]:
        """Windows best first; ties by position in the index (deterministic)."""
        totals = self.scores(query, exclude_path)

        def key(wid: int) -> tuple[float, int]:
            return (-totals[wid], wid)

        first = heapq.nsmallest(_FIRST_RANKED, totals, key=key)
        for wid in first:
            yield self.windows[wid]
        if len(totals) > len(first):
            rest = sorted(set(totals) - set(first), key=key)
            for wid in rest:
                yield self.windows[wid]

    def retrieve(
        self, query: str, budget_chars: int, comment: str, exclude_path: str | None = None
    ) -> list[Window]:
        """The best windows that fit ``budget_chars`` as a prompt writes them (path lines too).

        A window overlapping one already taken from the same file is passed
        over (stride 10 makes neighbours share half their lines), and so is
        one that does not fit; smaller ones after it may still fit, until
        ``_MAX_MISFITS`` did not.
        """
        chosen: list[Window] = []
        used = misfits = 0
        for window in self.ranked(query, exclude_path):
            if used >= budget_chars or misfits >= _MAX_MISFITS:
                break
            if any(
                c.path == window.path
                and c.start_line <= window.end_line
                and window.start_line <= c.end_line
                for c in chosen
            ):
                continue
            cost = len(path_line(comment, window.path)) + len(window.text) + 1
            if used + cost > budget_chars:
                misfits += 1
                continue
            chosen.append(window)
            used += cost
        return chosen

"""What the user changed recently, as small hunks that can be shown to the model.

An edit elsewhere (another file, or far from the cursor) is strong evidence of
what comes next: a renamed parameter, a new field, a function just written.
The history is fed every document change and keeps one hunk per edited region
(successive edits of the same lines coalesce; an edit that restores the
original text drops the hunk).

Prompts are cached by their token prefix, so what is offered must not move
while the user types: the hunk being typed at the cursor is left out while the
cursor is near it, a hunk's text and line label are frozen from its last change
(edits above it shift where it is, not what it says), and hunks are ordered by
when they last changed.  The offer therefore changes only when an edit lands
elsewhere, or when a hunk expires.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .packing import FILE_SEPARATOR, PRIORITY_EDIT, ContextChunk, path_line

#: (start, end, new_end): the text's ``[start, end)`` became ``[start, new_end)``.
Span = tuple[int, int, int]

#: Edits this few lines apart belong to one hunk.
MERGE_GAP_LINES = 2
#: Hunks of the current document nearer than this to the cursor (or to the hunk
#: being typed) are left out: the near windows and the view already show them.
NEAR_LINES = 40
#: A region larger than this is tracked but never shown (a paste, a reformat, a reload).
TRACK_MAX_LINES = 120
#: What one hunk may show: changed lines on each side, characters in all, per line.
SHOW_MAX_LINES = 6
SHOW_MAX_CHARS = 480
SHOW_MAX_LINE_CHARS = 160
#: Hunks kept per document and in all (the oldest go first).
MAX_HUNKS_PER_DOCUMENT = 16
MAX_HUNKS = 64


@dataclass(frozen=True)
class RecentEdit:
    """One hunk as of its last change: what a region of a file was, and what it is now."""

    #: The document it belongs to (the LSP URI).
    key: str
    #: The file's path on disk (shown relative to the workspace).
    path: str
    #: The region's first line (zero-based) when it last changed: its label in the prompt.
    line: int
    before: tuple[str, ...]
    after: tuple[str, ...]
    #: Order of the last change (larger is newer); never changes without an edit of the region.
    serial: int
    #: When it last changed (the caller's clock, seconds).
    changed_at: float


@dataclass
class _Hunk:
    path: str
    #: Where the region is now (edits above it shift it).
    first: int
    count: int
    before: tuple[str, ...]
    after: tuple[str, ...]
    line: int
    serial: int
    changed_at: float
    #: Larger than ``TRACK_MAX_LINES``: tracked so that nearby edits merge into it, never shown.
    too_large: bool = False

    @property
    def last(self) -> int:
        return self.first + self.count - 1

    def snapshot(self, key: str) -> RecentEdit:
        return RecentEdit(
            key, self.path, self.line, self.before, self.after, self.serial, self.changed_at
        )


def union_span(spans: Iterable[Span]) -> Span | None:
    """One span covering successive changes, each given in the text as it then was."""
    union: Span | None = None
    for start, end, new_end in spans:
        if union is None:
            union = (start, end, new_end)
            continue
        lo, old_hi, new_hi = union
        current_hi = max(new_hi, end)
        # Past the changed region, the current text is the original shifted.
        original_hi = old_hi if current_hi <= new_hi else current_hi - (new_hi - old_hi)
        union = (min(lo, start), original_hi, current_hi + (new_end - end))
    return union


def _common_prefix(a: str, b: str, a0: int, b0: int, limit: int) -> int:
    """Characters equal from ``a[a0:]`` and ``b[b0:]``, at most ``limit``: doubling, then halving,
    so a whole-document change costs a few passes of memcmp, not a Python loop."""
    found, step = 0, 64
    while found < limit:
        size = min(step, limit - found)
        if a[a0 + found : a0 + found + size] != b[b0 + found : b0 + found + size]:
            while size > 1:
                half = size // 2
                if a[a0 + found : a0 + found + half] == b[b0 + found : b0 + found + half]:
                    found += half
                    size -= half
                else:
                    size = half
            return found
        found += size
        step *= 2
    return found


def _common_suffix(a: str, b: str, a_end: int, b_end: int, limit: int) -> int:
    """Characters equal before ``a[:a_end]`` and ``b[:b_end]``, at most ``limit``."""
    found, step = 0, 64
    while found < limit:
        size = min(step, limit - found)
        if a[a_end - found - size : a_end - found] != b[b_end - found - size : b_end - found]:
            while size > 1:
                half = size // 2
                if (
                    a[a_end - found - half : a_end - found]
                    == b[b_end - found - half : b_end - found]
                ):
                    found += half
                    size -= half
                else:
                    size = half
            return found
        found += size
        step *= 2
    return found


def _narrow(before: str, after: str, span: Span) -> Span:
    """The span without what the edit left as it was at its ends."""
    lo, old_hi, new_hi = span
    head = _common_prefix(before, after, lo, lo, min(old_hi, new_hi) - lo)
    lo += head
    tail = _common_suffix(before, after, old_hi, new_hi, min(old_hi, new_hi) - lo)
    return lo, old_hi - tail, new_hi - tail


def _lines(text: str, line_start: int, count: int) -> tuple[str, ...]:
    """``count`` lines of ``text`` from the line starting at offset ``line_start``."""
    found: list[str] = []
    position = line_start
    for _ in range(count):
        end = text.find("\n", position)
        if end < 0:
            found.append(text[position:])
            break
        found.append(text[position:end])
        position = end + 1
    return tuple(line.rstrip("\r") for line in found)


def _back(text: str, line_start: int, lines: int) -> int:
    """Offset of the line ``lines`` lines above the one starting at ``line_start``."""
    position = line_start
    for _ in range(lines):
        if position <= 0:
            return 0
        position = text.rfind("\n", 0, position - 1) + 1
    return position


def _squash(lines: Sequence[str]) -> str:
    return "".join("".join(line.split()) for line in lines)


class EditHistory:
    """Recent hunks of every document, fed by each change; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hunks: dict[str, list[_Hunk]] = {}
        self._serial = 0

    def record(
        self,
        key: str,
        path: str,
        before: str,
        after: str,
        span: Span,
        now: float,
        line_of: Callable[[int], int] | None = None,
    ) -> None:
        """``before`` became ``after`` by replacing ``span``; ``line_of`` maps an offset
        of either text before the span to its line (default: counting newlines)."""
        lo, old_hi, new_hi = _narrow(before, after, span)
        if lo == old_hi == new_hi:
            return
        first_line = line_of(lo) if line_of is not None else before.count("\n", 0, lo)
        old_last = first_line + before.count("\n", lo, old_hi)
        delta = after.count("\n", lo, new_hi) - (old_last - first_line)
        start = before.rfind("\n", 0, lo) + 1  # the same offset in both texts
        with self._lock:
            hunks = self._hunks.setdefault(key, [])
            touching = [
                h
                for h in hunks
                if h.first <= old_last + MERGE_GAP_LINES and h.last >= first_line - MERGE_GAP_LINES
            ]
            rest = [h for h in hunks if h not in touching]
            region_first = min([first_line, *(h.first for h in touching)])
            region_last = max([old_last, *(h.last for h in touching)])
            size = region_last - region_first + 1
            too_large = size > TRACK_MAX_LINES or size + delta > TRACK_MAX_LINES
            too_large = too_large or any(h.too_large for h in touching)
            region_start = _back(before, start, first_line - region_first)
            if too_large:
                original: tuple[str, ...] = ()
                now_lines: tuple[str, ...] = ()
            else:
                current = _lines(before, region_start, size)
                # The region as it was before any of its hunks: their "before" lines
                # where they were, the text as it is elsewhere.
                parts: list[str] = []
                position = region_first
                for hunk in sorted(touching, key=lambda h: h.first):
                    parts.extend(current[position - region_first : hunk.first - region_first])
                    parts.extend(hunk.before)
                    position = hunk.last + 1
                parts.extend(current[position - region_first :])
                original = tuple(parts)
                now_lines = _lines(after, region_start, size + delta)
            for hunk in rest:
                if hunk.first > old_last:
                    hunk.first += delta
            if not too_large and original == now_lines:
                self._hunks[key] = rest  # back to what it was
                return
            self._serial += 1
            rest.append(
                _Hunk(
                    path,
                    region_first,
                    size + delta,
                    original,
                    now_lines,
                    region_first,
                    self._serial,
                    now,
                    too_large,
                )
            )
            rest.sort(key=lambda h: h.first)
            self._hunks[key] = rest
            self._trim(key)

    def _trim(self, key: str) -> None:
        hunks = self._hunks[key]
        while len(hunks) > MAX_HUNKS_PER_DOCUMENT:
            hunks.remove(min(hunks, key=lambda h: h.serial))
        while sum(len(h) for h in self._hunks.values()) > MAX_HUNKS:
            oldest = min(
                ((k, h) for k, hs in self._hunks.items() for h in hs), key=lambda kh: kh[1].serial
            )
            self._hunks[oldest[0]].remove(oldest[1])

    def forget(self, key: str) -> None:
        """Drop a document's hunks (reopened or resynced: their positions no longer hold)."""
        with self._lock:
            self._hunks.pop(key, None)

    def recent(
        self,
        key: str | None,
        cursor_line: int,
        *,
        now: float,
        limit: int,
        max_age_s: float,
        allowed: Callable[[str], bool] | None = None,
        near_lines: int = NEAR_LINES,
    ) -> tuple[RecentEdit, ...]:
        """The ``limit`` most recently changed hunks worth showing at a cursor in ``key``,
        oldest first (a new one is appended, so the ones before keep their tokens).

        Left out: hunks of ``key`` near the cursor or near the hunk being typed there,
        hunks older than ``max_age_s``, whitespace-only changes, regions too large to
        show, and files ``allowed`` refuses (secret or excluded).
        """
        if limit <= 0:
            return ()
        with self._lock:
            active = (cursor_line, cursor_line)
            for hunk in self._hunks.get(key, []) if key is not None else []:
                if hunk.first - MERGE_GAP_LINES <= cursor_line <= hunk.last + MERGE_GAP_LINES:
                    active = (min(active[0], hunk.first), max(active[1], hunk.last))
            found: list[RecentEdit] = []
            for doc, hunks in self._hunks.items():
                for hunk in hunks:
                    if hunk.too_large or now - hunk.changed_at > max_age_s:
                        continue
                    if doc == key and (
                        hunk.last > active[0] - near_lines and hunk.first < active[1] + near_lines
                    ):
                        continue
                    if _squash(hunk.before) == _squash(hunk.after):
                        continue
                    found.append(hunk.snapshot(doc))
        found = [e for e in found if allowed is None or allowed(e.path)]
        found.sort(key=lambda e: e.serial, reverse=True)
        return tuple(reversed(found[:limit]))


def _shown(lines: Sequence[str]) -> list[str]:
    return [
        line if len(line) <= SHOW_MAX_LINE_CHARS else line[:SHOW_MAX_LINE_CHARS] for line in lines
    ]


def render_edit(edit: RecentEdit, comment: str, shown_path: str) -> str:
    """A hunk as prompt text: a comment naming where, the old lines commented out,
    the new lines as code (so the model reads them as the code now is)."""
    before, after = list(edit.before), list(edit.after)
    head = 0
    while head < min(len(before), len(after)) and before[head] == after[head]:
        head += 1
    tail = 0
    while tail < min(len(before), len(after)) - head and before[-1 - tail] == after[-1 - tail]:
        tail += 1
    removed = _shown(before[head : len(before) - tail][:SHOW_MAX_LINES])
    added = _shown(after[head : len(after) - tail][:SHOW_MAX_LINES])
    lines = [f"{comment} Recent edit in {shown_path}:{edit.line + head + 1}"]
    if removed:
        lines.append(f"{comment} before:")
        lines.extend(f"{comment} {line}" if line else comment for line in removed)
        lines.append(f"{comment} after:" if added else f"{comment} after: (removed)")
    lines.extend(added)
    text: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > SHOW_MAX_CHARS and len(text) > 1:
            break
        text.append(line)
        used += len(line) + 1
    return "\n".join(text) + "\n"


def edit_chunks(
    edits: Sequence[RecentEdit], comment: str, shown_path: Callable[[str], str]
) -> list[ContextChunk]:
    """Hunks as context chunks (``edit``), the newest chosen first when room is short."""
    chunks = []
    for age, edit in enumerate(reversed(edits)):
        chunks.append(
            ContextChunk(
                priority=PRIORITY_EDIT,
                path=shown_path(edit.path),
                start_line=edit.line,
                end_line=edit.line + max(0, len(edit.after) - 1),
                text=render_edit(edit, comment, shown_path(edit.path)),
                source="edit",
                name=f"edit-{edit.serial}",
                rank=float(age),
            )
        )
    return chunks


def render_edits(chunks: Sequence[ContextChunk], header: str = "") -> str:
    """The chosen hunks oldest first: a new one only adds tokens at the end.

    In a repository-level prompt (``header`` is the file separator) each hunk is
    a section of its own file.
    """
    ordered = sorted(chunks, key=lambda c: -c.rank)
    files = header == FILE_SEPARATOR
    return "".join(
        (path_line(header, c.path) if files else "") + c.text.rstrip("\n") + "\n" for c in ordered
    )


__all__ = (
    "EditHistory",
    "RecentEdit",
    "Span",
    "edit_chunks",
    "render_edit",
    "render_edits",
    "union_span",
)

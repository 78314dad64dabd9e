"""The text around the cursor that goes into a fill-in-the-middle prompt.

Windows are cut at line boundaries: a model shown half a line guesses at what
the missing half was.  The cursor's own line is always kept whole on both sides.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class FimInput:
    prefix: str
    suffix: str


def prefix_window(text: str, offset: int, max_chars: int) -> str:
    """Text before ``offset``, at most ``max_chars`` plus the cursor line's start."""
    line_start = max(text.rfind("\n", 0, offset) + 1, 0)
    earliest = offset - max_chars
    if earliest <= 0:
        return text[:offset]
    if earliest >= line_start:
        return text[line_start:offset]
    # First line start at or after ``earliest``.
    cut = text.find("\n", earliest - 1, line_start) + 1
    return text[cut if cut > 0 else line_start : offset]


def suffix_window(text: str, offset: int, max_chars: int) -> str:
    """Text after ``offset``, at most ``max_chars`` plus the rest of the cursor line."""
    line_end = text.find("\n", offset)
    if line_end < 0:
        return text[offset:]
    latest = offset + max_chars
    if latest >= len(text):
        return text[offset:]
    if latest <= line_end:
        return text[offset : line_end + 1]
    # Last line end (inclusive of "\n") at or before ``latest``.
    cut = text.rfind("\n", line_end, latest)
    return text[offset : cut + 1]


def sticky_prefix_start(text: str, offset: int, max_chars: int, previous: int | None) -> int:
    """Where the prefix window starts: where it started last time, while that still fits.

    A window that starts at the same place on every keystroke keeps the prompt's
    token prefix (and llama.cpp's KV cache) intact; a window that slid with the
    cursor would change its first line, and so every token after it, each time a
    line scrolled out.  A new start is chosen at three quarters of ``max_chars``
    so the window can grow by a quarter before it has to move again.
    """
    line_start = text.rfind("\n", 0, offset) + 1
    if (
        previous is not None
        and 0 <= previous <= line_start
        and (previous == 0 or text[previous - 1] == "\n")
        and offset - previous <= max_chars
    ):
        return previous
    return offset - len(prefix_window(text, offset, max_chars * 3 // 4))


def fim_input(
    text: str,
    offset: int,
    max_prefix_chars: int,
    max_suffix_chars: int,
    prefix_start: int | None = None,
) -> FimInput:
    """The windows around ``offset``; ``prefix_start`` (a line start) fixes the prefix's start."""
    if not 0 <= offset <= len(text):
        raise ValueError(f"offset {offset} outside text of length {len(text)}")
    prefix = text[prefix_start:offset] if prefix_start is not None else None
    return FimInput(
        prefix if prefix is not None else prefix_window(text, offset, max_prefix_chars),
        suffix_window(text, offset, max_suffix_chars),
    )


@dataclass(frozen=True)
class FileView:
    """A snapshot of the document around where the cursor was, shown before the FIM tokens.

    It does not follow the cursor: while the cursor stays inside it and the text
    under it has not changed much, the view (and every token before it) is the
    same from one request to the next, so a cursor move re-evaluates only the
    small near windows after it.
    """

    #: Offset of the view's first character (a line start) when it was taken.
    start: int
    text: str
    #: Characters of the document after the view when it was taken.
    tail: int
    #: The cursor when it was taken: repository context was chosen for this place.
    anchor: int


def _changed_chars(old: str, new: str) -> int:
    """Characters of lines edited between two texts, wherever the edits are.

    Lines are compared as multisets, so two small edits far apart count as two
    edited lines, not as the whole span between them; the larger of what was
    added and what was removed counts.
    """
    before = Counter(old.split("\n"))
    after = Counter(new.split("\n"))
    added = sum((len(line) + 1) * n for line, n in (after - before).items())
    removed = sum((len(line) + 1) * n for line, n in (before - after).items())
    return max(added, removed)


def view_still_serves(view: FileView, text: str, offset: int, max_changed: int) -> bool:
    """The cursor is inside ``view`` and at most ``max_changed`` characters under it differ."""
    end = len(text) - view.tail
    start = view.start
    if not 0 <= start <= end <= len(text) or (start > 0 and text[start - 1] != "\n"):
        return False
    line_start = text.rfind("\n", 0, offset) + 1
    if not start <= line_start <= offset <= end:
        return False
    if abs((end - start) - len(view.text)) > max_changed:
        return False
    return _changed_chars(view.text, text[start:end]) <= max_changed


def take_view(
    text: str, offset: int, before_chars: int, after_chars: int, previous: FileView | None
) -> FileView:
    """A new view around ``offset``; it starts where ``previous`` did when that still fits.

    Keeping the start means a view renewed after edits shares every token up to
    the first edit with the old one.
    """
    line_start = text.rfind("\n", 0, offset) + 1
    start: int | None = None
    if previous is not None and 0 <= previous.start <= line_start:
        kept = previous.start
        if (kept == 0 or text[kept - 1] == "\n") and offset - kept <= before_chars:
            start = kept
    if start is None:
        # Three quarters, so that the view can grow downwards before its start must move.
        start = offset - len(prefix_window(text, offset, before_chars * 3 // 4))
    end = offset + len(suffix_window(text, offset, after_chars))
    return FileView(start, text[start:end], len(text) - end, offset)

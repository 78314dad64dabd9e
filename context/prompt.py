"""The text around the cursor that goes into a fill-in-the-middle prompt.

Windows are cut at line boundaries: a model shown half a line guesses at what
the missing half was.  The cursor's own line is always kept whole on both sides.
"""

from __future__ import annotations

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


def fim_input(text: str, offset: int, max_prefix_chars: int, max_suffix_chars: int) -> FimInput:
    if not 0 <= offset <= len(text):
        raise ValueError(f"offset {offset} outside text of length {len(text)}")
    return FimInput(
        prefix_window(text, offset, max_prefix_chars),
        suffix_window(text, offset, max_suffix_chars),
    )

"""Fitting context chunks into one token budget and rendering them as prompt text.

Chunks are chosen by priority (most useful first) but written out in a stable
order, so that typing, which changes scores, does not shuffle the prompt text
(a reshuffled prompt defeats llama.cpp's prompt cache and unsettles the model).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

TokenCounter = Callable[[str], int]

#: Chunk priorities; lower numbers are chosen first when the budget is tight.
#: The definition of the call the cursor is in: without it the model invents parameters.
PRIORITY_CALLEE = 0
PRIORITY_IMPORTED = 1
PRIORITY_TYPES = 2
#: What the user changed recently elsewhere (``context/edits.py``): the code being
#: written follows from it, so it goes before outlines and look-alike snippets.
PRIORITY_EDIT = 3
PRIORITY_OUTLINE = 4
PRIORITY_NEIGHBOUR = 5


def estimate_tokens(text: str) -> int:
    """Cheap upper-bound-ish estimate for code (about three characters per token)."""
    return len(text) // 3 + 1


@dataclass(frozen=True)
class ContextChunk:
    """One piece of context: whole lines from one file."""

    priority: int
    path: str
    start_line: int
    end_line: int
    text: str
    #: Where it came from: "callee", "import", "type", "edit", "outline" or "neighbour".
    source: str
    name: str = ""
    #: Selection order inside a priority (lower is chosen first); never affects output order.
    rank: float = 0.0

    def output_key(self) -> tuple[int, str, int, int, str]:
        """Stable position in the prompt: most useful nearest the code, ties by path, line."""
        return (-self.priority, self.path, self.start_line, self.end_line, self.name)


@dataclass(frozen=True)
class PackedContext:
    text: str
    #: Included chunks in output order (truncated ones carry their shortened text).
    chunks: tuple[ContextChunk, ...]
    tokens: int
    dropped: int


#: Written instead of a comment prefix for families trained with repository-level
#: prompts: each section then starts with this and its path on a line of its own, and
#: the backend writes it after its model's file-separator token (:func:`file_sections`).
FILE_SEPARATOR = "\x1c"
_SECTION_START = re.compile(r"(?:^|(?<=\n))\x1c")


def path_line(comment: str, path: str) -> str:
    """The line naming the file a section comes from: ``# Path: a/b.py`` (a comment in
    the current file's language), or a repository-level prompt's file separator."""
    if comment == FILE_SEPARATOR:
        return f"{FILE_SEPARATOR}{path}\n"
    return f"{comment} Path: {path}\n"


def file_sections(context: str) -> tuple[tuple[str, str], ...]:
    """(path, text) of each section of a context written with :data:`FILE_SEPARATOR`.

    A section only starts at the beginning of a line, so text holding the
    separator mid-line stays text; the last section (the current file's path
    before the FIM part) has no text.
    """
    found = []
    for part in _SECTION_START.split(context)[1:]:
        path, _, text = part.partition("\n")
        found.append((path, text))
    return tuple(found)


def render(chunks: Sequence[ContextChunk], comment: str, current_path: str | None) -> str:
    """Chunks in output order, each under its own ``Path`` comment line."""
    parts: list[str] = []
    for chunk in sorted(chunks, key=ContextChunk.output_key):
        parts.append(path_line(comment, chunk.path))
        parts.append(chunk.text.rstrip("\n") + "\n")
    if parts and current_path:
        parts.append(path_line(comment, current_path))
    return "".join(parts)


def _truncate(text: str, allowed: int, count_tokens: TokenCounter) -> str:
    """The longest run of whole leading lines that fits ``allowed`` tokens."""
    kept: list[str] = []
    used = 0
    for line in text.splitlines(keepends=True):
        cost = count_tokens(line)
        if used + cost > allowed:
            break
        kept.append(line)
        used += cost
    return "".join(kept)


def _fit(
    chunk: ContextChunk, room: int, comment: str, count_tokens: TokenCounter, min_lines: int
) -> tuple[ContextChunk, int] | None:
    """``chunk`` whole, or cut after its last whole line that fits, and its cost; else None."""
    header = count_tokens(path_line(comment, chunk.path))
    body = chunk.text.rstrip("\n") + "\n"
    if not body.strip():
        return None
    cost = header + count_tokens(body)
    if cost <= room:
        return chunk, cost
    allowed = room - header
    if allowed <= 0:
        return None
    cut = _truncate(body, allowed, count_tokens)
    kept_lines = cut.count("\n")
    if kept_lines < min(min_lines, body.count("\n")) or not cut.strip():
        return None
    cost = header + count_tokens(cut)
    if cost > room:
        return None
    cut = cut.rstrip("\n")
    return replace(chunk, text=cut, end_line=chunk.start_line + kept_lines - 1), cost


def pack_chunks(
    chunks: Sequence[ContextChunk],
    budget_tokens: int,
    comment: str,
    *,
    count_tokens: TokenCounter = estimate_tokens,
    current_path: str | None = None,
    min_lines: int = 2,
) -> PackedContext:
    """Choose chunks by (priority, rank) until the budget is spent; render them stably.

    A chunk that does not fit is cut after its last whole line that fits when
    at least ``min_lines`` lines remain, else dropped; smaller later chunks may
    still fit.  The rendered text is counted again at the end, so a tokenizer
    that is not additive can never push the result over the budget.
    """
    if budget_tokens <= 0 or not chunks:
        return PackedContext("", (), 0, len(chunks))
    ordered = sorted(
        chunks, key=lambda c: (c.priority, c.rank, c.path, c.start_line, c.end_line, c.name)
    )
    trailer = count_tokens(path_line(comment, current_path)) if current_path else 0
    used = trailer
    chosen: list[ContextChunk] = []
    for chunk in ordered:
        fitted = _fit(chunk, budget_tokens - used, comment, count_tokens, min_lines)
        if fitted is not None:
            chosen.append(fitted[0])
            used += fitted[1]
    text = render(chosen, comment, current_path)
    while chosen and count_tokens(text) > budget_tokens:
        chosen.pop()  # the least useful chunk chosen
        text = render(chosen, comment, current_path)
    output = tuple(sorted(chosen, key=ContextChunk.output_key))
    tokens = count_tokens(text) if text else 0
    return PackedContext(text, output, tokens, len(chunks) - len(output))

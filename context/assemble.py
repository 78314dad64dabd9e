"""The text parts of one completion prompt: repository context, prefix, suffix.

Shared by the server and the command line so that ``codellama-lsp prompt``
shows exactly what an editor request would send.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .index import RepositoryIndex
from .packing import ContextChunk, TokenCounter, estimate_tokens
from .prompt import fim_input, sticky_prefix_start
from .retrieval import RecentFile, RetrievalOptions, build_context_chunks

#: Tokens kept free for the FIM control tokens, BOS and rounding.
_MARGIN_TOKENS = 16


@dataclass(frozen=True)
class PromptParts:
    #: Path-labelled chunks from the rest of the repository, written before the prefix.
    context: str
    prefix: str
    suffix: str
    chunks: tuple[ContextChunk, ...] = ()
    context_tokens: int = 0
    #: Offset in the document where the prefix window starts (kept while it fits).
    prefix_start: int = 0
    #: The token budget the context was packed for.
    context_budget: int = 0
    #: Whether the context was carried over from the previous request unchanged.
    context_kept: bool = False


#: Chunk sources whose appearance or change makes the context worth rebuilding.
_MATERIAL_SOURCES = frozenset({"import", "type", "outline"})


def _material_key(chunk: ContextChunk) -> tuple[str, str, str]:
    return (chunk.source, chunk.path, chunk.name if chunk.source != "outline" else "")


def context_changed(old: Sequence[ContextChunk], new: Sequence[ContextChunk]) -> bool:
    """Whether ``new`` differs from ``old`` in a way the model would care about.

    Every change of the context re-evaluates it and everything after it, so it
    is only replaced when the code now needs a definition or type that the old
    context lacks, when one it holds was edited, or when the current file's
    outline changed (the cursor moved to another scope).  Definitions no longer
    needed and the similar-code snippets from other files, which follow every
    keystroke, do not count on their own.
    """
    held = {_material_key(c): c.text for c in old if c.source in _MATERIAL_SOURCES}
    for chunk in new:
        if chunk.source in _MATERIAL_SOURCES and held.get(_material_key(chunk)) != chunk.text:
            return True
    return False


#: Window sizes are rounded up to this many characters before budgeting, so that
#: typing does not change the context budget (and the cached prompt) every keystroke.
_WINDOW_STEP_CHARS = 1024


def auto_context_budget(n_ctx: int, max_tokens: int, prefix_chars: int, suffix_chars: int) -> int:
    """Context tokens that still leave room for the prefix/suffix windows and generation.

    ``prefix_chars``/``suffix_chars`` are the windows' actual sizes (capped by the
    settings): a short file leaves more room for the rest of the repository.
    """
    step = _WINDOW_STEP_CHARS
    rounded = -(-prefix_chars // step) * step + -(-suffix_chars // step) * step
    windows = rounded // 3 + 2
    return max(0, n_ctx - max_tokens - windows - _MARGIN_TOKENS)


def _keeps_context(previous: PromptParts, budget: int, chunks: Sequence[ContextChunk]) -> bool:
    """The last request's context still serves: same budget, no material change."""
    return previous.context_budget == budget and not context_changed(previous.chunks, chunks)


def assemble(
    text: str,
    offset: int,
    *,
    max_prefix_chars: int,
    max_suffix_chars: int,
    path: str | os.PathLike[str] | None = None,
    index: RepositoryIndex | None = None,
    recent: Sequence[RecentFile] = (),
    context_tokens: int = 0,
    count_tokens: TokenCounter = estimate_tokens,
    previous: PromptParts | None = None,
) -> PromptParts:
    """Prefix and suffix windows around ``offset`` plus repository context for ``path``.

    ``previous`` is the last request's parts for the same document: its prefix
    window start and its context are kept while they still fit and the context
    has not changed materially (:func:`context_changed`), so that consecutive
    prompts share the longest token prefix.
    """
    start = sticky_prefix_start(
        text, offset, max_prefix_chars, previous.prefix_start if previous else None
    )
    fim = fim_input(text, offset, max_prefix_chars, max_suffix_chars, start)
    if index is None or path is None or context_tokens <= 0:
        return PromptParts("", fim.prefix, fim.suffix, prefix_start=start)
    packed = build_context_chunks(
        index,
        path,
        text,
        offset,
        recent,
        context_tokens,
        count_tokens=count_tokens,
        options=RetrievalOptions(prefix_chars=max_prefix_chars, suffix_chars=max_suffix_chars),
    )
    if previous is not None and _keeps_context(previous, context_tokens, packed.chunks):
        kept = replace(previous, prefix=fim.prefix, suffix=fim.suffix, prefix_start=start)
        return replace(kept, context_kept=True)
    return PromptParts(
        packed.text, fim.prefix, fim.suffix, packed.chunks, packed.tokens, start, context_tokens
    )

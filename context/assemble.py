"""The text parts of one completion prompt: repository context, prefix, suffix.

Shared by the server and the command line so that ``codellama-lsp prompt``
shows exactly what an editor request would send.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from .index import RepositoryIndex
from .packing import ContextChunk, TokenCounter, estimate_tokens
from .prompt import fim_input
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
) -> PromptParts:
    """Prefix and suffix windows around ``offset`` plus repository context for ``path``."""
    fim = fim_input(text, offset, max_prefix_chars, max_suffix_chars)
    if index is None or path is None or context_tokens <= 0:
        return PromptParts("", fim.prefix, fim.suffix)
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
    return PromptParts(packed.text, fim.prefix, fim.suffix, packed.chunks, packed.tokens)

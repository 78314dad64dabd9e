"""The text parts of one completion prompt: repository context, prefix, suffix.

Shared by the server and the command line so that ``codellama-lsp prompt``
shows exactly what an editor request would send.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import PurePath

from .edits import RecentEdit, edit_chunks, render_edits
from .index import RepositoryIndex
from .languages import comment_prefix
from .packing import (
    FILE_SEPARATOR,
    ContextChunk,
    TokenCounter,
    estimate_tokens,
    pack_chunks,
    path_line,
    render,
)
from .prompt import FileView, fim_input, sticky_prefix_start, take_view, view_still_serves
from .retrieval import (
    RecentFile,
    RetrievalOptions,
    build_context_chunks,
    callee_chunks,
    display_path,
)

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
    #: The "view" layout: the snapshot of the document written after the repository context.
    view: FileView | None = None
    #: The repository context alone (``context`` also holds the view).
    repository: str = ""
    #: The whole prompt's token budget these parts were cut for.
    prompt_budget: int = 0
    #: The "view" layout: the call's definition written after the view, when the kept
    #: context lacks it (only this and the near windows are then evaluated anew).
    pinned: str = ""
    #: The recent edits offered (``context/edits.py``): the edit section is written
    #: anew only when these change, never because of typing at the cursor.
    edits: tuple[RecentEdit, ...] = ()
    #: The hunks shown, written after the view ("window" layout: after the repository).
    edit_text: str = ""
    #: Tokens the edit section may take without crowding the repository context.
    edit_room: int = 0


#: Chunk sources whose appearance or change makes the context worth rebuilding.
_MATERIAL_SOURCES = frozenset({"callee", "import", "type", "outline"})
#: A definition held as an import serves as the callee and the reverse.
_DEFINITION_SOURCES = frozenset({"callee", "import"})


def _material_key(chunk: ContextChunk) -> tuple[str, str, str]:
    group = "definition" if chunk.source in _DEFINITION_SOURCES else chunk.source
    return (group, chunk.path, chunk.name if chunk.source != "outline" else "")


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


#: Tokens kept free for hunks still to come while the user is editing, so that an
#: edit elsewhere only adds its hunk instead of rebuilding the repository context.
_EDIT_SLACK_TOKENS = 256


def _edit_reserve(budget: int, edits: Sequence[RecentEdit]) -> int:
    return min(budget // 4, _EDIT_SLACK_TOKENS) if edits else 0


@dataclass(frozen=True)
class _EditSection:
    text: str
    chunks: tuple[ContextChunk, ...]
    tokens: int
    #: Every hunk fit whole.
    whole: bool


def _pack_edits(
    edits: Sequence[RecentEdit],
    room: int,
    comment: str,
    header: str,
    index: RepositoryIndex | None,
    count_tokens: TokenCounter,
) -> _EditSection:
    """The hunks that fit ``room`` tokens, newest first, written oldest first."""
    chunks = edit_chunks(edits, comment, lambda p: display_path(index, p))
    if not chunks:
        return _EditSection("", (), 0, True)
    packed = pack_chunks(chunks, room, header, count_tokens=count_tokens)
    whole = packed.dropped == 0 and all(c in chunks for c in packed.chunks)
    return _EditSection(render_edits(packed.chunks, header), packed.chunks, packed.tokens, whole)


def _header(comment: str, files: bool) -> str:
    """What path lines start with: the language's comment, or the file separator of a
    repository-level prompt (the backend writes its model's token there)."""
    return FILE_SEPARATOR if files else comment


def _split(chunks: Sequence[ContextChunk]) -> tuple[ContextChunk, ...]:
    """The repository's chunks, without the recent edits packed with them."""
    return tuple(c for c in chunks if c.source != "edit")


def _offered(
    edits: Sequence[RecentEdit],
    index: RepositoryIndex | None,
    path: str | os.PathLike[str] | None,
    context_tokens: int,
) -> tuple[RecentEdit, ...]:
    """Edits are context: none without an index, a path and a context budget."""
    return tuple(edits) if index is not None and path is not None and context_tokens > 0 else ()


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
    edits: Sequence[RecentEdit] = (),
    files: bool = False,
) -> PromptParts:
    """Prefix and suffix windows around ``offset`` plus repository context for ``path``.

    ``previous`` is the last request's parts for the same document: its prefix
    window start and its context are kept while they still fit and the context
    has not changed materially (:func:`context_changed`), so that consecutive
    prompts share the longest token prefix.  ``edits`` (recent hunks elsewhere)
    are written after the repository chunks; when only they change, only their
    section is written anew.  ``files``: the context is written as the sections of a
    repository-level prompt (:data:`~.packing.FILE_SEPARATOR` path lines).
    """
    start = sticky_prefix_start(
        text, offset, max_prefix_chars, previous.prefix_start if previous else None
    )
    fim = fim_input(text, offset, max_prefix_chars, max_suffix_chars, start)
    if index is None or path is None or context_tokens <= 0:
        return PromptParts("", fim.prefix, fim.suffix, prefix_start=start)
    offered = _offered(edits, index, path, context_tokens)
    comment = comment_prefix(PurePath(path))
    header = _header(comment, files)
    trailer = path_line(header, display_path(index, path))
    budget = context_tokens - count_tokens(trailer)
    packed = build_context_chunks(
        index,
        path,
        text,
        offset,
        recent,
        budget - _edit_reserve(budget, offered),
        count_tokens=count_tokens,
        options=RetrievalOptions(prefix_chars=max_prefix_chars, suffix_chars=max_suffix_chars),
        include_current_path=False,
        extra=edit_chunks(offered, comment, lambda p: display_path(index, p)),
        header=header,
    )
    repo_chunks = _split(packed.chunks)
    if previous is not None and _keeps_context(previous, context_tokens, repo_chunks):
        section = _EditSection(previous.edit_text, (), 0, True)
        if offered != previous.edits:
            section = _pack_edits(offered, previous.edit_room, comment, header, index, count_tokens)
        if section.whole:
            held = previous.chunks if offered == previous.edits else _split(previous.chunks)
            body = previous.repository + section.text
            return replace(
                previous,
                context=body + trailer if body else "",
                prefix=fim.prefix,
                suffix=fim.suffix,
                prefix_start=start,
                context_kept=True,
                chunks=held + section.chunks if offered != previous.edits else held,
                edits=offered,
                edit_text=section.text,
            )
    repository = render(repo_chunks, header, None)
    repo_tokens = packed.tokens if len(repo_chunks) == len(packed.chunks) else 0
    if repository and not repo_tokens:
        repo_tokens = count_tokens(repository)
    room = budget - repo_tokens
    section = _pack_edits(offered, room, comment, header, index, count_tokens)
    body = repository + section.text
    return PromptParts(
        body + trailer if body else "",
        fim.prefix,
        fim.suffix,
        repo_chunks + section.chunks,
        repo_tokens + section.tokens,
        start,
        context_tokens,
        repository=repository,
        edits=offered,
        edit_text=section.text,
        edit_room=room,
    )


#: Characters per token assumed when a token budget is turned into window sizes.
CHARS_PER_TOKEN = 3


@dataclass(frozen=True)
class PromptBudget:
    """How many tokens a whole prompt may take, and why (for the log)."""

    tokens: int
    reason: str


#: Budgets are rounded down to one of these, so a speed measured a little
#: differently does not change the prompt (and lose the KV cache) every time.
_BUDGET_STEPS = tuple(
    sorted({int(b * m) for b in (2**k for k in range(8, 18)) for m in (1, 1.25, 1.5, 1.75)})
)


def prompt_budget(
    n_ctx: int, max_tokens: int, tokens_per_s: float, cold_budget_ms: int, floor: int = 512
) -> PromptBudget:
    """The prompt size whose cold evaluation takes about ``cold_budget_ms`` at ``tokens_per_s``.

    On a GPU that is the whole context window; on a CPU a few thousand tokens
    at most, since a cold 16k-token prompt would take minutes there.
    """
    room = max(0, n_ctx - max_tokens - _MARGIN_TOKENS)
    if cold_budget_ms <= 0 or tokens_per_s <= 0:
        return PromptBudget(room, f"n_ctx {n_ctx} (no speed measured or no cold budget)")
    cold = tokens_per_s * cold_budget_ms / 1000
    stepped = max([step for step in _BUDGET_STEPS if step <= cold], default=floor)
    if stepped >= room:
        return PromptBudget(room, f"n_ctx {n_ctx} ({tokens_per_s:.0f} tokens/s fills it)")
    tokens = max(min(floor, room), stepped)
    return PromptBudget(
        tokens,
        f"{tokens_per_s:.0f} tokens/s measured x coldBudgetMs {cold_budget_ms} "
        f"(n_ctx would allow {room})",
    )


@dataclass(frozen=True)
class ViewPlan:
    """Window sizes of the "view" layout for one prompt budget."""

    near_prefix_chars: int
    near_suffix_chars: int
    before_chars: int
    after_chars: int
    #: Repository context tokens (0: none).
    context_tokens: int


def plan_view(
    budget: int,
    *,
    near_prefix_chars: int,
    near_suffix_chars: int,
    max_prefix_chars: int,
    max_suffix_chars: int,
    context_tokens: int,
    text_before: int,
    text_after: int,
) -> ViewPlan:
    """Split ``budget`` tokens: near windows (a third at most), the view, then the repository.

    ``context_tokens`` < 0 gives the repository what the view leaves, but at
    least a quarter of the rest when the file is long; an explicit value wins.
    ``text_before``/``text_after`` are the document's characters around the
    cursor: a short file leaves more room for the repository.
    """
    c = CHARS_PER_TOKEN
    near_wanted = near_prefix_chars + near_suffix_chars
    near_room = budget * c // 3
    scale = min(1.0, near_room / near_wanted) if near_wanted else 0.0
    near_prefix = int(near_prefix_chars * scale)
    near_suffix = int(near_suffix_chars * scale)
    rest = max(0, budget - (near_prefix + near_suffix) // c - _MARGIN_TOKENS)
    view_tokens = max(0, rest - context_tokens) if context_tokens >= 0 else rest * 3 // 4
    before_cap = min(max_prefix_chars, text_before)
    after_cap = min(max_suffix_chars, text_after)
    view_chars = view_tokens * c
    after = min(after_cap, max(view_chars // 3, view_chars - before_cap))
    before = min(before_cap, view_chars - after)
    after = min(after_cap, view_chars - before)
    if context_tokens < 0:
        context_tokens = max(0, rest - (before + after) // c)
    return ViewPlan(near_prefix, near_suffix, before, after, context_tokens)


#: The most a pinned callee may add to a kept prompt (characters).
_PINNED_MAX_CHARS = 600


def _view_head(
    repository: str, view: FileView, edits: str, pinned: str, header: str, shown_path: str
) -> str:
    """``repository · view · recent edits · pinned callee``, each labelled with its path.

    The edits come after the view: a new hunk elsewhere re-evaluates only itself,
    the pinned callee and the near windows, not the repository and the view.
    """
    body = view.text if view.text.endswith("\n") or not view.text else view.text + "\n"
    head = repository + path_line(header, shown_path) + body
    return head + edits + pinned + path_line(header, shown_path)


def _pinned_callee(
    index: RepositoryIndex | None,
    path: str | os.PathLike[str] | None,
    text: str,
    offset: int,
    held: Sequence[ContextChunk],
    header: str = "",
) -> str:
    """The call's definition when the kept context does not already show it, else ""."""
    if index is None or path is None:
        return ""
    chunks = callee_chunks(index, path, text, offset)
    shown = {(c.path, c.start_line) for c in held}
    missing = [c for c in chunks if (c.path, c.start_line) not in shown][:1]
    if not missing:
        return ""
    chunk = missing[0]
    body = chunk.text if len(chunk.text) <= _PINNED_MAX_CHARS else chunk.text[:_PINNED_MAX_CHARS]
    body = body if body.endswith("\n") else body + "\n"
    return path_line(header or comment_prefix(PurePath(path)), chunk.path) + body


def assemble_view(
    text: str,
    offset: int,
    plan: ViewPlan,
    *,
    budget: int,
    path: str | os.PathLike[str] | None = None,
    index: RepositoryIndex | None = None,
    recent: Sequence[RecentFile] = (),
    count_tokens: TokenCounter = estimate_tokens,
    previous: PromptParts | None = None,
    edits: Sequence[RecentEdit] = (),
    files: bool = False,
) -> PromptParts:
    """The "view" layout: repository context, a sticky view of the file, small near windows.

    The prompt reads ``context · view of this file · FIM(near suffix, near
    prefix)``.  The view and the context are taken when the cursor first comes
    to a place and kept while the cursor moves inside the view and the text
    under it stays nearly the same; so a cursor move, like a keystroke, costs
    only the near windows' tokens.  They are taken again, keeping the view's
    start (and so the tokens before the first edit), when the cursor leaves
    the view, the edited lines add up to a near window, or the budget falls
    below half (a different budget is otherwise used from the next renewal on).
    ``edits`` (recent hunks elsewhere) are ranked with the repository context when
    it is taken and written after the view; when only they change, only their
    section is written anew, in the room the repository left (else it is renewed).
    """
    near_start = sticky_prefix_start(
        text, offset, plan.near_prefix_chars, previous.prefix_start if previous else None
    )
    fim = fim_input(text, offset, plan.near_prefix_chars, plan.near_suffix_chars, near_start)
    if len(fim.prefix) == offset and len(fim.suffix) == len(text) - offset:
        # The near windows show the whole document: a view would only repeat it.
        return replace(
            assemble(
                text,
                offset,
                max_prefix_chars=plan.near_prefix_chars,
                max_suffix_chars=plan.near_suffix_chars,
                path=path,
                index=index,
                recent=recent,
                context_tokens=plan.context_tokens,
                count_tokens=count_tokens,
                previous=previous if previous is not None and previous.view is None else None,
                edits=edits,
                files=files,
            ),
            prompt_budget=budget,
        )
    stale = max(256, plan.near_prefix_chars)
    old = previous.view if previous is not None else None
    offered = _offered(edits, index, path, plan.context_tokens)
    comment = comment_prefix(PurePath(path)) if path is not None else "#"
    header = _header(comment, files)
    shown_path = display_path(index, path) if path is not None else "untitled"
    section: _EditSection | None = None
    if (
        previous is not None
        and old is not None
        # A bigger budget waits for the view's renewal; so does a smaller one,
        # unless it is less than half (the speed measured was far off).
        and previous.prompt_budget // 2 <= budget
        and view_still_serves(old, text, offset, stale)
    ):
        if offered != previous.edits:
            section = _pack_edits(offered, previous.edit_room, comment, header, index, count_tokens)
        if section is None or section.whole:
            pinned = _pinned_callee(index, path, text, offset, previous.chunks, header)
            context, held, edit_text = previous.context, previous.chunks, previous.edit_text
            if section is not None:
                held, edit_text = _split(previous.chunks) + section.chunks, section.text
            if pinned != previous.pinned or edit_text != previous.edit_text:
                context = _view_head(
                    previous.repository, old, edit_text, pinned, header, shown_path
                )
            return replace(
                previous,
                context=context,
                prefix=fim.prefix,
                suffix=fim.suffix,
                prefix_start=near_start,
                context_kept=True,
                pinned=pinned,
                chunks=held,
                edits=offered,
                edit_text=edit_text,
            )
        # A new hunk that does not fit the room left: the context is taken again.
    view = take_view(text, offset, plan.before_chars, plan.after_chars, old)
    repository, tokens, kept, room = "", 0, False, plan.context_tokens
    chunks: tuple[ContextChunk, ...] = ()
    section = _EditSection("", (), 0, True)
    if index is not None and path is not None and plan.context_tokens > 0:
        before = offset - view.start
        packed = build_context_chunks(
            index,
            path,
            text,
            offset,
            recent,
            plan.context_tokens - _edit_reserve(plan.context_tokens, offered),
            count_tokens=count_tokens,
            options=RetrievalOptions(prefix_chars=before, suffix_chars=len(view.text) - before),
            include_current_path=False,
            extra=edit_chunks(offered, comment, lambda p: display_path(index, p)),
            header=header,
        )
        repo_chunks = _split(packed.chunks)
        if (
            previous is not None
            and previous.prompt_budget == budget
            and previous.view is not None
            and not context_changed(previous.chunks, repo_chunks)
        ):
            room = previous.edit_room
            section = _pack_edits(offered, room, comment, header, index, count_tokens)
            kept = section.whole or offered == previous.edits
            if kept:
                repository, chunks = previous.repository, _split(previous.chunks)
                tokens = previous.context_budget - room
        if not kept:
            repository, chunks = render(repo_chunks, header, None), repo_chunks
            tokens = packed.tokens if len(repo_chunks) == len(packed.chunks) else 0
            if repository and not tokens:
                tokens = count_tokens(repository)
            room = plan.context_tokens - tokens
            section = _pack_edits(offered, room, comment, header, index, count_tokens)
    head = _view_head(repository, view, section.text, "", header, shown_path)
    return PromptParts(
        context=head,
        prefix=fim.prefix,
        suffix=fim.suffix,
        chunks=chunks + section.chunks,
        context_tokens=tokens + section.tokens,
        prefix_start=near_start,
        context_budget=plan.context_tokens,
        context_kept=kept,
        view=view,
        repository=repository,
        prompt_budget=budget,
        edits=offered,
        edit_text=section.text,
        edit_room=room,
    )

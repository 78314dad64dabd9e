"""One inline completion, in named stages; the server and the command line both run it.

    should_complete → reuse → build_prompt → cached → generate → postprocess → record

``reuse`` answers from the suggestion on screen when the user typed its start;
the rest needs a backend and blocks, so the server runs :func:`run_model` off
the event loop (after its own waits: debounce, a model still loading) and the
command line runs :func:`complete`.  No LSP types: documents are plain text and
offsets, answers plain dataclasses.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from codellama_lsp.context.assemble import (
    CHARS_PER_TOKEN,
    PromptParts,
    assemble,
    assemble_view,
    auto_context_budget,
    plan_view,
    prompt_budget,
)
from codellama_lsp.context.edits import RecentEdit
from codellama_lsp.context.index import RepositoryIndex
from codellama_lsp.context.packing import file_sections
from codellama_lsp.context.postprocess import StopChecker, decide_policy, finish_generated
from codellama_lsp.context.redact import redact
from codellama_lsp.context.retrieval import RecentFile
from codellama_lsp.context.reuse import typed_through_all
from codellama_lsp.quant.backend import (
    Backend,
    BackendInfo,
    CompletionRequest,
    CompletionResult,
    StopRule,
)

from .settings import Settings
from .state import CompletionState, LastPrompt, Prefetched, Prompt


class Budget(Protocol):
    """What building a prompt needs of a backend: its window and its token count."""

    def describe(self) -> BackendInfo: ...

    def count_tokens(self, text: str) -> int: ...


@dataclass(frozen=True)
class CompletionInput:
    """A document's text and the cursor in it, with what context may be drawn from."""

    #: Identifies the document in the per-document state (the LSP URI).
    key: str
    text: str
    offset: int
    language: str | None = None
    #: The file's path on disk, when it has one: retrieval leaves it out of the context.
    path: str | None = None
    index: RepositoryIndex | None = None
    #: Other recently used documents, most recent first.
    recent: Sequence[RecentFile] = ()
    #: The user asked explicitly: answer from a fresh prompt, not the ghost text on screen.
    invoked: bool = False
    #: The cursor as the client counts it (line, character), echoed in the last-prompt record.
    cursor: tuple[int, int] = (0, 0)
    #: A secret or excluded file (``context.workspace.blocks_completion``): never completed.
    excluded: bool = False
    #: Recent hunks elsewhere (other files, or far from the cursor), oldest first.
    edits: Sequence[RecentEdit] = ()


@dataclass(frozen=True)
class Answer:
    """What to show (None: nothing), how it was found, and what it cost."""

    suggestion: str | None
    source: str
    #: From the request's arrival, waits included.
    total_ms: float
    prompt: Prompt | None = None
    #: None unless the model ran.
    result: CompletionResult | None = None
    #: Further distinct suggestions after ``suggestion``, best first (``completion.candidates``).
    alternatives: tuple[str, ...] = ()

    @property
    def suggestions(self) -> tuple[str, ...]:
        """Everything to offer, best first; empty when there is nothing to show."""
        if self.suggestion is None:
            return ()
        return (self.suggestion, *self.alternatives)

    def log_fields(self) -> str:
        """One log line's worth of fields, the same for the server and the CLI."""
        head = f"source={self.source}"
        prompt, result = self.prompt, self.result
        if prompt is None:
            return f"{head} total_ms={self.total_ms:.2f}"
        if result is None:
            return f"{head} build_prompt_ms={prompt.build_ms:.1f} total_ms={self.total_ms:.1f}"
        ttft = self.total_ms - result.total_ms + result.ttft_ms
        return (
            f"{head} prompt_tokens={result.prompt_tokens} "
            f"context_tokens={result.context_tokens} context_chunks={len(prompt.parts.chunks)} "
            f"context_kept={prompt.parts.context_kept} reused_tokens={result.reused_tokens} "
            f"evaluated_tokens={result.evaluated_tokens} "
            f"generated_tokens={result.generated_tokens} drafted_tokens={result.drafted_tokens} "
            f"accepted_tokens={result.accepted_tokens} "
            f"build_prompt_ms={prompt.build_ms + result.tokenize_ms:.1f} ttft_ms={ttft:.1f} "
            f"total_ms={self.total_ms:.1f} stop={result.stop_reason}"
            f"{f' candidates={len(self.suggestions)}' if result.alternatives else ''}"
            f"{f' healed={result.healed!r}' if result.healed else ''}"
        )


#: Why an excluded file gets nothing, for logs and the command line.
EXCLUDED_MESSAGE = (
    "no completions in secret or excluded files (their text would be the prompt); "
    "context.completeExcluded allows them by pattern"
)


def should_complete(doc: CompletionInput, started: float) -> Answer | None:
    """None to go on; else the answer without a suggestion (a secret or excluded file)."""
    if not doc.excluded:
        return None
    return Answer(None, "excluded", _since(started))


def complete(
    doc: CompletionInput,
    settings: Settings,
    backend: Backend,
    state: CompletionState,
    cancel: threading.Event | None = None,
) -> Answer:
    """The whole pipeline in one blocking call (the command line; tests)."""
    started = time.perf_counter()
    skipped = should_complete(doc, started)
    if skipped is not None:
        state.count(skipped.source)
        return skipped
    return reuse(doc, state, started) or run_model(
        doc, settings, backend, state, cancel or threading.Event(), started
    )


def reuse(doc: CompletionInput, state: CompletionState, started: float) -> Answer | None:
    """An answer without model work: the rest of the suggestion on screen when the user
    typed its beginning, or what was computed ahead for this text (an accept)."""
    if doc.invoked:
        state.hide(doc.key)
        return None
    remainders = typed_through_all(state.shown(doc.key), doc.text, doc.offset)
    if remainders:
        state.count("typed_through")
        return _offer(doc, state, "typed_through", remainders, started)
    state.hide(doc.key)
    ahead = state.take_prefetched(doc.key, doc.text, doc.offset)
    if ahead is None:
        return None
    state.remember(doc.key, ahead.parts)  # the prompt the KV cache now holds
    state.count("prefetch")
    return _offer(doc, state, "prefetch", ahead.suggestions, started)


def _offer(
    doc: CompletionInput,
    state: CompletionState,
    source: str,
    suggestions: tuple[str, ...],
    started: float,
    prompt: Prompt | None = None,
    result: CompletionResult | None = None,
) -> Answer:
    """The answer offering ``suggestions`` (best first), remembered as what is on screen."""
    if not suggestions:
        return Answer(None, source, _since(started), prompt, result)
    first, *others = suggestions
    state.show(doc.key, doc.text, doc.offset, first, tuple(others))
    return Answer(first, source, _since(started), prompt, result, tuple(others))


def run_model(
    doc: CompletionInput,
    settings: Settings,
    backend: Backend,
    state: CompletionState,
    cancel: threading.Event,
    started: float,
) -> Answer:
    """build_prompt → cached → generate → postprocess → record; blocks."""
    prompt = build_prompt(doc, settings, backend, state)
    found, suggestions = state.cache.get(prompt.cache_key)
    if found:
        return record(doc, state, prompt, None, suggestions or (), backend, cancel, started)
    result = generate(backend, prompt, cancel)
    suggestions = postprocess(result, prompt)
    if result.stop_reason not in ("cancelled", "time_budget"):
        state.cache.put(prompt.cache_key, suggestions)  # a cut-short answer is not the answer
    return record(doc, state, prompt, result, suggestions, backend, cancel, started)


def prefetch(
    doc: CompletionInput,
    accepted: str,
    settings: Settings,
    backend: Backend,
    state: CompletionState,
    cancel: threading.Event,
) -> Prefetched | None:
    """Compute the suggestion that follows ``accepted`` as if the user accepted it.

    Stored for exactly that text and cursor, so the request after an accept is
    answered from it by :func:`reuse` with no model work.  Nothing is shown and
    the document's last prompt is left alone until then.  None when cancelled.
    """
    text = doc.text[: doc.offset] + accepted + doc.text[doc.offset :]
    ahead = replace(doc, text=text, offset=doc.offset + len(accepted), invoked=False)
    if state.has_prefetched(doc.key, ahead.text, ahead.offset):
        return None
    prompt = build_prompt(ahead, settings, backend, state)
    # Aside: the local model keeps the prompt typing continues from in its KV cache.
    prompt = replace(prompt, request=replace(prompt.request, aside=True))
    found, cached = state.cache.get(prompt.cache_key)
    if found:
        suggestions = cached or ()
    else:
        result = generate(backend, prompt, cancel)
        if result.stop_reason == "cancelled" or cancel.is_set():
            return None
        suggestions = postprocess(result, prompt)
        if result.stop_reason != "time_budget":
            state.cache.put(prompt.cache_key, suggestions)
    stored = Prefetched(ahead.text, ahead.offset, suggestions, prompt.parts)
    state.store_prefetched(doc.key, stored)
    return stored


def warm(
    doc: CompletionInput,
    settings: Settings,
    backend: Backend,
    state: CompletionState,
    cancel: threading.Event,
) -> CompletionResult:
    """Evaluate the prompt a request at ``doc``'s cursor would send, generating nothing.

    Its parts are remembered as the document's last prompt, so the next real
    request there builds the same prompt and finds it in the KV cache.
    """
    prompt = build_prompt(doc, settings, backend, state)
    result = backend.complete(replace(prompt.request, warm=True), cancel)
    if not cancel.is_set():
        state.remember(doc.key, prompt.parts)
    return result


def build_prompt(
    doc: CompletionInput, settings: Settings, backend: Budget, state: CompletionState
) -> Prompt:
    """Windows around the cursor plus repository context, packed into the token budget."""
    begun = time.perf_counter()
    info = backend.describe()
    window = settings.completion
    budget = state.settle_budget(
        prompt_budget(
            info.n_ctx, window.max_tokens, info.prompt_tokens_per_s, window.cold_budget_ms
        )
    )
    parts = _parts(doc, settings, backend, state, budget, info.repo_level)
    # Credentials never reach a model, local or remote (the parts themselves stay
    # as the user's text: the suggestion is checked against what is really there).
    context = redact(parts.context)
    files, path = _files(context) if info.repo_level else ((), "")
    request = CompletionRequest(
        prefix=redact(parts.prefix),
        suffix=redact(parts.suffix),
        context="" if info.repo_level else context,
        files=files,
        repo=doc.index.root.name if files and doc.index is not None else "",
        path=path,
        max_tokens=window.max_tokens,
        fim_order=window.fim_order,
        time_budget_ms=window.time_budget_ms,
        prompt_lookup=window.prompt_lookup,
        document=doc.key,
        candidates=window.candidates,
        token_healing=window.token_healing,
    )
    policy = decide_policy(
        parts.prefix, parts.suffix, language=doc.language, max_lines=window.max_lines
    )
    # The backend object too: an answer still running on a replaced backend must
    # not feed the new one's cache.
    key = (id(backend), info.label, request, policy)
    return Prompt(parts, request, policy, key, _since(begun))


def _files(context: str) -> tuple[tuple[tuple[str, str], ...], str]:
    """A repository-level context's files, and the current file's path (its last section)."""
    sections = file_sections(context)
    if sections and not sections[-1][1]:
        return sections[:-1], sections[-1][0]
    return sections, ""


def _parts(
    doc: CompletionInput,
    settings: Settings,
    backend: Budget,
    state: CompletionState,
    budget: int,
    files: bool,
) -> PromptParts:
    """The prompt's text parts in the configured layout, cut for ``budget`` tokens.

    ``files``: the backend's model was trained with repository-level prompts, so the
    context is written as file sections, not a commented preamble.
    """
    window = settings.completion
    index = doc.index if settings.context.enable else None
    explicit = 0 if index is None else settings.context.max_tokens
    previous = state.previous_parts(doc.key)
    if window.layout == "view":
        plan = plan_view(
            budget,
            near_prefix_chars=window.near_prefix_chars,
            near_suffix_chars=window.near_suffix_chars,
            max_prefix_chars=window.max_prefix_chars,
            max_suffix_chars=window.max_suffix_chars,
            context_tokens=explicit,
            text_before=doc.offset,
            text_after=len(doc.text) - doc.offset,
        )
        return assemble_view(
            doc.text,
            doc.offset,
            plan,
            budget=budget,
            path=doc.path,
            index=index,
            recent=doc.recent,
            count_tokens=backend.count_tokens,
            previous=previous,
            edits=doc.edits,
            files=files,
        )
    # The windows take at most four fifths of the budget, the prefix most of that.
    room = budget * CHARS_PER_TOKEN * 4 // 5
    prefix_chars = min(window.max_prefix_chars, room * 4 // 5)
    suffix_chars = min(window.max_suffix_chars, room - prefix_chars)
    context_tokens = explicit
    if context_tokens < 0:
        context_tokens = auto_context_budget(
            budget + window.max_tokens,
            window.max_tokens,
            min(prefix_chars, doc.offset),
            min(suffix_chars, len(doc.text) - doc.offset),
        )
    return assemble(
        doc.text,
        doc.offset,
        max_prefix_chars=prefix_chars,
        max_suffix_chars=suffix_chars,
        path=doc.path,
        index=index,
        recent=doc.recent,
        context_tokens=context_tokens,
        count_tokens=backend.count_tokens,
        previous=previous,
        edits=doc.edits,
        files=files,
    )


def generate(backend: Backend, prompt: Prompt, cancel: threading.Event) -> CompletionResult:
    """The backend's completion, stopped by the policy's rules as soon as they apply."""
    policy, prefix, suffix = prompt.policy, prompt.parts.prefix, prompt.parts.suffix

    def new_rule() -> StopRule:
        return StopChecker(policy, prefix, suffix).check

    return backend.complete(prompt.request, cancel, stop=new_rule(), more_stops=new_rule)


def postprocess(result: CompletionResult, prompt: Prompt) -> tuple[str, ...]:
    """The suggestions to show, best first, each distinct (empty: nothing to show).

    Nothing of a cancelled generation is shown.  Candidates that come out the
    same once cleaned up (or differ only in surrounding blanks) are offered once.
    """
    if result.stop_reason == "cancelled":
        return ()
    cut_short = result.stop_reason == "time_budget"
    found: list[str] = []
    for rank, text in enumerate((result.text, *result.alternatives)):
        suggestion = finish_generated(
            text, prompt.policy, prompt.parts.prefix, prompt.parts.suffix, cut_short=cut_short
        )
        if suggestion is None or not suggestion.strip():
            if rank == 0:
                return ()  # the best candidate says there is nothing to add here
            continue
        if all(suggestion.strip() != other.strip() for other in found):
            found.append(suggestion)
    return tuple(found)


def record(
    doc: CompletionInput,
    state: CompletionState,
    prompt: Prompt,
    result: CompletionResult | None,
    suggestions: tuple[str, ...],
    backend: Backend,
    cancel: threading.Event,
    started: float,
) -> Answer:
    """Remember the prompt and what is shown, count the answer, and return it."""
    state.remember(doc.key, prompt.parts)
    if result is None:
        source = "cache"
    else:
        state.last = LastPrompt(doc.key, doc.cursor, prompt, result, backend)
        source = "superseded" if result.stop_reason == "cancelled" else "model"
    state.count(source)
    if cancel.is_set():
        suggestions = ()  # superseded after it was made: the text it was made for is gone
    return _offer(doc, state, source, suggestions, started, prompt, result)


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000

"""CompletionState owns what completions remember; finish_generated is the postprocess stage."""

from __future__ import annotations

import threading

from codellama_lsp.context.assemble import PromptParts
from codellama_lsp.context.postprocess import decide_policy, finish_generated
from codellama_lsp.core.pipeline import CompletionInput, reuse
from codellama_lsp.core.state import CompletionState, Prefetched

TEXT = "def add(a, b):\n    \n"
OFFSET = TEXT.index("\n    ") + 5


def test_a_newer_request_stops_the_one_it_replaces() -> None:
    state = CompletionState(8)
    first = state.begin("a", 1)
    second = state.begin("a", 2)
    assert first.cancel.is_set() and not second.cancel.is_set()
    state.end("a", first)  # the old one ending does not drop the new one
    state.cancel("a")
    assert second.cancel.is_set()
    third = state.begin("a", 4)
    state.cancel_all()
    assert third.cancel.is_set()


def test_the_newest_request_wins_over_work_on_any_document() -> None:
    state = CompletionState(8)
    a = state.begin("a", 1)
    b = state.begin("b", 2)
    assert a.cancel.is_set() and not b.cancel.is_set()


def test_warming_runs_only_when_idle_and_any_request_stops_it() -> None:
    state = CompletionState(8)
    busy = state.begin("a", 1)
    assert state.begin_warming("b") is None  # a request runs: no background work
    state.end("a", busy)
    warming = state.begin_warming("b")
    assert warming is not None and not warming.cancel.is_set()
    newer = state.begin_warming("c")
    assert newer is not None and warming.cancel.is_set()  # a newer warming replaces it
    state.begin("z", 2)
    assert newer.cancel.is_set()
    state.end_warming(newer)


def test_typed_through_answers_from_the_shown_suggestion_and_counts() -> None:
    state = CompletionState(8)
    state.show("u", TEXT, OFFSET, "return a + b")
    typed = TEXT[:OFFSET] + "ret" + TEXT[OFFSET:]
    answer = reuse(CompletionInput("u", typed, OFFSET + 3), state, 0.0)
    assert answer is not None and answer.suggestion == "urn a + b"
    assert answer.source == "typed_through" and state.counts["typed_through"] == 1
    # Explicitly invoked: a fresh prompt, and the shown suggestion is gone.
    assert reuse(CompletionInput("u", typed, OFFSET + 3, invoked=True), state, 0.0) is None
    assert state.shown("u") is None


def test_reset_and_forget_drop_what_the_old_backend_made() -> None:
    state = CompletionState(8)
    parts = PromptParts("", TEXT[:OFFSET], TEXT[OFFSET:])
    for key in ("a", "b"):
        state.show(key, TEXT, OFFSET, "x")
        state.remember(key, parts)
    state.cache.put(("k",), "x")
    running = state.begin("a", 1)
    state.forget("a")
    assert running.cancel.is_set()
    assert state.shown("a") is None and state.previous_parts("a") is None
    assert state.shown("b") is not None
    state.reset(cache_size=2)
    assert state.shown("b") is None and state.previous_parts("b") is None
    assert len(state.cache) == 0 and state.cache.capacity == 2 and state.last is None


def test_state_is_safe_to_use_from_worker_threads() -> None:
    state = CompletionState(64)

    def work(n: int) -> None:
        for i in range(500):
            key = f"d{(n + i) % 7}"
            state.show(key, TEXT, OFFSET, str(i))
            state.count("model")
            state.cancel(key)
            state.hide(key)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state.counts["model"] == 2000


def test_a_suggestion_cut_by_the_time_budget_keeps_only_complete_lines() -> None:
    prefix, suffix = TEXT[:OFFSET], TEXT[OFFSET:]
    policy = decide_policy(prefix, suffix, language="python")
    assert policy.multiline
    text = "total = a + b\n    return tot"
    assert finish_generated(text, policy, prefix, suffix, cut_short=True) == "total = a + b"
    assert finish_generated(text, policy, prefix, suffix) == text
    single = decide_policy("x = ", "\n", language="python")
    assert finish_generated("compute(a", single, "x = ", "\n", cut_short=True) == "compute(a"


def test_accepting_the_first_line_of_a_multi_line_suggestion_is_answered_by_the_rest() -> None:
    """Accept-line needs nothing computed ahead: the rest of what is shown answers it."""
    state = CompletionState(8)
    shown = "total = 0\n    for x in a:\n        total += x"
    state.show("u", TEXT, OFFSET, shown, ("return 0",))
    line = "total = 0\n"
    accepted = TEXT[:OFFSET] + line + TEXT[OFFSET:]
    answer = reuse(CompletionInput("u", accepted, OFFSET + len(line)), state, 0.0)
    assert answer is not None and answer.source == "typed_through"
    assert answer.suggestions == (shown[len(line) :],)  # the other candidate no longer fits


def test_what_was_computed_ahead_answers_exactly_its_text_once() -> None:
    state = CompletionState(8)
    parts = PromptParts(context="", prefix=TEXT[:OFFSET], suffix=TEXT[OFFSET:])
    ahead = TEXT[:OFFSET] + "x" + TEXT[OFFSET:]
    state.store_prefetched("u", Prefetched(ahead, OFFSET + 1, ("y", "z"), parts))
    assert reuse(CompletionInput("u", ahead, OFFSET), state, 0.0) is None  # another cursor
    answer = reuse(CompletionInput("u", ahead, OFFSET + 1), state, 0.0)
    assert answer is not None and answer.source == "prefetch"
    assert answer.suggestions == ("y", "z") and state.counts["prefetch"] == 1
    assert state.previous_parts("u") is parts  # the prompt the KV cache now holds
    # Used once; and a reset forgets everything computed ahead.
    assert reuse(CompletionInput("u", ahead, OFFSET + 1), state, 0.0) is not None  # shown now
    state.store_prefetched("u", Prefetched(ahead, OFFSET + 1, (), parts))
    state.reset()
    assert state.take_prefetched("u", ahead, OFFSET + 1) is None

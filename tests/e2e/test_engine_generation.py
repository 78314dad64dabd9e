"""Generation details that keystroke speed depends on: KV reuse, stop rules, limits, lookup."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from codellama_lsp.context.postprocess import StopChecker, decide_policy
from codellama_lsp.quant.engine import CompletionRequest, Engine, EngineConfig
from tests.support.synthetic import MID_ID, PRE_ID, SUF_ID

CONTEXT = "# Path: util.py\ndef helper(x: int) -> int:\n    ...\n# Path: main.py\n"
SUFFIX = "\n\nprint(total)\n"
LOOPS = "x = 1\nwhile True:\n   " + " loop" * 12


@pytest.fixture(scope="module")
def engine(model_path: Path) -> Engine:
    return Engine.load(EngineConfig(str(model_path), n_ctx=2048))


def test_context_comes_first_then_the_fim_tokens(engine: Engine) -> None:
    request = CompletionRequest(prefix="total = ", suffix=SUFFIX, context=CONTEXT)
    prepared = engine.prepare(request)
    tokens = prepared.tokens
    assert tokens[0] == engine.fim.bos
    assert prepared.context_tokens == len(engine.tokenize_prefix(CONTEXT))
    assert tokens[1 + prepared.context_tokens : 3 + prepared.context_tokens] == [PRE_ID, SUF_ID]
    assert engine.render(tokens[1 : 1 + prepared.context_tokens]) == " " + CONTEXT
    assert tokens.index(MID_ID) < len(tokens) - 1  # SPM: the prefix is last


def test_typing_evaluates_only_the_new_tokens(engine: Engine) -> None:
    line = "total = compute_the_sum(values, start=0)"
    first = engine.complete(
        CompletionRequest(prefix="values = [1, 2]\n", suffix=SUFFIX, context=CONTEXT, max_tokens=4)
    )
    assert first.context_tokens > 0
    for end in range(1, len(line) + 1):
        request = CompletionRequest(
            prefix="values = [1, 2]\n" + line[:end], suffix=SUFFIX, context=CONTEXT, max_tokens=4
        )
        new_tokens = len(engine.prepare(request).tokens) - len(
            engine.prepare(
                CompletionRequest(
                    prefix="values = [1, 2]\n" + line[: end - 1], suffix=SUFFIX, context=CONTEXT
                )
            ).tokens
        )
        result = engine.complete(request)
        evaluated = result.prompt_tokens - result.reused_tokens
        assert evaluated <= max(new_tokens, 0) + 4, (line[:end], evaluated, new_tokens)


def test_moving_the_cursor_keeps_the_context_in_the_cache(engine: Engine) -> None:
    engine.complete(CompletionRequest(prefix="a = 1\n", suffix="\nb = 2\n", context=CONTEXT))
    moved = engine.complete(
        CompletionRequest(prefix="a = 1\nb = 2\n", suffix="\n", context=CONTEXT, max_tokens=4)
    )
    assert moved.reused_tokens >= 1 + moved.context_tokens


def test_stop_rule_ends_generation_and_trims(engine: Engine) -> None:
    seen: list[str] = []

    def stop(text: str) -> int | None:
        seen.append(text)
        return 3 if len(seen) == 2 else None

    result = engine.complete(CompletionRequest(prefix=LOOPS, suffix="", max_tokens=32), stop=stop)
    assert result.stop_reason == "stop_rule"
    assert result.generated_tokens == 2
    assert result.text == seen[-1][:3]


def test_postprocess_checker_keeps_a_single_line(engine: Engine) -> None:
    prefix, suffix = "items = [1, 2]\nfor item in items:\n    print(item) ", "\n"
    policy = decide_policy(prefix, suffix, language="python")
    assert not policy.multiline
    checker = StopChecker(policy, prefix, suffix)
    result = engine.complete(
        CompletionRequest(prefix=prefix, suffix=suffix, max_tokens=48), stop=checker.check
    )
    assert "\n" not in result.text


def test_time_budget_stops_generation(engine: Engine) -> None:
    result = engine.complete(
        CompletionRequest(prefix=LOOPS, suffix="", max_tokens=256, time_budget_ms=0.001)
    )
    assert result.stop_reason == "time_budget"
    assert result.generated_tokens == 1


def test_cancel_stops_between_tokens(engine: Engine) -> None:
    cancel = threading.Event()
    count = 0

    def stop(text: str) -> int | None:
        nonlocal count
        count += 1
        if count == 3:
            cancel.set()
        return None

    result = engine.complete(
        CompletionRequest(prefix=LOOPS, suffix="", max_tokens=64), cancel, stop=stop
    )
    assert result.stop_reason == "cancelled"
    assert result.generated_tokens == 3


def test_prompt_lookup_gives_the_same_text_with_fewer_decode_steps(engine: Engine) -> None:
    request = CompletionRequest(prefix=LOOPS, suffix=SUFFIX, max_tokens=40)
    plain = engine.complete(request)
    looked = engine.complete(replace(request, prompt_lookup=8))
    assert plain.text == looked.text
    assert plain.text.count("loop") >= 10
    assert looked.generated_tokens == plain.generated_tokens
    assert looked.drafted_tokens > 0
    assert looked.accepted_tokens > 0
    assert plain.drafted_tokens == 0
    # The guesses that were wrong left the cache: the next request still agrees.
    again = engine.complete(request)
    assert again.text == plain.text


def test_prompt_lookup_on_ordinary_code(engine: Engine) -> None:
    prefix = "def add(a, b):\n    return a + b\n\n\ndef add_three(a, b, c):\n    "
    request = CompletionRequest(prefix=prefix, suffix="\n", max_tokens=24, fim_order="psm")
    looked = engine.complete(replace(request, prompt_lookup=4))
    assert looked.text == engine.complete(request).text

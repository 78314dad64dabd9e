"""The engine's extra sequences: several candidates, the prefetch's side sequence, healing.

llama.cpp runs the generated model for real; its script (tests/support/synthetic.py)
makes every answer exact.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from codellama_lsp.quant.engine import (
    SIDE_SEQUENCE,
    CompletionRequest,
    Engine,
    EngineConfig,
)

HEAD = "def f(a, b):\n" + "    x = a  # 🙂\n" * 30


@pytest.fixture
def engine(model_path: Path) -> Engine:
    return Engine.load(EngineConfig(str(model_path), n_ctx=4096))


def request(prefix: str, **extra: object) -> CompletionRequest:
    return CompletionRequest(prefix=prefix, suffix="\n", max_tokens=8, document="d", **extra)  # type: ignore[arg-type]


def sequence_tokens(engine: Engine, seq: int) -> int:
    """Positions sequence ``seq`` holds in llama.cpp's KV cache (0 when empty)."""
    from llama_cpp import llama_cpp as C

    return int(C.llama_memory_seq_pos_max(engine._llm._ctx.memory, seq)) + 1


def test_candidates_are_distinct_ranked_and_the_first_is_the_greedy_one(
    engine: Engine, model_path: Path
) -> None:
    prefix = HEAD + "    y = "
    single = engine.complete(request(prefix))
    engine.forget("d")
    fresh = Engine.load(EngineConfig(str(model_path), n_ctx=4096))
    many = fresh.complete(request(prefix, candidates=4))
    assert many.text == single.text and single.alternatives == ()
    assert len(many.alternatives) == 3
    assert len({many.text, *many.alternatives}) == 4
    # One evaluation of the prompt; the extra sequences are gone afterwards.
    assert many.reused_tokens == 0 and many.prompt_tokens == single.prompt_tokens
    assert all(sequence_tokens(fresh, seq) == 0 for seq in range(1, 5))
    # The next keystroke reuses sequence 0 as if one candidate had been generated.
    after = fresh.complete(request(prefix + "z", candidates=4))
    assert after.evaluated_tokens <= 3


def test_a_prefetch_on_the_side_sequence_leaves_typing_its_kv_cache(engine: Engine) -> None:
    prefix = HEAD + "    y = cycle"
    shown = engine.complete(request(prefix))
    loaded = engine._llm.n_tokens
    ahead = engine.complete(request(prefix + shown.text, aside=True))
    assert ahead.text and engine._llm.n_tokens == loaded  # sequence 0 untouched
    assert sequence_tokens(engine, SIDE_SEQUENCE) > loaded
    # The user typed something else: sequence 0 still holds the prompt.
    typed = engine.complete(request(prefix + " x"))
    assert typed.evaluated_tokens <= 4
    assert sequence_tokens(engine, SIDE_SEQUENCE) == 0  # a real request drops the side
    # Prefetch again, then accept: the request after it takes the side sequence over.
    ahead = engine.complete(request(prefix + shown.text, aside=True))
    accepted = prefix + shown.text + ahead.text + " z"
    after = engine.complete(request(accepted))
    assert after.evaluated_tokens <= 4
    assert sequence_tokens(engine, SIDE_SEQUENCE) == 0
    reference = Engine.load(EngineConfig(engine.config.model_path, n_ctx=4096))
    assert reference.complete(request(accepted)).text == after.text


def test_a_prefetch_stops_inside_a_token_when_a_request_comes(engine: Engine) -> None:
    cancel = threading.Event()
    long = CompletionRequest(
        prefix=HEAD + "    y = cycle", suffix="\n", max_tokens=3000, document="d", aside=True
    )
    engine.complete(request(HEAD))
    done: list[float] = []

    def run() -> None:
        engine.complete(long, cancel)
        done.append(time.perf_counter())

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(0.3)
    stopped = time.perf_counter()
    cancel.set()
    worker.join(10)
    assert done and done[0] - stopped < 0.5
    assert sequence_tokens(engine, SIDE_SEQUENCE) == 0


def test_healing_chooses_the_models_token_where_the_last_one_starts(engine: Engine) -> None:
    healed = engine.complete(request("import numpy as n", token_healing=True))
    assert (healed.text, healed.healed) == ("p", " n")
    plain = engine.complete(request("import numpy as n"))
    assert (plain.text, plain.healed) == (" pass", "")
    # The prompt is the same token list either way: healing reads two positions' logits.
    assert engine.prepare(request("import numpy as n", token_healing=True)).tokens == (
        engine.prepare(request("import numpy as n")).tokens
    )
    # Not inside a word: nothing to heal.
    assert engine.prepare(request("x = (", token_healing=True)).heal == b""
    assert engine.prepare(request("import numpy as n", token_healing=True)).heal == b" n"


def test_healing_with_candidates_and_on_the_side_sequence(engine: Engine) -> None:
    many = engine.complete(request("import numpy as n", token_healing=True, candidates=3))
    assert many.text == "p" and len(many.alternatives) == 2
    engine.complete(request(HEAD))
    ahead = engine.complete(request("import numpy as n", token_healing=True, aside=True))
    assert ahead.text == "p"


def test_warming_a_prompt_already_in_the_cache_evaluates_nothing(engine: Engine) -> None:
    """The editor came back to where the prompt is cached: a second warm is free."""
    warm = request(HEAD, warm=True)
    first = engine.complete(warm)
    again = engine.complete(warm)
    assert first.evaluated_tokens == first.prompt_tokens
    assert again.evaluated_tokens == 0 and again.stop_reason == "max_tokens"

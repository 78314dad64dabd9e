"""Per-document KV state: coming back to a document, warming ahead, speed measured at load."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from codellama_lsp.quant.engine import CompletionRequest, Engine, EngineConfig

#: Three documents, each long enough (hundreds of tokens) that re-evaluating shows.
DOCS = {
    name: "".join(f"def {name}_{i}(x):\n    return x * {i}  # 🙂\n" for i in range(60))
    for name in ("alpha", "beta", "gamma")
}


def request(name: str, **extra: object) -> CompletionRequest:
    return CompletionRequest(
        prefix=DOCS[name],
        suffix="\n",
        max_tokens=1,
        document=name,
        **extra,  # type: ignore[arg-type]
    )


def last_logits(engine: Engine) -> np.ndarray:
    llm = engine._llm
    return np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(engine._n_vocab,)).copy()


@pytest.fixture
def engine(model_path: Path) -> Engine:
    return Engine.load(EngineConfig(str(model_path), n_ctx=4096, document_states=2))


def test_coming_back_to_a_document_evaluates_only_what_changed(engine: Engine) -> None:
    first = engine.complete(request("alpha"))
    assert first.evaluated_tokens == first.prompt_tokens > 300
    engine.complete(request("beta"))
    back = engine.complete(request("alpha"))
    assert back.evaluated_tokens == 1  # the last token, whose logits start decoding
    restored = last_logits(engine)
    # The restored cache gives what a full evaluation gives (the last token is
    # evaluated alone here, in one batch with the rest there: float rounding).
    fresh = Engine.load(EngineConfig(str(engine.config.model_path), n_ctx=4096))
    fresh.complete(request("alpha"))
    expected = last_logits(fresh)
    assert np.allclose(restored, expected, atol=1e-4)
    assert int(np.argmax(restored)) == int(np.argmax(expected))
    fresh.close()
    assert back.text == first.text


def test_states_are_kept_for_the_last_few_documents_only(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="codellama_lsp.quant.engine")
    for name in ("alpha", "beta", "gamma"):
        engine.complete(request(name))
    # Two slots: beta comes back, gamma is parked, alpha (least recent) is evicted.
    engine.complete(request("beta"))
    assert engine.states.documents() == ["gamma"]
    assert any("document state of alpha evicted" in r.message for r in caplog.records)
    cold = engine.complete(request("alpha"))
    assert cold.evaluated_tokens > 300  # alpha was dropped
    assert engine.states.used_bytes <= engine.states.limit_bytes


def test_the_memory_limit_bounds_what_is_kept(model_path: Path) -> None:
    engine = Engine.load(EngineConfig(str(model_path), n_ctx=4096, document_state_mb=0))
    engine.complete(request("alpha"))
    engine.complete(request("beta"))
    assert len(engine.states) == 0
    again = engine.complete(request("alpha"))
    assert again.evaluated_tokens > 300
    engine.close()


def test_a_closed_document_is_forgotten(engine: Engine) -> None:
    engine.complete(request("alpha"))
    engine.complete(request("beta"))
    assert "alpha" in engine.states.documents()
    engine.forget("alpha")
    assert "alpha" not in engine.states.documents()
    assert engine.complete(request("alpha")).evaluated_tokens > 300


def test_warming_evaluates_the_prompt_so_the_request_is_warm(engine: Engine) -> None:
    warmed = engine.complete(request("gamma", warm=True))
    assert warmed.generated_tokens == 0 and warmed.text == ""
    assert warmed.evaluated_tokens == warmed.prompt_tokens
    real = engine.complete(request("gamma"))
    assert real.evaluated_tokens == 1


def test_warming_stops_between_batches(model_path: Path) -> None:
    engine = Engine.load(EngineConfig(str(model_path), n_ctx=4096, n_batch=32))
    cancel = threading.Event()
    cancel.set()  # a real request came before the first batch
    stopped = engine.complete(request("alpha", warm=True), cancel)
    assert stopped.stop_reason == "cancelled" and stopped.evaluated_tokens > 0
    assert engine._llm.n_tokens == 0  # nothing was evaluated
    engine.close()


def test_prompt_speed_is_measured_at_load(engine: Engine) -> None:
    assert engine.describe().prompt_tokens_per_s > 0
    assert engine._llm.n_tokens == 0  # the measurement left the cache empty


def test_a_real_request_stops_warming_within_one_batch(model_path: Path) -> None:
    engine = Engine.load(EngineConfig(str(model_path), n_ctx=4096, n_batch=16))
    long_prompt = CompletionRequest(
        prefix="".join(DOCS.values()), suffix="\n", document="all", warm=True
    )
    cancel = threading.Event()
    done: list[object] = []
    worker = threading.Thread(target=lambda: done.append(engine.complete(long_prompt, cancel)))
    worker.start()
    deadline = time.monotonic() + 10
    while engine._llm.n_tokens < 64 and time.monotonic() < deadline:
        time.sleep(0.001)  # until warming is under way
    cancel.set()  # what CompletionState.begin does when the user types
    worker.join(timeout=5)
    assert not worker.is_alive()
    (result,) = done
    assert result.stop_reason == "cancelled"  # type: ignore[attr-defined]
    # It stopped long before the end of the prompt; what it evaluated stays cached.
    assert 64 <= engine._llm.n_tokens < result.prompt_tokens  # type: ignore[attr-defined]
    real = engine.complete(CompletionRequest(prefix="x = 1\n", suffix="", document="other"))
    assert real.stop_reason != "cancelled"
    engine.close()

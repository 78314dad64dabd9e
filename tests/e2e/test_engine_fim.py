"""The FIM prompt built from token ids, and greedy generation through llama.cpp."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from codellama_lsp.quant import fim
from codellama_lsp.quant.engine import CompletionRequest, Engine, EngineConfig
from codellama_lsp.quant.errors import ModelFormatError, ModelNotFoundError
from tests.support.synthetic import EOT_ID, MID_ID, PRE_ID, SCRIPTED_COMPLETION, SUF_ID

IDS = fim.FimTokens(
    bos=1, eos=2, prefix=PRE_ID, suffix=SUF_ID, middle=MID_ID, ends=frozenset({2, EOT_ID})
)


def test_assemble_psm_and_spm() -> None:
    assert fim.assemble(IDS, [10, 11], [20], "psm") == [1, PRE_ID, 10, 11, SUF_ID, 20, MID_ID]
    assert fim.assemble(IDS, [10, 11], [20], "spm") == [1, PRE_ID, SUF_ID, 20, MID_ID, 10, 11]
    with pytest.raises(ValueError):
        fim.assemble(IDS, [], [], "mps")


def count_words(text: str) -> int:
    return len(text.split())


def test_fit_prefix_drops_whole_leading_lines() -> None:
    text = "a b\nc d\ne f\ng h"
    assert fim.fit_prefix(text, 100, count_words) == text
    assert fim.fit_prefix(text, 4, count_words) == "e f\ng h"
    assert fim.fit_prefix(text, 1, count_words) == "g h"  # the cursor line stays whole


def test_fit_suffix_drops_whole_trailing_lines() -> None:
    text = "a b\nc d\ne f\n"
    assert fim.fit_suffix(text, 100, count_words) == text
    assert fim.fit_suffix(text, 4, count_words) == "a b\nc d\n"
    assert fim.fit_suffix(text, 1, count_words) == ""


@pytest.fixture(scope="module")
def engine(model_path: Path) -> Engine:
    return Engine.load(EngineConfig(str(model_path), n_ctx=2048))


def test_fim_ids_come_from_the_model_vocabulary(engine: Engine) -> None:
    assert (engine.fim.prefix, engine.fim.suffix, engine.fim.middle) == (32007, 32008, 32009)
    assert engine.fim.ends == {32010, 2} and engine.fim.family is fim.CODE_LLAMA
    assert engine.fim.bos == 1 and engine.fim.eos == 2 and engine.fim.found_by == "metadata"
    assert engine.describe().family == "codellama" and not engine.describe().repo_level


def test_prefix_gets_the_sentencepiece_space_and_suffix_does_not(engine: Engine) -> None:
    assert engine.render(engine.tokenize_prefix("x = 1")) == " x = 1"
    assert engine.render(engine.tokenize_suffix("\n    return x")) == "\n    return x"
    assert engine.render(engine.tokenize_suffix("foo😀")) == "foo😀"


def test_user_text_cannot_inject_fim_tokens(engine: Engine) -> None:
    ids = engine.tokenize_prefix("▁<PRE> <MID>")
    assert not set(ids) & {PRE_ID, SUF_ID, MID_ID, EOT_ID}


def test_psm_prompt_and_completion(engine: Engine) -> None:
    request = CompletionRequest(prefix="def add(a, b):\n    ", suffix="\n", fim_order="psm")
    prepared = engine.prepare(request)
    assert prepared.tokens[:2] == [1, PRE_ID]
    assert prepared.tokens[-1] == MID_ID
    assert engine.render(prepared.tokens) == "<s>▁<PRE> def add(a, b):\n    ▁<SUF>\n▁<MID>"
    result = engine.complete(request)
    # The first piece's leading space is kept: the model wrote "▁return".
    assert result.text == SCRIPTED_COMPLETION
    assert result.stop_reason == "eot"
    assert result.generated_tokens == 4


def test_spm_prompt_puts_the_prefix_last(engine: Engine) -> None:
    request = CompletionRequest(prefix="x = 1", suffix="y", fim_order="spm")
    tokens = engine.prepare(request).tokens
    assert engine.render(tokens) == "<s>▁<PRE>▁<SUF>y▁<MID> x = 1"
    assert engine.complete(request).text == " pass"


def test_max_tokens_stops_generation(engine: Engine) -> None:
    result = engine.complete(CompletionRequest(prefix="for loop", suffix="", max_tokens=5))
    assert result.text == " loop" * 5
    assert result.stop_reason == "max_tokens"


def test_kv_cache_prefix_is_reused_between_requests(engine: Engine) -> None:
    first = engine.complete(CompletionRequest(prefix="a = 1\nb = 2\nc", suffix="\n"))
    second = engine.complete(CompletionRequest(prefix="a = 1\nb = 2\nc =", suffix="\n"))
    assert first.reused_tokens < first.prompt_tokens
    # Typing one more character only evaluates the tokens after the shared prefix.
    assert second.prompt_tokens - second.reused_tokens <= 3


def test_cancel_stops_between_tokens(engine: Engine) -> None:
    cancel = threading.Event()
    cancel.set()
    result = engine.complete(
        CompletionRequest(prefix="for loop", suffix="", max_tokens=2000), cancel
    )
    assert result.stop_reason == "cancelled"
    assert result.generated_tokens == 0


def test_prompt_is_fitted_into_the_context_window(model_path: Path) -> None:
    small = Engine.load(EngineConfig(str(model_path), n_ctx=512))
    try:
        prefix = "".join(f"value_{i} = compute({i})\n" for i in range(400))
        suffix = "".join(f"check({i})\n" for i in range(400))
        request = CompletionRequest(prefix=prefix, suffix=suffix, max_tokens=16)
        prepared = small.prepare(request)
        assert len(prepared.tokens) <= 512 - 16
        assert prefix.endswith(prepared.prefix) and prepared.prefix.startswith("value_")
        assert suffix.startswith(prepared.suffix) and prepared.suffix.endswith("\n")
        assert small.complete(request).stop_reason in {"eot", "max_tokens"}
    finally:
        small.close()


def test_missing_model_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelNotFoundError, match=str(missing)):
        Engine.load(EngineConfig(str(missing)))


def test_corrupt_and_foreign_files_are_rejected_clearly(
    corrupt_model_path: Path, not_gguf_path: Path, nofim_model_path: Path
) -> None:
    with pytest.raises(ModelFormatError, match="could not load"):
        Engine.load(EngineConfig(str(corrupt_model_path)))
    with pytest.raises(ModelFormatError, match="not a GGUF file"):
        Engine.load(EngineConfig(str(not_gguf_path)))
    with pytest.raises(ModelFormatError, match="fill-in-the-middle"):
        Engine.load(EngineConfig(str(nofim_model_path)))

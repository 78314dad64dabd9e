"""Each FIM family through llama.cpp: token ids from the GGUF, the exact prompt, generation.

The models are generated (tests/support/synthetic.py) on the real vocabularies of
the llama-cpp-python sdist in each family's own architecture, with random
weights scripted so that after the family's middle token they write
`` return a + b`` and then the family's end token.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codellama_lsp.quant import fim
from codellama_lsp.quant.engine import CompletionRequest, Engine, EngineConfig
from tests.support.synthetic import SCRIPTED_COMPLETION

#: Per family: (prefix, suffix, middle) ids, repo and file-separator ids, BOS, where the
#: ids came from (the generated GGUFs declare them with the new keys, the older keys,
#: and not at all), and the family's format.
EXPECTED: dict[str, dict[str, Any]] = {
    "qwen2.5-coder": {
        "fim": (151659, 151661, 151660),
        "repo": (151663, 151664),
        "bos": None,
        "found_by": "metadata",
        "family": fim.QWEN_CODER,
        "end": 151643,
    },
    "starcoder2": {
        "fim": (1, 3, 2),
        "repo": (5, 6),
        "bos": None,
        "found_by": "token texts",
        "family": fim.STARCODER2,
        "end": 0,
    },
    "deepseek-coder": {
        "fim": (32016, 32015, 32017),
        "repo": (None, None),
        "bos": 32013,
        "found_by": "metadata",
        "family": fim.DEEPSEEK_CODER,
        "end": 32014,
    },
}
PREFIX = "def add(a, b):\n    "
SUFFIX = "\n"
FILES = (("src/util.py", "def util():\n    return 1\n"), ("src/more 😀.py", "X = 2\n"))
PREAMBLE = "# Path: src/util.py\ndef util():\n    return 1\n# Path: app.py\n"


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def loaded(
    request: pytest.FixtureRequest, family_model_paths: dict[str, Path]
) -> Iterator[tuple[str, Engine]]:
    family = str(request.param)
    engine = Engine.load(EngineConfig(str(family_model_paths[family]), n_ctx=2048))
    yield family, engine
    engine.close()


def tok(engine: Engine, text: str) -> list[int]:
    """Plain tokenization, independent of the engine's own prompt code."""
    if not text:
        return []
    return list(engine._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def test_fim_tokens_are_read_from_the_gguf(loaded: tuple[str, Engine]) -> None:
    family, engine = loaded
    want = EXPECTED[family]
    ids = engine.fim
    assert (ids.prefix, ids.suffix, ids.middle) == want["fim"]
    assert (ids.repo, ids.file_sep) == want["repo"]
    assert ids.bos == want["bos"] and ids.found_by == want["found_by"]
    assert ids.family is want["family"] and want["end"] in ids.ends
    info = engine.describe()
    assert info.family == family and info.repo_level == (want["repo"][1] is not None)


def test_psm_prompt_ids_without_context(loaded: tuple[str, Engine]) -> None:
    family, engine = loaded
    pre, suf, mid = EXPECTED[family]["fim"]
    bos = [] if EXPECTED[family]["bos"] is None else [EXPECTED[family]["bos"]]
    tokens = engine.prepare(CompletionRequest(PREFIX, SUFFIX, fim_order="psm")).tokens
    assert tokens == [*bos, pre, *tok(engine, PREFIX), suf, *tok(engine, SUFFIX), mid]
    # "auto" is PSM for these families, and SPM (which they were not trained with) too.
    for order in ("auto", "spm"):
        assert engine.prepare(CompletionRequest(PREFIX, SUFFIX, fim_order=order)).tokens == tokens


def test_spm_asked_of_a_psm_family_is_logged_once(
    loaded: tuple[str, Engine], caplog: pytest.LogCaptureFixture
) -> None:
    family, engine = loaded
    engine._order_warned.clear()
    with caplog.at_level(logging.WARNING, logger="codellama_lsp.quant.engine"):
        for _ in range(3):
            engine.prepare(CompletionRequest(PREFIX, SUFFIX, fim_order="spm"))
    warned = [r for r in caplog.records if "not trained with the SPM" in r.getMessage()]
    assert len(warned) == 1 and EXPECTED[family]["family"].title in warned[0].getMessage()


def test_prompt_ids_with_repository_context(loaded: tuple[str, Engine]) -> None:
    family, engine = loaded
    pre, suf, mid = EXPECTED[family]["fim"]
    repo, sep = EXPECTED[family]["repo"]
    request = CompletionRequest(
        PREFIX, SUFFIX, fim_order="psm", files=FILES, repo="shop", path="app.py"
    )
    tokens = engine.prepare(request).tokens
    fim_part = [*tok(engine, PREFIX), suf, *tok(engine, SUFFIX), mid]
    if family == "qwen2.5-coder":
        assert tokens == [
            *(repo, *tok(engine, "shop\n")),
            *(sep, *tok(engine, "src/util.py\n"), *tok(engine, FILES[0][1])),
            *(sep, *tok(engine, "src/more 😀.py\n"), *tok(engine, FILES[1][1])),
            *(sep, *tok(engine, "app.py\n")),
            pre,
            *fim_part,
        ]
    elif family == "starcoder2":
        # StarCoder2 was trained with the current file's path after <fim_prefix>.
        assert tokens == [
            *(repo, *tok(engine, "shop\n")),
            *(sep, *tok(engine, "src/util.py\n"), *tok(engine, FILES[0][1])),
            *(sep, *tok(engine, "src/more 😀.py\n"), *tok(engine, FILES[1][1])),
            sep,
            *(pre, *tok(engine, "app.py\n")),
            *fim_part,
        ]
    else:
        # No repository-level tokens: the context is the commented preamble.
        request = CompletionRequest(PREFIX, SUFFIX, fim_order="psm", context=PREAMBLE)
        tokens = engine.prepare(request).tokens
        assert tokens == [EXPECTED[family]["bos"], *tok(engine, PREAMBLE), pre, *fim_part]
    assert engine.prepare(request).context_tokens == len(tokens) - len(fim_part) - 1 - (
        family == "deepseek-coder"
    )


def test_completion_stops_on_the_family_end_token(loaded: tuple[str, Engine]) -> None:
    _, engine = loaded
    result = engine.complete(
        CompletionRequest(PREFIX, SUFFIX, max_tokens=24, files=FILES[:1], repo="r", path="a.py")
    )
    assert result.text == SCRIPTED_COMPLETION
    assert result.stop_reason in {"eos", "eot"} and result.generated_tokens == len(
        tok(engine, SCRIPTED_COMPLETION)
    )


def test_source_text_cannot_spell_a_fim_token(loaded: tuple[str, Engine]) -> None:
    family, engine = loaded
    spec = EXPECTED[family]["family"]
    text = f"x = '{spec.prefix}{spec.middle}{spec.suffix}'"
    ids = engine.tokenize_prefix(text)
    assert not set(ids) & engine.fim.controls
    assert engine.render(ids) == text


def test_each_keystroke_evaluates_only_its_new_tokens(loaded: tuple[str, Engine]) -> None:
    """PSM with a short suffix: the typed text is followed only by the suffix and MID."""
    _, engine = loaded
    engine.forget("doc")
    typed = "def add(a, b):\n    s = sum(x for x in (a, b))"
    previous = None
    checked = 0
    for end in range(len("def add(a, b):\n    s"), len(typed) + 1):
        result = engine.complete(
            CompletionRequest(
                typed[:end],
                SUFFIX,
                max_tokens=1,
                files=FILES,
                repo="shop",
                path="app.py",
                document="doc",
            )
        )
        if previous is not None:
            new = max(result.prompt_tokens - previous.prompt_tokens, 0)
            assert result.evaluated_tokens <= new + 4, (end, result, previous)
            checked += 1
        previous = result
    assert checked >= 20

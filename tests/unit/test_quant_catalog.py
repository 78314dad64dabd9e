"""The model catalog: every family's builds, names, titles, lookup, and `models list`."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from codellama_lsp.quant.catalog import (
    CATALOG,
    DEFAULT_MODEL,
    FAMILIES,
    MODELS_DIR_ENV,
    QUANTS,
    CatalogEntry,
    UnknownModelError,
    local_path,
    lookup,
)

#: The sizes (parameter counts) each family has in the catalog.
SIZES = {
    "codellama": ("7b", "13b"),
    "qwen2.5-coder": ("0.5b", "1.5b", "3b", "7b", "14b"),
    "starcoder2": ("3b", "7b", "15b"),
    "deepseek-coder": ("1.3b", "6.7b"),
    "codegemma": ("2b", "7b"),
}


def _family(family: str) -> list[CatalogEntry]:
    return [e for e in CATALOG if e.family == family]


def test_every_family_has_its_sizes_at_all_three_quants() -> None:
    assert tuple(SIZES) == FAMILIES
    assert {e.family for e in CATALOG} == set(FAMILIES)
    for family, sizes in SIZES.items():
        builds = {(e.params, e.variant, e.quant) for e in _family(family)}
        variants = ("base", "python", "instruct") if family == "codellama" else ("base",)
        want = {(p, v, q) for p in sizes for v in variants for q in QUANTS}
        assert builds == want, family
    assert len(CATALOG) == sum(
        len(sizes) * len(QUANTS) * (3 if family == "codellama" else 1)
        for family, sizes in SIZES.items()
    )


def test_the_catalog_families_are_the_fim_families() -> None:
    from codellama_lsp.quant.fim import FAMILIES as FIM_FAMILIES

    assert set(FAMILIES) == set(FIM_FAMILIES)


def test_names_are_unique_lowercase_and_spell_family_size_and_quant() -> None:
    names = [e.name for e in CATALOG]
    assert len(set(names)) == len(names)
    for entry in CATALOG:
        assert entry.name == entry.name.lower() and " " not in entry.name
        assert entry.name.startswith(f"{entry.family}-{entry.params}")
        assert entry.name.endswith(f"-{entry.quant.lower()}")
    for name in (
        "qwen2.5-coder-1.5b-q8_0",
        "starcoder2-3b-q4_k_m",
        "deepseek-coder-6.7b-base-q4_k_m",
        "codegemma-2b-q4_k_m",
        "qwen2.5-coder-0.5b-q5_k_m",
        "starcoder2-15b-q8_0",
        "deepseek-coder-1.3b-base-q8_0",
        "codegemma-7b-q5_k_m",
    ):
        assert lookup(name).name == name


def test_files_sizes_and_use() -> None:
    for entry in CATALOG:
        assert entry.filename.endswith(".gguf") and entry.quant in entry.filename
        assert entry.repo_id.count("/") == 1 and entry.repo_id.endswith("-GGUF")
        assert "instruct" not in entry.filename.lower() or entry.family == "codellama"
        assert 0.3 < entry.size_gb < 20
        assert entry.for_infill == (entry.variant != "instruct")
    # Bigger quantizations and bigger models are bigger files, in every family.
    sizes = {(e.family, e.params, e.variant, e.quant): e.size_gb for e in CATALOG}
    for (family, params, variant, quant), size in sizes.items():
        order = QUANTS.index(quant)
        if order:
            assert size > sizes[(family, params, variant, QUANTS[order - 1])]
        smaller = SIZES[family][: SIZES[family].index(params)]
        assert all(size > sizes[(family, p, variant, quant)] for p in smaller)
    assert not [e for e in CATALOG if e.family != "codellama" and not e.for_infill]


def test_published_files_of_other_families() -> None:
    qwen = lookup("qwen2.5-coder-1.5b-q8_0")
    assert qwen.family == "qwen2.5-coder" and qwen.size_gb == 1.65
    assert qwen.filename == "Qwen2.5-Coder-1.5B.Q8_0.gguf"
    deepseek = lookup("deepseek-coder-6.7b-base-q4_k_m")
    assert deepseek.repo_id == "TheBloke/deepseek-coder-6.7B-base-GGUF"
    assert deepseek.filename == "deepseek-coder-6.7b-base.Q4_K_M.gguf"
    assert deepseek.size_gb == 4.08
    assert lookup("deepseek-coder-1.3b-base-q4_k_m").repo_id == (
        "TheBloke/deepseek-coder-1.3b-base-GGUF"
    )
    starcoder = lookup("starcoder2-3b-q4_k_m")
    assert (starcoder.repo_id, starcoder.filename) == (
        "second-state/StarCoder2-3B-GGUF",
        "starcoder2-3b-Q4_K_M.gguf",
    )
    gemma = lookup("codegemma-7b-q8_0")
    assert (gemma.repo_id, gemma.filename) == (
        "bartowski/codegemma-7b-GGUF",
        "codegemma-7b-Q8_0.gguf",
    )


def test_code_llama_entries_are_unchanged() -> None:
    code_llama = _family("codellama")
    assert len(code_llama) == 18 and CATALOG[: len(code_llama)] == tuple(code_llama)
    default = lookup(DEFAULT_MODEL)
    assert DEFAULT_MODEL == "codellama-7b-q4_k_m" and CATALOG[0] is default
    assert (default.family, default.params, default.variant, default.quant) == (
        "codellama",
        "7b",
        "base",
        "Q4_K_M",
    )
    assert (default.repo_id, default.filename, default.size_gb) == (
        "TheBloke/CodeLlama-7B-GGUF",
        "codellama-7b.Q4_K_M.gguf",
        4.08,
    )
    python13 = lookup("codellama-13b-python-q8_0")
    assert (python13.repo_id, python13.filename, python13.size_gb) == (
        "TheBloke/CodeLlama-13B-Python-GGUF",
        "codellama-13b-python.Q8_0.gguf",
        13.83,
    )
    instruct = lookup("codellama-7b-instruct-q5_k_m")
    assert (instruct.repo_id, instruct.filename) == (
        "TheBloke/CodeLlama-7B-Instruct-GGUF",
        "codellama-7b-instruct.Q5_K_M.gguf",
    )
    assert not instruct.for_infill
    assert local_path(default, Path("/m")) == Path(
        "/m/TheBloke--CodeLlama-7B-GGUF/codellama-7b.Q4_K_M.gguf"
    )


def test_titles() -> None:
    assert lookup("codellama-7b-python-q4_k_m").title == "Code Llama 7B Python Q4_K_M"
    assert lookup("codellama-13b-q8_0").title == "Code Llama 13B Q8_0"
    assert lookup("codellama-7b-instruct-q5_k_m").title == "Code Llama 7B Instruct Q5_K_M"
    assert lookup("qwen2.5-coder-1.5b-q8_0").title == "Qwen2.5-Coder 1.5B Q8_0"
    assert lookup("qwen2.5-coder-0.5b-q4_k_m").title == "Qwen2.5-Coder 0.5B Q4_K_M"
    assert lookup("starcoder2-15b-q5_k_m").title == "StarCoder2 15B Q5_K_M"
    assert lookup("deepseek-coder-6.7b-base-q4_k_m").title == "DeepSeek-Coder 6.7B base Q4_K_M"
    assert lookup("codegemma-2b-q4_k_m").title == "CodeGemma 2B Q4_K_M"


def test_lookup_is_case_insensitive() -> None:
    assert lookup("Qwen2.5-Coder-7B-Q4_K_M") is lookup("qwen2.5-coder-7b-q4_k_m")
    assert lookup(" DeepSeek-Coder-1.3B-Base-Q8_0 ").name == "deepseek-coder-1.3b-base-q8_0"
    assert lookup("CodeLlama-13B-Python-Q8_0").name == "codellama-13b-python-q8_0"


def test_an_unknown_name_suggests_close_ones_not_the_whole_catalog() -> None:
    with pytest.raises(UnknownModelError) as missing_quant:
        lookup("qwen2.5-coder-7b")
    message = str(missing_quant.value)
    assert "unknown model 'qwen2.5-coder-7b'; did you mean qwen2.5-coder-7b-q4_k_m" in message
    assert "codellama-lsp models list" in message and DEFAULT_MODEL in message
    assert sum(e.name in message for e in CATALOG) <= 4  # three guesses and the default
    for typo, meant in (
        ("deepseek-coder-6.7b-q4_k_m", "deepseek-coder-6.7b-base-q4_k_m"),
        ("starcoder2-3b-q4km", "starcoder2-3b-q4_k_m"),
        ("codegema-2b-q8_0", "codegemma-2b-q8_0"),
    ):
        with pytest.raises(UnknownModelError) as close:
            lookup(typo)
        assert f"did you mean {meant}" in str(close.value), typo
    with pytest.raises(UnknownModelError) as unrelated:
        lookup("gpt-5")
    message = str(unrelated.value)
    assert message.startswith("unknown model 'gpt-5'") and "did you mean" not in message
    assert all(family in message for family in FAMILIES)


def test_models_list_shows_the_family_of_every_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from codellama_lsp.server.commands import cmd_models

    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    assert cmd_models(argparse.Namespace(models_command="list")) == 0
    lines = capsys.readouterr().out.splitlines()
    header, rows = lines[0], lines[1 : 1 + len(CATALOG)]
    assert header.split() == ["name", "family", "size", "use", "state", "source"]
    family_at = header.index("family")
    assert [row.split()[0] for row in rows] == [e.name for e in CATALOG]
    for row, entry in zip(rows, CATALOG, strict=True):
        assert row[family_at:].split()[0] == entry.family, row
        assert f"{entry.size_gb:.2f} GB" in row
        assert f"{entry.repo_id}/{entry.filename}" in row
        assert ("infill" if entry.for_infill else "chat") in row.split()
    assert rows[0].endswith("(default)") and "downloaded" not in "\n".join(rows)
    assert lines[-1] == f"model cache: {tmp_path}"

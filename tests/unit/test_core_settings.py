"""Settings: nested, typed, fully defaulted; bad values fall back with a warning."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import pytest

from codellama_lsp.core.settings import (
    SECTION,
    BackendSettings,
    CompletionSettings,
    ContextSettings,
    ModelSettings,
    Settings,
    json_schema_properties,
    parse_settings,
)
from codellama_lsp.quant.catalog import CATALOG, DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[2]

#: The JSON keys clients already send: renaming a field must not change them.
KEYS = [
    "enable",
    "model.path",
    "model.name",
    "model.download",
    "model.nCtx",
    "model.nGpuLayers",
    "model.flashAttn",
    "model.kvCacheType",
    "model.cpuRepack",
    "model.threads",
    "model.documentStates",
    "model.documentStateMb",
    "backend.type",
    "backend.url",
    "backend.endpoint",
    "backend.family",
    "backend.model",
    "backend.apiKeyEnv",
    "backend.timeoutMs",
    "backend.verifyTls",
    "completion.fimOrder",
    "completion.maxTokens",
    "completion.layout",
    "completion.nearPrefixChars",
    "completion.nearSuffixChars",
    "completion.coldBudgetMs",
    "completion.warmAhead",
    "completion.maxPrefixChars",
    "completion.maxSuffixChars",
    "completion.maxLines",
    "completion.timeBudgetMs",
    "completion.debounceMs",
    "completion.promptLookup",
    "completion.candidates",
    "completion.prefetch",
    "completion.tokenHealing",
    "completion.followPopup",
    "completion.cacheSize",
    "context.enable",
    "context.maxTokens",
    "context.exclude",
    "context.maxFileBytes",
    "context.recentEdits",
    "context.recentEditsMinutes",
    "context.completeExcluded",
    "stats.enable",
]


def test_defaults_when_nothing_is_sent() -> None:
    settings, warnings = parse_settings(None)
    assert warnings == []
    assert settings == Settings()
    assert settings.enable is True
    assert settings.model == ModelSettings(
        path="",
        name=DEFAULT_MODEL,
        download=True,
        n_ctx=16384,
        n_gpu_layers=-1,
        flash_attn="auto",
        kv_cache_type="f16",
        cpu_repack="auto",
        threads=0,
    )
    assert settings.backend == BackendSettings(
        type="local",
        url="http://127.0.0.1:8080",
        endpoint="infill",
        family="codellama",
        model="",
        api_key_env="",
        timeout_ms=30000,
        verify_tls=True,
    )
    assert settings.completion == CompletionSettings(
        fim_order="auto",
        max_tokens=128,
        max_prefix_chars=12000,
        max_suffix_chars=3000,
        max_lines=12,
        time_budget_ms=3000,
        debounce_ms=0,
        prompt_lookup=0,
        cache_size=256,
    )
    assert settings.context == ContextSettings(
        enable=True, max_tokens=-1, exclude=(), max_file_bytes=1_000_000
    )


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.model.n_ctx = 1  # type: ignore[misc]


def test_json_keys_are_the_field_names_in_camel_case() -> None:
    assert list(json_schema_properties()) == [f"{SECTION}.{key}" for key in KEYS]


def test_nested_flat_and_sectioned_forms_are_equivalent() -> None:
    nested, w1 = parse_settings({"model": {"nCtx": 4096}, "completion": {"fimOrder": "psm"}})
    flat, w2 = parse_settings({"model.nCtx": 4096, "completion.fimOrder": "psm"})
    sectioned, w3 = parse_settings(
        {"codellama": {"model": {"nCtx": 4096}, "completion.fimOrder": "psm"}, "other": 1}
    )
    prefixed, w4 = parse_settings({"codellama.model.nCtx": 4096, "codellama.completion": {}})
    assert w1 == w2 == w3 == w4 == []
    assert nested == flat == sectioned
    assert nested.model.n_ctx == 4096 and nested.completion.fim_order == "psm"
    assert prefixed.model.n_ctx == 4096 and prefixed.completion == CompletionSettings()
    # Only the changed groups are new objects; the rest are the base's.
    base = Settings()
    changed, _ = parse_settings({"model.nCtx": 4096}, base)
    assert changed.backend is base.backend and changed.model is not base.model


def test_every_kind_of_value_is_parsed() -> None:
    settings, warnings = parse_settings(
        {
            "enable": False,
            "model": {"path": "/m.gguf", "name": "", "nGpuLayers": 0, "kvCacheType": "q8_0"},
            "backend": {"type": "openai", "apiKeyEnv": "KEY", "verifyTls": False},
            "completion": {"maxTokens": 64.0},
            "context": {"exclude": ["vendor/", "*.min.js"], "maxFileBytes": 2048},
        }
    )
    assert warnings == []
    assert settings.enable is False
    assert settings.model.path == "/m.gguf" and settings.model.name == ""
    assert settings.model.n_gpu_layers == 0 and settings.model.kv_cache_type == "q8_0"
    assert settings.backend.type == "openai" and settings.backend.api_key_env == "KEY"
    assert settings.backend.verify_tls is False
    max_tokens = settings.completion.max_tokens
    assert max_tokens == 64 and type(max_tokens) is int  # an integral float is an integer
    assert settings.context.exclude == ("vendor/", "*.min.js")
    assert settings.context.max_file_bytes == 2048


@pytest.mark.parametrize(
    ("raw", "key", "problem"),
    [
        ({"model": {"nCtx": "lots"}}, "model.nCtx", "expected an integer, got 'lots'"),
        ({"model": {"nGpuLayers": True}}, "model.nGpuLayers", "expected an integer, got True"),
        ({"completion": {"maxTokens": 1.5}}, "completion.maxTokens", "expected an integer"),
        ({"model": {"nCtx": 12}}, "model.nCtx", "12 is below the minimum 512"),
        ({"model": {"nCtx": 100.0}}, "model.nCtx", "100.0 is below the minimum 512"),
        ({"model": {"threads": 513}}, "model.threads", "513 is above the maximum 512"),
        ({"model": {"path": 5}}, "model.path", "expected a str, got 5"),
        ({"model": {"path": {"x": 1}}}, "model.path", "expected a str"),
        ({"enable": "yes"}, "enable", "expected a bool, got 'yes'"),
        ({"backend.verifyTls": 1}, "backend.verifyTls", "expected a bool, got 1"),
        ({"model": {"flashAttn": "maybe"}}, "model.flashAttn", "'maybe' is not one of auto"),
        ({"backend": {"type": "cloud"}}, "backend.type", "is not one of local, llama-server"),
        ({"completion": {"fimOrder": "backwards"}}, "completion.fimOrder", "not one of auto, spm"),
        ({"model": {"name": "gpt-5"}}, "model.name", "'gpt-5' is not one of"),
        ({"context": {"exclude": "vendor/"}}, "context.exclude", "expected a list of strings"),
        ({"context": {"exclude": ["a", 1]}}, "context.exclude", "expected a list of strings"),
    ],
)
def test_a_bad_value_warns_and_keeps_the_default(raw: Any, key: str, problem: str) -> None:
    settings, warnings = parse_settings(raw)
    assert settings == Settings()
    assert len(warnings) == 1, warnings
    head, used = warnings[0].rsplit("; using ", 1)
    assert head.startswith(f"setting {SECTION}.{key}: ")
    assert problem in head
    default = json_schema_properties()[f"{SECTION}.{key}"]["default"]
    assert used == repr(default)


def test_a_bad_value_keeps_the_base_value() -> None:
    base = dataclasses.replace(Settings(), model=dataclasses.replace(Settings().model, n_ctx=4096))
    settings, warnings = parse_settings({"model": {"nCtx": "big", "threads": 4}}, base)
    assert settings.model.n_ctx == 4096 and settings.model.threads == 4
    assert warnings == [f"setting {SECTION}.model.nCtx: expected an integer, got 'big'; using 4096"]


def test_null_and_missing_keys_keep_the_base_value() -> None:
    base, _ = parse_settings({"model": {"nCtx": 4096}, "context": {"exclude": ["x/"]}})
    settings, warnings = parse_settings({"model": {"nCtx": None}, "enable": None}, base)
    assert warnings == []
    assert settings == base


def test_unknown_keys_are_reported() -> None:
    settings, warnings = parse_settings({"typo": 1, "model": {"nctx": 4096}, "backend": 5})
    assert settings == Settings()
    assert warnings == [
        f"unknown setting {SECTION}.backend ignored",
        f"unknown setting {SECTION}.model.nctx ignored",
        f"unknown setting {SECTION}.typo ignored",
    ]


def test_bad_values_together_each_warn() -> None:
    settings, warnings = parse_settings(
        {
            "model": {"nCtx": 12, "nGpuLayers": True, "path": 5},
            "completion": {"fimOrder": "backwards", "maxTokens": "lots"},
            "enable": "yes",
            "typo": 1,
        }
    )
    assert settings == Settings()
    assert len(warnings) == 7


def test_not_an_object() -> None:
    settings, warnings = parse_settings(["x"])
    assert settings == Settings() and "must be an object" in warnings[0]


def _leaf_fields(cls: type, prefix: str = "") -> dict[str, tuple[dataclasses.Field[Any], Any]]:
    """Every setting field by attribute path, straight from the dataclasses."""
    found: dict[str, tuple[dataclasses.Field[Any], Any]] = {}
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            found.update(_leaf_fields(hint, f"{prefix}{f.name}."))  # type: ignore[arg-type]
        else:
            found[f"{prefix}{f.name}"] = (f, hint)
    return found


def test_schema_is_derived_from_the_dataclasses() -> None:
    props = json_schema_properties()
    fields = _leaf_fields(Settings)
    assert len(props) == len(fields) == len(KEYS)
    for (path, (f, hint)), prop in zip(fields.items(), props.values(), strict=True):
        assert prop["markdownDescription"] == f.metadata["description"], path
        default = list(f.default) if isinstance(f.default, tuple) else f.default
        assert prop["default"] == default, path
        assert prop.get("minimum") == f.metadata.get("minimum"), path
        assert prop.get("maximum") == f.metadata.get("maximum"), path
        if get_origin(hint) is Literal:
            assert prop["type"] == "string" and prop["enum"] == list(get_args(hint)), path
    assert props["codellama.model.nCtx"]["default"] == 16384
    assert props["codellama.model.nCtx"]["type"] == "integer"
    assert props["codellama.completion.fimOrder"]["enum"] == ["auto", "spm", "psm"]
    assert props["codellama.backend.type"]["enum"] == ["local", "llama-server", "openai"]
    assert props["codellama.model.name"]["enum"] == ["", *(e.name for e in CATALOG)]
    assert props["codellama.context.exclude"]["items"] == {"type": "string"}
    assert props["codellama.backend.verifyTls"]["type"] == "boolean"


def test_schema_equals_the_vscode_manifest() -> None:
    manifest = json.loads((ROOT / "vscode-client" / "package.json").read_text(encoding="utf-8"))
    props = manifest["contributes"]["configuration"]["properties"]
    own = (f"{SECTION}.server.", f"{SECTION}.trace.")
    server = {k: v for k, v in props.items() if not k.startswith(own)}
    assert server == json_schema_properties(), "stale: run python scripts/generate_settings.py"

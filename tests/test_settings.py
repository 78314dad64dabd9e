"""Settings: typed, fully defaulted, bad values fall back with a warning."""

from __future__ import annotations

from codellama_lsp.server.settings import SCHEMA, Settings, json_schema_properties, parse_settings


def test_defaults_when_nothing_is_sent() -> None:
    settings, warnings = parse_settings(None)
    assert settings == Settings()
    assert settings.n_ctx == 16384 and settings.fim_order == "spm"
    assert warnings == []


def test_nested_flat_and_sectioned_forms_are_equivalent() -> None:
    nested, _ = parse_settings({"model": {"nCtx": 4096}, "completion": {"fimOrder": "psm"}})
    flat, _ = parse_settings({"model.nCtx": 4096, "completion.fimOrder": "psm"})
    sectioned, _ = parse_settings({"codellama": {"model": {"nCtx": 4096}}, "other": 1})
    assert nested == flat
    assert nested.n_ctx == 4096 and nested.fim_order == "psm"
    assert sectioned.n_ctx == 4096


def test_bad_values_warn_and_keep_the_default() -> None:
    settings, warnings = parse_settings(
        {
            "model": {"nCtx": 12, "nGpuLayers": True, "path": 5},
            "completion": {"fimOrder": "backwards", "maxTokens": "lots"},
            "enable": "yes",
            "typo": 1,
        }
    )
    assert settings == Settings()
    text = "\n".join(warnings)
    for key in (
        "model.nCtx",
        "model.nGpuLayers",
        "model.path",
        "completion.fimOrder",
        "completion.maxTokens",
        "enable",
        "codellama.typo",
    ):
        assert key in text
    assert "below the minimum 512" in text


def test_not_an_object() -> None:
    settings, warnings = parse_settings(["x"])
    assert settings == Settings() and "must be an object" in warnings[0]


def test_json_schema_covers_every_setting_with_its_default() -> None:
    props = json_schema_properties()
    assert len(props) == len(SCHEMA)
    assert props["codellama.model.nCtx"]["default"] == 16384
    assert props["codellama.completion.fimOrder"]["enum"] == ["spm", "psm"]
    assert all(p["markdownDescription"] for p in props.values())

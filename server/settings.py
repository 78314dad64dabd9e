"""Settings: one schema, parsed once into a typed, fully defaulted object.

The same ``SCHEMA`` documents every key for the README/Neovim docs and generates
the VS Code ``contributes.configuration`` block, so the clients cannot drift.
Clients send settings as nested objects (``{"model": {"path": ...}}``), flat
dotted keys (``{"model.path": ...}``) or wrapped in a ``codellama`` section; all
three are accepted.  A bad value produces a warning and falls back to the
default, it never stops the server.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codellama_lsp.quant.catalog import CATALOG, DEFAULT_MODEL

SECTION = "codellama"


@dataclass(frozen=True)
class SettingSpec:
    key: str
    field: str
    type: type
    default: Any
    description: str
    minimum: int | None = None
    maximum: int | None = None
    enum: tuple[str, ...] | None = None


SCHEMA: tuple[SettingSpec, ...] = (
    SettingSpec(
        "enable",
        "enable",
        bool,
        True,
        "Show inline suggestions. When false the server answers every completion request "
        "with an empty list.",
    ),
    SettingSpec(
        "model.path",
        "model_path",
        str,
        "",
        "Path to a Code Llama GGUF file (base or Python model: they were trained with "
        "fill-in-the-middle). Empty: the `model.name` catalog model. `--model` on the "
        "command line takes precedence.",
    ),
    SettingSpec(
        "model.name",
        "model_name",
        str,
        DEFAULT_MODEL,
        "Catalog model used when `model.path` is empty (`codellama-lsp models list`): "
        "loaded from the model cache, downloaded there first if missing (see "
        "`model.download`). Empty: no model.",
        enum=("", *(entry.name for entry in CATALOG)),
    ),
    SettingSpec(
        "model.download",
        "model_download",
        bool,
        True,
        "Download the `model.name` model from the Hugging Face Hub when it is not in the "
        "cache, with progress in the editor. When false, or offline, the server says how "
        "to get it instead.",
    ),
    SettingSpec(
        "model.nCtx",
        "n_ctx",
        int,
        16384,
        "Context window in tokens. Code Llama was trained on 16k-token sequences.",
        minimum=512,
        maximum=131072,
    ),
    SettingSpec(
        "model.nGpuLayers",
        "n_gpu_layers",
        int,
        -1,
        "Layers offloaded to the GPU (CUDA/Metal builds of llama.cpp); -1 offloads all, "
        "0 keeps the model on the CPU. Ignored by CPU-only builds.",
        minimum=-1,
        maximum=1000,
    ),
    SettingSpec(
        "model.flashAttn",
        "flash_attn",
        str,
        "auto",
        "Flash attention: `auto` uses it when llama.cpp was built with a GPU backend.",
        enum=("auto", "on", "off"),
    ),
    SettingSpec(
        "model.kvCacheType",
        "kv_cache_type",
        str,
        "f16",
        "KV cache element type. `q8_0` halves the cache's memory (long contexts on small "
        "GPUs) at a small quality cost, and turns flash attention on (llama.cpp needs it).",
        enum=("f16", "q8_0"),
    ),
    SettingSpec(
        "model.threads",
        "n_threads",
        int,
        0,
        "CPU threads for inference; 0 uses one per physical core.",
        minimum=0,
        maximum=512,
    ),
    SettingSpec(
        "backend.type",
        "backend_type",
        str,
        "local",
        "Where completions are computed: `local` (the in-process model), `llama-server` "
        "(llama.cpp's server) or `openai` (any OpenAI-compatible `/v1/completions`: vLLM, "
        "Ollama, LM Studio, llama-server). Remote backends get the same prompts, stop rules "
        "and cancellation.",
        enum=("local", "llama-server", "openai"),
    ),
    SettingSpec(
        "backend.url",
        "backend_url",
        str,
        "http://127.0.0.1:8080",
        "Base URL of the remote server (`http://host:port`, or with a path prefix such as "
        "`http://host:11434/v1` for Ollama).",
    ),
    SettingSpec(
        "backend.endpoint",
        "backend_endpoint",
        str,
        "infill",
        "llama-server only: `infill` sends prefix, suffix and the repository context "
        "(`input_extra`) to `/infill`; `completion` sends this server's own prompt to "
        "`/completion`.",
        enum=("infill", "completion"),
    ),
    SettingSpec(
        "backend.model",
        "backend_model",
        str,
        "",
        "Model name sent to OpenAI-compatible servers (for Ollama, e.g. `codellama:7b-code`).",
    ),
    SettingSpec(
        "backend.apiKeyEnv",
        "backend_api_key_env",
        str,
        "",
        "Name of an environment variable of the server process that holds the API key, "
        "sent as a Bearer token. The key itself never goes into settings or logs.",
    ),
    SettingSpec(
        "backend.timeoutMs",
        "backend_timeout_ms",
        int,
        30000,
        "Connect and read timeout for the remote server.",
        minimum=100,
        maximum=600000,
    ),
    SettingSpec(
        "backend.verifyTls",
        "backend_verify_tls",
        bool,
        True,
        "Verify the TLS certificate of an `https` backend.",
    ),
    SettingSpec(
        "completion.fimOrder",
        "fim_order",
        str,
        "spm",
        "Fill-in-the-middle order. `spm` (suffix, then prefix) keeps the text being typed "
        "at the end of the prompt so the KV cache is reused across keystrokes; `psm` "
        "(prefix, suffix, middle) is the order most examples use. Code Llama was trained "
        "with both.",
        enum=("spm", "psm"),
    ),
    SettingSpec(
        "completion.maxTokens",
        "max_tokens",
        int,
        128,
        "Most tokens generated for one suggestion.",
        minimum=1,
        maximum=4096,
    ),
    SettingSpec(
        "completion.maxPrefixChars",
        "max_prefix_chars",
        int,
        12000,
        "Most characters of the document before the cursor put into the prompt "
        "(cut at a line boundary).",
        minimum=0,
        maximum=1_000_000,
    ),
    SettingSpec(
        "completion.maxSuffixChars",
        "max_suffix_chars",
        int,
        3000,
        "Most characters of the document after the cursor put into the prompt "
        "(cut at a line boundary).",
        minimum=0,
        maximum=1_000_000,
    ),
    SettingSpec(
        "completion.maxLines",
        "max_lines",
        int,
        12,
        "Most lines in a multi-line suggestion. Suggestions are multi-line only on an empty "
        "line or after a block opener (`:`, `{`, `=>`, `then`...), single-line elsewhere, and "
        "end where the generated code leaves the cursor's block.",
        minimum=1,
        maximum=200,
    ),
    SettingSpec(
        "completion.timeBudgetMs",
        "time_budget_ms",
        int,
        3000,
        "Generation stops after this many milliseconds and shows what it has (a "
        "multi-line suggestion is cut at its last complete line). 0: no limit.",
        minimum=0,
        maximum=600_000,
    ),
    SettingSpec(
        "completion.debounceMs",
        "debounce_ms",
        int,
        0,
        "Wait this long after a keystroke before starting the model; a newer keystroke in "
        "the meantime replaces the request without any model work. Requests superseded "
        "while running always stop between two generated tokens.",
        minimum=0,
        maximum=5000,
    ),
    SettingSpec(
        "completion.promptLookup",
        "prompt_lookup",
        int,
        0,
        "Prompt-lookup decoding: guess up to this many tokens per step by copying what "
        "followed the same n-gram in the prompt, and keep those the model agrees with "
        "(identical output, fewer decode steps when code repeats). 0 turns it off.",
        minimum=0,
        maximum=64,
    ),
    SettingSpec(
        "completion.cacheSize",
        "cache_size",
        int,
        256,
        "Suggestions remembered per prompt (least recently used dropped first), so "
        "returning to the same text answers without model work. 0 turns it off.",
        minimum=0,
        maximum=100_000,
    ),
    SettingSpec(
        "context.enable",
        "context_enable",
        bool,
        True,
        "Put code from the rest of the workspace into the prompt: definitions the file "
        "imports and uses near the cursor, the types they mention, an outline of a long "
        "file, and similar code from recently edited files.",
    ),
    SettingSpec(
        "context.maxTokens",
        "context_max_tokens",
        int,
        -1,
        "Token budget for workspace context. -1: whatever `model.nCtx` leaves after the "
        "prefix and suffix windows and `completion.maxTokens`; 0 turns context off.",
        minimum=-1,
        maximum=131072,
    ),
    SettingSpec(
        "context.exclude",
        "context_exclude",
        tuple,
        (),
        "Files never indexed nor put into a prompt, as .gitignore patterns (e.g. "
        "`vendor/`, `*.min.js`). Files ignored by .gitignore and secrets (`.env*`, "
        "`*.pem`, `*.key`, `id_rsa*`, `*.p12`, `*.pfx`, credentials files) are always left out.",
    ),
    SettingSpec(
        "context.maxFileBytes",
        "context_max_file_bytes",
        int,
        1_000_000,
        "Files larger than this are not indexed.",
        minimum=1024,
        maximum=100_000_000,
    ),
)

_BY_KEY = {spec.key: spec for spec in SCHEMA}


@dataclass(frozen=True)
class Settings:
    enable: bool = True
    model_path: str = ""
    model_name: str = DEFAULT_MODEL
    model_download: bool = True
    n_ctx: int = 16384
    n_gpu_layers: int = -1
    flash_attn: str = "auto"
    kv_cache_type: str = "f16"
    n_threads: int = 0
    backend_type: str = "local"
    backend_url: str = "http://127.0.0.1:8080"
    backend_endpoint: str = "infill"
    backend_model: str = ""
    backend_api_key_env: str = ""
    backend_timeout_ms: int = 30000
    backend_verify_tls: bool = True
    fim_order: str = "spm"
    max_tokens: int = 128
    max_prefix_chars: int = 12000
    max_suffix_chars: int = 3000
    max_lines: int = 12
    time_budget_ms: int = 3000
    debounce_ms: int = 0
    prompt_lookup: int = 0
    cache_size: int = 256
    context_enable: bool = True
    context_max_tokens: int = -1
    context_exclude: tuple[str, ...] = ()
    context_max_file_bytes: int = 1_000_000


def _flatten(raw: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in raw.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping) and key not in _BY_KEY:
            flat.update(_flatten(value, f"{key}."))
        else:
            flat[key] = value
    return flat


def _check(spec: SettingSpec, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``spec``, or None."""
    # bool is an int subclass; a JSON true is never a valid count.
    if spec.type is int and (isinstance(value, bool) or not isinstance(value, int)):
        if isinstance(value, float) and value.is_integer():
            return None
        return f"expected an integer, got {value!r}"
    if spec.type is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f"expected a list of strings, got {value!r}"
        return None
    if spec.type is not int and not isinstance(value, spec.type):
        return f"expected a {spec.type.__name__}, got {value!r}"
    if spec.minimum is not None and value < spec.minimum:
        return f"{value!r} is below the minimum {spec.minimum}"
    if spec.maximum is not None and value > spec.maximum:
        return f"{value!r} is above the maximum {spec.maximum}"
    if spec.enum is not None and value not in spec.enum:
        return f"{value!r} is not one of {', '.join(spec.enum)}"
    return None


def parse_settings(raw: object, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """Settings from client-supplied JSON, with one warning per rejected key.

    Keys missing from ``raw`` keep their value from ``base`` (the defaults when
    None); unknown keys are reported so typos do not go unnoticed.
    """
    base = base or Settings()
    if raw is None:
        return base, []
    if not isinstance(raw, Mapping):
        return base, [f"settings must be an object, got {type(raw).__name__}; using defaults"]
    section: Mapping[str, Any] = raw
    if isinstance(raw.get(SECTION), Mapping):
        section = raw[SECTION]
    values: dict[str, Any] = {}
    warnings: list[str] = []
    for raw_key, value in sorted(_flatten(section).items()):
        key = raw_key.removeprefix(f"{SECTION}.")
        spec = _BY_KEY.get(key)
        if spec is None:
            warnings.append(f"unknown setting {SECTION}.{key} ignored")
            continue
        if value is None:
            continue
        problem = _check(spec, value)
        if problem is not None:
            default = getattr(base, spec.field)
            default = list(default) if isinstance(default, tuple) else default
            warnings.append(f"setting {SECTION}.{key}: {problem}; using {default!r}")
            continue
        if spec.type is tuple:
            values[spec.field] = tuple(value)
        else:
            values[spec.field] = int(value) if spec.type is int else value
    return dataclasses.replace(base, **values), warnings


def json_schema_properties() -> dict[str, dict[str, Any]]:
    """``contributes.configuration.properties`` for the VS Code extension."""
    names = {bool: "boolean", int: "integer", str: "string", tuple: "array"}
    props: dict[str, dict[str, Any]] = {}
    for spec in SCHEMA:
        prop: dict[str, Any] = {
            "type": names[spec.type],
            "default": spec.default,
            "markdownDescription": spec.description,
        }
        if spec.minimum is not None:
            prop["minimum"] = spec.minimum
        if spec.maximum is not None:
            prop["maximum"] = spec.maximum
        if spec.enum is not None:
            prop["enum"] = list(spec.enum)
        if spec.type is tuple:
            prop["items"] = {"type": "string"}
            prop["default"] = list(spec.default)
        props[f"{SECTION}.{spec.key}"] = prop
    return props


def _self_check() -> None:
    fields = {f.name: f.default for f in dataclasses.fields(Settings)}
    for spec in SCHEMA:
        if fields.get(spec.field) != spec.default:
            raise AssertionError(f"Settings.{spec.field} default differs from SCHEMA {spec.key}")


_self_check()


def settings_markdown() -> str:
    """The settings table of README.md (the Neovim docs read it there)."""

    def shown(value: Any) -> str:
        if isinstance(value, bool):
            return f"`{str(value).lower()}`"
        return f"`{json.dumps(value)}`"

    rows = ["| Setting | Default | Meaning |", "| --- | --- | --- |"]
    for spec in SCHEMA:
        extra = ""
        if spec.enum is not None and len(spec.enum) <= 6:  # longer lists are named in the text
            extra = f" One of {', '.join(f'`{v}`' for v in spec.enum)}."
        elif spec.minimum is not None:
            extra = f" Range {spec.minimum} to {spec.maximum}."
        rows.append(
            f"| `{SECTION}.{spec.key}` | {shown(spec.default)} | {spec.description}{extra} |"
        )
    return "\n".join(rows) + "\n"


def update_readme(path: str) -> None:
    """Rewrite the settings table between the README's markers."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    head, rest = text.split("<!-- settings:start -->\n", 1)
    _, tail = rest.split("<!-- settings:end -->", 1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}<!-- settings:start -->\n{settings_markdown()}<!-- settings:end -->{tail}")


#: Keys the VS Code extension owns (how it starts the server, tracing); kept as they are.
EXTENSION_KEY_PREFIXES = (f"{SECTION}.server.", f"{SECTION}.trace.")


def package_json_properties(current: Mapping[str, Any]) -> dict[str, Any]:
    """The extension's configuration properties: the schema's, then the extension's own."""
    props: dict[str, Any] = dict(json_schema_properties())
    for key, value in current.items():
        if key.startswith(EXTENSION_KEY_PREFIXES):
            props[key] = value
    return props


def update_package_json(path: str) -> None:
    """Rewrite ``contributes.configuration.properties`` of the VS Code extension's manifest."""
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    configuration = manifest.setdefault("contributes", {}).setdefault("configuration", {})
    configuration["properties"] = package_json_properties(configuration.get("properties", {}))
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--readme"]:
        update_readme(sys.argv[2] if len(sys.argv) > 2 else "README.md")
    elif sys.argv[1:2] == ["--package-json"]:
        update_package_json(sys.argv[2] if len(sys.argv) > 2 else "vscode-client/package.json")
    else:
        sys.stdout.write(settings_markdown())

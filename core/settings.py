"""Settings: nested, typed, fully defaulted dataclasses whose fields are the schema.

Each field carries its documentation and limits in ``dataclasses.field(metadata=...)``
and its JSON key is derived from its name (``Settings.model.n_ctx`` is
``codellama.model.nCtx``); enum values come from ``Literal`` annotations.  The parser,
the VS Code schema and the README table (``scripts/generate_settings.py``) therefore
read one definition and cannot drift from the code that uses the values.

Clients send settings as nested objects (``{"model": {"path": ...}}``), flat dotted
keys (``{"model.path": ...}``) or wrapped in a ``codellama`` section; all three are
accepted.  A bad value produces a warning and falls back, it never stops the server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin, get_type_hints

from codellama_lsp.quant.catalog import CATALOG, DEFAULT_MODEL
from codellama_lsp.quant.fim import FAMILIES

SECTION = "codellama"


def _doc(
    description: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    enum: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Field metadata: what the parser checks and the generated docs show, beside the field."""
    meta: dict[str, Any] = {"description": description}
    if minimum is not None:
        meta["minimum"] = minimum
    if maximum is not None:
        meta["maximum"] = maximum
    if enum is not None:
        meta["enum"] = enum
    return meta


@dataclass(frozen=True)
class ModelSettings:
    """The local model: which GGUF file and how llama.cpp loads it."""

    path: str = field(
        default="",
        metadata=_doc(
            "Path to a Code Llama GGUF file (base or Python model: they were trained with "
            "fill-in-the-middle). Empty: the `model.name` catalog model. `--model` on the "
            "command line takes precedence."
        ),
    )
    name: str = field(
        default=DEFAULT_MODEL,
        metadata=_doc(
            "Catalog model used when `model.path` is empty (`codellama-lsp models list`): "
            "loaded from the model cache, downloaded there first if missing (see "
            "`model.download`). Empty: no model.",
            enum=("", *(entry.name for entry in CATALOG)),
        ),
    )
    download: bool = field(
        default=True,
        metadata=_doc(
            "Download the `model.name` model from the Hugging Face Hub when it is not in the "
            "cache, with progress in the editor. When false, or offline, the server says how "
            "to get it instead."
        ),
    )
    n_ctx: int = field(
        default=16384,
        metadata=_doc(
            "Context window in tokens. Code Llama was trained on 16k-token sequences.",
            minimum=512,
            maximum=131072,
        ),
    )
    n_gpu_layers: int = field(
        default=-1,
        metadata=_doc(
            "Layers offloaded to the GPU (CUDA/Metal builds of llama.cpp); -1 offloads all, "
            "0 keeps the model on the CPU. Ignored by CPU-only builds.",
            minimum=-1,
            maximum=1000,
        ),
    )
    flash_attn: Literal["auto", "on", "off"] = field(
        default="auto",
        metadata=_doc(
            "Flash attention: `auto` uses it when llama.cpp was built with a GPU backend."
        ),
    )
    kv_cache_type: Literal["f16", "q8_0"] = field(
        default="f16",
        metadata=_doc(
            "KV cache element type. `q8_0` halves the cache's memory (long contexts on small "
            "GPUs) at a small quality cost, and turns flash attention on (llama.cpp needs it)."
        ),
    )
    cpu_repack: Literal["auto", "on", "off"] = field(
        default="auto",
        metadata=_doc(
            "llama.cpp's repacking of quantized weights for this CPU's vector units at load "
            "(faster CPU inference). `auto`: on, except on CPUs with Intel AMX, where "
            "llama.cpp's AMX kernels crash in the first evaluation of quantized models "
            "(llama.cpp issue 20824); `on` / `off` force it."
        ),
    )
    threads: int = field(
        default=0,
        metadata=_doc(
            "CPU threads for inference; 0 uses one per physical core.", minimum=0, maximum=512
        ),
    )
    document_states: int = field(
        default=4,
        metadata=_doc(
            "Documents whose KV cache is kept in RAM when another document is worked on, so "
            "that coming back to one evaluates only what changed in it since (least recently "
            "used dropped first). 0 keeps none.",
            minimum=0,
            maximum=64,
        ),
    )
    document_state_mb: int = field(
        default=4096,
        metadata=_doc(
            "Most memory, in MiB, the kept document KV states take together (Code Llama 7B "
            "with an f16 cache: about 0.5 MiB per prompt token). Each state's size is logged.",
            minimum=0,
            maximum=1_048_576,
        ),
    )


@dataclass(frozen=True)
class BackendSettings:
    """Where completions are computed: in process, or a remote server."""

    type: Literal["local", "llama-server", "openai"] = field(
        default="local",
        metadata=_doc(
            "Where completions are computed: `local` (the in-process model), `llama-server` "
            "(llama.cpp's server) or `openai` (any OpenAI-compatible `/v1/completions`: vLLM, "
            "Ollama, LM Studio, llama-server). Remote backends get the same prompts, stop "
            "rules and cancellation."
        ),
    )
    url: str = field(
        default="http://127.0.0.1:8080",
        metadata=_doc(
            "Base URL of the remote server (`http://host:port`, or with a path prefix such as "
            "`http://host:11434/v1` for Ollama)."
        ),
    )
    endpoint: Literal["infill", "completion"] = field(
        default="infill",
        metadata=_doc(
            "llama-server only: `infill` sends prefix, suffix and the repository context "
            "(`input_extra`) to `/infill`; `completion` sends this server's own prompt to "
            "`/completion`."
        ),
    )
    family: str = field(
        default="codellama",
        metadata=_doc(
            "The FIM model family a remote server runs, for the prompts this server writes "
            "itself (`openai`, and `llama-server` with `endpoint` `completion`): its FIM "
            "tokens, order and repository-context format. `/infill` needs none (llama-server "
            "formats the prompt with its model's own tokens). A local model's family is read "
            "from its GGUF.",
            enum=tuple(FAMILIES),
        ),
    )
    model: str = field(
        default="",
        metadata=_doc(
            "Model name sent to OpenAI-compatible servers (for Ollama, e.g. `codellama:7b-code`)."
        ),
    )
    api_key_env: str = field(
        default="",
        metadata=_doc(
            "Name of an environment variable of the server process that holds the API key, "
            "sent as a Bearer token. The key itself never goes into settings or logs."
        ),
    )
    timeout_ms: int = field(
        default=30000,
        metadata=_doc(
            "Connect and read timeout for the remote server.", minimum=100, maximum=600000
        ),
    )
    verify_tls: bool = field(
        default=True,
        metadata=_doc("Verify the TLS certificate of an `https` backend."),
    )


@dataclass(frozen=True)
class CompletionSettings:
    """The prompt window around the cursor and how one suggestion is generated."""

    fim_order: Literal["auto", "spm", "psm"] = field(
        default="auto",
        metadata=_doc(
            "Fill-in-the-middle order. `auto`: the model family's own, SPM for Code Llama and "
            "PSM for the families trained only with it (Qwen2.5-Coder, StarCoder2, "
            "DeepSeek-Coder, CodeGemma). `spm` (suffix, then prefix) keeps the text being "
            "typed at the end of the prompt so a keystroke only appends tokens; `psm` "
            "(prefix, suffix, middle) re-evaluates the near suffix on each keystroke. An "
            "order the model was not trained with is logged and replaced by its own."
        ),
    )
    max_tokens: int = field(
        default=128,
        metadata=_doc("Most tokens generated for one suggestion.", minimum=1, maximum=4096),
    )
    layout: Literal["view", "window"] = field(
        default="view",
        metadata=_doc(
            "Prompt layout. `view`: a view of the document around where the cursor came to "
            "is written before the fill-in-the-middle part and kept while the cursor moves "
            "inside it, and only small near windows (`completion.nearPrefixChars`, "
            "`completion.nearSuffixChars`) follow the cursor, so a cursor move costs about "
            "as little as a keystroke. `window`: the prefix and suffix windows themselves "
            "follow the cursor (every move re-evaluates them)."
        ),
    )
    near_prefix_chars: int = field(
        default=800,
        metadata=_doc(
            "`view` layout: most characters before the cursor in the fill-in-the-middle part "
            "(the rest of the document is in the view).",
            minimum=0,
            maximum=100_000,
        ),
    )
    near_suffix_chars: int = field(
        default=200,
        metadata=_doc(
            "`view` layout: most characters after the cursor in the fill-in-the-middle part.",
            minimum=0,
            maximum=100_000,
        ),
    )
    cold_budget_ms: int = field(
        default=2000,
        metadata=_doc(
            "Size prompts so that evaluating one from scratch (a newly opened file) takes "
            "about this long at the prompt speed measured on this machine: the whole "
            "`model.nCtx` on a fast GPU, a few thousand tokens on a CPU. The budget chosen "
            "is logged. 0: prompts fill the context window. An explicit `context.maxTokens` "
            "still wins for the repository context.",
            minimum=0,
            maximum=600_000,
        ),
    )
    warm_ahead: bool = field(
        default=True,
        metadata=_doc(
            "When a document is opened or becomes active and nothing else runs, evaluate "
            "its prompt in the background so that the first keystroke there is answered "
            "from a warm cache. Any real request stops it within one batch."
        ),
    )
    max_prefix_chars: int = field(
        default=12000,
        metadata=_doc(
            "Most characters of the document before the cursor put into the prompt "
            "(cut at a line boundary).",
            minimum=0,
            maximum=1_000_000,
        ),
    )
    max_suffix_chars: int = field(
        default=3000,
        metadata=_doc(
            "Most characters of the document after the cursor put into the prompt "
            "(cut at a line boundary).",
            minimum=0,
            maximum=1_000_000,
        ),
    )
    max_lines: int = field(
        default=12,
        metadata=_doc(
            "Most lines in a multi-line suggestion. Suggestions are multi-line only on an "
            "empty line or after a block opener (`:`, `{`, `=>`, `then`...), single-line "
            "elsewhere, and end where the generated code leaves the cursor's block.",
            minimum=1,
            maximum=200,
        ),
    )
    time_budget_ms: int = field(
        default=3000,
        metadata=_doc(
            "Generation stops after this many milliseconds and shows what it has (a "
            "multi-line suggestion is cut at its last complete line). 0: no limit.",
            minimum=0,
            maximum=600_000,
        ),
    )
    debounce_ms: int = field(
        default=0,
        metadata=_doc(
            "Wait this long after a keystroke before starting the model; a newer keystroke "
            "in the meantime replaces the request without any model work. Requests "
            "superseded while running always stop between two generated tokens.",
            minimum=0,
            maximum=5000,
        ),
    )
    prompt_lookup: int = field(
        default=0,
        metadata=_doc(
            "Prompt-lookup decoding: guess up to this many tokens per step by copying what "
            "followed the same n-gram in the prompt, and keep those the model agrees with "
            "(identical output, fewer decode steps when code repeats). 0 turns it off.",
            minimum=0,
            maximum=64,
        ),
    )
    candidates: int = field(
        default=1,
        metadata=_doc(
            "Distinct suggestions offered at once, best first (VS Code cycles them with "
            "Alt+] / Alt+[). The local model generates them together from one evaluated "
            "prompt (extra llama.cpp sequences sharing its KV cache), within the same time "
            "budget; remote backends offer one.",
            minimum=1,
            maximum=5,
        ),
    )
    prefetch: bool = field(
        default=True,
        metadata=_doc(
            "While a suggestion is shown and nothing else runs, compute in the background "
            "the one that follows it as if it were accepted, so that the request after an "
            "accept (Tab) is answered with no model work. Any keystroke stops it within one "
            "batch or token."
        ),
    )
    token_healing: bool = field(
        default=False,
        metadata=_doc(
            "Token healing (local model): when the text before the cursor ends inside a "
            "word (`self.na`, `import numpy as n`), the model chooses the token where the "
            "last one starts among those that spell it, so it is not forced to continue "
            "from an unnatural split. Off by default: on `bench/keystroke.py` it measured "
            "slower (one more decode step whenever it changes the first token)."
        ),
    )
    follow_popup: bool = field(
        default=True,
        metadata=_doc(
            "When the editor's completion popup has an item selected (VS Code's "
            "`selectedCompletionInfo`), the suggestion continues the text as if that item "
            "were inserted and starts with it (or nothing is shown). When false the popup "
            "selection is ignored."
        ),
    )
    cache_size: int = field(
        default=256,
        metadata=_doc(
            "Suggestions remembered per prompt (least recently used dropped first), so "
            "returning to the same text answers without model work. 0 turns it off.",
            minimum=0,
            maximum=100_000,
        ),
    )


@dataclass(frozen=True)
class ContextSettings:
    """Workspace context: what of the repository is indexed and put into prompts."""

    enable: bool = field(
        default=True,
        metadata=_doc(
            "Put code from the rest of the workspace into the prompt: definitions the file "
            "imports and uses near the cursor, the types they mention, an outline of a long "
            "file, and similar code from recently edited files."
        ),
    )
    max_tokens: int = field(
        default=-1,
        metadata=_doc(
            "Token budget for workspace context. -1: whatever `model.nCtx` leaves after the "
            "prefix and suffix windows and `completion.maxTokens`; 0 turns context off.",
            minimum=-1,
            maximum=131072,
        ),
    )
    exclude: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "Files never indexed nor put into a prompt, as .gitignore patterns (e.g. "
            "`vendor/`, `*.min.js`). Files ignored by .gitignore and secrets (`.env*`, "
            "`*.pem`, `*.key`, `id_rsa*`, `*.p12`, `*.pfx`, credentials files) are always "
            "left out."
        ),
    )
    max_file_bytes: int = field(
        default=1_000_000,
        metadata=_doc(
            "Files larger than this are not indexed. Files over 8 MB never are, whatever "
            "this says (one log line each): parsing them would stall the server.",
            minimum=1024,
            maximum=100_000_000,
        ),
    )
    recent_edits: int = field(
        default=4,
        metadata=_doc(
            "Most hunks of what was recently changed elsewhere (other files, or far from the "
            "cursor) put into the prompt as context, ranked with the rest of it; they change "
            "only when an edit lands elsewhere, so typing keeps its KV cache. 0 turns it off.",
            minimum=0,
            maximum=32,
        ),
    )
    recent_edits_minutes: int = field(
        default=10,
        metadata=_doc(
            "Edits older than this many minutes are no longer offered as context.",
            minimum=1,
            maximum=1440,
        ),
    )
    complete_excluded: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "Secret and excluded files (`context.exclude` and the secret patterns) get no "
            "completions at all, since their own text would be the prompt. Files matching "
            "these .gitignore patterns get them anyway (credentials in the text are still "
            "redacted)."
        ),
    )


@dataclass(frozen=True)
class StatsSettings:
    """Acceptance statistics, kept on this machine only."""

    enable: bool = field(
        default=True,
        metadata=_doc(
            "Count shown and accepted suggestions (counts, lengths and latencies only, never "
            "code) in the user's data directory, per language, model and backend, for "
            "`codellama-lsp stats` and the VS Code status tooltip. Nothing is ever sent "
            "anywhere."
        ),
    )


@dataclass(frozen=True)
class Settings:
    """Everything a client can set; every field has a default, so ``Settings()`` is usable."""

    enable: bool = field(
        default=True,
        metadata=_doc(
            "Show inline suggestions. When false the server answers every completion request "
            "with an empty list."
        ),
    )
    model: ModelSettings = field(default_factory=ModelSettings)
    backend: BackendSettings = field(default_factory=BackendSettings)
    completion: CompletionSettings = field(default_factory=CompletionSettings)
    context: ContextSettings = field(default_factory=ContextSettings)
    stats: StatsSettings = field(default_factory=StatsSettings)


# -- the schema, derived from the dataclasses -------------------------------------------


@dataclass(frozen=True)
class _Leaf:
    """One setting as the parser and the schema see it."""

    key: str  # "model.nCtx", without the section
    path: tuple[str, ...]  # ("model", "n_ctx"): the attributes leading to it
    kind: type  # bool, int, str or tuple (a list of strings)
    default: Any
    description: str
    minimum: int | None
    maximum: int | None
    enum: tuple[str, ...] | None


def _camel(name: str) -> str:
    """``n_gpu_layers`` → ``nGpuLayers``: the JSON key of a field."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _kind(owner: str, hint: Any) -> tuple[type, tuple[str, ...] | None]:
    """The JSON kind of an annotation, and the enum a ``Literal`` spells out."""
    if hint in (bool, int, str):
        return hint, None
    if get_origin(hint) is Literal:
        values = get_args(hint)
        if not all(isinstance(v, str) for v in values):
            raise TypeError(f"{owner}: only string Literals are settings")
        return str, values
    if get_origin(hint) is tuple and get_args(hint) == (str, ...):
        return tuple, None
    raise TypeError(f"{owner}: unsupported setting type {hint!r}")


def _walk(cls: type, key: str = "", path: tuple[str, ...] = ()) -> Iterator[_Leaf]:
    """The settings under ``cls``, in field order (the order the docs list them)."""
    hints = get_type_hints(cls)  # resolves the string annotations of ``from __future__``
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        child_key, child_path = f"{key}{_camel(f.name)}", (*path, f.name)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            yield from _walk(hint, f"{child_key}.", child_path)
            continue
        owner = f"{cls.__name__}.{f.name}"
        if f.default is dataclasses.MISSING or "description" not in f.metadata:
            raise TypeError(f"{owner}: a setting needs a default and a description")
        kind, enum = _kind(owner, hint)
        if enum is not None and "enum" in f.metadata:
            raise TypeError(f"{owner}: enum from both the Literal and the metadata")
        yield _Leaf(
            key=child_key,
            path=child_path,
            kind=kind,
            default=f.default,
            description=f.metadata["description"],
            minimum=f.metadata.get("minimum"),
            maximum=f.metadata.get("maximum"),
            enum=enum if enum is not None else f.metadata.get("enum"),
        )


_LEAVES: tuple[_Leaf, ...] = tuple(_walk(Settings))
_BY_KEY = {leaf.key: leaf for leaf in _LEAVES}


def _problem(leaf: _Leaf, value: Any) -> str | None:
    """Why the JSON ``value`` is not acceptable for ``leaf``, or None."""
    if leaf.kind is int:
        # bool is an int subclass, but a JSON true is never a valid count.
        integral = isinstance(value, float) and value.is_integer()
        if isinstance(value, bool) or not (isinstance(value, int) or integral):
            return f"expected an integer, got {value!r}"
    elif leaf.kind is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f"expected a list of strings, got {value!r}"
        return None
    elif not isinstance(value, leaf.kind):
        return f"expected a {leaf.kind.__name__}, got {value!r}"
    if leaf.minimum is not None and value < leaf.minimum:
        return f"{value!r} is below the minimum {leaf.minimum}"
    if leaf.maximum is not None and value > leaf.maximum:
        return f"{value!r} is above the maximum {leaf.maximum}"
    if leaf.enum is not None and value not in leaf.enum:
        return f"{value!r} is not one of {', '.join(leaf.enum)}"
    return None


def _json(value: Any) -> Any:
    """A default as JSON shows it (tuples are lists)."""
    return list(value) if isinstance(value, tuple) else value


def _self_check() -> None:
    """A default outside its own limits would be a warning nobody can silence."""
    for leaf in _LEAVES:
        problem = _problem(leaf, _json(leaf.default))
        if problem is not None:
            raise TypeError(f"default of {SECTION}.{leaf.key}: {problem}")


_self_check()


# -- parsing ---------------------------------------------------------------------------


def _flatten(raw: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in raw.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping) and key.removeprefix(f"{SECTION}.") not in _BY_KEY:
            flat.update(_flatten(value, f"{key}."))
        else:
            flat[key] = value
    return flat


def _value(obj: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        obj = getattr(obj, name)
    return obj


def _replace(obj: Any, values: Mapping[tuple[str, ...], Any]) -> Any:
    """``dataclasses.replace`` through the nesting: one new object per changed level."""
    direct: dict[str, Any] = {}
    nested: dict[str, dict[tuple[str, ...], Any]] = {}
    for path, value in values.items():
        if len(path) == 1:
            direct[path[0]] = value
        else:
            nested.setdefault(path[0], {})[path[1:]] = value
    for name, inner in nested.items():
        direct[name] = _replace(getattr(obj, name), inner)
    return dataclasses.replace(obj, **direct) if direct else obj


def parse_settings(raw: object, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """Settings from client-supplied JSON, with one warning per rejected key.

    Keys missing from ``raw`` (or sent as null) keep their value from ``base`` (the
    defaults when None); unknown keys are reported so typos do not go unnoticed.
    """
    base = base or Settings()
    if raw is None:
        return base, []
    if not isinstance(raw, Mapping):
        return base, [f"settings must be an object, got {type(raw).__name__}; using defaults"]
    section: Mapping[str, Any] = raw
    if isinstance(raw.get(SECTION), Mapping):
        section = raw[SECTION]
    values: dict[tuple[str, ...], Any] = {}
    warnings: list[str] = []
    for raw_key, value in sorted(_flatten(section).items()):
        key = raw_key.removeprefix(f"{SECTION}.")
        leaf = _BY_KEY.get(key)
        if leaf is None:
            warnings.append(f"unknown setting {SECTION}.{key} ignored")
            continue
        if value is None:
            continue
        problem = _problem(leaf, value)
        if problem is not None:
            default = _json(_value(base, leaf.path))
            warnings.append(f"setting {SECTION}.{key}: {problem}; using {default!r}")
            continue
        if leaf.kind is tuple:
            values[leaf.path] = tuple(value)
        else:
            values[leaf.path] = int(value) if leaf.kind is int else value
    settings: Settings = _replace(base, values)
    return settings, warnings


# -- the schema for clients ---------------------------------------------------------------

_JSON_TYPES = {bool: "boolean", int: "integer", str: "string", tuple: "array"}


def json_schema_properties() -> dict[str, dict[str, Any]]:
    """``contributes.configuration.properties`` for the VS Code extension, in field order."""
    props: dict[str, dict[str, Any]] = {}
    for leaf in _LEAVES:
        prop: dict[str, Any] = {
            "type": _JSON_TYPES[leaf.kind],
            "default": _json(leaf.default),
            "markdownDescription": leaf.description,
        }
        if leaf.minimum is not None:
            prop["minimum"] = leaf.minimum
        if leaf.maximum is not None:
            prop["maximum"] = leaf.maximum
        if leaf.enum is not None:
            prop["enum"] = list(leaf.enum)
        if leaf.kind is tuple:
            prop["items"] = {"type": "string"}
        props[f"{SECTION}.{leaf.key}"] = prop
    return props

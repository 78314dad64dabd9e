"""The GGUF builds the server knows by name, and where they are cached.

Names are what users type (`codellama-lsp models download codellama-7b-q5_k_m`)
and what the `model.name` setting holds; each maps to one file of a Hugging Face
repository.  Sizes are the published file sizes, shown before a download so
nobody starts a 14 GB transfer by surprise.

Besides Code Llama the catalog has the fill-in-the-middle model families other
editors' completion tools offer (Qwen2.5-Coder, StarCoder2, DeepSeek-Coder,
CodeGemma), their base (completion) models only: chat-tuned builds are not
infill models.  How each family's prompts are written is ``fim``'s business;
the catalog only says which family a file belongs to.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from . import fim
from .errors import ModelError

#: Base and Python models were trained with fill-in-the-middle; the default.
DEFAULT_MODEL = "codellama-7b-q4_k_m"
#: Overrides where downloaded models are kept (default: the user cache directory).
MODELS_DIR_ENV = "CODELLAMA_LSP_MODELS_DIR"

QUANTS = ("Q4_K_M", "Q5_K_M", "Q8_0")
VARIANTS = ("base", "python", "instruct")

#: The model families, by the id that `models list` shows (``quant.fim.FAMILIES``).
FAMILIES = tuple(fim.FAMILIES)
#: Families whose completion models are published as "base" (deepseek-coder-6.7b-base):
#: the word stays in the catalog name and title.
_NAMED_BASE = frozenset({"deepseek-coder"})

#: Published sizes in GB (10^9 bytes) per parameter count and quantization.
_SIZES_GB = {
    ("7b", "Q4_K_M"): 4.08,
    ("7b", "Q5_K_M"): 4.78,
    ("7b", "Q8_0"): 7.16,
    ("13b", "Q4_K_M"): 7.87,
    ("13b", "Q5_K_M"): 9.23,
    ("13b", "Q8_0"): 13.83,
}


@dataclass(frozen=True)
class _Build:
    """One base model of a family: where its quantizations are published."""

    family: str
    params: str
    repo_id: str
    #: The file name in ``repo_id``, with ``{quant}`` for Q4_K_M, Q5_K_M or Q8_0.
    file: str
    #: Published sizes in GB, in the order of :data:`QUANTS`.
    sizes_gb: tuple[float, float, float]


#: The other families' base models.  Repositories differ per model: each is one that
#: publishes all three quantizations of that exact base (not Instruct) model.
_BUILDS = (
    _Build("qwen2.5-coder", "0.5b", "bartowski/Qwen2.5-Coder-0.5B-GGUF",
           "Qwen2.5-Coder-0.5B-{quant}.gguf", (0.398, 0.420, 0.531)),
    _Build("qwen2.5-coder", "1.5b", "mradermacher/Qwen2.5-Coder-1.5B-GGUF",
           "Qwen2.5-Coder-1.5B.{quant}.gguf", (0.986, 1.13, 1.65)),
    _Build("qwen2.5-coder", "3b", "mradermacher/Qwen2.5-Coder-3B-GGUF",
           "Qwen2.5-Coder-3B.{quant}.gguf", (1.93, 2.22, 3.29)),
    _Build("qwen2.5-coder", "7b", "QuantFactory/Qwen2.5-Coder-7B-GGUF",
           "Qwen2.5-Coder-7B.{quant}.gguf", (4.68, 5.44, 8.10)),
    _Build("qwen2.5-coder", "14b", "mradermacher/Qwen2.5-Coder-14B-GGUF",
           "Qwen2.5-Coder-14B.{quant}.gguf", (8.99, 10.5, 15.7)),
    _Build("starcoder2", "3b", "second-state/StarCoder2-3B-GGUF",
           "starcoder2-3b-{quant}.gguf", (1.85, 2.16, 3.22)),
    _Build("starcoder2", "7b", "second-state/StarCoder2-7B-GGUF",
           "starcoder2-7b-{quant}.gguf", (4.40, 5.12, 7.63)),
    _Build("starcoder2", "15b", "second-state/StarCoder2-15B-GGUF",
           "starcoder2-15b-{quant}.gguf", (9.86, 11.4, 17.0)),
    _Build("deepseek-coder", "1.3b", "TheBloke/deepseek-coder-1.3b-base-GGUF",
           "deepseek-coder-1.3b-base.{quant}.gguf", (0.874, 1.00, 1.43)),
    _Build("deepseek-coder", "6.7b", "TheBloke/deepseek-coder-6.7B-base-GGUF",
           "deepseek-coder-6.7b-base.{quant}.gguf", (4.08, 4.79, 7.16)),
    _Build("codegemma", "2b", "bartowski/codegemma-2b-GGUF",
           "codegemma-2b-{quant}.gguf", (1.63, 1.84, 2.67)),
    _Build("codegemma", "7b", "bartowski/codegemma-7b-GGUF",
           "codegemma-7b-{quant}.gguf", (5.33, 6.14, 9.08)),
)  # fmt: skip


class UnknownModelError(ModelError):
    pass


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    params: str
    variant: str
    quant: str
    repo_id: str
    filename: str
    size_gb: float
    #: One of :data:`FAMILIES`: the FIM format the model was trained with.
    family: str

    @property
    def title(self) -> str:
        if self.family == "codellama":
            variant = {"base": "", "python": " Python", "instruct": " Instruct"}[self.variant]
        else:
            variant = f" {self.variant}" if self.family in _NAMED_BASE else ""
        return f"{fim.FAMILIES[self.family].title} {self.params.upper()}{variant} {self.quant}"

    @property
    def for_infill(self) -> bool:
        """Instruct models were tuned for chat; base and Python ones for completion."""
        return self.variant != "instruct"


def _code_llama() -> list[CatalogEntry]:
    entries = []
    for params in ("7b", "13b"):
        for variant in VARIANTS:
            suffix = "" if variant == "base" else f"-{variant}"
            repo_variant = "" if variant == "base" else f"-{variant.capitalize()}"
            for quant in QUANTS:
                entries.append(
                    CatalogEntry(
                        name=f"codellama-{params}{suffix}-{quant.lower()}",
                        params=params,
                        variant=variant,
                        quant=quant,
                        repo_id=f"TheBloke/CodeLlama-{params.upper()}{repo_variant}-GGUF",
                        filename=f"codellama-{params}{suffix}.{quant}.gguf",
                        size_gb=_SIZES_GB[(params, quant)],
                        family="codellama",
                    )
                )
    return entries


def _other_families() -> list[CatalogEntry]:
    entries = []
    for build in _BUILDS:
        base = "-base" if build.family in _NAMED_BASE else ""
        for quant, size_gb in zip(QUANTS, build.sizes_gb, strict=True):
            entries.append(
                CatalogEntry(
                    name=f"{build.family}-{build.params}{base}-{quant.lower()}",
                    params=build.params,
                    variant="base",
                    quant=quant,
                    repo_id=build.repo_id,
                    filename=build.file.format(quant=quant),
                    size_gb=size_gb,
                    family=build.family,
                )
            )
    return entries


CATALOG: tuple[CatalogEntry, ...] = (*_code_llama(), *_other_families())
_BY_NAME = {entry.name: entry for entry in CATALOG}


def lookup(name: str) -> CatalogEntry:
    """The entry called ``name`` (case-insensitive); the error suggests close names."""
    key = name.strip().lower()
    entry = _BY_NAME.get(key)
    if entry is None:
        raise UnknownModelError(_unknown(name, key))
    return entry


def _unknown(name: str, key: str) -> str:
    """What to say about an unknown name: the nearest names, not all of them."""
    close = [n for n in _BY_NAME if key and n.startswith(key)][:3]
    similar = difflib.get_close_matches(key, _BY_NAME, n=3, cutoff=0.6)
    close += [n for n in similar if n not in close]
    families = f"{', '.join(FAMILIES[:-1])} and {FAMILIES[-1]}"
    listing = (
        f"(`codellama-lsp models list` shows all {len(CATALOG)}: {families} builds; "
        f"the default is {DEFAULT_MODEL})"
    )
    if not close:
        return f"unknown model {name!r} {listing}"
    shown = close[:3]
    guess = shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"
    return f"unknown model {name!r}; did you mean {guess}? {listing}"


def models_dir() -> Path:
    override = os.environ.get(MODELS_DIR_ENV)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("codellama-lsp")) / "models"


def local_path(entry: CatalogEntry, root: Path | None = None) -> Path:
    """Where the file of ``entry`` lives once downloaded (it may not exist yet)."""
    return (root or models_dir()) / entry.repo_id.replace("/", "--") / entry.filename


def cached_path(entry: CatalogEntry, root: Path | None = None) -> Path | None:
    """The downloaded file, or None; a download in progress is not a model yet."""
    path = local_path(entry, root)
    return path if path.is_file() else None

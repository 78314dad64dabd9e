"""Code Llama GGUF builds the server knows by name, and where they are cached.

Names are what users type (`codellama-lsp models download codellama-7b-q5_k_m`)
and what the `model.name` setting holds; each maps to one file of a Hugging Face
repository.  Sizes are the published file sizes, shown before a download so
nobody starts a 14 GB transfer by surprise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError

#: Base and Python models were trained with fill-in-the-middle; the default.
DEFAULT_MODEL = "codellama-7b-q4_k_m"
#: Overrides where downloaded models are kept (default: the user cache directory).
MODELS_DIR_ENV = "CODELLAMA_LSP_MODELS_DIR"

QUANTS = ("Q4_K_M", "Q5_K_M", "Q8_0")
VARIANTS = ("base", "python", "instruct")

#: Published sizes in GB (10^9 bytes) per parameter count and quantization.
_SIZES_GB = {
    ("7b", "Q4_K_M"): 4.08,
    ("7b", "Q5_K_M"): 4.78,
    ("7b", "Q8_0"): 7.16,
    ("13b", "Q4_K_M"): 7.87,
    ("13b", "Q5_K_M"): 9.23,
    ("13b", "Q8_0"): 13.83,
}


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

    @property
    def title(self) -> str:
        variant = {"base": "", "python": " Python", "instruct": " Instruct"}[self.variant]
        return f"Code Llama {self.params.upper()}{variant} {self.quant}"

    @property
    def for_infill(self) -> bool:
        """Instruct models were tuned for chat; base and Python ones for completion."""
        return self.variant != "instruct"


def _entries() -> tuple[CatalogEntry, ...]:
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
                    )
                )
    return tuple(entries)


CATALOG: tuple[CatalogEntry, ...] = _entries()
_BY_NAME = {entry.name: entry for entry in CATALOG}


def lookup(name: str) -> CatalogEntry:
    """The entry called ``name`` (case-insensitive); the error lists the valid names."""
    entry = _BY_NAME.get(name.strip().lower())
    if entry is None:
        raise UnknownModelError(
            f"unknown model {name!r}; known models: {', '.join(e.name for e in CATALOG)} "
            "(codellama-lsp models list)"
        )
    return entry


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

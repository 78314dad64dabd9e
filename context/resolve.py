"""Import specifiers -> workspace files, by each language's own lookup rules.

The rules themselves are in :mod:`.resolvers`; the registry (:mod:`.languages`)
says which apply to a file, so an unknown language simply resolves nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .index import RepositoryIndex
from .languages import SPECS
from .symbols import ImportSpec


@dataclass(frozen=True)
class ResolvedImport:
    spec: ImportSpec
    files: tuple[str, ...]


@dataclass(frozen=True)
class Resolution:
    """Where a file's imports lead, plus files visible without an import (same package)."""

    imports: tuple[ResolvedImport, ...]
    implicit: tuple[str, ...]

    def files(self) -> list[str]:
        """All resolved files, explicit imports first, without duplicates."""
        seen: dict[str, None] = {}
        for resolved in self.imports:
            for path in resolved.files:
                seen.setdefault(path, None)
        for path in self.implicit:
            seen.setdefault(path, None)
        return list(seen)


def resolve_imports(
    index: RepositoryIndex,
    rel: str,
    language: str,
    imports: Sequence[ImportSpec],
    package: str = "",
) -> Resolution:
    """Resolve every import of the file ``rel`` to indexed workspace files."""
    spec = SPECS.get(language)
    if spec is None:
        return Resolution((), ())
    resolved: list[ResolvedImport] = []
    for imp in imports:
        files = tuple(dict.fromkeys(f for f in spec.resolver(spec, index, rel, imp) if f != rel))
        resolved.append(ResolvedImport(imp, files))
    implicit: list[str] = []
    if spec.implicit_scope is not None:
        implicit = [f for f in spec.implicit_scope(spec, index, rel, package) if f != rel]
    return Resolution(tuple(resolved), tuple(implicit))

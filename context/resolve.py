"""Import specifiers -> workspace files, by each language's own lookup rules.

Resolution is deliberately conservative: an import that names nothing in the
workspace (a standard library or third-party module) resolves to no file, so
an unrelated file with a similar name is never shown to the model.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from .index import RepositoryIndex
from .languages import spec_for
from .symbols import ImportSpec

_JS_EXTENSIONS = (".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts")
_JS_STRIPPABLE = (".js", ".jsx", ".mjs", ".cjs")
_SHELL_PREFIX = re.compile(r"^(?:\$\([^)]*\)|\$\{[^}]*\}|\$\w+)/")


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


def _common_depth(a: str, b: str) -> int:
    depth = 0
    for x, y in zip(a.split("/")[:-1], b.split("/")[:-1], strict=False):
        if x != y:
            break
        depth += 1
    return depth


def closest(candidates: Sequence[str], rel: str) -> str | None:
    """The candidate sharing the most directories with ``rel`` (then shortest, then name)."""
    if not candidates:
        return None
    return min(candidates, key=lambda c: (-_common_depth(c, rel), c.count("/"), c))


def _normal(path: str) -> str | None:
    normal = posixpath.normpath(path)
    if normal.startswith("../") or normal in {"..", "."}:
        return None
    return normal.lstrip("/")


def _existing(index: RepositoryIndex, candidates: Sequence[str]) -> list[str]:
    return [c for c in candidates if c in index]


# -- per language ----------------------------------------------------------------


def _python_module(index: RepositoryIndex, target: str, rel: str, exact: bool) -> list[str]:
    names = [f"{target}.py", f"{target}.pyi", f"{target}/__init__.py"] if target else []
    if exact:
        return _existing(index, [n.lstrip("/") for n in names])
    found = [path for name in names for path in index.files_with_suffix(name)]
    best = closest(found, rel)
    return [best] if best else []


def _python(index: RepositoryIndex, rel: str, imp: ImportSpec) -> list[str]:
    spec = imp.spec
    if spec.startswith("."):
        level = len(spec) - len(spec.lstrip("."))
        parts = rel.split("/")[:-1]
        if level - 1 > len(parts):
            return []
        base = "/".join(parts[: len(parts) - (level - 1)])
        module = spec.lstrip(".").replace(".", "/")
        target = posixpath.join(base, module) if module else base
        files = _python_module(index, target, rel, exact=True) if module else []
        if not module:
            files += _existing(index, [posixpath.join(base, "__init__.py").lstrip("/")])
        for name in imp.names:
            if name != "*":
                files += _python_module(index, posixpath.join(target, name), rel, exact=True)
        return files
    target = spec.replace(".", "/")
    files = _python_module(index, target, rel, exact=False)
    for name in imp.names:
        if name == "*":
            continue
        if files:
            directory = files[0].rsplit("/", 1)[0] if "/" in files[0] else ""
            if files[0].endswith("/__init__.py") or files[0] == "__init__.py":
                files += _python_module(index, posixpath.join(directory, name), rel, exact=True)
            continue
        files += _python_module(index, f"{target}/{name}", rel, exact=False)
    return files


def _javascript(index: RepositoryIndex, rel: str, imp: ImportSpec) -> list[str]:
    spec = imp.spec
    if spec.startswith("."):
        joined = posixpath.join(posixpath.dirname(rel), spec)
    elif spec.startswith("/"):
        joined = spec
    elif spec.startswith(("@/", "~/")):
        joined = "src/" + spec[2:]
    else:
        return []  # a package from node_modules
    base = _normal(joined)
    if base is None:
        return []
    candidates = [base, *(base + ext for ext in _JS_EXTENSIONS)]
    stem, ext = posixpath.splitext(base)
    if ext in _JS_STRIPPABLE:
        candidates += [stem + e for e in _JS_EXTENSIONS]
    candidates += [f"{base}/index{e}" for e in _JS_EXTENSIONS]
    found = _existing(index, candidates)
    return found[:1]


def _go_package_files(index: RepositoryIndex, directory: str) -> list[str]:
    return [
        f for f in index.files_in_dir(directory) if f.endswith(".go") and not f.endswith("_test.go")
    ]


def _go(index: RepositoryIndex, rel: str, imp: ImportSpec) -> list[str]:
    segments = imp.spec.strip("/").split("/")
    for start in range(len(segments)):
        directory = closest(index.dirs_with_suffix("/".join(segments[start:])), rel)
        if directory is not None:
            return _go_package_files(index, directory)
    return []


def _java(index: RepositoryIndex, rel: str, imp: ImportSpec) -> list[str]:
    parts = imp.spec.split(".")
    if parts[-1] == "*":
        directory = closest(index.dirs_with_suffix("/".join(parts[:-1])), rel)
        if directory is None:
            return []
        return [f for f in index.files_in_dir(directory) if f.endswith(".java")]
    # A static import names a member; a nested class is inside its outer file.
    for end in range(len(parts), 1, -1):
        best = closest(index.files_with_suffix("/".join(parts[:end]) + ".java"), rel)
        if best is not None:
            return [best]
    return []


def _rust_module_path(rel: str) -> tuple[str, list[str]]:
    """(crate source dir, module path of ``rel``)."""
    parts = rel.split("/")
    if "src" in parts[:-1]:
        at = len(parts) - 2 - parts[:-1][::-1].index("src")
        crate, inner = "/".join(parts[: at + 1]), parts[at + 1 :]
    else:
        crate, inner = "/".join(parts[:-1]), parts[-1:]
    stem = inner[-1][: -len(".rs")] if inner[-1].endswith(".rs") else inner[-1]
    module = inner[:-1]
    if stem == "mod" or (not module and stem in ("lib", "main")):
        return crate, module
    return crate, [*module, stem]


def _rust_file(index: RepositoryIndex, crate: str, segments: Sequence[str]) -> str | None:
    prefix = f"{crate}/" if crate else ""
    if not segments:
        names = [f"{prefix}lib.rs", f"{prefix}main.rs"]
    else:
        joined = "/".join(segments)
        names = [f"{prefix}{joined}.rs", f"{prefix}{joined}/mod.rs"]
    found = _existing(index, names)
    return found[0] if found else None


def _rust(index: RepositoryIndex, rel: str, imp: ImportSpec) -> list[str]:
    crate, module = _rust_module_path(rel)
    if imp.kind == "mod":
        found = _rust_file(index, crate, [*module, imp.spec])
        return [found] if found else []
    segments = imp.spec.split("::")
    head = segments[0]
    bases: list[list[str]]
    if head == "crate":
        bases, segments, minimum = [[]], segments[1:], 0
    elif head == "self":
        bases, segments, minimum = [module], segments[1:], 0
    elif head == "super":
        base = module
        while segments and segments[0] == "super":
            base, segments = base[:-1], segments[1:]
        bases, minimum = [base], 0
    else:  # 2018-style path: a module of this crate, or an external crate
        bases, minimum = [module, []], 1
    for base in bases:
        full = [*base, *segments]
        for end in range(len(full), max(len(base) + minimum, 0) - 1, -1):
            found = _rust_file(index, crate, full[:end])
            if found is not None and found != rel:
                return [found]
    return []


def _relative_then_suffix(index: RepositoryIndex, rel: str, spec: str) -> list[str]:
    """C includes, PHP includes, shell sources: next to the file, at the root, anywhere."""
    for joined in (posixpath.join(posixpath.dirname(rel), spec), spec.lstrip("/")):
        normal = _normal(joined)
        if normal is not None and normal in index:
            return [normal]
    tail = posixpath.normpath(spec).lstrip("/")
    while tail.startswith("../"):
        tail = tail[3:]
    if not tail or (tail.startswith(".") and "/" not in tail):
        return []
    best = closest(index.files_with_suffix(tail.removeprefix("./")), rel)
    return [best] if best else []


def _c(index: RepositoryIndex, rel: str, imp: ImportSpec) -> list[str]:
    if imp.kind == "system" and "/" not in imp.spec:
        best = closest(index.files_with_suffix(imp.spec), rel)
        return [best] if best and "include" in best.split("/")[:-1] else []
    return _relative_then_suffix(index, rel, imp.spec)


def _csharp(index: RepositoryIndex, rel: str, imp: ImportSpec) -> list[str]:
    return index.files_with_package("csharp", imp.spec)


def _php(index: RepositoryIndex, rel: str, imp: ImportSpec) -> list[str]:
    if imp.kind == "include":
        return _relative_then_suffix(index, rel, imp.spec)
    parts = [p for p in imp.spec.split("\\") if p]
    if imp.kind == "use":
        for start in range(len(parts)):
            best = closest(index.files_with_suffix("/".join(parts[start:]) + ".php"), rel)
            if best is not None:
                return [best]
    namespace = "\\".join(parts[:-1])
    return index.files_with_package("php", namespace) if namespace else []


def _bash(index: RepositoryIndex, rel: str, imp: ImportSpec) -> list[str]:
    spec = imp.spec
    while True:
        stripped = _SHELL_PREFIX.sub("", spec)
        if stripped == spec:
            break
        spec = stripped
    if "$" in spec or not spec:
        return []
    return _relative_then_suffix(index, rel, spec)


_Resolver = Callable[[RepositoryIndex, str, ImportSpec], list[str]]
_RESOLVERS: Mapping[str, _Resolver] = MappingProxyType(
    {
        "python": _python,
        "javascript": _javascript,
        "typescript": _javascript,
        "tsx": _javascript,
        "go": _go,
        "java": _java,
        "rust": _rust,
        "c": _c,
        "cpp": _c,
        "csharp": _csharp,
        "php": _php,
        "bash": _bash,
    }
)


def _implicit(index: RepositoryIndex, rel: str, language: str, package: str) -> list[str]:
    """Files whose top-level names are visible without an import."""
    directory = rel.rsplit("/", 1)[0] if "/" in rel else ""
    if language == "go":
        files = _go_package_files(index, directory)
    elif language == "java":
        files = [f for f in index.files_in_dir(directory) if f.endswith(".java")]
    elif language in ("csharp", "php") and package:
        files = index.files_with_package(spec_for(language).family, package)
    else:
        files = []
    return [f for f in files if f != rel]


def resolve_imports(
    index: RepositoryIndex,
    rel: str,
    language: str,
    imports: Sequence[ImportSpec],
    package: str = "",
) -> Resolution:
    """Resolve every import of the file ``rel`` to indexed workspace files."""
    resolver = _RESOLVERS.get(language)
    resolved: list[ResolvedImport] = []
    if resolver is not None:
        for imp in imports:
            files = tuple(dict.fromkeys(f for f in resolver(index, rel, imp) if f != rel))
            resolved.append(ResolvedImport(imp, files))
    return Resolution(tuple(resolved), tuple(_implicit(index, rel, language, package)))

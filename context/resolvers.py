"""Each language's own rules for finding the workspace files an import names.

Resolution is deliberately conservative: an import that names nothing in the
workspace (a standard library or third-party module) resolves to no file, so an
unrelated file with a similar name is never shown to the model.  The registry
(:mod:`.languages`) names each language's resolver and implicit scope; every
function gets that language's entry so that it can read its family and extensions.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from .imports import ImportSpec

if TYPE_CHECKING:
    from .index import RepositoryIndex
    from .languages import LanguageSpec

#: (language, index, importing file, import) -> the files it names.
Resolver = Callable[["LanguageSpec", "RepositoryIndex", str, ImportSpec], list[str]]
#: (language, index, file, its package) -> files whose names it sees without an import.
ImplicitScope = Callable[["LanguageSpec", "RepositoryIndex", str, str], list[str]]

#: TypeScript's lookup order for an extension-less specifier.
_JS_EXTENSIONS = (".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts")
_JS_STRIPPABLE = (".js", ".jsx", ".mjs", ".cjs")
_SHELL_PREFIX = re.compile(r"^(?:\$\([^)]*\)|\$\{[^}]*\}|\$\w+)/")


# -- shared path rules -------------------------------------------------------------


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


def _dirname(rel: str) -> str:
    return rel.rsplit("/", 1)[0] if "/" in rel else ""


def _language_files(spec: LanguageSpec, index: RepositoryIndex, directory: str) -> list[str]:
    return [f for f in index.files_in_dir(directory) if f.endswith(spec.extensions)]


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


#: Files that implement what a header declares, by extension of the header.
_IMPLEMENTATION_EXTENSIONS = {
    ".h": (".c", ".cc", ".cpp", ".cxx", ".m"),
    ".hh": (".cc", ".cpp"),
    ".hpp": (".cpp", ".cc", ".cxx"),
    ".hxx": (".cxx", ".cpp"),
}


def implementation_files(index: RepositoryIndex, rel: str, language: str) -> list[str]:
    """For a C/C++ header, the source files of the same name (``x.h`` -> ``x.c``)."""
    stem, ext = posixpath.splitext(rel)
    extensions = _IMPLEMENTATION_EXTENSIONS.get(ext)
    if not extensions:
        return []
    name = posixpath.basename(stem)
    found = _existing(index, [stem + e for e in extensions])
    if found:
        return found
    candidates = [f for e in extensions for f in index.files_with_suffix(f"{name}{e}")]
    best = closest([c for c in candidates if posixpath.basename(c).startswith(name + ".")], rel)
    return [best] if best else []


# -- Python --------------------------------------------------------------------------


def _python_module(index: RepositoryIndex, target: str, rel: str, exact: bool) -> list[str]:
    names = [f"{target}.py", f"{target}.pyi", f"{target}/__init__.py"] if target else []
    if exact:
        return _existing(index, [n.lstrip("/") for n in names])
    found = [path for name in names for path in index.files_with_suffix(name)]
    best = closest(found, rel)
    return [best] if best else []


def _python_relative(index: RepositoryIndex, rel: str, imp: ImportSpec) -> list[str]:
    spec = imp.spec
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


def python(spec: LanguageSpec, index: RepositoryIndex, rel: str, imp: ImportSpec) -> list[str]:
    """Relative imports from the file's package; absolute ones by the closest module path.

    A workspace opened at the package itself (``email/``) holds ``utils.py`` for
    ``email.utils``: the package's own name is then dropped from the path.
    """
    if imp.spec.startswith("."):
        return _python_relative(index, rel, imp)
    head, _, rest = imp.spec.partition(".")
    if head == index.root.name and (index.root / "__init__.py").exists():
        if not rest:  # ``from email import utils``
            names = [n for n in imp.names if n != "*"]
            wanted = [
                "__init__.py",
                *(f"{n}.py" for n in names),
                *(f"{n}/__init__.py" for n in names),
            ]
            return _existing(index, wanted)
        found = python(spec, index, rel, replace(imp, spec=rest))
        if found:
            return found
    target = imp.spec.replace(".", "/")
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


# -- JavaScript and TypeScript -------------------------------------------------------


def javascript(spec: LanguageSpec, index: RepositoryIndex, rel: str, imp: ImportSpec) -> list[str]:
    """Relative, rooted and ``@/``/``~/`` specifiers; bare ones are node_modules packages."""
    written = imp.spec
    if written.startswith("."):
        joined = posixpath.join(posixpath.dirname(rel), written)
    elif written.startswith("/"):
        joined = written
    elif written.startswith(("@/", "~/")):
        joined = "src/" + written[2:]
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


# -- Go ------------------------------------------------------------------------------


def _go_package_files(spec: LanguageSpec, index: RepositoryIndex, directory: str) -> list[str]:
    return [f for f in _language_files(spec, index, directory) if not f.endswith("_test.go")]


def go(spec: LanguageSpec, index: RepositoryIndex, rel: str, imp: ImportSpec) -> list[str]:
    """The package directory matching the longest tail of the import path."""
    segments = imp.spec.strip("/").split("/")
    for start in range(len(segments)):
        directory = closest(index.dirs_with_suffix("/".join(segments[start:])), rel)
        if directory is not None:
            return _go_package_files(spec, index, directory)
    return []


def go_package(spec: LanguageSpec, index: RepositoryIndex, rel: str, package: str) -> list[str]:
    """A Go file sees every non-test file of its directory; a test file sees the tests too."""
    if rel.endswith("_test.go"):
        return _language_files(spec, index, _dirname(rel))
    return _go_package_files(spec, index, _dirname(rel))


# -- Java ----------------------------------------------------------------------------


def java(spec: LanguageSpec, index: RepositoryIndex, rel: str, imp: ImportSpec) -> list[str]:
    """A class file by its qualified name; ``pkg.*`` is the package directory."""
    parts = imp.spec.split(".")
    if parts[-1] == "*":
        directory = closest(index.dirs_with_suffix("/".join(parts[:-1])), rel)
        if directory is None:
            return []
        return _language_files(spec, index, directory)
    # A static import names a member; a nested class is inside its outer file.
    for end in range(len(parts), 1, -1):
        best = closest(index.files_with_suffix("/".join(parts[:end]) + ".java"), rel)
        if best is not None:
            return [best]
    return []


def same_directory(spec: LanguageSpec, index: RepositoryIndex, rel: str, package: str) -> list[str]:
    """A Java file sees the classes of its package: its directory, and the same package
    in the other source roots (tests see ``src/main``, generated sources, modules)."""
    files = _language_files(spec, index, _dirname(rel))
    if package:
        files += [f for f in index.files_with_package(spec.family, package) if f not in files]
    return files


# -- Rust ----------------------------------------------------------------------------


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


def _rust_bases(module: list[str], segments: list[str]) -> tuple[list[list[str]], list[str], int]:
    """(module paths to look under, the rest of the path, segments that must match)."""
    head = segments[0]
    if head == "crate":
        return [[]], segments[1:], 0
    if head == "self":
        return [module], segments[1:], 0
    if head == "super":
        base = module
        while segments and segments[0] == "super":
            base, segments = base[:-1], segments[1:]
        return [base], segments, 0
    return [module, []], segments, 1  # 2018-style path: this crate's module, or a crate


def rust(spec: LanguageSpec, index: RepositoryIndex, rel: str, imp: ImportSpec) -> list[str]:
    """``mod m;`` is a file next to this module; ``use`` paths are walked from their root."""
    crate, module = _rust_module_path(rel)
    if imp.kind == "mod":
        found = _rust_file(index, crate, [*module, imp.spec])
        return [found] if found else []
    bases, segments, minimum = _rust_bases(module, imp.spec.split("::"))
    for base in bases:
        full = [*base, *segments]
        for end in range(len(full), max(len(base) + minimum, 0) - 1, -1):
            found = _rust_file(index, crate, full[:end])
            if found is not None and found != rel:
                return [found]
    return []


# -- C and C++, C#, PHP, shell -------------------------------------------------------


def c(spec: LanguageSpec, index: RepositoryIndex, rel: str, imp: ImportSpec) -> list[str]:
    """``<x.h>`` only from an ``include`` directory of the workspace; ``"x.h"`` anywhere."""
    if imp.kind == "system" and "/" not in imp.spec:
        best = closest(index.files_with_suffix(imp.spec), rel)
        return [best] if best and "include" in best.split("/")[:-1] else []
    return _relative_then_suffix(index, rel, imp.spec)


def namespace(spec: LanguageSpec, index: RepositoryIndex, rel: str, imp: ImportSpec) -> list[str]:
    """C# ``using N;``: the files that declare namespace N."""
    return index.files_with_package(spec.family, imp.spec)


def php(spec: LanguageSpec, index: RepositoryIndex, rel: str, imp: ImportSpec) -> list[str]:
    """Includes by path; ``use A\\B`` by PSR-4 style path, else by the namespace's files."""
    if imp.kind == "include":
        return _relative_then_suffix(index, rel, imp.spec)
    parts = [p for p in imp.spec.split("\\") if p]
    if imp.kind == "use":
        for start in range(len(parts)):
            best = closest(index.files_with_suffix("/".join(parts[start:]) + ".php"), rel)
            if best is not None:
                return [best]
    package = "\\".join(parts[:-1])
    return index.files_with_package(spec.family, package) if package else []


def same_namespace(spec: LanguageSpec, index: RepositoryIndex, rel: str, package: str) -> list[str]:
    """C# and PHP files see the names of every file declaring their namespace."""
    return index.files_with_package(spec.family, package) if package else []


def bash(spec: LanguageSpec, index: RepositoryIndex, rel: str, imp: ImportSpec) -> list[str]:
    """A sourced path, after ``$DIR/`` prefixes; other variables make it unknowable."""
    path = imp.spec
    while True:
        stripped = _SHELL_PREFIX.sub("", path)
        if stripped == path:
            break
        path = stripped
    if "$" in path or not path:
        return []
    return _relative_then_suffix(index, rel, path)

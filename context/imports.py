"""Import statements read from a syntax tree, one handler per language.

Each registry entry (:mod:`.languages`) names its handler and the tree-sitter query
whose ``@import`` captures are handed to it, so the handlers only know node shapes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tree_sitter import Node

from .definitions import node_text

_RUST_ALIAS = re.compile(r"\s+as\s+\w+")
_CSHARP_USING = re.compile(r"(?:global\s+)?using\s+(?:static\s+)?(?:\w+\s*=\s*)?([\w.]+)")


@dataclass(frozen=True, slots=True)
class ImportSpec:
    """One imported module specifier as written, plus the names it binds."""

    spec: str
    #: Names the statement binds or imports (module alias, imported symbols).
    names: tuple[str, ...]
    #: How the names are used: "module", "package" and "mod" imports are qualified
    #: (``mod.name``); the others bring names in directly.
    kind: str
    line: int = 0
    end_line: int = 0


#: Appends the imports of one captured statement; returns a package it declares, or "".
ImportHandler = Callable[[bytes, Node, list[ImportSpec]], str]


def _strip_quotes(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] in "\"'`<" and text[-1] in "\"'`>":
        return text[1:-1]
    return text


def _first_named_text(source: bytes, node: Node) -> str:
    return node_text(source, node.named_children[0]) if node.named_child_count else ""


def python_import(source: bytes, node: Node, out: list[ImportSpec]) -> str:
    """``import a.b as c`` binds a module; ``from a import b`` binds names."""
    if node.type == "import_statement":
        for name in node.children_by_field_name("name"):
            aliased = name.type == "aliased_import"
            target = name.child_by_field_name("name") if aliased else name
            module = node_text(source, target)
            bound = node_text(source, name.child_by_field_name("alias")) if aliased else ""
            out.append(ImportSpec(module, (bound or module.rsplit(".", 1)[-1],), "module"))
        return ""
    module = node_text(source, node.child_by_field_name("module_name"))
    names: list[str] = []
    for name in node.children_by_field_name("name"):
        target = name.child_by_field_name("name") if name.type == "aliased_import" else name
        names.append(node_text(source, target))
    if any(c.type == "wildcard_import" for c in node.named_children):
        names.append("*")
    out.append(ImportSpec(module, tuple(names), "from"))
    return ""


def _js_bound_names(source: bytes, node: Node) -> list[str]:
    names: list[str] = []
    for child in node.named_children:
        if child.type not in ("import_clause", "export_clause"):
            continue
        stack = [child]
        while stack:
            current = stack.pop()
            if current.type in ("import_specifier", "export_specifier"):
                names.append(node_text(source, current.child_by_field_name("name")))
            elif current.type == "identifier":
                names.append(node_text(source, current))
            else:
                stack.extend(current.named_children)
    return names


def js_import(source: bytes, node: Node, out: list[ImportSpec]) -> str:
    """ES ``import``/``export ... from`` statements, ``require()`` and ``import()`` calls."""
    if node.type == "call_expression":
        function = node_text(source, node.child_by_field_name("function"))
        arguments = node.child_by_field_name("arguments")
        if function in ("require", "import") and arguments is not None:
            first = arguments.named_children[0] if arguments.named_child_count else None
            if first is not None and first.type == "string":
                out.append(ImportSpec(_strip_quotes(node_text(source, first)), (), "require"))
        return ""
    source_node = node.child_by_field_name("source")
    if source_node is None:
        return ""
    names = _js_bound_names(source, node)
    out.append(ImportSpec(_strip_quotes(node_text(source, source_node)), tuple(names), "import"))
    return ""


def go_import(source: bytes, node: Node, out: list[ImportSpec]) -> str:
    """An import spec binds its package name (or alias); the package clause names the file's."""
    if node.type == "package_clause":
        return _first_named_text(source, node)
    path = _strip_quotes(node_text(source, node.child_by_field_name("path")))
    alias = node_text(source, node.child_by_field_name("name"))
    out.append(ImportSpec(path, (alias or path.rsplit("/", 1)[-1],), "package"))
    return ""


def java_import(source: bytes, node: Node, out: list[ImportSpec]) -> str:
    """Class, wildcard and static imports; the package declaration names the file's."""
    if node.type == "package_declaration":
        return _first_named_text(source, node)
    words = node_text(source, node).split()
    named = [c for c in node.named_children if c.type in ("scoped_identifier", "identifier")]
    if not named:
        return ""
    path = node_text(source, named[0])
    if any(c.type == "asterisk" for c in node.named_children):
        path += ".*"
    is_static = len(words) > 1 and words[1] == "static"
    out.append(ImportSpec(path, (path.rsplit(".", 1)[-1],), "static" if is_static else "import"))
    return ""


def c_include(source: bytes, node: Node, out: list[ImportSpec]) -> str:
    """``#include "x.h"`` and ``#include <x.h>`` (a system header)."""
    path_node = node.child_by_field_name("path")
    if path_node is not None:
        system = path_node.type == "system_lib_string"
        path = _strip_quotes(node_text(source, path_node))
        out.append(ImportSpec(path, (), "system" if system else "include"))
    return ""


def csharp_using(source: bytes, node: Node, out: list[ImportSpec]) -> str:
    """``using N.S;`` in its global, static and alias forms."""
    match = _CSHARP_USING.match(node_text(source, node))
    if match:
        out.append(ImportSpec(match.group(1), (), "using"))
    return ""


def _php_use(source: bytes, node: Node, out: list[ImportSpec]) -> None:
    is_function = any(c.type in ("function", "const") for c in node.children if not c.is_named)
    for clause in node.named_children:
        if clause.type != "namespace_use_clause":
            continue
        target = next(
            (c for c in clause.named_children if c.type in ("qualified_name", "name")),
            None,
        )
        path = node_text(source, target).lstrip("\\")
        kind_name = "use_function" if is_function else "use"
        out.append(ImportSpec(path, (path.rsplit("\\", 1)[-1],), kind_name))


def php_import(source: bytes, node: Node, out: list[ImportSpec]) -> str:
    """``use`` declarations, and the first string of an include/require expression."""
    if node.type == "namespace_use_declaration":
        _php_use(source, node, out)
        return ""
    stack = [node]
    while stack:
        current = stack.pop()
        if current.type in ("string", "encapsed_string"):
            out.append(ImportSpec(_strip_quotes(node_text(source, current)), (), "include"))
            break
        stack.extend(reversed(current.named_children))
    return ""


def bash_source(source: bytes, node: Node, out: list[ImportSpec]) -> str:
    """``source f`` and ``. f``; every other command is captured too and skipped here."""
    command = node_text(source, node.child_by_field_name("name"))
    operands = node.children_by_field_name("argument")
    if command in ("source", ".") and operands:
        out.append(ImportSpec(_strip_quotes(node_text(source, operands[0])), (), "source"))
    return ""


def _split_top(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p]


def expand_rust_use(text: str) -> list[str]:
    """``a::{b, c::d}`` -> ``["a::b", "a::c::d"]`` (aliases dropped)."""
    text = re.sub(r"\s+", "", _RUST_ALIAS.sub("", text))
    out: list[str] = []

    def expand(prefix: str, rest: str) -> None:
        brace = rest.find("{")
        if brace < 0:
            out.append(prefix + rest)
            return
        head = prefix + rest[:brace]
        inner = rest[brace + 1 : rest.rfind("}")]
        for part in _split_top(inner):
            if part == "self":
                out.append(head.rstrip(":"))
            else:
                expand(head, part)

    expand("", text)
    return out


def rust_use(source: bytes, node: Node, out: list[ImportSpec]) -> str:
    """``use`` trees, expanded to one path each; ``mod m;`` declares a module file."""
    if node.type == "mod_item":
        if node.child_by_field_name("body") is None:
            module = node_text(source, node.child_by_field_name("name"))
            out.append(ImportSpec(module, (module,), "mod"))
        return ""
    for path in expand_rust_use(node_text(source, node.child_by_field_name("argument"))):
        out.append(ImportSpec(path, (path.rsplit("::", 1)[-1],), "use"))
    return ""

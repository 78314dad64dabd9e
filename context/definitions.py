"""Definitions read from a syntax tree, kept as plain records of their headers.

The walk is the same for every language: each registry entry (:mod:`.languages`)
says which node types define what and which handler below reads each of them, so
the handlers only know node shapes, never which language they are in.  Keeping
headers (and the whole text of small definitions) instead of trees is what lets a
10,000-file workspace fit in a few hundred megabytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tree_sitter import Node

if TYPE_CHECKING:
    from .languages import LanguageSpec

FUNCTION = "function"
METHOD = "method"
CLASS = "class"
INTERFACE = "interface"
TYPE = "type"
STRUCT = "struct"
ENUM = "enum"
CONSTANT = "constant"

#: Kinds that name a type, used to pull in the types a signature mentions.
TYPE_KINDS = frozenset({CLASS, INTERFACE, TYPE, STRUCT, ENUM})
#: Kinds whose members are listed under their header when the body is cut.
CONTAINER_KINDS = frozenset({CLASS, INTERFACE, STRUCT, ENUM})

#: Definitions at most this many lines long are kept whole.
SMALL_LINES = 12
_SMALL_CHARS = 1200
#: A header longer than this (a body-less type alias, a long prototype) is cut.
_HEADER_LINES = 12

_COMMENT_MARKERS = re.compile(r"^\s*(?:/\*+!?|\*+/|\*+|//[/!]?|#+|--)\s?")
_XML_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_UPPER_NAME = re.compile(r"^_*[A-Z][A-Z0-9_]*$")
_JS_FUNCTION_VALUES = frozenset(
    {"arrow_function", "function_expression", "function", "generator_function"}
)
_C_DECLARATOR_WRAPPERS = frozenset(
    {
        "pointer_declarator",
        "reference_declarator",
        "parenthesized_declarator",
        "attributed_declarator",
        "array_declarator",
    }
)
_C_NAMES = frozenset(
    {"identifier", "field_identifier", "type_identifier", "destructor_name", "operator_name"}
)


@dataclass(frozen=True, slots=True)
class Definition:
    """A definition as the prompt shows it: header and maybe its whole (small) text."""

    name: str
    kind: str
    path: str
    language: str
    start_line: int
    end_line: int
    #: Source text from the start of its first line up to the body (indentation kept).
    header: str
    #: First line of the docstring or of the comment just above.
    doc: str
    #: Name of the enclosing class, struct, trait or impl ("" at top level).
    parent: str
    #: The whole definition when it is small, else None.
    full: str | None
    #: True when a body follows the header (so the prompt shows an elision).
    has_body: bool


def node_text(source: bytes, node: Node | None) -> str:
    """Source text of a node; "" for a missing one, so optional fields need no check."""
    if node is None:
        return ""
    return source[node.start_byte : node.end_byte].decode("utf-8", errors="replace")


def clean_comment(text: str) -> str:
    """First meaningful line of a comment or docstring, without its markers."""
    for raw in text.splitlines():
        line = _COMMENT_MARKERS.sub("", raw)
        line = _XML_TAG.sub("", line.replace("*/", "")).strip()
        if line and line.strip("*/#-= ") != "":
            return line
    return ""


class Extractor:
    """Walks the top level and container bodies only; function bodies are skipped."""

    def __init__(self, spec: LanguageSpec, source: bytes, path: str) -> None:
        self.spec = spec
        self.source = source
        self.path = path
        self.defs: list[Definition] = []

    def text(self, node: Node | None) -> str:
        return node_text(self.source, node)

    def walk(self, node: Node, parent: str) -> None:
        for child in node.named_children:
            self.visit(child, child, parent)

    def visit(self, node: Node, outer: Node, parent: str) -> None:
        """Unwrap wrappers, descend into scopes, hand definitions to their handler."""
        spec = self.spec
        kind_of = node.type
        if kind_of in spec.wrappers:
            for child in node.named_children:
                if child.type in spec.definitions or child.type in spec.wrappers:
                    self.visit(child, outer, parent)
            return
        if kind_of in spec.scopes:
            body = node.child_by_field_name("body") or node
            self.walk(body, parent)
            return
        kind = spec.definitions.get(kind_of)
        if kind is not None:
            handler = spec.definition_handlers.get(kind_of, spec.default_handler)
            handler(self, node, outer, parent, kind)

    def members(self, node: Node, body: Node | None, name: str) -> None:
        """Walk a container's body so that its members are recorded under ``name``."""
        if node.type in self.spec.containers and body is not None and name:
            self.walk(body, name)

    def _leading_comment(self, outer: Node) -> str:
        spec = self.spec
        comments: list[str] = []
        row = outer.start_point.row
        prev = outer.prev_named_sibling
        while prev is not None:
            if prev.type in spec.attribute_types:
                row = prev.start_point.row
            elif prev.type in spec.comment_types and prev.end_point.row >= row - 1:
                comments.append(self.text(prev))
                row = prev.start_point.row
            else:
                break
            prev = prev.prev_named_sibling
        return clean_comment("\n".join(reversed(comments)))

    def _header(
        self, node: Node, body: Node | None, start: int, line_start: int, whole: str
    ) -> tuple[str, bool]:
        """Text up to the body, and whether a body follows (and is elided in prompts).

        A node without a body field (a type alias, a prototype with an initializer
        list) is cut at its first ``{`` when that comes soon enough.
        """
        if body is not None and body.start_byte > start:
            header = self.source[line_start : body.start_byte].decode("utf-8", errors="replace")
            header = header.rstrip()
        else:
            header = whole
            brace = header.find("{")
            if body is None and brace > 0 and header.count("\n", 0, brace) < _HEADER_LINES:
                header = header[:brace].rstrip()
                body = node  # something was elided
        lines = header.split("\n")
        if len(lines) > _HEADER_LINES:
            header = "\n".join(lines[:_HEADER_LINES])
        return header, body is not None

    def add(
        self,
        name: str,
        kind: str,
        node: Node,
        outer: Node,
        *,
        parent: str,
        body: Node | None,
        doc: str = "",
    ) -> None:
        """Record one definition; ``outer`` is its wrapper (decorators, export) or itself."""
        if not name:
            return
        source = self.source
        start = outer.start_byte
        line_start = source.rfind(b"\n", 0, start) + 1
        if source[line_start:start].strip():
            line_start = start
        end = max(node.end_byte, outer.end_byte)
        start_line = outer.start_point.row
        end_line = max(node.end_point.row, outer.end_point.row)
        whole = source[line_start:end].decode("utf-8", errors="replace").rstrip()
        end_line = min(end_line, start_line + whole.count("\n"))
        small = end_line - start_line < SMALL_LINES and len(whole) <= _SMALL_CHARS
        header, has_body = self._header(node, body, start, line_start, whole)
        self.defs.append(
            Definition(
                name=name,
                kind=kind,
                path=self.path,
                language=self.spec.name,
                start_line=start_line,
                end_line=end_line,
                header=header,
                doc=doc or self._leading_comment(outer),
                parent=parent,
                full=whole if small else None,
                has_body=has_body,
            )
        )


#: Reads one definition node: (extractor, node, outer, parent, kind from the registry).
DefinitionHandler = Callable[[Extractor, Node, Node, str, str], None]


# -- handlers shared by several languages ----------------------------------------


def _named(ex: Extractor, node: Node, outer: Node, parent: str, kind: str, doc: str) -> None:
    body = node.child_by_field_name("body")
    name = ex.text(node.child_by_field_name("name"))
    if kind == FUNCTION and parent:
        kind = METHOD
    ex.add(name, kind, node, outer, parent=parent, body=body, doc=doc)
    ex.members(node, body, name)


def named(ex: Extractor, node: Node, outer: Node, parent: str, kind: str) -> None:
    """The usual shape: ``name`` and ``body`` fields; a function inside a type is a method."""
    _named(ex, node, outer, parent, kind, "")


def c_tagged(ex: Extractor, node: Node, outer: Node, parent: str, kind: str) -> None:
    """``struct S {...}`` defines S; ``struct S`` without a body only uses it."""
    body = node.child_by_field_name("body")
    name = ex.text(node.child_by_field_name("name"))
    if body is None or not name:
        return
    ex.add(name, kind, node, outer, parent=parent, body=body)
    ex.members(node, body, name)


def _c_declarator_name(ex: Extractor, declarator: Node | None) -> tuple[str, str, bool]:
    """(name, qualifier, is_function) of a possibly nested C declarator."""
    is_function = False
    while declarator is not None:
        kind = declarator.type
        if kind == "function_declarator":
            is_function = True
            declarator = declarator.child_by_field_name("declarator")
        elif kind in _C_DECLARATOR_WRAPPERS:
            inner = declarator.child_by_field_name("declarator")
            if inner is None:
                inner = next((c for c in declarator.named_children if "declarator" in c.type), None)
            declarator = inner
        elif kind == "qualified_identifier":
            scope = ex.text(declarator.child_by_field_name("scope"))
            name, _, _ = _c_declarator_name(ex, declarator.child_by_field_name("name"))
            return name, scope.split("<", 1)[0], is_function
        elif kind in _C_NAMES:
            return ex.text(declarator), "", is_function
        else:
            return "", "", is_function
    return "", "", is_function


def c_function(ex: Extractor, node: Node, outer: Node, parent: str, kind: str) -> None:
    """Function definitions and prototypes; other declarations (variables) are skipped."""
    body = node.child_by_field_name("body")
    name, qualifier, is_function = _c_declarator_name(ex, node.child_by_field_name("declarator"))
    if not name or not is_function:
        return
    owner = parent or qualifier
    ex.add(name, METHOD if owner else FUNCTION, node, outer, parent=owner, body=body)


def c_typedef(ex: Extractor, node: Node, outer: Node, parent: str, kind: str) -> None:
    """A typedef is named by its last declarator; its kind is that of the aliased type."""
    declarators = node.children_by_field_name("declarator")
    if not declarators:
        return
    name, _, is_function = _c_declarator_name(ex, declarators[-1])
    if not name:
        return
    type_node = node.child_by_field_name("type")
    body = type_node.child_by_field_name("body") if type_node is not None else None
    kind = STRUCT if type_node is not None and type_node.type == "struct_specifier" else TYPE
    if type_node is not None and type_node.type == "enum_specifier":
        kind = ENUM
    ex.add(name, kind if not is_function else TYPE, node, outer, parent=parent, body=body)


# -- handlers of one language's node shapes -----------------------------------------


def _python_docstring(ex: Extractor, body: Node | None) -> str:
    if body is None or body.named_child_count == 0:
        return ""
    first = body.named_children[0]
    if first.type != "expression_statement" or first.named_child_count == 0:
        return ""
    string = first.named_children[0]
    if string.type != "string":
        return ""
    raw = ex.text(string).lstrip("rRbBuUfF")
    return clean_comment(raw.strip("\"'"))


def python_definition(ex: Extractor, node: Node, outer: Node, parent: str, kind: str) -> None:
    """Functions and classes, documented by their docstring."""
    doc = _python_docstring(ex, node.child_by_field_name("body"))
    _named(ex, node, outer, parent, kind, doc)


def python_constant(ex: Extractor, node: Node, outer: Node, parent: str, kind: str) -> None:
    """A module-level ``UPPER_CASE = ...``; other assignments are not definitions."""
    if parent or node.named_child_count == 0:
        return
    assignment = node.named_children[0]
    if assignment.type != "assignment":
        return
    left = assignment.child_by_field_name("left")
    if left is None or left.type != "identifier":
        return
    name = ex.text(left)
    if _UPPER_NAME.match(name):
        ex.add(name, CONSTANT, node, node, parent=parent, body=None)


def js_declaration(ex: Extractor, node: Node, outer: Node, parent: str, kind: str) -> None:
    """``const f = () => ...`` is a function, ``const C = class ...`` a class."""
    is_const = node.type == "lexical_declaration" and ex.text(node).startswith("const")
    for declarator in node.named_children:
        if declarator.type != "variable_declarator":
            continue
        name_node = declarator.child_by_field_name("name")
        if name_node is None or name_node.type != "identifier":
            continue
        name = ex.text(name_node)
        value = declarator.child_by_field_name("value")
        if value is not None and value.type == "call_expression":
            continue  # require() and factories: not a definition worth showing
        if value is not None and value.type in _JS_FUNCTION_VALUES:
            body = value.child_by_field_name("body")
            ex.add(name, FUNCTION, node, outer, parent=parent, body=body)
        elif value is not None and value.type == "class":
            body = value.child_by_field_name("body")
            ex.add(name, CLASS, node, outer, parent=parent, body=body)
        elif is_const and not parent:
            ex.add(name, CONSTANT, node, outer, parent=parent, body=None)


def java_constant(ex: Extractor, node: Node, outer: Node, parent: str, kind: str) -> None:
    """``static final`` fields only; other fields are state, not API."""
    modifiers = next((c for c in node.named_children if c.type == "modifiers"), None)
    words = ex.text(modifiers).split()
    if "static" not in words or "final" not in words:
        return
    for declarator in node.children_by_field_name("declarator"):
        name = ex.text(declarator.child_by_field_name("name"))
        ex.add(name, CONSTANT, node, outer, parent=parent, body=None)


def php_constants(ex: Extractor, node: Node, outer: Node, parent: str, kind: str) -> None:
    """``const A = 1, B = 2;`` defines each name."""
    for element in node.named_children:
        if element.type == "const_element" and element.named_child_count:
            name = ex.text(element.named_children[0])
            ex.add(name, CONSTANT, node, outer, parent=parent, body=None)


def rust_impl(ex: Extractor, node: Node, outer: Node, parent: str, kind: str) -> None:
    """An impl block is not recorded: its methods belong to the type it implements."""
    owner = ex.text(node.child_by_field_name("type")).split("<", 1)[0]
    body = node.child_by_field_name("body")
    if body is not None:
        ex.walk(body, owner)


def go_function(ex: Extractor, node: Node, outer: Node, parent: str, kind: str) -> None:
    name = ex.text(node.child_by_field_name("name"))
    body = node.child_by_field_name("body")
    ex.add(name, FUNCTION, node, outer, parent=parent, body=body)


def go_method(ex: Extractor, node: Node, outer: Node, parent: str, kind: str) -> None:
    """A method belongs to its receiver's type (pointer and type parameters dropped)."""
    receiver = node.child_by_field_name("receiver")
    owner = ""
    if receiver is not None:
        for param in receiver.named_children:
            type_text = ex.text(param.child_by_field_name("type"))
            owner = type_text.lstrip("*").split("[", 1)[0]
    name = ex.text(node.child_by_field_name("name"))
    ex.add(name, METHOD, node, outer, parent=owner, body=node.child_by_field_name("body"))


def go_type(ex: Extractor, node: Node, outer: Node, parent: str, kind: str) -> None:
    """Each spec of ``type ( A ...; B ... )`` is its own definition, struct or interface."""
    specs = [c for c in node.named_children if c.type in ("type_spec", "type_alias")]
    for type_spec in specs:
        holder = node if len(specs) == 1 else type_spec
        type_node = type_spec.child_by_field_name("type")
        type_kind = TYPE
        inner_body: Node | None = None
        if type_node is not None and type_node.type == "struct_type":
            type_kind = STRUCT
            inner_body = next(
                (c for c in type_node.named_children if c.type == "field_declaration_list"),
                None,
            )
        elif type_node is not None and type_node.type == "interface_type":
            type_kind = INTERFACE
        name = ex.text(type_spec.child_by_field_name("name"))
        holder_outer = outer if holder is node else holder
        ex.add(name, type_kind, holder, holder_outer, parent=parent, body=inner_body)


def go_const(ex: Extractor, node: Node, outer: Node, parent: str, kind: str) -> None:
    """Every name of a top-level ``const`` block."""
    if parent:
        return
    for const_spec in node.named_children:
        if const_spec.type != "const_spec":
            continue
        for name_node in const_spec.children_by_field_name("name"):
            ex.add(ex.text(name_node), kind, node, outer, parent=parent, body=None)

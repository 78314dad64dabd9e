"""One parse per file, kept as plain records: definitions' headers and raw imports.

Trees are dropped as soon as a file is read.  Keeping only headers (and the
whole text of small definitions) is what lets a 10,000-file workspace fit in a
few hundred megabytes and lets a one-file update take milliseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from tree_sitter import Node, QueryCursor

from .languages import (
    CLASS,
    CONSTANT,
    ENUM,
    FUNCTION,
    INTERFACE,
    METHOD,
    STRUCT,
    TYPE,
    LanguageSpec,
    import_query,
    new_parser,
    spec_for,
)

#: Definitions at most this many lines long are kept whole.
SMALL_LINES = 12
_SMALL_CHARS = 1200
#: A header longer than this (a body-less type alias, a long prototype) is cut.
_HEADER_LINES = 12

_COMMENT_MARKERS = re.compile(r"^\s*(?:/\*+!?|\*+/|\*+|//[/!]?|#+|--)\s?")
_XML_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_UPPER_NAME = re.compile(r"^_*[A-Z][A-Z0-9_]*$")
_RUST_ALIAS = re.compile(r"\s+as\s+\w+")
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


@dataclass(frozen=True, slots=True)
class ParsedFile:
    definitions: tuple[Definition, ...]
    imports: tuple[ImportSpec, ...]
    #: Package or namespace the file declares (Java, Go, C#, PHP), else "".
    package: str


def _text(source: bytes, node: Node | None) -> str:
    if node is None:
        return ""
    return source[node.start_byte : node.end_byte].decode("utf-8", errors="replace")


def _strip_quotes(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] in "\"'`<" and text[-1] in "\"'`>":
        return text[1:-1]
    return text


def clean_comment(text: str) -> str:
    """First meaningful line of a comment or docstring, without its markers."""
    for raw in text.splitlines():
        line = _COMMENT_MARKERS.sub("", raw)
        line = _XML_TAG.sub("", line.replace("*/", "")).strip()
        if line and line.strip("*/#-= ") != "":
            return line
    return ""


def _python_docstring(source: bytes, body: Node | None) -> str:
    if body is None or body.named_child_count == 0:
        return ""
    first = body.named_children[0]
    if first.type != "expression_statement" or first.named_child_count == 0:
        return ""
    string = first.named_children[0]
    if string.type != "string":
        return ""
    raw = _text(source, string).lstrip("rRbBuUfF")
    return clean_comment(raw.strip("\"'"))


class _Extractor:
    """Walks the top level and container bodies only; function bodies are skipped."""

    def __init__(self, spec: LanguageSpec, source: bytes, path: str) -> None:
        self.spec = spec
        self.source = source
        self.path = path
        self.defs: list[Definition] = []

    # -- the walk ---------------------------------------------------------

    def walk(self, node: Node, parent: str) -> None:
        for child in node.named_children:
            self.visit(child, child, parent)

    def visit(self, node: Node, outer: Node, parent: str) -> None:
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
            self.definition(node, outer, parent, kind)

    def definition(self, node: Node, outer: Node, parent: str, kind: str) -> None:
        lang = self.spec.name
        node_type = node.type
        body = node.child_by_field_name("body")
        if lang == "python":
            if node_type == "expression_statement":
                self._python_constant(node, parent)
                return
            name = _text(self.source, node.child_by_field_name("name"))
            if kind == FUNCTION and parent:
                kind = METHOD
            doc = _python_docstring(self.source, body)
            self.add(name, kind, node, outer, parent=parent, body=body, doc=doc)
        elif node_type in ("lexical_declaration", "variable_declaration"):
            self._js_declaration(node, outer, parent)
            return
        elif lang in ("c", "cpp") and node_type in (
            "function_definition",
            "declaration",
            "field_declaration",
        ):
            self._c_function(node, outer, parent, body)
            return
        elif node_type == "type_definition":
            self._c_typedef(node, outer, parent)
            return
        elif node_type in ("struct_specifier", "union_specifier", "enum_specifier"):
            name = _text(self.source, node.child_by_field_name("name"))
            if body is None or not name:
                return  # a use of the type, not its definition
            self.add(name, kind, node, outer, parent=parent, body=body)
        elif node_type == "field_declaration" and lang == "java":
            self._java_constant(node, outer, parent)
            return
        elif lang == "go":
            self._go(node, outer, parent, kind, body)
            return
        elif node_type == "impl_item":
            type_node = node.child_by_field_name("type")
            owner = _text(self.source, type_node).split("<", 1)[0]
            if body is not None:
                self.walk(body, owner)
            return
        elif node_type == "const_declaration" and lang == "php":
            for element in node.named_children:
                if element.type == "const_element" and element.named_child_count:
                    name = _text(self.source, element.named_children[0])
                    self.add(name, CONSTANT, node, outer, parent=parent, body=None)
            return
        else:
            name_node = node.child_by_field_name("name")
            name = _text(self.source, name_node)
            if kind == FUNCTION and parent:
                kind = METHOD
            self.add(name, kind, node, outer, parent=parent, body=body)
        if node_type in self.spec.containers and body is not None and name:
            self.walk(body, name)

    # -- language details -------------------------------------------------

    def _python_constant(self, node: Node, parent: str) -> None:
        if parent or node.named_child_count == 0:
            return
        assignment = node.named_children[0]
        if assignment.type != "assignment":
            return
        left = assignment.child_by_field_name("left")
        if left is None or left.type != "identifier":
            return
        name = _text(self.source, left)
        if _UPPER_NAME.match(name):
            self.add(name, CONSTANT, node, node, parent=parent, body=None)

    def _js_declaration(self, node: Node, outer: Node, parent: str) -> None:
        is_const = node.type == "lexical_declaration" and _text(self.source, node).startswith(
            "const"
        )
        for declarator in node.named_children:
            if declarator.type != "variable_declarator":
                continue
            name_node = declarator.child_by_field_name("name")
            if name_node is None or name_node.type != "identifier":
                continue
            name = _text(self.source, name_node)
            value = declarator.child_by_field_name("value")
            if value is not None and value.type == "call_expression":
                continue  # require() and factories: not a definition worth showing
            if value is not None and value.type in _JS_FUNCTION_VALUES:
                self.add(
                    name,
                    FUNCTION,
                    node,
                    outer,
                    parent=parent,
                    body=value.child_by_field_name("body"),
                )
            elif value is not None and value.type == "class":
                self.add(
                    name, CLASS, node, outer, parent=parent, body=value.child_by_field_name("body")
                )
            elif is_const and not parent:
                self.add(name, CONSTANT, node, outer, parent=parent, body=None)

    def _c_declarator_name(self, declarator: Node | None) -> tuple[str, str, bool]:
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
                    inner = next(
                        (c for c in declarator.named_children if "declarator" in c.type), None
                    )
                declarator = inner
            elif kind == "qualified_identifier":
                scope = _text(self.source, declarator.child_by_field_name("scope"))
                name_node = declarator.child_by_field_name("name")
                name, _, _ = self._c_declarator_name(name_node)
                return name, scope.split("<", 1)[0], is_function
            elif kind in (
                "identifier",
                "field_identifier",
                "type_identifier",
                "destructor_name",
                "operator_name",
            ):
                return _text(self.source, declarator), "", is_function
            else:
                return "", "", is_function
        return "", "", is_function

    def _c_function(self, node: Node, outer: Node, parent: str, body: Node | None) -> None:
        name, qualifier, is_function = self._c_declarator_name(
            node.child_by_field_name("declarator")
        )
        if not name or not is_function:
            return
        owner = parent or qualifier
        self.add(name, METHOD if owner else FUNCTION, node, outer, parent=owner, body=body)

    def _c_typedef(self, node: Node, outer: Node, parent: str) -> None:
        declarators = node.children_by_field_name("declarator")
        if not declarators:
            return
        name, _, is_function = self._c_declarator_name(declarators[-1])
        if not name:
            return
        type_node = node.child_by_field_name("type")
        body = type_node.child_by_field_name("body") if type_node is not None else None
        kind = STRUCT if type_node is not None and type_node.type == "struct_specifier" else TYPE
        if type_node is not None and type_node.type == "enum_specifier":
            kind = ENUM
        self.add(name, kind if not is_function else TYPE, node, outer, parent=parent, body=body)

    def _java_constant(self, node: Node, outer: Node, parent: str) -> None:
        modifiers = next((c for c in node.named_children if c.type == "modifiers"), None)
        words = _text(self.source, modifiers).split()
        if "static" not in words or "final" not in words:
            return
        for declarator in node.children_by_field_name("declarator"):
            name = _text(self.source, declarator.child_by_field_name("name"))
            self.add(name, CONSTANT, node, outer, parent=parent, body=None)

    def _go(self, node: Node, outer: Node, parent: str, kind: str, body: Node | None) -> None:
        node_type = node.type
        if node_type == "function_declaration":
            name = _text(self.source, node.child_by_field_name("name"))
            self.add(name, FUNCTION, node, outer, parent=parent, body=body)
        elif node_type == "method_declaration":
            receiver = node.child_by_field_name("receiver")
            owner = ""
            if receiver is not None:
                for param in receiver.named_children:
                    type_text = _text(self.source, param.child_by_field_name("type"))
                    owner = type_text.lstrip("*").split("[", 1)[0]
            name = _text(self.source, node.child_by_field_name("name"))
            self.add(name, METHOD, node, outer, parent=owner, body=body)
        elif node_type == "type_declaration":
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
                name = _text(self.source, type_spec.child_by_field_name("name"))
                holder_outer = outer if holder is node else holder
                self.add(name, type_kind, holder, holder_outer, parent=parent, body=inner_body)
        elif node_type == "const_declaration" and not parent:
            for const_spec in node.named_children:
                if const_spec.type != "const_spec":
                    continue
                for name_node in const_spec.children_by_field_name("name"):
                    self.add(
                        _text(self.source, name_node), kind, node, outer, parent=parent, body=None
                    )

    # -- records ----------------------------------------------------------

    def _leading_comment(self, outer: Node) -> str:
        comment_types = self.spec.comment_types
        comments: list[str] = []
        row = outer.start_point.row
        prev = outer.prev_named_sibling
        while prev is not None:
            if prev.type in ("attribute_item", "attribute_list", "annotation"):
                row = prev.start_point.row
            elif prev.type in comment_types and prev.end_point.row >= row - 1:
                comments.append(_text(self.source, prev))
                row = prev.start_point.row
            else:
                break
            prev = prev.prev_named_sibling
        return clean_comment("\n".join(reversed(comments)))

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
        if body is not None and body.start_byte > start:
            header = source[line_start : body.start_byte].decode("utf-8", errors="replace")
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
        if not doc:
            doc = self._leading_comment(outer)
        self.defs.append(
            Definition(
                name=name,
                kind=kind,
                path=self.path,
                language=self.spec.name,
                start_line=start_line,
                end_line=end_line,
                header=header,
                doc=doc,
                parent=parent,
                full=whole if small else None,
                has_body=body is not None,
            )
        )


# -- imports -----------------------------------------------------------------


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


def _imports(spec: LanguageSpec, source: bytes, root: Node) -> tuple[list[ImportSpec], str]:
    query = import_query(spec.name)
    if query is None:
        return [], ""
    captures = QueryCursor(query).captures(root)
    package = ""
    namespaces = captures.get("namespace", [])
    if namespaces:
        package = _text(source, min(namespaces, key=lambda n: n.start_byte)).strip()
    found: list[ImportSpec] = []
    for node in sorted(captures.get("import", []), key=lambda n: n.start_byte):
        before = len(found)
        package = _one_import(spec.name, source, node, found) or package
        for position in range(before, len(found)):
            found[position] = replace(
                found[position], line=node.start_point.row, end_line=node.end_point.row
            )
    return found, package


def _one_import(lang: str, source: bytes, node: Node, out: list[ImportSpec]) -> str:
    """Append the imports of one statement; return a package name it declares."""
    kind = node.type
    if lang == "python":
        if kind == "import_statement":
            for name in node.children_by_field_name("name"):
                aliased = name.type == "aliased_import"
                target = name.child_by_field_name("name") if aliased else name
                module = _text(source, target)
                bound = _text(source, name.child_by_field_name("alias")) if aliased else ""
                out.append(ImportSpec(module, (bound or module.rsplit(".", 1)[-1],), "module"))
        else:
            module = _text(source, node.child_by_field_name("module_name"))
            names: list[str] = []
            for name in node.children_by_field_name("name"):
                target = name.child_by_field_name("name") if name.type == "aliased_import" else name
                names.append(_text(source, target))
            if any(c.type == "wildcard_import" for c in node.named_children):
                names.append("*")
            out.append(ImportSpec(module, tuple(names), "from"))
    elif lang in ("javascript", "typescript", "tsx"):
        if kind == "call_expression":
            function = _text(source, node.child_by_field_name("function"))
            arguments = node.child_by_field_name("arguments")
            if function in ("require", "import") and arguments is not None:
                first = arguments.named_children[0] if arguments.named_child_count else None
                if first is not None and first.type == "string":
                    out.append(ImportSpec(_strip_quotes(_text(source, first)), (), "require"))
            return ""
        source_node = node.child_by_field_name("source")
        if source_node is None:
            return ""
        names = []
        for child in node.named_children:
            if child.type in ("import_clause", "export_clause"):
                stack = [child]
                while stack:
                    current = stack.pop()
                    if current.type in ("import_specifier", "export_specifier"):
                        names.append(_text(source, current.child_by_field_name("name")))
                    elif current.type == "identifier":
                        names.append(_text(source, current))
                    else:
                        stack.extend(current.named_children)
        out.append(ImportSpec(_strip_quotes(_text(source, source_node)), tuple(names), "import"))
    elif lang == "go":
        if kind == "package_clause":
            return _text(source, node.named_children[0]) if node.named_child_count else ""
        path = _strip_quotes(_text(source, node.child_by_field_name("path")))
        alias = _text(source, node.child_by_field_name("name"))
        out.append(ImportSpec(path, (alias or path.rsplit("/", 1)[-1],), "package"))
    elif lang == "java":
        if kind == "package_declaration":
            return _text(source, node.named_children[0]) if node.named_child_count else ""
        words = _text(source, node).split()
        named = [c for c in node.named_children if c.type in ("scoped_identifier", "identifier")]
        if not named:
            return ""
        path = _text(source, named[0])
        if any(c.type == "asterisk" for c in node.named_children):
            path += ".*"
        is_static = len(words) > 1 and words[1] == "static"
        out.append(
            ImportSpec(path, (path.rsplit(".", 1)[-1],), "static" if is_static else "import")
        )
    elif lang in ("c", "cpp"):
        path_node = node.child_by_field_name("path")
        if path_node is not None:
            system = path_node.type == "system_lib_string"
            path = _strip_quotes(_text(source, path_node))
            out.append(ImportSpec(path, (), "system" if system else "include"))
    elif lang == "csharp":
        match = re.match(
            r"(?:global\s+)?using\s+(?:static\s+)?(?:\w+\s*=\s*)?([\w.]+)", _text(source, node)
        )
        if match:
            out.append(ImportSpec(match.group(1), (), "using"))
    elif lang == "php":
        if kind == "namespace_use_declaration":
            is_function = any(
                c.type in ("function", "const") for c in node.children if not c.is_named
            )
            for clause in node.named_children:
                if clause.type != "namespace_use_clause":
                    continue
                target = next(
                    (c for c in clause.named_children if c.type in ("qualified_name", "name")),
                    None,
                )
                path = _text(source, target).lstrip("\\")
                kind_name = "use_function" if is_function else "use"
                out.append(ImportSpec(path, (path.rsplit("\\", 1)[-1],), kind_name))
        else:
            stack = [node]
            while stack:
                current = stack.pop()
                if current.type in ("string", "encapsed_string"):
                    out.append(ImportSpec(_strip_quotes(_text(source, current)), (), "include"))
                    break
                stack.extend(reversed(current.named_children))
    elif lang == "bash":
        command = _text(source, node.child_by_field_name("name"))
        operands = node.children_by_field_name("argument")
        if command in ("source", ".") and operands:
            out.append(ImportSpec(_strip_quotes(_text(source, operands[0])), (), "source"))
    elif lang == "rust":
        if kind == "mod_item":
            if node.child_by_field_name("body") is None:
                module = _text(source, node.child_by_field_name("name"))
                out.append(ImportSpec(module, (module,), "mod"))
            return ""
        for path in expand_rust_use(_text(source, node.child_by_field_name("argument"))):
            out.append(ImportSpec(path, (path.rsplit("::", 1)[-1],), "use"))
    return ""


def parse_source(language: str, path: str, source: bytes) -> ParsedFile:
    """Definitions and imports of one file; the syntax tree is not kept."""
    spec = spec_for(language)
    tree = new_parser(language).parse(source)
    root = tree.root_node
    extractor = _Extractor(spec, source, path)
    extractor.walk(root, "")
    imports, package = _imports(spec, source, root)
    return ParsedFile(tuple(extractor.defs), tuple(imports), package)

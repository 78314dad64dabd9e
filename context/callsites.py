"""Cross-file call sites of a repository, as evaluation cases for the prompt builder.

``codellama-lsp eval`` asks one question of the user's own code: when the cursor
sits just after the ``(`` of a call to a function defined in another file, does
the prompt show that function's definition?  This module finds such calls with
tree-sitter (the callee is the last identifier of a plain name, a member or
selector access, a scoped path or a constructor), keeps those whose name the
repository index defines in exactly one other file, samples them
deterministically, and cuts the text as it was when the call was being typed.
It also reads a definition's parameters, so a generated call can be checked
against them.  Pure: strings, bytes and the index in; plain records out.
"""

from __future__ import annotations

import posixpath
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from tree_sitter import Node, Query, QueryCursor

from .definitions import CONSTANT, TYPE_KINDS, Definition
from .imports import ImportSpec
from .index import RepositoryIndex
from .languages import grammar, new_parser, spec_for
from .tokens import IDENTIFIER
from .workspace import read_source

#: Call node type -> (field holding the callee, field holding the argument list).
CallForms = Mapping[str, tuple[str, str]]

_CALL = ("function", "arguments")
_JS_CALLS: CallForms = MappingProxyType(
    {"call_expression": _CALL, "new_expression": ("constructor", "arguments")}
)
#: The call syntax of each language whose cases ``eval`` samples.
CALL_FORMS: Mapping[str, CallForms] = MappingProxyType(
    {
        "python": MappingProxyType({"call": _CALL}),
        "javascript": _JS_CALLS,
        "typescript": _JS_CALLS,
        "tsx": _JS_CALLS,
        "go": MappingProxyType({"call_expression": _CALL}),
        "rust": MappingProxyType({"call_expression": _CALL}),
        "java": MappingProxyType(
            {
                "method_invocation": ("name", "arguments"),
                "object_creation_expression": ("type", "arguments"),
            }
        ),
        "c": MappingProxyType({"call_expression": _CALL}),
        "cpp": MappingProxyType(
            {"call_expression": _CALL, "new_expression": ("type", "arguments")}
        ),
    }
)
#: Node types that are the callee's name itself.
_NAME_TYPES = frozenset(
    {"identifier", "property_identifier", "field_identifier", "type_identifier"}
)
#: Accesses, paths and generic instantiations, by the field holding their last segment
#: (``a.b``, ``a::b``, ``a->b``, ``f::<T>``, ``f<T>``).
_SEGMENTS: Mapping[str, str] = MappingProxyType(
    {
        "attribute": "attribute",
        "member_expression": "property",
        "selector_expression": "field",
        "field_expression": "field",
        "scoped_identifier": "name",
        "qualified_identifier": "name",
        "template_function": "name",
        "template_method": "name",
        "generic_function": "function",
    }
)
_CONSTRUCTORS = frozenset({"new_expression", "object_creation_expression"})

#: Path segments and name parts of third-party, generated or built code.
_VENDORED_DIRS = frozenset({"vendor", "third_party", "node_modules", "dist"})
_GENERATED_NAMES = re.compile(r"(?:\.min\.js|_pb2(?:_grpc)?\.pyi?|\.pb\.go)$|_generated")
_GENERATED_MARKERS = ("code generated", "do not edit", "@generated")
#: Lines at the top of a file where generators leave their mark.
_MARKER_LINES = 10

#: Languages where a bare call may reach a member inherited from another file.
_BARE_MEMBER_CALLS = frozenset({"java", "cpp"})


@dataclass(frozen=True, slots=True)
class Call:
    """One call in a file: ``name`` after ``receiver`` (the segment before it, or "")."""

    name: str
    receiver: str
    #: 0-based line of the ``(``.
    line: int
    #: Character offset just after the ``(`` in the file's text.
    offset: int
    constructor: bool


@dataclass(frozen=True, slots=True)
class Case:
    """A call to cut at, with the definition that should reach the prompt.

    ``alternatives`` are the name's other definitions in the same file: which
    one a call means takes types to know, so any of them counts as a hit.
    """

    path: str
    language: str
    call: Call
    definition: Definition
    #: The definition's line as :func:`definition_line` writes it.
    definition_line: str
    #: The other definitions of the same name in that file (overloads, impls).
    alternatives: tuple[Definition, ...] = ()

    def wanted_lines(self) -> tuple[str, ...]:
        """The definition lines any of which in a prompt makes a hit, the chosen one first."""
        lines = [self.definition_line, *(definition_line(d) for d in self.alternatives)]
        return tuple(dict.fromkeys(lines))


# -- files that are not the user's ---------------------------------------------------


def vendored_or_generated_path(rel: str) -> bool:
    """Third-party trees and generator outputs, by their path alone."""
    parts = rel.split("/")
    if any(part in _VENDORED_DIRS for part in parts[:-1]):
        return True
    return _GENERATED_NAMES.search(parts[-1].lower()) is not None


def generated_text(text: str) -> bool:
    """Whether the file's first lines carry a generator's "do not edit" mark."""
    head = "\n".join(text.split("\n", _MARKER_LINES)[:_MARKER_LINES]).lower()
    return any(marker in head for marker in _GENERATED_MARKERS)


# -- calls in one file -------------------------------------------------------------


def _query(language: str) -> Query:
    forms = CALL_FORMS[language]
    return Query(grammar(language), " ".join(f"({kind}) @call" for kind in forms))


_QUERIES: dict[str, Query] = {}


def _callee_name(node: Node) -> Node | None:
    """The identifier that names what is called: the last segment of a path or access."""
    for _ in range(16):
        if node.type in _NAME_TYPES:
            return node
        field = _SEGMENTS.get(node.type)
        inner = node.child_by_field_name(field) if field is not None else None
        if node.type == "generic_type" and node.named_child_count:
            inner = node.named_children[0]  # Java ``new List<T>(``
        elif node.type == "scoped_type_identifier" and node.named_child_count:
            inner = node.named_children[-1]  # Java ``new a.B(``
        if inner is None:
            return None
        node = inner
    return None


def find_calls(language: str, source: bytes, skip_lines: Iterable[int] = ()) -> list[Call]:
    """The calls of one file whose callee is named, in text order.

    ``skip_lines`` are 0-based lines not to report calls on (import lines).
    Calls through an expression (``f()(``, ``a[i](``), macros and tagged
    templates have no name to look up and are left out.
    """
    forms = CALL_FORMS.get(language)
    if forms is None:
        return []
    query = _QUERIES.get(language)
    if query is None:
        query = _QUERIES[language] = _query(language)
    tree = new_parser(language).parse(source)
    skipped = set(skip_lines)
    nodes = QueryCursor(query).captures(tree.root_node).get("call", [])
    line_starts = _line_starts(source)
    calls: list[Call] = []
    for node in sorted(nodes, key=lambda n: n.start_byte):
        callee_field, args_field = forms[node.type]
        callee = node.child_by_field_name(callee_field)
        args = node.child_by_field_name(args_field)
        if callee is None or args is None or source[args.start_byte : args.start_byte + 1] != b"(":
            continue
        row = args.start_point.row
        if row in skipped:
            continue
        name_node = _callee_name(callee)
        if name_node is None:
            continue
        name = source[name_node.start_byte : name_node.end_byte].decode("utf-8", "replace")
        before = source[callee.start_byte : name_node.start_byte].decode("utf-8", "replace")
        obj = node.child_by_field_name("object")  # Java: the object is beside the name
        if obj is not None and callee_field == "name":
            before = source[obj.start_byte : obj.end_byte].decode("utf-8", "replace")
        receivers = IDENTIFIER.findall(before)
        line_start_byte = line_starts[row]
        column = len(source[line_start_byte : args.start_byte + 1].decode("utf-8", "replace"))
        calls.append(
            Call(
                name=name,
                receiver=receivers[-1] if receivers else "",
                line=row,
                offset=column,  # made absolute below, once per file
                constructor=node.type in _CONSTRUCTORS,
            )
        )
    return _absolute(source, calls)


def _line_starts(source: bytes) -> list[int]:
    starts = [0]
    position = source.find(b"\n")
    while position >= 0:
        starts.append(position + 1)
        position = source.find(b"\n", position + 1)
    return starts


def _absolute(source: bytes, calls: list[Call]) -> list[Call]:
    """Turn (line, column in characters) into character offsets of the decoded text."""
    if not calls:
        return calls
    text = source.decode("utf-8", "replace")
    line_offsets = [0]
    position = text.find("\n")
    while position >= 0:
        line_offsets.append(position + 1)
        position = text.find("\n", position + 1)
    return [
        Call(c.name, c.receiver, c.line, line_offsets[c.line] + c.offset, c.constructor)
        for c in calls
    ]


def cut_at_call(text: str, offset: int) -> str:
    """The text as it was just after the ``(`` was typed: the rest of that line removed.

    The following lines are kept, as they are when a call is written into existing code.
    """
    end = text.find("\n", offset)
    return text[:offset] + (text[end:] if end >= 0 else "")


# -- definitions -------------------------------------------------------------------


def _naming_line(definition: Definition) -> tuple[int, str]:
    """(row within the header, stripped text) of the first header line that names it."""
    word = re.compile(rf"(?<![\w$]){re.escape(definition.name)}(?![\w$])")
    lines = [line.strip() for line in definition.header.split("\n")]
    for row, line in enumerate(lines):
        if word.search(line):
            return row, line
    return next(((row, line) for row, line in enumerate(lines) if line), (0, definition.name))


def definition_line(definition: Definition) -> str:
    """The definition's first header line that names it, stripped.

    Decorators, attributes and annotations above the name are skipped, since
    ``@property`` or ``#[inline]`` would be found in any prompt.
    """
    return _naming_line(definition)[1]


def definition_row(definition: Definition) -> int:
    """The 0-based line of the file that :func:`definition_line` is."""
    return definition.start_line + _naming_line(definition)[0]


_SPEC_SEGMENT = re.compile(r"[^./:\\\s<>\"'@]+")


def workspace_names(index: RepositoryIndex) -> frozenset[str]:
    """Every file stem and directory name of the workspace: what an import could name."""
    names: set[str] = set()
    for rel in index.files():
        parts = rel.split("/")
        names.update(parts[:-1])
        names.add(parts[-1].split(".", 1)[0])
    return frozenset(names)


def external_names(imports: Iterable[ImportSpec], known: frozenset[str]) -> set[str]:
    """Names bound by imports that name nothing of the workspace (``import sys``).

    A call on one (``sys.exit(``) is not a call into the repository, whatever
    the index defines under the same name.
    """
    found: set[str] = set()
    for spec in imports:
        if not any(segment in known for segment in _SPEC_SEGMENT.findall(spec.spec)):
            found.update(spec.names)
    return found


def _family(language: str) -> str:
    return spec_for(language).family


def callee_definitions(
    index: RepositoryIndex,
    rel: str,
    language: str,
    name: str,
    skip: Callable[[str], bool] = vendored_or_generated_path,
) -> list[Definition] | None:
    """The definitions of ``name`` when the family defines it in exactly one other file.

    Files ``skip`` says are not the user's (vendored, generated, build output)
    do not count: a ``dist/`` copy does not make a name ambiguous.  Generated
    code in the call's own directory does (Go's generated ``require.go`` is
    what its package calls).  A prototype without a body (a C header) is the
    same callee as the body that implements it, so only the body's file counts
    when there is one (C and C++ only: elsewhere a body-less definition is the
    API itself, an abstract method or a typed constant).
    """
    family = _family(language)
    here = posixpath.dirname(rel)
    found = [
        d
        for d in index.definitions(name)
        if _family(d.language) == family
        and (d.path == rel or not skip(d.path) or posixpath.dirname(d.path) == here)
    ]
    if rel in {d.path for d in found}:
        return None
    bodies = [d for d in found if d.has_body]
    if family == "c" and bodies and {d.path for d in bodies} != {d.path for d in found}:
        found = bodies  # elsewhere a body-less definition is the API itself (abstract, a const)
    files = {d.path for d in found}
    if len(files) != 1:
        return None
    return found


def pick_definition(found: Sequence[Definition], call: Call) -> Definition:
    """The definition the call most likely means.

    The receiver's member (``Type::new``), then a top-level callable (``pkg.F``,
    ``module.f``), then any callable.  Without types this is a guess, which is
    why a hit accepts any definition of the name in that file.
    """
    for definition in found:
        if call.receiver and definition.parent == call.receiver:
            return definition
    callables = [d for d in found if d.kind != CONSTANT]
    top = [d for d in callables if not d.parent]
    return (top or callables or list(found))[0]


def reachable(found: Sequence[Definition], call: Call, language: str) -> bool:
    """Whether the call can mean one of ``found``: a bare ``f(`` never calls a method,
    except in languages where it reaches inherited members (Java, C++)."""
    if call.receiver or language in _BARE_MEMBER_CALLS:
        return True
    return any(not d.parent for d in found)


# -- sampling ----------------------------------------------------------------------


@dataclass(frozen=True)
class SampleStats:
    """How much of the workspace sampling looked at, per language."""

    files: int
    scanned: int
    candidates: int


def sample_cases(
    index: RepositoryIndex,
    language: str,
    count: int,
    seed: int,
    *,
    texts: dict[str, str] | None = None,
) -> tuple[list[Case], SampleStats]:
    """Up to ``count`` cross-file calls of ``language``, spread over files, reproducibly.

    The sorted list of the language's files (vendored and generated ones left
    out) is shuffled with ``seed``; files are parsed in that order, each giving
    at most one call per callee (chosen with the same generator; calls on
    names imported from outside the workspace left out), until enough
    files have calls for every case to come from a different one.  Cases are
    then taken a round at a time: one from each file, then a second from each,
    and so on.  ``texts`` receives the text of every file parsed.
    """
    rng = random.Random(f"{seed}:{language}")
    files = [
        rel
        for rel in index.files()
        if (record := index.file(rel)) is not None
        and record.language == language
        and not vendored_or_generated_path(rel)
    ]
    order = list(files)
    rng.shuffle(order)
    per_file: list[list[Case]] = []
    scanned = candidates = 0
    generated: dict[str, bool] = {}
    known = workspace_names(index)
    for rel in order:
        if len(per_file) >= count:
            break
        found = _file_cases(index, rel, language, rng, generated, known, texts)
        scanned += 1
        candidates += len(found)
        if found:
            per_file.append(found)
    cases: list[Case] = []
    depth = 0
    while len(cases) < count and any(depth < len(f) for f in per_file):
        cases.extend(f[depth] for f in per_file if depth < len(f))
        depth += 1
    return cases[:count], SampleStats(len(files), scanned, candidates)


def _is_generated(
    index: RepositoryIndex, rel: str, cache: dict[str, bool], text: str | None = None
) -> bool:
    known = cache.get(rel)
    if known is not None:
        return known
    if text is None:
        data = read_source(index.root / rel, index.workspace.options.max_file_bytes)
        text = data.decode("utf-8", "replace") if data is not None else ""
    result = cache[rel] = generated_text(text)
    return result


def _file_cases(
    index: RepositoryIndex,
    rel: str,
    language: str,
    rng: random.Random,
    generated: dict[str, bool],
    known: frozenset[str],
    texts: dict[str, str] | None,
) -> list[Case]:
    """One case per callee of one file, in a seeded order."""
    record = index.file(rel)
    data = read_source(index.root / rel, index.workspace.options.max_file_bytes)
    if record is None or data is None:
        return []
    text = data.decode("utf-8")
    if _is_generated(index, rel, generated, text):
        return []
    import_lines = {line for spec in record.imports for line in range(spec.line, spec.end_line + 1)}
    external = external_names(record.imports, known)

    def skip(path: str) -> bool:
        return vendored_or_generated_path(path) or _is_generated(index, path, generated)

    calls: dict[str, list[Call]] = {}
    defined: dict[str, list[Definition] | None] = {}
    for call in find_calls(language, data, import_lines):
        if call.name in external or call.receiver in external:
            continue
        if call.name not in defined:
            defined[call.name] = callee_definitions(index, rel, language, call.name, skip)
        found = defined[call.name]
        if found is not None and reachable(found, call, language):
            calls.setdefault(call.name, []).append(call)
    cases: list[Case] = []
    for name in sorted(calls):
        found = defined[name]
        assert found is not None
        call = rng.choice(calls[name])
        definition = pick_definition(found, call)
        others = tuple(d for d in found if d is not definition)
        cases.append(Case(rel, language, call, definition, definition_line(definition), others))
    rng.shuffle(cases)
    if texts is not None:
        texts[rel] = text
    return cases


# -- parameters --------------------------------------------------------------------


@dataclass(frozen=True)
class Parameters:
    """What a callable accepts: its parameters' names (receiver left out)."""

    names: tuple[str, ...]
    required: int
    variadic: bool

    def accepts(self, count: int) -> bool:
        """Whether a call with ``count`` arguments has the callable's arity."""
        if count < self.required:
            return False
        return self.variadic or count <= len(self.names)


#: Languages that write the name before the type (``a: int``, ``a int``).
_NAME_FIRST = frozenset({"python", "javascript", "typescript", "tsx", "go", "rust"})
_RECEIVERS = frozenset({"self", "cls", "this"})
_OPEN = "([{<"
_CLOSE = ")]}>"
#: The constructor a class is called through, per family.
_INIT_NAMES = {"python": ("__init__",), "js": ("constructor",)}


def split_top_level(text: str) -> tuple[list[str], bool]:
    """``text`` after an ``(`` split at top-level commas up to its ``)``; and whether it closed.

    Strings are skipped; ``->`` and ``=>`` are not brackets.
    """
    pieces: list[str] = []
    depth = 0
    current: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            current.append(ch)
            if ch == "\\" and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'`":
            quote = ch
            current.append(ch)
        elif ch in _OPEN and not (ch == "<" and i + 1 < len(text) and text[i + 1] in "=<"):
            depth += 1
            current.append(ch)
        elif ch in _CLOSE and not (ch == ">" and i > 0 and text[i - 1] in "-="):
            if depth == 0:
                if ch == ")":
                    pieces.append("".join(current))
                    return pieces, True
            else:
                depth -= 1
            current.append(ch)
        elif ch == "," and depth == 0:
            pieces.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    pieces.append("".join(current))
    return pieces, False


def _parameter(piece: str, language: str) -> tuple[str, bool, bool] | None:
    """(name, optional, variadic) of one parameter as written; None when it takes none."""
    text = piece.strip()
    if not text or text in ("*", "/", "void"):
        return None
    variadic = text.startswith("*") or text.startswith("...") or "..." in text
    optional = False
    default = _top_level_equals(text)
    if default >= 0:
        text = text[:default].strip()
        optional = True
    if language in _NAME_FIRST:
        head = text.split(":", 1)[0]
        if "?" in head:
            optional = True
        words = IDENTIFIER.findall(head)
        words = [w for w in words if w not in ("mut", "ref", "public", "private", "readonly")]
        words = [w for w in words if w not in ("protected", "override")]
        name = words[0] if words else ""
        if not head.strip() or head.strip().startswith(("{", "[", "(")):
            name = ""
    else:
        words = IDENTIFIER.findall(re.sub(r"\[[^\]]*\]", "", text))
        name = words[-1] if words else ""
    return name, optional, variadic


def _top_level_equals(text: str) -> int:
    depth = 0
    for i, ch in enumerate(text):
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE and depth:
            depth -= 1
        elif (
            ch == "="
            and depth == 0
            and text[i + 1 : i + 2] not in ("=", ">")
            and (i == 0 or text[i - 1] not in "!<>=")
        ):
            return i
    return -1


def parameters(definition: Definition, siblings: Sequence[Definition] = ()) -> Parameters | None:
    """The parameters a call to ``definition`` passes, from its header; None when unknown.

    A class is called through its constructor (``__init__``, ``constructor``,
    a Java or C++ constructor) when the file defines one; the receiver
    (``self``, ``&self``, ``this: T``) is left out.
    """
    if definition.kind in TYPE_KINDS:
        return _constructor_parameters(definition, siblings)
    header = definition.header
    word = re.search(rf"(?<![\w$]){re.escape(definition.name)}(?![\w$])", header)
    start = header.find("(", word.end()) if word else -1
    if start < 0:
        return None
    pieces, _closed = split_top_level(header[start + 1 :])
    names: list[str] = []
    required = 0
    variadic = False
    for position, piece in enumerate(pieces):
        parsed = _parameter(piece, definition.language)
        if parsed is None:
            continue
        name, optional, rest = parsed
        if position == 0 and name in _RECEIVERS and definition.parent:
            continue  # self, cls, &self, this: T
        if position == 0 and name == "self" and definition.language == "rust":
            continue
        if rest:
            variadic = True
            continue
        names.append(name)
        if not optional:
            required = len(names)
    return Parameters(tuple(names), required, variadic)


def _constructor_parameters(
    definition: Definition, siblings: Sequence[Definition]
) -> Parameters | None:
    family = _family(definition.language)
    wanted = (*_INIT_NAMES.get(family, ()), definition.name)
    members = [s for s in siblings if s is not definition and s.parent == definition.name]
    for member in members:
        if member.name in wanted:
            return parameters(member)
    return None  # a default, generated (dataclass) or inherited constructor: unknown


def call_arguments(generated: str) -> list[str] | None:
    """The arguments of a generated call (text after its ``(``); None when it has none.

    The call must close on the generated text; ``f()`` gives ``[]``.
    """
    pieces, closed = split_top_level(generated)
    if not closed:
        return None
    if len(pieces) == 1 and not pieces[0].strip():
        return []
    return [p.strip() for p in pieces]


def names_a_parameter(arguments: Sequence[str], names: Iterable[str]) -> bool:
    """Whether the arguments mention (as identifiers) at least one parameter's name."""
    used = {token for argument in arguments for token in IDENTIFIER.findall(argument)}
    return any(name and name in used for name in names)

"""How a definition whose body is cut is written, in its own language's syntax.

The model reads context as code of the file's language, so an elided body must
still look like one: ``...`` under a Python header, ``{ ... }`` after a C one.
Each registry entry (:mod:`.languages`) names its :class:`Layout`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .definitions import INTERFACE, Definition

#: (definition, its members' compact lines, its indentation) -> header and body lines.
ElidedBody = Callable[[Definition, Sequence[str], str], list[str]]


@dataclass(frozen=True)
class Layout:
    #: What follows a header whose body is left out, on the same line.
    elision: str
    #: The header and body lines of a definition whose body is left out.
    elided: ElidedBody
    #: The doc line goes inside the body as a docstring instead of a comment above.
    docstring: bool = False
    #: Methods are defined outside their type's body (Go, Rust): members are
    #: listed by name, not by position inside the type.
    members_outside: bool = False


def _braces(definition: Definition, members: Sequence[str], indent: str) -> list[str]:
    if members:
        return [definition.header + " {", *members, f"{indent}}}"]
    return [definition.header + (" { ... }" if definition.has_body else "")]


def _indented(definition: Definition, members: Sequence[str], indent: str) -> list[str]:
    inner = indent + "    "
    header = definition.header
    if definition.doc:
        header += f'\n{inner}"""{definition.doc}"""'
    body = list(members) or ([f"{inner}..."] if definition.has_body else [])
    return [header, *body]


def _detached(definition: Definition, members: Sequence[str], indent: str) -> list[str]:
    return [definition.header + (" { ... }" if definition.has_body else ""), *members]


def _impl_block(definition: Definition, members: Sequence[str], indent: str) -> list[str]:
    """Rust: a type's methods are shown in an ``impl`` block (a trait's are its own)."""
    if not members or definition.kind == INTERFACE:
        return _detached(definition, members, indent)
    head = definition.header + (" { ... }" if definition.has_body else "")
    return [head, f"{indent}impl {definition.name} {{", *members, f"{indent}}}"]


def _shell(definition: Definition, members: Sequence[str], indent: str) -> list[str]:
    return [definition.header + " { ...; }"]


BRACES = Layout(" { ... }", _braces)
INDENTED = Layout(" ...", _indented, docstring=True)
DETACHED = Layout(" { ... }", _detached, members_outside=True)
IMPL_BLOCKS = Layout(" { ... }", _impl_block, members_outside=True)
SHELL = Layout(" { ...; }", _shell)

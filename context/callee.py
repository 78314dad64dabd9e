"""The call being written at the cursor, and what the file says about its receiver.

When the cursor is inside a call's argument list (``c.Flags(|``, ``new Parser(|``,
``Type::new(|``), the callee's signature is the single most useful thing a prompt
can show: without it the model invents parameters.  This module reads the call
from the text before the cursor and, for ``receiver.method(``, the receiver's type
from what the file itself states (annotations, declarations, constructor calls,
struct literals, factory functions); no type checker, no language server.
Retrieval (:mod:`.retrieval`) turns the result into definitions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

#: Words that take parentheses but call nothing.
KEYWORDS = frozenset(
    {
        "if", "for", "while", "switch", "return", "catch", "function", "def", "fn", "func",
        "sizeof", "typeof", "alignof", "elif", "with", "assert", "match", "when", "until",
        "foreach", "lambda", "print", "await", "yield", "not", "and", "or", "in", "is",
        "super", "defined", "decltype", "static_assert", "loop", "unless", "select",
    }
)  # fmt: skip

#: Receivers that mean "the enclosing class / impl".
SELF_NAMES = frozenset({"self", "this", "Self", "cls"})

_NAME = r"[A-Za-z_$][\w$]*"
#: ``[new] a.b::c->name<T>`` right before the ``(``.
_CALLEE = re.compile(
    rf"(?:(?<![\w$])(new)\s+)?((?:{_NAME}\s*(?:\?\.|\.|::|->)\s*)*)({_NAME})\s*(?:::)?(?:<[^<>()]*>)?\s*$"
)
_SEPARATOR = re.compile(r"\s*(?:\?\.|\.|::|->)\s*")
#: How many lines back the open parenthesis of the call may be.
CALL_LINES = 4
#: How far back receiver declarations are looked for.
RECEIVER_CHARS = 40_000


@dataclass(frozen=True)
class CallSite:
    """``qualifier`` is the path before the name ("c", "self.client", "crate::m"), or ""."""

    name: str
    qualifier: tuple[str, ...]
    constructor: bool

    @property
    def receiver(self) -> str:
        """The last segment of the qualifier: the variable or type the name is looked up on."""
        return self.qualifier[-1] if self.qualifier else ""


def _line_floor(text: str, offset: int, lines: int) -> int:
    position = offset
    for _ in range(lines):
        found = text.rfind("\n", 0, position)
        if found < 0:
            return 0
        position = found
    return position + 1 if position > 0 else 0


def call_at(text: str, offset: int) -> CallSite | None:
    """The innermost call whose argument list the cursor is in, if any.

    Parentheses inside string literals on these lines may confuse it; it then
    finds no call or an outer one, and retrieval falls back to names in use.
    """
    offset = max(0, min(offset, len(text)))
    floor = _line_floor(text, offset, CALL_LINES)
    depth = 0
    for i in range(offset - 1, floor - 1, -1):
        ch = text[i]
        if ch == ")":
            depth += 1
        elif ch == "(":
            if depth:
                depth -= 1
                continue
            line_start = text.rfind("\n", 0, i) + 1
            match = _CALLEE.search(text, line_start, i)
            if match is None:
                return None
            name = match.group(3)
            parts = tuple(p for p in _SEPARATOR.split(match.group(2)) if p)
            if name in KEYWORDS and not parts:
                return None  # `if (`; a member may be called that (`promise.catch(`)
            return CallSite(name, parts, match.group(1) == "new")
        elif ch in ";{}" and depth == 0:
            return None
    return None


def _patterns(variable: str) -> list[re.Pattern[str]]:
    v = re.escape(variable)
    own = r"(?<![\w$.])(?:(?:self|this)\.)?"
    return [
        # name: Type / name?: Type / name: &mut Type / name: pkg.Type  (Python, TS, Rust)
        re.compile(rf"{own}{v}\s*\??:\s*(?:&\s*(?:mut\s+)?|\*\s*)?(?:[\w$]+\.)*({_NAME})"),
        # name = [new|&]Type( / name := &Type{ / name = Type::new(  (any)
        re.compile(
            rf"{own}{v}\s*(?::[^=\n]{{0,80}})?(?::=|=)\s*(?:new\s+|&\s*)?(?:[\w$]+(?:\.|::))*?"
            rf"({_NAME})\s*(?:<[^<>\n]*>)?\s*(?:\(|\{{|::)"
        ),
        # Type name = / Type name; / (Type name, / Type *name  (Java, C, C++, C#)
        re.compile(rf"(?<![\w$.])({_NAME})\s*(?:<[^<>\n]*>)?\s*(?:\*+|&+)?\s+\**{v}\s*[=;,)]"),
        # name Type / name *Type / var name Type  (Go)
        re.compile(rf"(?<![\w$.]){v}\s+(?:\*|&)?(?:[\w]+\.)?({_NAME})\s*[,)=\n{{]"),
    ]


def receiver_type_names(text: str, offset: int, variable: str) -> list[str]:
    """Type (or factory function) names the file gives ``variable`` before the cursor.

    Latest first, since the nearest declaration is the one in scope; the caller
    keeps those the index knows as types.
    """
    if not variable or variable in SELF_NAMES:
        return []
    start = max(0, offset - RECEIVER_CHARS)
    window = text[start:offset]
    found: list[tuple[int, str]] = []
    for pattern in _patterns(variable):
        for match in pattern.finditer(window):
            name = match.group(1)
            if name not in KEYWORDS and name != variable:
                found.append((match.start(), name))
    found.sort(key=lambda item: -item[0])
    return list(dict.fromkeys(name for _, name in found))


_RETURN_ARROW = re.compile(rf"->\s*(?:&\s*(?:mut\s+)?|\*\s*)?['\"]?(?:[\w]+(?:\.|::))*({_NAME})")
_RETURN_AFTER = re.compile(rf"\)\s*:?\s*\(?\s*(?:\*|&)?\s*(?:[\w]+\.)*({_NAME})")


def return_type_name(header: str, name: str) -> str | None:
    """The type a function's header says it returns (``-> T``, ``) *T {``, ``T name(``)."""
    arrow = _RETURN_ARROW.search(header)
    if arrow:
        return arrow.group(1)
    close = header.rfind(")")
    if close >= 0:
        after = _RETURN_AFTER.match(header, close)
        if after and after.group(1) not in KEYWORDS:
            return after.group(1)
    before = re.search(rf"({_NAME})\s*(?:<[^<>]*>)?\s*[*&]*\s*{re.escape(name)}\s*\(", header)
    if before and before.group(1) not in {"def", "func", "fn", "function", "static", "public"}:
        return before.group(1)
    return None


def qualifier_roots(site: CallSite) -> Sequence[str]:
    """Module or package names the qualifier may start with (``pkg`` of ``pkg.sub.f``)."""
    return site.qualifier[:1]

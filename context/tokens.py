"""Identifier tokens, the common currency of name matching and snippet similarity."""

from __future__ import annotations

import re

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def identifiers(text: str) -> set[str]:
    return set(IDENTIFIER.findall(text))


def line_token_sets(text: str) -> tuple[frozenset[str], ...]:
    """Identifier set of every line (the unit of sliding-window similarity)."""
    return tuple(frozenset(IDENTIFIER.findall(line)) for line in text.split("\n"))


def jaccard(a: set[str] | frozenset[str], b: set[str] | frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    common = len(a & b)
    return common / (len(a) + len(b) - common)

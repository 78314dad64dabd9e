"""Credentials never reach a prompt: well-known secret formats are replaced by placeholders.

Source code holds keys more often than it should (a test fixture, a settings
module, a pasted token).  Whatever goes to a model — the local one, whose
prompts are logged and shown by ``codellama/lastPrompt``, or a shared server
that may log them — has these literals replaced by ``<redacted:KIND>``.  The
replacement is deterministic, so a prompt stays the same from one keystroke to
the next and keeps its KV cache.
"""

from __future__ import annotations

import re
from collections.abc import Callable

#: (kind, pattern); the secret is group ``secret`` when the pattern has one, else the match.
_PATTERNS: tuple[tuple[str, str], ...] = (
    (
        "private-key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"(?P<secret>[\s\S]*?)-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
    ),
    ("aws-access-key", r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])"),
    (
        "github-token",
        r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})"
        r"(?![A-Za-z0-9_])",
    ),
    ("api-key", r"(?<![A-Za-z0-9_-])sk-(?:[A-Za-z0-9]+-)*[A-Za-z0-9_-]{20,}(?![A-Za-z0-9_-])"),
    ("slack-token", r"(?<![A-Za-z0-9-])xox[abposr]-[A-Za-z0-9-]{10,}(?![A-Za-z0-9-])"),
    (
        "jwt",
        r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
        r"(?![A-Za-z0-9_-])",
    ),
    (
        "assignment",
        # password = "literal", "api_key": 'literal', SECRET_TOKEN := `literal`
        r"(?i)(?:pass(?:word|wd)?|pwd|secret|api[_-]?key|access[_-]?key|private[_-]?key|"
        r"auth[_-]?token|access[_-]?token|client[_-]?secret|token)[A-Za-z0-9_]*[\"']?"
        r"\s*(?::=|=>|[:=])\s*(?P<quote>[\"'`])(?P<secret>[^\"'`\s]{4,})(?P=quote)",
    ),
)
_COMPILED = tuple((kind, re.compile(pattern)) for kind, pattern in _PATTERNS)

#: Cheap pre-check: text without any of these cannot hold a secret of the formats above.
_HINTS = re.compile(
    r"PRIVATE KEY|AKIA|ASIA|ABIA|ACCA|gh[pousr]_|github_pat_|sk-|xox|eyJ|pass|pwd|secret|"
    r"key|token",
    re.IGNORECASE,
)


def placeholder(kind: str) -> str:
    return f"<redacted:{kind}>"


#: An assigned literal that is one plain word (``token = "INDENT"``) is code, not a secret.
_PLAIN_WORD = re.compile(r"[A-Za-z_]{1,15}")


def _replacer(kind: str) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        if "secret" not in match.re.groupindex:
            return placeholder(kind)
        if kind == "assignment" and _PLAIN_WORD.fullmatch(match.group("secret")):
            return match.group(0)
        start, end = match.span("secret")
        whole = match.group(0)
        offset = match.start()
        return whole[: start - offset] + placeholder(kind) + whole[end - offset :]

    return replace


def redact(text: str) -> str:
    """``text`` with every credential of a well-known format replaced by its placeholder."""
    if not text or _HINTS.search(text) is None:
        return text
    for kind, pattern in _COMPILED:
        text = pattern.sub(_replacer(kind), text)
    return text


__all__ = ["placeholder", "redact"]

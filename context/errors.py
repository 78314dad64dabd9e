"""Exceptions of the pure core; the protocol layer turns them into LSP errors."""

from __future__ import annotations


class CodeLlamaLspError(Exception):
    """Base of every error this project raises on purpose."""


class PositionOutOfRangeError(CodeLlamaLspError):
    """A position does not exist in the document."""


class InvalidEditError(CodeLlamaLspError):
    """A text edit does not fit the document it is applied to."""


class UnsupportedLanguageError(CodeLlamaLspError):
    """No tree-sitter grammar is installed for the requested language."""


class WorkspaceError(CodeLlamaLspError):
    """The workspace root cannot be indexed (missing, or not a directory)."""

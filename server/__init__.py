"""LSP protocol layer of codellama-lsp: converts between LSP and the pure core."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("codellama-lsp")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

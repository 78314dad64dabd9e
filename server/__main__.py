"""``python -m codellama_lsp.server``: the same as the ``codellama-lsp`` command."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())

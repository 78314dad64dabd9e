"""Registration of every LSP feature module on a server instance."""

from __future__ import annotations

from . import (
    completion,
    configuration,
    inline_completion,
    last_prompt,
    lifecycle,
    stats,
    text_sync,
)
from .app import CodeLlamaServer


def register_all(ls: CodeLlamaServer) -> None:
    for module in (
        lifecycle,
        text_sync,
        inline_completion,
        completion,
        configuration,
        last_prompt,
        stats,
    ):
        module.register(ls)

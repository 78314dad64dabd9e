"""``codellama/lastPrompt``: the exact prompt of the latest completion, for inspection.

Editors show it from a "show last prompt" command; the tests use it to check
what repository context reached the model.
"""

from __future__ import annotations

from typing import Any

from .app import CodeLlamaServer

METHOD = "codellama/lastPrompt"


def codellama_last_prompt(ls: CodeLlamaServer, params: Any) -> dict[str, Any] | None:
    """The latest model prompt, and how many completions were answered which way."""
    last = ls.last_prompt
    if last is None:
        return {"answers": dict(ls.answer_counts)}
    return {
        "uri": last.uri,
        "position": {"line": last.line, "character": last.character},
        "prompt": last.engine.prompt_text(last.request),
        "backend": last.engine.config.model_path,
        "fimOrder": last.request.fim_order,
        "promptTokens": last.result.prompt_tokens,
        "reusedTokens": last.result.reused_tokens,
        "contextTokens": last.result.context_tokens,
        "contextKept": last.parts.context_kept,
        "evaluatedTokens": last.result.prompt_tokens - last.result.reused_tokens,
        "generatedTokens": last.result.generated_tokens,
        "draftedTokens": last.result.drafted_tokens,
        "acceptedTokens": last.result.accepted_tokens,
        "stopReason": last.result.stop_reason,
        "context": [
            {
                "path": chunk.path,
                "startLine": chunk.start_line,
                "endLine": chunk.end_line,
                "source": chunk.source,
                "name": chunk.name,
            }
            for chunk in last.parts.chunks
        ],
        "completion": last.result.text,
        "ttftMs": round(last.result.ttft_ms, 1),
        "totalMs": round(last.result.total_ms, 1),
        "answers": dict(ls.answer_counts),
    }


def register(ls: CodeLlamaServer) -> None:
    ls.feature(METHOD)(codellama_last_prompt)

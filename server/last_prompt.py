"""``codellama/lastPrompt``: the exact prompt of the latest completion, for inspection.

Editors show it from a "show last prompt" command; the tests use it to check
what repository context reached the model.
"""

from __future__ import annotations

from typing import Any

from codellama_lsp.quant.fim import order_for

from .app import CodeLlamaServer

METHOD = "codellama/lastPrompt"


def codellama_last_prompt(ls: CodeLlamaServer, params: Any) -> dict[str, Any] | None:
    """The latest model prompt, and how many completions were answered which way."""
    state = ls.completions
    answers = {"answers": dict(state.counts)}
    last = state.last
    # Only the backend that ran a prompt may render it: a closed model cannot.
    if last is None or last.backend is not ls.backends.current:
        return answers
    parts, request, result = last.prompt.parts, last.prompt.request, last.result
    info = last.backend.describe()
    line, character = last.cursor
    return {
        "uri": last.key,
        "position": {"line": line, "character": character},
        "prompt": last.backend.prompt_text(request),
        "backend": info.label,
        "family": info.family,
        # The order the prompt took: ``auto`` (and an order the family was not
        # trained with) resolved for the model's family.
        "fimOrder": order_for(info.family, request.fim_order),
        "promptTokens": result.prompt_tokens,
        "reusedTokens": result.reused_tokens,
        "contextTokens": result.context_tokens,
        "contextKept": parts.context_kept,
        "evaluatedTokens": result.evaluated_tokens,
        "generatedTokens": result.generated_tokens,
        "draftedTokens": result.drafted_tokens,
        "acceptedTokens": result.accepted_tokens,
        "stopReason": result.stop_reason,
        "context": [
            {
                "path": chunk.path,
                "startLine": chunk.start_line,
                "endLine": chunk.end_line,
                "source": chunk.source,
                "name": chunk.name,
            }
            for chunk in parts.chunks
        ],
        "completion": result.text,
        "ttftMs": round(result.ttft_ms, 1),
        "totalMs": round(result.total_ms, 1),
        **answers,
    }


def register(ls: CodeLlamaServer) -> None:
    ls.feature(METHOD)(codellama_last_prompt)

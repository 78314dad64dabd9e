"""textDocument/inlineCompletion: ghost text at the cursor."""

from __future__ import annotations

from lsprotocol import types

from .app import CodeLlamaServer
from .pipeline import suggest


async def text_document_inline_completion(
    ls: CodeLlamaServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    suggestion = await suggest(
        ls,
        types.TEXT_DOCUMENT_INLINE_COMPLETION,
        params.text_document.uri,
        params.position,
        invoked=params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked,
        selected=params.context.selected_completion_info,
    )
    if suggestion is None:
        return types.InlineCompletionList(items=[])
    at = suggestion.position
    end = suggestion.replaces_to or at
    # Executed by the client after inserting: acceptance is counted (locally) from it.
    commands = ls.stats.commands(params.text_document.uri, suggestion)
    return types.InlineCompletionList(
        items=[
            types.InlineCompletionItem(
                insert_text=text, range=types.Range(start=at, end=end), command=command
            )
            for text, command in zip(suggestion.texts, commands, strict=True)
        ]
    )


def register(ls: CodeLlamaServer) -> None:
    ls.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())(
        text_document_inline_completion
    )

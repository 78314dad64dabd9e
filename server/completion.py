"""textDocument/completion: the same suggestion for clients without inline completion."""

from __future__ import annotations

from lsprotocol import types

from .app import CodeLlamaServer
from .pipeline import suggest

LABEL_CHARS = 60


def _label(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), text.strip())
    if len(first) > LABEL_CHARS:
        first = first[: LABEL_CHARS - 1] + "…"
    return first + (" …" if text.strip().count("\n") else "")


async def text_document_completion(
    ls: CodeLlamaServer, params: types.CompletionParams
) -> types.CompletionList:
    suggestion = await suggest(
        ls, types.TEXT_DOCUMENT_COMPLETION, params.text_document.uri, params.position
    )
    # Incomplete: the suggestion depends on every character typed, so clients
    # must ask again instead of filtering this list.
    if suggestion is None:
        return types.CompletionList(is_incomplete=True, items=[])
    at = suggestion.position
    item = types.CompletionItem(
        label=_label(suggestion.text),
        kind=types.CompletionItemKind.Text,
        detail="Code Llama",
        documentation=types.MarkupContent(kind=types.MarkupKind.PlainText, value=suggestion.text),
        sort_text="0",
        insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(range=types.Range(start=at, end=at), new_text=suggestion.text),
    )
    return types.CompletionList(is_incomplete=True, items=[item])


def register(ls: CodeLlamaServer) -> None:
    ls.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions())(text_document_completion)

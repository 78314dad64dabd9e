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


def escape_snippet(text: str) -> str:
    """Text that a snippet inserts literally (LSP snippet syntax: ``\\``, ``$``, ``}``)."""
    return text.replace("\\", "\\\\").replace("$", "\\$").replace("}", "\\}")


def _snippet_support(ls: CodeLlamaServer) -> bool:
    document = ls.client_capabilities.text_document
    completion = document.completion if document else None
    item = completion.completion_item if completion else None
    return bool(item and item.snippet_support)


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
    # As a snippet (escaped, so it is inserted literally) where the client can take
    # one: Neovim's built-in completion inserts only the first word of a plain-text
    # edit, but expands a snippet edit whole; AsIs keeps the model's indentation.
    snippet = _snippet_support(ls)
    item = types.CompletionItem(
        label=_label(suggestion.text),
        kind=types.CompletionItemKind.Text,
        detail="Code Llama",
        documentation=types.MarkupContent(kind=types.MarkupKind.PlainText, value=suggestion.text),
        sort_text="0",
        insert_text_format=(
            types.InsertTextFormat.Snippet if snippet else types.InsertTextFormat.PlainText
        ),
        insert_text_mode=types.InsertTextMode.AsIs,
        text_edit=types.TextEdit(
            range=types.Range(start=at, end=at),
            new_text=escape_snippet(suggestion.text) if snippet else suggestion.text,
        ),
    )
    return types.CompletionList(is_incomplete=True, items=[item])


def register(ls: CodeLlamaServer) -> None:
    ls.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions())(text_document_completion)

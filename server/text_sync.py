"""textDocument/didOpen, didChange, didClose, didSave: the server's copy of open documents."""

from __future__ import annotations

import logging
import re

from lsprotocol import types

from codellama_lsp.context.documents import Position, Range, TextChange
from codellama_lsp.context.errors import InvalidEditError

from .app import CodeLlamaServer
from .pipeline import warm_ahead

#: A client tells the server which document the user is looking at, and where:
#: ``{"textDocument": {"uri": ...}, "position": {"line": ..., "character": ...}}``.
DOCUMENT_ACTIVE = "codellama/documentActive"

log = logging.getLogger(__name__)

#: UTF-16 surrogates left unpaired by the client's JSON (``"\ud83d"``): not text.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean(text: str) -> str:
    """The text with lone surrogates replaced by U+FFFD.

    A valid pair has already become one character when the JSON was decoded,
    so what is left cannot be encoded as UTF-8 (for the tokenizer, the index,
    remote servers).  U+FFFD is one UTF-16 unit too, so positions stay put.
    """
    return _LONE_SURROGATE.sub("\ufffd", text) if _LONE_SURROGATE.search(text) else text


def _to_change(change: types.TextDocumentContentChangeEvent) -> TextChange:
    if isinstance(change, types.TextDocumentContentChangePartial):
        r = change.range
        return TextChange(
            _clean(change.text),
            Range(
                Position(r.start.line, r.start.character),
                Position(r.end.line, r.end.character),
            ),
        )
    return TextChange(_clean(change.text))


def text_document_did_open(ls: CodeLlamaServer, params: types.DidOpenTextDocumentParams) -> None:
    doc = params.text_document
    ls.documents.open(doc.uri, _clean(doc.text), doc.version, doc.language_id)
    ls.workspace_context.opened(doc.uri)
    warm_ahead(ls, doc.uri, types.Position(0, 0))


def document_active(ls: CodeLlamaServer, params: object) -> None:
    """The user is looking at a document (an editor switch, a cursor jump): warm it there."""
    try:
        document = getattr(params, "text_document", None) or params.textDocument  # type: ignore[attr-defined]
        uri = str(document.uri)
        pos = params.position  # type: ignore[attr-defined]
        position = types.Position(int(pos.line), int(pos.character))
    except (AttributeError, TypeError, ValueError):
        log.info("%s ignored: needs textDocument.uri and position", DOCUMENT_ACTIVE)
        return
    if ls.documents.get(uri) is not None:
        warm_ahead(ls, uri, position)


def text_document_did_change(
    ls: CodeLlamaServer, params: types.DidChangeTextDocumentParams
) -> None:
    uri = params.text_document.uri
    # Typing makes any suggestion being computed for this document stale.
    ls.completions.cancel(uri)
    current = ls.documents.get(uri)
    before = current.text if current is not None else ""
    spans: list[tuple[int, int, int]] = []
    try:
        doc = ls.documents.change(
            uri,
            params.text_document.version,
            [_to_change(c) for c in params.content_changes],
            spans,
        )
        ls.workspace_context.changed(uri)
        ls.workspace_context.edited(uri, before, doc, spans)
    except InvalidEditError as exc:
        ls.notify(
            f"codellama-lsp ignored an edit: {exc}. Completions for this file are paused "
            "until it is reopened or its full text is sent.",
            types.MessageType.Error,
        )


def text_document_did_close(ls: CodeLlamaServer, params: types.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.completions.forget(uri)
    if ls.backends.current is not None:
        ls.backends.current.forget(uri)
    ls.documents.close(uri)
    ls.workspace_context.closed(uri)


def text_document_did_save(ls: CodeLlamaServer, params: types.DidSaveTextDocumentParams) -> None:
    doc = ls.documents.get(params.text_document.uri)
    text = _clean(params.text) if params.text is not None else None
    if doc is not None and text is not None and text != doc.text:
        log.warning("didSave text differs from the synced text of %s; resyncing", doc.uri)
        ls.documents.open(doc.uri, text, doc.version, doc.language_id)
        ls.workspace_context.changed(doc.uri)
        ls.workspace_context.edits.forget(doc.uri)  # its hunks' positions no longer hold


def register(ls: CodeLlamaServer) -> None:
    ls.feature(types.TEXT_DOCUMENT_DID_OPEN)(text_document_did_open)
    ls.feature(types.TEXT_DOCUMENT_DID_CHANGE)(text_document_did_change)
    ls.feature(types.TEXT_DOCUMENT_DID_CLOSE)(text_document_did_close)
    ls.feature(DOCUMENT_ACTIVE)(document_active)
    ls.feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))(
        text_document_did_save
    )

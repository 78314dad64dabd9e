"""The language server object: all state lives here, none in module globals."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cattrs.errors import ClassValidationError
from cattrs.v import transform_error
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol

from codellama_lsp.context.assemble import PromptParts
from codellama_lsp.context.documents import DocumentStore
from codellama_lsp.context.index import RepositoryIndex
from codellama_lsp.context.reuse import ShownSuggestion, SuggestionCache
from codellama_lsp.context.watcher import WorkspaceWatcher
from codellama_lsp.context.workspace import WorkspaceOptions
from codellama_lsp.quant.engine import CompletionRequest, CompletionResult, Engine, EngineConfig
from codellama_lsp.quant.remote import RemoteEngine

from . import __version__
from .settings import Settings

log = logging.getLogger(__name__)

#: The local model or a remote server: the pipeline treats them alike.
AnyEngine = Engine | RemoteEngine

SERVER_NOT_INITIALIZED = -32002
PARSE_ERROR = -32700
INVALID_PARAMS = -32602
INVALID_REQUEST = -32600

# Methods a client may send before the initialize handshake completes.
_ALLOWED_BEFORE_INIT = {types.INITIALIZE, types.EXIT, types.CANCEL_REQUEST}


class _AnsweredError(Exception):
    """Raised after an error response was already sent for a bad message."""


class CodeLlamaProtocol(LanguageServerProtocol):
    """pygls' protocol, made strict where the JSON-RPC and LSP specs ask for answers.

    pygls logs and drops messages it cannot decode; a client waiting on such a
    request would hang, so these answer with the error the spec names instead.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initialized = False

    def structure_message(self, data: dict[str, Any]) -> Any:
        if "jsonrpc" not in data:
            return data  # a nested object: json.loads calls this hook for every dict
        method = data.get("method")
        is_request = "id" in data and method is not None
        if method == types.INITIALIZE:
            self.initialized = True
        elif not self.initialized and method is not None and method not in _ALLOWED_BEFORE_INIT:
            if is_request:
                self._answer_error(
                    data["id"],
                    SERVER_NOT_INITIALIZED,
                    f"{method} before initialize: the server is not initialized",
                )
            raise _AnsweredError(f"{method} sent before initialize")
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if is_request:
                self._answer_error(
                    data["id"], INVALID_PARAMS, f"invalid params for {method}: {_cause(exc)}"
                )
                raise _AnsweredError(str(exc)) from exc
            raise

    def _answer_error(self, msg_id: Any, code: int, message: str) -> None:
        log.warning("answering request %s with error %d: %s", msg_id, code, message)
        self._send_response(msg_id, error=types.ResponseError(code=code, message=message))

    def send_parse_error(self, detail: str) -> None:
        self._send_data(
            {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": PARSE_ERROR, "message": f"parse error: {detail}"},
            }
        )


def _cause(exc: BaseException) -> str:
    """What was wrong with the params, in the words cattrs uses for each field."""
    cause = exc.__cause__
    if isinstance(cause, ClassValidationError):
        return "; ".join(transform_error(cause, path="params")[:3]).replace(
            "params.params", "params"
        )
    text = str(cause) if cause is not None else str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass
class InFlight:
    """The latest completion request of one document, so a newer one can stop it."""

    request_id: object
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class LastPrompt:
    """What the latest completion sent to the model, for ``codellama/lastPrompt``."""

    uri: str
    line: int
    character: int
    parts: PromptParts
    request: CompletionRequest
    result: CompletionResult
    engine: AnyEngine


class CodeLlamaServer(LanguageServer):
    def __init__(self, model_override: str | None = None, max_tokens_override: int | None = None):
        super().__init__(
            "codellama-lsp",
            __version__,
            protocol_cls=CodeLlamaProtocol,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
        )
        self.settings = Settings()
        self.model_override = model_override
        self.max_tokens_override = max_tokens_override
        self.documents = DocumentStore()
        self.engine: AnyEngine | None = None
        self.engine_error: str | None = None
        self.loading_config: EngineConfig | None = None
        self.engine_loading: asyncio.Future[Engine] | None = None
        self.pending_warnings: list[str] = []
        self.engine_lock = threading.Lock()
        #: The catalog model being downloaded (by name), and how to stop it at shutdown.
        self.download_name: str | None = None
        self.downloading: asyncio.Future[Path] | None = None
        self.download_cancel = threading.Event()
        #: Messages already shown once (offline, download failed): not one per keystroke.
        self.told: set[str] = set()
        self.in_flight: dict[str, InFlight] = {}
        self.request_counter = 0
        # Workspace context: the index is published only once its first build is done.
        self.index: RepositoryIndex | None = None
        self.index_options: WorkspaceOptions | None = None
        self.index_building: asyncio.Future[RepositoryIndex] | None = None
        self.watcher: WorkspaceWatcher | None = None
        self.open_paths: set[str] = set()
        #: Most recently used documents last; their text feeds neighbour snippets.
        self.recent: OrderedDict[str, None] = OrderedDict()
        self.index_updates: dict[str, asyncio.TimerHandle] = {}
        self.last_prompt: LastPrompt | None = None
        #: Per document: the last prompt's parts (sticky windows, kept context) and the
        #: suggestion shown last (typed-through answers).
        self.prompt_parts: dict[str, PromptParts] = {}
        self.shown: dict[str, ShownSuggestion] = {}
        self.suggestion_cache = SuggestionCache(self.settings.cache_size)
        #: How completions were answered: "model", "typed_through", "cache", "superseded".
        self.answer_counts: dict[str, int] = {
            "model": 0,
            "typed_through": 0,
            "cache": 0,
            "superseded": 0,
        }

    @property
    def strict_protocol(self) -> CodeLlamaProtocol:
        assert isinstance(self.protocol, CodeLlamaProtocol)
        return self.protocol

    def report_server_error(self, error: Exception, source: Any) -> None:
        if isinstance(error, _AnsweredError):
            return
        if isinstance(error, json.JSONDecodeError):
            log.warning("malformed JSON from the client: %s", error)
            self.strict_protocol.send_parse_error(str(error))
            return
        log.error("%s: %s", getattr(source, "__name__", source), error)

    def effective_max_tokens(self) -> int:
        return self.max_tokens_override or self.settings.max_tokens

    def effective_model_path(self) -> str:
        return self.model_override or self.settings.model_path

    def notify(self, message: str, kind: types.MessageType = types.MessageType.Warning) -> None:
        """One user-visible message; logged as well, since clients may hide it."""
        log.log(logging.ERROR if kind == types.MessageType.Error else logging.WARNING, message)
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    def next_request_number(self) -> int:
        self.request_counter += 1
        return self.request_counter

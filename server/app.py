"""The language server object and its strict protocol; its state lives in components."""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import threading
from typing import Any, BinaryIO

from cattrs.errors import ClassValidationError
from cattrs.v import transform_error
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from codellama_lsp.context.documents import DocumentStore
from codellama_lsp.core.backends import with_overrides
from codellama_lsp.core.settings import Settings, parse_settings
from codellama_lsp.core.state import CompletionState

from . import __version__, framing
from .worker import WorkerLane

log = logging.getLogger(__name__)

SERVER_NOT_INITIALIZED = types.ErrorCodes.ServerNotInitialized.value
PARSE_ERROR = types.ErrorCodes.ParseError.value
INVALID_PARAMS = types.ErrorCodes.InvalidParams.value
INVALID_REQUEST = types.ErrorCodes.InvalidRequest.value
INTERNAL_ERROR = types.ErrorCodes.InternalError.value

# Methods a client may send before the initialize handshake completes.
_ALLOWED_BEFORE_INIT = {types.INITIALIZE, types.EXIT, types.CANCEL_REQUEST}
#: Methods that are notifications (no response type): sent with an id, they get an error.
_NOTIFICATIONS = frozenset(
    method for method, kinds in types.METHOD_TO_TYPES.items() if kinds[1] is None
) | {"codellama/documentActive"}


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
        #: Ids of handler futures that are done (appended from any thread).
        self._finished_futures: list[Any] = []

    def structure_message(self, data: dict[str, Any]) -> Any:
        if "jsonrpc" not in data:
            return data  # a nested object: json.loads calls this hook for every dict
        method = data.get("method")
        is_request = "id" in data and method is not None
        if is_request and method in _NOTIFICATIONS:
            # pygls could not decode it as either and would drop it: the client waits.
            self._answer_error(data["id"], INVALID_REQUEST, f"{method} is a notification")
            raise _AnsweredError(f"{method} sent as a request")
        if self._shutdown and method is not None and method != types.EXIT:
            # After shutdown only exit is served; requests get an answer, not silence.
            if is_request:
                self._answer_error(data["id"], INVALID_REQUEST, f"{method} after shutdown")
            raise _AnsweredError(f"{method} sent after shutdown")
        if method == types.INITIALIZE:
            if self.initialized:
                if is_request:
                    self._answer_error(
                        data["id"], INVALID_REQUEST, "initialize was already received"
                    )
                raise _AnsweredError("a second initialize")
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

    # pygls keeps its own copy of every open document, applying each edit with a
    # Python loop over the edited line: on a long line or a big file that cost
    # more than everything else a keystroke does.  The server has its own copy
    # (``CodeLlamaServer.documents``); these builtins only hand over.

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams) -> Any:
        yield from self._hand_over(types.TEXT_DOCUMENT_DID_OPEN, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> Any:
        yield from self._hand_over(types.TEXT_DOCUMENT_DID_CHANGE, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams) -> Any:
        yield from self._hand_over(types.TEXT_DOCUMENT_DID_CLOSE, params)

    def _hand_over(self, method: str, params: Any) -> Any:
        handler = self.fm.features.get(method)
        if handler is not None:
            yield handler, (params,), None

    def _execute_handler(
        self,
        msg_id: Any,
        handler: Any,
        callback: Any,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        """pygls' handler call, with the handler's future forgotten once it is done.

        pygls keeps the future of every async, threaded or generator handler in
        ``_request_futures`` so that ``$/cancelRequest`` can find it, but only
        removes those of requests: each notification (every keystroke's
        didChange) left one behind, about 2 KB a keystroke for the whole day.
        """
        self._forget_finished()
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        future = self._request_futures.get(msg_id)
        if future is not None:
            # Dropped at the next message, not in the callback: a future cancelled
            # while pygls iterates the dict (shutdown) calls it synchronously.
            future.add_done_callback(functools.partial(self._finished, msg_id))

    def _finished(self, msg_id: Any, _future: Any) -> None:
        self._finished_futures.append(msg_id)  # from any thread: list.append is atomic

    def _forget_finished(self) -> None:
        while self._finished_futures:
            msg_id = self._finished_futures.pop()
            future = self._request_futures.get(msg_id)
            if future is not None and future.done():
                del self._request_futures[msg_id]

    def _send_response(
        self, msg_id: Any, result: Any | None = None, error: types.ResponseError | None = None
    ) -> None:
        """Answers never carry a traceback: it is logged, the client gets one line."""
        if error is not None and error.code == INTERNAL_ERROR and error.data is not None:
            error = types.ResponseError(code=error.code, message=error.message)
        super()._send_response(msg_id, result=result, error=error)

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


class CodeLlamaServer(LanguageServer):
    """The server and the few components that own its state.

    * ``documents``: the open documents' text (:class:`DocumentStore`);
    * ``backends``: the model or remote server, its loading and health;
    * ``workspace_context``: the repository index, its watcher, recent files;
    * ``completions``: what completions remember (shown suggestion, prompt
      windows, cache, requests in flight, the last prompt);
    * ``model_work``: the bounded threads completions and warming run on.
    * ``stats``: shown suggestions and accepts, counted locally (:mod:`.stats`).

    Handlers call the components' methods; nothing else writes their state.
    """

    def __init__(self, model_override: str | None = None, max_tokens_override: int | None = None):
        super().__init__(
            "codellama-lsp",
            __version__,
            protocol_cls=CodeLlamaProtocol,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
        )
        from .backends import BackendManager
        from .stats import AcceptanceStats
        from .workspace_index import WorkspaceContext

        self._overrides = (model_override, max_tokens_override)
        self.settings = self._effective(Settings())
        self.documents = DocumentStore()
        self.completions = CompletionState(self.settings.completion.cache_size)
        self.backends = BackendManager(self)
        self.workspace_context = WorkspaceContext(self)
        self.stats = AcceptanceStats(self)
        #: Completions and warming run here: two threads at most, however fast the typing.
        self.model_work = WorkerLane(2, "complete")
        #: Messages already shown once (offline, download failed): not one per keystroke.
        self._told: set[str] = set()
        self._deferred: list[str] = []
        self._request_counter = 0

    def _effective(self, settings: Settings) -> Settings:
        model, max_tokens = self._overrides
        return with_overrides(settings, model_path=model, max_tokens=max_tokens)

    def apply_settings(self, raw: object) -> list[str]:
        """New settings from the client; what was made under the old ones is forgotten.

        Parsed from the defaults, not layered on the old values, so a key the
        user removed goes back to its default.  Returns one warning per bad key.
        """
        parsed, warnings = parse_settings(raw)
        self.settings = self._effective(parsed)
        self.completions.reset(self.settings.completion.cache_size)
        return warnings

    @property
    def strict_protocol(self) -> CodeLlamaProtocol:
        assert isinstance(self.protocol, CodeLlamaProtocol)
        return self.protocol

    def report_server_error(self, error: Exception, source: Any) -> None:
        if isinstance(error, _AnsweredError):
            return
        log.error("%s: %s", getattr(source, "__name__", source), error)

    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """pygls' stdio server, reading frames leniently (:mod:`.framing`)."""
        self._stop_event = threading.Event()
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        source = stdin or sys.stdin.buffer
        try:
            asyncio.run(
                framing.serve(
                    source,
                    self.strict_protocol,
                    self._stop_event,
                    self.report_server_error,
                    self.thread_pool,
                )
            )
        except BrokenPipeError:
            log.error("the connection to the client is lost; shutting down")
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.shutdown()  # type: ignore[no-untyped-call]

    def notify(self, message: str, kind: types.MessageType = types.MessageType.Warning) -> None:
        """One user-visible message; logged as well, since clients may hide it."""
        log.log(logging.ERROR if kind == types.MessageType.Error else logging.WARNING, message)
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    def tell_once(self, key: str, message: str, kind: types.MessageType) -> None:
        """A message that would otherwise repeat on every settings change or restart."""
        if key not in self._told:
            self._told.add(key)
            self.notify(message, kind)

    def defer_warning(self, message: str) -> None:
        """A warning found before the client can show messages (during initialize)."""
        self._deferred.append(message)

    def flush_warnings(self) -> None:
        deferred, self._deferred = self._deferred, []
        for message in deferred:
            self.notify(message, types.MessageType.Warning)

    def next_request_number(self) -> int:
        self._request_counter += 1
        return self._request_counter

"""The backend completions go to: loading it off the loop, switching it, and its health.

:class:`BackendManager` owns the current backend and everything about getting
one: the catalog download, a model still loading, a remote server's outages.
Replacing the backend resets the completion state, since every prompt window,
cached suggestion and last-prompt record belongs to the backend that made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types

from codellama_lsp.core.backends import (
    connect_remote,
    load_local,
    local_config,
    remote_config,
)
from codellama_lsp.quant.backend import Backend, EngineConfig
from codellama_lsp.quant.catalog import CatalogEntry, cached_path, local_path, lookup
from codellama_lsp.quant.download import OfflineError, download, how_to_get, remote_size
from codellama_lsp.quant.errors import ModelError
from codellama_lsp.quant.remote import RemoteConfig

from .progress import Progress, send_status
from .worker import run_off_loop

if TYPE_CHECKING:
    from .app import CodeLlamaServer

log = logging.getLogger(__name__)


class BackendManager:
    """The current backend (or why there is none), and the work of getting one."""

    def __init__(self, ls: CodeLlamaServer) -> None:
        self._ls = ls
        self.current: Backend | None = None
        #: Why there is no backend ("loading", "no model configured", a load error).
        self.error: str | None = None
        #: The config the current (or loading) backend was made from.
        self._config: EngineConfig | RemoteConfig | None = None
        self._loading: asyncio.Future[Backend] | None = None
        self._download_name: str | None = None
        self._downloading: asyncio.Future[Path] | None = None
        self._download_cancel = threading.Event()

    # -- for requests ---------------------------------------------------------------

    async def ready(self, request: str) -> Backend | None:
        """The backend to ask now; the first keystrokes wait for a model still loading."""
        if self.current is None and self._loading is not None:
            # A cancel from the client ends the wait.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._loading)
        backend = self.current
        if backend is None:
            log.info("%s: no model loaded (%s)", request, self.error or "none")
            return None
        health = backend.health()
        if not health.ready():
            log.info("%s: backend down, next try later (%s)", request, health.last_error)
            return None
        return backend

    def failed(self, backend: Backend, error: str) -> None:
        """One message per outage, not one per keystroke; requests retry with backoff."""
        if backend is not self.current:
            return
        health = backend.health()
        first = health.failed(error)
        send_status(self._ls, "error", error)
        log.warning("backend failed (%d in a row): %s", health.failures, error)
        if first:
            self._ls.notify(
                f"codellama-lsp: the completion server is not answering: {error}. "
                "Suggestions resume by themselves when it is back.",
                types.MessageType.Error,
            )

    def succeeded(self, backend: Backend) -> None:
        if backend is not self.current or not backend.health().succeeded():
            return
        send_status(self._ls, "ready", self._ready_message(backend))
        self._ls.notify(
            f"codellama-lsp: the completion server at {self._ls.settings.backend.url} is back.",
            types.MessageType.Info,
        )

    # -- switching ------------------------------------------------------------------

    async def ensure(self) -> None:
        """Load, reload or connect to what the settings name; failures become one message."""
        if self._ls.settings.backend.type != "local":
            await self._ensure_remote()
            return
        try:
            path = await self._model_path()
        except ModelError as exc:  # an unknown catalog name, for one
            self._no_model(str(exc), f"codellama-lsp: {exc}", types.MessageType.Error)
            return
        if path is not None:
            await self._ensure_local(local_config(self._ls.settings, path))

    def shutdown(self) -> None:
        """Stop a download (it resumes next time); the process is about to exit."""
        self._download_cancel.set()

    def _replace(self, backend: Backend | None, config: EngineConfig | RemoteConfig | None) -> None:
        """Swap backends: the old one is closed and nothing it made is reused."""
        old, self.current, self._config = self.current, backend, config
        self.error = None if backend is not None else self.error
        self._ls.completions.reset()
        if old is not None and old is not backend:
            # Off the loop: closing waits for a generation still running on it.
            run_off_loop(old.close, name="close-backend")

    def _no_model(self, reason: str, message: str, kind: types.MessageType) -> None:
        self.error = reason
        self._replace(None, None)
        send_status(self._ls, "no-model", reason)
        self._ls.tell_once(message, message, kind)

    def _ready_message(self, backend: Backend) -> str:
        info = backend.describe()
        if info.kind == "local":
            return f"{Path(info.label).name} ready"
        return f"{info.kind} at {self._ls.settings.backend.url}"

    # -- local ------------------------------------------------------------------------

    async def _ensure_local(self, config: EngineConfig) -> None:
        if self.current is not None and self._config == config:
            return
        if self._config == config and self._loading is not None:
            await asyncio.shield(self._loading)  # the same model is already loading
            return
        self._replace(None, config)
        self.error = "loading"
        send_status(self._ls, "loading", f"loading {config.model_path}")
        started = time.perf_counter()
        loading = run_off_loop(lambda: load_local(config), name="load-model")
        self._loading = loading
        try:
            backend = await asyncio.shield(loading)
        except ModelError as exc:
            if self._config == config:
                self._loading = None
                self.error = str(exc)
                send_status(self._ls, "error", str(exc))
                self._ls.notify(
                    f"codellama-lsp could not load the model: {exc}", types.MessageType.Error
                )
            return
        if self._config != config:  # settings changed again while loading
            backend.close()
            return
        self._loading = None
        self._replace(backend, config)
        log.info("model ready in %.0f ms: %s", (time.perf_counter() - started) * 1000, config)
        send_status(self._ls, "ready", self._ready_message(backend))

    async def _model_path(self) -> str | None:
        """The GGUF file: the configured path, else the catalog model (downloaded if needed)."""
        settings = self._ls.settings.model
        if settings.path:
            return settings.path
        if not settings.name:
            self._no_model(
                "no model configured",
                "codellama-lsp has no model: set codellama.model.path to a Code Llama GGUF "
                "file or codellama.model.name to a catalog model (or start the server with "
                "--model PATH).",
                types.MessageType.Warning,
            )
            return None
        entry = lookup(settings.name)
        found = cached_path(entry)
        if found is not None:
            return str(found)
        if not settings.download:
            self._no_model(
                f"{entry.name} is not downloaded",
                f"codellama-lsp: {entry.title} ({entry.size_gb:.1f} GB) is not downloaded and "
                f"codellama.model.download is off: {how_to_get(entry)}.",
                types.MessageType.Warning,
            )
            return None
        if self._download_name == entry.name and self._downloading is not None:
            with contextlib.suppress(Exception):
                return str(await asyncio.shield(self._downloading))
            return None
        return await self._download(entry)

    async def _download(self, entry: CatalogEntry) -> str | None:
        try:
            size = await run_off_loop(lambda: remote_size(entry), name="model-size")
        except OfflineError as exc:
            self._no_model(
                f"{entry.name} is not downloaded (offline)",
                f"codellama-lsp: {exc}. To get {entry.title} ({entry.size_gb:.1f} GB): "
                f"{how_to_get(entry)}.",
                types.MessageType.Warning,
            )
            return None
        total_gb = (size or entry.size_gb * 1e9) / 1e9
        self._ls.notify(
            f"codellama-lsp is downloading {entry.title} ({total_gb:.1f} GB) from "
            f"huggingface.co/{entry.repo_id} to {local_path(entry).parent}; suggestions start "
            "once it is loaded.",
            types.MessageType.Info,
        )
        send_status(self._ls, "downloading", f"downloading {entry.name} ({total_gb:.1f} GB)")
        progress = await Progress.begin(
            self._ls, f"Code Llama: downloading {entry.name}", f"{total_gb:.1f} GB"
        )

        def report(done: int, total: int) -> None:
            percent = int(done * 100 / total) if total else 0
            progress.report(f"{done / 1e9:.2f} of {total / 1e9:.2f} GB", percent)

        self._download_name = entry.name
        downloading = run_off_loop(
            lambda: download(entry, report, self._download_cancel), name="download-model"
        )
        self._downloading = downloading
        try:
            path = await asyncio.shield(downloading)
        except ModelError as exc:
            progress.end(f"failed: {exc}")
            send_status(self._ls, "error", str(exc))
            self.error = str(exc)
            self._ls.tell_once(
                f"download-failed:{entry.name}",
                f"codellama-lsp could not download {entry.title}: {exc}. {how_to_get(entry)}.",
                types.MessageType.Error,
            )
            return None
        finally:
            if self._downloading is downloading:
                self._downloading = None
                self._download_name = None
        progress.end(f"downloaded to {path}")
        log.info("downloaded %s to %s", entry.name, path)
        return str(path)

    # -- remote -----------------------------------------------------------------------

    async def _ensure_remote(self) -> None:
        """Use a remote server; a failed first contact is reported, later requests retry."""
        config = remote_config(self._ls.settings)
        if self.current is not None and self._config == config:
            return
        try:
            remote = connect_remote(config)
        except ModelError as exc:
            self._no_model(str(exc), f"codellama-lsp: {exc}", types.MessageType.Error)
            return
        self._loading = None
        self._replace(remote, config)
        send_status(self._ls, "loading", f"connecting to {config.url}")
        try:
            served = await run_off_loop(remote.probe, name="probe-backend")
        except ModelError as exc:
            self.failed(remote, str(exc))
            return
        if self.current is remote:
            log.info("backend %s answers: %s", config.model_path, " ".join(served.split())[:120])
            send_status(self._ls, "ready", self._ready_message(remote))

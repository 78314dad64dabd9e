"""Loading the model off the event loop, and reloading it when its settings change."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from lsprotocol import types

from codellama_lsp.quant.catalog import CatalogEntry, cached_path, local_path, lookup
from codellama_lsp.quant.download import OfflineError, download, how_to_get, remote_size
from codellama_lsp.quant.engine import Engine, EngineConfig
from codellama_lsp.quant.errors import ModelError
from codellama_lsp.quant.remote import RemoteConfig, RemoteEngine

from .app import CodeLlamaServer
from .worker import run_off_loop

log = logging.getLogger(__name__)

STATUS_METHOD = "codellama/status"


def engine_config(ls: CodeLlamaServer, path: str) -> EngineConfig:
    s = ls.settings
    return EngineConfig(
        model_path=path,
        n_ctx=s.n_ctx,
        n_gpu_layers=s.n_gpu_layers,
        n_threads=s.n_threads,
        flash_attn=s.flash_attn,
        kv_cache_type=s.kv_cache_type,
    )


def tell_once(ls: CodeLlamaServer, key: str, message: str, kind: types.MessageType) -> None:
    """A message that would otherwise repeat on every settings change or restart of a load."""
    if key not in ls.told:
        ls.told.add(key)
        ls.notify(message, kind)


def _no_model(ls: CodeLlamaServer, reason: str, message: str, kind: types.MessageType) -> None:
    ls.engine = None
    ls.engine_error = reason
    send_status(ls, "no-model", reason)
    tell_once(ls, message, message, kind)


async def model_path(ls: CodeLlamaServer) -> str | None:
    """The GGUF file to load: the configured path, else the catalog model (downloaded if needed)."""
    path = ls.effective_model_path()
    if path:
        return path
    name = ls.settings.model_name
    if not name:
        _no_model(
            ls,
            "no model configured",
            "codellama-lsp has no model: set codellama.model.path to a Code Llama GGUF file "
            "or codellama.model.name to a catalog model (or start the server with --model PATH).",
            types.MessageType.Warning,
        )
        return None
    entry = lookup(name)
    found = cached_path(entry)
    if found is not None:
        return str(found)
    if not ls.settings.model_download:
        _no_model(
            ls,
            f"{entry.name} is not downloaded",
            f"codellama-lsp: {entry.title} ({entry.size_gb:.1f} GB) is not downloaded and "
            f"codellama.model.download is off: {how_to_get(entry)}.",
            types.MessageType.Warning,
        )
        return None
    if ls.download_name == entry.name and ls.downloading is not None:
        with contextlib.suppress(Exception):
            return str(await asyncio.shield(ls.downloading))
        return None
    return await _download(ls, entry)


async def _download(ls: CodeLlamaServer, entry: CatalogEntry) -> str | None:
    try:
        size = await run_off_loop(lambda: remote_size(entry), name="model-size")
    except OfflineError as exc:
        _no_model(
            ls,
            f"{entry.name} is not downloaded (offline)",
            f"codellama-lsp: {exc}. To get {entry.title} ({entry.size_gb:.1f} GB): "
            f"{how_to_get(entry)}.",
            types.MessageType.Warning,
        )
        return None
    total_gb = (size or entry.size_gb * 1e9) / 1e9
    target = local_path(entry)
    ls.notify(
        f"codellama-lsp is downloading {entry.title} ({total_gb:.1f} GB) from "
        f"huggingface.co/{entry.repo_id} to {target.parent}; suggestions start once it is "
        "loaded.",
        types.MessageType.Info,
    )
    send_status(ls, "downloading", f"downloading {entry.name} ({total_gb:.1f} GB)")
    token = await begin_progress(ls, f"Code Llama: downloading {entry.name}", f"{total_gb:.1f} GB")
    loop = asyncio.get_running_loop()
    shown = [-1]

    def progress(done: int, total: int) -> None:
        percent = int(done * 100 / total) if total else 0
        if token is None or percent == shown[0]:
            return
        shown[0] = percent
        loop.call_soon_threadsafe(
            ls.work_done_progress.report,
            token,
            types.WorkDoneProgressReport(
                message=f"{done / 1e9:.2f} of {total / 1e9:.2f} GB", percentage=percent
            ),
        )

    ls.download_name = entry.name
    downloading = run_off_loop(
        lambda: download(entry, progress, ls.download_cancel), name="download-model"
    )
    ls.downloading = downloading
    try:
        path = await asyncio.shield(downloading)
    except ModelError as exc:
        end_progress(ls, token, f"failed: {exc}")
        send_status(ls, "error", str(exc))
        ls.engine_error = str(exc)
        tell_once(
            ls,
            f"download-failed:{entry.name}",
            f"codellama-lsp could not download {entry.title}: {exc}. {how_to_get(entry)}.",
            types.MessageType.Error,
        )
        return None
    finally:
        if ls.downloading is downloading:
            ls.downloading = None
            ls.download_name = None
    end_progress(ls, token, f"downloaded to {path}")
    log.info("downloaded %s to %s", entry.name, path)
    return str(path)


async def begin_progress(ls: CodeLlamaServer, title: str, message: str) -> str | None:
    """A ``$/progress`` token, or None when the client cannot show progress."""
    capabilities = ls.client_capabilities.window
    if capabilities is None or not capabilities.work_done_progress:
        return None
    token = f"codellama-{ls.next_request_number()}"
    try:
        await asyncio.wait_for(ls.work_done_progress.create_async(token), 5)
    except Exception as exc:  # refused or never answered: go on without progress
        log.info("no progress for %s: %s", title, exc)
        return None
    ls.work_done_progress.begin(
        token, types.WorkDoneProgressBegin(title=title, message=message, percentage=0)
    )
    return token


def end_progress(ls: CodeLlamaServer, token: str | None, message: str) -> None:
    if token is not None:
        ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))


def remote_config(ls: CodeLlamaServer) -> RemoteConfig:
    s = ls.settings
    protocol = "openai" if s.backend_type == "openai" else f"llama-server-{s.backend_endpoint}"
    return RemoteConfig(
        protocol=protocol,
        url=s.backend_url,
        model=s.backend_model,
        api_key_env=s.backend_api_key_env,
        timeout_s=s.backend_timeout_ms / 1000,
        verify_tls=s.backend_verify_tls,
        n_ctx=s.n_ctx,
    )


async def ensure_remote(ls: CodeLlamaServer) -> None:
    """Use a remote server; a failed first contact is reported, later requests retry."""
    config = remote_config(ls)
    current = ls.engine
    if isinstance(current, RemoteEngine) and current.config == config:
        return
    try:
        engine = RemoteEngine(config)
    except ModelError as exc:
        _no_model(ls, str(exc), f"codellama-lsp: {exc}", types.MessageType.Error)
        return
    if current is not None:
        current.close()
    ls.engine = engine
    ls.engine_error = None
    ls.loading_config = None
    send_status(ls, "loading", f"connecting to {config.url}")
    try:
        served = await run_off_loop(engine.probe, name="probe-backend")
    except ModelError as exc:
        if ls.engine is engine:
            backend_failed(ls, engine, str(exc))
        return
    if ls.engine is engine:
        log.info("backend %s answers: %s", config.model_path, " ".join(served.split())[:120])
        send_status(ls, "ready", f"{ls.settings.backend_type} at {config.url}")


def backend_failed(ls: CodeLlamaServer, engine: RemoteEngine, error: str) -> None:
    """One message per outage, not one per keystroke; requests retry with backoff."""
    first = engine.health.failed(error)
    send_status(ls, "error", error)
    log.warning("backend failed (%d in a row): %s", engine.health.failures, error)
    if first:
        ls.notify(
            f"codellama-lsp: the completion server is not answering: {error}. "
            "Suggestions resume by themselves when it is back.",
            types.MessageType.Error,
        )


def backend_succeeded(ls: CodeLlamaServer, engine: RemoteEngine) -> None:
    if engine.health.succeeded():
        send_status(ls, "ready", f"{ls.settings.backend_type} at {engine.config.url}")
        ls.notify(
            f"codellama-lsp: the completion server at {engine.config.url} is back.",
            types.MessageType.Info,
        )


async def ensure_engine(ls: CodeLlamaServer) -> None:
    """Load (or reload) the model the settings name; failures become one message."""
    if ls.settings.backend_type != "local" and not ls.model_override:
        await ensure_remote(ls)
        return
    if isinstance(ls.engine, RemoteEngine):
        ls.engine = None
    try:
        path = await model_path(ls)
    except ModelError as exc:  # an unknown catalog name, for one
        _no_model(ls, str(exc), f"codellama-lsp: {exc}", types.MessageType.Error)
        return
    if path is None:
        if ls.engine is not None:
            ls.engine.close()
        ls.engine = None
        return
    config = engine_config(ls, path)
    current = ls.engine
    if current is not None and current.config == config:
        return
    if ls.loading_config == config and ls.engine_loading is not None:
        await asyncio.shield(ls.engine_loading)  # the same model is already loading
        return
    ls.engine = None
    ls.engine_error = "loading"
    ls.loading_config = config
    send_status(ls, "loading", f"loading {config.model_path}")
    started = time.perf_counter()
    loading = run_off_loop(lambda: Engine.load(config), name="load-model")
    ls.engine_loading = loading
    try:
        engine = await asyncio.shield(loading)
    except ModelError as exc:
        if ls.loading_config == config:
            ls.engine_loading = None
            ls.engine_error = str(exc)
            send_status(ls, "error", str(exc))
            ls.notify(f"codellama-lsp could not load the model: {exc}", types.MessageType.Error)
        return
    if ls.loading_config != config:  # settings changed again while loading
        engine.close()
        return
    ls.engine_loading = None
    if current is not None:
        current.close()
    ls.engine = engine
    ls.engine_error = None
    log.info("model ready in %.0f ms: %s", (time.perf_counter() - started) * 1000, config)
    send_status(ls, "ready", f"{Path(config.model_path).name} ready")


def send_status(ls: CodeLlamaServer, state: str, message: str) -> None:
    """``codellama/status``: what the server is doing, for status bars and tests."""
    ls.protocol.notify(STATUS_METHOD, {"state": state, "message": message})

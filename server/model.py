"""Loading the model off the event loop, and reloading it when its settings change."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from lsprotocol import types

from codellama_lsp.quant.engine import Engine, EngineConfig
from codellama_lsp.quant.errors import ModelError

from .app import CodeLlamaServer
from .worker import run_off_loop

log = logging.getLogger(__name__)

STATUS_METHOD = "codellama/status"


def engine_config(ls: CodeLlamaServer) -> EngineConfig | None:
    path = ls.effective_model_path()
    if not path:
        return None
    s = ls.settings
    return EngineConfig(
        model_path=path, n_ctx=s.n_ctx, n_gpu_layers=s.n_gpu_layers, n_threads=s.n_threads
    )


async def ensure_engine(ls: CodeLlamaServer) -> None:
    """Load (or reload) the model the settings name; failures become one message."""
    config = engine_config(ls)
    current = ls.engine
    if current is not None and current.config == config:
        return
    if config is None:
        ls.engine = None
        ls.engine_error = "no model configured"
        send_status(ls, "no-model", "no model configured")
        ls.notify(
            "codellama-lsp has no model: set codellama.model.path to a Code Llama GGUF file "
            "(or start the server with --model PATH).",
            types.MessageType.Warning,
        )
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

"""Loading the model off the event loop, and reloading it when its settings change."""

from __future__ import annotations

import logging
import time

from lsprotocol import types

from codellama_lsp.quant.engine import Engine, EngineConfig
from codellama_lsp.quant.errors import ModelError

from .app import CodeLlamaServer
from .worker import run_off_loop

log = logging.getLogger(__name__)


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
        ls.notify(
            "codellama-lsp has no model: set codellama.model.path to a Code Llama GGUF file "
            "(or start the server with --model PATH).",
            types.MessageType.Warning,
        )
        return
    ls.engine = None
    ls.engine_error = "loading"
    ls.loading_config = config
    started = time.perf_counter()
    try:
        engine = await run_off_loop(lambda: Engine.load(config), name="load-model")
    except ModelError as exc:
        if ls.loading_config == config:
            ls.engine_error = str(exc)
            ls.notify(f"codellama-lsp could not load the model: {exc}", types.MessageType.Error)
        return
    if ls.loading_config != config:  # settings changed again while loading
        engine.close()
        return
    if current is not None:
        current.close()
    ls.engine = engine
    ls.engine_error = None
    log.info("model ready in %.0f ms: %s", (time.perf_counter() - started) * 1000, config)

"""Which backend the settings ask for, configured the same way for the server and the CLI.

The local engine is imported only when a local model is loaded: remote-only
use, ``--version`` and settings generation never load llama.cpp.
"""

from __future__ import annotations

import dataclasses

from codellama_lsp.context.packing import estimate_tokens
from codellama_lsp.quant.backend import Backend, BackendInfo, EngineConfig
from codellama_lsp.quant.fim import FAMILIES
from codellama_lsp.quant.remote import RemoteConfig, RemoteEngine

from .settings import Settings


def local_config(settings: Settings, path: str) -> EngineConfig:
    model = settings.model
    return EngineConfig(
        model_path=path,
        n_ctx=model.n_ctx,
        n_gpu_layers=model.n_gpu_layers,
        n_threads=model.threads,
        flash_attn=model.flash_attn,
        kv_cache_type=model.kv_cache_type,
        cpu_repack=model.cpu_repack,
        document_states=model.document_states,
        document_state_mb=model.document_state_mb,
    )


def remote_config(settings: Settings) -> RemoteConfig:
    backend = settings.backend
    protocol = "openai" if backend.type == "openai" else f"llama-server-{backend.endpoint}"
    return RemoteConfig(
        protocol=protocol,
        url=backend.url,
        model=backend.model,
        api_key_env=backend.api_key_env,
        timeout_s=backend.timeout_ms / 1000,
        verify_tls=backend.verify_tls,
        n_ctx=settings.model.n_ctx,
        family=backend.family,
    )


def load_local(config: EngineConfig) -> Backend:
    """Load a GGUF model in-process (blocks: seconds to minutes)."""
    from codellama_lsp.quant.engine import Engine

    return Engine.load(config)


def connect_remote(config: RemoteConfig) -> RemoteEngine:
    """A remote backend; nothing is sent until its first request or probe."""
    return RemoteEngine(config)


def with_overrides(
    settings: Settings, *, model_path: str | None = None, max_tokens: int | None = None
) -> Settings:
    """The settings with the command line's ``--model``/``--max-tokens`` on top.

    ``--model`` names a local GGUF file, so it also means the local backend.
    """
    if model_path:
        settings = dataclasses.replace(
            settings,
            model=dataclasses.replace(settings.model, path=model_path),
            backend=dataclasses.replace(settings.backend, type="local"),
        )
    if max_tokens:
        settings = dataclasses.replace(
            settings, completion=dataclasses.replace(settings.completion, max_tokens=max_tokens)
        )
    return settings


class Estimate:
    """A backend that only budgets: prompts built without a model count tokens roughly.

    ``prompt`` and ``eval`` without ``--model`` build the prompt the server would
    build, with :func:`estimate_tokens` in place of the model's tokenizer.
    """

    def __init__(self, n_ctx: int, family: str = "codellama") -> None:
        fim = FAMILIES[family]
        self._info = BackendInfo(
            "none", "untokenized", n_ctx, family=fim.name, repo_level=fim.repo_level
        )

    def describe(self) -> BackendInfo:
        return self._info

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

"""The one interface every completion backend implements, and the types it speaks.

The local llama.cpp engine and each remote server protocol satisfy
:class:`Backend`; the pipeline only ever talks to that.  This module imports no
native library, so the command line, settings generation and remote-only use
never load llama.cpp.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

#: Fill-in-the-middle orders: suffix-prefix-middle, prefix-suffix-middle, or ``auto``:
#: the model family's own (SPM where it was trained with it, else PSM).
FimOrder = Literal["auto", "spm", "psm"]

StopReason = Literal[
    "eot", "eos", "stop_rule", "max_tokens", "time_budget", "context_full", "cancelled"
]

#: Called with the text generated so far; returns how much to keep once complete, else None.
StopRule = Callable[[str], int | None]
#: Makes a fresh stop rule (rules keep state per text), one for each further candidate.
StopRules = Callable[[], StopRule]


@dataclass(frozen=True)
class EngineConfig:
    """What to load for the local backend; equal configs share one loaded model."""

    model_path: str
    n_ctx: int = 16384
    n_gpu_layers: int = -1
    n_threads: int = 0
    n_batch: int = 512
    #: "auto" (on when llama.cpp was built with a GPU backend), "on" or "off".
    flash_attn: str = "auto"
    #: KV cache element type: "f16", or "q8_0" (half the memory; needs flash attention).
    kv_cache_type: str = "f16"
    #: llama.cpp's CPU weight repacking: "auto" (off on AMX CPUs), "on" or "off".
    cpu_repack: str = "auto"
    #: Documents whose KV state is kept in RAM for a return (LRU; 0: none).
    document_states: int = 4
    #: Memory those states may take, in MiB.
    document_state_mb: int = 4096


@dataclass(frozen=True)
class CompletionRequest:
    prefix: str
    suffix: str
    max_tokens: int = 128
    fim_order: FimOrder = "auto"
    #: Repository context, written before the FIM tokens (dropped first when space runs out).
    context: str = ""
    #: Repository-level context (families trained with it): (path, text) per file, in
    #: prompt order, written after the repository's name and before the current file.
    files: tuple[tuple[str, str], ...] = ()
    #: The repository's name and the current file's path (repository-level prompts).
    repo: str = ""
    path: str = ""
    #: Generation stops after this long (milliseconds from the request; 0: no limit).
    time_budget_ms: float = 0.0
    #: Prompt-lookup decoding: tokens guessed per step from n-grams of the prompt (0: off).
    prompt_lookup: int = 0
    #: Only evaluate the prompt (warming ahead of a request); no tokens are generated.
    warm: bool = False
    #: The document the prompt is for: backends that keep per-document state key it by this.
    document: str = ""
    #: Distinct suggestions wanted, best first (the local model; remote servers give one).
    candidates: int = 1
    #: Back the prompt off to the last whole token of the prefix and make the first
    #: generated tokens spell what was removed (the local model; remote servers ignore it).
    token_healing: bool = False
    #: Computed ahead (prefetch): the local model evaluates and generates it on a side
    #: sequence, so the prompt loaded for typing stays in its KV cache; a later request
    #: that shares more with the side sequence takes it over.
    aside: bool = False


@dataclass(frozen=True)
class CompletionResult:
    text: str
    prompt_tokens: int
    reused_tokens: int
    generated_tokens: int
    stop_reason: StopReason
    tokenize_ms: float
    ttft_ms: float
    total_ms: float
    context_tokens: int = 0
    #: Prompt-lookup decoding: guessed tokens checked, and how many the model agreed with.
    drafted_tokens: int = 0
    accepted_tokens: int = 0
    #: The backend said anything at all. False: cancelled or out of time before a
    #: remote server answered, which tells nothing about its health either way.
    answered: bool = True
    #: The further candidates' texts, best first (``CompletionRequest.candidates``).
    alternatives: tuple[str, ...] = ()
    #: What token healing took off the end of the prompt (the text starts after it).
    healed: str = ""

    @property
    def evaluated_tokens(self) -> int:
        """Prompt tokens the model had to evaluate: what this request cost."""
        return self.prompt_tokens - self.reused_tokens


@dataclass(frozen=True)
class BackendInfo:
    """What a backend is, for logs, status bars, cache keys and prompt budgets."""

    #: "local", "llama-server" or "openai".
    kind: str
    #: The model file, or the server's protocol and URL: names the backend in logs.
    label: str
    #: The context window prompts are budgeted for.
    n_ctx: int
    #: Estimated memory of weights and KV cache (0 when not known, e.g. remote).
    memory_bytes: int = 0
    #: Layers offloaded to a GPU (local only).
    gpu_layers: int = 0
    #: Measured prompt evaluation speed, tokens per second (0: not known yet).
    #: Cold prompts are sized with it so that their first token stays in budget.
    prompt_tokens_per_s: float = 0.0
    #: The model family whose FIM format prompts take (``quant.fim.FAMILIES``).
    family: str = "codellama"
    #: Repository context goes as files (``CompletionRequest.files``), not a preamble.
    repo_level: bool = False


class Health:
    """Backoff after failures: 1 s, 2 s, 4 s ... up to 30 s between attempts.

    A local model never fails this way (its errors are the request's); a remote
    server that stops answering is left alone until the next retry time, so a
    down server costs nothing per keystroke.
    """

    def __init__(self, first_s: float = 1.0, max_s: float = 30.0) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self.failures = 0
        self.retry_at = 0.0
        self.last_error = ""
        self._lock = threading.Lock()

    def ready(self) -> bool:
        with self._lock:
            return self.failures == 0 or time.monotonic() >= self.retry_at

    def failed(self, error: str) -> bool:
        """Record a failure; True when it is the first of a run (tell the user once)."""
        with self._lock:
            self.failures += 1
            delay = min(self.max_s, self.first_s * 2 ** (self.failures - 1))
            self.retry_at = time.monotonic() + delay
            first = self.failures == 1
            self.last_error = error
            return first

    def succeeded(self) -> bool:
        """Record a success; True when it ends a run of failures (tell the user once)."""
        with self._lock:
            recovered = self.failures > 0
            self.failures = 0
            self.last_error = ""
            return recovered


class Backend(Protocol):
    """A completion backend: the local model or a remote server, treated alike.

    ``complete`` blocks (call it off the event loop) and stops between tokens
    when ``cancel`` is set; it raises :class:`~codellama_lsp.quant.errors.BackendUnavailable`
    when a server cannot be reached and ``InferenceError`` when the model fails.
    """

    def complete(
        self,
        request: CompletionRequest,
        cancel: threading.Event | None = None,
        stop: StopRule | None = None,
        more_stops: StopRules | None = None,
    ) -> CompletionResult:
        """``stop`` judges the first candidate; ``more_stops`` makes one for each other."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` inside a prompt: context packing budgets with it."""
        ...

    def prompt_text(self, request: CompletionRequest) -> str:
        """The prompt of ``request`` as the model sees it, for inspection."""
        ...

    def describe(self) -> BackendInfo: ...

    def health(self) -> Health: ...

    def forget(self, document: str) -> None:
        """Drop what is kept for ``document`` (it was closed); a no-op without such state."""
        ...

    def close(self) -> None: ...

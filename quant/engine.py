"""In-process inference with llama.cpp (llama-cpp-python).

One model, one generation at a time.  The engine keeps llama.cpp's KV cache
between requests and evaluates only the tokens after the longest prefix shared
with what is already in the cache, so a keystroke costs its new tokens.  It is
called from a worker thread; ``cancel`` is checked between prompt batches and
between decoded tokens so a superseded request stops quickly.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import llama_cpp  # before numpy: see this package's __init__
import numpy as np

from . import fim
from .backend import (
    BackendInfo,
    CompletionRequest,
    CompletionResult,
    EngineConfig,
    Health,
    StopReason,
    StopRule,
    StopRules,
)
from .errors import InferenceError, ModelFormatError, ModelNotFoundError

__all__ = ["CompletionRequest", "CompletionResult", "Engine", "EngineConfig", "memory_estimate"]

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"


#: GGML type ids of the KV cache types offered (ggml.h: GGML_TYPE_F16, GGML_TYPE_Q8_0).
KV_CACHE_TYPES = {"f16": 1, "q8_0": 8}
#: Bytes per KV cache element (q8_0: 32 values in 34 bytes).
_KV_BYTES = {"f16": 2.0, "q8_0": 34 / 32}


def backend_info() -> tuple[bool, str]:
    """Whether llama.cpp can offload to a GPU, and its system line (backends, CPU features)."""
    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    info = llama_cpp.llama_print_system_info()
    text = info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)
    return gpu, " ".join(text.split())


def memory_estimate(metadata: dict[str, str], file_bytes: int, n_ctx: int, kv_type: str) -> int:
    """Weights plus KV cache, in bytes: what must fit in (GPU) memory, roughly."""
    arch = metadata.get("general.architecture", "llama")
    try:
        layers = int(metadata[f"{arch}.block_count"])
        embd = int(metadata[f"{arch}.embedding_length"])
        heads = int(metadata[f"{arch}.attention.head_count"])
        kv_heads = int(metadata.get(f"{arch}.attention.head_count_kv", heads))
    except (KeyError, ValueError):
        return file_bytes
    kv = 2 * layers * n_ctx * (embd * kv_heads // max(heads, 1)) * _KV_BYTES[kv_type]
    return int(file_bytes + kv)


@dataclass(frozen=True)
class PreparedPrompt:
    tokens: list[int]
    prefix: str
    suffix: str
    #: Tokens of repository context at the start (0 when it was dropped to fit).
    context_tokens: int = 0
    #: Token healing: the bytes of the prompt's last token (the end of the prefix),
    #: which generation may spell again with other tokens (see ``_Generation``).
    heal: bytes = b""


#: Most candidates of one request: sequence 0 and 1..4 share one prompt's KV cells.
MAX_CANDIDATES = 5
#: The side sequence a prefetch is computed on (after the candidates' ones).
SIDE_SEQUENCE = MAX_CANDIDATES
#: Sequences the context is created with.
MAX_SEQUENCES = SIDE_SEQUENCE + 1


@dataclass
class _Side:
    """What the side sequence holds: a prefetched prompt and its generated tokens."""

    document: str
    tokens: list[int]
    #: Leading tokens it shares with sequence 0's cells (the rest are its own cells).
    shared: int


@contextlib.contextmanager
def _sequences(n: int, repack: bool = True) -> Iterator[None]:
    """Create llama.cpp contexts with ``n`` sequences in one unified KV cache, and load
    weights with or without llama.cpp's CPU repacking (its extra buffer types).

    llama-cpp-python's ``Llama`` has no argument for any of these, so its default
    context and model parameters are amended while it is constructed.  Unified:
    the candidates' and the prefetch's sequences share the prompt's cells instead
    of splitting ``n_ctx`` between them.
    """
    from llama_cpp import llama_cpp as C

    original = C.llama_context_default_params
    original_model = C.llama_model_default_params

    def amended() -> Any:
        params = original()
        params.n_seq_max = n
        params.kv_unified = True
        return params

    def amended_model() -> Any:
        params = original_model()
        params.use_extra_bufts = repack
        return params

    with _SEQUENCES_LOCK:
        C.llama_context_default_params = amended
        C.llama_model_default_params = amended_model
        try:
            yield
        finally:
            C.llama_context_default_params = original
            C.llama_model_default_params = original_model


#: llama.cpp's AMX kernels (weights repacked for Intel AMX) crash in the first
#: evaluation of quantized models on some AMX CPUs (ggml-org/llama.cpp#20824).
_AMX = "AMX_INT8 = 1"


def cpu_repack(setting: str, system: str) -> bool:
    """Whether to let llama.cpp repack weights for this CPU (``model.cpuRepack``)."""
    if setting in ("on", "off"):
        return setting == "on"
    return _AMX not in system


_SEQUENCES_LOCK = threading.Lock()


def _llama_kwargs(config: EngineConfig, gpu: bool) -> dict[str, Any]:
    """``Llama(...)`` arguments: threads, flash attention and the KV cache type."""
    kwargs: dict[str, Any] = {
        "n_ctx": config.n_ctx,
        "n_gpu_layers": config.n_gpu_layers,
        "n_batch": config.n_batch,
        "verbose": False,
    }
    if config.n_threads > 0:
        kwargs["n_threads"] = config.n_threads
        kwargs["n_threads_batch"] = config.n_threads
    else:
        cores = os.cpu_count() or 2
        kwargs["n_threads"] = max(1, cores // 2) if cores > 4 else cores
        kwargs["n_threads_batch"] = cores
    flash = config.flash_attn == "on" or (config.flash_attn == "auto" and gpu)
    if config.kv_cache_type not in KV_CACHE_TYPES:
        raise ModelFormatError(f"unknown KV cache type {config.kv_cache_type!r}")
    if config.kv_cache_type != "f16" and not flash:
        # llama.cpp only quantizes the V cache with flash attention.
        log.info("kv cache %s needs flash attention: turning it on", config.kv_cache_type)
        flash = True
    kwargs["flash_attn"] = flash
    kwargs["type_k"] = kwargs["type_v"] = KV_CACHE_TYPES[config.kv_cache_type]
    return kwargs


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ModelNotFoundError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelNotFoundError(f"model path is not a file: {path}")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ModelFormatError(
            f"{path}: not a GGUF file (starts with {magic!r}, expected {GGUF_MAGIC!r})"
        )


def _common_prefix(cached: np.ndarray, tokens: list[int]) -> int:
    n = min(len(cached), len(tokens))
    if n == 0:
        return 0
    diff = np.flatnonzero(cached[:n] != np.asarray(tokens[:n], dtype=cached.dtype))
    return int(diff[0]) if diff.size else n


@dataclass
class _SavedState:
    """One document's KV sequence, copied out of llama.cpp with the tokens it holds."""

    tokens: np.ndarray
    data: Any  # ctypes.c_uint8 array
    size: int


#: Sequences shorter than this are not worth keeping: re-evaluating them is cheap.
_MIN_PARK_TOKENS = 32


class DocumentStates:
    """KV state of recently used documents, in RAM, least recently used evicted first.

    The model's context holds one document's prompt at a time (sequence 0).
    When a request comes for another document, the current one's sequence is
    copied out with ``llama_state_seq_get_data`` and the new document's, if it
    is kept here and shares more with the new prompt than what is loaded, is
    copied back in with ``llama_state_seq_set_data``: coming back to a file then
    costs only what changed in it since.  At most ``slots`` states and
    ``limit_bytes`` are kept.
    """

    def __init__(self, slots: int, limit_bytes: int) -> None:
        self.slots = max(0, slots)
        self.limit_bytes = max(0, limit_bytes)
        self._states: OrderedDict[str, _SavedState] = OrderedDict()

    @property
    def used_bytes(self) -> int:
        return sum(state.size for state in self._states.values())

    def __len__(self) -> int:
        return len(self._states)

    def documents(self) -> list[str]:
        """Kept documents, least recently used first."""
        return list(self._states)

    def get(self, key: str) -> _SavedState | None:
        return self._states.get(key)

    def forget(self, key: str) -> None:
        self._states.pop(key, None)

    def clear(self) -> None:
        self._states.clear()

    def park(self, key: str, ctx: Any, tokens: np.ndarray) -> None:
        """Copy sequence 0 out under ``key``, evicting the least recently used to make room."""
        from llama_cpp import llama_cpp as C

        self._states.pop(key, None)
        if self.slots == 0 or len(tokens) < _MIN_PARK_TOKENS:
            return
        size = int(C.llama_state_seq_get_size(ctx, 0))
        if size <= 0 or size > self.limit_bytes:
            log.info(
                "document state of %s not kept: %.1f MiB is over the %.0f MiB limit",
                key,
                size / 2**20,
                self.limit_bytes / 2**20,
            )
            return
        while self._states and (
            len(self._states) >= self.slots or self.used_bytes + size > self.limit_bytes
        ):
            old, state = self._states.popitem(last=False)
            log.info(
                "document state of %s evicted (%d tokens, %.1f MiB; least recently used)",
                old,
                len(state.tokens),
                state.size / 2**20,
            )
        data = (ctypes.c_uint8 * size)()
        written = int(C.llama_state_seq_get_data(ctx, data, size, 0))
        if written <= 0:
            return
        self._states[key] = _SavedState(tokens.copy(), data, written)
        log.info(
            "document state of %s kept: %d tokens, %.1f MiB (%d kept, %.1f of %.0f MiB)",
            key,
            len(tokens),
            written / 2**20,
            len(self._states),
            self.used_bytes / 2**20,
            self.limit_bytes / 2**20,
        )

    def restore(self, key: str, ctx: Any, memory: Any) -> np.ndarray | None:
        """Put ``key``'s sequence back as sequence 0; its tokens, or None when that failed."""
        from llama_cpp import llama_cpp as C

        state = self._states.pop(key, None)
        if state is None:
            return None
        C.llama_memory_seq_rm(memory, 0, -1, -1)
        if int(C.llama_state_seq_set_data(ctx, state.data, state.size, 0)) <= 0:
            C.llama_memory_seq_rm(memory, 0, -1, -1)
            return None
        return state.tokens


class Engine:
    """A loaded Code Llama model and its KV cache: the local :class:`~.backend.Backend`."""

    def __init__(self, config: EngineConfig, llama: Any) -> None:
        self.config = config
        self._llm = llama
        self._lock = threading.Lock()
        model = llama._model
        self._vocab = model.vocab
        self._n_vocab = int(llama.n_vocab())
        self._texts: dict[str, int] | None = None
        self.fim = fim.resolve(
            config.model_path,
            {str(k): str(v) for k, v in llama.metadata.items()},
            self._find_token,
            self._token_text,
            bos=int(model.token_bos()) if model.add_bos_token() else None,
            eos=int(model.token_eos()),
        )
        self._controls = set(self.fim.controls)
        from llama_cpp import llama_cpp as C

        #: SentencePiece (Code Llama) prefixes text with "▁"; byte-level BPE does not.
        self._spm = int(C.llama_vocab_type(self._vocab)) == int(C.LLAMA_VOCAB_TYPE_SPM)
        # Tokenizing "☺" + text and dropping the marker's tokens encodes text
        # without SentencePiece's leading "▁" (Code Llama's suffix encoding).
        self._marker = self._tokenize("☺") if self._spm else []
        #: ``completion.fimOrder`` values this family was not trained with, logged once.
        self._order_warned: set[str] = set()
        #: Filled in by load(): memory estimate and layers offloaded to a GPU.
        self.memory_bytes = 0
        self.gpu_layers = 0
        self._health = Health()
        #: The document whose prompt is in the KV cache (sequence 0).
        self._active: str | None = None
        self.states = DocumentStates(config.document_states, config.document_state_mb * 2**20)
        #: Prompt evaluation speed, tokens per second: measured at load, then from requests.
        self._rate = 0.0
        #: Closed documents whose kept state is dropped at the next chance.
        self._forgotten: set[str] = set()
        #: The prefetch on the side sequence, if any.
        self._side: _Side | None = None
        #: Token healing: every token's bytes, and the tokens allowed per text to spell.
        self._pieces: list[bytes] | None = None
        self._spelling: dict[bytes, np.ndarray] = {}

    @classmethod
    def load(cls, config: EngineConfig) -> Engine:
        """Load the model; errors name the file and what is wrong with it."""
        path = Path(config.model_path).expanduser()
        _check_file(path)
        from llama_cpp import Llama

        gpu, system = backend_info()
        kwargs = _llama_kwargs(config, gpu)
        flash = bool(kwargs["flash_attn"])
        log.info(
            "llama.cpp backend: %s; %s",
            "GPU offload available" if gpu else "CPU only (built without a GPU backend)",
            system,
        )
        repack = cpu_repack(config.cpu_repack, system)
        if not repack:
            log.info(
                "llama.cpp CPU weight repacking off (model.cpuRepack %s%s)",
                config.cpu_repack,
                ": an AMX CPU, whose AMX kernels crash with quantized models"
                if config.cpu_repack == "auto"
                else "",
            )
        started = time.perf_counter()
        try:
            with _sequences(MAX_SEQUENCES, repack):
                llama = Llama(str(path), **kwargs)
        except ValueError as exc:
            raise ModelFormatError(
                f"{path}: llama.cpp could not load this GGUF file "
                f"(truncated, corrupt or an unsupported architecture): {exc}"
            ) from exc
        try:
            engine = cls(config, llama)
        except Exception:
            llama.close()
            raise
        layers = int(llama.metadata.get("llama.block_count", "0") or 0)
        offloaded = (
            0
            if not gpu
            else layers
            if config.n_gpu_layers < 0
            else min(config.n_gpu_layers, layers)
        )
        estimate = memory_estimate(
            llama.metadata, path.stat().st_size, config.n_ctx, config.kv_cache_type
        )
        log.info(
            "loaded %s in %.0f ms: %s fill-in-the-middle (tokens from its %s, orders %s%s) "
            "n_ctx=%d layers on GPU %d/%d threads=%s flash_attn=%s "
            "kv_cache=%s memory estimate %.2f GB (weights %.2f GB + KV cache)",
            path,
            (time.perf_counter() - started) * 1000,
            engine.fim.family.title,
            engine.fim.found_by,
            "/".join(engine.fim.family.orders).upper(),
            ", repository-level context" if engine.fim.repo_level else "",
            config.n_ctx,
            offloaded,
            layers,
            kwargs["n_threads"],
            "on" if flash else "off",
            config.kv_cache_type,
            estimate / 1e9,
            path.stat().st_size / 1e9,
        )
        engine.memory_bytes = estimate
        engine.gpu_layers = offloaded
        engine.measure_prompt_rate()
        return engine

    def measure_prompt_rate(self) -> float:
        """Time prompt evaluation, so that the first prompt can already be sized to the machine."""
        with self._lock:
            llm = self._llm
            filler = self._tokenize("def f(x):\n    return x\n" * 200)
            # The first evaluation allocates llama.cpp's buffers: not timed.
            llm.n_tokens = 0
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            llm.eval([*self._bos(), *filler[:7]])
            # Then batches one after the other, as a prompt is evaluated, until a
            # quarter of a second or 1024 tokens: a slow machine is measured on a
            # small batch, a fast one at positions a real prompt reaches.
            step = max(16, min(self.config.n_batch, 256))
            evaluated, seconds, size = 0, 0.0, 16
            while seconds < 0.25 and evaluated < min(1024, self.config.n_ctx // 2):
                batch = (filler * 8)[evaluated : evaluated + size]
                started = time.perf_counter()
                llm.eval(batch)
                seconds += time.perf_counter() - started
                evaluated += len(batch)
                size = step
            rate = evaluated / max(seconds, 1e-6)
            llm.n_tokens = 0
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            self._rate = rate
        log.info("prompt evaluation: %.0f tokens/s measured at load", rate)
        return rate

    def _bos(self) -> list[int]:
        return [] if self.fim.bos is None else [self.fim.bos]

    def _observe_rate(self, tokens: int, seconds: float) -> None:
        """Follow the speed real prompts are evaluated at (big evaluations only)."""
        if tokens < 64 or seconds <= 0:
            return
        rate = tokens / seconds
        self._rate = rate if self._rate <= 0 else 0.7 * self._rate + 0.3 * rate

    def close(self) -> None:
        with self._lock:
            self.states.clear()
            self._llm.close()

    def describe(self) -> BackendInfo:
        return BackendInfo(
            kind="local",
            label=self.config.model_path,
            n_ctx=self.config.n_ctx,
            memory_bytes=self.memory_bytes,
            gpu_layers=self.gpu_layers,
            prompt_tokens_per_s=self._rate,
            family=self.fim.family.name,
            repo_level=self.fim.repo_level,
        )

    def health(self) -> Health:
        """Always ready: a local model's failures are the failing request's error."""
        return self._health

    def forget(self, document: str) -> None:
        """Never blocks (the event loop calls it): while a generation runs, done after it."""
        self._forgotten.add(document)
        if self._lock.acquire(blocking=False):
            try:
                self._drop_forgotten()
            finally:
                self._lock.release()

    def _drop_forgotten(self) -> None:
        while self._forgotten:
            document = self._forgotten.pop()
            self.states.forget(document)

    def _switch(self, document: str, tokens: list[int]) -> None:
        """Make ``document``'s KV state the loaded one, keeping the one it replaces.

        Called with the lock held, before the common prefix is taken: the
        loaded sequence is copied out for a later return, and ``document``'s own
        is copied back in when it shares more with the new prompt.
        """
        if document == self._active:
            return
        self._drop_side()
        llm = self._llm
        loaded = llm.input_ids[: llm.n_tokens]
        here = _common_prefix(loaded, tokens)
        saved = self.states.get(document)
        there = _common_prefix(saved.tokens, tokens) if saved is not None else 0
        if self._active is not None and here < len(loaded):
            self.states.park(self._active, llm._ctx.ctx, loaded)
        if there > here:
            started = time.perf_counter()
            restored = self.states.restore(document, llm._ctx.ctx, llm._ctx.memory)
            if restored is None:
                llm.n_tokens = 0
                log.warning("document state of %s could not be restored", document)
            else:
                llm.input_ids[: len(restored)] = restored
                llm.n_tokens = len(restored)
                log.info(
                    "document state of %s restored: %d tokens in %.1f ms (%d reusable)",
                    document,
                    len(restored),
                    (time.perf_counter() - started) * 1000,
                    there,
                )
        self._active = document

    def _drop_side(self) -> None:
        if self._side is not None:
            from llama_cpp import llama_cpp as C

            C.llama_memory_seq_rm(self._llm._ctx.memory, SIDE_SEQUENCE, -1, -1)
            self._side = None

    def _adopt_side(self, tokens: list[int]) -> None:
        """After an accept the next prompt continues the prefetched one: make the side
        sequence sequence 0 (relabelled cells, nothing copied) when it shares more."""
        side = self._side
        if side is None:
            return
        llm = self._llm
        here = _common_prefix(llm.input_ids[: llm.n_tokens], tokens)
        there = _common_prefix(np.asarray(side.tokens, dtype=llm.input_ids.dtype), tokens)
        if side.document == self._active and there > here:
            from llama_cpp import llama_cpp as C

            memory = llm._ctx.memory
            C.llama_memory_seq_rm(memory, 0, -1, -1)
            C.llama_memory_seq_cp(memory, SIDE_SEQUENCE, 0, -1, -1)
            llm.input_ids[: len(side.tokens)] = side.tokens
            llm.n_tokens = len(side.tokens)
            log.info(
                "prefetched sequence taken over: %d tokens (%d reusable)", len(side.tokens), there
            )
        self._drop_side()

    # -- tokens -----------------------------------------------------------

    def _tokenize(self, text: str) -> list[int]:
        if not text:
            return []
        ids = list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))
        if self._controls.isdisjoint(ids):
            return ids
        # Code Llama's FIM pieces are ordinary vocabulary entries, so source text
        # containing " <MID>" would tokenize into the real control token and
        # derail the prompt; spell such text with ordinary pieces instead.
        safe: list[int] = []
        for token in ids:
            if token in self._controls:
                safe.extend(self._spell(token))
            else:
                safe.append(token)
        return safe

    def _find_token(self, text: str) -> int | None:
        """The id of the vocabulary entry spelled ``text`` (a FIM token's text), if any."""
        if self._texts is None:
            # Special tokens are spelled with angle brackets: only those are kept.
            self._texts = {}
            for token in range(self._n_vocab):
                entry = self._token_text(token)
                if "<" in entry:
                    self._texts.setdefault(entry, token)
        return self._texts.get(text)

    def _token_text(self, token: int) -> str:
        """A token's vocabulary entry (``▁<PRE>``, ``<|fim_prefix|>``), not its bytes."""
        from llama_cpp import llama_cpp as C

        raw = C.llama_vocab_get_text(self._vocab, token) or b""
        return raw.decode("utf-8", errors="replace")

    def _spell(self, token: int) -> list[int]:
        text = self.piece(token, special=True).decode("utf-8", errors="replace")
        head = list(self._llm.tokenize(text[:-1].encode("utf-8"), add_bos=False, special=False))
        tail = self.tokenize_suffix(text[-1])
        return head + tail

    def tokenize_prefix(self, text: str) -> list[int]:
        return self._tokenize(text)

    def tokenize_suffix(self, text: str) -> list[int]:
        if not text:
            return []
        if not self._spm:
            return self._tokenize(text)
        ids = self._tokenize("☺" + text)
        n = len(self._marker)
        if ids[:n] == self._marker:
            return ids[n:]
        return ids

    def piece(self, token: int, *, special: bool = False) -> bytes:
        from llama_cpp import llama_cpp as C

        buf = ctypes.create_string_buffer(64)
        n = C.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = C.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, special)
        return buf.raw[:n]

    def count_tokens(self, text: str) -> int:
        """Exact tokens of ``text`` inside a prompt (context packing counts with it)."""
        return len(self.tokenize_suffix(text))

    def prompt_text(self, request: CompletionRequest) -> str:
        """The exact prompt of ``request`` as text, control tokens shown."""
        return self.render(self.prepare(request).tokens)

    def render(self, tokens: list[int]) -> str:
        """Prompt tokens as text, special tokens included, for inspection."""
        return b"".join(self.piece(t, special=True) for t in tokens).decode(
            "utf-8", errors="replace"
        )

    def prepare(self, request: CompletionRequest) -> PreparedPrompt:
        """Tokenize and fit the prompt into ``n_ctx`` minus the generation room."""
        budget = self.config.n_ctx - request.max_tokens - 8
        if budget <= 0:
            raise InferenceError(
                f"n_ctx {self.config.n_ctx} leaves no room for a prompt with "
                f"max_tokens {request.max_tokens}"
            )
        prefix, suffix = request.prefix, request.suffix
        context = self._context_tokens(request)
        prefix_ids = self.tokenize_prefix(prefix)
        suffix_ids = self.tokenize_suffix(suffix)
        if len(context) and len(context) + len(prefix_ids) + len(suffix_ids) > budget:
            context = fim.EMPTY_CONTEXT  # the context is the least necessary part
        if len(prefix_ids) + len(suffix_ids) > budget:
            # The suffix gets at most a quarter of the room; the prefix the rest.
            suffix = fim.fit_suffix(
                suffix, max(budget // 4, budget - len(prefix_ids)), self._count_suffix
            )
            suffix_ids = self.tokenize_suffix(suffix)
            prefix = fim.fit_prefix(prefix, budget - len(suffix_ids), self._count_prefix)
            prefix_ids = self.tokenize_prefix(prefix)
            if len(prefix_ids) + len(suffix_ids) > budget:
                prefix_ids = prefix_ids[len(prefix_ids) + len(suffix_ids) - budget :]
        heal = self._healable(prefix, prefix_ids) if request.token_healing else b""
        order = self._order(request.fim_order)
        tokens = fim.assemble(self.fim, prefix_ids, suffix_ids, order, context)
        return PreparedPrompt(tokens, prefix, suffix, len(context), heal)

    def _context_tokens(self, request: CompletionRequest) -> fim.ContextTokens:
        """The repository context in the family's format: files with their paths in a
        repository-level prompt (Qwen2.5-Coder, StarCoder2), else the commented preamble.

        Each file is tokenized on its own, so an unchanged file keeps its tokens
        (and its KV cells) whatever changes after it.
        """
        if not self.fim.repo_level or not (request.files or request.path):
            return fim.ContextTokens(preamble=self.tokenize_prefix(request.context))
        return fim.ContextTokens(
            repo=self._tokenize(request.repo + "\n") if request.repo else (),
            files=[
                (self._tokenize(path + "\n"), self._tokenize(text)) for path, text in request.files
            ],
            path=self._tokenize(request.path + "\n") if request.path else (),
        )

    def _order(self, wanted: str) -> str:
        """``wanted``, or the family's own order when it was not trained with it (logged once)."""
        order = self.fim.order(wanted)
        if order != wanted != "auto" and wanted not in self._order_warned:
            self._order_warned.add(wanted)
            log.warning(
                "%s was not trained with the %s fill-in-the-middle order; using %s "
                "(completion.fimOrder)",
                self.fim.family.title,
                wanted.upper(),
                order.upper(),
            )
        return order

    def _healable(self, prefix: str, prefix_ids: list[int]) -> bytes:
        """The last prefix token's bytes when token healing may spell it again, else nothing.

        Only inside a word (the text ends with a letter, digit or ``_``: the
        user is typing a name the model would have written as one token), and
        not the first token (its SentencePiece space is not the user's), nor a
        control or newline token, nor one that is not whole characters of the
        text (a byte of a split character).
        """
        if not prefix or not (prefix[-1].isalnum() or prefix[-1] == "_"):
            return b""
        if len(prefix_ids) < 2 or prefix_ids[-1] in self._controls:
            return b""
        piece = self.piece(prefix_ids[-1])
        if not piece or b"\n" in piece:
            return b""
        try:
            text = piece.decode("utf-8")
        except UnicodeDecodeError:
            return b""
        return piece if prefix.endswith(text) else b""

    def pieces(self) -> list[bytes]:
        """Every token's bytes (control tokens empty), for constrained decoding; built once."""
        if self._pieces is None:
            self._pieces = [
                b"" if t in self._controls or t in (self.fim.bos, self.fim.eos) else self.piece(t)
                for t in range(self._n_vocab)
            ]
        return self._pieces

    def spelling(self, heal: bytes) -> np.ndarray:
        """Tokens that may come next while ``heal`` is still to be spelled: those that start
        with it, and those that are a beginning of it (the rest is spelled after them)."""
        found = self._spelling.get(heal)
        if found is None:
            found = np.asarray(
                [
                    t
                    for t, piece in enumerate(self.pieces())
                    if piece and (piece.startswith(heal) or heal.startswith(piece))
                ],
                dtype=np.intc,
            )
            if len(self._spelling) > 256:
                self._spelling.clear()
            self._spelling[heal] = found
        return found

    def _count_prefix(self, text: str) -> int:
        return len(self.tokenize_prefix(text))

    def _count_suffix(self, text: str) -> int:
        return len(self.tokenize_suffix(text))

    # -- generation -------------------------------------------------------

    def complete(
        self,
        request: CompletionRequest,
        cancel: threading.Event | None = None,
        stop: StopRule | None = None,
        more_stops: StopRules | None = None,
    ) -> CompletionResult:
        """Greedy FIM generation until ``▁<EOT>``/EOS, a stop rule, the limits or cancellation.

        ``stop`` sees the text generated so far after every token and answers how
        much of it to keep when the suggestion is complete (None: go on);
        ``more_stops`` makes a rule for each further candidate.
        """
        cancel = cancel or threading.Event()
        started = time.perf_counter()
        with self._lock:
            locked = time.perf_counter()
            prepared = self.prepare(request)
            self._drop_forgotten()
            if not (request.aside and request.document == self._active):
                request = replace(request, aside=False)
                self._switch(request.document, prepared.tokens)
                self._adopt_side(prepared.tokens)
            tokenized = time.perf_counter()
            return _Generation(
                self, request, prepared, cancel, (stop, more_stops), started, locked
            ).run(tokenized)


class _Stream:
    """One candidate as it is generated: its text, its stop rule, why it ended."""

    def __init__(self, stop: StopRule | None, heal: bytes) -> None:
        self.stop = stop
        #: Token healing: bytes the next tokens must still spell (not shown: the user typed them).
        self.heal = heal
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""
        self.keep: int | None = None
        self.generated = 0
        self.stop_reason: StopReason = "cancelled"

    @property
    def result(self) -> str:
        return self.text if self.keep is None else self.text[: self.keep]

    def take(self, piece: bytes) -> None:
        """Add a token's bytes, less what still spells the healed text."""
        if self.heal:
            if piece.startswith(self.heal):
                piece, self.heal = piece[len(self.heal) :], b""
            else:  # a beginning of it: the rest is spelled by the next tokens
                piece, self.heal = b"", self.heal[len(piece) :]
        self.text += self.decoder.decode(piece)


class _Generation:
    """One greedy decode (one sequence, or several candidates); holds the engine lock.

    Token healing, exactly and at no cost when it changes nothing: the prompt's
    last two tokens are evaluated together with both their logits.  The first
    says which token the model would have put where the prefix's last token
    is, among those that spell its bytes (``Engine.spelling``).  When that is
    the token itself, decoding goes on from the whole prompt as without
    healing; otherwise the last token's KV cell is dropped (the prompt ends on
    the boundary before it) and generation starts with the model's token, the
    typed bytes stripped from what is shown.
    """

    def __init__(
        self,
        engine: Engine,
        request: CompletionRequest,
        prepared: PreparedPrompt,
        cancel: threading.Event,
        stops: tuple[StopRule | None, StopRules | None],
        started: float,
        locked: float,
    ) -> None:
        self.engine = engine
        self.llm = engine._llm
        self.request = request
        self.tokens = prepared.tokens
        self.context_tokens = prepared.context_tokens
        #: The bytes token healing may spell again (cleared when the split is natural).
        self.heal = prepared.heal if len(prepared.tokens) >= 2 and not request.warm else b""
        #: Healing chose another first token than the prompt's last: generation starts with it.
        self.forced: int | None = None
        self.cancel = cancel
        self.stop, self.more_stops = stops
        self.started = started
        self.locked = locked
        budget = request.time_budget_ms
        self.deadline = started + budget / 1000 if budget > 0 else None
        self.streams = [_Stream(self.stop, b"")]
        self.drafted = 0
        self.accepted = 0
        self.ttft = 0.0

    # -- the prompt -------------------------------------------------------

    def run(self, tokenized: float) -> CompletionResult:
        if self.request.aside:
            return self._result(self._run_aside(), tokenized)
        from llama_cpp import llama_cpp as C

        llm = self.llm
        tokens = self.tokens
        common = _common_prefix(llm.input_ids[: llm.n_tokens], tokens)
        # The last prompt token (two, when healing) is always evaluated: its logits
        # start decoding.  Warming needs no logits: a prompt in the cache costs nothing.
        reused = common if self.request.warm else min(common, len(tokens) - self._outputs)
        llm.n_tokens = reused
        C.llama_memory_seq_rm(llm._ctx.memory, 0, reused, -1)
        try:
            evaluating = time.perf_counter()
            if self._evaluate_on(0, tokens[reused:], reused):
                self.engine._observe_rate(len(tokens) - reused, time.perf_counter() - evaluating)
                if self.request.warm:
                    self.streams[0].stop_reason = "max_tokens"
                else:
                    self._heal(0)
                    if self.request.candidates > 1:
                        self._decode_candidates(min(self.request.candidates, MAX_CANDIDATES))
                    else:
                        self._decode()
        except RuntimeError as exc:
            # A failed decode leaves the cache in an unknown state.
            llm.n_tokens = 0
            C.llama_memory_seq_rm(llm._ctx.memory, -1, -1, -1)
            raise InferenceError(f"llama.cpp failed during generation: {exc}") from exc
        return self._result(reused, tokenized)

    @property
    def _outputs(self) -> int:
        """Prompt positions whose logits are needed: the last, and the one before it to heal."""
        return 2 if self.heal else 1

    def _run_aside(self) -> int:
        """Evaluate and generate on the side sequence, from the cells it shares with
        sequence 0; sequence 0 (the prompt typing continues from) is left as it is.

        A real request must not wait for a whole token of it: llama.cpp's abort
        callback stops its graph computation between two operations (CPU backends).
        """
        from llama_cpp import llama_cpp as C

        engine, llm, tokens = self.engine, self.llm, self.tokens
        engine._drop_side()
        common = _common_prefix(llm.input_ids[: llm.n_tokens], tokens)
        shared = min(common, len(tokens) - self._outputs)
        own = len(tokens) - shared + self.request.max_tokens * self.request.candidates
        if llm.n_tokens + own > engine.config.n_ctx:
            self.streams[0].stop_reason = "context_full"  # no room beside the loaded prompt
            return shared
        memory, ctx = llm._ctx.memory, llm._ctx.ctx
        C.llama_memory_seq_cp(memory, 0, SIDE_SEQUENCE, 0, shared)
        side = _Side(self.request.document, list(tokens[:shared]), shared)
        engine._side = side
        cancel = self.cancel

        def abort(_: Any) -> bool:
            return cancel.is_set()

        aborted = C.ggml_abort_callback(abort)  # referenced until it is unset below
        C.llama_set_abort_callback(ctx, aborted, None)
        try:
            evaluating = time.perf_counter()
            if not self._evaluate_on(SIDE_SEQUENCE, tokens[shared:], shared):
                engine._drop_side()
                return shared
            engine._observe_rate(len(tokens) - shared, time.perf_counter() - evaluating)
            n_prompt = len(tokens) - self._heal(SIDE_SEQUENCE)
            side.tokens = list(tokens[:n_prompt])
            wanted = max(1, min(self.request.candidates, MAX_CANDIDATES))
            side.tokens.extend(self._decode_candidates(wanted, SIDE_SEQUENCE, n_prompt))
            if self.cancel.is_set():
                engine._drop_side()  # an aborted decode leaves its cells unknown
        except RuntimeError as exc:
            engine._drop_side()
            if self.cancel.is_set():
                return shared  # aborted inside llama_decode
            raise InferenceError(f"llama.cpp failed during generation: {exc}") from exc
        finally:
            C.llama_set_abort_callback(ctx, C.ggml_abort_callback(), None)
        return shared

    def _evaluate_on(self, seq: int, tokens: list[int], start: int) -> bool:
        """Evaluate ``tokens`` on sequence ``seq`` from position ``start``, in batches,
        keeping the logits of the last ``_outputs`` (all in the last batch).  False when
        cancelled between two batches.  Sequence 0's tokens are followed in ``input_ids``."""
        from llama_cpp import llama_cpp as C

        llm, size, n = self.llm, self.engine.config.n_batch, len(tokens)
        if n == 0:
            return True  # all of it in the cache already (warming)
        outputs = 0 if self.request.warm else self._outputs
        cuts = list(range(0, n, size))
        if outputs > 1 and len(cuts) > 1 and n - cuts[-1] < outputs:
            cuts[-1] = n - outputs
        batch = C.llama_batch_init(size, 0, 1)
        try:
            for i, end in zip(cuts, [*cuts[1:], n], strict=True):
                if self.cancel.is_set():
                    return False
                chunk = tokens[i:end]
                batch.n_tokens = len(chunk)
                for j, token in enumerate(chunk):
                    batch.token[j] = token
                    batch.pos[j] = start + i + j
                    batch.n_seq_id[j] = 1
                    batch.seq_id[j][0] = seq
                    batch.logits[j] = i + j >= n - outputs
                if int(C.llama_decode(llm._ctx.ctx, batch)) != 0:
                    raise RuntimeError(f"llama_decode failed on sequence {seq}")
                if seq == 0:
                    llm.input_ids[start + i : start + end] = chunk
                    llm.n_tokens = start + end
        finally:
            C.llama_batch_free(batch)
        return True

    def _heal(self, seq: int) -> int:
        """Decide token healing from the logits of the prompt's last two positions.

        Returns how many prompt tokens were taken off ``seq`` (0 or 1).
        """
        heal, self.heal = self.heal, b""
        if not heal:
            return 0
        allowed = self.engine.spelling(heal)
        logits = self._logits(-2)
        pick = int(allowed[int(np.argmax(logits[allowed]))])
        if pick == self.tokens[-1]:
            return 0  # the natural split: the prompt stands as it is
        from llama_cpp import llama_cpp as C

        end = len(self.tokens) - 1
        C.llama_memory_seq_rm(self.llm._ctx.memory, seq, end, -1)
        if seq == 0:
            self.llm.n_tokens = end
        self.heal, self.forced = heal, pick
        self.streams[0].heal = heal
        return 1

    # -- generation -------------------------------------------------------

    def _result(self, reused: int, tokenized: float) -> CompletionResult:
        tokens = self.tokens
        now = time.perf_counter()
        first, *others = self.streams
        return CompletionResult(
            text=first.result,
            prompt_tokens=len(tokens),
            reused_tokens=reused,
            generated_tokens=sum(stream.generated for stream in self.streams),
            stop_reason=first.stop_reason,
            tokenize_ms=(tokenized - self.locked) * 1000,
            ttft_ms=((self.ttft or now) - self.started) * 1000,
            total_ms=(now - self.started) * 1000,
            context_tokens=self.context_tokens,
            drafted_tokens=self.drafted,
            accepted_tokens=self.accepted,
            alternatives=tuple(stream.result for stream in others),
            healed=self.heal.decode("utf-8", "replace") if self.forced is not None else "",
        )

    def _logits(self, index: int) -> np.ndarray:
        return np.ctypeslib.as_array(
            self.llm._ctx.get_logits_ith(index), shape=(self.engine._n_vocab,)
        )

    def _pick(self, index: int, stream: _Stream) -> int:
        """The most likely next token; while healing, among those that spell the healed text."""
        logits = self._logits(index)
        if not stream.heal:
            return int(np.argmax(logits))
        allowed = self.engine.spelling(stream.heal)
        return int(allowed[int(np.argmax(logits[allowed]))])

    def _emit(self, stream: _Stream, token: int) -> bool:
        """Give ``stream`` one generated token; True when it must end with it."""
        if not self.ttft:
            self.ttft = time.perf_counter()
        fim_tokens = self.engine.fim
        if token in fim_tokens.ends:
            stream.stop_reason = "eos" if token == fim_tokens.eos else "eot"
            return True
        stream.generated += 1
        stream.take(self.engine.piece(token))
        if stream.stop is not None:
            keep = stream.stop(stream.text)
            if keep is not None:
                stream.keep = keep
                stream.stop_reason = "stop_rule"
                return True
        if stream.generated >= self.request.max_tokens:
            stream.stop_reason = "max_tokens"
            return True
        if self.cancel.is_set():
            stream.stop_reason = "cancelled"
            return True
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            stream.stop_reason = "time_budget"
            return True
        return False

    def _decode(self) -> None:
        llm = self.llm
        stream = self.streams[0]
        n_ctx = self.engine.config.n_ctx
        lookup: Callable[[np.ndarray], np.ndarray] | None = None
        if self.request.prompt_lookup > 0:
            from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

            lookup = LlamaPromptLookupDecoding(
                max_ngram_size=3, num_pred_tokens=self.request.prompt_lookup
            )
        if self.cancel.is_set():
            return
        token = self.forced if self.forced is not None else self._pick(-1, stream)
        while not self._emit(stream, token):
            if llm.n_tokens >= n_ctx:
                stream.stop_reason = "context_full"
                return
            room = min(n_ctx - llm.n_tokens - 1, self.request.max_tokens - stream.generated - 1)
            draft: list[int] = []
            if lookup is not None and room > 0 and not stream.heal:
                history = np.append(llm.input_ids[: llm.n_tokens], token).astype(np.intc)
                draft = [int(t) for t in lookup(history)[:room]]
            if not draft:
                llm.eval([token])
                token = self._pick(-1, stream)
                continue
            # Prompt-lookup decoding: evaluate the token and a guessed continuation
            # copied from the prompt in one batch, keep the guesses the model agrees with.
            n_past = llm.n_tokens
            batch = [token, *draft]
            self.drafted += len(draft)
            llm._ctx.kv_cache_seq_rm(-1, n_past, -1)
            llm._batch.set_batch(batch=batch, n_past=n_past, logits_all=True)
            llm._ctx.decode(llm._batch)
            llm.input_ids[n_past : n_past + len(batch)] = batch
            agreed = 0
            token = self._pick(0, stream)
            while agreed < len(draft) and token == draft[agreed]:
                if self._emit(stream, token):
                    llm.n_tokens = n_past + agreed + 1
                    self.accepted += agreed + 1
                    return
                agreed += 1
                token = self._pick(agreed, stream)
            self.accepted += agreed
            # Only the token and the agreed guesses stay in the KV cache.
            llm.n_tokens = n_past + agreed + 1

    def _first_tokens(self, wanted: int) -> list[int]:
        """The greedy first token, then the next most likely ones that start a suggestion.

        Each candidate starts with a different token and is greedy after it, so
        they are distinct from the first step and ranked by how likely their start is.
        Healed, they are the tokens that spell the healed text, at its position.
        """
        if self.forced is not None:
            logits = self._logits(-2)
            allowed = self.engine.spelling(self.heal)
        else:
            logits = self._logits(-1)
            allowed = np.arange(self.engine._n_vocab, dtype=np.intc)
        order = allowed[np.argsort(-logits[allowed], kind="stable")]
        first = int(order[0]) if self.forced is None else self.forced
        ends = self.engine.fim.ends
        others = [int(t) for t in order[: wanted + 8] if int(t) not in ends and int(t) != first]
        return [first, *others[: wanted - 1]]

    def _decode_candidates(self, wanted: int, base: int = 0, n_prompt: int = -1) -> list[int]:
        """Several candidates at once: extra llama.cpp sequences share the prompt's KV cells
        (``llama_memory_seq_cp``) and each step decodes one token of every live candidate
        in one batch, so the prompt is evaluated once and a step costs about one token.

        The first candidate is generated on sequence ``base`` (0, or the side sequence
        of a prefetch) after ``n_prompt`` tokens; its evaluated tokens are returned.
        """
        from llama_cpp import llama_cpp as C

        llm = self.llm
        n_prompt = llm.n_tokens if n_prompt < 0 else n_prompt
        kept: list[int] = []  # the first candidate's tokens in the KV cache
        if self.cancel.is_set():
            return kept
        firsts = self._first_tokens(wanted)
        for _ in firsts[1:]:
            stop = self.more_stops() if self.more_stops is not None else None
            self.streams.append(_Stream(stop, self.heal))
        memory, ctx = llm._ctx.memory, llm._ctx.ctx
        seqs = [base, *range(1, len(firsts))]
        for seq in seqs[1:]:
            C.llama_memory_seq_rm(memory, seq, -1, -1)
            C.llama_memory_seq_cp(memory, base, seq, -1, -1)
        batch = C.llama_batch_init(len(firsts), 0, 1)
        try:
            tokens = list(firsts)
            live = list(range(len(firsts)))
            used = n_prompt if base == 0 else llm.n_tokens + n_prompt
            pos = n_prompt
            while True:
                live = [i for i in live if not self._emit(self.streams[i], tokens[i])]
                if not live:
                    return kept
                if used + len(live) > self.engine.config.n_ctx:
                    for i in live:
                        self.streams[i].stop_reason = "context_full"
                    return kept
                batch.n_tokens = len(live)
                for j, i in enumerate(live):
                    batch.token[j] = tokens[i]
                    batch.pos[j] = pos
                    batch.n_seq_id[j] = 1
                    batch.seq_id[j][0] = seqs[i]
                    batch.logits[j] = True
                if live[0] == 0:
                    kept.append(tokens[0])
                if int(C.llama_decode(ctx, batch)) != 0:
                    raise RuntimeError("llama_decode failed for the candidates' batch")
                used += len(live)
                pos += 1
                for j, i in enumerate(live):
                    tokens[i] = self._pick(j, self.streams[i])
        finally:
            C.llama_batch_free(batch)
            for seq in seqs[1:]:
                C.llama_memory_seq_rm(memory, seq, -1, -1)
            if base == 0:
                llm.input_ids[n_prompt : n_prompt + len(kept)] = kept
                llm.n_tokens = n_prompt + len(kept)

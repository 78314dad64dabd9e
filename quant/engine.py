"""In-process inference with llama.cpp (llama-cpp-python).

One model, one generation at a time.  The engine keeps llama.cpp's KV cache
between requests and evaluates only the tokens after the longest prefix shared
with what is already in the cache, so a keystroke costs its new tokens.  It is
called from a worker thread; ``cancel`` is checked between prompt batches and
between decoded tokens so a superseded request stops quickly.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
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
        ids = {
            "▁<PRE>": int(model.token_prefix()),
            "▁<SUF>": int(model.token_suffix()),
            "▁<MID>": int(model.token_middle()),
            "▁<EOT>": int(model.token_eot()),
        }
        fim.require_fim(ids, config.model_path)
        self.fim = fim.FimTokens(
            bos=int(model.token_bos()),
            eos=int(model.token_eos()),
            prefix=ids["▁<PRE>"],
            suffix=ids["▁<SUF>"],
            middle=ids["▁<MID>"],
            eot=ids["▁<EOT>"],
        )
        self._controls = {self.fim.prefix, self.fim.suffix, self.fim.middle, self.fim.eot}
        self._n_vocab = int(llama.n_vocab())
        # Tokenizing "☺" + text and dropping the marker's tokens encodes text
        # without SentencePiece's leading "▁" (Code Llama's suffix encoding).
        self._marker = self._tokenize("☺")
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
        started = time.perf_counter()
        try:
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
            "loaded %s in %.0f ms: n_ctx=%d layers on GPU %d/%d threads=%s flash_attn=%s "
            "kv_cache=%s memory estimate %.2f GB (weights %.2f GB + KV cache)",
            path,
            (time.perf_counter() - started) * 1000,
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
            llm.eval([self.fim.bos, *filler[:7]])
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
        context_ids = self.tokenize_prefix(request.context)
        prefix_ids = self.tokenize_prefix(prefix)
        suffix_ids = self.tokenize_suffix(suffix)
        if context_ids and len(context_ids) + len(prefix_ids) + len(suffix_ids) > budget:
            context_ids = []  # the context is the least necessary part
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
        tokens = fim.assemble(self.fim, prefix_ids, suffix_ids, request.fim_order, context_ids)
        return PreparedPrompt(tokens, prefix, suffix, len(context_ids))

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
    ) -> CompletionResult:
        """Greedy FIM generation until ``▁<EOT>``/EOS, a stop rule, the limits or cancellation.

        ``stop`` sees the text generated so far after every token and answers how
        much of it to keep when the suggestion is complete (None: go on).
        """
        cancel = cancel or threading.Event()
        started = time.perf_counter()
        with self._lock:
            locked = time.perf_counter()
            prepared = self.prepare(request)
            self._drop_forgotten()
            self._switch(request.document, prepared.tokens)
            tokenized = time.perf_counter()
            return _Generation(self, request, prepared, cancel, stop, started, locked).run(
                tokenized
            )


class _Generation:
    """One greedy decode; holds the engine lock for its whole life."""

    def __init__(
        self,
        engine: Engine,
        request: CompletionRequest,
        prepared: PreparedPrompt,
        cancel: threading.Event,
        stop: StopRule | None,
        started: float,
        locked: float,
    ) -> None:
        self.engine = engine
        self.llm = engine._llm
        self.request = request
        self.tokens = prepared.tokens
        self.context_tokens = prepared.context_tokens
        self.cancel = cancel
        self.stop = stop
        self.started = started
        self.locked = locked
        budget = request.time_budget_ms
        self.deadline = started + budget / 1000 if budget > 0 else None
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""
        self.keep: int | None = None
        self.generated = 0
        self.drafted = 0
        self.accepted = 0
        self.ttft = 0.0
        self.stop_reason: StopReason = "cancelled"

    def run(self, tokenized: float) -> CompletionResult:
        llm = self.llm
        tokens = self.tokens
        cached = llm.input_ids[: llm.n_tokens]
        reused = _common_prefix(cached, tokens)
        # The last prompt token is always evaluated: its logits start decoding.
        reused = min(reused, len(tokens) - 1)
        if self.request.warm:
            # Warming needs no logits: a prompt already in the cache costs nothing.
            reused = _common_prefix(cached, tokens)
        llm.n_tokens = reused
        try:
            batch = self.engine.config.n_batch
            rest = tokens[reused:]
            evaluating = time.perf_counter()
            for i in range(0, len(rest), batch):
                if self.cancel.is_set():
                    break
                llm.eval(rest[i : i + batch])
            else:
                self.engine._observe_rate(len(rest), time.perf_counter() - evaluating)
                if self.request.warm:
                    self.stop_reason = "max_tokens"
                else:
                    self._decode()
        except RuntimeError as exc:
            # A failed decode leaves the cache in an unknown state.
            llm.n_tokens = 0
            raise InferenceError(f"llama.cpp failed during generation: {exc}") from exc
        now = time.perf_counter()
        text = self.text if self.keep is None else self.text[: self.keep]
        return CompletionResult(
            text=text,
            prompt_tokens=len(tokens),
            reused_tokens=reused,
            generated_tokens=self.generated,
            stop_reason=self.stop_reason,
            tokenize_ms=(tokenized - self.locked) * 1000,
            ttft_ms=((self.ttft or now) - self.started) * 1000,
            total_ms=(now - self.started) * 1000,
            context_tokens=self.context_tokens,
            drafted_tokens=self.drafted,
            accepted_tokens=self.accepted,
        )

    def _argmax(self, index: int) -> int:
        logits = np.ctypeslib.as_array(
            self.llm._ctx.get_logits_ith(index), shape=(self.engine._n_vocab,)
        )
        return int(np.argmax(logits))

    def _emit(self, token: int) -> bool:
        """Take one generated token; True when generation must end with it."""
        if not self.ttft:
            self.ttft = time.perf_counter()
        fim_tokens = self.engine.fim
        if token == fim_tokens.eot:
            self.stop_reason = "eot"
            return True
        if token == fim_tokens.eos:
            self.stop_reason = "eos"
            return True
        self.generated += 1
        self.text += self.decoder.decode(self.engine.piece(token))
        if self.stop is not None:
            keep = self.stop(self.text)
            if keep is not None:
                self.keep = keep
                self.stop_reason = "stop_rule"
                return True
        if self.generated >= self.request.max_tokens:
            self.stop_reason = "max_tokens"
            return True
        if self.cancel.is_set():
            self.stop_reason = "cancelled"
            return True
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            self.stop_reason = "time_budget"
            return True
        return False

    def _decode(self) -> None:
        llm = self.llm
        n_ctx = self.engine.config.n_ctx
        lookup: Callable[[np.ndarray], np.ndarray] | None = None
        if self.request.prompt_lookup > 0:
            from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

            lookup = LlamaPromptLookupDecoding(
                max_ngram_size=3, num_pred_tokens=self.request.prompt_lookup
            )
        if self.cancel.is_set():
            return
        token = self._argmax(-1)
        while not self._emit(token):
            if llm.n_tokens >= n_ctx:
                self.stop_reason = "context_full"
                return
            room = min(n_ctx - llm.n_tokens - 1, self.request.max_tokens - self.generated - 1)
            draft: list[int] = []
            if lookup is not None and room > 0:
                history = np.append(llm.input_ids[: llm.n_tokens], token).astype(np.intc)
                draft = [int(t) for t in lookup(history)[:room]]
            if not draft:
                llm.eval([token])
                token = self._argmax(-1)
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
            token = self._argmax(0)
            while agreed < len(draft) and token == draft[agreed]:
                if self._emit(token):
                    llm.n_tokens = n_past + agreed + 1
                    self.accepted += agreed + 1
                    return
                agreed += 1
                token = self._argmax(agreed)
            self.accepted += agreed
            # Only the token and the agreed guesses stay in the KV cache.
            llm.n_tokens = n_past + agreed + 1

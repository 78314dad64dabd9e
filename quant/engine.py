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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import fim
from .errors import InferenceError, ModelFormatError, ModelNotFoundError

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class EngineConfig:
    model_path: str
    n_ctx: int = 16384
    n_gpu_layers: int = -1
    n_threads: int = 0
    n_batch: int = 512


@dataclass(frozen=True)
class CompletionRequest:
    prefix: str
    suffix: str
    max_tokens: int = 128
    fim_order: str = "spm"
    #: Repository context, written before the prefix (dropped first when space runs out).
    context: str = ""


@dataclass(frozen=True)
class CompletionResult:
    text: str
    prompt_tokens: int
    reused_tokens: int
    generated_tokens: int
    stop_reason: str  # "eot", "eos", "max_tokens", "context_full", "cancelled"
    tokenize_ms: float
    ttft_ms: float
    total_ms: float


@dataclass(frozen=True)
class PreparedPrompt:
    tokens: list[int]
    prefix: str
    suffix: str


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


class Engine:
    """A loaded Code Llama model and its KV cache."""

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

    @classmethod
    def load(cls, config: EngineConfig) -> Engine:
        """Load the model; errors name the file and what is wrong with it."""
        path = Path(config.model_path).expanduser()
        _check_file(path)
        from llama_cpp import Llama

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
        log.info(
            "loaded %s in %.0f ms: n_ctx=%d n_gpu_layers=%d threads=%s",
            path,
            (time.perf_counter() - started) * 1000,
            config.n_ctx,
            config.n_gpu_layers,
            kwargs["n_threads"],
        )
        return engine

    def close(self) -> None:
        with self._lock:
            self._llm.close()

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
        prefix, suffix = request.context + request.prefix, request.suffix
        prefix_ids = self.tokenize_prefix(prefix)
        suffix_ids = self.tokenize_suffix(suffix)
        if request.context and len(prefix_ids) + len(suffix_ids) > budget:
            prefix = request.prefix  # the context is the least necessary part
            prefix_ids = self.tokenize_prefix(prefix)
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
        tokens = fim.assemble(self.fim, prefix_ids, suffix_ids, request.fim_order)
        return PreparedPrompt(tokens, prefix, suffix)

    def _count_prefix(self, text: str) -> int:
        return len(self.tokenize_prefix(text))

    def _count_suffix(self, text: str) -> int:
        return len(self.tokenize_suffix(text))

    # -- generation -------------------------------------------------------

    def complete(
        self, request: CompletionRequest, cancel: threading.Event | None = None
    ) -> CompletionResult:
        """Greedy FIM generation until ``▁<EOT>``/EOS, max tokens or cancellation."""
        cancel = cancel or threading.Event()
        started = time.perf_counter()
        with self._lock:
            locked = time.perf_counter()
            prepared = self.prepare(request)
            tokenized = time.perf_counter()
            return self._generate(request, prepared.tokens, cancel, started, locked, tokenized)

    def _generate(
        self,
        request: CompletionRequest,
        tokens: list[int],
        cancel: threading.Event,
        started: float,
        locked: float,
        tokenized: float,
    ) -> CompletionResult:
        llm = self._llm
        cached = llm.input_ids[: llm.n_tokens]
        reused = _common_prefix(cached, tokens)
        # The last prompt token is always evaluated: its logits start decoding.
        reused = min(reused, len(tokens) - 1)
        llm.n_tokens = reused
        stop_reason = "cancelled"
        ttft = 0.0
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        parts: list[str] = []
        generated = 0
        try:
            batch = self.config.n_batch
            rest = tokens[reused:]
            for i in range(0, len(rest), batch):
                if cancel.is_set():
                    break
                llm.eval(rest[i : i + batch])
            else:
                stop_reason = "max_tokens"
                n_ctx = self.config.n_ctx
                while generated < request.max_tokens:
                    if cancel.is_set():
                        stop_reason = "cancelled"
                        break
                    logits = np.ctypeslib.as_array(
                        llm._ctx.get_logits_ith(-1), shape=(self._n_vocab,)
                    )
                    token = int(np.argmax(logits))
                    if not ttft:
                        ttft = time.perf_counter()
                    if token == self.fim.eot:
                        stop_reason = "eot"
                        break
                    if token == self.fim.eos:
                        stop_reason = "eos"
                        break
                    generated += 1
                    parts.append(decoder.decode(self.piece(token)))
                    if generated >= request.max_tokens:
                        break
                    if llm.n_tokens >= n_ctx:
                        stop_reason = "context_full"
                        break
                    llm.eval([token])
        except RuntimeError as exc:
            # A failed decode leaves the cache in an unknown state.
            llm.n_tokens = 0
            raise InferenceError(f"llama.cpp failed during generation: {exc}") from exc
        now = time.perf_counter()
        return CompletionResult(
            text="".join(parts),
            prompt_tokens=len(tokens),
            reused_tokens=reused,
            generated_tokens=generated,
            stop_reason=stop_reason,
            tokenize_ms=(tokenized - locked) * 1000,
            ttft_ms=((ttft or now) - started) * 1000,
            total_ms=(now - started) * 1000,
        )

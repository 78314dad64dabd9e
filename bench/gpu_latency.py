"""Cold long-prompt and warm keystroke latency of the in-process engine, on any backend.

Run: ``python bench/gpu_latency.py --model PATH [--prompt-tokens 4000] [--keystrokes 20]``.

Written for the question "what does a Code Llama 7B-shaped Q4_K_M model cost
on a CUDA build": it loads the model through ``Engine`` (the server's own
code path), builds a deterministic Python module of about ``--prompt-tokens``
tokens with the cursor on a fresh line inside a function, and measures

* model load time, and the llama.cpp log lines that say where the layers went;
* cold time to first token: the first request after load (includes backend
  warm-up), then the full prompt re-evaluated with the KV cache cleared;
* warm keystrokes: one character typed at a time, each a completion request
  like the server sends, so only the tokens after the shared prefix are
  evaluated;
* decode speed: single-token steps with the whole prompt in the KV cache
  (the synthetic model ends its FIM answers after a few tokens, so the
  completions alone are too short to time decoding).

Also runs on a CPU build with a small model, e.g.
``--model ~/.cache/codellama-lsp/synthetic/codellama-synthetic-tiny-s2-0.3.36.gguf``.
Not a test: prints a plain-text report to stdout (and to ``--report`` if given).
"""

from __future__ import annotations

import argparse
import ctypes
import platform
import random
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# llama_cpp before anything that imports numpy: on the H100 test machine (CUDA
# 13 build, numpy 2.5 with scipy-openblas) loading a model segfaulted when
# numpy had been imported first.
import llama_cpp

from codellama_lsp.quant.engine import CompletionRequest, CompletionResult, Engine, EngineConfig

TYPED = "for item in cart.items():"
SUFFIX = "\n    return total\n\n\ndef main() -> None:\n    print(checkout({}, {}))\n"
CURSOR_HEAD = (
    "\n\ndef checkout(cart: dict[str, int], prices: dict[str, float]) -> float:\n"
    '    """Total price of a cart, with the bulk discount applied."""\n'
    "    total = 0.0\n"
    "    "
)
LOG_PATTERN = re.compile(
    r"CUDA|cuda|GPU|offload|Device \d|flash|backend|buffer size|n_ctx|CPU_REPACK|Metal|Vulkan"
)

_WORDS = (
    "user",
    "order",
    "item",
    "price",
    "count",
    "total",
    "cache",
    "index",
    "token",
    "buffer",
    "record",
    "queue",
    "event",
    "handler",
    "config",
    "result",
    "value",
    "limit",
    "offset",
    "window",
    "batch",
    "stream",
    "file",
    "path",
    "node",
    "edge",
    "graph",
    "score",
    "weight",
    "label",
    "entry",
    "key",
    "name",
    "status",
    "retry",
    "timeout",
)


def make_source(seed: int = 11, functions: int = 400) -> str:
    """A long, plausible Python module; deterministic so runs are comparable."""
    rng = random.Random(seed)
    out = [
        '"""Inventory and order processing helpers."""\n',
        "from __future__ import annotations\n\nimport json\nimport math\n"
        "from dataclasses import dataclass, field\nfrom pathlib import Path\n",
    ]
    for i in range(functions):
        a, b, c = rng.sample(_WORDS, 3)
        if i % 7 == 0:
            out.append(
                f"\n\n@dataclass\nclass {a.title()}{b.title()}{i}:\n"
                f'    """A {a} with its {b} and {c}."""\n\n'
                f"    {a}: str\n    {b}: int = 0\n"
                f"    {c}: list[float] = field(default_factory=list)\n\n"
                f"    def {c}_total(self) -> float:\n"
                f"        return sum(self.{c}) * max(self.{b}, 1)\n"
            )
            continue
        n = rng.randint(2, 40)
        out.append(
            f"\n\ndef {a}_{b}_{i}({a}: list[int], {c}: int = {n}) -> dict[str, int]:\n"
            f'    """Group each {a} by its {b}, skipping values above {c}."""\n'
            f"    {b}s: dict[str, int] = {{}}\n"
            f"    for position, {a}_value in enumerate({a}):\n"
            f"        if {a}_value > {c}:\n"
            f"            continue\n"
            f'        key = f"{{{a}_value % {n}}}-{{position // {rng.randint(2, 9)}}}"\n'
            f"        {b}s[key] = {b}s.get(key, 0) + {a}_value\n"
            f"    if not {b}s:\n"
            f'        raise ValueError("no {a} at or below " + str({c}))\n'
            f"    return {b}s\n"
        )
    return "".join(out)


def fit_prefix(engine: Engine, source: str, target: int, max_tokens: int) -> str:
    """The longest head of ``source`` (whole lines) whose prompt is at most ``target`` tokens."""
    lines = source.splitlines(keepends=True)

    def size(n: int) -> int:
        prefix = "".join(lines[:n]) + CURSOR_HEAD
        request = CompletionRequest(prefix=prefix, suffix=SUFFIX, max_tokens=max_tokens)
        return len(engine.prepare(request).tokens)

    lo, hi = 0, len(lines)
    if size(hi) <= target:
        return "".join(lines) + CURSOR_HEAD
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size(mid) <= target:
            lo = mid
        else:
            hi = mid - 1
    return "".join(lines[:lo]) + CURSOR_HEAD


_log_lines: list[str] = []
#: ctypes must not free the callback while llama.cpp holds it.
_log_callbacks: list[Any] = []


def capture_llama_log() -> None:
    """Keep llama.cpp's log (silenced by ``verbose=False``) to report the backend it used."""

    @llama_cpp.llama_log_callback  # type: ignore[misc]
    def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        _log_lines.append(text.decode("utf-8", errors="replace"))

    _log_callbacks.append(callback)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


def load_engine(args: argparse.Namespace) -> Engine:
    return Engine.load(
        EngineConfig(
            str(args.model),
            n_ctx=args.n_ctx,
            n_gpu_layers=args.n_gpu_layers,
            n_threads=args.threads,
            n_batch=args.n_batch,
            flash_attn=args.flash_attn,
        )
    )


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


@dataclass
class Keystroke:
    char: str
    result: CompletionResult

    @property
    def evaluated(self) -> int:
        return self.result.prompt_tokens - self.result.reused_tokens


def measure_decode(engine: Engine, prompt_len: int, steps: int) -> float:
    """Decode tokens/s with ``prompt_len`` tokens already in the KV cache."""
    llm = engine._llm
    llm.n_tokens = prompt_len
    token = engine.tokenize_prefix(" total")[-1]
    started = time.perf_counter()
    for _ in range(steps):
        llm.eval([token])
    seconds = time.perf_counter() - started
    llm.n_tokens = prompt_len  # the next request reuses the prompt, not these tokens
    return steps / seconds


def run(args: argparse.Namespace, out: list[str]) -> None:
    def say(line: str = "") -> None:
        out.append(line)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    capture_llama_log()
    say("# gpu_latency: cold long-prompt TTFT and warm keystroke latency (codellama-lsp Engine)")
    say(f"model: {args.model} ({Path(args.model).stat().st_size / 2**30:.2f} GiB)")
    say(f"python {platform.python_version()}, llama-cpp-python {llama_cpp.__version__}")
    say(f"gpu offload supported: {bool(llama_cpp.llama_supports_gpu_offload())}")
    info = llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip()
    say(f"system info: {info}")
    say(
        f"settings: n_gpu_layers={args.n_gpu_layers} n_ctx={args.n_ctx} n_batch={args.n_batch} "
        f"flash_attn={args.flash_attn} "
        f"max_tokens={args.max_tokens} threads={args.threads or 'auto'}"
    )

    started = time.perf_counter()
    engine = load_engine(args)
    load_s = time.perf_counter() - started
    say(f"load: {load_s:.2f} s")
    say("llama.cpp log (backend lines):")
    for line in "".join(_log_lines).splitlines():
        if LOG_PATTERN.search(line):
            say(f"  | {line.strip()}")

    try:
        prefix = fit_prefix(engine, make_source(), args.prompt_tokens, args.max_tokens)
        request = CompletionRequest(prefix=prefix, suffix=SUFFIX, max_tokens=args.max_tokens)
        first = engine.complete(request)
        say()
        say(
            f"cold, first request after load: prompt {first.prompt_tokens} tokens, "
            f"ttft {first.ttft_ms:.1f} ms, total {first.total_ms:.1f} ms, "
            f"generated {first.generated_tokens} ({first.stop_reason}), text {first.text!r}"
        )
        cold: list[CompletionResult] = []
        for _ in range(args.cold_repeats):
            engine._llm.n_tokens = 0  # clear the cache: the whole prompt is evaluated again
            cold.append(engine.complete(request))
        if cold:
            ttfts = [r.ttft_ms for r in cold]
            say(
                f"cold, cache cleared (x{len(cold)}): evaluated "
                f"{cold[0].prompt_tokens - cold[0].reused_tokens} tokens, "
                f"ttft median {statistics.median(ttfts):.1f} ms (min {min(ttfts):.1f}, "
                f"max {max(ttfts):.1f}), prompt {cold[0].prompt_tokens / min(ttfts) * 1000:.0f}"
                " tok/s"
            )

        tps = measure_decode(engine, first.prompt_tokens, args.decode_tokens)
        say(
            f"decode: {tps:.1f} tok/s ({args.decode_tokens} single-token steps after a "
            f"{first.prompt_tokens}-token prompt)"
        )

        engine.complete(request)  # the cache now holds exactly the prompt being typed into
        keys: list[Keystroke] = []
        typed = ""
        for char in (TYPED * (args.keystrokes // len(TYPED) + 1))[: args.keystrokes]:
            typed += char
            req = CompletionRequest(
                prefix=prefix + typed, suffix=SUFFIX, max_tokens=args.max_tokens
            )
            keys.append(Keystroke(char, engine.complete(req)))
        say()
        say(f"warm keystrokes ({len(keys)}), typing {typed!r}:")
        say("  char  prompt  evaluated  generated  ttft_ms  total_ms")
        for k in keys:
            r = k.result
            say(
                f"  {k.char!r:5} {r.prompt_tokens:6d}  {k.evaluated:9d}  {r.generated_tokens:9d}"
                f"  {r.ttft_ms:7.1f}  {r.total_ms:8.1f}"
            )
        if keys:
            ttft = [k.result.ttft_ms for k in keys]
            total = [k.result.total_ms for k in keys]
            evaluated = [k.evaluated for k in keys]
            say(
                f"summary: ttft median {statistics.median(ttft):.1f} ms p90 {pct(ttft, 0.9):.1f}"
                f" ms; total median {statistics.median(total):.1f} ms p90 {pct(total, 0.9):.1f}"
                f" ms; evaluated tokens median {statistics.median(evaluated):.0f}"
                f" max {max(evaluated)}; generated median "
                f"{statistics.median(k.result.generated_tokens for k in keys):.0f}"
            )
    finally:
        engine.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--n-gpu-layers", type=int, default=-1)
    parser.add_argument("--prompt-tokens", type=int, default=4000)
    parser.add_argument("--keystrokes", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--flash-attn", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--n-ctx", type=int, default=8192)
    parser.add_argument("--n-batch", type=int, default=512)
    parser.add_argument("--threads", type=int, default=0, help="0: the engine's default")
    parser.add_argument("--cold-repeats", type=int, default=3)
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument("--report", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    args.model = args.model.expanduser()
    out: list[str] = []
    try:
        run(args, out)
    finally:
        if args.report:
            args.report.write_text("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Per-keystroke latency: our LSP server against llama-server ``/infill`` (the llama.vim setup).

Run: ``.venv/bin/python bench/keystroke.py [--shape small|tiny|7b | --model PATH]``.

A ~350-line Python module is generated (deterministically), a new line is
opened inside one of its functions, and one line of code is typed into it
character by character.  Every keystroke is replayed against

* our server over stdio: one ``textDocument/didChange`` (the inserted
  character) and one ``textDocument/inlineCompletion``, answered before the
  next keystroke; the tokens it evaluated come from its per-request log line
  (``evaluated_tokens``), or from ``codellama/lastPrompt`` if the line is missing;
* llama.cpp's ``llama-server`` (built from the same vendored llama.cpp by
  ``tests/support/llama_server.py``) started like llama.vim recommends,
  ``--cache-reuse 256``, with one ``POST /infill`` per keystroke carrying the
  whole prefix and suffix and ``cache_prompt: true``; the tokens it evaluated
  are ``timings.prompt_n`` (``tokens_evaluated`` is its full prompt size).

Both get the same model, text, ``n_ctx``, thread count, generation limit and
greedy decoding, and run one after the other (never at the same time) so they
do not compete for the CPU.  Latency is client-side wall time from sending the
keystroke to receiving the suggestion.  The first request of each (the cold
prompt, row ``open``) is shown but left out of the summary, which covers the
typed keystrokes only.

Not a test: prints a table to stdout.  The default shape ("small", ~0.2B
parameters) finishes in a few minutes on two CPU cores; ``--shape 7b`` gives
Code Llama 7B's real per-token cost (13 GB f16, slow on a CPU).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

# tests.support (generated models, llama-server) is not part of the installed
# package: it is imported from the repository root (see tests/support/__init__.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codellama_lsp.core.stats import STATS_DIR_ENV
from tests.support.llama_server import (
    LlamaServerProcess,
    ensure_llama_server,
    llama_cpp_version,
)
from tests.support.synthetic import (
    FAMILIES,
    SHAPES,
    ModelShape,
    default_cache_dir,
    ensure_model,
    fetch_family_vocab,
    write_model,
)

# Shapes only the benchmark needs, written next to the test models.  "small" was
# picked by measurement: big enough that prompt evaluation, not HTTP/JSON-RPC
# overhead, dominates a cold request (~10 s for 3,000 tokens on 2 cores), small
# enough that the whole run takes a few minutes.
BENCH_SHAPES = {
    "small": ModelShape(n_embd=1024, n_layer=8, n_head=16, n_head_kv=16, n_ff=2816),
}
TYPED = "total = sum(item.price for item in items)"
LOG_LINE = re.compile(r"textDocument/inlineCompletion id=(\d+) (.*)")


# -- the document ------------------------------------------------------------


def make_document(seed: int = 7, min_lines: int = 350) -> tuple[str, int, int]:
    """A realistic ~350-line module; returns (text, line, column) of the typing cursor.

    The cursor sits on a fresh, already indented line at the top of
    ``order_total``'s body, about three quarters into the file, as an editor
    leaves it after Enter; ``items`` is in scope there, as TYPED expects.
    """
    rng = random.Random(seed)
    nouns = ["order", "invoice", "customer", "product", "shipment", "payment", "refund", "cart"]
    fields = ["name", "email", "price", "quantity", "status", "created_at", "sku", "weight"]
    types = {
        "name": "str",
        "email": "str",
        "price": "float",
        "quantity": "int",
        "status": "str",
        "created_at": "datetime",
        "sku": "str",
        "weight": "float",
    }
    head = [
        '"""Order management: carts, invoices and shipments for the shop backend."""',
        "",
        "from __future__ import annotations",
        "",
        "import json",
        "import logging",
        "from dataclasses import dataclass, field",
        "from datetime import datetime, timedelta",
        "from pathlib import Path",
        "",
        "log = logging.getLogger(__name__)",
        "",
        "TAX_RATE = 0.2",
        "MAX_ITEMS = 500",
        "",
    ]
    lines = list(head)

    def block(noun: str) -> list[str]:
        cls = noun.capitalize()
        chosen = (
            ["sku", "name", "price", "quantity"] if noun == "product" else rng.sample(fields, 4)
        )
        article = "An" if noun[0] in "aeiou" else "A"
        out = [
            "",
            "",
            "@dataclass",
            f"class {cls}:",
            f'    """{article} {noun} as stored in the database."""',
            "",
        ]
        out += [f"    {f}: {types[f]}" for f in chosen]
        out += ["    tags: list[str] = field(default_factory=list)", ""]
        out += [
            "    def to_json(self) -> str:",
            f'        """Serialize the {noun} for the public API."""',
            "        data = {",
        ]
        out += [
            f'            "{f}": {"str(self." + f + ")" if f == "created_at" else "self." + f},'
            for f in chosen
        ]
        out += ["        }", "        return json.dumps(data, sort_keys=True)", ""]
        out += [
            "    def is_valid(self) -> bool:",
            f"        if not self.{chosen[0]}:",
            f'            log.warning("{noun} without {chosen[0]}: %r", self)',
            "            return False",
            f"        return len(self.tags) <= {rng.randint(5, 50)}",
            "",
            "",
            f"def load_{noun}s(path: Path) -> list[{cls}]:",
            f'    """Read {noun}s from a JSON lines file, skipping broken records."""',
            f"    result: list[{cls}] = []",
            "    for number, raw in enumerate(path.read_text().splitlines(), start=1):",
            "        try:",
            "            record = json.loads(raw)",
            "        except json.JSONDecodeError:",
            '            log.error("%s:%d: not JSON", path, number)',
            "            continue",
            f"        result.append({cls}(**record))",
            "    return result",
            "",
            "",
            f"def find_{noun}(items: list[{cls}], key: str) -> {cls} | None:",
            "    for item in items:",
            f"        if item.{chosen[1]} == key:",
            "            return item",
            "    return None",
        ]
        return out

    cursor_after = [
        "",
        "",
        "def order_total(items: list[Product]) -> float:",
        '    """Sum of the line prices, tax included, rounded to cents."""',
    ]
    cursor_tail = ["    return round(total * (1 + TAX_RATE), 2)"]
    order = [
        nouns[i % len(nouns)] + ("" if i < len(nouns) else f"_v{i // len(nouns)}")
        for i in range(64)
    ]
    order[0], order[3] = order[3], order[0]  # Product first, so order_total's hint exists
    cursor_line = -1
    for i, noun in enumerate(order):
        lines += block(noun)
        if i == 5:
            lines += cursor_after
            cursor_line = len(lines)
            lines += ["    ", *cursor_tail]
        if len(lines) >= min_lines and cursor_line >= 0:
            break
    lines += [""]
    return "\n".join(lines), cursor_line, 4


# -- models ------------------------------------------------------------------


def resolve_model(args: argparse.Namespace) -> Path:
    if args.model:
        return Path(args.model)
    if args.shape in SHAPES:
        return ensure_model(args.shape, family=args.family)
    cache = default_cache_dir()
    path = cache / f"{args.family}-synthetic-bench-{args.shape}-{llama_cpp_version()}.gguf"
    if not path.exists():
        partial = path.with_suffix(".partial")
        vocab = fetch_family_vocab(args.family, cache)
        shape = BENCH_SHAPES[args.shape]
        write_model(partial, vocab, shape, dtype="f16", family=args.family)
        partial.replace(path)
    return path


# -- our server over stdio ---------------------------------------------------


class LspClient:
    """Just enough JSON-RPC over stdio to drive our server and read its log lines."""

    #: Benchmark sessions' acceptance counts stay out of the user's own statistics.
    STATS_DIR = tempfile.mkdtemp(prefix="codellama-lsp-bench-stats-")

    def __init__(self, command: list[str]) -> None:
        env = {**os.environ, STATS_DIR_ENV: os.environ.get(STATS_DIR_ENV, self.STATS_DIR)}
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.log_lines: queue.Queue[str] = queue.Queue()
        self.stderr_tail: list[str] = []
        self._next_id = 0
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
            assert length is not None
            self.messages.put(json.loads(out.read(length)))

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stderr_tail = [*self.stderr_tail[-40:], line]
            self.log_lines.put(line)

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def request(self, method: str, params: Any) -> int:
        self._next_id += 1
        self.send({"id": self._next_id, "method": method, "params": params})
        return self._next_id

    def initialize(self, workspace: Path, options: dict[str, Any]) -> None:
        """The LSP handshake with ``options`` as initializationOptions."""
        self.call(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": workspace.as_uri(),
                "capabilities": {},
                "initializationOptions": options,
            },
        )
        self.notify("initialized", {})

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def response(self, request_id: int, timeout: float = 900.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self.messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(self._died(f"no answer to request {request_id}")) from None
            if "method" in message:
                if "id" in message:  # a request from the server: decline politely
                    self.send({"id": message["id"], "result": None})
                continue
            if message.get("id") == request_id:
                return message

    def call(self, method: str, params: Any, timeout: float = 900.0) -> dict[str, Any]:
        return self.response(self.request(method, params), timeout)

    def log_fields(self, request_id: int, timeout: float = 5.0) -> dict[str, str] | None:
        """The key=value fields of the server's log line for ``request_id``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.log_lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            match = LOG_LINE.search(line)
            if match and int(match.group(1)) == request_id:
                return dict(kv.split("=", 1) for kv in match.group(2).split() if "=" in kv)

    def _died(self, what: str) -> str:
        status = self.proc.poll()
        tail = "\n".join(self.stderr_tail[-20:])
        return f"{what} (server exit status {status}); stderr:\n{tail}"

    def close(self) -> None:
        try:
            self.call("shutdown", None, timeout=30)
            self.notify("exit", None)
            self.proc.wait(timeout=30)
        except (OSError, TimeoutError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


@dataclass
class Sample:
    latency_ms: float
    evaluated: int
    prompt: int
    generated: int
    #: Time the server itself reports (ours: total_ms of its log line; llama-server:
    #: prompt_ms + predicted_ms); the rest of ``latency_ms`` is transport and queueing.
    server_ms: float
    #: Server-side time to the first generated token (ours: ttft_ms of its log line;
    #: llama-server: prompt_ms), which leaves out how many tokens each one generates.
    ttft_ms: float
    text: str = ""
    #: Inline items offered (``completion.candidates``).
    items: int = 0


@dataclass
class Run:
    name: str
    cold: Sample | None = None
    keys: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Keystrokes that type the start of the shown suggestion (answered without the model).
    through: list[Sample] = field(default_factory=list)
    answers: dict[str, int] = field(default_factory=dict)


def run_ours(
    args: argparse.Namespace,
    model: Path,
    workspace: Path,
    text: str,
    line: int,
    col: int,
    prompt_lookup: int = 0,
    variant: tuple[str, dict[str, Any]] | None = None,
) -> Run:
    run = Run(f"ours + lookup {prompt_lookup}" if prompt_lookup else "ours")
    if variant is not None:
        run.name = variant[0]
    command = [sys.executable, "-m", "codellama_lsp.server", "--stdio", "--model", str(model)]
    client = LspClient(command)
    try:
        options = {
            "model": {"nCtx": args.n_ctx, "threads": args.threads},
            "completion": {
                "maxTokens": args.n_predict,
                "fimOrder": args.fim_order,
                # The whole file goes into both prompts, so llama-server gets the same text.
                "maxPrefixChars": 1_000_000,
                "maxSuffixChars": 1_000_000,
                "promptLookup": prompt_lookup,
            },
            "context": {"enable": args.context},
        }
        if variant is not None:
            _merge(options, variant[1])
        client.initialize(workspace, options)
        uri = (workspace / "orders.py").as_uri()
        # Load the model on a throwaway document so the cold row measures the prompt only.
        warm = (workspace / "warmup.py").as_uri()
        client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": warm, "languageId": "python", "version": 1, "text": "x\n"}},
        )
        started = time.perf_counter()
        client.call(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": warm},
                "position": {"line": 0, "character": 1},
                "context": {"triggerKind": 2},
            },
        )
        run.notes.append(f"model load + first request {time.perf_counter() - started:.1f} s")
        client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
        )
        version = 1
        for i in range(len(TYPED) + 1):
            t0 = time.perf_counter()
            if i:
                version += 1
                at = {"line": line, "character": col + i - 1}
                client.notify(
                    "textDocument/didChange",
                    {
                        "textDocument": {"uri": uri, "version": version},
                        "contentChanges": [
                            {"range": {"start": at, "end": at}, "text": TYPED[i - 1]}
                        ],
                    },
                )
            rid = client.request(
                "textDocument/inlineCompletion",
                {
                    "textDocument": {"uri": uri},
                    "position": {"line": line, "character": col + i},
                    "context": {"triggerKind": 2},
                },
            )
            answer = client.response(rid)
            latency = (time.perf_counter() - t0) * 1000
            if "error" in answer:
                raise RuntimeError(f"inlineCompletion failed: {answer['error']}")
            items = (answer.get("result") or {}).get("items") or []
            sample = _our_sample(client, rid, latency, items)
            if i == 0:
                run.cold = sample
            else:
                run.keys.append(sample)
        # Then the user types the first characters of the suggestion on screen.
        shown, typed = run.keys[-1].text if run.keys else "", 0
        while typed < min(5, len(shown) - 1):
            at = {"line": line, "character": col + len(TYPED) + typed}
            t0 = time.perf_counter()
            version += 1
            client.notify(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": uri, "version": version},
                    "contentChanges": [{"range": {"start": at, "end": at}, "text": shown[typed]}],
                },
            )
            typed += 1
            rid = client.request(
                "textDocument/inlineCompletion",
                {
                    "textDocument": {"uri": uri},
                    "position": {"line": line, "character": col + len(TYPED) + typed},
                    "context": {"triggerKind": 2},
                },
            )
            answer = client.response(rid)
            latency = (time.perf_counter() - t0) * 1000
            items = (answer.get("result") or {}).get("items") or []
            run.through.append(_our_sample(client, rid, latency, items))
        last = client.call("codellama/lastPrompt", None).get("result") or {}
        run.answers = dict(last.get("answers") or {})
    finally:
        client.close()
    return run


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    """``extra``'s settings over ``into``'s, section by section."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _variant(spec: str) -> tuple[str, dict[str, Any]]:
    """``NAME=JSON`` from the command line: a name for the report and settings over ours."""
    name, sep, raw = spec.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=JSON, got {spec!r}")
    try:
        settings = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"{name}: bad JSON: {exc}") from exc
    if not isinstance(settings, dict):
        raise argparse.ArgumentTypeError(f"{name}: settings must be a JSON object")
    return name, settings


def _our_sample(client: LspClient, rid: int, latency: float, items: list[dict[str, Any]]) -> Sample:
    text = items[0]["insertText"] if items else ""
    fields = client.log_fields(rid)
    if fields is not None and fields.get("source") in ("typed_through", "cache", "prefetch"):
        # No model work: nothing evaluated or generated.
        return Sample(latency, 0, 0, 0, float(fields["total_ms"]), 0.0, text, len(items))
    if fields is not None:
        return Sample(
            latency,
            int(fields["evaluated_tokens"]),
            int(fields["prompt_tokens"]),
            int(fields["generated_tokens"]),
            float(fields["total_ms"]),
            float(fields["ttft_ms"]),
            text,
            len(items),
        )
    last = client.call("codellama/lastPrompt", None).get("result")
    if not last:
        raise RuntimeError(client._died("no log line and no codellama/lastPrompt answer"))
    prompt, reused = int(last["promptTokens"]), int(last["reusedTokens"])
    return Sample(
        latency,
        prompt - reused,
        prompt,
        -1,
        float(last["totalMs"]),
        float(last["ttftMs"]),
        text,
        len(items),
    )


# -- llama-server ------------------------------------------------------------


def run_llama(args: argparse.Namespace, model: Path, text: str, line: int, col: int) -> Run:
    run = Run("llama-server")
    lines = text.split("\n")
    offset = sum(len(x) + 1 for x in lines[:line]) + col
    # --batch-size: /infill keeps at most 3/4 of a batch of prefix and 1/4 of suffix
    # tokens; a large logical batch lets the whole file in, as for our server.
    # Computation still runs in ubatches of 512, as in llama-cpp-python.
    extra = [
        "--threads", str(args.threads),
        "--threads-batch", str(args.threads),
        "--batch-size", str(args.n_ctx),
        "--flash-attn", "off",  # llama-cpp-python's default, which our server uses
        "--n-predict", str(args.n_predict),
    ]  # fmt: skip
    if args.fim_order != "psm" and args.llama_spm:
        extra.append("--spm-infill")
    run.notes.append(
        "fim order " + ("spm (--spm-infill)" if "--spm-infill" in extra else "psm (default)")
    )
    started = time.perf_counter()
    with LlamaServerProcess(
        model, ctx_size=args.n_ctx, parallel=1, cache_reuse=256, extra_args=extra
    ) as server:
        run.notes.append(f"start + model load {time.perf_counter() - started:.1f} s")
        run.notes.append(f"command: {' '.join(server.command()[1:])}")
        doc = text
        for i in range(len(TYPED) + 1):
            if i:
                doc = doc[: offset + i - 1] + TYPED[i - 1] + doc[offset + i - 1 :]
            cursor = offset + i
            body = {
                "input_prefix": doc[:cursor],
                "input_suffix": doc[cursor:],
                "input_extra": [],
                "prompt": "",
                "n_predict": args.n_predict,
                "cache_prompt": True,
                "temperature": 0.0,
                "top_k": 1,
                "stream": False,
            }
            t0 = time.perf_counter()
            answer = server.post("/infill", body)
            latency = (time.perf_counter() - t0) * 1000
            timings = answer["timings"]
            sample = Sample(
                latency,
                int(timings["prompt_n"]),
                int(answer["tokens_evaluated"]),
                int(timings["predicted_n"]),
                float(timings["prompt_ms"]) + float(timings["predicted_ms"]),
                float(timings["prompt_ms"]),
                str(answer["content"]),
            )
            if i == 0:
                run.cold = sample
            else:
                run.keys.append(sample)
    return run


# -- report ------------------------------------------------------------------


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def report_extra(ours: Run, lookup: Run | None, out: IO[str]) -> None:
    """Typed-through keystrokes, and prompt-lookup decoding against plain decoding."""
    if ours.through:
        lat = [s.latency_ms for s in ours.through]
        server = [s.server_ms for s in ours.through]
        out.write(
            f"\ntyping the first {len(lat)} characters of the shown suggestion "
            f"({ours.keys[-1].text[: len(lat)]!r}): client latency median "
            f"{statistics.median(lat):.2f} ms, "
            f"max {max(lat):.2f} ms; server total median {statistics.median(server):.3f} ms; "
            f"tokens evaluated {sum(s.evaluated for s in ours.through)}\n"
        )
    out.write(f"answers of our server: {ours.answers}\n")
    if lookup is None:
        return
    out.write(f"\nprompt-lookup decoding ({lookup.name}) against plain decoding (ours):\n")
    out.write(f"{'':<28}{'plain':>10}{'lookup':>10}\n")
    for name, pick in (
        ("median latency (ms)", lambda r: statistics.median(s.latency_ms for s in r.keys)),
        ("p90 latency (ms)", lambda r: p90([s.latency_ms for s in r.keys])),
        ("median server total (ms)", lambda r: statistics.median(s.server_ms for s in r.keys)),
        ("median tokens generated", lambda r: statistics.median(s.generated for s in r.keys)),
    ):
        out.write(f"{name:<28}{pick(ours):>10.1f}{pick(lookup):>10.1f}\n")
    same = sum(a.text == b.text for a, b in zip(ours.keys, lookup.keys, strict=True))
    out.write(f"identical suggestions: {same}/{len(ours.keys)}\n")


def report_variants(ours: Run, variants: list[Run], out: IO[str]) -> None:
    """Our default settings against each ``--variant``, over the same typed keystrokes."""
    out.write("\nour settings variants over the typed keystrokes:\n")
    names = ["ours", *(run.name for run in variants)]
    width = max(12, *(len(name) + 2 for name in names))
    out.write(f"{'':<30}" + "".join(f"{name:>{width}}" for name in names) + "\n")
    runs = [ours, *variants]
    for name, pick in (
        ("median latency (ms)", lambda r: statistics.median(s.latency_ms for s in r.keys)),
        ("p90 latency (ms)", lambda r: p90([s.latency_ms for s in r.keys])),
        ("median server total (ms)", lambda r: statistics.median(s.server_ms for s in r.keys)),
        ("median server ttft (ms)", lambda r: statistics.median(s.ttft_ms for s in r.keys)),
        ("median tokens evaluated", lambda r: statistics.median(s.evaluated for s in r.keys)),
        ("median tokens generated", lambda r: statistics.median(s.generated for s in r.keys)),
        ("median suggestions shown", lambda r: statistics.median(s.items for s in r.keys)),
        ("cold prompt (ms)", lambda r: r.cold.latency_ms if r.cold else float("nan")),
    ):
        out.write(f"{name:<30}" + "".join(f"{pick(run):>{width}.1f}" for run in runs) + "\n")
    for run in variants:
        same = sum(a.text == b.text for a, b in zip(ours.keys, run.keys, strict=True))
        out.write(f"first suggestion identical to ours ({run.name}): {same}/{len(ours.keys)}\n")


def report(ours: Run, llama: Run, out: IO[str]) -> None:
    header = (
        f"{'key':>5} {'char':>4} | {'ours eval':>9} {'prompt':>6} {'gen':>3} {'ms':>8} "
        f"{'srv ms':>8} | {'llama eval':>10} {'prompt':>6} {'gen':>3} {'ms':>8} {'srv ms':>8}"
    )
    out.write(header + "\n" + "-" * len(header) + "\n")

    def row(label: str, char: str, a: Sample, b: Sample) -> None:
        out.write(
            f"{label:>5} {char!s:>4} | {a.evaluated:>9} {a.prompt:>6} {a.generated:>3} "
            f"{a.latency_ms:>8.1f} {a.server_ms:>8.1f} | {b.evaluated:>10} {b.prompt:>6} "
            f"{b.generated:>3} {b.latency_ms:>8.1f} {b.server_ms:>8.1f}\n"
        )

    assert ours.cold is not None and llama.cold is not None
    row("open", "", ours.cold, llama.cold)
    for i, (a, b) in enumerate(zip(ours.keys, llama.keys, strict=True), start=1):
        row(str(i), repr(TYPED[i - 1]), a, b)

    def stats(run: Run) -> tuple[float, float, float, float, float]:
        lat = [s.latency_ms for s in run.keys]
        return (
            statistics.median(lat),
            p90(lat),
            statistics.median(s.evaluated for s in run.keys),
            statistics.median(s.ttft_ms for s in run.keys),
            statistics.median(s.generated for s in run.keys),
        )

    (om, op, oe, ot, og), (lm, lp, le, lt, lg) = stats(ours), stats(llama)
    out.write(f"\nover the {len(ours.keys)} typed keystrokes (the 'open' row excluded):\n")
    out.write(f"{'':<28}{'ours':>10}{'llama-server':>14}{'ours/llama':>12}\n")
    for name, mine, theirs in (
        ("median latency (ms)", om, lm),
        ("p90 latency (ms)", op, lp),
        ("median tokens evaluated", oe, le),
        ("median server ttft (ms)", ot, lt),
        ("median tokens generated", og, lg),
    ):
        ratio = f"{mine / theirs:.2f}" if theirs else "n/a"
        out.write(f"{name:<28}{mine:>10.1f}{theirs:>14.1f}{ratio:>12}\n")
    out.write(
        f"{'cold prompt (ms)':<28}{ours.cold.latency_ms:>10.1f}{llama.cold.latency_ms:>14.1f}"
        f"{ours.cold.latency_ms / llama.cold.latency_ms:>12.2f}\n"
    )
    last_ours = ours.keys[-1].text if ours.keys else ""
    last_llama = llama.keys[-1].text if llama.keys else ""
    out.write(f"\nlast suggestion: ours {last_ours!r}, llama-server {last_llama!r}\n")


def main(argv: list[str] | None = None) -> int:
    shapes = sorted({*SHAPES, *BENCH_SHAPES})
    parser = argparse.ArgumentParser(
        description="Replay a typing trace against our server and llama-server /infill."
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--shape", choices=shapes, default="small", help="generated model")
    source.add_argument("--model", metavar="PATH", help="a GGUF file instead of a generated one")
    parser.add_argument(
        "--family",
        choices=FAMILIES,
        default="codellama",
        help="the FIM family of the generated model (its vocabulary and architecture)",
    )
    parser.add_argument("--n-predict", type=int, default=16, help="= our completion.maxTokens")
    parser.add_argument("--n-ctx", type=int, default=8192, help="context size of both servers")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--fim-order",
        choices=["auto", "spm", "psm"],
        default="auto",
        help="ours (auto: the family's)",
    )
    parser.add_argument(
        "--llama-spm",
        action="store_true",
        help="start llama-server with --spm-infill too (llama.vim uses its default, PSM)",
    )
    parser.add_argument("--context", action="store_true", help="our workspace context on")
    parser.add_argument(
        "--prompt-lookup",
        type=int,
        default=0,
        metavar="N",
        help="also replay with completion.promptLookup N and compare (0: skip)",
    )
    parser.add_argument(
        "--variant",
        type=_variant,
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="also replay ours with these settings on top and compare, e.g. "
        """'heal off={"completion": {"tokenHealing": false}}' (repeatable)""",
    )
    args = parser.parse_args(argv)

    binary = ensure_llama_server()
    model = resolve_model(args)
    text, line, col = make_document()
    with tempfile.TemporaryDirectory(prefix="keystroke-bench-") as tmp:
        workspace = Path(tmp)
        (workspace / "orders.py").write_text(text, encoding="utf-8")
        ours = run_ours(args, model, workspace, text, line, col)
        lookup = (
            run_ours(args, model, workspace, text, line, col, args.prompt_lookup)
            if args.prompt_lookup > 0
            else None
        )
        variants = [
            run_ours(args, model, workspace, text, line, col, variant=variant)
            for variant in args.variant
        ]
    llama = run_llama(args, model, text, line, col)

    out = sys.stdout
    out.write(f"model: {model} ({model.stat().st_size / 1e6:.0f} MB)\n")
    out.write(f"llama-server: {binary}\n")
    out.write(
        f"document: {text.count(chr(10))} lines, {len(text)} chars; typing {TYPED!r} "
        f"({len(TYPED)} chars) at line {line + 1}, column {col + 1}\n"
    )
    out.write(
        f"n_ctx {args.n_ctx}, n_predict {args.n_predict}, threads {args.threads}, greedy; "
        f"ours: fim {args.fim_order}, context {'on' if args.context else 'off'}\n"
    )
    for run in (ours, llama):
        out.write(f"{run.name}: {'; '.join(run.notes)}\n")
    out.write("\n")
    report(ours, llama, out)
    report_extra(ours, lookup, out)
    if variants:
        report_variants(ours, variants, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

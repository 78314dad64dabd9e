"""Eight editors typing at once: one shared llama-server against a local model each.

Run: ``.venv/bin/python bench/concurrent.py [--shape small|tiny | --model PATH]``.

Each simulated editor is one of our LSP servers over stdio with its own ~120-line
document (a different one per editor), typing one line character by character:
one ``didChange`` and one ``inlineCompletion`` per keystroke, the next keystroke
``--think-ms`` after the answer.  All editors start together.

* shared: every editor's server uses ``backend.type = llama-server``
  (``/completion`` with our prompt and ``cache_prompt``) against ONE llama-server
  started with ``--parallel 4`` (four slots, so eight editors compete for them);
* local: every editor's server loads the model in-process (eight copies).

Reported per setup: completions served, errors (JSON-RPC errors and backend
failures in the servers' logs; goal 0), empty answers, median and p90 latency
per keystroke, wall time.  Not a test: prints a report to stdout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

# tests.support (generated models, llama-server) is not part of the installed
# package: it is imported from the repository root (see tests/support/__init__.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from keystroke import BENCH_SHAPES, LspClient, make_document, p90, resolve_model

from tests.support.llama_server import LlamaServerProcess, ensure_llama_server
from tests.support.synthetic import SHAPES

TYPED = "result = compute_total(items, tax=0.2)"


@dataclass
class Editor:
    index: int
    latencies: list[float] = field(default_factory=list)
    served: int = 0
    empty: int = 0
    errors: list[str] = field(default_factory=list)
    backend_failures: int = 0
    rpc_errors: int = 0


def run_editor(
    editor: Editor,
    options: dict[str, object],
    model: Path | None,
    args: argparse.Namespace,
    start: threading.Barrier,
) -> None:
    command = [sys.executable, "-m", "codellama_lsp.server", "--stdio"]
    if model is not None:
        command += ["--model", str(model)]
    client = LspClient(command)
    try:
        client.call(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": None,
                "capabilities": {},
                "initializationOptions": options,
            },
        )
        client.notify("initialized", {})
        text, line, col = make_document(seed=100 + editor.index, min_lines=args.lines)
        uri = f"file:///editor{editor.index}/orders.py"
        client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
        )
        start.wait()
        version = 1
        for i in range(min(len(TYPED), args.keystrokes) + 1):
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
            answer = client.call(
                "textDocument/inlineCompletion",
                {
                    "textDocument": {"uri": uri},
                    "position": {"line": line, "character": col + i},
                    "context": {"triggerKind": 2},
                },
            )
            latency = (time.perf_counter() - t0) * 1000
            if "error" in answer:
                editor.rpc_errors += 1
                editor.errors.append(str(answer["error"].get("message")))
                continue
            items = (answer.get("result") or {}).get("items") or []
            if i:  # the first request (a cold prompt) is left out of the figures
                editor.latencies.append(latency)
                editor.served += 1
                editor.empty += 0 if items else 1
            time.sleep(args.think_ms / 1000)
    except Exception as exc:  # reported, not raised: the other editors go on
        editor.rpc_errors += 1
        editor.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        client.close()
        while not client.log_lines.empty():
            line = client.log_lines.get()
            if "backend failed" in line:
                editor.backend_failures += 1
                if editor.backend_failures <= 2:
                    editor.errors.append(line.split("backend failed", 1)[1].strip(" :"))


def run_setup(
    name: str, options: dict[str, object], model: Path | None, args: argparse.Namespace
) -> tuple[str, list[Editor], float]:
    editors = [Editor(i) for i in range(args.editors)]
    start = threading.Barrier(args.editors + 1)
    threads = [
        threading.Thread(target=run_editor, args=(e, options, model, args, start)) for e in editors
    ]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    return name, editors, time.perf_counter() - began


def report(results: list[tuple[str, list[Editor], float]], out: TextIO) -> None:
    write = out.write
    write(
        f"{'setup':<34}{'served':>7}{'errors':>7}{'empty':>7}{'median ms':>11}"
        f"{'p90 ms':>10}{'wall s':>8}\n"
    )
    for name, editors, wall in results:
        latencies = [x for e in editors for x in e.latencies]
        errors = sum(e.rpc_errors + e.backend_failures for e in editors)
        write(
            f"{name:<34}{sum(e.served for e in editors):>7}{errors:>7}"
            f"{sum(e.empty for e in editors):>7}"
            f"{statistics.median(latencies) if latencies else float('nan'):>11.1f}"
            f"{p90(latencies) if latencies else float('nan'):>10.1f}{wall:>8.1f}\n"
        )
        for e in editors:
            for error in e.errors[:3]:
                write(f"  editor {e.index}: {error}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--shape", choices=sorted({*SHAPES, *BENCH_SHAPES}), default="small")
    source.add_argument("--model", metavar="PATH")
    parser.add_argument("--editors", type=int, default=8)
    parser.add_argument("--slots", type=int, default=4, help="llama-server --parallel")
    parser.add_argument("--keystrokes", type=int, default=20)
    parser.add_argument("--lines", type=int, default=120, help="document size per editor")
    parser.add_argument("--think-ms", type=float, default=50.0)
    parser.add_argument("--n-predict", type=int, default=16)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--timeout-ms", type=int, default=180_000, help="backend.timeoutMs")
    args = parser.parse_args(argv)
    model = resolve_model(args)
    binary = ensure_llama_server()
    n_ctx = 4096
    completion = {"maxTokens": args.n_predict, "maxPrefixChars": 100_000, "maxSuffixChars": 100_000}
    results = []
    with LlamaServerProcess(
        model,
        ctx_size=n_ctx * args.slots,  # llama-server splits the context between its slots
        parallel=args.slots,
        extra_args=("--threads", str(args.threads), "--threads-batch", str(args.threads)),
    ) as server:
        shared = {
            "model": {"nCtx": n_ctx},
            "completion": completion,
            "context": {"enable": False},
            "backend": {
                "type": "llama-server",
                "url": server.url,
                "endpoint": "completion",
                # Eight cold prompts queue for four slots on a CPU: give them time.
                "timeoutMs": args.timeout_ms,
            },
        }
        results.append(
            run_setup(f"{args.editors} editors, 1 llama-server x{args.slots}", shared, None, args)
        )
    if not args.skip_local:
        local = {
            "model": {"nCtx": n_ctx, "threads": max(1, args.threads // args.editors)},
            "completion": completion,
            "context": {"enable": False},
        }
        results.append(run_setup(f"{args.editors} editors, local model each", local, model, args))
    sys.stdout.write(
        f"model: {model} ({model.stat().st_size / 1e6:.0f} MB); llama-server: {binary}\n"
        f"{args.editors} editors x {min(len(TYPED), args.keystrokes)} keystrokes "
        f"({args.lines}-line documents, think time {args.think_ms:g} ms, n_predict "
        f"{args.n_predict}, {os.cpu_count()} CPUs)\n\n"
    )
    report(results, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

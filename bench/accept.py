"""Accept, then the next suggestion: our server with and without prefetch, and llama-server.

Run: ``.venv/bin/python bench/accept.py [--shape small|tiny|7b | --model PATH]``.

The document of ``bench/keystroke.py`` is opened with the cursor on a fresh,
indented line.  Each round replays what a user does with ghost text:

1. ask for a suggestion at the cursor (``textDocument/inlineCompletion``);
2. read it for ``--read-ms`` (the editor is idle: this is when prefetch runs);
3. accept it (Tab): the editor inserts it (``didChange``), runs the item's
   command (``workspace/executeCommand``, acceptance counted locally) and asks
   again at the end of the inserted text -- the latency measured;
4. press Enter and go on to the next round on the new line.

The same rounds run against our server with ``completion.prefetch`` on, then
off, then against llama.cpp's ``llama-server`` (``/infill``, ``cache_prompt``,
``--cache-reuse 256``: the llama.vim setup, which has no prefetch in the
server), given the same document states.  Latency is client-side wall time
from sending the accept to receiving the next suggestion.  Not a test: prints
a table.  With ``--stats-dir DIR`` our servers' acceptance counts land in DIR
(``CODELLAMA_LSP_STATS_DIR=DIR codellama-lsp stats`` reads them back).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # keystroke.py sits next to this file

from keystroke import (
    BENCH_SHAPES,
    LlamaServerProcess,
    LspClient,
    ensure_llama_server,
    make_document,
    p90,
    resolve_model,
)

from codellama_lsp.core.stats import STATS_DIR_ENV
from tests.support.synthetic import SHAPES


@dataclass
class Round:
    shown: str
    #: The document and cursor right after the accept, where the next request is.
    text: str
    offset: int
    latency_ms: float = 0.0
    source: str = ""
    next_text: str = ""


@dataclass
class Replay:
    name: str
    rounds: list[Round] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def position(text: str, offset: int) -> dict[str, int]:
    """An LSP position of ``offset`` (the generated document is ASCII: UTF-16 = characters)."""
    line = text.count("\n", 0, offset)
    return {"line": line, "character": offset - (text.rfind("\n", 0, offset) + 1)}


def ask(client: LspClient, uri: str, text: str, offset: int) -> tuple[list[dict[str, Any]], int]:
    rid = client.request(
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": uri},
            "position": position(text, offset),
            "context": {"triggerKind": 2},
        },
    )
    answer = client.response(rid)
    if "error" in answer:
        raise RuntimeError(f"inlineCompletion failed: {answer['error']}")
    return (answer.get("result") or {}).get("items") or [], rid


def insert(client: LspClient, uri: str, version: int, text: str, offset: int, new: str) -> None:
    at = position(text, offset)
    client.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [{"range": {"start": at, "end": at}, "text": new}],
        },
    )


def run_ours(
    args: argparse.Namespace, model: Path, workspace: Path, text: str, offset: int, prefetch: bool
) -> Replay:
    replay = Replay(f"ours, prefetch {'on' if prefetch else 'off'}")
    command = [sys.executable, "-m", "codellama_lsp.server", "--stdio", "--model", str(model)]
    if args.stats_dir:
        os.environ[STATS_DIR_ENV] = args.stats_dir
    client = LspClient(command)
    try:
        options = {
            "model": {"nCtx": args.n_ctx, "threads": args.threads},
            "completion": {"maxTokens": args.n_predict, "prefetch": prefetch},
            "context": {"enable": False},
        }
        client.initialize(workspace, options)
        uri = (workspace / "orders.py").as_uri()
        client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
        )
        started = time.perf_counter()
        items, _ = ask(client, uri, text, offset)
        replay.notes.append(f"model load + cold prompt {time.perf_counter() - started:.1f} s")
        version = 1
        for _ in range(args.rounds):
            shown = items[0]["insertText"] if items else ""
            time.sleep(args.read_ms / 1000)  # the user reads the suggestion
            version += 1
            t0 = time.perf_counter()
            insert(client, uri, version, text, offset, shown)
            text, offset = text[:offset] + shown + text[offset:], offset + len(shown)
            if items and items[0].get("command"):
                command_ = items[0]["command"]
                client.call(
                    "workspace/executeCommand",
                    {"command": command_["command"], "arguments": command_.get("arguments", [])},
                )
            after, rid = ask(client, uri, text, offset)
            latency = (time.perf_counter() - t0) * 1000
            fields = client.log_fields(rid) or {}
            replay.rounds.append(
                Round(
                    shown,
                    text,
                    offset,
                    latency,
                    fields.get("source", "?"),
                    after[0]["insertText"] if after else "",
                )
            )
            # Enter: a new indented line, and the next suggestion there.
            version += 1
            insert(client, uri, version, text, offset, "\n    ")
            text, offset = text[:offset] + "\n    " + text[offset:], offset + 5
            items, _ = ask(client, uri, text, offset)
    finally:
        client.close()
    return replay


def run_llama(args: argparse.Namespace, model: Path, ours: Replay) -> Replay:
    """The same documents after each accept, asked of llama-server like llama.vim does."""
    replay = Replay("llama-server /infill")
    extra = [
        "--threads", str(args.threads),
        "--threads-batch", str(args.threads),
        "--batch-size", str(args.n_ctx),
        "--flash-attn", "off",
        "--n-predict", str(args.n_predict),
    ]  # fmt: skip
    with LlamaServerProcess(
        model, ctx_size=args.n_ctx, parallel=1, cache_reuse=256, extra_args=extra
    ) as server:
        for done in ours.rounds:
            before = done.text[: done.offset - len(done.shown)] + done.text[done.offset :]
            cursor = done.offset - len(done.shown)
            # The suggestion is shown first (its prompt is cached), then accepted.
            server.post("/infill", _infill(args, before, cursor))
            t0 = time.perf_counter()
            answer = server.post("/infill", _infill(args, done.text, done.offset))
            replay.rounds.append(
                Round(
                    done.shown,
                    done.text,
                    done.offset,
                    (time.perf_counter() - t0) * 1000,
                    f"eval {answer['timings']['prompt_n']}",
                    str(answer["content"]),
                )
            )
    return replay


def _infill(args: argparse.Namespace, text: str, cursor: int) -> dict[str, Any]:
    return {
        "input_prefix": text[:cursor],
        "input_suffix": text[cursor:],
        "input_extra": [],
        "prompt": "",
        "n_predict": args.n_predict,
        "cache_prompt": True,
        "temperature": 0.0,
        "top_k": 1,
        "stream": False,
    }


def report(replays: list[Replay]) -> None:
    out = sys.stdout
    width = 26
    out.write(f"{'round':>5} {'accepted':<24}" + "".join(f"{r.name:>{width}}" for r in replays))
    out.write("\n")
    for i, rounds in enumerate(zip(*(r.rounds for r in replays), strict=True), start=1):
        cells = "".join(f"{f'{x.latency_ms:.1f} ms ({x.source})':>{width}}" for x in rounds)
        out.write(f"{i:>5} {rounds[0].shown[:22]!r:<24}{cells}\n")
    out.write(f"\n{'after an accept':<30}" + "".join(f"{r.name:>{width}}" for r in replays) + "\n")
    for name, pick in (
        ("median latency (ms)", lambda r: statistics.median(x.latency_ms for x in r.rounds)),
        ("p90 latency (ms)", lambda r: p90([x.latency_ms for x in r.rounds])),
        ("max latency (ms)", lambda r: max(x.latency_ms for x in r.rounds)),
    ):
        out.write(f"{name:<30}" + "".join(f"{pick(r):>{width}.1f}" for r in replays) + "\n")
    on, off = replays[0], replays[1]
    same = sum(a.next_text == b.next_text for a, b in zip(on.rounds, off.rounds, strict=True))
    out.write(
        f"answered from the prefetch: {sum(x.source == 'prefetch' for x in on.rounds)}"
        f"/{len(on.rounds)}; next suggestion identical with and without: "
        f"{same}/{len(on.rounds)}\n"
    )
    for replay in replays:
        if replay.notes:
            out.write(f"{replay.name}: {'; '.join(replay.notes)}\n")


def main(argv: list[str] | None = None) -> int:
    shapes = sorted({*SHAPES, *BENCH_SHAPES})
    parser = argparse.ArgumentParser(description="Accept, then the next suggestion.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--shape", choices=shapes, default="small", help="generated model")
    source.add_argument("--model", metavar="PATH", help="a GGUF file instead of a generated one")
    parser.add_argument("--n-predict", type=int, default=16, help="= our completion.maxTokens")
    parser.add_argument("--n-ctx", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--rounds", type=int, default=8, help="accepts replayed")
    parser.add_argument("--read-ms", type=int, default=1500, help="idle time before each Tab")
    parser.add_argument("--no-llama", action="store_true", help="skip llama-server")
    parser.add_argument("--stats-dir", metavar="DIR", help="keep our acceptance counts in DIR")
    args = parser.parse_args(argv)

    model = resolve_model(args)
    text, line, col = make_document()
    offset = sum(len(x) + 1 for x in text.split("\n")[:line]) + col
    with tempfile.TemporaryDirectory(prefix="accept-bench-") as tmp:
        workspace = Path(tmp)
        (workspace / "orders.py").write_text(text, encoding="utf-8")
        on = run_ours(args, model, workspace, text, offset, prefetch=True)
        off = run_ours(args, model, workspace, text, offset, prefetch=False)
    replays = [on, off]
    if not args.no_llama:
        ensure_llama_server()
        replays.append(run_llama(args, model, on))
    sys.stdout.write(
        f"model: {model} ({model.stat().st_size / 1e6:.0f} MB); n_ctx {args.n_ctx}, "
        f"n_predict {args.n_predict}, threads {args.threads}, greedy; "
        f"{args.rounds} accepts, {args.read_ms} ms read before each\n\n"
    )
    report(replays)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

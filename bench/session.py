"""A whole editing session in a real project: our LSP server against llama-server ``/infill``.

Run: ``.venv/bin/python bench/session.py [--shape small|tiny|7b | --model PATH]``.

The installed ``pygls`` package is copied into a temporary directory, which is
the workspace (``rootUri`` and ``workspaceFolders``).  File A is
``pygls/protocol/json_rpc.py``, file B ``pygls/server.py``.  The session
(``SESSION`` below) opens A, opens a new line inside a function around line 350
and types a line of code into it, jumps up and down in A, switches to B and
back, deletes a line, pastes a 20-line block and removes it again ("undo"),
typing a few characters after most events.  The first request after each event
is reported under the event's kind (open, jump, switch, return, delete_line,
paste, undo), every further one under "keystroke".  The whole session is
computed once (``build_session``) and replayed unchanged against

* our server over stdio (``python -m codellama_lsp.server --stdio``) with its
  default settings except the model path, ``model.nCtx``, ``model.threads`` and
  ``completion.maxTokens`` (the generation limit; ``--settings JSON`` merges
  more): ``didOpen`` the first time a file is visited, incremental
  ``didChange`` (UTF-16 ranges; the files are ASCII) for every edit, one
  character per keystroke, then one ``textDocument/inlineCompletion``.  The
  tokens it evaluated come from its per-request log line (``evaluated_tokens``;
  0 when the answer came without the model);
* llama.cpp's ``llama-server`` (built from the same vendored llama.cpp by
  ``tests/support/llama_server.py``) started with ``--cache-reuse 256``, once
  in its default PSM order and once with ``--spm-infill``, fed as llama.vim
  feeds it: ``input_prefix`` the 256 lines above the cursor line,
  ``prompt`` the cursor line up to the cursor, ``input_suffix`` the rest of it
  and the 64 lines below (each part ending with a newline, as llama.vim sends
  them), no ``input_extra``, ``cache_prompt: true``, greedy, ``n_predict`` the
  same limit as ours.  The tokens it evaluated are ``timings.prompt_n``.

Same model, ``n_ctx``, threads and greedy decoding for all three; they run one
after the other, never at the same time.  Latency is client wall time from
sending the event's edit (our ``didChange``/``didOpen``) or the request to the
answer; with ``--idle-ms N`` the client waits N ms after every non-keystroke
event before its first request, and the latency is then that of the request
alone.  Our server is then told where the cursor is (``codellama/documentActive``,
as the VS Code extension and the README's Neovim config send it after a switch
or a move) and may warm that prompt meanwhile; llama-server does nothing.

The report has one row per event kind (n, evaluated tokens and latency, median
and p90), totals, the median over all warm requests (all but ``open`` and the
first request in B), and every request of the session in order.  ``--json
PATH`` writes all samples for later comparison.

Not a test: prints to stdout.  With the default shape ("small") the whole run
takes a few minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from keystroke import (  # the bench dir is on sys.path: keystroke.py sits next to this file
    BENCH_SHAPES,
    SHAPES,
    LlamaServerProcess,
    LspClient,
    Sample,
    _our_sample,
    ensure_llama_server,
    llama_cpp_version,
    p90,
    resolve_model,
)

FILE_A = "pygls/protocol/json_rpc.py"
FILE_B = "pygls/server.py"
#: llama.vim's defaults (g:llama_config.n_prefix, n_suffix).
N_PREFIX_LINES = 256
N_SUFFIX_LINES = 64
PASTE_LINES = 20
PROBLEM = re.compile(r" (WARNING|ERROR|CRITICAL) |^Traceback ")
KINDS = ("open", "keystroke", "jump", "switch", "return", "delete_line", "paste", "undo")


# -- the session -------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One thing the user does, then types ``typed`` character by character.

    ``move`` says where the cursor goes first (always to the end of a line; a
    blank target line is replaced by the nearest non-blank one):
    ``"line N"`` (1-based), ``"up N"``/``"down N"`` from the current line,
    ``"middle"`` of the file, ``"last"`` (where it was when the file was last
    left) or ``"stay"``.  ``edit`` is what changes the text at the cursor:
    ``"enter"`` (open a new, indented line below), ``"delete_line"`` (the whole
    line 5 lines above), ``"paste"`` (a 20-line block of another function of the
    file, pasted linewise below the cursor line; the cursor ends on its last
    line), ``"undo"`` (removes the last pasted block again, cursor back where it
    was) or ``""`` (the cursor move alone is the event).
    """

    kind: str
    file: str  # "A" or "B"
    move: str
    edit: str = ""
    typed: str = ""


SESSION: tuple[Event, ...] = (
    Event("open", "A", "line 350", "enter", 'logger.debug("handled %r", msg_id)'),
    Event("jump", "A", "up 20", typed=" # check"),
    Event("jump", "A", "down 60", typed=" # review"),
    Event("switch", "B", "middle", typed=" # server"),
    Event("return", "A", "last", typed=" again"),
    Event("jump", "A", "line 60", typed=" # types"),
    Event("delete_line", "A", "stay", "delete_line", typed=" ok?"),
    Event("paste", "A", "stay", "paste", typed=" # p"),
    Event("undo", "A", "stay", "undo"),
    Event("switch", "B", "last"),
    Event("return", "A", "last"),
)


@dataclass
class Request:
    """One completion request of the session, with the edit sent just before it."""

    index: int
    event: int  # index into SESSION
    kind: str  # the report row: the event's kind for its first request, else "keystroke"
    file: str
    #: The file's text when it is opened (didOpen) right before this request; None: already open.
    open_text: str | None
    #: Incremental LSP contentChanges of ``file`` sent before the request.
    changes: list[dict[str, Any]]
    text: str  # the file's whole text at the request
    line: int  # 0-based
    col: int
    first: bool  # the event's first request (--idle-ms waits before it)
    char: str = ""  # the character typed, for keystrokes


class Doc:
    """A file's text with LSP-style range edits (ASCII, so UTF-16 units are characters)."""

    def __init__(self, text: str) -> None:
        self.text = text

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n")

    def offset(self, line: int, col: int) -> int:
        lines = self.lines
        return sum(len(x) + 1 for x in lines[:line]) + col

    def replace(self, start: tuple[int, int], end: tuple[int, int], new: str) -> dict[str, Any]:
        a, b = self.offset(*start), self.offset(*end)
        self.text = self.text[:a] + new + self.text[b:]
        return {
            "range": {
                "start": {"line": start[0], "character": start[1]},
                "end": {"line": end[0], "character": end[1]},
            },
            "text": new,
        }


def _non_blank(lines: list[str], line: int) -> int:
    """``line``, or the nearest non-blank line to it (below first on ties)."""
    line = max(0, min(line, len(lines) - 1))
    for distance in range(len(lines)):
        for candidate in (line + distance, line - distance):
            if 0 <= candidate < len(lines) and lines[candidate].strip():
                return candidate
    return line


def _paste_block(lines: list[str], away_from: int) -> list[str]:
    """PASTE_LINES lines from the start of a method far from ``away_from``."""
    starts = [
        i
        for i, text in enumerate(lines)
        if text.lstrip().startswith("def ") and i + PASTE_LINES < len(lines)
    ]
    far = [i for i in starts if abs(i - away_from) > 100] or starts or [0]
    return lines[far[len(far) // 2] : far[len(far) // 2] + PASTE_LINES]


def build_session(texts: dict[str, str], session: tuple[Event, ...] = SESSION) -> list[Request]:
    """Every request of ``session``, computed once so that all servers replay the same."""
    docs = {name: Doc(text) for name, text in texts.items()}
    opened: set[str] = set()
    last: dict[str, tuple[int, int]] = {}
    pasted: tuple[int, tuple[int, int]] | None = None  # (first pasted line, cursor before)
    current = ""
    line = col = 0
    requests: list[Request] = []

    def add(event: int, kind: str, changes: list[dict[str, Any]], **extra: Any) -> None:
        requests.append(
            Request(
                len(requests),
                event,
                kind,
                current,
                extra.pop("open_text", None),
                changes,
                docs[current].text,
                line,
                col,
                **extra,
            )
        )

    for number, event in enumerate(session):
        if current:
            last[current] = (line, col)
        current = event.file
        doc = docs[current]
        open_text = None if current in opened else doc.text
        opened.add(current)
        lines = doc.lines
        how, _, count = event.move.partition(" ")
        if how == "line":
            line = _non_blank(lines, int(count) - 1)
        elif how in ("up", "down"):
            line = _non_blank(lines, line + (int(count) if how == "down" else -int(count)))
        elif how == "middle":
            line = _non_blank(lines, len(lines) // 2)
        elif how == "last":
            line, col = last.get(current, (0, 0))
        elif how != "stay":
            raise ValueError(f"unknown move {event.move!r}")
        if how not in ("last", "stay"):
            col = len(lines[line])
        changes: list[dict[str, Any]] = []
        if event.edit == "enter":
            indent = lines[line][: len(lines[line]) - len(lines[line].lstrip())]
            if lines[line].rstrip().endswith(":"):
                indent += "    "
            changes.append(doc.replace((line, col), (line, col), "\n" + indent))
            line, col = line + 1, len(indent)
        elif event.edit == "delete_line":
            gone = max(0, line - 5)
            changes.append(doc.replace((gone, 0), (gone + 1, 0), ""))
            line -= 1
        elif event.edit == "paste":
            block = _paste_block(lines, line)
            pasted = (line + 1, (line, col))
            changes.append(doc.replace((line + 1, 0), (line + 1, 0), "\n".join(block) + "\n"))
            line, col = line + len(block), len(block[-1])
        elif event.edit == "undo":
            if pasted is None:
                raise ValueError("undo without a paste before it")
            start, (line, col) = pasted
            changes.append(doc.replace((start, 0), (start + PASTE_LINES, 0), ""))
            pasted = None
        elif event.edit:
            raise ValueError(f"unknown edit {event.edit!r}")
        add(number, event.kind, changes, open_text=open_text, first=True)
        for char in event.typed:
            change = doc.replace((line, col), (line, col), char)
            col += 1
            add(number, "keystroke", [change], first=False, char=char)
    return requests


# -- our server --------------------------------------------------------------


class SessionClient(LspClient):
    """LspClient that keeps the last log fields (their ``source``) and can wait for a log line."""

    def __init__(self, command: list[str]) -> None:
        self.last_fields: dict[str, str] | None = None
        #: Warnings, errors and tracebacks the server logged (the first few of them).
        self.problems: list[str] = []
        self.problem_count = 0
        super().__init__(command)

    #: ``--server-log``: every line our server logs is appended here.
    log_path: Path | None = None

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        log = self.log_path.open("a", encoding="utf-8") if self.log_path else None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if log is not None:
                log.write(line + "\n")
                log.flush()
            self.stderr_tail = [*self.stderr_tail[-40:], line]
            if PROBLEM.search(line):
                self.problem_count += 1
                if len(self.problems) < 5:
                    self.problems.append(line)
            self.log_lines.put(line)

    def log_fields(self, request_id: int, timeout: float = 5.0) -> dict[str, str] | None:
        self.last_fields = super().log_fields(request_id, timeout)
        return self.last_fields

    def wait_log(self, pattern: re.Pattern[str], timeout: float) -> str | None:
        """The first log line matching ``pattern``, answering server requests meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while not self.messages.empty():
                message = self.messages.get_nowait()
                if "method" in message and "id" in message:
                    self.send({"id": message["id"], "result": None})
            try:
                line = self.log_lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise RuntimeError(self._died("server exited")) from None
                continue
            if pattern.search(line):
                return line
        return None


@dataclass
class Run:
    name: str
    samples: list[Sample] = field(default_factory=list)
    #: Ours only: the log line's ``source`` per request (model, typed_through, cache...).
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def our_settings(args: argparse.Namespace) -> dict[str, Any]:
    base = {
        "model": {"nCtx": args.n_ctx, "threads": args.threads},
        "completion": {"maxTokens": args.n_predict},
    }
    return merge(base, json.loads(args.settings) if args.settings else {})


def _idle(args: argparse.Namespace, request: Request) -> bool:
    if request.first and args.idle_ms > 0:
        time.sleep(args.idle_ms / 1000)
        return True
    return False


def run_ours(
    args: argparse.Namespace, model: Path, workspace: Path, requests: list[Request]
) -> Run:
    run = Run("ours")
    command = [sys.executable, "-m", "codellama_lsp.server", "--stdio", "--model", str(model)]
    client = SessionClient(command)
    uris = {"A": (workspace / FILE_A).as_uri(), "B": (workspace / FILE_B).as_uri()}
    try:
        client.call(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": workspace.as_uri(),
                "workspaceFolders": [{"uri": workspace.as_uri(), "name": workspace.name}],
                "capabilities": {},
                "initializationOptions": our_settings(args),
            },
        )
        client.notify("initialized", {})
        # Load the model on a throwaway document (not on disk, so not indexed) so that
        # the open row measures the prompt, not the model load.
        warm = (workspace / "warmup.py").as_uri()
        client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": warm, "languageId": "python", "version": 1, "text": "x\n"}},
        )
        started = time.perf_counter()
        answer = client.call(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": warm},
                "position": {"line": 0, "character": 1},
                "context": {"triggerKind": 2},
            },
        )
        if "error" in answer:
            raise RuntimeError(f"warm-up inlineCompletion failed: {answer['error']}")
        run.notes.append(f"model load + first request {time.perf_counter() - started:.1f} s")
        client.notify("textDocument/didClose", {"textDocument": {"uri": warm}})
        # The workspace index is built in the background; start once it is there.
        indexed = client.wait_log(re.compile(r"indexed |workspace context off"), 180.0)
        found = re.search(r"indexed .*|workspace context off", indexed or "")
        run.notes.append(f"index: {found.group(0) if found else 'no log line'}")
        versions = {"A": 0, "B": 0}
        for request in requests:
            uri = uris[request.file]
            t0 = time.perf_counter()
            if request.open_text is not None:
                versions[request.file] = 1
                client.notify(
                    "textDocument/didOpen",
                    {
                        "textDocument": {
                            "uri": uri,
                            "languageId": "python",
                            "version": 1,
                            "text": request.open_text,
                        }
                    },
                )
            if request.changes:
                versions[request.file] += 1
                client.notify(
                    "textDocument/didChange",
                    {
                        "textDocument": {"uri": uri, "version": versions[request.file]},
                        "contentChanges": request.changes,
                    },
                )
            if request.first and args.idle_ms > 0:
                # What the VS Code extension and the README's Neovim config send
                # after an editor switch or a cursor move: the server warms there.
                client.notify(
                    "codellama/documentActive",
                    {
                        "textDocument": {"uri": uri},
                        "position": {"line": request.line, "character": request.col},
                    },
                )
            if _idle(args, request):
                t0 = time.perf_counter()
            rid = client.request(
                "textDocument/inlineCompletion",
                {
                    "textDocument": {"uri": uri},
                    "position": {"line": request.line, "character": request.col},
                    "context": {"triggerKind": 2},
                },
            )
            answer = client.response(rid)
            latency = (time.perf_counter() - t0) * 1000
            if "error" in answer:
                raise RuntimeError(
                    client._died(f"inlineCompletion #{request.index} failed: {answer['error']}")
                )
            items = (answer.get("result") or {}).get("items") or []
            client.last_fields = None
            sample = _our_sample(client, rid, latency, items[0]["insertText"] if items else "")
            run.samples.append(sample)
            fields = client.last_fields
            run.sources.append(fields.get("source", "?") if fields else "lastPrompt")
    finally:
        client.close()
        if client.problem_count:
            run.notes.append(
                f"{client.problem_count} warning/error lines in its log, first: "
                + " | ".join(client.problems)
            )
    return run


# -- llama-server ------------------------------------------------------------


def llama_vim_body(args: argparse.Namespace, request: Request) -> dict[str, Any]:
    """The /infill request llama.vim sends at the cursor (its s:fim_ctx_local, no ring chunks)."""
    lines = request.text.split("\n")
    current = lines[request.line]
    before = lines[max(0, request.line - N_PREFIX_LINES) : request.line]
    after = lines[request.line + 1 : request.line + 1 + N_SUFFIX_LINES]
    return {
        "input_prefix": "".join(x + "\n" for x in before),
        "prompt": current[: request.col],
        "input_suffix": current[request.col :] + "\n" + "".join(x + "\n" for x in after),
        "input_extra": [],
        "n_predict": args.n_predict,
        "cache_prompt": True,
        "temperature": 0.0,
        "top_k": 1,
        "stream": False,
    }


def run_llama(args: argparse.Namespace, model: Path, requests: list[Request], spm: bool) -> Run:
    run = Run("llama-server --spm-infill" if spm else "llama-server PSM")
    # As in keystroke.py's run_llama: a logical batch as large as the context lets
    # the whole llama.vim window in (/infill keeps at most 3/4 of a batch of prefix).
    extra = [
        "--threads", str(args.threads),
        "--threads-batch", str(args.threads),
        "--batch-size", str(args.n_ctx),
        "--flash-attn", "off",  # llama-cpp-python's default, which our server uses
        "--n-predict", str(args.n_predict),
    ]  # fmt: skip
    if spm:
        extra.append("--spm-infill")
    started = time.perf_counter()
    with LlamaServerProcess(
        model, ctx_size=args.n_ctx, parallel=1, cache_reuse=256, extra_args=extra
    ) as server:
        run.notes.append(f"start + model load {time.perf_counter() - started:.1f} s")
        run.notes.append(f"command: {' '.join(server.command()[1:])}")
        for request in requests:
            body = llama_vim_body(args, request)
            _idle(args, request)
            t0 = time.perf_counter()
            answer = server.post("/infill", body)
            latency = (time.perf_counter() - t0) * 1000
            timings = answer["timings"]
            run.samples.append(
                Sample(
                    latency,
                    int(timings["prompt_n"]),
                    int(answer["tokens_evaluated"]),
                    int(timings["predicted_n"]),
                    float(timings["prompt_ms"]) + float(timings["predicted_ms"]),
                    float(timings["prompt_ms"]),
                    str(answer["content"]),
                )
            )
    return run


# -- report ------------------------------------------------------------------


def warm(requests: list[Request]) -> list[int]:
    """Indexes of the warm requests: all but ``open`` and the first request in B."""
    first_b = next((r.index for r in requests if r.file == "B"), -1)
    return [r.index for r in requests if r.kind != "open" and r.index != first_b]


def report(requests: list[Request], runs: list[Run], out: IO[str]) -> None:
    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    def p(values: list[float]) -> float:
        return p90(values) if values else float("nan")

    head = f"{'':<12}{'n':>4}" + "".join(f" | {run.name:<30}" for run in runs)
    sub = f"{'':<12}{'':>4}" + f" | {'tok med':>7} {'p90':>6} {'ms med':>7} {'p90':>7}" * len(runs)
    out.write("per event kind (evaluated prompt tokens; client latency in ms)\n")
    out.write(head + "\n" + sub + "\n" + "-" * len(sub) + "\n")
    for kind in KINDS:
        picked = [r.index for r in requests if r.kind == kind]
        if not picked:
            continue
        row = f"{kind:<12}{len(picked):>4}"
        for run in runs:
            tokens = [float(run.samples[i].evaluated) for i in picked]
            ms = [run.samples[i].latency_ms for i in picked]
            row += f" | {med(tokens):>7.0f} {p(tokens):>6.0f} {med(ms):>7.0f} {p(ms):>7.0f}"
        out.write(row + "\n")
    out.write("-" * len(sub) + "\n")
    row = f"{'total':<12}{len(requests):>4}"
    for run in runs:
        tokens = sum(s.evaluated for s in run.samples)
        seconds = sum(s.latency_ms for s in run.samples) / 1000
        row += f" | {tokens:>7} {'':>6} {seconds:>5.1f} s {'':>7}"
    out.write(row + "\n")
    chosen = warm(requests)
    row = f"{'warm median':<12}{len(chosen):>4}"
    for run in runs:
        tokens = [float(run.samples[i].evaluated) for i in chosen]
        ms = [run.samples[i].latency_ms for i in chosen]
        row += f" | {med(tokens):>7.0f} {p(tokens):>6.0f} {med(ms):>7.0f} {p(ms):>7.0f}"
    out.write(row + "\n")
    out.write("(warm: every request except 'open' and the first request in B; p90 beside)\n")

    out.write("\nthe whole session (tokens evaluated / client ms)\n")
    head = f"{'#':>3} {'event':<14} {'at':<10} {'key':>5}" + "".join(
        f" | {run.name[:20]:>20}" for run in runs
    )
    out.write(head + "\n" + "-" * len(head) + "\n")
    for r in requests:
        label = f"{r.event + 1}." + (SESSION[r.event].kind if r.kind != "keystroke" else "")
        at = f"{r.file}:{r.line + 1}:{r.col + 1}"
        key = repr(r.char) if r.char else ""
        row = f"{r.index:>3} {label:<14} {at:<10} {key:>5}"
        for run in runs:
            s = run.samples[r.index]
            mark = "*" if run.sources and run.sources[r.index] not in ("model", "?") else " "
            row += f" | {s.evaluated:>8}{mark} {s.latency_ms:>10.1f}"
        out.write(row + "\n")
    if runs and runs[0].sources:
        counts: dict[str, int] = {}
        for source in runs[0].sources:
            counts[source] = counts.get(source, 0) + 1
        out.write(f"\n* answered without the model (ours, by source: {counts})\n")


def llama_server_version(binary: Path) -> str:
    try:
        done = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    found = re.search(r"version: (.*)", done.stdout + done.stderr)
    return found.group(1).strip() if found else "unknown"


def copy_workspace(dest: Path) -> tuple[Path, Path]:
    """Copy the installed pygls into ``dest``; returns the paths of files A and B."""
    import pygls

    source = Path(pygls.__file__).resolve().parent
    shutil.copytree(source, dest / "pygls", ignore=shutil.ignore_patterns("__pycache__"))
    a, b = dest / FILE_A, dest / FILE_B
    for path in (a, b):
        if not path.is_file():
            raise SystemExit(f"{path.relative_to(dest)} is not in the installed pygls")
    return a, b


def main(argv: list[str] | None = None) -> int:
    shapes = sorted({*SHAPES, *BENCH_SHAPES})
    parser = argparse.ArgumentParser(
        description="Replay an editing session in pygls against our server and llama-server."
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--shape", choices=shapes, default="small", help="generated model")
    source.add_argument("--model", metavar="PATH", help="a GGUF file instead of a generated one")
    parser.add_argument("--n-predict", type=int, default=8, help="= our completion.maxTokens")
    parser.add_argument("--n-ctx", type=int, default=8192, help="context size of all servers")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--settings",
        metavar="JSON",
        default=None,
        help="more settings for our server, merged into initializationOptions "
        '(e.g. \'{"completion": {"fimOrder": "psm"}}\')',
    )
    parser.add_argument(
        "--server-log",
        type=Path,
        default=None,
        help="append everything our server logs to this file",
    )
    parser.add_argument(
        "--idle-ms",
        type=int,
        default=0,
        metavar="N",
        help="wait N ms after each non-keystroke event before its first request",
    )
    parser.add_argument("--skip-llama-server", action="store_true", help="only our server")
    parser.add_argument("--json", metavar="PATH", help="write all samples here as JSON")
    args = parser.parse_args(argv)
    SessionClient.log_path = args.server_log
    if args.settings:  # fail before any work
        try:
            extra = json.loads(args.settings)
        except ValueError as exc:
            parser.error(f"--settings is not JSON: {exc}")
        if not isinstance(extra, dict):
            parser.error("--settings must be a JSON object")

    binary = None if args.skip_llama_server else ensure_llama_server()
    model = resolve_model(args)
    with tempfile.TemporaryDirectory(prefix="session-bench-") as tmp:
        workspace = Path(tmp)
        path_a, path_b = copy_workspace(workspace)
        texts = {
            "A": path_a.read_text(encoding="utf-8"),
            "B": path_b.read_text(encoding="utf-8"),
        }
        requests = build_session(texts)
        runs = [run_ours(args, model, workspace, requests)]
    if not args.skip_llama_server:
        runs.append(run_llama(args, model, requests, spm=False))
        runs.append(run_llama(args, model, requests, spm=True))

    out = sys.stdout
    out.write(f"model: {model} ({model.stat().st_size / 1e6:.0f} MB)")
    out.write(f", shape {args.shape}\n" if not args.model else "\n")
    version = llama_server_version(binary) if binary else "not run"
    out.write(
        f"llama.cpp: llama-cpp-python {llama_cpp_version()}, llama-server version {version}\n"
    )
    out.write(
        f"threads {args.threads}, n_ctx {args.n_ctx}, n_predict {args.n_predict}, greedy, "
        f"idle {args.idle_ms} ms\n"
    )
    out.write(f"our settings: {json.dumps(our_settings(args))}\n")
    for name, rel in (("A", FILE_A), ("B", FILE_B)):
        out.write(f"file {name}: {rel} ({texts[name].count(chr(10))} lines)\n")
    for run in runs:
        out.write(f"{run.name}: {'; '.join(run.notes)}\n")
    out.write(f"{len(requests)} requests in {len(SESSION)} events\n\n")
    report(requests, runs, out)

    if args.json:
        data = {
            "model": str(model),
            "shape": None if args.model else args.shape,
            "threads": args.threads,
            "n_ctx": args.n_ctx,
            "n_predict": args.n_predict,
            "idle_ms": args.idle_ms,
            "settings": our_settings(args),
            "llama_cpp_python": llama_cpp_version(),
            "llama_server": version,
            "files": {"A": FILE_A, "B": FILE_B},
            "session": [asdict(e) for e in SESSION],
            "requests": [
                {
                    "index": r.index,
                    "event": r.event,
                    "kind": r.kind,
                    "file": r.file,
                    "line": r.line + 1,
                    "col": r.col + 1,
                    "char": r.char,
                }
                for r in requests
            ],
            "runs": [
                {
                    "name": run.name,
                    "notes": run.notes,
                    "samples": [asdict(s) for s in run.samples],
                    "sources": run.sources,
                }
                for run in runs
            ],
        }
        Path(args.json).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        out.write(f"\nsamples written to {args.json}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

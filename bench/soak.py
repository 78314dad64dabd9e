"""A long working day in minutes: does the server stay small, bounded and quick?

Run: ``.venv/bin/python bench/soak.py [--shape tiny|small | --model PATH]``.

Three load runs against our server over stdio, each with the numbers a person
would look at:

* ``notifications``: N ``textDocument/didChange`` keystrokes into one document
  and no requests; the server's RSS before and after, per notification.
* ``across documents``: keystrokes round-robin over D open documents, each
  followed by an ``inlineCompletion`` sent without waiting for the answer (a
  fast typist whose editor never blocks); peak server threads, latency p50 and
  p99 from request to answer, and the time to drain after the last keystroke.
* ``one document``: K keystrokes in one document, each answered before the
  next; RSS before and after, latency p50 and p99.

The server's RSS and thread count come from ``/proc/PID/status``.  Not a test:
prints a report.
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from keystroke import LspClient, resolve_model


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS (KiB) and Threads of a process."""
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "Threads"):
                found[name] = int(value.split()[0])
    return found


class SoakClient(LspClient):
    """Answers are timestamped as they arrive, for requests nobody waits on."""

    def start_collecting(self) -> None:
        self.arrived: dict[int, float] = {}
        self._collect = threading.Thread(target=self._collector, daemon=True)
        self._collect.start()

    def _collector(self) -> None:
        while True:
            try:
                message = self.messages.get(timeout=0.5)
            except queue.Empty:
                continue
            if "method" in message:
                if "id" in message:
                    self.send({"id": message["id"], "result": None})
                continue
            if isinstance(message.get("id"), int):
                self.arrived[message["id"]] = time.monotonic()

    def drain_logs(self) -> None:
        while not self.log_lines.empty():
            self.log_lines.get_nowait()


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def start(model: Path, threads: int) -> LspClient:
    command = [sys.executable, "-m", "codellama_lsp.server", "--stdio"]
    client = SoakClient(command)
    options = {
        "model": {"path": str(model), "nCtx": 4096, "threads": threads},
        "completion": {"maxTokens": 8, "warmAhead": False},
    }
    client.call("initialize", {"capabilities": {}, "initializationOptions": options})
    client.notify("initialized", {})
    # One completion first: it waits for the model, so RSS "before" includes it.
    open_doc(client, "file:///soak/first.py", HEAD)
    client.response(inline(client, "file:///soak/first.py", 4), timeout=600)
    return client


def insert(client: LspClient, uri: str, version: int, column: int, text: str) -> None:
    at = {"line": 1, "character": column}
    client.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [{"range": {"start": at, "end": at}, "text": text}],
        },
    )


def open_doc(client: LspClient, uri: str, text: str) -> None:
    item = {"uri": uri, "languageId": "python", "version": 1, "text": text}
    client.notify("textDocument/didOpen", {"textDocument": item})


def inline(client: LspClient, uri: str, column: int) -> int:
    return client.request(
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": uri},
            "position": {"line": 1, "character": column},
            "context": {"triggerKind": 2},
        },
    )


HEAD = "def total(items):\n    \n" + "".join(
    f"def f{i}(x):\n    return x + {i}\n" for i in range(40)
)


def run_notifications(client: LspClient, count: int) -> str:
    uri = "file:///soak/notes.py"
    open_doc(client, uri, HEAD)
    client.call("codellama/lastPrompt", None)
    before = proc_status(client.proc.pid)
    started = time.monotonic()
    for i in range(count):
        insert(client, uri, i + 2, 4 + i, "x")
    client.call("codellama/lastPrompt", None, timeout=600)  # every notification handled
    seconds = time.monotonic() - started
    after = proc_status(client.proc.pid)
    grown = after["VmRSS"] - before["VmRSS"]
    client.drain_logs()
    return (
        f"notifications      {count} didChange in {seconds:.1f} s; RSS {before['VmRSS'] / 1024:.0f}"
        f" -> {after['VmRSS'] / 1024:.0f} MiB ({grown * 1024 / count:.0f} bytes each)"
    )


def run_across(client: SoakClient, documents: int, keystrokes: int) -> str:
    uris = [f"file:///soak/doc{i}.py" for i in range(documents)]
    for uri in uris:
        open_doc(client, uri, HEAD)
    client.call("codellama/lastPrompt", None)
    client.start_collecting()
    sent: dict[int, float] = {}
    columns = dict.fromkeys(uris, 4)
    versions = dict.fromkeys(uris, 1)
    peak = [proc_status(client.proc.pid)["Threads"]]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc_status(client.proc.pid)["Threads"])
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    for i in range(keystrokes):
        uri = uris[i % documents]
        versions[uri] += 1
        insert(client, uri, versions[uri], columns[uri], "ab"[i % 2])
        columns[uri] += 1
        rid = inline(client, uri, columns[uri])
        sent[rid] = time.monotonic()
        time.sleep(0.01)  # 100 keystrokes a second
    last_sent = time.monotonic()
    deadline = last_sent + 600
    while len(client.arrived) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    watcher.join()
    drained = max(client.arrived.values(), default=last_sent) - last_sent
    latencies = [(client.arrived[r] - t) * 1000 for r, t in sent.items() if r in client.arrived]
    client.drain_logs()
    return (
        f"across documents   {keystrokes} keystrokes over {documents} documents: "
        f"peak {peak[0]} server threads, latency p50 {percentile(latencies, 0.5):.0f} ms "
        f"p99 {percentile(latencies, 0.99):.0f} ms, drained {drained:.1f} s after the last, "
        f"{len(sent) - len(latencies)} unanswered"
    )


def run_one_document(client: LspClient, keystrokes: int) -> str:
    uri = "file:///soak/one.py"
    open_doc(client, uri, HEAD)
    client.call("codellama/lastPrompt", None)
    before = proc_status(client.proc.pid)
    latencies: list[float] = []
    for i in range(keystrokes):
        started = time.monotonic()
        insert(client, uri, i + 2, 4 + i, "xy "[i % 3])
        client.response(inline(client, uri, 5 + i), timeout=600)
        latencies.append((time.monotonic() - started) * 1000)
        if i % 500 == 0:
            client.drain_logs()
    after = proc_status(client.proc.pid)
    return (
        f"one document       {keystrokes} keystrokes answered one by one: latency p50 "
        f"{statistics.median(latencies):.0f} ms p99 {percentile(latencies, 0.99):.0f} ms; RSS "
        f"{before['VmRSS'] / 1024:.0f} -> {after['VmRSS'] / 1024:.0f} MiB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="tiny", help="generated model shape (tiny, small, 7b)")
    parser.add_argument("--model", help="a GGUF model instead of a generated one")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--notifications", type=int, default=60_000)
    parser.add_argument("--documents", type=int, default=20)
    parser.add_argument("--across", type=int, default=2_000, help="keystrokes across documents")
    parser.add_argument("--keystrokes", type=int, default=2_000, help="keystrokes in one document")
    args = parser.parse_args(argv)
    model = resolve_model(args)
    print(f"model {model}, threads {args.threads}")
    lines: list[str] = []
    for run in ("notifications", "across", "one"):
        client: Any = start(model, args.threads)
        try:
            if run == "notifications":
                lines.append(run_notifications(client, args.notifications))
            elif run == "across":
                lines.append(run_across(client, args.documents, args.across))
            else:
                lines.append(run_one_document(client, args.keystrokes))
            print(lines[-1], flush=True)
        finally:
            client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

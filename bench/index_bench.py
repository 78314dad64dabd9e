"""Benchmark of the repository index on a generated 10,000-file mixed-language workspace.

Run: ``.venv/bin/python bench/index_bench.py [--files N] [--keep DIR]``.  Prints a
table of the measured costs next to their targets; not a test.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from codellama_lsp.context.index import RepositoryIndex, index_stats
from codellama_lsp.context.retrieval import build_context, build_context_chunks

LANGUAGES = ("py", "ts", "js", "go", "java", "rs", "h", "c", "cpp", "cs", "php", "sh")
TARGETS = {
    "full index (s)": 60.0,
    "incremental update p95 (ms)": 50.0,
    "context build p95 (ms)": 30.0,
    "context build at a call p95 (ms)": 30.0,
    "index memory (MB)": 300.0,
}


def _body(rng: random.Random, indent: str, lines: int, end: str = "") -> str:
    words = ["total", "value", "item", "count", "result", "index", "buffer", "name"]
    out = []
    for i in range(lines):
        a, b = rng.choice(words), rng.choice(words)
        out.append(f"{indent}{a}{i} = {b} + {i}{end}")
    return "\n".join(out)


def _python(i: int, deps: list[int], rng: random.Random) -> tuple[str, str]:
    head = "\n".join(f"from pkg{d % 50}.mod{d} import func_{d}_0" for d in deps)
    parts = [f'"""Module {i}."""\n\nimport os\n{head}\n\nLIMIT_{i} = {i}\n']
    for k in range(6):
        call = f"func_{deps[k % len(deps)]}_0"
        parts.append(
            f'class Model{i}_{k}:\n    """Model {k}."""\n\n'
            f"    def method_{k}(self, value: int, name: str = 'x') -> int:\n"
            f"{_body(rng, '        ', 6)}\n        return 1\n\n"
            f"def func_{i}_{k}(data: Model{i}_{k}, count: int) -> list[int]:\n"
            f"    # compute things\n{_body(rng, '    ', 10)}\n"
            f"    used = {call}(data, count)\n    return []\n"
        )
    return f"pkg{i % 50}/mod{i}.py", "\n\n".join(parts)


def _other(i: int, deps: list[int], rng: random.Random, ext: str) -> tuple[str, str]:
    body = _body(rng, "    ", 8, ";")
    lines: list[str] = []
    if ext in ("ts", "js"):
        lines += [f'import {{ fn{d}_0 }} from "../m{d % 40}/file{d}";' for d in deps]
        for k in range(6):
            d = deps[k % len(deps)]
            lines.append(
                f"/** Function {k}. */\nexport function fn{i}_{k}(a: number, b: string) {{"
            )
            lines.append(f"{body}\n    const r = fn{d}_0(a, b);\n    return a;\n}}")
            lines.append(f"export class Widget{i}_{k} {{\n  run(x: number) {{\n{body}\n  }}\n}}")
        return f"m{i % 40}/file{i}.{ext}", "\n".join(lines)
    if ext == "go":
        lines.append(f"package p{i % 40}\n")
        lines += [f'import "example.com/proj/p{d % 40}"' for d in deps]
        for k in range(6):
            d = deps[k % len(deps)]
            lines.append(f"// Fn{i}_{k} does work.\nfunc Fn{i}_{k}(a int, b string) int {{")
            lines.append(f"{_body(rng, '    ', 8)}\n    p{d % 40}.Fn{d}_0(a, b)\n    return a\n}}")
            lines.append(f"type Thing{i}_{k} struct {{\n    A int\n    B string\n}}")
        return f"p{i % 40}/file{i}.go", "\n".join(lines)
    if ext == "java":
        lines.append(f"package com.acme.p{i % 40};\n")
        lines += [f"import com.acme.p{d % 40}.C{d};" for d in deps]
        lines.append(f"/** Class {i}. */\npublic class C{i} {{")
        for k in range(6):
            d = deps[k % len(deps)]
            lines.append(f"    public static int fn{k}(int a, String b) {{\n{body}")
            lines.append(f"        C{d}.fn0(a, b);\n        return a;\n    }}")
        lines.append("}")
        return f"src/com/acme/p{i % 40}/C{i}.java", "\n".join(lines)
    if ext == "rs":
        lines += [f"use crate::m{d % 40}::file{d}::fn{d}_0;" for d in deps]
        for k in range(6):
            d = deps[k % len(deps)]
            lines.append(f"/// Fn {k}.\npub fn fn{i}_{k}(a: i32, b: &str) -> i32 {{")
            lines.append(f"{_body(rng, '    let ', 8, ';')}\n    fn{d}_0(a, b);\n    a\n}}")
            lines.append(f"pub struct Thing{i}_{k} {{\n    a: i32,\n}}")
        return f"src/m{i % 40}/file{i}.rs", "\n".join(lines)
    if ext == "h":  # C headers: prototypes and structs
        lines += [f'#include "../m{d % 40}/file{d}.h"' for d in deps]
        for k in range(6):
            lines.append(f"/* fn {k} */\nint fn{i}_{k}(int a, const char *b);")
            lines.append(f"struct Thing{i}_{k} {{\n    int a;\n}};")
        return f"m{i % 40}/file{i}.h", "\n".join(lines)
    if ext in ("c", "cpp"):
        lines += [f'#include "../m{d % 40}/file{d}.h"' for d in deps]
        for k in range(6):
            d = deps[k % len(deps)]
            lines.append(f"/* fn {k} */\nint impl{i}_{k}(int a, const char *b) {{")
            lines.append(f"{_body(rng, '    int ', 8, ';')}\n    fn{d}_0(a, b);\n    return a;\n}}")
        return f"m{i % 40}/impl{i}.{ext}", "\n".join(lines)
    if ext == "cs":
        lines += [f"using Acme.P{d % 40};" for d in deps]
        lines.append(f"namespace Acme.P{i % 40}\n{{\n  public class C{i}\n  {{")
        for k in range(6):
            d = deps[k % len(deps)]
            lines.append(f"    public static int Fn{k}(int a, string b)\n    {{\n{body}")
            lines.append(f"      C{d}.Fn0(a, b);\n      return a;\n    }}")
        lines.append("  }\n}")
        return f"P{i % 40}/C{i}.cs", "\n".join(lines)
    if ext == "php":
        lines.append("<?php")
        lines += [f"require_once __DIR__ . '/../m{d % 40}/file{d}.php';" for d in deps]
        for k in range(6):
            d = deps[k % len(deps)]
            lines.append(f"/** fn {k} */\nfunction fn{i}_{k}($a, $b) {{")
            lines.append(f"{_body(rng, '    $', 8, ';')}\n    fn{d}_0($a, $b);\n    return $a;\n}}")
        return f"m{i % 40}/file{i}.php", "\n".join(lines)
    lines += [f"source ../m{d % 40}/file{d}.sh" for d in deps]
    for k in range(6):
        d = deps[k % len(deps)]
        lines.append(f"# fn {k}\nfn{i}_{k}() {{\n{_body(rng, '    ', 8)}\n    fn{d}_0 1 2\n}}")
    return f"m{i % 40}/file{i}.sh", "\n".join(lines)


def generate_workspace(root: Path, files: int, seed: int = 7) -> list[Path]:
    """Write ``files`` source files spread evenly over the languages; returns their paths.

    Every function calls a function of a file it imports, so that retrieval at
    any cursor has imported definitions to find.
    """
    rng = random.Random(seed)
    written = []
    per_language = files // len(LANGUAGES)
    ids = {ext: range(n * per_language, (n + 1) * per_language) for n, ext in enumerate(LANGUAGES)}
    ids["c"] = ids["cpp"] = ids["h"]  # sources include the C headers
    for ext in LANGUAGES:
        for i in range(ids[ext].start, ids[ext].stop):
            deps = rng.sample(ids[ext], 3)
            if ext == "py":
                rel, text = _python(i, deps, rng)
            else:
                rel, text = _other(i, deps, rng, ext)
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n", encoding="utf-8")
            written.append(path)
    (root / ".gitignore").write_text("build/\n*.log\n", encoding="utf-8")
    for pkg in range(50):
        init = root / f"pkg{pkg}" / "__init__.py"
        if init.parent.exists():
            init.write_text("", encoding="utf-8")
    return written


def _p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1] if len(samples) >= 2 else samples[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="generate into this directory and keep it")
    args = parser.parse_args(argv)
    root = args.keep or Path(tempfile.mkdtemp(prefix="ctx-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        paths = generate_workspace(root, args.files)
        generate_s = time.perf_counter() - started
        gc.collect()

        index = RepositoryIndex.build(root)
        stats = index_stats(index)

        # Traced memory of a second, identical build: the records themselves.
        gc.collect()
        tracemalloc.start()
        traced = RepositoryIndex.build(root)
        traced_bytes = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del traced
        gc.collect()

        rng = random.Random(3)
        update_ms = []
        for path in rng.sample(paths, 200):
            text = path.read_text(encoding="utf-8") + "\n// edited\n"
            if path.suffix in (".py", ".sh"):
                text = text.replace("// edited", "# edited")
            started = time.perf_counter()
            index.update_file(path, text)
            update_ms.append((time.perf_counter() - started) * 1000)

        context_ms = []
        sizes = []
        recent = [(str(p), p.read_text(encoding="utf-8")) for p in rng.sample(paths, 10)]
        for path in rng.sample(paths, 300):
            text = path.read_text(encoding="utf-8")
            offset = rng.randrange(len(text) // 2, len(text))
            started = time.perf_counter()
            context = build_context(index, path, text, offset, recent, budget_tokens=1500)
            context_ms.append((time.perf_counter() - started) * 1000)
            sizes.append(len(context))

        # The cursor right after a call's "(": the callee is looked up as well.
        call_ms = []
        callees = 0
        for path in rng.sample(paths, 300):
            text = path.read_text(encoding="utf-8")
            opens = [i + 1 for i, ch in enumerate(text) if ch == "(" and text[i - 1 : i].isalnum()]
            offset = rng.choice(opens) if opens else len(text)
            started = time.perf_counter()
            packed = build_context_chunks(index, path, text, offset, recent, budget_tokens=1500)
            call_ms.append((time.perf_counter() - started) * 1000)
            callees += any(c.source == "callee" for c in packed.chunks)

        rows = [
            ("files generated", f"{len(paths)}", "", f"{generate_s:.1f} s to write"),
            ("files indexed", f"{stats.files}", "", ""),
            ("definitions", f"{stats.definitions}", "", ""),
            ("full index (s)", f"{stats.build_seconds:.2f}", "<= 60", ""),
            (
                "incremental update p95 (ms)",
                f"{_p95(update_ms):.2f}",
                "<= 50",
                f"median {statistics.median(update_ms):.2f}",
            ),
            (
                "context build p95 (ms)",
                f"{_p95(context_ms):.2f}",
                "<= 30",
                f"median {statistics.median(context_ms):.2f}, max {max(context_ms):.2f}",
            ),
            (
                "context build at a call p95 (ms)",
                f"{_p95(call_ms):.2f}",
                "<= 30",
                f"median {statistics.median(call_ms):.2f}, max {max(call_ms):.2f}, "
                f"callee found in {callees} of {len(call_ms)}",
            ),
            (
                "index memory (MB)",
                f"{traced_bytes / 1e6:.1f}",
                "<= 300",
                f"tracemalloc; RSS delta {stats.memory_bytes / 1e6:.1f} MB",
            ),
            ("context size (chars)", f"{statistics.median(sizes):.0f}", "", "median"),
        ]
        values = {
            "full index (s)": stats.build_seconds,
            "incremental update p95 (ms)": _p95(update_ms),
            "context build p95 (ms)": _p95(context_ms),
            "context build at a call p95 (ms)": _p95(call_ms),
            "index memory (MB)": traced_bytes / 1e6,
        }
        width = max(len(r[0]) for r in rows)
        print(f"cpu cores: {os.cpu_count()}  python: {sys.version.split()[0]}")
        print(f"{'measure':<{width}}  {'value':>10}  {'target':>7}  verdict  note")
        print("-" * (width + 50))
        failed = False
        for name, value, target, note in rows:
            verdict = ""
            if name in TARGETS:
                ok = values[name] <= TARGETS[name]
                failed |= not ok
                verdict = "ok" if ok else "MISSED"
            print(f"{name:<{width}}  {value:>10}  {target:>7}  {verdict:<7}  {note}")
        print("languages:", ", ".join(f"{k}={v}" for k, v in stats.languages.items()))
        return 1 if failed else 0
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

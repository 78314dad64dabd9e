"""Packing context into a token budget: whole lines, stable order, exact budget."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from codellama_lsp.context.index import RepositoryIndex
from codellama_lsp.context.packing import (
    ContextChunk,
    estimate_tokens,
    pack_chunks,
)
from codellama_lsp.context.retrieval import build_context, build_context_chunks


def chunk(priority: int, path: str, line: int, lines: int, rank: float = 0.0) -> ContextChunk:
    text = "\n".join(f"line {path} {line + i} 🙂 " + "x" * (i % 7) for i in range(lines))
    return ContextChunk(priority, path, line, line + lines - 1, text, "import", rank=rank)


CHUNKS = [
    chunk(1, "b/util.py", 10, 6, rank=1),
    chunk(1, "a/core.py", 3, 4, rank=0),
    chunk(2, "a/types.py", 0, 8),
    chunk(3, "main.py", 0, 5),
    chunk(4, "recent.py", 40, 20, rank=0),
    chunk(4, "old.py", 7, 20, rank=1),
]


def words(text: str) -> int:
    return len(text.split())


@pytest.mark.parametrize("budget", [0, 5, 20, 40, 80, 160, 1000])
@pytest.mark.parametrize("counter", [estimate_tokens, words, len])
def test_budget_is_respected(budget: int, counter: object) -> None:
    assert callable(counter)
    packed = pack_chunks(CHUNKS, budget, "#", count_tokens=counter, current_path="main.py")
    assert counter(packed.text) <= budget if packed.text else True
    assert packed.tokens <= budget


def test_chunks_are_never_cut_mid_line() -> None:
    originals = {line for c in CHUNKS for line in c.text.split("\n")}
    for budget in range(0, 400, 7):
        packed = pack_chunks(CHUNKS, budget, "//", current_path="src/main.ts")
        assert packed.text == "" or packed.text.endswith("\n")
        for line in packed.text.splitlines():
            assert line.startswith("// Path: ") or line in originals
        for included in packed.chunks:
            source = next(c for c in CHUNKS if c.path == included.path)
            assert source.text.startswith(included.text)
            assert included.end_line == included.start_line + included.text.count("\n")


def test_truncates_at_a_line_boundary_or_drops() -> None:
    big = chunk(1, "big.py", 0, 50)
    packed = pack_chunks([big], 60, "#")
    assert len(packed.chunks) == 1
    kept = packed.chunks[0]
    assert 2 <= kept.text.count("\n") < 50
    assert big.text.startswith(kept.text)
    # Too small for two whole lines: dropped, not cut.
    assert pack_chunks([big], 12, "#").text == ""


def test_same_input_gives_identical_text_whatever_the_order() -> None:
    first = pack_chunks(CHUNKS, 200, "#", current_path="main.py").text
    shuffled = list(CHUNKS)
    random.Random(1).shuffle(shuffled)
    assert pack_chunks(shuffled, 200, "#", current_path="main.py").text == first
    assert pack_chunks(CHUNKS, 200, "#", current_path="main.py").text == first


def test_output_order_is_stable_when_scores_change() -> None:
    everything = 10_000
    base = pack_chunks(CHUNKS, everything, "#").text
    rescored = [replace(c, rank=-c.rank + random.Random(i).random()) for i, c in enumerate(CHUNKS)]
    assert pack_chunks(rescored, everything, "#").text == base
    # Output: neighbours first, imported definitions last (nearest the code), ties by path.
    paths = [line for line in base.splitlines() if line.startswith("# Path:")]
    assert paths == [
        "# Path: old.py",
        "# Path: recent.py",
        "# Path: main.py",
        "# Path: a/types.py",
        "# Path: a/core.py",
        "# Path: b/util.py",
    ]


def test_priority_decides_what_survives_a_tight_budget() -> None:
    packed = pack_chunks(CHUNKS, 60, "#")
    assert {c.priority for c in packed.chunks} == {1}
    assert packed.dropped == len(CHUNKS) - len(packed.chunks)


def test_every_chunk_gets_its_own_path_line_in_line_order() -> None:
    chunks = [chunk(1, "lib.py", 30, 2), chunk(1, "lib.py", 1, 2)]
    text = pack_chunks(chunks, 1000, "#", current_path="main.py").text
    assert text.count("# Path: lib.py\n") == 2
    assert text.startswith("# Path: lib.py\nline lib.py 1 ")
    assert text.index("lib.py 1 ") < text.index("lib.py 30 ")
    assert text.endswith("# Path: main.py\n")


def test_comment_syntax_follows_the_current_file(tmp_path: Path) -> None:
    (tmp_path / "util.ts").write_text("export function helper(a: number) {\n  return a;\n}\n")
    (tmp_path / "util.py").write_text("def helper(a):\n    return a\n")
    index = RepositoryIndex.build(tmp_path)
    ts = 'import { helper } from "./util";\nhelper(1);\n'
    py = "from util import helper\nhelper(1)\n"
    ts_context = build_context(index, tmp_path / "main.ts", ts, len(ts))
    py_context = build_context(index, tmp_path / "main.py", py, len(py))
    assert ts_context.startswith("// Path: util.ts\n")
    assert ts_context.endswith("// Path: main.ts\n")
    assert py_context.startswith("# Path: util.py\n")
    assert build_context(index, tmp_path / "main.py", py, len(py), include_current_path=False) == (
        "# Path: util.py\ndef helper(a):\n    return a\n"
    )


def test_build_context_is_deterministic_and_within_budget(tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / f"mod{i}.py").write_text(
            f'def fn{i}(value_{i}: int) -> int:\n    """Emoji doc 🚀 {i}."""\n'
            + "".join(f"    v{k} = {k}\n" for k in range(i))
            + "    return 0\n"
        )
    imports = "".join(f"from mod{i} import fn{i}\n" for i in range(30))
    calls = "".join(f"    fn{i}({i})\n" for i in range(30))
    text = f"{imports}\n\ndef main():\n{calls}    "
    index = RepositoryIndex.build(tmp_path)
    recent = [(str(tmp_path / "mod3.py"), (tmp_path / "mod3.py").read_text())]
    outputs = set()
    for budget in (50, 200, 800):
        first = build_context_chunks(index, tmp_path / "main.py", text, len(text), recent, budget)
        again = build_context_chunks(index, tmp_path / "main.py", text, len(text), recent, budget)
        assert first.text == again.text
        assert estimate_tokens(first.text) <= budget
        outputs.add(first.text)
    assert len(outputs) == 3

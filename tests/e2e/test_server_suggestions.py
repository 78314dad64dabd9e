"""Around a suggestion, over stdio: token healing, several candidates, the next one prefetched.

The generated model is scripted by its last prompt token (tests/support/synthetic.py):
after ``▁as`` it writes ``▁np``, after ``▁cycle`` the words of ``LONG_CYCLE`` round
and round, after anything else `` pass``.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

from lsprotocol import types

from test_server_session import Session, model_options, session

URI = "file:///workspace/heal.py"


async def last(s: Session) -> Any:
    return await s.client.protocol.send_request_async("codellama/lastPrompt", None)


def insert(s: Session, uri: str, version: int, line: int, character: int, text: str) -> None:
    at = types.Position(line=line, character=character)
    s.change(
        uri, version, types.TextDocumentContentChangePartial(range=types.Range(at, at), text=text)
    )


def log_lines(log: Path, needle: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if needle in line]


async def wait_log(log: Path, needle: str, count: int = 1, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = log_lines(log, needle) if log.exists() else []
        if len(found) >= count:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {count} log line(s) with {needle!r} in {timeout} s")


# -- token healing -------------------------------------------------------------


async def test_token_healing_spells_the_word_the_model_would_have_chosen(
    model_path: Path, tmp_path: Path
) -> None:
    """``import numpy as n|``: the model chooses its token where ``▁n`` starts (``▁np``),
    so the suggestion is ``p``; without healing it must go on after ``▁n``."""
    text = "import numpy as n\n"
    log = tmp_path / "server.log"
    options = model_options(model_path, tokenHealing=True, prefetch=False)
    async with session("neovim", options, args=("--log-file", str(log))) as s:
        s.open(text, URI)
        await s.wait_status("ready")
        healed = await s.inline(0, len("import numpy as n"), URI)
        assert [i.insert_text for i in healed.items] == ["p"]
        record = await last(s)
        # The prompt is the user's text; the model was asked where its last token starts.
        assert record.prompt.endswith("▁<MID> import numpy as n")
        (line,) = log_lines(log, "source=model")
        assert "healed=' n'" in line
    plain = model_options(model_path, tokenHealing=False, prefetch=False)
    async with session("neovim", plain) as s:
        s.open(text, URI)
        await s.wait_status("ready")
        result = await s.inline(0, len("import numpy as n"), URI)
        assert [i.insert_text for i in result.items] == [" pass"]


async def test_token_healing_keeps_the_natural_split_and_the_kv_cache(
    model_path: Path, tmp_path: Path
) -> None:
    """Where the model would write the typed token itself, nothing changes: the same
    suggestion as without healing, and each keystroke still evaluates only its tokens
    (the last two prompt tokens, whose logits healing reads)."""
    log = tmp_path / "server.log"
    head = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(20))
    text = head + "y = \n"
    line = head.count("\n")
    options = model_options(model_path, tokenHealing=True, prefetch=False)
    async with session("visual-studio-code", options, args=("--log-file", str(log))) as s:
        s.open(text, URI)
        await s.wait_status("ready")
        await s.inline(line, 4, URI)
        column = 4
        for version, ch in enumerate("value", start=2):
            insert(s, URI, version, line, column, ch)
            column += 1
            await s.inline(line, column, URI)
        lines = log_lines(log, "source=model")
    evaluated = [int(m) for m in re.findall(r"evaluated_tokens=(\d+)", "\n".join(lines[1:]))]
    assert evaluated and max(evaluated) <= 2 + 4, lines


# -- candidates ----------------------------------------------------------------


async def test_three_candidates_share_one_prompt_and_cycle_in_the_editor(
    model_path: Path, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    text = "def add(a, b):\n    \n"
    async with session(
        "visual-studio-code",
        model_options(model_path, candidates=3, prefetch=False),
        args=("--log-file", str(log)),
    ) as s:
        s.open(text, URI)
        await s.wait_status("ready")
        result = await s.inline(1, 4, URI)
        texts = [item.insert_text for item in result.items]
        assert len(texts) == 3 and len({t.strip() for t in texts}) == 3, texts
        assert all(item.range == result.items[0].range for item in result.items)
        (line,) = log_lines(log, "source=model")
        fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        # One prompt evaluation for all three: nothing evaluated twice.
        assert int(fields["evaluated_tokens"]) == int(fields["prompt_tokens"])
        assert fields["candidates"] == "3"
        # Typing the start of the second candidate keeps it (and only what still fits).
        second = texts[1]
        insert(s, URI, 2, 1, 4, second[0])
        after = await s.inline(1, 5, URI)
        rests = [item.insert_text for item in after.items]
        assert second[1:] in rests
        assert all(any(t.startswith(second[0] + r) for t in texts) for r in rests)
    async with session("visual-studio-code", model_options(model_path, prefetch=False)) as s:
        s.open(text, URI)
        await s.wait_status("ready")
        single = await s.inline(1, 4, URI)
        # The best candidate is the one suggestion a single-candidate request gets.
        assert [i.insert_text for i in single.items] == texts[:1]


# -- prefetch ------------------------------------------------------------------


async def test_the_suggestion_after_an_accept_is_ready_without_model_work(
    model_path: Path, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    text = "def f(a, b):\n    x = \n"
    async with session(
        "visual-studio-code",
        model_options(model_path, maxTokens=6),
        args=("--log-file", str(log)),
    ) as s:
        s.open(text, URI)
        await s.wait_status("ready")
        shown = (await s.inline(1, 8, URI)).items[0].insert_text
        await wait_log(log, "suggestion(s) ready")
        model_before = (await last(s)).answers.model
        # The user accepts (Tab): the editor inserts the text and asks again at its end.
        insert(s, URI, 2, 1, 8, shown)
        started = time.perf_counter()
        after = await s.inline(1, 8 + len(shown), URI)
        elapsed_ms = (time.perf_counter() - started) * 1000
        record = await last(s)
        assert record.answers.prefetch == 1 and record.answers.model == model_before
        (line,) = log_lines(log, "source=prefetch")
        assert "evaluated_tokens" not in line  # no model work
        prefetched = [item.insert_text for item in after.items]
        # Typing goes on from the prefetched prompt, whose KV state is taken over.
        insert(s, URI, 3, 1, 8 + len(shown), "z")
        await s.inline(1, 9 + len(shown), URI)
        typed = log_lines(log, "source=model")[-1]
        assert int(re.search(r"evaluated_tokens=(\d+)", typed)[1]) <= 4, typed  # type: ignore[index]
    # The same request without prefetch asks the model, and gets the same answer.
    async with session(
        "visual-studio-code", model_options(model_path, maxTokens=6, prefetch=False)
    ) as s:
        s.open(text[:21] + shown + text[21:], URI)
        await s.wait_status("ready")
        fresh = await s.inline(1, 8 + len(shown), URI)
        assert [item.insert_text for item in fresh.items] == prefetched
    assert elapsed_ms < 2000


async def test_a_keystroke_preempts_the_prefetch_and_keeps_its_kv_cache(
    model_path: Path, tmp_path: Path
) -> None:
    """``cycle`` makes the prefetch generate for seconds; a keystroke stops it at once,
    and the request after it finds the typing prompt untouched in the KV cache."""
    log = tmp_path / "server.log"
    text = "x = cycle\n"
    options = model_options(model_path, maxTokens=1500, timeBudgetMs=60000, maxLines=200)
    options["model"]["nCtx"] = 16384  # room for the prefetch beside the typing prompt
    async with session("visual-studio-code", options, args=("--log-file", str(log))) as s:
        s.open(text, URI)
        await s.wait_status("ready")
        first = await s.inline(0, 9, URI)
        assert first.items
        await wait_log(log, "model ready")
        await asyncio.sleep(0.5)  # the prefetch is generating by now
        insert(s, URI, 2, 0, 9, "s")
        started = time.perf_counter()
        await s.inline(0, 10, URI)
        elapsed = time.perf_counter() - started
        (stopped,) = await wait_log(log, "stopped (a request came)")
        typed = log_lines(log, "source=model")[-1]
        assert int(re.search(r"evaluated_tokens=(\d+)", typed)[1]) <= 4, typed  # type: ignore[index]
    assert elapsed < 5, (elapsed, stopped)

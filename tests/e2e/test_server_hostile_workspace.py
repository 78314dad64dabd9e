"""Hostile workspaces through the real server and CLI: names that are not UTF-8,
1,100 nested directories, symlinks and FIFOs created while running, .gitignore
lines git tolerates, and a file far over the hard size cap.

Each reproduces what a tester saw (a traceback, -32603 answers, a progress that
never ended, a watcher thread stuck in ``open()``, an event loop stalled for
seconds); the prompt is read back with ``codellama/lastPrompt``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from codellama_lsp.context.workspace import HARD_MAX_FILE_BYTES, MAX_DEPTH
from tests.support.trees import remove_tree

from test_server_session import Session, model_options, session

MAIN = "from mod import helper\n\n\ndef run(path):\n    cfg = helper(path)\n    \n"
HELPER = "def helper(path: str, hostile_marker: int = 7) -> dict:\n    return {}\n"
CURSOR = (5, 4)


async def prompt_of(s: Session, uri: str, line: int = CURSOR[0], col: int = CURSOR[1]) -> str:
    await s.inline(line, col, uri, types.InlineCompletionTriggerKind.Invoked)
    result: Any = await s.client.protocol.send_request_async("codellama/lastPrompt", None)
    return str(result.prompt)


async def prompt_with(s: Session, uri: str, needle: str, at: tuple[int, int] = CURSOR) -> str:
    """The prompt once ``needle`` is in it (the watcher applies changes in the background)."""
    prompt = ""
    for _ in range(100):
        prompt = await prompt_of(s, uri, *at)
        if needle in prompt:
            return prompt
        await asyncio.sleep(0.1)
    raise AssertionError(f"{needle!r} never reached the prompt:\n{prompt}")


def open_main(s: Session, root: Path, text: str = MAIN) -> str:
    uri = (root / "main.py").as_uri()
    s.open(text, uri)
    return uri


def cli(codellama_bin: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # A strict UTF-8 stdout, as in a terminal with LANG=en_US.UTF-8.
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [codellama_bin, *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=60,
    )


# -- 7 -------------------------------------------------------------------------------


@pytest.fixture
def undecodable(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    raw = os.fsencode(root)
    os.mkdir(raw + b"/pkg\xfe")
    with open(raw + b"/pkg\xfe/mod.py", "w") as handle:
        handle.write(HELPER)
    with open(raw + b"/pkg\xfe/inner.py", "w") as handle:
        handle.write("from .mod import helper\n\n\ndef run(path):\n    cfg = helper(path)\n    \n")
    (root / "main.py").write_text(MAIN)
    return root


def test_cli_with_an_undecodable_directory_name(undecodable: Path, codellama_bin: str) -> None:
    listed = cli(codellama_bin, "index", ".", cwd=undecodable)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["main.py"]
    shown = cli(codellama_bin, "prompt", "main.py:6:5", "--workspace", ".", cwd=undecodable)
    assert shown.returncode == 0, shown.stderr
    assert "Traceback" not in shown.stderr and "hostile_marker" not in shown.stdout
    # The current file inside such a directory (named as an editor's URI decodes it).
    inner = os.fsdecode(os.fsencode(undecodable) + b"/pkg\xfe/inner.py")
    shown = cli(codellama_bin, "prompt", f"{inner}:5:5", "--workspace", ".", cwd=undecodable)
    assert shown.returncode == 0, shown.stderr
    assert "Traceback" not in shown.stderr and "def run(path):" in shown.stdout


async def test_server_with_an_undecodable_directory_name(
    undecodable: Path, model_path: Path
) -> None:
    options = model_options(model_path)
    async with session("visual-studio-code", options, root_uri=undecodable.as_uri()) as s:
        await s.wait_status("indexed")
        uri = open_main(s, undecodable)
        for _ in range(3):  # every completion in that file failed with -32603
            result = await s.inline(*CURSOR, uri, types.InlineCompletionTriggerKind.Invoked)
            assert len(result.items) == 1
        prompt = await prompt_of(s, uri)
        assert "hostile_marker" not in prompt and "\ufffd" not in prompt


# -- 8 -------------------------------------------------------------------------------


def nest(root: Path, depth: int) -> None:
    """``depth`` directories ``d/d/...`` (dir_fd: no absolute path gets too long)."""
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        flags = os.O_WRONLY | os.O_CREAT
        with open(os.open("mod.py", flags, dir_fd=fd), "w") as handle:
            handle.write(HELPER)
    finally:
        os.close(fd)


async def test_deep_nesting_ends_the_progress_and_is_watched(
    tmp_path: Path, model_path: Path
) -> None:
    root = tmp_path / "deep"
    root.mkdir()
    nest(root, 1100)
    try:
        await deep_session(root, tmp_path / "server.log", model_path)
    finally:
        remove_tree(root)


async def deep_session(root: Path, log: Path, model_path: Path) -> None:
    started = time.monotonic()
    async with session(
        "visual-studio-code",
        model_options(model_path),
        args=("--log-file", str(log)),
        root_uri=root.as_uri(),
    ) as s:
        await s.wait_status("indexed")
        assert time.monotonic() - started < 20
        reports = list(s.client.progress_reports.values())
        assert reports and isinstance(reports[0][-1], types.WorkDoneProgressEnd)
        uri = open_main(s, root)
        prompt = await prompt_of(s, uri)
        assert "hostile_marker" not in prompt  # 1,100 levels down: below the bound
        # Watched all the same: a module written now reaches the prompt.
        (root / "mod.py").write_text(HELPER.replace("hostile_marker", "watched_marker"))
        await prompt_with(s, uri, "watched_marker")
    text = log.read_text()
    assert "RecursionError" not in text and "Traceback" not in text
    assert f"deeper than {MAX_DEPTH} levels" in text


# -- 9 and 10 ------------------------------------------------------------------------

LATER_MAIN = (
    "from mod import helper\nfrom later import later_one\n\n\n"
    "def run(path):\n    cfg = helper(path)\n    later_one(\n"
)
LATER_CURSOR = (6, 14)


async def test_symlinks_and_fifos_created_while_running(tmp_path: Path, model_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "mod.py").write_text(HELPER)
    async with session(
        "visual-studio-code", model_options(model_path), root_uri=root.as_uri()
    ) as s:
        await s.wait_status("indexed")
        uri = open_main(s, root, LATER_MAIN)
        (root / "mod.py").symlink_to(outside / "mod.py")
        os.mkfifo(root / "pipe.py")
        os.mkfifo(root / ".gitignore")
        try:
            # A FIFO blocked the watcher thread for good: later files never arrived.
            (root / "later.py").write_text("def later_one(fifo_marker: int) -> None:\n    pass\n")
            prompt = await prompt_with(s, uri, "fifo_marker", LATER_CURSOR)
            # A link out of the workspace stays out, as at the first index.
            assert "hostile_marker" not in prompt
        finally:
            for fifo in ("pipe.py", ".gitignore"):
                # Frees a reader stuck in open(), should there be one.
                with contextlib.suppress(OSError):
                    os.close(os.open(root / fifo, os.O_WRONLY | os.O_NONBLOCK))
    # ...and shutdown and exit were answered (the session checks the exit status).


# -- 11 ------------------------------------------------------------------------------

BAD_GITIGNORE = "!\n\\\n[z-a]\nignored_copy/\n"


async def test_bad_gitignore_lines(tmp_path: Path, model_path: Path, codellama_bin: str) -> None:
    root = tmp_path / "ws"
    (root / "lib" / "ignored_copy").mkdir(parents=True)
    (root / "lib" / ".gitignore").write_text(BAD_GITIGNORE)
    (root / "lib" / "mod.py").write_text(HELPER)
    (root / "lib" / "ignored_copy" / "mod.py").write_text("def helper(ignored_marker):\n    pass\n")
    (root / "main.py").write_text(MAIN.replace("from mod", "from lib.mod"))
    listed = cli(codellama_bin, "index", ".", cwd=root)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["lib/mod.py", "main.py"]
    assert listed.stderr.count("lib/.gitignore") == 1
    log = tmp_path / "server.log"
    async with session(
        "visual-studio-code",
        model_options(model_path),
        args=("--log-file", str(log)),
        root_uri=root.as_uri(),
    ) as s:
        await s.wait_status("indexed")
        uri = open_main(s, root, MAIN.replace("from mod", "from lib.mod"))
        prompt = await prompt_with(s, uri, "hostile_marker")
        assert "ignored_marker" not in prompt
        # Written while running: the good line applies, no traceback per event.
        second = (root / "second.py").as_uri()
        s.open(LATER_MAIN.replace("from mod", "from lib.mod"), second)
        (root / "sub").mkdir()
        (root / "sub" / "mod.py").write_text(HELPER.replace("hostile", "sub"))
        (root / ".gitignore").write_text(BAD_GITIGNORE + "sub/\n")
        for n in range(10):
            (root / f"f{n}.py").write_text(f"def f{n}():\n    pass\n")
        (root / "later.py").write_text("def later_one(settled_marker: int) -> None:\n    pass\n")
        await prompt_with(s, second, "settled_marker", LATER_CURSOR)
    text = log.read_text()
    assert "Traceback" not in text
    assert text.count("/.gitignore: skipping") == 1  # lib/.gitignore, once
    assert text.count(" .gitignore: skipping") == 1  # the root's, once


# -- 12 ------------------------------------------------------------------------------


async def test_a_file_over_the_hard_cap_neither_stalls_nor_bloats(
    tmp_path: Path, model_path: Path
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    big = "def first_of_huge():\n    pass\n" + "x = [1, 2, 3]\n" * (HARD_MAX_FILE_BYTES // 14 + 1)
    (root / "huge.py").write_text(big)
    (root / "mod.py").write_text(HELPER)
    log = tmp_path / "server.log"
    options = model_options(model_path)
    options["context"] = {"maxFileBytes": 100_000_000}
    async with session(
        "visual-studio-code", options, args=("--log-file", str(log)), root_uri=root.as_uri()
    ) as s:
        status = await s.wait_status("indexed")
        assert status["message"].startswith("1 files")
        huge_uri = (root / "huge.py").as_uri()
        s.open(big, huge_uri)
        # The loop answers throughout (a parse in the background once stalled it 8.5 s).
        worst = 0.0
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            sent = time.monotonic()
            await s.client.protocol.send_request_async("codellama/lastPrompt", None)
            worst = max(worst, time.monotonic() - sent)
            await asyncio.sleep(0.05)
        assert worst < 1.0, f"the event loop stalled {worst:.1f} s"
        uri = open_main(s, root)
        await prompt_with(s, uri, "hostile_marker")
    assert log.read_text().count("huge.py: ") == 1

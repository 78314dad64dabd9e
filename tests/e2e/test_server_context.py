"""Workspace context through the real server: index, progress, watcher, exclusions.

The generated model's completions do not depend on the context, so these tests
read the exact prompt back with ``codellama/lastPrompt``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from test_server_session import Session, model_options, session

MAIN = "from util import parse_config\n\n\ndef run(path):\n    cfg = parse_config(path)\n    \n"
UTIL = (
    "def parse_config(path: str, strict: bool = True) -> dict:\n"
    '    """Read a TOML config file."""\n'
    "    return {}\n"
)
OTHER = "def parse_config(blob: bytes) -> list:\n    return []\n"
SECRET = "API_TOKEN=sk-live-4242-do-not-leak\n"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "legacy").mkdir(parents=True)
    (root / "main.py").write_text(MAIN)
    (root / "util.py").write_text(UTIL)
    (root / "legacy" / "other.py").write_text(OTHER)
    (root / ".env").write_text(SECRET)
    (root / "generated").mkdir()
    (root / "generated" / "api.py").write_text("def generated_api_token():\n    return 1\n")
    (root / ".gitignore").write_text("build/\n")
    (root / "build").mkdir()
    (root / "build" / "util.py").write_text("def parse_config(ignored_build_copy):\n    pass\n")
    return root


async def last_prompt(s: Session) -> dict[str, Any]:
    result = await s.client.protocol.send_request_async("codellama/lastPrompt", None)
    assert result is not None
    return dict(result._asdict()) if hasattr(result, "_asdict") else dict(vars(result))


def open_file(s: Session, root: Path, name: str, text: str | None = None) -> str:
    path = root / name
    uri = path.as_uri()
    s.open(text if text is not None else path.read_text(), uri)
    return uri


async def prompt_at(s: Session, uri: str, line: int, character: int) -> str:
    await s.inline(line, character, uri, types.InlineCompletionTriggerKind.Invoked)
    return str((await last_prompt(s))["prompt"])


@pytest.mark.parametrize("profile", ["visual-studio-code", "neovim"])
async def test_prompt_holds_the_imported_signature(
    profile: str, workspace: Path, model_path: Path
) -> None:
    async with session(profile, model_options(model_path), root_uri=workspace.as_uri()) as s:
        await s.wait_status("indexed")
        uri = open_file(s, workspace, "main.py")
        prompt = await prompt_at(s, uri, 5, 4)
        assert "def parse_config(path: str, strict: bool = True) -> dict:" in prompt
        assert "# Path: util.py" in prompt
        assert "blob: bytes" not in prompt  # same name, not imported
        assert "ignored_build_copy" not in prompt  # .gitignore
        assert "sk-live" not in prompt  # secrets never
        # Context comes before the code around the cursor, ending with its path.
        assert prompt.index("# Path: util.py") < prompt.index("# Path: main.py")
        assert prompt.index("# Path: main.py") < prompt.index("def run(path):")


async def test_first_index_reports_progress(workspace: Path, model_path: Path) -> None:
    async with session(
        "visual-studio-code", model_options(model_path), root_uri=workspace.as_uri()
    ) as s:
        status = await s.wait_status("indexed")
        assert "files" in status["message"]
        reports = list(s.client.progress_reports.values())
        assert reports, "no $/progress for the first index"
        kinds = [type(r).__name__ for r in reports[0]]
        assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd"


async def test_exclude_setting_and_secrets_stay_out(workspace: Path, model_path: Path) -> None:
    options = model_options(model_path)
    options["context"] = {"exclude": ["util.py"]}
    async with session("visual-studio-code", options, root_uri=workspace.as_uri()) as s:
        await s.wait_status("indexed")
        # Recently opened files feed neighbour snippets; excluded and secret ones must not.
        open_file(s, workspace, ".env")
        open_file(s, workspace, "util.py")
        uri = open_file(s, workspace, "main.py")
        prompt = await prompt_at(s, uri, 5, 4)
        assert "strict: bool" not in prompt
        assert "sk-live" not in prompt


async def test_open_document_text_wins_and_disk_changes_are_watched(
    workspace: Path, model_path: Path
) -> None:
    async with session(
        "visual-studio-code", model_options(model_path), root_uri=workspace.as_uri()
    ) as s:
        await s.wait_status("indexed")
        # Edited in the editor, not saved: the new signature is what counts.
        open_file(s, workspace, "util.py", UTIL.replace("strict: bool = True", "lenient: int = 0"))
        uri = open_file(s, workspace, "main.py")

        async def prompt_with(needle: str) -> str:
            for _ in range(100):
                prompt = await prompt_at(s, uri, 5, 4)
                if needle in prompt:
                    return prompt
                await asyncio.sleep(0.1)
            raise AssertionError(f"{needle!r} never reached the prompt:\n{prompt}")

        prompt = await prompt_with("lenient: int = 0")
        assert "strict: bool" not in prompt
        # A new file written on disk is picked up by the watcher.
        (workspace / "helpers.py").write_text("def slugify(title: str, sep: str = '-') -> str:\n")
        s.change(
            uri,
            2,
            types.TextDocumentContentChangeWholeDocument(
                text="from helpers import slugify\n" + MAIN.replace("    \n", "    slugify(\n")
            ),
        )
        uri_line, uri_col = 6, 12
        for _ in range(100):
            # Invoked, as by a key binding: a fresh prompt, not the suggestion on screen.
            await s.inline(uri_line, uri_col, uri, types.InlineCompletionTriggerKind.Invoked)
            prompt = str((await last_prompt(s))["prompt"])
            if "sep: str = '-'" in prompt:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the new file on disk never reached the prompt")


async def test_context_can_be_turned_off(workspace: Path, model_path: Path) -> None:
    options = model_options(model_path)
    options["context"] = {"enable": False}
    async with session("neovim", options, root_uri=workspace.as_uri()) as s:
        await s.wait_status("ready")
        uri = open_file(s, workspace, "main.py")
        prompt = await prompt_at(s, uri, 5, 4)
        assert "strict: bool" not in prompt and "# Path:" not in prompt
        last = await last_prompt(s)
        assert last["contextTokens"] == 0


async def test_credentials_in_ordinary_source_never_reach_the_prompt(
    tmp_path: Path, model_path: Path
) -> None:
    root = tmp_path / "creds"
    root.mkdir()
    key, token = "AKIA" + "Z7EXAMPLEKEY0042", "ghp_" + "Q" * 30 + "r2D2c3PO"
    (root / "settings.py").write_text(
        f'def credentials():\n    return {{"aws": "{key}", "password": "s3cr3t-Pa55"}}\n'
    )
    main = (
        "from settings import credentials\n\n"
        f"GITHUB = '{token}'\n\n\n"
        "def run():\n    c = credentials()\n    \n"
    )
    async with session(
        "visual-studio-code", model_options(model_path), root_uri=root.as_uri()
    ) as s:
        await s.wait_status("indexed")
        uri = open_file(s, root, "main.py", main)
        prompt = await prompt_at(s, uri, 7, 4)
        assert "def credentials():" in prompt  # the imported function is shown...
        for secret in (key, token, "s3cr3t-Pa55"):
            assert secret not in prompt  # ...without its literals
        assert "<redacted:aws-access-key>" in prompt and "<redacted:github-token>" in prompt


async def test_secret_files_get_no_completions_unless_allowed(
    tmp_path: Path, model_path: Path
) -> None:
    root = tmp_path / "secretive"
    root.mkdir()
    env = "DATABASE_URL=postgres://admin:hunter2@db\nAPI_KEY="
    for allow, expected in (((), 0), ((".env",), 1)):
        options = model_options(model_path)
        options["context"] = {"completeExcluded": list(allow)}
        async with session("neovim", options, root_uri=root.as_uri()) as s:
            await s.wait_status("ready")
            uri = open_file(s, root, ".env", env)
            result = await s.inline(1, 8, uri, types.InlineCompletionTriggerKind.Invoked)
            assert len(result.items) == expected
            answers = (await last_prompt(s))["answers"]
            assert getattr(answers, "excluded", 0) == 1 - expected

"""The real server over stdio, driven by pytest-lsp with VS Code's and Neovim's capabilities."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.support.synthetic import SCRIPTED_COMPLETION

PROFILES = ["visual-studio-code", "neovim"]
URI = "file:///workspace/demo.py"
# Emoji (astral: 2 UTF-16 units, 4 UTF-8 bytes) and CJK before the cursor.
TEXT = "def add(a, b):\n    s = '😀 日本' # loop\n    \n"


def column(line_prefix: str, encoding: str) -> int:
    """A column in the negotiated encoding, computed independently of the server."""
    if encoding == "utf-8":
        return len(line_prefix.encode("utf-8"))
    if encoding == "utf-32":
        return len(line_prefix)
    return len(line_prefix.encode("utf-16-le")) // 2


class Session:
    def __init__(self, client: LanguageClient, result: types.InitializeResult) -> None:
        self.client = client
        self.result = result
        self.statuses: list[dict[str, Any]] = []
        self.encoding = str(result.capabilities.position_encoding or "utf-16")

    def open(self, text: str = TEXT, uri: str = URI, version: int = 1) -> None:
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)
            )
        )

    def change(
        self, uri: str, version: int, *changes: types.TextDocumentContentChangeEvent
    ) -> None:
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(uri=uri, version=version), list(changes)
            )
        )

    async def inline(
        self,
        line: int,
        character: int,
        uri: str = URI,
        trigger: types.InlineCompletionTriggerKind = types.InlineCompletionTriggerKind.Automatic,
    ) -> types.InlineCompletionList:
        result = await self.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                context=types.InlineCompletionContext(trigger_kind=trigger),
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=character),
            )
        )
        assert isinstance(result, types.InlineCompletionList)
        return result

    async def wait_status(self, state: str, timeout: float = 30) -> dict[str, Any]:
        async def poll() -> dict[str, Any]:
            while True:
                for status in self.statuses:
                    if status["state"] == state:
                        return status
                await asyncio.sleep(0.02)

        try:
            return await asyncio.wait_for(poll(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"no {state!r} status in {timeout} s; saw {self.statuses}"
            ) from None

    async def wait_message(self, needle: str, timeout: float = 30) -> types.ShowMessageParams:
        async def poll() -> types.ShowMessageParams:
            while True:
                for message in self.client.messages:
                    if needle in message.message:
                        return message
                await asyncio.sleep(0.02)

        return await asyncio.wait_for(poll(), timeout)


@contextlib.asynccontextmanager
async def session(
    profile: str,
    options: dict[str, Any] | None = None,
    args: tuple[str, ...] = (),
    root_uri: str = "file:///workspace",
    env: dict[str, str] | None = None,
) -> AsyncIterator[Session]:
    config = ClientServerConfig(
        server_command=[sys.executable, "-m", "codellama_lsp.server", "--stdio", *args],
        server_env={**os.environ, **env} if env else None,
    )
    client: LanguageClient = await config.start()  # type: ignore[assignment]
    statuses: list[dict[str, Any]] = []

    @client.feature("codellama/status")
    def on_status(params: Any) -> None:
        statuses.append({"state": params.state, "message": params.message})

    clean = False
    try:
        result = await client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities(profile),
                initialization_options=options,
                root_uri=root_uri,
            )
        )
        s = Session(client, result)
        s.statuses = statuses
        yield s
        # Bounded: a server that never exits fails this test instead of hanging the run.
        await asyncio.wait_for(client.shutdown_session(), 30)
        assert client._server is not None
        assert client._server.returncode == 0  # shutdown + exit is a clean exit
        clean = True
    finally:
        if not clean and client._server is not None and client._server.returncode is None:
            client._server.kill()  # a failed test must not wait for a server that never exits
        await client.stop()


def model_options(model_path: Path, **completion: Any) -> dict[str, Any]:
    """The generated model, with ``completion`` settings.

    Token healing is off unless asked for: the scripted model answers by the
    prompt's last token, which healing takes off when the text ends in a word
    (tests/e2e/test_server_suggestions.py tests healing itself).
    """
    completion = {"tokenHealing": False, **completion}
    return {"model": {"path": str(model_path), "nCtx": 4096}, "completion": completion}


@pytest.mark.parametrize("profile", PROFILES)
async def test_initialize_advertises_inline_completion(profile: str, model_path: Path) -> None:
    async with session(profile, model_options(model_path)) as s:
        caps = s.result.capabilities
        assert caps.inline_completion_provider is not None
        assert caps.completion_provider is not None
        sync = caps.text_document_sync
        assert isinstance(sync, types.TextDocumentSyncOptions)
        assert sync.open_close and sync.change == types.TextDocumentSyncKind.Incremental
        assert sync.save is not None
        expected = "utf-8" if profile == "neovim" else "utf-16"
        assert s.encoding == expected
        assert s.result.server_info is not None and s.result.server_info.name == "codellama-lsp"


@pytest.mark.parametrize("profile", PROFILES)
async def test_inline_and_completion_return_the_same_suggestion(
    profile: str, model_path: Path
) -> None:
    async with session(profile, model_options(model_path, fimOrder="psm")) as s:
        s.open()
        line = 2
        char = column("    ", s.encoding)
        inline = await s.inline(line, char)
        assert len(inline.items) == 1
        item = inline.items[0]
        assert item.insert_text == SCRIPTED_COMPLETION
        at = types.Position(line=line, character=char)
        assert item.range == types.Range(start=at, end=at)

        completion = await s.client.text_document_completion_async(
            types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=URI), position=at)
        )
        assert isinstance(completion, types.CompletionList) and completion.is_incomplete
        assert len(completion.items) == 1
        edit = completion.items[0].text_edit
        assert isinstance(edit, types.TextEdit)
        assert edit.new_text == SCRIPTED_COMPLETION and edit.range == types.Range(start=at, end=at)
        # A snippet edit (both profiles support snippets) so Neovim inserts it whole, as is.
        assert completion.items[0].insert_text_format == types.InsertTextFormat.Snippet
        assert completion.items[0].insert_text_mode == types.InsertTextMode.AsIs


@pytest.mark.parametrize("profile", PROFILES)
async def test_positions_use_the_negotiated_encoding(profile: str, model_path: Path) -> None:
    """SPM prompts end at the cursor: right after "loop" the model loops, elsewhere it passes.

    One code unit off (an emoji counted as one UTF-16 unit, a CJK character as
    one UTF-8 byte) moves the cursor into or out of the word and the answer changes.
    """
    async with session(profile, model_options(model_path, maxTokens=3)) as s:
        s.open()
        line_text = TEXT.splitlines()[1]
        after_loop = column(line_text, s.encoding)
        result = await s.inline(1, after_loop)
        assert result.items[0].insert_text == " loop loop loop"
        inside = await s.inline(1, after_loop - 1)  # "# loo|p"
        assert [i.insert_text for i in inside.items] != [" loop loop loop"]


@pytest.mark.parametrize("profile", PROFILES)
async def test_incremental_edits_with_emoji(profile: str, model_path: Path) -> None:
    async with session(profile, model_options(model_path, maxTokens=2)) as s:
        s.open()
        enc = s.encoding
        # Insert " loop" after the emoji on line 1, then delete the CJK characters.
        emoji_end = column("    s = '😀", enc)
        s.change(
            URI,
            2,
            types.TextDocumentContentChangePartial(
                range=types.Range(
                    start=types.Position(line=1, character=emoji_end),
                    end=types.Position(line=1, character=emoji_end),
                ),
                text=" loop",
            ),
        )
        cjk_start = column("    s = '😀 loop ", enc)
        cjk_end = column("    s = '😀 loop 日本", enc)
        s.change(
            URI,
            3,
            types.TextDocumentContentChangePartial(
                range=types.Range(
                    start=types.Position(line=1, character=cjk_start),
                    end=types.Position(line=1, character=cjk_end),
                ),
                text="",
            ),
        )
        # Line 1 is now "    s = '😀 loop ' # loop": complete right after the first "loop".
        result = await s.inline(1, column("    s = '😀 loop", enc))
        assert result.items[0].insert_text == " loop loop"
        # A full-text change replaces everything.
        s.change(URI, 4, types.TextDocumentContentChangeWholeDocument(text="x = 1\n"))
        result = await s.inline(0, 5)
        assert result.items[0].insert_text == " pass"


@pytest.mark.parametrize("profile", PROFILES)
async def test_did_change_configuration_switches_fim_order(profile: str, model_path: Path) -> None:
    async with session(profile, model_options(model_path)) as s:
        s.open()
        assert (await s.inline(2, 4)).items[0].insert_text == " pass"  # SPM default
        s.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(
                settings={"codellama": model_options(model_path, fimOrder="psm")}
            )
        )
        await asyncio.sleep(0.2)
        assert (await s.inline(2, 4)).items[0].insert_text == SCRIPTED_COMPLETION


async def test_bad_settings_warn_and_fall_back(model_path: Path) -> None:
    options = {
        "model": {"path": str(model_path), "nCtx": 3},
        "completion": {"maxTokens": "lots", "fimOrder": "sideways"},
    }
    async with session("visual-studio-code", options) as s:
        warning = await s.wait_message("completion.maxTokens")
        assert warning.type == types.MessageType.Warning
        await s.wait_message("model.nCtx")
        await s.wait_message("completion.fimOrder")
        s.open()
        assert (await s.inline(2, 4)).items[0].insert_text == " pass"


async def test_max_tokens_flag_limits_generation(model_path: Path) -> None:
    async with session("neovim", model_options(model_path), args=("--max-tokens", "4")) as s:
        s.open("for loop", "file:///workspace/l.py")
        result = await s.inline(0, 8, "file:///workspace/l.py")
        assert result.items[0].insert_text == " loop" * 4


async def test_model_flag_overrides_settings(model_path: Path, tmp_path: Path) -> None:
    options = {"model": {"path": str(tmp_path / "elsewhere.gguf")}}
    async with session("neovim", options, args=("--model", str(model_path))) as s:
        await s.wait_status("ready")
        s.open()
        assert (await s.inline(2, 4)).items


async def expect_error(awaitable: Any, code: int, needle: str) -> None:
    with pytest.raises(JsonRpcException) as info:
        await awaitable
    assert info.value.code == code, info.value
    assert needle in str(info.value)


async def test_bad_requests_get_clear_errors_and_the_server_keeps_serving(
    model_path: Path,
) -> None:
    # Three tokens: after "loop" the scripted model would loop until the repetition rule.
    async with session("visual-studio-code", model_options(model_path, maxTokens=3)) as s:
        await expect_error(s.inline(0, 0, "file:///workspace/never-opened.py"), -32602, "not open")
        s.open()
        await expect_error(s.inline(40, 0), -32602, "past the end")
        await expect_error(
            s.client.protocol.send_request_async("codellama/noSuchMethod", {}),
            -32601,
            "codellama/noSuchMethod",
        )
        # A character past the end of a line means the end of that line.
        clamped = await s.inline(1, 500)
        end = column(TEXT.splitlines()[1], s.encoding)
        assert clamped.items[0].range is not None
        assert clamped.items[0].range.start.character == end
        # Still serving.
        assert (await s.inline(2, 4)).items[0].insert_text == " pass"


async def test_edit_outside_the_document_is_reported_and_recovered(model_path: Path) -> None:
    async with session("visual-studio-code", model_options(model_path)) as s:
        s.open()
        s.change(
            URI,
            2,
            types.TextDocumentContentChangePartial(
                range=types.Range(
                    start=types.Position(line=50, character=0),
                    end=types.Position(line=51, character=0),
                ),
                text="oops",
            ),
        )
        message = await s.wait_message("ignored an edit")
        assert message.type == types.MessageType.Error
        assert "outside" in message.message
        await expect_error(s.inline(2, 4), -32803, "out of sync")
        s.change(URI, 3, types.TextDocumentContentChangeWholeDocument(text=TEXT))
        assert (await s.inline(2, 4)).items[0].insert_text == " pass"


async def test_five_megabyte_document(model_path: Path) -> None:
    line = "value = compute(1, 2, 3)  # 😀 padding padding padding\n"
    big = line * (5_000_000 // len(line.encode("utf-8")) + 1)
    assert len(big.encode("utf-8")) >= 5_000_000
    async with session("visual-studio-code", model_options(model_path, maxTokens=3)) as s:
        s.open(big, "file:///workspace/big.py")
        lines = big.count("\n")
        result = await s.inline(lines, 0, "file:///workspace/big.py")
        assert result.items[0].insert_text == " pass"
        s.change(
            "file:///workspace/big.py",
            2,
            types.TextDocumentContentChangePartial(
                range=types.Range(
                    start=types.Position(line=lines, character=0),
                    end=types.Position(line=lines, character=0),
                ),
                text="for loop",
            ),
        )
        result = await s.inline(lines, 8, "file:///workspace/big.py")
        assert result.items[0].insert_text.startswith(" loop loop")


async def test_did_close_forgets_the_document(model_path: Path) -> None:
    async with session("neovim", model_options(model_path)) as s:
        s.open()
        assert (await s.inline(2, 4)).items
        s.client.text_document_did_save(
            types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=URI))
        )
        s.client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=URI))
        )
        await expect_error(s.inline(2, 4), -32602, "not open")


async def test_disabled_returns_nothing(model_path: Path) -> None:
    options = model_options(model_path)
    options["enable"] = False
    async with session("visual-studio-code", options) as s:
        s.open()
        assert list((await s.inline(2, 4)).items) == []


@pytest.mark.parametrize(
    ("fixture", "needle"),
    [
        ("corrupt_model_path", "could not load"),
        ("not_gguf_path", "not a GGUF file"),
        ("nofim_model_path", "fill-in-the-middle"),
    ],
)
async def test_bad_model_files_show_one_message(
    fixture: str, needle: str, request: pytest.FixtureRequest
) -> None:
    path: Path = request.getfixturevalue(fixture)
    async with session("visual-studio-code", {"model": {"path": str(path)}}) as s:
        message = await s.wait_message(needle)
        assert message.type == types.MessageType.Error
        assert str(path) in message.message
        s.open()
        assert list((await s.inline(2, 4)).items) == []  # no model: no suggestion, no error
        assert len([m for m in s.client.messages if needle in m.message]) == 1


async def test_missing_model_shows_a_message(tmp_path: Path) -> None:
    missing = tmp_path / "missing.gguf"
    async with session("neovim", {"model": {"path": str(missing)}}) as s:
        message = await s.wait_message("not found")
        assert str(missing) in message.message
        status = await s.wait_status("error")
        assert str(missing) in status["message"]


async def test_no_model_configured_explains_how_to_set_one() -> None:
    async with session("neovim") as s:
        message = await s.wait_message("codellama.model.path")
        assert message.type == types.MessageType.Warning
        s.open()
        assert list((await s.inline(2, 4)).items) == []


def long_options(model_path: Path) -> dict[str, Any]:
    """ "cycle" makes the scripted model write 4000 tokens (seconds) that no stop rule ends."""
    return model_options(model_path, maxTokens=4000, timeBudgetMs=60000)


async def test_cancel_request_stops_generation(model_path: Path) -> None:
    async with session("visual-studio-code", long_options(model_path)) as s:
        uri = "file:///workspace/l.py"
        s.open("x = cycle", uri)
        await s.wait_status("ready")
        params = types.InlineCompletionParams(
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=0, character=9),
        )
        task = asyncio.ensure_future(
            s.client.protocol.send_request_async(
                types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="long-one"
            )
        )
        await asyncio.sleep(0.3)
        started = asyncio.get_running_loop().time()
        s.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="long-one"))
        with pytest.raises(JsonRpcException) as raised:
            await asyncio.wait_for(task, 5)
        assert raised.value.code == types.LSPErrorCodes.RequestCancelled
        s.open("x = 1", "file:///workspace/x.py")
        result = await s.inline(0, 5, "file:///workspace/x.py")
        # The engine was free again at once: the 4000-token generation stopped.
        assert result.items[0].insert_text == " pass"
        assert asyncio.get_running_loop().time() - started < 3


async def test_newer_request_supersedes_older(model_path: Path) -> None:
    async with session("visual-studio-code", long_options(model_path)) as s:
        uri = "file:///workspace/l.py"
        s.open("x = cycle", uri)
        await s.wait_status("ready")
        first = asyncio.ensure_future(s.inline(0, 9, uri))
        await asyncio.sleep(0.3)
        started = asyncio.get_running_loop().time()
        s.change(uri, 2, types.TextDocumentContentChangeWholeDocument(text="x = cycle\nx = 1"))
        second = await s.inline(1, 5, uri)
        assert second.items[0].insert_text == " pass"
        assert list((await asyncio.wait_for(first, 5)).items) == []  # stale: nothing to show
        # The 4000-token generation stopped between tokens instead of running out.
        assert asyncio.get_running_loop().time() - started < 2
        answers = (await s.client.protocol.send_request_async("codellama/lastPrompt", None)).answers
        assert answers.superseded == 1


def test_snippet_escaping_inserts_text_literally() -> None:
    from codellama_lsp.server.completion import escape_snippet

    assert escape_snippet("f(${x}) \\ $0") == "f(\\${x\\}) \\\\ \\$0"
    assert escape_snippet("return a + b") == "return a + b"


async def test_selected_popup_item_is_folded_into_the_prompt(model_path: Path) -> None:
    """VS Code's selectedCompletionInfo: the suggestion continues the selected item and starts
    with it, replacing its range; the prompt is built as if the item were inserted."""
    async with session("visual-studio-code", model_options(model_path)) as s:
        uri = "file:///workspace/sel.py"
        s.open("def add(a, b):\n    re\n", uri)
        await s.wait_status("ready")
        word = types.Range(start=types.Position(1, 4), end=types.Position(1, 6))
        result = await s.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Automatic,
                    selected_completion_info=types.SelectedCompletionInfo(
                        range=word, text="return"
                    ),
                ),
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(1, 6),
            )
        )
        assert isinstance(result, types.InlineCompletionList)
        for item in result.items:  # the tiny model may have nothing to add: then no item
            assert isinstance(item.insert_text, str) and item.insert_text.startswith("return")
            assert len(item.insert_text) > len("return")
            assert item.range == word
        last = await s.client.protocol.send_request_async("codellama/lastPrompt", None)
        # The model saw the selected word inserted, the cursor after it.
        assert "    return" in last.prompt and "    re\n" not in last.prompt
        # A range that starts after the cursor is refused with a clear message.
        with pytest.raises(JsonRpcException, match="selectedCompletionInfo"):
            await s.client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    context=types.InlineCompletionContext(
                        trigger_kind=types.InlineCompletionTriggerKind.Automatic,
                        selected_completion_info=types.SelectedCompletionInfo(
                            range=types.Range(start=types.Position(1, 6), end=types.Position(1, 6)),
                            text="x",
                        ),
                    ),
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(1, 5),
                )
            )

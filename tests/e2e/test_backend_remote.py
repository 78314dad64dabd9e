"""Remote backends against a real llama-server (built from the vendored llama.cpp).

Every protocol end to end through our LSP server: llama-server ``/infill`` and
``/completion``, and OpenAI-compatible ``/v1/completions`` (which llama-server
serves too), with the generated model; API keys, cancellation, an outage and
recovery when the server comes back.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from codellama_lsp.quant.backend import CompletionRequest
from codellama_lsp.quant.errors import BackendUnavailable
from codellama_lsp.quant.fim import fim_text
from codellama_lsp.quant.remote import RemoteConfig, RemoteEngine
from tests.support.llama_server import LlamaServerProcess, free_port
from tests.support.synthetic import SCRIPTED_COMPLETION

from test_server_session import Session, session

CTX = 4096


@pytest.fixture(scope="module")
def server(model_path: Path, llama_server_binary: Path) -> Iterator[LlamaServerProcess]:
    args = ("--threads", "2")
    with LlamaServerProcess(
        model_path, ctx_size=CTX, extra_args=args, binary=llama_server_binary
    ) as running:
        yield running


def backend(url: str, kind: str, **extra: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "model": {"nCtx": CTX},
        "backend": {"type": kind, "url": url, "timeoutMs": 5000, **extra},
    }
    return options


async def last(s: Session) -> Any:
    return await s.client.protocol.send_request_async("codellama/lastPrompt", None)


# -- each protocol through the LSP server ---------------------------------------------


@pytest.mark.parametrize(
    ("kind", "extra", "fim_order", "expected"),
    [
        # llama-server builds the FIM prompt itself, ending with <MID>: the scripted answer.
        ("llama-server", {"endpoint": "infill"}, "spm", SCRIPTED_COMPLETION),
        # Our prompt text: PSM ends with <MID>, SPM with the prefix (then " pass").
        ("llama-server", {"endpoint": "completion"}, "psm", SCRIPTED_COMPLETION),
        ("llama-server", {"endpoint": "completion"}, "spm", " pass"),
        ("openai", {"model": "codellama"}, "psm", SCRIPTED_COMPLETION),
        ("openai", {"model": "codellama"}, "spm", " pass"),
    ],
)
async def test_each_protocol_serves_completions(
    server: LlamaServerProcess, kind: str, extra: dict[str, Any], fim_order: str, expected: str
) -> None:
    options = backend(server.url, kind, **extra)
    options["completion"] = {"fimOrder": fim_order}
    async with session("visual-studio-code", options) as s:
        status = await s.wait_status("ready")
        assert server.url in status["message"]
        s.open()
        result = await s.inline(2, 4)
        assert [i.insert_text for i in result.items] == [expected]
        info = await last(s)
        assert info.backend.startswith(("llama-server", "openai")) and server.url in info.backend
        assert "<PRE>" in info.prompt or "[input_prefix]" in info.prompt


async def test_repository_context_reaches_infill_as_input_extra(
    server: LlamaServerProcess, tmp_path: Path
) -> None:
    (tmp_path / "util.py").write_text(
        "def parse_config(path: str, strict: bool) -> dict:\n    ...\n"
    )
    (tmp_path / "main.py").write_text("from util import parse_config\n\ncfg = parse_config(\n")
    options = backend(server.url, "llama-server", endpoint="infill")
    async with session("neovim", options, root_uri=tmp_path.as_uri()) as s:
        await s.wait_status("indexed")
        uri = (tmp_path / "main.py").as_uri()
        s.open((tmp_path / "main.py").read_text(), uri)
        await s.inline(2, 19, uri, types.InlineCompletionTriggerKind.Invoked)
        info = await last(s)
        extra = info.prompt.split("[input_prefix]")[0]
        assert "def parse_config(path: str, strict: bool) -> dict:" in extra
        assert info.promptTokens > 20  # llama-server's own count of the whole prompt


def test_stop_rules_apply_to_streamed_text(server: LlamaServerProcess) -> None:
    engine = RemoteEngine(RemoteConfig("llama-server-completion", server.url, n_ctx=CTX))
    request = CompletionRequest(prefix="x = cycle", suffix="", max_tokens=400, fim_order="spm")
    seen: list[str] = []

    def stop(text: str) -> int | None:
        seen.append(text)
        return text.index(" item") if " item" in text else None

    result = engine.complete(request, stop=stop)
    assert result.text == " through every" and result.stop_reason == "stop_rule"
    assert len(seen) >= 2  # streamed piece by piece, not one answer at the end


# -- API keys -------------------------------------------------------------------------


async def test_api_key_from_the_environment_is_sent_and_never_logged(
    model_path: Path, llama_server_binary: Path, tmp_path: Path
) -> None:
    secret = "sk-test-8c1f0e77"
    with LlamaServerProcess(
        model_path,
        ctx_size=1024,
        extra_args=("--threads", "2", "--api-key", secret),
        binary=llama_server_binary,
    ) as keyed:
        log = tmp_path / "server.log"
        options = backend(keyed.url, "openai", apiKeyEnv="TEAM_LLM_KEY")
        async with session(
            "visual-studio-code",
            options,
            args=("--log-file", str(log), "--log-level", "DEBUG"),
            env={"TEAM_LLM_KEY": secret},
        ) as s:
            await s.wait_status("ready")
            s.open()
            assert (await s.inline(2, 4)).items[0].insert_text == " pass"
        assert secret not in log.read_text()
        # Without the key the server refuses, and the user hears why, once.
        async with session("neovim", backend(keyed.url, "openai")) as s:
            message = await s.wait_message("HTTP 401")
            assert "apiKeyEnv" in message.message and secret not in message.message
            s.open()
            assert list((await s.inline(2, 4)).items) == []


# -- cancellation ---------------------------------------------------------------------


async def test_cancel_closes_the_stream_and_frees_the_server(server: LlamaServerProcess) -> None:
    options = backend(server.url, "llama-server", endpoint="completion")
    options["completion"] = {"maxTokens": 4000, "timeBudgetMs": 60000}
    async with session("visual-studio-code", options) as s:
        await s.wait_status("ready")
        uri = "file:///workspace/c.py"
        s.open("x = cycle", uri)
        params = types.InlineCompletionParams(
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=0, character=9),
        )
        task = asyncio.ensure_future(
            s.client.protocol.send_request_async(
                types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="remote-long"
            )
        )
        await asyncio.sleep(0.5)
        s.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="remote-long"))
        with pytest.raises(JsonRpcException) as raised:
            await asyncio.wait_for(task, 5)
        assert raised.value.code == types.LSPErrorCodes.RequestCancelled
        # llama-server has one slot: it answers at once only if it stopped generating.
        started = time.perf_counter()
        s.open("def f():\n    ", "file:///workspace/d.py")
        result = await s.inline(1, 4, "file:///workspace/d.py")
        assert result.items[0].insert_text == " pass"
        assert time.perf_counter() - started < 2


def test_superseded_stream_stops_between_pieces(server: LlamaServerProcess) -> None:
    engine = RemoteEngine(RemoteConfig("openai", server.url, n_ctx=CTX))
    cancel = threading.Event()
    request = CompletionRequest(prefix="x = cycle", suffix="", max_tokens=4000, fim_order="spm")
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    started = time.perf_counter()
    result = engine.complete(request, cancel)
    assert result.stop_reason == "cancelled"
    assert time.perf_counter() - started < 1.5
    assert result.text.startswith(" through every item")


# -- outages --------------------------------------------------------------------------


_probes = iter(range(1_000_000))


async def probe(s: Session) -> list[str]:
    """A completion on a new text: neither typed-through nor the cache can answer it."""
    n = next(_probes)
    uri = f"file:///workspace/probe_{n}.py"
    s.open(f"value_{n} = 1\n", uri)
    return [i.insert_text for i in (await s.inline(0, len(f"value_{n} = 1"), uri)).items]


async def wait_for_items(s: Session, timeout: float = 20) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = await probe(s)
        if items:
            return items
        await asyncio.sleep(0.2)
    raise AssertionError("completions never came back")


async def test_server_down_then_back_then_restarted(
    model_path: Path, llama_server_binary: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with session("visual-studio-code", backend(url, "openai")) as s:
        message = await s.wait_message("not answering")
        assert f"cannot reach {url}" in message.message
        for _ in range(5):  # keystrokes during the outage: empty, and no new message each
            assert await probe(s) == []
        assert len([m for m in s.client.messages if "not answering" in m.message]) == 1
        with LlamaServerProcess(
            model_path, ctx_size=1024, port=port, binary=llama_server_binary
        ) as llama:
            assert await wait_for_items(s) == [" pass"]
            back = await s.wait_message(f"{url} is back")
            assert back.type == types.MessageType.Info
            llama.stop()  # a restart: down again ...
            assert await probe(s) == []
            await s.wait_status("error")
            llama.start()  # ... and up on the same port
            assert await wait_for_items(s) == [" pass"]
        outages = [m for m in s.client.messages if "not answering" in m.message]
        assert len(outages) == 2  # one per outage, none per keystroke


async def test_wrong_path_and_garbage_are_clear_errors(server: LlamaServerProcess) -> None:
    # /health answers, but it is not a completion server at /nothing/v1/completions.
    async with session("neovim", backend(f"{server.url}/nothing", "openai")) as s:
        message = await s.wait_message("HTTP 404")
        assert f"{server.url}/nothing" in message.message
    engine = RemoteEngine(RemoteConfig("llama-server-infill", f"{server.url}/health", n_ctx=CTX))
    with pytest.raises(BackendUnavailable):
        engine.complete(CompletionRequest(prefix="x", suffix=""))


def test_bad_urls_are_refused_up_front() -> None:
    for url in ("127.0.0.1:8080", "ftp://host", "http://"):
        with pytest.raises(BackendUnavailable, match="http"):
            RemoteEngine(RemoteConfig("openai", url))


def test_fim_text_forms() -> None:
    assert (
        fim_text("# ctx\n", "def f():\n    ", "\nx = 1", "spm")
        == "# ctx\n<PRE> <SUF>\nx = 1 <MID> def f():\n    "
    )
    assert fim_text("", "a", "b", "psm") == "<PRE> a <SUF>b <MID>"
    # The shown form is what the engine's token list renders to.
    assert fim_text("# ctx\n", "a", "b", "psm", shown=True) == "<s> # ctx\n▁<PRE> a▁<SUF>b▁<MID>"
    assert fim_text("", "", "b", "spm", shown=True) == "<s>▁<PRE>▁<SUF>b▁<MID>"


def test_remote_prompt_text_is_the_wire_prompt() -> None:
    request = CompletionRequest(prefix="a", suffix="b", fim_order="psm")
    openai = RemoteEngine(RemoteConfig("openai", "http://127.0.0.1:9"))
    assert openai.prompt_text(request) == "<PRE> a <SUF>b <MID>"
    assert openai.describe().kind == "openai" and openai.health().ready()

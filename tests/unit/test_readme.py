"""README.md stays true: its set-up commands are what CI runs; its settings table is the schema."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
GENERATOR = ROOT / "scripts" / "generate_settings.py"


def _setup_commands() -> list[str]:
    section = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    section = section.split("### ", 1)[0]  # the GPU rebuild notes are optional extras
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S)]


def test_exactly_two_setup_commands() -> None:
    install, test = _setup_commands()
    assert "pip install" in install and "codellama-lsp --stdio" in install
    assert "pytest" in test


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [line for line in ci.splitlines() if line and not line.startswith("#")]
    assert lines[-1] == _setup_commands()[1]
    install = _setup_commands()[0].split(" && ")
    for step in install[:-1]:  # everything but starting the server
        assert any(step in line for line in lines), step


def _check_readme(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--readme", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_settings_table_is_generated_from_the_schema() -> None:
    result = _check_readme(ROOT / "README.md")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_stale_settings_table_is_reported_with_what_differs(tmp_path: Path) -> None:
    stale = tmp_path / "README.md"
    stale.write_text(
        README.replace("| `codellama.enable` | `true` |", "| `codellama.enable` | `false` |"),
        encoding="utf-8",
    )
    result = _check_readme(stale)
    assert result.returncode == 1
    assert f"{stale} is stale" in result.stdout
    assert "-| `codellama.enable` | `false` |" in result.stdout
    assert "+| `codellama.enable` | `true` |" in result.stdout
    assert "regenerate: python scripts/generate_settings.py" in result.stdout
    assert stale.read_text(encoding="utf-8") != README  # --check writes nothing

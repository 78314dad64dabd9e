"""README.md stays true: its set-up commands are what CI runs; its settings table is the schema."""

from __future__ import annotations

import re
from pathlib import Path

from codellama_lsp.server.settings import settings_markdown

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


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


def test_settings_table_is_generated_from_the_schema() -> None:
    table = README.split("<!-- settings:start -->\n", 1)[1].split("<!-- settings:end -->", 1)[0]
    hint = "regenerate: python -m codellama_lsp.server.settings --readme"
    assert table == settings_markdown(), hint

"""``codellama-lsp eval`` on a generated seven-language repository, as a user runs it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.callsite_repo import EXPECTED, FILES, write_repo

#: Case fields that depend on the machine's speed, not on the workspace and seed.
_TIMINGS = ("build_ms",)


def run(bin_: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([bin_, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_repo(tmp_path_factory.mktemp("eval-repo"))


def eval_json(bin_: str, repo: Path, *args: str) -> dict[str, Any]:
    result = run(bin_, "eval", "--workspace", str(repo), "--json", *args)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)  # stdout is the report and nothing else
    return data


def _untimed(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in case.items() if k not in _TIMINGS} for case in cases]


def test_cases_in_every_language_and_figures_that_add_up(codellama_bin: str, repo: Path) -> None:
    data = eval_json(codellama_bin, repo)
    assert data["seed"] == 0 and data["budget_chars"] == 6000
    assert data["context_tokens"] == 2000  # the server's estimate: three characters a token
    assert data["model"] is None
    assert set(data["languages"]) == set(EXPECTED)
    cases = data["cases"]
    for language, callees in EXPECTED.items():
        mine = [c for c in cases if c["language"] == language]
        assert {c["callee"] for c in mine} == callees, language
        figures = data["languages"][language]
        assert figures["cases"] == len(mine)
        assert figures["hits"] == sum(c["hit"] for c in mine)
        assert figures["bm25_hits"] == sum(c["bm25_hit"] for c in mine)
        assert 0.0 <= figures["recall"] <= 1.0 and 0.0 <= figures["bm25_recall"] <= 1.0
        assert figures["recall"] == pytest.approx(figures["hits"] / figures["cases"])
        assert figures["bm25_recall"] == pytest.approx(figures["bm25_hits"] / figures["cases"])
        assert sum(figures["found_by"].values()) == figures["hits"]
        assert figures["median_prompt_chars"] > 0
        assert 0 < figures["median_build_ms"] <= figures["p95_build_ms"]
    overall = data["overall"]
    assert overall["cases"] == len(cases) == sum(f["cases"] for f in data["languages"].values())
    assert len(cases) == 16  # a case per (file, callee): compute_total is called in two files
    assert overall["hits"] == sum(c["hit"] for c in cases)
    for case in cases:
        assert case["definition_file"] != case["file"]
        assert case["found_by"] == ("" if not case["hit"] else case["found_by"])
        assert not case["hit"] or case["found_by"]
        # The reported position is just after the call's "(" (columns in characters).
        line = FILES[case["file"]].split("\n")[case["line"] - 1]
        assert line[: case["column"] - 1].endswith(case["callee"] + "(")
        # The line looked for is the header line naming the callee (decorators skipped).
        line = FILES[case["definition_file"]].split("\n")[case["definition_line"] - 1]
        assert line.strip().startswith(case["definition"])
        assert case["callee"] in case["definition"]
    # The line with an emoji before the call: its column counts the emoji as one character.
    emoji = next(c for c in cases if c["file"] == "py/main.py" and c["callee"] == "compute_total")
    assert emoji["column"] == len('    label, total = "😀 total", compute_total(') + 1


def test_the_same_seed_gives_the_same_cases(codellama_bin: str, repo: Path) -> None:
    first = eval_json(codellama_bin, repo, "--seed", "5")
    second = eval_json(codellama_bin, repo, "--seed", "5")
    assert first["seed"] == 5
    assert _untimed(first["cases"]) == _untimed(second["cases"])
    default = eval_json(codellama_bin, repo)
    key = sorted((c["file"], c["callee"]) for c in default["cases"])
    assert sorted((c["file"], c["callee"]) for c in first["cases"]) == key  # same population


def test_lang_and_cases_limit_what_is_sampled(codellama_bin: str, repo: Path) -> None:
    data = eval_json(codellama_bin, repo, "--lang", "golang", "--lang", "rs,typescript")
    assert list(data["languages"]) == ["go", "rust", "typescript"]
    assert {c["language"] for c in data["cases"]} == {"go", "rust", "typescript"}
    one = eval_json(codellama_bin, repo, "--lang", "python", "--cases", "1")
    assert one["languages"]["python"]["cases"] == 1 and len(one["cases"]) == 1


def test_a_zero_budget_shows_no_definitions(codellama_bin: str, repo: Path) -> None:
    data = eval_json(codellama_bin, repo, "--budget", "0", "--lang", "java")
    assert data["context_tokens"] == 0
    assert data["languages"]["java"]["cases"] == 2
    assert data["languages"]["java"]["hits"] == 0 and data["languages"]["java"]["bm25_hits"] == 0


def test_the_text_report_is_a_table(codellama_bin: str, repo: Path) -> None:
    result = run(codellama_bin, "eval", "--workspace", str(repo), "--lang", "c,cpp")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"workspace {repo.resolve()} (") and "seed 0" in lines[0]
    assert "budget 6000 characters" in lines[0]
    header = lines[2].split()
    assert header[:4] == ["language", "cases", "codellama-lsp", "BM25"]
    rows = {line.split()[0]: line.split() for line in lines[3:6]}
    assert set(rows) == {"c", "cpp", "overall"}
    assert rows["c"][1] == "2" and rows["cpp"][1] == "2" and rows["overall"][1] == "4"
    assert all(0.0 <= float(rows[r][2]) <= 1.0 for r in rows)
    assert "how hits got into the prompt" in result.stdout


def test_with_a_model_each_case_is_completed(
    codellama_bin: str, repo: Path, model_path: Path
) -> None:
    data = eval_json(
        codellama_bin, repo, "--lang", "python", "--model", str(model_path), "--max-tokens", "8"
    )
    assert data["model"] and Path(data["model"]).name == model_path.name
    figures = data["languages"]["python"]
    assert figures["generated"] == figures["cases"] == len(data["cases"]) == 3
    assert figures["arity_checked"] == 3  # compute_total(items, tax_rate=0.2), Basket.__init__
    assert 0.0 <= figures["arity_rate"] <= 1.0
    for case in data["cases"]:
        assert isinstance(case["generated"], str)
        assert case["parameters"] in (["items", "tax_rate"], ["owner", "limit"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lang", "cobol"], "--lang 'cobol'"),
        (["--lang", "bash"], "eval knows"),
        (["--cases", "0"], "--cases must be 1 or more"),
        (["--budget", "-1"], "--budget must be 0 or more"),
        (["--seed", "x"], "invalid int value"),
        (["--settings", "{not json"], "--settings is not JSON"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    codellama_bin: str, repo: Path, args: list[str], message: str
) -> None:
    result = run(codellama_bin, "eval", "--workspace", str(repo), *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_a_missing_workspace_exits_2(codellama_bin: str, tmp_path: Path) -> None:
    result = run(codellama_bin, "eval", "--workspace", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "workspace not found" in result.stderr

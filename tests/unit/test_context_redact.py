"""Credentials never reach a prompt: one check per format; secret files get no completions."""

from __future__ import annotations

from pathlib import Path

import pytest

from codellama_lsp.context.redact import placeholder, redact
from codellama_lsp.context.workspace import blocks_completion

AWS = "AKIA" + "IOSFODNN7EXAMPLE"
GITHUB = "ghp_" + "a" * 20 + "B1" * 8
GITHUB_PAT = "github_pat_" + "11ABCDEFG0" * 3
OPENAI = "sk-" + "proj-" + "Ab3" * 12
ANTHROPIC = "sk-ant-api03-" + "xY9_" * 10
SLACK = "xoxb-" + "123456789012-abcdefABCDEF"
JWT = "eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0" + ".SflKxwRJSMeKKF2QT4fwpMeJf36P"
KEY_BLOCK = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    ("secret", "kind"),
    [
        (AWS, "aws-access-key"),
        (GITHUB, "github-token"),
        (GITHUB_PAT, "github-token"),
        (OPENAI, "api-key"),
        (ANTHROPIC, "api-key"),
        (SLACK, "slack-token"),
        (JWT, "jwt"),
    ],
)
def test_token_formats_are_replaced_wherever_they_appear(secret: str, kind: str) -> None:
    source = f'def settings():\n    return {{"key": "{secret}"}}  # 😀\n'
    cleaned = redact(source)
    assert secret not in cleaned
    assert placeholder(kind) in cleaned
    assert cleaned.startswith("def settings():\n") and cleaned.endswith("}  # 😀\n")


def test_private_key_blocks_lose_their_body() -> None:
    cleaned = redact(f"KEY = '''\n{KEY_BLOCK}\n'''\n")
    assert "b3BlbnNzaC1rZXkt" not in cleaned
    assert "-----BEGIN OPENSSH PRIVATE KEY-----" in cleaned
    assert placeholder("private-key") in cleaned


@pytest.mark.parametrize(
    "line",
    [
        'password = "hunter2!"',
        "DB_PASSWORD: 'c0rrect-h0rse'",
        '"client_secret": "9f8e7d6c5b4a"',
        "api_key := `abcd1234efgh`",
        'self.auth_token = "Zm9vYmFy42"',
    ],
)
def test_assigned_literals_of_secret_names_are_replaced(line: str) -> None:
    literal = line.split(line[-1])[-2]
    cleaned = redact(line)
    assert literal not in cleaned and placeholder("assignment") in cleaned


@pytest.mark.parametrize(
    "code",
    [
        'token = "INDENT"',  # a lexer, not a secret
        "password = os.environ['DB_PASSWORD']",
        "def secret_santa(names):\n    return shuffle(names)\n",
        "skip = sk_learn.fit(x)",
        "",
    ],
)
def test_ordinary_code_is_left_alone(code: str) -> None:
    assert redact(code) == code


def test_redaction_is_stable_so_prompts_keep_their_cache() -> None:
    text = f"a = 1\nkey = '{AWS}'\n" * 3
    assert redact(text) == redact(text) and redact(redact(text)) == redact(text)


def test_secret_and_excluded_files_get_no_completions(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    (root / "config").mkdir()
    assert blocks_completion(root / ".env", root)
    assert blocks_completion(root / ".env.local", root)
    assert blocks_completion(root / "id_ed25519", root)
    assert blocks_completion(Path("/elsewhere/server.pem"), root)  # outside: by its name
    assert not blocks_completion(root / "app.py", root)
    assert not blocks_completion(root / "env.py", None)
    secrets = root / "config" / "secrets.yaml"
    assert not blocks_completion(secrets, root)
    assert blocks_completion(secrets, root, exclude=("config/secrets.*",))
    # Allowed back by pattern.
    assert not blocks_completion(root / ".env.example", root, allow=(".env.example",))
    assert blocks_completion(root / ".env", root, allow=(".env.example",))
    # A directory above the workspace that matches a pattern does not count.
    inside = tmp_path / ".env-project" / "src"
    inside.mkdir(parents=True)
    assert not blocks_completion(inside / "main.py", inside.resolve())

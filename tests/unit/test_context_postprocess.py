"""Stop rules and clean-up of suggestions: what a Copilot-style ghost text user expects."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from codellama_lsp.context.postprocess import (
    StopChecker,
    StopPolicy,
    decide_policy,
    finalize,
)


@dataclass(frozen=True)
class Streamed:
    kept: str
    #: How many characters had been generated when the checker said stop.
    consumed: int
    reason: str | None


def stream(policy: StopPolicy, prefix: str, suffix: str, text: str, step: int = 1) -> Streamed:
    """Feed ``text`` to a checker ``step`` characters at a time, like a decoder would."""
    checker = StopChecker(policy, prefix, suffix)
    for end in range(step, len(text) + step, step):
        keep = checker.check(text[:end])
        if keep is not None:
            return Streamed(text[:keep], min(end, len(text)), checker.reason)
    return Streamed(text[: checker.finish(text)], len(text), checker.reason)


# --- decide_policy -----------------------------------------------------------------------

POLICY_CASES = [
    # (id, prefix, suffix, language, multiline, indent, after_opener)
    (
        "py-empty-indented-line",
        "def add(a, b):\n    ",
        "\n\ndef other():\n    pass\n",
        "python",
        True,
        "    ",
        False,
    ),
    ("py-after-colon", "def add(a, b):", "\n", "python", True, "", True),
    ("py-nested-if", "def f(x):\n    if x:", "\n    return 0\n", "python", True, "    ", True),
    ("py-call-auto-closed", "x = foo(", ")\n", "python", False, "", False),
    ("py-call-open", "x = foo(", "\n", "python", True, "", True),
    ("py-list-open", "    xs = [", "\n", "python", True, "    ", True),
    ("py-end-of-statement", "x = 1", "\n", "python", False, "", False),
    ("py-mid-word", "    ret", "urn x\n", "python", False, "    ", False),
    ("py-text-after-cursor", "    ", "foo()\n", "python", False, "    ", False),
    ("py-dict-value", 'd = {"a":', "}\n", "python", False, "", False),
    ("py-slice", "x = xs[1:", "]\n", "python", False, "", False),
    ("py-colon-then-comment", "if x:", "  # why\n", "python", False, "", False),
    ("py-col0-after-def", "def f():\n", "\n", "python", True, "", True),
    ("py-col0-in-body", "def f():\n    x = 1\n", "\n", "python", True, "    ", False),
    ("empty-file", "", "", "python", True, "", False),
    ("py-crlf", "def f():\r\n    ", "\r\n", "python", True, "    ", False),
    ("py-blank-line-cursor-mid", "def f():\n    ", "    \n", "python", True, "    ", False),
    ("py-for-in-is-not-an-opener", "for x in", "\n", "python", False, "", False),
    ("js-brace-auto-closed", "function f() {", "}\n", "javascript", True, "", True),
    ("js-callback-closers", "  it('x', () => {", "});\n", "javascript", True, "  ", True),
    ("js-brace-then-else", "if (x) {", "} else {\n", "javascript", False, "", False),
    ("js-arrow", "const f = () =>", "\n", "javascript", True, "", True),
    ("js-arrow-inline", "xs.map((x) =>", ")\n", "javascript", False, "", False),
    ("js-object-key", "  a:", "\n", "javascript", False, "  ", False),
    ("js-switch-case", "switch (x) {\n  case 1:", "\n", "javascript", True, "  ", True),
    ("ts-react-alias", "\tif (ok) {", "\n", "typescriptreact", True, "\t", True),
    ("go-func", "func main() {", "\n}\n", "go", True, "", True),
    ("go-default-label", "\tdefault:", "\n", "go", True, "\t", True),
    ("rust-match-arm", "        Some(v) =>", "\n", "rust", True, "        ", True),
    ("c-case", "    case 2:", "\n", "c", True, "    ", True),
    ("c-template-literal", 'printf("%d", x', ");\n", "c", False, "", False),
    ("bash-then", "if [ -f x ]; then", "\n", "shellscript", True, "", True),
    ("bash-do", "for f in *.txt; do", "\n", "bash", True, "", True),
    ("bash-else", "  else", "\n", "bash", True, "  ", True),
    ("bash-case-in", 'case "$1" in', "\n", "bash", True, "", True),
    ("bash-echo-done", "echo done", "\n", "bash", False, "", False),
    ("generic-then", "if x then", "\n", None, True, "", True),
    ("unknown-language-colon", "  label:", "\n", "cobol", True, "  ", True),
    ("fstring-brace", 'f"{', '}"\n', "python", False, "", False),
    ("cjk-line", "名前 = 取得(", ")  # 🙂\n", "python", False, "", False),
]


@pytest.mark.parametrize(
    ("prefix", "suffix", "language", "multiline", "indent", "after_opener"),
    [case[1:] for case in POLICY_CASES],
    ids=[case[0] for case in POLICY_CASES],
)
def test_decide_policy(
    prefix: str,
    suffix: str,
    language: str | None,
    multiline: bool,
    indent: str,
    after_opener: bool,
) -> None:
    policy = decide_policy(prefix, suffix, language=language, max_lines=7)
    assert policy == StopPolicy(multiline, indent, 7, after_opener)


def test_decide_policy_rejects_a_useless_line_cap() -> None:
    with pytest.raises(ValueError, match="max_lines"):
        decide_policy("", "", max_lines=0)


# --- end-to-end scenarios: decide, stream, finalize --------------------------------------

SCENARIOS = [
    # (id, prefix, suffix, language, generated, shown)
    (
        "py-body-stops-at-next-def",
        "def add(a, b):\n    ",
        "\n\ndef other():\n    pass\n",
        "python",
        "return a + b\n\ndef other():\n    pass\n",
        "return a + b",
    ),
    (
        "py-call-duplicate-paren",
        "x = foo(",
        ")\n",
        "python",
        "bar)",
        "bar",
    ),
    (
        "py-call-own-parens-kept",
        "x = foo(",
        ")\n",
        "python",
        "bar(1, 2)",
        "bar(1, 2)",
    ),
    (
        "py-call-nested-duplicate",
        "x = foo(",
        ")\n",
        "python",
        "bar(1, 2))\nprint(x)",
        "bar(1, 2)",
    ),
    (
        "py-mid-line-single",
        "    total = ",
        " + tax\n",
        "python",
        "price * qty\n    return total",
        "price * qty",
    ),
    (
        "py-after-def-colon",
        "def area(r):",
        "\n",
        "python",
        "\n    return 3.14159 * r * r\n\n\nprint(area(2))\n",
        "\n    return 3.14159 * r * r",
    ),
    (
        "py-if-else-continues",
        "    if x:",
        "\n",
        "python",
        "\n        a()\n    else:\n        b()\n    c()\n",
        "\n        a()\n    else:\n        b()",
    ),
    (
        "py-try-except-finally",
        "try:",
        "\n",
        "python",
        "\n    go()\nexcept ValueError as e:\n    log(e)\nfinally:\n    done = True\nmain()\n",
        "\n    go()\nexcept ValueError as e:\n    log(e)\nfinally:\n    done = True",
    ),
    (
        "py-open-call-closed-on-own-line",
        "result = compute(",
        "\n",
        "python",
        "\n    alpha=1,\n    beta='β',\n)\nprint(result)\n",
        "\n    alpha=1,\n    beta='β',\n)",
    ),
    (
        "py-multiline-signature",
        "def f():\n    return 1\n\n",
        "",
        "python",
        "def g(\n    a: int,\n) -> int:\n    return a\n\ndef h():\n    pass\n",
        "def g(\n    a: int,\n) -> int:\n    return a",
    ),
    (
        "py-col0-new-function-after-indented-body",
        "def f():\n    return 1\n\n",
        "",
        "python",
        "def g():\n    return '🎉'\n\ndef h():\n    return 3\n",
        "def g():\n    return '🎉'",
    ),
    (
        "py-col0-blank-line-in-body",
        "def f():\n    x = 1\n",
        "\n    return x\n",
        "python",
        "    y = 2\n    z = 3\nprint(z)\n",
        "    y = 2\n    z = 3",
    ),
    (
        "py-col0-after-opener-wrong-indent-is-dropped",
        "def f():\n",
        "\n",
        "python",
        "return 1\n",
        None,
    ),
    (
        "py-method-between-methods",
        "class A:\n    def f(self):\n        return 1\n\n    ",
        "\n\n    def z(self):\n        pass\n",
        "python",
        "def g(self):\n        return 2\n\n    def h(self):\n        return 3\n",
        "def g(self):\n        return 2",
    ),
    (
        "py-decorated-property",
        "class A:\n    ",
        "\n",
        "python",
        "@property\n    def x(self):\n        return self._x\n\n"
        "    @x.setter\n    def x(self, v):\n",
        "@property\n    def x(self):\n        return self._x",
    ),
    (
        "py-body-keeps-several-statements",
        "def add(a, b):\n    ",
        "\n",
        "python",
        "if a is None:\n        return b\n    return a + b\n\nx = 1\n",
        "if a is None:\n        return b\n    return a + b",
    ),
    (
        "py-body-echo-of-suffix-dropped",
        "def total(xs):\n    t = 0\n    ",
        "\n    return t\n",
        "python",
        "for x in xs:\n        t += x\n    return t\n",
        "for x in xs:\n        t += x",
    ),
    (
        "py-suggestion-is-the-next-line",
        "def total(xs):\n    ",
        "\n    return sum(xs)\n",
        "python",
        "return sum(xs)\n",
        None,
    ),
    (
        "py-cjk-identifiers",
        "def 挨拶(名前):\n    ",
        "\n",
        "python",
        'return f"こんにちは {名前} 👋"\n\n挨拶("世界")\n',
        'return f"こんにちは {名前} 👋"',
    ),
    (
        "js-function-block-end-kept",
        "function f() {",
        "\n\nfunction g() {}\n",
        "javascript",
        "\n  return 1;\n}\n\nfunction h() {\n",
        "\n  return 1;\n}",
    ),
    (
        "js-auto-closed-brace",
        "function f() {",
        "}\n",
        "javascript",
        "\n  return 1;\n}",
        "\n  return 1;\n",
    ),
    (
        "js-auto-closed-callback",
        "  it('adds', () => {",
        "});\n",
        "javascript",
        "\n    expect(add(1, 2)).toBe(3);\n  });\n",
        "\n    expect(add(1, 2)).toBe(3);\n  ",
    ),
    (
        "js-else-continues",
        "if (x) {",
        "\n",
        "javascript",
        "\n  a();\n} else {\n  b();\n}\nfoo();\n",
        "\n  a();\n} else {\n  b();\n}",
    ),
    (
        "js-body-closing-brace-already-there",
        "function f() {\n  ",
        "\n}\n",
        "javascript",
        "const x = 1;\n  return x;\n}\n\nfunction g() {",
        "const x = 1;\n  return x;",
    ),
    (
        "js-inner-block-brace-kept",
        "function f() {\n  ",
        "\n}\n",
        "javascript",
        "if (x) {\n    y();\n  }\n}\n",
        "if (x) {\n    y();\n  }",
    ),
    (
        "js-block-end-already-in-suffix",
        "function f() {",
        "\n}\n",
        "javascript",
        "\n  return '✓';\n}\n",
        "\n  return '✓';",
    ),
    (
        "js-top-level-one-block",
        'import { add } from "./add";\n\n',
        "",
        "javascript",
        'describe("add", () => {\n  it("works", () => {\n    expect(add(1, 2)).toBe(3);\n'
        '  });\n});\n\ndescribe("sub", () => {\n',
        'describe("add", () => {\n  it("works", () => {\n    expect(add(1, 2)).toBe(3);\n'
        "  });\n});",
    ),
    (
        "ts-export-function",
        "\n",
        "",
        "typescript",
        "export function id<T>(x: T): T {\n  return x;\n}\n\nexport const y = 2;\n",
        "export function id<T>(x: T): T {\n  return x;\n}",
    ),
    (
        "ts-string-argument",
        'console.log("hel',
        '");\n',
        "typescript",
        'lo, 世界 🎉");',
        "lo, 世界 🎉",
    ),
    (
        "go-func-tabs",
        "func main() {",
        "\n",
        "go",
        '\n\tfmt.Println("hi")\n}\n\nfunc other() {\n',
        '\n\tfmt.Println("hi")\n}',
    ),
    (
        "go-if-err",
        "func f() error {\n\t",
        "\n}\n",
        "go",
        "if err := g(); err != nil {\n\t\treturn err\n\t}\n\treturn nil\n}\n",
        "if err := g(); err != nil {\n\t\treturn err\n\t}\n\treturn nil",
    ),
    (
        "rust-fn",
        "fn main() {",
        "\n",
        "rust",
        '\n    let x = 1;\n    println!("{x}");\n}\n\nfn other() {}\n',
        '\n    let x = 1;\n    println!("{x}");\n}',
    ),
    (
        "rust-impl-method",
        "impl Point {\n    ",
        "\n}\n",
        "rust",
        "pub fn norm(&self) -> f64 {\n        (self.x * self.x).sqrt()\n    }\n\n"
        "    pub fn zero() -> Self {\n",
        "pub fn norm(&self) -> f64 {\n        (self.x * self.x).sqrt()\n    }",
    ),
    (
        "c-main-body",
        "int main(void) {\n    ",
        "\n}\n",
        "c",
        'printf("%s\\n", "héllo");\n    return 0;\n}\n\nint other(void) {\n',
        'printf("%s\\n", "héllo");\n    return 0;',
    ),
    (
        "c-do-while-closer",
        "do {",
        "\n",
        "c",
        '\n    i++;\n} while (i < 10);\nputs("x");\n',
        "\n    i++;\n} while (i < 10);",
    ),
    (
        "csharp-allman-method",
        "class A\n{\n    ",
        "\n}\n",
        "csharp",
        "public int Twice(int x)\n    {\n        return 2 * x;\n    }\n\n"
        "    public int Half(int x)\n",
        "public int Twice(int x)\n    {\n        return 2 * x;\n    }",
    ),
    (
        "bash-then-fi",
        "if [ -f x ]; then",
        "\n",
        "shellscript",
        "\n  echo hi\nfi\necho bye\n",
        "\n  echo hi\nfi",
    ),
    (
        "bash-fi-already-in-suffix",
        "if [ -f x ]; then",
        "\nfi\n",
        "bash",
        "\n  echo hi\nfi\n",
        "\n  echo hi",
    ),
    (
        "bash-do-done",
        "for f in *.txt; do",
        "\n",
        "bash",
        '\n  wc -l "$f"\ndone < list\necho "🍣"\n',
        '\n  wc -l "$f"\ndone < list',
    ),
    (
        "bash-elif-else",
        'if [ "$a" = 1 ]; then',
        "\n",
        "bash",
        '\n  one\nelif [ "$a" = 2 ]; then\n  two\nelse\n  other\nfi\nrest\n',
        '\n  one\nelif [ "$a" = 2 ]; then\n  two\nelse\n  other\nfi',
    ),
    (
        "bash-case-esac",
        'case "$1" in',
        "\n",
        "bash",
        "\n  start) run ;;\n  *) usage ;;\nesac\nexit 0\n",
        "\n  start) run ;;\n  *) usage ;;\nesac",
    ),
    (
        "bash-body-dedent",
        "while true; do\n  ",
        "\ndone\n",
        "bash",
        "sleep 1\n  date\ndone\n",
        "sleep 1\n  date",
    ),
    (
        "single-line-never-newline",
        "x = ",
        "\n",
        "python",
        "compute()\ny = 2\n",
        "compute()",
    ),
    (
        "single-line-leading-newline",
        "x = 1",
        "\n",
        "python",
        "\n    y = 2",
        None,
    ),
    (
        "whitespace-only",
        "def f():\n    ",
        "\n",
        "python",
        "   \n\n  ",
        None,
    ),
    (
        "whole-suggestion-is-the-suffix",
        "x = ",
        "foo(1)\n",
        "python",
        "foo(1)",
        None,
    ),
    (
        "only-the-closing-paren",
        "print(x",
        ")\n",
        "python",
        ")",
        None,
    ),
    (
        "repetitive-numbers",
        "xs = [",
        "]\n",
        "python",
        "1, 1, 1, 1, 1, 1, 1, 1",
        None,
    ),
    (
        "repetitive-letters",
        "s = '",
        "'\n",
        "python",
        "aaaaaaaaaaaaaaaa",
        None,
    ),
    (
        "repetitive-lines",
        "def f():\n    ",
        "\n",
        "python",
        "print('🙂')\n    print('🙂')\n    print('🙂')\n    print('🙂')\n",
        None,
    ),
    (
        "repetitive-line-pairs",
        "def f():\n    ",
        "\n",
        "python",
        "x += 1\n    y += 1\n    x += 1\n    y += 1\n    x += 1\n    y += 1\n",
        None,
    ),
]


@pytest.mark.parametrize(
    ("prefix", "suffix", "language", "generated", "shown"),
    [case[1:] for case in SCENARIOS],
    ids=[case[0] for case in SCENARIOS],
)
def test_scenario(
    prefix: str, suffix: str, language: str, generated: str, shown: str | None
) -> None:
    policy = decide_policy(prefix, suffix, language=language)
    # A remote backend sees the whole text at once.
    assert finalize(generated, policy, prefix, suffix) == shown
    # The engine stops early and finalizes what it kept: same suggestion, never more text.
    for step in (1, 4):
        streamed = stream(policy, prefix, suffix, generated, step)
        assert generated.startswith(streamed.kept)
        assert finalize(streamed.kept, policy, prefix, suffix) == shown
    if shown is not None and not policy.multiline:
        assert "\n" not in shown


# --- early stops ------------------------------------------------------------------------

EARLY_STOPS = [
    # (id, prefix, suffix, language, generated, kept, reason, generated when stopped)
    (
        "dedent-stops-at-first-char",
        "def add(a, b):\n    ",
        "\n",
        "python",
        "return a + b\n\ndef other():\n    pass\n",
        "return a + b\n",
        "dedent",
        "return a + b\n\nd",
    ),
    (
        "newline-in-single-line",
        "x = foo(",
        ")\n",
        "python",
        "bar)\nbaz = 2\n",
        "bar)",
        "newline",
        "bar)\n",
    ),
    (
        "closing-brace-kept",
        "function f() {",
        "\n",
        "javascript",
        "\n  return 1;\n}\n\nfunction h() {\n",
        "\n  return 1;\n}",
        "block_end",
        "\n  return 1;\n}\n",
    ),
    (
        "line-at-opener-waits-for-the-whole-line",
        "def f():",
        "\n",
        "python",
        "\n    return 1\nprint(f())\nmore()\n",
        "\n    return 1",
        "dedent",
        "\n    return 1\nprint(f())\n",
    ),
    (
        "brace-dedent-in-body",
        "int main(void) {\n    ",
        "\n}\n",
        "c",
        "return 0;\n}\n",
        "return 0;",
        "dedent",
        "return 0;\n}",
    ),
    (
        "echo-of-the-next-line",
        "def f(xs):\n    t = 0\n    ",
        "\n    return t\n",
        "python",
        "for x in xs:\n        t += x\n    return t\n    print(t)\n",
        "for x in xs:\n        t += x\n    return t",
        "suffix",
        "for x in xs:\n        t += x\n    return t\n",
    ),
    (
        "repeated-unit",
        "xs = [",
        "]\n",
        "python",
        "1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1",
        "1, 1, 1, 1, 1, ",
        "repetition",
        "1, 1, 1, 1, 1, ",
    ),
    (
        "crlf-newline",
        "x = ",
        "\r\n",
        "python",
        "1\r\ny = 2",
        "1",
        "newline",
        "1\r\n",
    ),
    (
        "crlf-dedent",
        "def f():\r\n    ",
        "\r\n",
        "python",
        "return 1\r\n\r\nx = 2\r\n",
        "return 1\r\n",
        "dedent",
        "return 1\r\n\r\nx",
    ),
]


@pytest.mark.parametrize(
    ("prefix", "suffix", "language", "generated", "kept", "reason", "stopped_at"),
    [case[1:] for case in EARLY_STOPS],
    ids=[case[0] for case in EARLY_STOPS],
)
def test_checker_stops_as_soon_as_the_rule_is_decided(
    prefix: str,
    suffix: str,
    language: str,
    generated: str,
    kept: str,
    reason: str,
    stopped_at: str,
) -> None:
    policy = decide_policy(prefix, suffix, language=language)
    streamed = stream(policy, prefix, suffix, generated)
    assert streamed == Streamed(kept, len(stopped_at), reason)
    assert generated.startswith(stopped_at)


def test_max_lines_caps_a_long_body_as_soon_as_the_last_line_ends() -> None:
    prefix, suffix = "def f():\n    ", "\n"
    body = "".join(f"x{i} = '数{i}'\n    " for i in range(10))
    policy = decide_policy(prefix, suffix, language="python", max_lines=3)
    streamed = stream(policy, prefix, suffix, body)
    assert streamed.kept == "x0 = '数0'\n    x1 = '数1'\n    x2 = '数2'"
    assert streamed.reason == "max_lines"
    assert streamed.consumed == len(streamed.kept) + 1
    assert finalize(body, policy, prefix, suffix) == streamed.kept


def test_max_lines_does_not_count_the_rest_of_the_opener_line() -> None:
    prefix, suffix = "def f():", "\n"
    policy = decide_policy(prefix, suffix, language="python", max_lines=2)
    assert finalize("\n    a = 1\n    b = 2\n    c = 3\n", policy, prefix, suffix) == (
        "\n    a = 1\n    b = 2"
    )


def test_blank_lines_count_towards_max_lines() -> None:
    policy = StopPolicy(multiline=True, indent="", max_lines=3)
    assert finalize("a = 1\n\n\nb = 2\n", policy, "", "") == "a = 1"


def test_checker_answers_the_same_after_a_stop() -> None:
    policy = decide_policy("x = ", "\n")
    checker = StopChecker(policy, "x = ", "\n")
    assert checker.check("1") is None
    assert checker.check("1\n") == 1
    assert checker.check("1\ny = 2") == 1
    assert checker.reason == "newline"


def test_checker_starts_over_when_the_text_shrinks() -> None:
    prefix = "def f():\n    "
    policy = decide_policy(prefix, "\n", language="python")
    checker = StopChecker(policy, prefix, "\n")
    assert checker.check("a = 1\n    b = 2\n    c") is None
    # A detokenizer fix-up replaced the text: the earlier lines are read again.
    assert checker.check("a") is None
    assert checker.check("a = 1\nz") == len("a = 1")
    assert checker.reason == "dedent"


def test_tabs_count_as_four_columns() -> None:
    policy = StopPolicy(multiline=True, indent="    ")
    assert finalize("a()\n\tb()\n  c()\n", policy, "def f():\n    ", "") == "a()\n\tb()"


def test_line_at_the_floor_is_kept_when_not_after_an_opener() -> None:
    policy = StopPolicy(multiline=True, indent="  ")
    prefix = "{\n  "
    assert finalize("a();\n  b();\n}\n", policy, prefix, "") == "a();\n  b();"


def test_policy_can_be_built_by_hand_for_a_remote_backend() -> None:
    policy = StopPolicy(multiline=True, indent="  ", max_lines=12, after_opener=True)
    prefix = "  if (ok) {"
    # The opener's own indentation is the floor; at that width only a closer is kept.
    assert finalize("\n    go();\n  }\n  next();\n", policy, prefix, "\n") == "\n    go();\n  }"


# --- clean-up rules ---------------------------------------------------------------------

CLEANUPS = [
    # (id, prefix, suffix, generated, shown); single-line unless the cursor allows more
    ("trailing-spaces-dropped-at-end-of-line", "x = ", "\n", "1   ", "1"),
    ("space-kept-before-a-word", "if ", "x:\n", "not ", "not "),
    ("space-dropped-before-a-bracket", "f(", ")\n", "a  ", "a"),
    ("space-dropped-when-suffix-has-one", "a = ", " + 1\n", "b ", "b"),
    ("duplicated-rest-of-line", "x = ", "compute(a)\n", "y + compute(a)", "y + "),
    ("duplicated-semicolon", "let x = ", ";\n", "f();", "f()"),
    ("duplicated-closing-pair", "f(g(", "));\n", "1, 2));", "1, 2"),
    ("partial-closer-overlap", "f(a", ") + 2\n", ", b)", ", b"),
    ("partial-overlap-must-be-punctuation", "item", "s = []\n", "_name", "_name"),
    ("balanced-suggestion-keeps-its-paren", "f(", ")\n", "g(x)", "g(x)"),
    ("quote-duplicate-dropped", "print('", "')\n", "héllo 🌍')", "héllo 🌍"),
    ("quote-pair-kept", "x = f(", ")\n", "'a'", "'a'"),
    ("crlf-suffix", "x = foo(", ")\r\n", "bar)", "bar"),
    ("suffix-start-dropped", "", "return x\n", "return", None),
]


@pytest.mark.parametrize(
    ("prefix", "suffix", "generated", "shown"),
    [case[1:] for case in CLEANUPS],
    ids=[case[0] for case in CLEANUPS],
)
def test_cleanup(prefix: str, suffix: str, generated: str, shown: str | None) -> None:
    policy = decide_policy(prefix, suffix)
    assert not policy.multiline
    assert finalize(generated, policy, prefix, suffix) == shown


def test_multiline_before_a_closer_keeps_the_closers_line_break_and_indent() -> None:
    prefix, suffix = "  if (x) {", "}\n"
    policy = decide_policy(prefix, suffix, language="javascript")
    assert finalize("\n    y();\n  }", policy, prefix, suffix) == "\n    y();\n  "
    # The model already stopped before the brace: its line break and indentation stay.
    assert finalize("\n    y();\n  ", policy, prefix, suffix) == "\n    y();\n  "
    assert finalize("\n    y();", policy, prefix, suffix) == "\n    y();"


def test_crlf_generated_text_comes_back_with_newlines() -> None:
    prefix = "def f():"
    policy = decide_policy(prefix, "\r\n", language="python")
    assert finalize("\r\n    a = 1\r\n    b = 2\r\n", policy, prefix, "\r\n") == (
        "\n    a = 1\n    b = 2"
    )


def test_only_trailing_lines_that_match_the_suffix_are_dropped() -> None:
    prefix, suffix = "def f():\n    ", "\n    b = 2\n    c = 3\n"
    policy = decide_policy(prefix, suffix, language="python")
    assert finalize("a = 1\n    b = 2\n    c = 3", policy, prefix, suffix) == "a = 1"
    # A matching line in the middle is the model's own code, not an echo.
    assert finalize("c = 3\n    a = 1", policy, prefix, suffix) == "c = 3\n    a = 1"
    # Lines the suffix has at another indentation are different code.
    assert finalize("a = 1\nb = 2", StopPolicy(True), prefix, suffix) == "a = 1\nb = 2"


NOT_REPETITIVE = [
    "mask = 0xFFFFFFFFFFFFFFFF",
    "# ------------------------------------------------",
    "xs = [0, 0, 0, 0]",
    'sep = "=" * 80',
    'banner = "🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂"',
    "データ = 読み込み('ファイル.txt')",
    "n = 1_000_000_000",
    "assert grid == [[1, 2], [3, 4]]",
]


@pytest.mark.parametrize("line", NOT_REPETITIVE)
def test_ordinary_lines_are_not_repetition(line: str) -> None:
    policy = StopPolicy(multiline=False)
    assert finalize(line, policy, "", "\n") == line


REPETITIVE = [
    "aaaaaaaa",
    "x = 'zzzzzzzzzzzz'",
    "1, 1, 1, 1, 1, 1",
    "foo(a, a, a, a, a, a, a)",
    "ha ha ha ha ha ha",
    "笑笑笑笑笑笑笑笑",
    "🙂 🙂 🙂 🙂 🙂 🙂",
]


@pytest.mark.parametrize("line", REPETITIVE)
def test_repetitive_lines_are_dropped(line: str) -> None:
    policy = StopPolicy(multiline=False)
    assert finalize(line, policy, "", "\n") is None


def test_repetition_after_good_lines_drops_the_whole_suggestion() -> None:
    policy = StopPolicy(multiline=True, indent="")
    text = "setup()\n" + "step()\n" * 3 + "done()\n"
    assert finalize(text, policy, "", "") is None
    # Two in a row is ordinary code.
    assert finalize("setup()\nstep()\nstep()\n", policy, "", "") == "setup()\nstep()\nstep()"


def test_repetition_late_in_a_long_line_is_found_while_streaming() -> None:
    head = "values = compute(" + ", ".join(f"w{i}='é{i}'" for i in range(40))
    policy = StopPolicy(multiline=False)
    loop = head + ", 7, 7, 7, 7, 7, 7, 7, 7, 7, 7"
    streamed = stream(policy, "", "\n", loop, step=3)
    assert streamed.reason == "repetition"
    assert streamed.consumed < len(loop)
    assert finalize(loop, policy, "", "\n") is None
    # Only the newest part is re-read, but a word is read from its start: a long hex
    # constant arriving in small pieces is still a number, not a run of letters.
    constant = head + ", mask=0x" + "F" * 24 + ")"
    assert stream(policy, "", "\n", constant, step=2).reason is None
    assert finalize(constant, policy, "", "\n") == constant

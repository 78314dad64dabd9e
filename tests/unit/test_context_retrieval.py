"""Retrieval at the cursor: imported signatures, their types, outlines and neighbours."""

from __future__ import annotations

from pathlib import Path

import pytest

from codellama_lsp.context.index import RepositoryIndex
from codellama_lsp.context.retrieval import (
    RetrievalOptions,
    build_context,
    build_context_chunks,
    retrieve,
)

CURSOR = "<|cursor|>"


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def split_cursor(text: str) -> tuple[str, int]:
    offset = text.index(CURSOR)
    return text.replace(CURSOR, ""), offset


# Per language: (imported file, unrelated file with a same-named function, current
# file with the cursor at the call, filler file template).  The imported signature
# says ``imported_arg`` and the unrelated one ``unrelated_arg``.
CASES: dict[str, tuple[dict[str, str], str, str]] = {
    "python": (
        {
            "util/__init__.py": "",
            "util/strings.py": (
                "def format_name(imported_arg: str, width: int = 10) -> str:\n"
                '    """Title-case a name."""\n'
                + "".join(f"    step{i} = imported_arg * {i}\n" for i in range(20))
                + "    return imported_arg.title()\n"
            ),
            "legacy/old.py": "def format_name(unrelated_arg):\n    return unrelated_arg\n",
            "app/main.py": (
                "from util.strings import format_name\n\n\ndef run(user):\n"
                f"    return format_name({CURSOR}\n"
            ),
        },
        "app/main.py",
        "filler/f{i}.py:def filler_{i}(value):\n    return value + {i}\n",
    ),
    "javascript": (
        {
            "src/util.js": (
                "/** Formats a name. */\nexport function formatName(imported_arg) {\n"
                "  return imported_arg.trim();\n}\n"
            ),
            "src/legacy/old.js": "export function formatName(unrelated_arg) {\n  return 1;\n}\n",
            "src/main.js": (
                f'import {{ formatName }} from "./util";\n\nconst s = formatName({CURSOR});\n'
            ),
        },
        "src/main.js",
        "src/filler/f{i}.js:export function filler{i}(v) {{\n  return v + {i};\n}}\n",
    ),
    "typescript": (
        {
            "src/lib/util.ts": (
                "export function formatName(imported_arg: string): string {\n"
                "  return imported_arg.trim();\n}\n"
            ),
            "src/legacy/util.ts": (
                "export function formatName(unrelated_arg: number): number {\n  return 1;\n}\n"
            ),
            "src/main.ts": (
                f'import {{ formatName }} from "./lib/util";\n\nconst s = formatName({CURSOR});\n'
            ),
        },
        "src/main.ts",
        "src/filler/f{i}.ts:export function filler{i}(v: number): number {{\n  return v;\n}}\n",
    ),
    "java": (
        {
            "src/main/java/com/acme/util/Strings.java": (
                "package com.acme.util;\n\npublic final class Strings {\n"
                "    public static String formatName(String imported_arg) {\n"
                "        return imported_arg.trim();\n    }\n}\n"
            ),
            "src/main/java/com/acme/legacy/Old.java": (
                "package com.acme.legacy;\n\npublic class Old {\n"
                "    public static String formatName(String unrelated_arg) {\n"
                "        return unrelated_arg;\n    }\n}\n"
            ),
            "src/main/java/com/acme/app/Main.java": (
                "package com.acme.app;\n\nimport com.acme.util.Strings;\n\npublic class Main {\n"
                f"    void run() {{\n        String s = Strings.formatName({CURSOR});\n    }}\n}}\n"
            ),
        },
        "src/main/java/com/acme/app/Main.java",
        "src/main/java/com/acme/filler/F{i}.java:package com.acme.filler;\n"
        "public class F{i} {{\n    static int filler{i}(int v) {{ return v; }}\n}}\n",
    ),
    "c": (
        {
            "util.h": (
                "#ifndef UTIL_H\n#define UTIL_H\n/* Formats a name. */\n"
                "char *format_name(const char *imported_arg);\n#endif\n"
            ),
            "util.c": '#include "util.h"\nchar *format_name(const char *imported_arg) {\n'
            "    return 0;\n}\n",
            "legacy/old.c": (
                "static char *format_name(const char *unrelated_arg) {\n    return 0;\n}\n"
            ),
            "main.c": f'#include "util.h"\n\nint main(void) {{\n    format_name({CURSOR});\n}}\n',
        },
        "main.c",
        "filler/f{i}.c:int filler_{i}(int v) {{\n    return v + {i};\n}}\n",
    ),
    "cpp": (
        {
            "include/util.hpp": (
                "#pragma once\n#include <string>\n"
                "std::string format_name(const std::string &imported_arg);\n"
            ),
            "legacy/old.cpp": (
                "std::string format_name(const std::string &unrelated_arg) {\n"
                "    return unrelated_arg;\n}\n"
            ),
            "src/main.cpp": (
                f'#include "util.hpp"\n\nint main() {{\n    auto s = format_name({CURSOR});\n}}\n'
            ),
        },
        "src/main.cpp",
        "filler/f{i}.cpp:int filler_{i}(int v) {{\n    return v + {i};\n}}\n",
    ),
    "csharp": (
        {
            "Util/Strings.cs": (
                "namespace Acme.Util\n{\n    public static class Strings\n    {\n"
                "        public static string FormatName(string imported_arg)\n        {\n"
                "            return imported_arg.Trim();\n        }\n    }\n}\n"
            ),
            "Legacy/Old.cs": (
                "namespace Acme.Legacy\n{\n    public static class Strings\n    {\n"
                "        public static string FormatName(string unrelated_arg)\n        {\n"
                "            return unrelated_arg;\n        }\n    }\n}\n"
            ),
            "App/Program.cs": (
                "using Acme.Util;\n\nnamespace Acme.App;\n\nclass Program\n{\n"
                f"    static void Main()\n    {{\n        var s = Strings.FormatName({CURSOR});\n"
                "    }\n}\n"
            ),
        },
        "App/Program.cs",
        "Filler/F{i}.cs:namespace Acme.Filler\n{{\n"
        "    class F{i} {{ int Filler{i}() {{ return 1; }} }}\n}}\n",
    ),
    "php": (
        {
            "src/util.php": (
                "<?php\n/** Formats a name. */\nfunction format_name($imported_arg) {\n"
                "    return trim($imported_arg);\n}\n"
            ),
            "legacy/util.php": (
                "<?php\nfunction format_name($unrelated_arg) {\n    return $unrelated_arg;\n}\n"
            ),
            "src/main.php": (
                f"<?php\nrequire_once __DIR__ . '/util.php';\n\necho format_name({CURSOR});\n"
            ),
        },
        "src/main.php",
        "filler/f{i}.php:<?php\nfunction filler_{i}($v) {{\n    return $v;\n}}\n",
    ),
    "bash": (
        {
            "lib/util.sh": (
                '# Formats a name.\nformat_name() {\n    local imported_arg="$1"\n'
                '    echo "${imported_arg^}"\n}\n'
            ),
            "legacy/util.sh": 'format_name() {\n    local unrelated_arg="$1"\n}\n',
            "bin/main.sh": (
                '#!/bin/bash\nsource "$(dirname "$0")/../lib/util.sh"\n\n'
                f"name=$(format_name {CURSOR})\n"
            ),
        },
        "bin/main.sh",
        "filler/f{i}.sh:filler_{i}() {{\n    echo {i}\n}}\n",
    ),
    "go": (
        {
            "go.mod": "module example.com/app\n",
            "util/strings.go": (
                "package util\n\n// FormatName title-cases a name.\n"
                "func FormatName(imported_arg string) string {\n\treturn imported_arg\n}\n"
            ),
            "legacy/strings.go": (
                "package legacy\n\nfunc FormatName(unrelated_arg string) string {\n"
                "\treturn unrelated_arg\n}\n"
            ),
            "cmd/main.go": (
                'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/app/util"\n)\n\n'
                f"func main() {{\n\tfmt.Println(util.FormatName({CURSOR}))\n}}\n"
            ),
        },
        "cmd/main.go",
        "filler{i}/f.go:package filler{i}\n\nfunc Filler{i}(v int) int {{\n\treturn v\n}}\n",
    ),
    "rust": (
        {
            "Cargo.toml": '[package]\nname = "app"\n',
            "src/util.rs": (
                "/// Formats a name.\npub fn format_name(imported_arg: &str) -> String {\n"
                "    imported_arg.to_string()\n}\n"
            ),
            "src/legacy.rs": (
                "pub fn format_name(unrelated_arg: &str) -> String {\n"
                "    unrelated_arg.to_string()\n}\n"
            ),
            "src/main.rs": (
                "mod legacy;\nmod util;\n\nuse crate::util::format_name;\n\n"
                f"fn main() {{\n    let s = format_name({CURSOR});\n}}\n"
            ),
        },
        "src/main.rs",
        "src/filler/f{i}.rs:pub fn filler_{i}(v: i32) -> i32 {{\n    v\n}}\n",
    ),
}


@pytest.mark.parametrize("language", sorted(CASES))
def test_imported_signature_wins_over_same_named_unrelated_function(
    tmp_path: Path, language: str
) -> None:
    files, current, filler = CASES[language]
    filler_path, filler_text = filler.split(":", 1)
    workspace = dict(files)
    for i in range(60):
        workspace[filler_path.format(i=i)] = filler_text.format(i=i)
    write(tmp_path, workspace)
    text, offset = split_cursor(files[current])
    (tmp_path / current).write_text(text, encoding="utf-8")
    index = RepositoryIndex.build(tmp_path)
    assert len(index) >= 63

    packed = build_context_chunks(index, tmp_path / current, text, offset, budget_tokens=2000)

    assert "imported_arg" in packed.text, packed.text
    assert "unrelated_arg" not in packed.text
    assert "filler" not in packed.text.lower()
    assert all(chunk.source in ("callee", "import", "type") for chunk in packed.chunks)
    assert packed.text.endswith(f"Path: {current}\n")


def test_signature_only_for_long_bodies_with_docstring(tmp_path: Path) -> None:
    files, current, _ = CASES["python"]
    write(tmp_path, files)
    text, offset = split_cursor(files[current])
    index = RepositoryIndex.build(tmp_path)
    context = build_context(index, tmp_path / current, text, offset, budget_tokens=1000)
    assert "# Path: util/strings.py\n" in context
    assert "def format_name(imported_arg: str, width: int = 10) -> str:" in context
    assert '"""Title-case a name."""' in context
    assert "step3" not in context  # the body is long: signature only


def test_python_relative_imports_and_package_reexports(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pkg/__init__.py": "from .impl import helper\n",
            "pkg/impl.py": "def helper(reexported_arg):\n    return 1\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/near.py": "def sibling(relative_arg):\n    return 2\n",
            "pkg/sub/deep.py": "def upper(parent_arg):\n    return 3\n",
            "pkg/sub/mod.py": (
                "from pkg import helper\nfrom . import near\nfrom ..sub.deep import upper\n\n"
                "x = helper(1) + near.sibling(2) + upper(3)\n"
            ),
        },
    )
    index = RepositoryIndex.build(tmp_path)
    text = (tmp_path / "pkg/sub/mod.py").read_text()
    context = build_context(index, tmp_path / "pkg/sub/mod.py", text, len(text), budget_tokens=900)
    assert "reexported_arg" in context
    assert "relative_arg" in context
    assert "parent_arg" in context


def test_js_index_file_and_extension_resolution(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "src/widgets/index.tsx": (
                "export function Button(index_arg: string) {\n  return 1;\n}\n"
            ),
            "src/helpers.ts": "export const clamp = (clamp_arg: number) => clamp_arg;\n",
            "src/app.ts": (
                'import { Button } from "./widgets";\nimport { clamp } from "./helpers.js";\n\n'
                "Button(clamp(1));\n"
            ),
        },
    )
    index = RepositoryIndex.build(tmp_path)
    text = (tmp_path / "src/app.ts").read_text()
    context = build_context(index, tmp_path / "src/app.ts", text, len(text), budget_tokens=900)
    assert "// Path: src/widgets/index.tsx" in context
    assert "index_arg" in context
    assert "clamp_arg" in context


def test_types_named_in_signatures_follow(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "shop/models.py": (
                "class Order:\n    total: int\n\n    def pay(self, amount: int) -> bool:\n"
                "        return True\n"
            ),
            "shop/api.py": (
                "from shop.models import Order\n\n\ndef load_order(order_id: int) -> Order:\n"
                + "".join(f"    x{i} = {i}\n" for i in range(20))
                + "    return Order()\n"
            ),
            "other/models.py": "class Order:\n    unrelated_field: str\n",
            "main.py": "from shop.api import load_order\n\norder = load_order(3)\n",
        },
    )
    index = RepositoryIndex.build(tmp_path)
    text = (tmp_path / "main.py").read_text()
    chunks = retrieve(index, tmp_path / "main.py", text, len(text))
    by_source = {(c.source, c.path, c.name) for c in chunks}
    assert ("import", "shop/api.py", "load_order") in by_source
    assert ("type", "shop/models.py", "Order") in by_source
    assert not any(c.path == "other/models.py" for c in chunks)
    context = build_context(index, tmp_path / "main.py", text, len(text), budget_tokens=900)
    assert context.index("# Path: shop/models.py") < context.index("# Path: shop/api.py")
    assert "def pay(self, amount: int) -> bool:" in context


def test_unused_imports_bring_nothing(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "lib.py": "def tool(arg):\n    return arg\n",
            "main.py": "from lib import tool\n\n\ndef run():\n    return 1\n",
        },
    )
    index = RepositoryIndex.build(tmp_path)
    text = (tmp_path / "main.py").read_text()
    assert build_context(index, tmp_path / "main.py", text, len(text), budget_tokens=500) == ""


def test_open_document_text_wins_over_disk(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.py": "def alpha(alpha_arg):\n    pass\n",
            "b.py": "def beta(beta_arg):\n    pass\n",
            "main.py": "from a import alpha\n\nalpha(1)\n",
        },
    )
    index = RepositoryIndex.build(tmp_path)
    unsaved = "from b import beta\n\nbeta(2)\n"
    context = build_context(index, tmp_path / "main.py", unsaved, len(unsaved), budget_tokens=500)
    assert "beta_arg" in context
    assert "alpha_arg" not in context


def test_outline_when_file_is_longer_than_the_window(tmp_path: Path) -> None:
    body = "".join(f"        value_{i} = {i}\n" for i in range(40))
    methods = "".join(
        f"    def method_{k}(self, arg_{k}: int) -> int:\n{body}        return 0\n\n"
        for k in range(8)
    )
    text = (
        "import os\n\n\ndef top_helper(x: int) -> int:\n    return x\n\n\n"
        f"class Engine:\n    def __init__(self):\n        self.x = 1\n\n{methods}"
    )
    write(tmp_path, {"engine.py": text})
    index = RepositoryIndex.build(tmp_path)
    offset = text.index("def method_7")
    options = RetrievalOptions(prefix_chars=1500, suffix_chars=500)
    chunks = retrieve(index, tmp_path / "engine.py", text, offset, options=options)
    outline = [c for c in chunks if c.source == "outline"]
    assert len(outline) == 1
    assert "def top_helper(x: int) -> int: ..." in outline[0].text
    assert "class Engine:" in outline[0].text
    assert "def method_0(self, arg_0: int) -> int: ..." in outline[0].text
    assert "value_3" not in outline[0].text
    # Short files fit the window: no outline.
    short = "def f():\n    return 1\n"
    assert retrieve(index, tmp_path / "engine.py", short, len(short), options=options) == []


def test_jaccard_neighbour_snippets_from_recent_files(tmp_path: Path) -> None:
    similar = (
        "def render_invoice(invoice, customer):\n"
        "    lines = [item.price * item.quantity for item in invoice.items]\n"
        "    total = sum(lines)\n"
        "    return customer.name, total\n"
    )
    unrelated = "def parse_args():\n    return argparse.ArgumentParser()\n"
    recent_a = "# header 🎉\n" + "\n" * 40 + similar + "\n" * 40
    write(tmp_path, {"billing.py": recent_a, "cli.py": unrelated})
    index = RepositoryIndex.build(tmp_path)
    current = (
        "def render_receipt(invoice, customer):\n"
        "    lines = [item.price * item.quantity for item in invoice.items]\n"
    )
    recent = [
        (str(tmp_path / "billing.py"), recent_a),
        (str(tmp_path / "cli.py"), unrelated),
    ]
    chunks = retrieve(index, tmp_path / "new.py", current, len(current), recent)
    neighbours = [c for c in chunks if c.source == "neighbour"]
    assert [c.path for c in neighbours] == ["billing.py"]
    assert "total = sum(lines)" in neighbours[0].text
    assert neighbours[0].text.count("\n") < 20
    context = build_context(index, tmp_path / "new.py", current, len(current), recent)
    assert context.startswith("# Path: billing.py\n")


def test_neighbours_skip_secret_and_current_files(tmp_path: Path) -> None:
    secret = "API_KEY=sk-live-1234\nrender_invoice(invoice, customer)\n"
    current = "render_invoice(invoice, customer)\n"
    recent = [
        (str(tmp_path / ".env"), secret),
        (str(tmp_path / "main.py"), current + "render_invoice(invoice)\n"),
    ]
    index = RepositoryIndex.build(tmp_path)
    context = build_context(index, tmp_path / "main.py", current, len(current), recent)
    assert "sk-live" not in context
    assert context == ""


def test_no_context_for_a_secret_or_excluded_current_file(tmp_path: Path) -> None:
    write(tmp_path, {"lib.py": "def tool(arg):\n    return arg\n"})
    index = RepositoryIndex.build(tmp_path)
    text = "from lib import tool\ntool(1)\n"
    assert retrieve(index, tmp_path / ".env.py", text, len(text)) == []
    assert retrieve(index, tmp_path / "lib2.py", text, len(text)) != []


@pytest.mark.parametrize(
    ("files", "current", "wanted", "unwanted"),
    [
        (  # Rust: super:: from a nested module, and a mod.rs package
            {
                "src/lib.rs": "pub mod net;\npub mod text;\n",
                "src/text/mod.rs": "pub fn shout(rust_mod_arg: &str) -> String {\n    todo!()\n}\n",
                "src/net/mod.rs": "pub mod client;\n",
                "src/net/client.rs": "use super::super::text::shout;\n\nfn f() {\n    shout(\n}\n",
            },
            "src/net/client.rs",
            "rust_mod_arg",
            None,
        ),
        (  # Go: a package is every non-test file of its directory; same package is implicit
            {
                "pkg/geo/area.go": (
                    "package geo\n\nfunc Area(go_pkg_arg int) int {\n\treturn 0\n}\n"
                ),
                "pkg/geo/area_test.go": "package geo\n\nfunc Area(go_test_arg int) {}\n",
                "pkg/geo/scale.go": "package geo\n\nfunc Scale(go_same_arg int) int {\n"
                "\treturn Area(go_same_arg)\n}\n",
                "cmd/main.go": 'package main\n\nimport "example.com/x/pkg/geo"\n\n'
                "func main() {\n\tgeo.Area(1)\n}\n",
            },
            "pkg/geo/scale.go",
            "go_pkg_arg",
            "go_test_arg",
        ),
        (  # Java: wildcard imports and same-package classes
            {
                "src/com/a/util/Text.java": "package com.a.util;\npublic class Text {\n"
                "    public static String up(String java_wild_arg) { return null; }\n}\n",
                "src/com/a/app/Helper.java": "package com.a.app;\nclass Helper {\n"
                "    static int help(int java_same_arg) { return 1; }\n}\n",
                "src/com/a/app/Main.java": "package com.a.app;\nimport com.a.util.*;\n"
                "class Main {\n    void f() {\n        Text.up(Helper.help(1));\n    }\n}\n",
            },
            "src/com/a/app/Main.java",
            "java_wild_arg",
            None,
        ),
        (  # C: includes found through a workspace include directory
            {
                "include/proj/vec.h": "typedef struct { int c_type_field; } vec;\n"
                "vec vec_add(vec a, vec b);\n",
                "src/vec.c": "#include <proj/vec.h>\nvec f(void) {\n    return vec_add(\n",
            },
            "src/vec.c",
            "c_type_field",
            None,
        ),
    ],
)
def test_language_specific_resolution(
    tmp_path: Path, files: dict[str, str], current: str, wanted: str, unwanted: str | None
) -> None:
    write(tmp_path, files)
    index = RepositoryIndex.build(tmp_path)
    text = files[current]
    offset = text.rindex("(") + 1 if text.rstrip().endswith("(") else len(text)
    context = build_context(index, tmp_path / current, text, offset, budget_tokens=2000)
    assert wanted in context, context
    if unwanted:
        assert unwanted not in context


def test_neighbours_come_only_from_source_files_the_index_would_take(tmp_path: Path) -> None:
    code = "render_invoice(invoice, customer)\n"
    recent = [
        (str(tmp_path / "aws_credentials"), "[default]\nrender_invoice(invoice, customer)\n"),
        (str(tmp_path / "config" / "secrets.yaml"), "token: render_invoice(invoice, customer)\n"),
        (str(tmp_path / "billing.py"), "def bill():\n    render_invoice(invoice, customer)\n"),
    ]
    index = RepositoryIndex.build(tmp_path)
    context = build_context(index, tmp_path / "main.py", code, len(code), recent)
    assert "billing.py" in context
    assert "aws_credentials" not in context and "secrets.yaml" not in context

"""The repository index: what is parsed, what is never read, and live updates."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from codellama_lsp.context.errors import UnsupportedLanguageError, WorkspaceError
from codellama_lsp.context.index import RepositoryIndex, index_stats
from codellama_lsp.context.languages import comment_prefix, language_for_path, spec_for
from codellama_lsp.context.retrieval import build_context
from codellama_lsp.context.symbols import expand_rust_use, parse_source
from codellama_lsp.context.workspace import WorkspaceOptions


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def kinds(language: str, source: str) -> list[tuple[str, str, str]]:
    parsed = parse_source(language, "f", source.encode())
    return [(d.kind, d.name, d.parent) for d in parsed.definitions]


def test_language_map_and_comment_syntax() -> None:
    assert language_for_path("a/b.tsx") == "tsx"
    assert language_for_path("x.HPP") == "cpp"
    assert language_for_path("x.h") == "c"
    assert language_for_path("README.md") is None
    assert comment_prefix("a.py") == "#"
    assert comment_prefix("a.sh") == "#"
    assert comment_prefix("a.go") == "//"
    assert comment_prefix("notes.txt") == "#"
    with pytest.raises(UnsupportedLanguageError):
        spec_for("cobol")


def test_python_definitions_headers_docstrings_and_emoji() -> None:
    source = (
        '"""Module 🐍."""\nimport os\n\nMAX_SIZE = 10\nlower = 1\n\n'
        "@cache\ndef greet(name: str = '👋') -> str:\n"
        '    """Say hello 🎉.\n\n    Longer text."""\n    return name\n\n'
        "class Box(Base):\n    # Holds things.\n    def put(self, item: int) -> None:\n"
        "        def inner():\n            pass\n        self.items.append(item)\n"
    )
    parsed = parse_source("python", "m.py", source.encode())
    got = {d.name: d for d in parsed.definitions}
    assert set(got) == {"MAX_SIZE", "greet", "Box", "put"}  # no nested or lower-case names
    greet = got["greet"]
    assert greet.kind == "function"
    assert greet.header == "@cache\ndef greet(name: str = '👋') -> str:"
    assert greet.doc == "Say hello 🎉."
    assert (greet.start_line, greet.end_line) == (6, 11)
    assert got["put"].kind == "method"
    assert got["put"].parent == "Box"
    assert got["put"].header == "    def put(self, item: int) -> None:"
    assert got["MAX_SIZE"].kind == "constant"


@pytest.mark.parametrize(
    ("language", "source", "expected"),
    [
        (
            "javascript",
            "export class A { run(x) { return x; } }\nconst f = (y) => y;\nfunction g() {}\n"
            "const LIMIT = 3;\nconst dep = require('./x');\n",
            [
                ("class", "A", ""),
                ("method", "run", "A"),
                ("function", "f", ""),
                ("function", "g", ""),
                ("constant", "LIMIT", ""),
            ],
        ),
        (
            "typescript",
            "export interface Shape { area(): number; }\nexport type Id = string;\n"
            "export enum Color { Red }\nnamespace N { export function h(): void {} }\n",
            [
                ("interface", "Shape", ""),
                ("method", "area", "Shape"),
                ("type", "Id", ""),
                ("enum", "Color", ""),
                ("function", "h", ""),
            ],
        ),
        (
            "java",
            "package p;\npublic interface Shape { double area(); }\n"
            "class Sq implements Shape { static final int SIDES = 4; Sq() {}\n"
            "  public double area() { return 1; } enum Kind { A } }\n",
            [
                ("interface", "Shape", ""),
                ("method", "area", "Shape"),
                ("class", "Sq", ""),
                ("constant", "SIDES", "Sq"),
                ("method", "Sq", "Sq"),
                ("method", "area", "Sq"),
                ("enum", "Kind", "Sq"),
            ],
        ),
        (
            "c",
            "#define LIMIT 3\nstruct point { int x; };\ntypedef enum { A } color;\n"
            "int area(struct point *p);\nstatic char *name(void) { return 0; }\nint counter;\n",
            [
                ("constant", "LIMIT", ""),
                ("struct", "point", ""),
                ("enum", "color", ""),
                ("function", "area", ""),
                ("function", "name", ""),
            ],
        ),
        (
            "cpp",
            "namespace geo {\nclass Shape {\n public:\n  virtual double area() const = 0;\n};\n}\n"
            "double Circle::area() const { return 1; }\n"
            "template <typename T> T twice(T x) { return x; }\nusing Id = int;\n",
            [
                ("class", "Shape", ""),
                ("method", "area", "Shape"),
                ("method", "area", "Circle"),
                ("function", "twice", ""),
                ("type", "Id", ""),
            ],
        ),
        (
            "csharp",
            "namespace A.B;\npublic interface IShape { double Area(); }\n"
            "public struct P { public int X; }\npublic enum Kind { A }\n"
            "public record R(int X);\n",
            [
                ("interface", "IShape", ""),
                ("method", "Area", "IShape"),
                ("struct", "P", ""),
                ("enum", "Kind", ""),
                ("class", "R", ""),
            ],
        ),
        (
            "php",
            "<?php\nnamespace App;\ninterface Shape { public function area(): float; }\n"
            "trait T { function t() {} }\nfunction helper($x) { return $x; }\nconst LIMIT = 3;\n",
            [
                ("interface", "Shape", ""),
                ("method", "area", "Shape"),
                ("class", "T", ""),
                ("method", "t", "T"),
                ("function", "helper", ""),
                ("constant", "LIMIT", ""),
            ],
        ),
        (
            "bash",
            "greet() { echo hi; }\nfunction bye { echo bye; }\n",
            [("function", "greet", ""), ("function", "bye", "")],
        ),
        (
            "go",
            "package geo\n\ntype Shape interface { Area() float64 }\ntype Point struct { X int }\n"
            "type ID = string\nconst Limit = 3\nfunc (p *Point) Area() float64 { return 0 }\n"
            "func New() *Point { return nil }\n",
            [
                ("interface", "Shape", ""),
                ("struct", "Point", ""),
                ("type", "ID", ""),
                ("constant", "Limit", ""),
                ("method", "Area", "Point"),
                ("function", "New", ""),
            ],
        ),
        (
            "rust",
            "pub trait Shape { fn area(&self) -> f64; }\npub struct P { x: i32 }\n"
            "pub enum Kind { A }\ntype Id = u32;\nconst LIMIT: u32 = 3;\n"
            "impl Shape for P { fn area(&self) -> f64 { 0.0 } }\nmod inner { pub fn deep() {} }\n",
            [
                ("interface", "Shape", ""),
                ("method", "area", "Shape"),
                ("struct", "P", ""),
                ("enum", "Kind", ""),
                ("type", "Id", ""),
                ("constant", "LIMIT", ""),
                ("method", "area", "P"),
                ("function", "deep", ""),
            ],
        ),
    ],
)
def test_definitions_per_language(
    language: str, source: str, expected: list[tuple[str, str, str]]
) -> None:
    assert kinds(language, source) == expected


def test_headers_stop_at_the_body() -> None:
    source = (
        "/** Computes the area. */\npublic static double area(\n    double w,\n    double h) {\n"
        + "".join(f"    double x{i} = {i};\n" for i in range(20))
        + "    return w * h;\n}\n"
    )
    parsed = parse_source("java", "A.java", f"class A {{\n{source}}}\n".encode())
    area = next(d for d in parsed.definitions if d.name == "area")
    assert area.header == "public static double area(\n    double w,\n    double h)"
    assert area.doc == "Computes the area."
    assert area.full is None  # long body: only the header is kept
    assert area.has_body


def test_imports_are_raw_specifiers() -> None:
    py = parse_source("python", "a.py", b"import a.b as c\nfrom ..m import x, y\n")
    assert [(i.spec, i.names, i.kind) for i in py.imports] == [
        ("a.b", ("c",), "module"),
        ("..m", ("x", "y"), "from"),
    ]
    go = parse_source("go", "a.go", b'package main\nimport (\n  "example.com/m/util"\n)\n')
    assert go.package == "main"
    assert [i.spec for i in go.imports] == ["example.com/m/util"]
    assert expand_rust_use("crate::a::{b, c::{d, e as f}}") == [
        "crate::a::b",
        "crate::a::c::d",
        "crate::a::c::e",
    ]
    c = parse_source("c", "a.c", b'#include "x/y.h"\n#include <stdio.h>\n')
    assert [(i.spec, i.kind) for i in c.imports] == [("x/y.h", "include"), ("stdio.h", "system")]


def test_build_respects_nested_gitignore_and_negation(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            ".gitignore": "build/\n*.gen.py\n",
            "src/.gitignore": "local_*.py\n!local_keep.py\n",
            "src/app.py": "def app():\n    pass\n",
            "src/local_tmp.py": "def local_tmp():\n    pass\n",
            "src/local_keep.py": "def local_keep():\n    pass\n",
            "src/schema.gen.py": "def generated():\n    pass\n",
            "build/out.py": "def built():\n    pass\n",
            "node_modules/dep/index.js": "function dep() {}\n",
            "other/local_tmp.py": "def other_local():\n    pass\n",
        },
    )
    index = RepositoryIndex.build(tmp_path)
    assert index.files() == ["other/local_tmp.py", "src/app.py", "src/local_keep.py"]
    assert index.definitions("built") == []
    assert not index.is_allowed(tmp_path / "build" / "new.py")
    assert index.is_allowed(tmp_path / "src" / "new.py")


def test_gitignore_change_is_applied_on_update(tmp_path: Path) -> None:
    write(tmp_path, {"a.py": "def a():\n    pass\n", "b.py": "def b():\n    pass\n"})
    index = RepositoryIndex.build(tmp_path)
    assert index.files() == ["a.py", "b.py"]
    write(tmp_path, {".gitignore": "b.py\n"})
    index.update_file(tmp_path / ".gitignore")
    assert index.files() == ["a.py"]
    write(tmp_path, {".gitignore": ""})
    index.update_file(tmp_path / ".gitignore")
    assert index.files() == ["a.py", "b.py"]


SECRET = "sk-live-SUPERSECRET"


def test_secrets_and_excludes_are_never_indexed_or_shown(tmp_path: Path) -> None:
    secret_def = f"def format_name(x):\n    return '{SECRET}'\n"
    write(
        tmp_path,
        {
            ".env": f"TOKEN={SECRET}\n",
            ".env.py": secret_def,
            ".envrc.sh": f"format_name() {{ echo {SECRET}; }}\n",
            "deploy/server.key": SECRET,
            "deploy/cert.pem": SECRET,
            "home/id_rsa.py": secret_def,
            "credentials.json": SECRET,
            "config/credentials": SECRET,
            "generated/api.py": f"def generated_api():\n    return '{SECRET}'\n",
            "web/app.min.js": f"function minified() {{ return '{SECRET}'; }}\n",
            "lib.py": "def format_name(ok_arg):\n    return ok_arg\n",
        },
    )
    index = RepositoryIndex.build(tmp_path, WorkspaceOptions(exclude=("generated/", "*.min.js")))
    assert index.files() == ["lib.py"]
    for name in (".env.py", "home/id_rsa.py", "generated/api.py", "web/app.min.js"):
        assert not index.is_allowed(tmp_path / name)
        assert index.update_file(tmp_path / name) is False
    assert index.files() == ["lib.py"]

    text = "from lib import format_name\nfrom home.id_rsa import format_name\nformat_name(1)\n"
    recent = [
        (str(tmp_path / p), (tmp_path / p).read_text())
        for p in (".env", ".env.py", "credentials.json", "generated/api.py", "deploy/cert.pem")
    ]
    context = build_context(index, tmp_path / "main.py", text, len(text), recent, 4000)
    assert "ok_arg" in context
    assert SECRET not in context
    # Even when a secret file is the one being edited, nothing is added.
    secret_text = (tmp_path / ".env.py").read_text() + "format_name(\n"
    assert build_context(index, tmp_path / ".env.py", secret_text, len(secret_text)) == ""


def test_binary_undecodable_and_oversized_files_are_skipped(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "ok.py": "def ok():\n    pass\n",
            "binary.py": b"def looks_like_code():\n    pass\n\x00\x01\x02",
            "latin1.py": "def caf\u00e9():\n    pass\n".encode("latin-1"),
            "huge.py": "def huge():\n    pass\n" + "# padding\n" * 200,
        },
    )
    index = RepositoryIndex.build(tmp_path, WorkspaceOptions(max_file_bytes=1000))
    assert index.files() == ["ok.py"]
    assert index.update_file(tmp_path / "huge.py") is False
    assert index.update_file(tmp_path / "ok.py", "def ok():\n    pass\n" + "#" * 2000) is False
    assert index.files() == []


def test_update_and_remove_keep_lookups_consistent(tmp_path: Path) -> None:
    write(tmp_path, {"a.py": "def shared():\n    pass\n", "b.py": "def shared():\n    pass\n"})
    index = RepositoryIndex.build(tmp_path)
    assert [d.path for d in index.definitions("shared")] == ["a.py", "b.py"]
    assert index.update_file(tmp_path / "a.py", "def renamed():\n    pass\n") is True
    assert [d.path for d in index.definitions("shared")] == ["b.py"]
    assert [d.path for d in index.definitions("renamed")] == ["a.py"]
    write(tmp_path, {"pkg/c.py": "class Shared:\n    pass\n"})
    assert index.update_file(str(tmp_path / "pkg" / "c.py")) is True
    assert index.files_in_dir("pkg") == ["pkg/c.py"]
    assert index.remove_file(tmp_path / "pkg" / "c.py") is True
    assert index.remove_file(tmp_path / "pkg" / "c.py") is False
    assert index.files_in_dir("pkg") == []
    assert index.dirs_with_suffix("pkg") == []
    assert index.update_file(tmp_path.parent / "outside.py", "def x(): pass\n") is False
    (tmp_path / "b.py").unlink()
    index.rescan()
    # A rescan keeps the open document's text for a.py and drops the deleted b.py ...
    assert index.definitions("shared") == []
    assert [d.path for d in index.definitions("renamed")] == ["a.py"]
    # ... until the document is closed and the file is read from disk again.
    assert index.update_file(tmp_path / "a.py") is True
    assert [d.path for d in index.definitions("shared")] == ["a.py"]
    assert index.definitions("renamed") == []


def test_updates_from_another_thread_while_reading(tmp_path: Path) -> None:
    write(tmp_path, {f"m{i}.py": f"def f{i}():\n    pass\n" for i in range(20)})
    index = RepositoryIndex.build(tmp_path)
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        try:
            for round_ in range(30):
                for i in range(20):
                    index.update_file(tmp_path / f"m{i}.py", f"def f{i}_{round_}():\n    pass\n")
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    text = "from m1 import f1\nf1()\n"
    while not stop.is_set():
        index.files()
        index.definitions("f1")
        build_context(index, tmp_path / "main.py", text, len(text))
    thread.join()
    assert errors == []
    assert len(index) == 20


def test_index_stats(tmp_path: Path) -> None:
    write(tmp_path, {"a.py": "def a():\n    pass\n\nclass B:\n    pass\n", "c.go": "package c\n"})
    stats = index_stats(RepositoryIndex.build(tmp_path))
    assert stats.files == 2
    assert stats.definitions == 2
    assert stats.languages == {"go": 1, "python": 1}
    assert stats.build_seconds > 0
    assert stats.memory_bytes >= 0


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError):
        RepositoryIndex(tmp_path / "missing")

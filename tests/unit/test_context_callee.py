"""The call at the cursor: read from the text, resolved as each language makes names visible."""

from __future__ import annotations

from pathlib import Path

import pytest

from codellama_lsp.context.callee import call_at, receiver_type_names, return_type_name
from codellama_lsp.context.index import RepositoryIndex
from codellama_lsp.context.retrieval import retrieve

CURSOR = "<|cursor|>"


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def callee_chunks(root: Path, files: dict[str, str], current: str) -> list[tuple[str, str, str]]:
    """(source, path, text) of each chunk, for the file ``current`` with its cursor."""
    text = files[current]
    offset = text.index(CURSOR)
    text = text.replace(CURSOR, "")
    write(root, {**files, current: text})
    index = RepositoryIndex.build(root)
    chunks = retrieve(index, root / current, text, offset)
    return [(c.source, c.path, c.text) for c in chunks]


# -- reading the call ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "name", "qualifier", "constructor"),
    [
        ("x = add(", "add", (), False),
        ("    c.Flags(", "Flags", ("c",), False),
        ("let p = Parser::new(", "new", ("Parser",), False),
        ("Foo foo = new Foo(", "Foo", (), True),
        ("self.client.send(a, ", "send", ("self", "client"), False),
        ("crate::util::parse::<u8>(", "parse", ("crate", "util"), False),
        ("obj->run(", "run", ("obj",), False),
        ("make<int>(", "make", (), False),
        ("value = outer(inner(1), ", "outer", (), False),
        ("s = '🦙'; f(", "f", (), False),
        ("gen.if(", "if", ("gen",), False),
        ("promise.catch(", "catch", ("promise",), False),
    ],
)
def test_call_at_reads_the_call_being_written(
    before: str, name: str, qualifier: tuple[str, ...], constructor: bool
) -> None:
    site = call_at(before, len(before))
    assert site is not None
    assert (site.name, site.qualifier, site.constructor) == (name, qualifier, constructor)


@pytest.mark.parametrize(
    "before", ["if (", "x = 1\ny = 2", "for (int i = 0; ", "while (", "foo(1); bar"]
)
def test_no_call_where_the_cursor_is_not_in_arguments(before: str) -> None:
    assert call_at(before, len(before)) is None


def test_receiver_types_as_the_file_states_them() -> None:
    cases = {
        "go": ("func (c *Command) Run() {\n\tc.", "c", "Command"),
        "go-var": ("var c Config\nc.", "c", "Config"),
        "go-literal": ("srv := &Server{Addr: a}\nsrv.", "srv", "Server"),
        "python": ("def f(client: HttpClient):\n    client.", "client", "HttpClient"),
        "python-assign": ("self.db = Database(url)\nself.db.", "db", "Database"),
        "ts": ("const p = new Parser(opts);\np.", "p", "Parser"),
        "rust": ("let mut b = Builder::new();\nb.", "b", "Builder"),
        "rust-param": ("fn go(state: &mut State) {\n    state.", "state", "State"),
        "java": ("  Repository repo = factory.make();\n  repo.", "repo", "Repository"),
    }
    for what, (text, variable, expected) in cases.items():
        assert expected in receiver_type_names(text, len(text), variable), what


def test_return_types_of_factories() -> None:
    assert return_type_name("func NewCommand(use string) *Command {", "NewCommand") == "Command"
    assert return_type_name("def make() -> Widget:", "make") == "Widget"
    assert return_type_name("pub fn open(p: &Path) -> Result<File> {", "open") == "Result"
    assert return_type_name("export function build(): Tree {", "build") == "Tree"
    assert return_type_name("public static Parser of(String s) {", "of") == "Parser"


# -- resolving it, per language ----------------------------------------------------------


def test_go_method_on_a_receiver_typed_by_the_signature(tmp_path: Path) -> None:
    files = {
        "go.mod": "module example.com/app\n",
        "cmd/command.go": (
            "package cmd\n\ntype Command struct{ Use string }\n\n"
            "// Flags returns the flag set.\nfunc (c *Command) Flags(prefix string) *FlagSet {\n"
            "\treturn nil\n}\n"
        ),
        "other/flags.go": (
            "package other\n\ntype Set struct{}\n\nfunc (s *Set) Flags(n int) int { return n }\n"
        ),
        "cmd/root.go": "package cmd\n\nfunc setup(c *Command) {\n\tc.Flags(<|cursor|>\n}\n",
    }
    chunks = callee_chunks(tmp_path, files, "cmd/root.go")
    assert chunks[0][:2] == ("callee", "cmd/command.go")
    assert "func (c *Command) Flags(prefix string)" in chunks[0][2]
    assert not any(c[1] == "other/flags.go" for c in chunks if c[0] == "callee")


def test_go_test_file_sees_the_package_tests(tmp_path: Path) -> None:
    files = {
        "pkg/helpers_test.go": (
            "package pkg\n\nfunc newFixture(t *T, name string) *Fixture { return nil }\n"
        ),
        "pkg/run_test.go": "package pkg\n\nfunc TestRun(t *T) {\n\tf := newFixture(<|cursor|>\n}\n",
    }
    chunks = callee_chunks(tmp_path, files, "pkg/run_test.go")
    assert chunks[0][:2] == ("callee", "pkg/helpers_test.go")


def test_java_same_package_in_another_source_root_and_static_import(tmp_path: Path) -> None:
    files = {
        "src/main/java/com/acme/Store.java": (
            "package com.acme;\n\npublic class Store {\n"
            "  public static Store open(String path, int mode) { return null; }\n}\n"
        ),
        "src/main/java/com/acme/util/Checks.java": (
            "package com.acme.util;\n\npublic final class Checks {\n"
            "  public static void checkState(boolean ok, String message) {}\n}\n"
        ),
        "src/test/java/com/acme/StoreTest.java": (
            "package com.acme;\n\nimport static com.acme.util.Checks.checkState;\n\n"
            "class StoreTest {\n  void opens() {\n    Store s = Store.open(<|cursor|>\n  }\n}\n"
        ),
    }
    chunks = callee_chunks(tmp_path, files, "src/test/java/com/acme/StoreTest.java")
    assert chunks[0][0] == "callee" and chunks[0][1].endswith("Store.java")
    assert "open(String path, int mode)" in chunks[0][2]
    files["src/test/java/com/acme/StoreTest.java"] = files[
        "src/test/java/com/acme/StoreTest.java"
    ].replace("Store s = Store.open(", "checkState(")
    chunks = callee_chunks(tmp_path, files, "src/test/java/com/acme/StoreTest.java")
    assert chunks[0][0] == "callee" and chunks[0][1].endswith("Checks.java")


def test_c_include_leads_to_the_prototype_and_the_implementation(tmp_path: Path) -> None:
    files = {
        "include/vec.h": (
            '#include "alloc.h"\n/* Push one item. */\nint vec_push(struct vec *v, int item);\n'
        ),
        "include/alloc.h": "void *arena_alloc(struct arena *a, unsigned long size);\n",
        "src/vec.c": (
            '#include "vec.h"\n\nint vec_push(struct vec *v, int item)\n{\n'
            "    return v->len++;\n}\n"
        ),
        "src/alloc.c": (
            '#include "alloc.h"\n'
            "void *arena_alloc(struct arena *a, unsigned long size) { return 0; }\n"
        ),
        "src/main.c": '#include "vec.h"\n\nint main(void) {\n    vec_push(<|cursor|>\n}\n',
    }
    chunks = callee_chunks(tmp_path, files, "src/main.c")
    callees = [c for c in chunks if c[0] == "callee"]
    assert {c[1] for c in callees} == {"include/vec.h", "src/vec.c"}
    # A function the header's own include declares is visible too.
    files["src/main.c"] = files["src/main.c"].replace("vec_push(", "arena_alloc(")
    chunks = callee_chunks(tmp_path, files, "src/main.c")
    assert chunks[0][0] == "callee" and chunks[0][1] in {"include/alloc.h", "src/alloc.c"}


def test_rust_associated_function_in_an_impl_of_another_file(tmp_path: Path) -> None:
    files = {
        "Cargo.toml": '[package]\nname = "demo"\n',
        "src/lib.rs": "pub mod config;\npub mod loader;\n",
        "src/config.rs": "pub struct Config { pub path: String }\n",
        "src/loader.rs": (
            "use crate::config::Config;\n\nimpl Config {\n"
            "    pub fn from_file(path: &str, strict: bool) -> Config { todo!() }\n}\n"
        ),
        "src/main.rs": (
            "use demo::config::Config;\n"
            "\n"
            "fn main() {\n"
            "    let c = Config::from_file(<|cursor|>\n"
            "}\n"
        ),
    }
    chunks = callee_chunks(tmp_path, files, "src/main.rs")
    assert chunks[0][:2] == ("callee", "src/loader.rs")
    assert "from_file(path: &str, strict: bool)" in chunks[0][2]


def test_python_constructor_and_annotated_receiver(tmp_path: Path) -> None:
    files = {
        "app/__init__.py": "from .client import Client\n",
        "app/client.py": (
            "class Client:\n    def __init__(self, url: str, retries: int = 3) -> None:\n"
            "        self.url = url\n\n    def fetch(self, path: str, timeout: float) -> bytes:\n"
            "        return b''\n"
        ),
        "app/other.py": "class Other:\n    def fetch(self, key):\n        return key\n",
        "main.py": (
            "from app import Client\n\n\ndef run(c: Client):\n    return c.fetch(<|cursor|>\n"
        ),
    }
    chunks = callee_chunks(tmp_path, files, "main.py")
    assert chunks[0][:2] == ("callee", "app/client.py")
    assert "def fetch(self, path: str, timeout: float)" in chunks[0][2]
    files["main.py"] = "from app import Client\n\nclient = Client(<|cursor|>\n"
    chunks = callee_chunks(tmp_path, files, "main.py")
    assert chunks[0][:2] == ("callee", "app/client.py")
    assert chunks[0][2].startswith("class Client")


def test_typescript_new_and_method_on_a_constructed_object(tmp_path: Path) -> None:
    files = {
        "src/parser.ts": (
            "export class Parser {\n  constructor(source: string, strict: boolean) {}\n"
            "  parse(depth: number): Node { return null as any; }\n}\n"
        ),
        "src/index.ts": "export { Parser } from './parser';\n",
        "src/other.ts": "export class Walker {\n  parse(text: string) {}\n}\n",
        "src/main.ts": (
            "import { Parser } from './index';\n\nconst p = new Parser('x', true);\n"
            "p.parse(<|cursor|>\n"
        ),
    }
    chunks = callee_chunks(tmp_path, files, "src/main.ts")
    assert chunks[0][:2] == ("callee", "src/parser.ts")
    assert "parse(depth: number)" in chunks[0][2]


def test_ambiguous_names_outside_the_visible_files_are_left_out(tmp_path: Path) -> None:
    files = {
        "a/one.py": "def run(a):\n    pass\n",
        "b/two.py": "def run(b):\n    pass\n",
        "c/three.py": "def run(c):\n    pass\n",
        "main.py": "run(<|cursor|>\n",
    }
    chunks = callee_chunks(tmp_path, files, "main.py")
    assert not [c for c in chunks if c[0] == "callee"]


def test_inherited_method_and_rust_path_call(tmp_path: Path) -> None:
    files = {
        "base.py": (
            "class Base:\n    def save(self, key: str, value: bytes) -> None:\n        pass\n"
        ),
        "store.py": (
            "from base import Base\n\n\nclass Store(Base):\n    def put(self, key):\n"
            "        self.save(<|cursor|>\n"
        ),
    }
    chunks = callee_chunks(tmp_path, files, "store.py")
    assert chunks[0][:2] == ("callee", "base.py")
    rust = {
        "Cargo.toml": '[package]\nname = "demo"\n',
        "src/lib.rs": "pub mod net;\n",
        "src/net/mod.rs": "pub mod addr;\n",
        "src/net/addr.rs": "pub fn parse_addr(text: &str, port: u16) -> Option<u32> { None }\n",
        "src/other.rs": "pub fn parse_addr(bytes: &[u8]) -> u32 { 0 }\n",
        "src/main.rs": "fn main() {\n    let a = crate::net::addr::parse_addr(<|cursor|>\n}\n",
    }
    chunks = callee_chunks(tmp_path / "r", rust, "src/main.rs")
    assert chunks[0][:2] == ("callee", "src/net/addr.rs")


def test_a_workspace_opened_at_the_package_resolves_its_absolute_imports(tmp_path: Path) -> None:
    files = {
        "__init__.py": "",
        "utils.py": "def formatdate(timeval=None, localtime=False, usegmt=False):\n    pass\n",
        "other/utils.py": "def formatdate(value):\n    pass\n",
        "message.py": (
            "from email import utils\n\n\ndef stamp():\n    return utils.formatdate(<|cursor|>\n"
        ),
    }
    root = tmp_path / "email"
    chunks = callee_chunks(root, files, "message.py")
    assert chunks[0][:2] == ("callee", "utils.py")
    files["message.py"] = "from email.utils import formatdate\n\nformatdate(<|cursor|>\n"
    chunks = callee_chunks(root, files, "message.py")
    assert chunks[0][:2] == ("callee", "utils.py")

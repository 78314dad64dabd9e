"""Call sites for ``eval``: found per language, cut, sampled reproducibly; the BM25 baseline."""

from __future__ import annotations

from pathlib import Path

import pytest

from codellama_lsp.context.bm25 import WindowIndex, line_windows, query_text
from codellama_lsp.context.callsites import (
    call_arguments,
    cut_at_call,
    definition_line,
    definition_row,
    find_calls,
    generated_text,
    names_a_parameter,
    parameters,
    sample_cases,
    vendored_or_generated_path,
)
from codellama_lsp.context.index import RepositoryIndex
from codellama_lsp.context.symbols import Definition, parse_source
from tests.support.callsite_repo import EXPECTED, write_repo

# -- calls in one file ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "source", "expected"),
    [
        (
            "python",
            "x = a.b.foo(1)\nK(2)\nf()(3)\nitems[0](4)\n",
            [("foo", "b", False), ("K", "", False), ("f", "", False)],
        ),
        (
            "typescript",
            "a.b?.foo<T>(1); new X.Y(2); bar(3); this.#p(4); new Z<T>(5); tag`x`;",
            [("foo", "b", False), ("Y", "X", True), ("bar", "", False), ("Z", "", True)],
        ),
        (
            "javascript",
            "obj.method(1); new Thing(2); (() => 1)();",
            [("method", "obj", False), ("Thing", "", True)],
        ),
        (
            "go",
            "package m\nfunc f() { pkg.Foo(1); bar(2) }\n",
            [("Foo", "pkg", False), ("bar", "", False)],
        ),
        (
            "rust",
            "fn f() { Type::new(1); crate::m::g(2); x.foo(3); h::<T>(4); mac!(5); }",
            [("new", "Type", False), ("g", "m", False), ("foo", "x", False), ("h", "", False)],
        ),
        (
            "java",
            "class A { void f() { a.b.foo(1); bar(2); new X<T>(3); new a.B(4); } }",
            [("foo", "b", False), ("bar", "", False), ("X", "", True), ("B", "a", True)],
        ),
        (
            "c",
            "void f(void) { foo(1); s->bar(2); s.baz(3); (*fp)(4); }",
            [("foo", "", False), ("bar", "s", False), ("baz", "s", False)],
        ),
        (
            "cpp",
            "void f() { ns::foo(1); o.bar<int>(2); new K(3); std::make<T>(4); }",
            [("foo", "ns", False), ("bar", "o", False), ("K", "", True), ("make", "std", False)],
        ),
    ],
)
def test_calls_are_named_by_their_last_identifier(
    language: str, source: str, expected: list[tuple[str, str, bool]]
) -> None:
    calls = find_calls(language, source.encode("utf-8"))
    assert [(c.name, c.receiver, c.constructor) for c in calls] == expected
    for call in calls:
        assert source[call.offset - 1] == "("  # the offset is just after the call's paren


def test_offsets_count_characters_not_bytes() -> None:
    source = 'msg = "😀 日本"; total = compute(1, 2)\nnext_line()\n'
    (first, second) = find_calls("python", source.encode("utf-8"))
    assert source[: first.offset].endswith('"😀 日本"; total = compute(')
    assert (first.line, second.line) == (0, 1)
    assert source[: second.offset].endswith("next_line(")


def test_calls_on_skipped_lines_are_left_out() -> None:
    source = 'const x = require("./x");\nrun(1);\n'
    assert [c.name for c in find_calls("javascript", source.encode())] == ["require", "run"]
    assert [c.name for c in find_calls("javascript", source.encode(), skip_lines=[0])] == ["run"]


def test_languages_without_call_forms_give_nothing() -> None:
    assert find_calls("bash", b"f() { g 1; }\n") == []


def test_the_cut_drops_the_rest_of_the_line_and_keeps_what_follows() -> None:
    text = "a = 1\nb = compute(x, y)  # 😀\nc = 3\n"
    offset = text.index("compute(") + len("compute(")
    assert cut_at_call(text, offset) == "a = 1\nb = compute(\nc = 3\n"
    last = "z = f(1)"
    assert cut_at_call(last, last.index("(") + 1) == "z = f("


# -- definitions and parameters --------------------------------------------------------


def _one(
    language: str, path: str, source: str, name: str
) -> tuple[Definition, tuple[Definition, ...]]:
    parsed = parse_source(language, path, source.encode("utf-8"))
    return next(d for d in parsed.definitions if d.name == name), parsed.definitions


def test_the_definition_line_is_the_header_line_naming_it() -> None:
    source = "@decorator\n@other(1)\ndef foo(a,\n        b):\n    return a\n"
    definition, _ = _one("python", "m.py", source, "foo")
    assert definition_line(definition) == "def foo(a,"
    assert definition_row(definition) == 2
    rust = "#[inline]\npub fn area(w: f64) -> f64 { w }\n"
    assert definition_line(_one("rust", "g.rs", rust, "area")[0]) == "pub fn area(w: f64) -> f64"


_PARAMETER_CASES = [
    ("python", "m.py", "def f(a, b=2, *args, key=None, **kw):\n    pass\n", "f",
     ("a", "b", "key"), 1, True),
    ("python", "m.py", "class K:\n    def m(self, x, y):\n        pass\n", "m",
     ("x", "y"), 2, False),
    ("python", "m.py", "class K(Base):\n    def __init__(self, owner, limit=3):\n"
     "        pass\n", "K", ("owner", "limit"), 1, False),
    ("typescript", "m.ts", "export function g(v: number[], f?: number, ...r: T[]): void {}\n",
     "g", ("v", "f"), 1, True),
    ("typescript", "m.ts", "class M {\n  constructor(public rows: number, cols: number) {}\n"
     "}\n", "M", ("rows", "cols"), 2, False),
    ("go", "m.go", "package m\nfunc (s *S) Join(parts []string, a, b int) string {\n"
     '\treturn ""\n}\n', "Join", ("parts", "a", "b"), 3, False),
    ("rust", "m.rs", "impl P {\n    pub fn new(&mut self, x: i32, mut y: Vec<(u8, u8)>) -> P {\n"
     "        P\n    }\n}\n", "new", ("x", "y"), 2, False),
    ("java", "A.java", "class A {\n    static int clamp(final int v, Map<K, V> m, String... r) {\n"
     "        return 0;\n    }\n}\n", "clamp", ("v", "m"), 2, True),
    ("c", "m.c", "int max_int(const char *s, int b[]) { return 0; }\n", "max_int",
     ("s", "b"), 2, False),
    ("c", "m.c", "int none(void) { return 0; }\n", "none", (), 0, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("language", "path", "source", "name", "names", "required", "variadic"), _PARAMETER_CASES
)
def test_parameters_are_read_from_headers(
    language: str,
    path: str,
    source: str,
    name: str,
    names: tuple[str, ...],
    required: int,
    variadic: bool,
) -> None:
    definition, siblings = _one(language, path, source, name)
    params = parameters(definition, siblings)
    assert params is not None
    assert (params.names, params.required, params.variadic) == (names, required, variadic)


def test_a_class_without_a_constructor_has_unknown_parameters() -> None:
    definition, siblings = _one("python", "m.py", "@dataclass\nclass P:\n    x: int\n", "P")
    assert parameters(definition, siblings) is None


def test_arity_and_parameter_names_of_a_generated_call() -> None:
    definition, siblings = _one("python", "m.py", "def f(items, tax_rate=0.2):\n    pass\n", "f")
    params = parameters(definition, siblings)
    assert params is not None
    assert call_arguments('items, ")", g(1, 2))\n') == ["items", '")"', "g(1, 2)"]
    assert call_arguments(")") == []
    assert call_arguments("items, 0.1") is None  # the call never closes
    assert [params.accepts(n) for n in range(4)] == [False, True, True, False]
    assert names_a_parameter(["tax_rate=0.1"], params.names)
    assert not names_a_parameter(["prices", "0.1"], params.names)
    assert call_arguments("lambda x: x, {a: (b, c)})") == ["lambda x: x", "{a: (b, c)}"]
    assert call_arguments("a => a + 1, b)") == ["a => a + 1", "b"]


# -- whose files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "skipped"),
    [
        ("vendor/x/a.go", True),
        ("src/third_party/lib.c", True),
        ("web/node_modules/p/i.js", True),
        ("dist/index.js", True),
        ("static/app.min.js", True),
        ("api/types_pb2.py", True),
        ("api/types_pb2_grpc.py", True),
        ("api/types.pb.go", True),
        ("src/schema_generated.ts", True),
        ("src/vendors.py", False),
        ("src/distance.py", False),
        ("src/app.js", False),
    ],
)
def test_vendored_and_generated_paths(path: str, skipped: bool) -> None:
    assert vendored_or_generated_path(path) is skipped


def test_generated_marks_in_the_first_lines() -> None:
    assert generated_text("// Code generated by stringer. DO NOT EDIT.\npackage x\n")
    assert generated_text("/*\n * @generated by tool\n */\n")
    assert not generated_text("def f():\n    pass\n")
    late = "x = 1\n" * 20 + "# DO NOT EDIT below\n"
    assert not generated_text(late)  # only the head of a file counts


# -- sampling -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> RepositoryIndex:
    return RepositoryIndex.build(write_repo(tmp_path_factory.mktemp("callsites")))


@pytest.mark.parametrize("language", sorted(EXPECTED))
def test_cases_are_cross_file_calls_to_a_unique_definition(
    repo: RepositoryIndex, language: str
) -> None:
    cases, stats = sample_cases(repo, language, 40, seed=0)
    assert {c.call.name for c in cases} == EXPECTED[language]
    assert stats.candidates >= len(cases)
    for case in cases:
        assert case.path != case.definition.path
        assert case.definition.name == case.call.name
        record = repo.file(case.path)
        assert record is not None and record.language == language
        assert case.call.name not in {d.name for d in record.definitions}
        assert case.definition_line in (repo.root / case.definition.path).read_text("utf-8")


def test_vendored_generated_ambiguous_and_outside_calls_are_not_cases(
    repo: RepositoryIndex,
) -> None:
    cases, _ = sample_cases(repo, "python", 40, seed=0)
    names = {c.call.name for c in cases}
    # vendored_fn: its only definition is vendored; generated_fn: in a generated file;
    # twice_defined: in two files; exit: sys.exit is the standard library's.
    assert not names & {"vendored_fn", "generated_fn", "twice_defined", "exit"}
    assert all(not c.path.startswith("py/vendor/") for c in cases)
    # One case per (file, callee): compute_total is called in two files, Basket in one.
    pairs = [(c.path, c.call.name) for c in cases]
    assert sorted(pairs) == sorted(set(pairs))
    assert sorted(pairs) == [
        ("py/cli.py", "compute_total"),
        ("py/main.py", "Basket"),
        ("py/main.py", "compute_total"),
    ]


def test_sampling_is_reproducible_and_spread_over_files(repo: RepositoryIndex) -> None:
    def keys(seed: int, count: int) -> list[tuple[str, str, int]]:
        return [
            (c.path, c.call.name, c.call.offset)
            for c in sample_cases(repo, "python", count, seed)[0]
        ]

    assert keys(0, 40) == keys(0, 40)
    assert keys(7, 40) == keys(7, 40)
    # Two cases from two files with calls: one from each before a second from either.
    assert len({path for path, _, _ in keys(0, 2)}) == 2
    assert len({path for path, _, _ in keys(3, 2)}) == 2
    orders = {tuple(keys(seed, 40)) for seed in range(8)}
    assert len(orders) > 1  # the seed matters
    assert all(sorted(order) == sorted(keys(0, 40)) for order in orders)


def test_bare_calls_never_mean_methods_and_receivers_pick_the_member(tmp_path: Path) -> None:
    files = {
        "py/thing.py": "class Thing:\n    def done(self):\n        pass\n",
        "py/use.py": "def run(t):\n    done()\n    t.done()\n",
        "rs/shapes.rs": (
            "pub struct A;\npub struct B;\n"
            "impl A {\n    pub fn new() -> A { A }\n}\n"
            "impl B {\n    pub fn new(size: u8) -> B { B }\n}\n"
        ),
        "rs/main.rs": "mod shapes;\nfn main() {\n    let b = B::new(3);\n}\n",
        "go/list/list.go": (
            "package list\n\n"
            "func (l table) Suffix(d string) string { return d }\n\n"
            "func Suffix(d string) (string, bool) { return d, true }\n"
        ),
        "go/main.go": 'package main\n\nimport "x/list"\n\nfunc main() { list.Suffix("a") }\n',
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    index = RepositoryIndex.build(tmp_path)
    (case,) = sample_cases(index, "python", 10, 0)[0]
    assert (case.call.name, case.call.receiver, case.call.line) == ("done", "t", 2)
    (rust,) = sample_cases(index, "rust", 10, 0)[0]
    assert rust.definition.parent == "B"
    assert rust.definition_line == "pub fn new(size: u8) -> B"
    assert rust.wanted_lines() == ("pub fn new(size: u8) -> B", "pub fn new() -> A")
    (go,) = sample_cases(index, "go", 10, 0)[0]
    assert go.definition_line == "func Suffix(d string) (string, bool)"  # the package's function
    assert "func (l table) Suffix(d string) string" in go.wanted_lines()


def test_texts_are_handed_back_for_the_files_parsed(repo: RepositoryIndex) -> None:
    texts: dict[str, str] = {}
    cases, _ = sample_cases(repo, "go", 40, 0, texts=texts)
    assert cases
    for case in cases:
        text = texts[case.path]
        assert text[: case.call.offset].endswith(case.call.name + "(")


# -- the BM25 baseline ---------------------------------------------------------------------


def test_windows_are_twenty_lines_every_ten() -> None:
    text = "".join(f"line{i}\n" for i in range(45))
    windows = line_windows(text)
    assert [(s, e) for s, e, _ in windows] == [(0, 19), (10, 29), (20, 39), (30, 44)]
    assert windows[0][2].split("\n")[0] == "line0" and windows[-1][2].endswith("line44")
    assert line_windows("") == []


def test_the_query_is_the_lines_before_the_cursor() -> None:
    text = "".join(f"l{i}\n" for i in range(30)) + "call(x"
    assert query_text(text, len(text) - 1).split("\n") == [f"l{i}" for i in range(11, 30)] + [
        "call("
    ]
    assert query_text("a\nb(", 4) == "a\nb("


def test_bm25_ranks_the_window_sharing_rare_words_first() -> None:
    filler = "".join(f"value = value + {i}\n" for i in range(40))
    target = filler + "def parse_invoice_total(invoice, currency):\n    return invoice\n"
    index = WindowIndex(
        [("a.py", filler), ("b.py", target), ("c.py", "invoice = 1\n" + filler), ("cur.py", target)]
    )
    query = "total = parse_invoice_total(invoice, currency"
    ranked = list(index.ranked(query, exclude_path="cur.py"))
    assert ranked[0].path == "b.py" and "parse_invoice_total" in ranked[0].text
    assert all(w.path != "cur.py" for w in ranked)
    scores = index.scores(query)
    assert all(score > 0 for score in scores.values())
    assert index.scores("nothing_shares_this") == {}


def test_bm25_fills_the_budget_without_overlapping_windows() -> None:
    files = [
        (f"f{n}.py", "".join(f"token{n} common line {i}\n" for i in range(60))) for n in range(5)
    ]
    index = WindowIndex(files)
    budget = 2000
    chosen = index.retrieve("common token3 line", budget, "#")
    cost = sum(len(f"# Path: {w.path}\n") + len(w.text) + 1 for w in chosen)
    assert chosen and cost <= budget
    assert chosen[0].path == "f3.py"
    for i, a in enumerate(chosen):
        for b in chosen[i + 1 :]:
            assert a.path != b.path or a.end_line < b.start_line or b.end_line < a.start_line
    assert index.retrieve("common", 10, "#") == []  # no window fits ten characters

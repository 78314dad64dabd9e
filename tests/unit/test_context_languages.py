"""The language registry: every entry is reachable, loadable and consistent."""

from __future__ import annotations

from collections import Counter

import pytest
from tree_sitter import Language, Node, Query

from codellama_lsp.context.errors import UnsupportedLanguageError
from codellama_lsp.context.languages import (
    GENERIC_OPENERS,
    LANGUAGES,
    LanguageSpec,
    comment_prefix,
    grammar,
    import_query,
    language_for_id,
    language_for_path,
    new_parser,
    spec_for,
    spec_for_id,
    spec_for_path,
)
from codellama_lsp.context.postprocess import decide_policy, finalize
from codellama_lsp.context.symbols import parse_source

SPEC_IDS = [spec.name for spec in LANGUAGES]

#: One import and one function called ``greet`` in each language.
SAMPLES = {
    "python": "import os\n\ndef greet(name):\n    return name\n",
    "javascript": "import { x } from './x';\nfunction greet(name) { return name; }\n",
    "typescript": "import { x } from './x';\nfunction greet(n: string): string { return n; }\n",
    "tsx": "import { x } from './x';\nfunction greet(n: string) { return <b>{n}</b>; }\n",
    "java": "package a;\nimport java.util.List;\nclass A { void greet() {} }\n",
    "c": '#include "x.h"\nint greet(int n) { return n; }\n',
    "cpp": "#include <vector>\nint greet(int n) { return n; }\n",
    "csharp": "using System;\nclass A { void greet() {} }\n",
    "php": "<?php\nuse A\\B;\nfunction greet($n) { return $n; }\n",
    "bash": "source ./lib.sh\ngreet() { echo hi; }\n",
    "go": 'package main\nimport "fmt"\nfunc greet() {}\n',
    "rust": "use std::fmt;\nfn greet() {}\n",
}
#: Text a grammar needs before code starts (PHP files start as HTML).
PRELUDE = {"php": "<?php\n"}


def by_name(name: str) -> LanguageSpec:
    return spec_for(name)


def node_types(node: Node) -> set[str]:
    found = {node.type}
    for child in node.children:
        found |= node_types(child)
    return found


@pytest.mark.parametrize("name", SPEC_IDS)
def test_found_by_every_extension_and_language_id(name: str) -> None:
    spec = by_name(name)
    assert spec.extensions and spec.language_ids
    for ext in spec.extensions:
        assert ext.startswith(".") and ext == ext.lower()
        assert language_for_path(f"src/file{ext}") == name
        assert language_for_path(f"FILE{ext.upper()}") == name
        assert spec_for_path(f"a/b{ext}") is spec
        assert comment_prefix(f"x{ext}") == spec.line_comment
    for language_id in (*spec.language_ids, name):
        assert language_for_id(language_id) == name
        assert language_for_id(language_id.upper()) == name
        assert spec_for_id(language_id) is spec


def test_unknown_names_and_extensions_get_none() -> None:
    for path in ("README.md", "Makefile", "notes.txt", "a.py.bak", ".py"):
        assert language_for_path(path) is None, path
        assert spec_for_path(path) is None
    assert comment_prefix("notes.txt") == "#"
    for language_id in ("cobol", "plaintext", "", None):
        assert language_for_id(language_id) is None
        assert spec_for_id(language_id) is None
    with pytest.raises(UnsupportedLanguageError):
        spec_for("cobol")


def test_no_extension_or_id_is_claimed_twice() -> None:
    extensions = Counter(ext for spec in LANGUAGES for ext in spec.extensions)
    assert [ext for ext, n in extensions.items() if n > 1] == []
    ids = Counter(key.lower() for spec in LANGUAGES for key in {spec.name, *spec.language_ids})
    assert [key for key, n in ids.items() if n > 1] == []
    assert len({spec.name for spec in LANGUAGES}) == len(LANGUAGES)


@pytest.mark.parametrize("name", SPEC_IDS)
def test_grammar_loads_and_queries_compile(name: str) -> None:
    spec = by_name(name)
    assert isinstance(grammar(name), Language)
    query = import_query(name)
    assert isinstance(query, Query)
    assert "import" in [query.capture_name(i) for i in range(query.capture_count)]
    # Every node type the entry names exists in its grammar (a typo would never match).
    named = (
        set(spec.definitions)
        | set(spec.definition_handlers)
        | spec.containers
        | spec.wrappers
        | spec.scopes
    )
    lang = grammar(name)
    assert sorted(k for k in named if lang.id_for_node_kind(k, True) is None) == []
    assert set(spec.definition_handlers) <= set(spec.definitions)
    assert spec.containers <= set(spec.definitions)


@pytest.mark.parametrize("name", SPEC_IDS)
def test_handlers_read_a_sample(name: str) -> None:
    parsed = parse_source(name, f"sample{by_name(name).extensions[0]}", SAMPLES[name].encode())
    assert "greet" in [d.name for d in parsed.definitions]
    assert parsed.imports, "the import handler found nothing"


def test_every_language_has_a_sample() -> None:
    assert set(SAMPLES) == set(SPEC_IDS)


@pytest.mark.parametrize("name", SPEC_IDS)
def test_comment_syntax_is_a_comment_to_the_grammar(name: str) -> None:
    spec = by_name(name)
    texts = [spec.comment("note")]
    if spec.block_comment is not None:
        opener, closer = spec.block_comment
        texts.append(f"{opener} note {closer}")
    for text in texts:
        source = (PRELUDE.get(name, "") + text + "\n").encode()
        tree = new_parser(name).parse(source)
        assert node_types(tree.root_node) & spec.comment_types, text
        assert not tree.root_node.has_error, text


@pytest.mark.parametrize("name", SPEC_IDS)
def test_comment_syntax_is_a_comment_to_the_stop_rules(name: str) -> None:
    """A definition header starts a block of its own; the same line commented out does not."""
    spec = by_name(name)
    prefix, suffix = "x = 1\n", "\n"
    policy = decide_policy(prefix, suffix, language=spec.language_ids[0])
    assert policy.multiline
    rest = "\n    body\nother()\n"
    assert finalize("def main():" + rest, policy, prefix, suffix) == "def main():\n    body"
    commented = [spec.comment("def main():")]
    if spec.block_comment is not None:
        opener, closer = spec.block_comment
        commented.append(f"{opener} def main(): {closer}")
    for line in commented:
        assert finalize(line + rest, policy, prefix, suffix) == line + rest.rstrip("\n")


@pytest.mark.parametrize("name", SPEC_IDS)
def test_language_ids_route_to_their_block_openers(name: str) -> None:
    openers = by_name(name).openers
    for language_id in by_name(name).language_ids:
        colon = decide_policy("case 1:", "\n", language=language_id)
        assert colon.multiline is (openers.colon or openers.case_labels), language_id
        arrow = decide_policy("x =>", "\n", language=language_id)
        assert arrow.multiline is openers.arrow, language_id


def test_unknown_languages_get_every_opener() -> None:
    assert GENERIC_OPENERS.colon and GENERIC_OPENERS.arrow
    for head in ("label:", "x =>", "if x; then"):
        assert decide_policy(head, "\n", language="cobol").after_opener, head
    assert not decide_policy("label:", "\n", language="rust").multiline
    assert decide_policy("if [ -n x ]; then", "\n", language="shellscript").after_opener

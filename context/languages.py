"""Which grammar, comment syntax and syntax-node vocabulary belongs to each file type.

Grammars and queries are compiled once per process (they are immutable), while
parsers are created per call because a tree-sitter ``Parser`` must not be shared
between the watcher thread and the request thread.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from types import MappingProxyType

import tree_sitter_bash
import tree_sitter_c
import tree_sitter_c_sharp
import tree_sitter_cpp
import tree_sitter_go
import tree_sitter_java
import tree_sitter_javascript
import tree_sitter_php
import tree_sitter_python
import tree_sitter_rust
import tree_sitter_typescript
from tree_sitter import Language, Parser, Query

from .errors import UnsupportedLanguageError

FUNCTION = "function"
METHOD = "method"
CLASS = "class"
INTERFACE = "interface"
TYPE = "type"
STRUCT = "struct"
ENUM = "enum"
CONSTANT = "constant"

#: Kinds that name a type, used to pull in the types a signature mentions.
TYPE_KINDS = frozenset({CLASS, INTERFACE, TYPE, STRUCT, ENUM})
#: Kinds whose members are listed under their header when the body is cut.
CONTAINER_KINDS = frozenset({CLASS, INTERFACE, STRUCT, ENUM})


@dataclass(frozen=True)
class LanguageSpec:
    """Everything the indexer needs to know about one language."""

    name: str
    #: Languages of one family may import each other (C and C++, JS and TS).
    family: str
    comment: str
    loader: Callable[[], object]
    #: Node type -> definition kind.
    definitions: Mapping[str, str]
    #: Definition node types whose body holds member definitions.
    containers: frozenset[str] = frozenset()
    #: Nodes that wrap one definition and belong to its header (decorators, export).
    wrappers: frozenset[str] = frozenset()
    #: Nodes whose children are looked at as if they were at the same level.
    scopes: frozenset[str] = frozenset()
    #: Tree-sitter query whose ``@import`` captures are import-like statements.
    import_query: str = ""
    comment_types: frozenset[str] = field(
        default_factory=lambda: frozenset({"comment", "line_comment", "block_comment"})
    )


_C_DEFS: Mapping[str, str] = MappingProxyType(
    {
        "function_definition": FUNCTION,
        "declaration": FUNCTION,  # only prototypes are kept, see the indexer
        "struct_specifier": STRUCT,
        "union_specifier": STRUCT,
        "enum_specifier": ENUM,
        "type_definition": TYPE,
        "preproc_def": CONSTANT,
        "preproc_function_def": FUNCTION,
    }
)
_C_SCOPES = frozenset(
    {
        "preproc_ifdef",
        "preproc_if",
        "preproc_else",
        "preproc_elif",
        "linkage_specification",
        "declaration_list",
    }
)
_JS_DEFS: Mapping[str, str] = MappingProxyType(
    {
        "function_declaration": FUNCTION,
        "generator_function_declaration": FUNCTION,
        "class_declaration": CLASS,
        "method_definition": METHOD,
        "lexical_declaration": CONSTANT,  # refined to function for arrow functions
        "variable_declaration": CONSTANT,
    }
)
_TS_DEFS: Mapping[str, str] = MappingProxyType(
    {
        **_JS_DEFS,
        "abstract_class_declaration": CLASS,
        "interface_declaration": INTERFACE,
        "type_alias_declaration": TYPE,
        "enum_declaration": ENUM,
        "function_signature": FUNCTION,
        "method_signature": METHOD,
        "abstract_method_signature": METHOD,
    }
)
_JS_IMPORTS = """
(import_statement) @import
(export_statement source: (_)) @import
(call_expression function: (identifier) @fn arguments: (arguments (string))) @import
"""


def _ts(loader: Callable[[], object], name: str) -> LanguageSpec:
    return LanguageSpec(
        name=name,
        family="js",
        comment="//",
        loader=loader,
        definitions=_TS_DEFS,
        containers=frozenset(
            {"class_declaration", "abstract_class_declaration", "interface_declaration"}
        ),
        wrappers=frozenset({"export_statement", "ambient_declaration"}),
        scopes=frozenset({"internal_module", "module", "statement_block", "expression_statement"}),
        import_query=_JS_IMPORTS,
    )


SPECS: Mapping[str, LanguageSpec] = MappingProxyType(
    {
        "python": LanguageSpec(
            name="python",
            family="python",
            comment="#",
            loader=tree_sitter_python.language,
            definitions={
                "function_definition": FUNCTION,
                "class_definition": CLASS,
                "expression_statement": CONSTANT,  # UPPER_CASE = ... assignments only
            },
            containers=frozenset({"class_definition"}),
            wrappers=frozenset({"decorated_definition"}),
            import_query="(import_statement) @import (import_from_statement) @import",
        ),
        "javascript": LanguageSpec(
            name="javascript",
            family="js",
            comment="//",
            loader=tree_sitter_javascript.language,
            definitions=_JS_DEFS,
            containers=frozenset({"class_declaration"}),
            wrappers=frozenset({"export_statement"}),
            import_query=_JS_IMPORTS,
        ),
        "typescript": _ts(tree_sitter_typescript.language_typescript, "typescript"),
        "tsx": _ts(tree_sitter_typescript.language_tsx, "tsx"),
        "java": LanguageSpec(
            name="java",
            family="java",
            comment="//",
            loader=tree_sitter_java.language,
            definitions={
                "class_declaration": CLASS,
                "interface_declaration": INTERFACE,
                "enum_declaration": ENUM,
                "record_declaration": CLASS,
                "annotation_type_declaration": INTERFACE,
                "method_declaration": METHOD,
                "constructor_declaration": METHOD,
                "field_declaration": CONSTANT,  # static final only
            },
            containers=frozenset(
                {
                    "class_declaration",
                    "interface_declaration",
                    "enum_declaration",
                    "record_declaration",
                }
            ),
            scopes=frozenset({"enum_body_declarations"}),
            import_query="(import_declaration) @import (package_declaration) @import",
        ),
        "c": LanguageSpec(
            name="c",
            family="c",
            comment="//",
            loader=tree_sitter_c.language,
            definitions=_C_DEFS,
            scopes=_C_SCOPES,
            import_query="(preproc_include) @import",
        ),
        "cpp": LanguageSpec(
            name="cpp",
            family="c",
            comment="//",
            loader=tree_sitter_cpp.language,
            definitions={
                **_C_DEFS,
                "class_specifier": CLASS,
                "field_declaration": METHOD,  # only method prototypes inside classes
                "alias_declaration": TYPE,
            },
            containers=frozenset({"class_specifier", "struct_specifier"}),
            wrappers=frozenset({"template_declaration"}),
            scopes=_C_SCOPES | {"namespace_definition"},
            import_query="(preproc_include) @import",
        ),
        "csharp": LanguageSpec(
            name="csharp",
            family="csharp",
            comment="//",
            loader=tree_sitter_c_sharp.language,
            definitions={
                "class_declaration": CLASS,
                "interface_declaration": INTERFACE,
                "struct_declaration": STRUCT,
                "enum_declaration": ENUM,
                "record_declaration": CLASS,
                "delegate_declaration": TYPE,
                "method_declaration": METHOD,
                "constructor_declaration": METHOD,
            },
            containers=frozenset(
                {"class_declaration", "interface_declaration", "struct_declaration"}
                | {"record_declaration"}
            ),
            scopes=frozenset(
                {"namespace_declaration", "file_scoped_namespace_declaration", "declaration_list"}
            ),
            import_query="""
(using_directive) @import
(namespace_declaration name: (_) @namespace)
(file_scoped_namespace_declaration name: (_) @namespace)
""",
        ),
        "php": LanguageSpec(
            name="php",
            family="php",
            comment="//",
            loader=tree_sitter_php.language_php,
            definitions={
                "function_definition": FUNCTION,
                "class_declaration": CLASS,
                "interface_declaration": INTERFACE,
                "trait_declaration": CLASS,
                "enum_declaration": ENUM,
                "method_declaration": METHOD,
                "const_declaration": CONSTANT,
            },
            containers=frozenset(
                {"class_declaration", "interface_declaration", "trait_declaration"}
                | {"enum_declaration"}
            ),
            scopes=frozenset({"namespace_definition", "compound_statement"}),
            import_query="""
(namespace_use_declaration) @import
(namespace_definition name: (_) @namespace)
(include_expression) @import
(include_once_expression) @import
(require_expression) @import
(require_once_expression) @import
""",
        ),
        "bash": LanguageSpec(
            name="bash",
            family="bash",
            comment="#",
            loader=tree_sitter_bash.language,
            definitions={"function_definition": FUNCTION},
            import_query="(command name: (command_name) @fn argument: (_)) @import",
        ),
        "go": LanguageSpec(
            name="go",
            family="go",
            comment="//",
            loader=tree_sitter_go.language,
            definitions={
                "function_declaration": FUNCTION,
                "method_declaration": METHOD,
                "type_declaration": TYPE,  # refined per type_spec
                "const_declaration": CONSTANT,
            },
            import_query="(import_spec) @import (package_clause) @import",
        ),
        "rust": LanguageSpec(
            name="rust",
            family="rust",
            comment="//",
            loader=tree_sitter_rust.language,
            definitions={
                "function_item": FUNCTION,
                "function_signature_item": FUNCTION,
                "struct_item": STRUCT,
                "union_item": STRUCT,
                "enum_item": ENUM,
                "trait_item": INTERFACE,
                "type_item": TYPE,
                "const_item": CONSTANT,
                "static_item": CONSTANT,
                "macro_definition": FUNCTION,
                "impl_item": CLASS,  # a scope for methods, not itself recorded
            },
            containers=frozenset({"trait_item", "impl_item"}),
            scopes=frozenset({"mod_item"}),
            import_query="(use_declaration) @import (mod_item) @import",
        ),
    }
)

EXTENSIONS: Mapping[str, str] = MappingProxyType(
    {
        ".py": "python",
        ".pyi": "python",
        ".js": "javascript",
        ".mjs": "javascript",
        ".cjs": "javascript",
        ".jsx": "javascript",
        ".ts": "typescript",
        ".mts": "typescript",
        ".cts": "typescript",
        ".tsx": "tsx",
        ".java": "java",
        ".c": "c",
        ".h": "c",
        ".cc": "cpp",
        ".cpp": "cpp",
        ".cxx": "cpp",
        ".hpp": "cpp",
        ".hh": "cpp",
        ".hxx": "cpp",
        ".cs": "csharp",
        ".php": "php",
        ".sh": "bash",
        ".bash": "bash",
        ".go": "go",
        ".rs": "rust",
    }
)


def language_for_path(path: str | PurePath) -> str | None:
    """Language name for a file, or None when no grammar is installed for it."""
    return EXTENSIONS.get(PurePath(path).suffix.lower())


def spec_for(language: str) -> LanguageSpec:
    try:
        return SPECS[language]
    except KeyError:
        raise UnsupportedLanguageError(f"no grammar for language {language!r}") from None


def comment_prefix(path: str | PurePath) -> str:
    """Line-comment marker for a file; ``#`` for files without a known language."""
    language = language_for_path(path)
    return SPECS[language].comment if language else "#"


@functools.cache
def grammar(language: str) -> Language:
    return Language(spec_for(language).loader())


@functools.cache
def import_query(language: str) -> Query | None:
    source = spec_for(language).import_query
    return Query(grammar(language), source) if source else None


def new_parser(language: str) -> Parser:
    """A fresh parser: parsers hold per-parse state and are not thread-safe."""
    return Parser(grammar(language))

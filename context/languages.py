"""The language registry: one :class:`LanguageSpec` per supported language.

Everything the core knows about a language lives in its entry: how files and
editors name it, its comment syntax, what opens a block, its grammar, the node
types that define things, how its imports are read and resolved, and how an
elided definition is written.  Consumers look an entry up by file extension, by
LSP language id or by name, and dispatch on its fields; none of them branches on
a language's name.

Grammars and queries are compiled once per process (they are immutable), while
parsers are created per call because a tree-sitter ``Parser`` must not be shared
between the watcher thread and the request thread.  Grammar modules are imported
on first use, so that modules that only need names and comment syntax (the stop
rules) do not load eleven native libraries.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from types import MappingProxyType

from tree_sitter import Language, Parser, Query

from . import definitions as d
from . import imports, resolvers
from .definitions import CLASS, CONSTANT, ENUM, FUNCTION, INTERFACE, METHOD, STRUCT, TYPE
from .errors import UnsupportedLanguageError
from .imports import ImportHandler
from .layouts import BRACES, DETACHED, IMPL_BLOCKS, INDENTED, SHELL, Layout
from .resolvers import ImplicitScope, Resolver

_NO_HANDLERS: Mapping[str, d.DefinitionHandler] = MappingProxyType({})


@dataclass(frozen=True)
class BlockOpeners:
    """Line endings, besides ``{`` and a line-ending ``(`` or ``[``, that open a block.

    The stop rules (:func:`.postprocess.decide_policy`) let a suggestion span
    several lines only where a block body is expected.
    """

    #: Any trailing ``:`` (Python).
    colon: bool = False
    #: ``case x:`` and ``default:`` labels.
    case_labels: bool = False
    #: A trailing ``=>``.
    arrow: bool = False
    #: Keywords that end an opener line (shell ``then``), as a regex searched at the end.
    words: re.Pattern[str] | None = None


@dataclass(frozen=True)
class LanguageSpec:
    """Everything the core needs to know about one language."""

    #: The grammar's name; also ``Definition.language`` and ``FileRecord.language``.
    name: str
    #: Languages of one family may import each other (C and C++, JS and TS).
    family: str
    #: LSP language ids first, then other names editors send (Neovim filetypes).
    language_ids: tuple[str, ...]
    #: File name suffixes, lower case, with the dot.
    extensions: tuple[str, ...]
    line_comment: str
    loader: Callable[[], object]
    #: Node type -> definition kind.
    definitions: Mapping[str, str]
    import_handler: ImportHandler
    resolver: Resolver
    #: (opener, closer), or None where the language has no block comments.
    block_comment: tuple[str, str] | None = None
    openers: BlockOpeners = BlockOpeners()
    layout: Layout = BRACES
    #: Node type -> the handler that reads it; other definitions go to ``default_handler``.
    definition_handlers: Mapping[str, d.DefinitionHandler] = field(
        default_factory=lambda: _NO_HANDLERS
    )
    default_handler: d.DefinitionHandler = d.named
    #: Definition node types whose body holds member definitions.
    containers: frozenset[str] = frozenset()
    #: Nodes that wrap one definition and belong to its header (decorators, export).
    wrappers: frozenset[str] = frozenset()
    #: Nodes whose children are looked at as if they were at the same level.
    scopes: frozenset[str] = frozenset()
    #: Tree-sitter query whose ``@import`` captures go to ``import_handler`` (and whose
    #: ``@namespace`` captures name the file's namespace).
    import_query: str = ""
    #: Files whose names a file sees without importing them (same package), if any.
    implicit_scope: ImplicitScope | None = None
    comment_types: frozenset[str] = field(
        default_factory=lambda: frozenset({"comment", "line_comment", "block_comment"})
    )
    #: Siblings just above a definition that belong to it (attributes, annotations).
    attribute_types: frozenset[str] = field(
        default_factory=lambda: frozenset({"attribute_item", "attribute_list", "annotation"})
    )

    def comment(self, text: str) -> str:
        """``text`` as a line comment of this language."""
        return f"{self.line_comment} {text}"


def _grammar_loader(module: str, function: str = "language") -> Callable[[], object]:
    """A loader that imports the grammar's package only when the grammar is first needed."""

    def load() -> object:
        loaded: object = getattr(importlib.import_module(module), function)()
        return loaded

    return load


_C_BLOCK = ("/*", "*/")
#: ``case x:`` / ``default:`` labels open an indented block.
_CASES = BlockOpeners(case_labels=True)
_CASES_ARROW = BlockOpeners(case_labels=True, arrow=True)
#: Openers for text of no registered language: a colon, an arrow, shell ``then``/``do``.
GENERIC_OPENERS = BlockOpeners(
    colon=True, arrow=True, words=re.compile(r"(?:^|[\s;)])(?:then|do)$")
)

# -- node vocabularies shared by related grammars ----------------------------------

_C_DEFS: Mapping[str, str] = MappingProxyType(
    {
        "function_definition": FUNCTION,
        "declaration": FUNCTION,  # only prototypes are kept, see the handler
        "struct_specifier": STRUCT,
        "union_specifier": STRUCT,
        "enum_specifier": ENUM,
        "type_definition": TYPE,
        "preproc_def": CONSTANT,
        "preproc_function_def": FUNCTION,
    }
)
_C_HANDLERS: Mapping[str, d.DefinitionHandler] = MappingProxyType(
    {
        "function_definition": d.c_function,
        "declaration": d.c_function,
        "type_definition": d.c_typedef,
        "struct_specifier": d.c_tagged,
        "union_specifier": d.c_tagged,
        "enum_specifier": d.c_tagged,
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
_JS_HANDLERS: Mapping[str, d.DefinitionHandler] = MappingProxyType(
    {"lexical_declaration": d.js_declaration, "variable_declaration": d.js_declaration}
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


def _typescript(
    name: str, function: str, ids: tuple[str, ...], ext: tuple[str, ...]
) -> LanguageSpec:
    return LanguageSpec(
        name=name,
        family="js",
        language_ids=ids,
        extensions=ext,
        line_comment="//",
        block_comment=_C_BLOCK,
        openers=_CASES_ARROW,
        loader=_grammar_loader("tree_sitter_typescript", function),
        definitions=_TS_DEFS,
        definition_handlers=_JS_HANDLERS,
        containers=frozenset(
            {"class_declaration", "abstract_class_declaration", "interface_declaration"}
        ),
        wrappers=frozenset({"export_statement", "ambient_declaration"}),
        scopes=frozenset({"internal_module", "module", "statement_block", "expression_statement"}),
        import_query=_JS_IMPORTS,
        import_handler=imports.js_import,
        resolver=resolvers.javascript,
    )


PYTHON = LanguageSpec(
    name="python",
    family="python",
    language_ids=("python", "py"),
    extensions=(".py", ".pyi"),
    line_comment="#",
    openers=BlockOpeners(colon=True),
    layout=INDENTED,
    loader=_grammar_loader("tree_sitter_python"),
    definitions={
        "function_definition": FUNCTION,
        "class_definition": CLASS,
        "expression_statement": CONSTANT,  # UPPER_CASE = ... assignments only
    },
    definition_handlers={"expression_statement": d.python_constant},
    default_handler=d.python_definition,
    containers=frozenset({"class_definition"}),
    wrappers=frozenset({"decorated_definition"}),
    import_query="(import_statement) @import (import_from_statement) @import",
    import_handler=imports.python_import,
    resolver=resolvers.python,
)
JAVASCRIPT = LanguageSpec(
    name="javascript",
    family="js",
    language_ids=("javascript", "javascriptreact", "jsx"),
    extensions=(".js", ".mjs", ".cjs", ".jsx"),
    line_comment="//",
    block_comment=_C_BLOCK,
    openers=_CASES_ARROW,
    loader=_grammar_loader("tree_sitter_javascript"),
    definitions=_JS_DEFS,
    definition_handlers=_JS_HANDLERS,
    containers=frozenset({"class_declaration"}),
    wrappers=frozenset({"export_statement"}),
    import_query=_JS_IMPORTS,
    import_handler=imports.js_import,
    resolver=resolvers.javascript,
)
TYPESCRIPT = _typescript(
    "typescript", "language_typescript", ("typescript",), (".ts", ".mts", ".cts")
)
TSX = _typescript("tsx", "language_tsx", ("typescriptreact", "tsx"), (".tsx",))
JAVA = LanguageSpec(
    name="java",
    family="java",
    language_ids=("java",),
    extensions=(".java",),
    line_comment="//",
    block_comment=_C_BLOCK,
    openers=_CASES,
    loader=_grammar_loader("tree_sitter_java"),
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
    definition_handlers={"field_declaration": d.java_constant},
    containers=frozenset(
        {"class_declaration", "interface_declaration", "enum_declaration", "record_declaration"}
    ),
    scopes=frozenset({"enum_body_declarations"}),
    import_query="(import_declaration) @import (package_declaration) @import",
    import_handler=imports.java_import,
    resolver=resolvers.java,
    implicit_scope=resolvers.same_directory,
)
C = LanguageSpec(
    name="c",
    family="c",
    language_ids=("c",),
    extensions=(".c", ".h"),
    line_comment="//",
    block_comment=_C_BLOCK,
    openers=_CASES,
    loader=_grammar_loader("tree_sitter_c"),
    definitions=_C_DEFS,
    definition_handlers=_C_HANDLERS,
    scopes=_C_SCOPES,
    import_query="(preproc_include) @import",
    import_handler=imports.c_include,
    resolver=resolvers.c,
)
CPP = LanguageSpec(
    name="cpp",
    family="c",
    language_ids=("cpp", "c++"),
    extensions=(".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx"),
    line_comment="//",
    block_comment=_C_BLOCK,
    openers=_CASES,
    loader=_grammar_loader("tree_sitter_cpp"),
    definitions={
        **_C_DEFS,
        "class_specifier": CLASS,
        "field_declaration": METHOD,  # only method prototypes inside classes
        "alias_declaration": TYPE,
    },
    definition_handlers={**_C_HANDLERS, "field_declaration": d.c_function},
    containers=frozenset({"class_specifier", "struct_specifier"}),
    wrappers=frozenset({"template_declaration"}),
    scopes=_C_SCOPES | {"namespace_definition"},
    import_query="(preproc_include) @import",
    import_handler=imports.c_include,
    resolver=resolvers.c,
)
CSHARP = LanguageSpec(
    name="csharp",
    family="csharp",
    language_ids=("csharp", "c#", "cs"),
    extensions=(".cs",),
    line_comment="//",
    block_comment=_C_BLOCK,
    openers=_CASES_ARROW,
    loader=_grammar_loader("tree_sitter_c_sharp"),
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
    import_handler=imports.csharp_using,
    resolver=resolvers.namespace,
    implicit_scope=resolvers.same_namespace,
)
PHP = LanguageSpec(
    name="php",
    family="php",
    language_ids=("php",),
    extensions=(".php",),
    line_comment="//",
    block_comment=_C_BLOCK,
    openers=_CASES_ARROW,
    loader=_grammar_loader("tree_sitter_php", "language_php"),
    definitions={
        "function_definition": FUNCTION,
        "class_declaration": CLASS,
        "interface_declaration": INTERFACE,
        "trait_declaration": CLASS,
        "enum_declaration": ENUM,
        "method_declaration": METHOD,
        "const_declaration": CONSTANT,
    },
    definition_handlers={"const_declaration": d.php_constants},
    containers=frozenset(
        {"class_declaration", "interface_declaration", "trait_declaration"} | {"enum_declaration"}
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
    import_handler=imports.php_import,
    resolver=resolvers.php,
    implicit_scope=resolvers.same_namespace,
)
BASH = LanguageSpec(
    name="bash",
    family="bash",
    language_ids=("shellscript", "sh", "shell", "zsh"),
    extensions=(".sh", ".bash"),
    line_comment="#",
    openers=BlockOpeners(words=re.compile(r"(?:^|[\s;])(?:then|do|else|in)$")),
    layout=SHELL,
    loader=_grammar_loader("tree_sitter_bash"),
    definitions={"function_definition": FUNCTION},
    import_query="(command name: (command_name) @fn argument: (_)) @import",
    import_handler=imports.bash_source,
    resolver=resolvers.bash,
)
GO = LanguageSpec(
    name="go",
    family="go",
    language_ids=("go", "golang"),
    extensions=(".go",),
    line_comment="//",
    block_comment=_C_BLOCK,
    openers=_CASES,
    layout=DETACHED,
    loader=_grammar_loader("tree_sitter_go"),
    definitions={
        "function_declaration": FUNCTION,
        "method_declaration": METHOD,
        "type_declaration": TYPE,  # refined per type_spec
        "const_declaration": CONSTANT,
    },
    definition_handlers={
        "function_declaration": d.go_function,
        "method_declaration": d.go_method,
        "type_declaration": d.go_type,
        "const_declaration": d.go_const,
    },
    import_query="(import_spec) @import (package_clause) @import",
    import_handler=imports.go_import,
    resolver=resolvers.go,
    implicit_scope=resolvers.go_package,
)
RUST = LanguageSpec(
    name="rust",
    family="rust",
    language_ids=("rust",),
    extensions=(".rs",),
    line_comment="//",
    block_comment=_C_BLOCK,
    openers=BlockOpeners(arrow=True),
    layout=IMPL_BLOCKS,
    loader=_grammar_loader("tree_sitter_rust"),
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
    definition_handlers={"impl_item": d.rust_impl},
    containers=frozenset({"trait_item", "impl_item"}),
    scopes=frozenset({"mod_item"}),
    import_query="(use_declaration) @import (mod_item) @import",
    import_handler=imports.rust_use,
    resolver=resolvers.rust,
)

#: Every supported language, in no particular order.
LANGUAGES: tuple[LanguageSpec, ...] = (
    PYTHON,
    JAVASCRIPT,
    TYPESCRIPT,
    TSX,
    JAVA,
    C,
    CPP,
    CSHARP,
    PHP,
    BASH,
    GO,
    RUST,
)


# -- lookups -----------------------------------------------------------------------


def _by_key(pairs: Iterable[tuple[str, str]], what: str) -> Mapping[str, str]:
    """Key -> language name; a key claimed by two languages is a registry bug."""
    table: dict[str, str] = {}
    for key, name in pairs:
        owner = table.setdefault(key, name)
        if owner != name:
            raise ValueError(f"{what} {key!r} is claimed by both {owner} and {name}")
    return MappingProxyType(table)


SPECS: Mapping[str, LanguageSpec] = MappingProxyType({spec.name: spec for spec in LANGUAGES})
EXTENSIONS: Mapping[str, str] = _by_key(
    ((ext, spec.name) for spec in LANGUAGES for ext in spec.extensions), "extension"
)
#: Lower-cased LSP ids, editor names and grammar names -> language name.
LANGUAGE_IDS: Mapping[str, str] = _by_key(
    ((key.lower(), spec.name) for spec in LANGUAGES for key in (spec.name, *spec.language_ids)),
    "language id",
)


def language_for_path(path: str | PurePath) -> str | None:
    """Language name for a file, or None when no grammar is installed for it."""
    return EXTENSIONS.get(PurePath(path).suffix.lower())


def spec_for_path(path: str | PurePath) -> LanguageSpec | None:
    language = language_for_path(path)
    return SPECS[language] if language is not None else None


def language_for_id(language_id: str | None) -> str | None:
    """Language name for an LSP language id (or an editor's other name), any case."""
    if language_id is None:
        return None
    return LANGUAGE_IDS.get(language_id.lower())


def spec_for_id(language_id: str | None) -> LanguageSpec | None:
    language = language_for_id(language_id)
    return SPECS[language] if language is not None else None


def spec_for(language: str) -> LanguageSpec:
    """The entry of a language name; UnsupportedLanguageError for an unknown one."""
    try:
        return SPECS[language]
    except KeyError:
        raise UnsupportedLanguageError(f"no grammar for language {language!r}") from None


def comment_prefix(path: str | PurePath) -> str:
    """Line-comment marker for a file; ``#`` for files without a known language."""
    spec = spec_for_path(path)
    return spec.line_comment if spec is not None else "#"


def comment_markers() -> frozenset[str]:
    """Every line-comment marker and block-comment opener of the registered languages."""
    markers = {spec.line_comment for spec in LANGUAGES}
    markers.update(spec.block_comment[0] for spec in LANGUAGES if spec.block_comment)
    return frozenset(markers)


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

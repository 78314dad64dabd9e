"""One parse per file, kept as plain records: definitions' headers and raw imports.

Trees are dropped as soon as a file is read.  Keeping only headers (and the
whole text of small definitions) is what lets a 10,000-file workspace fit in a
few hundred megabytes and lets a one-file update take milliseconds.  What is read
from a tree is the registry's business (:mod:`.languages`); this module runs it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tree_sitter import Node, QueryCursor

from .definitions import SMALL_LINES, Definition, Extractor, clean_comment, node_text
from .imports import ImportSpec, expand_rust_use
from .languages import LanguageSpec, import_query, new_parser, spec_for

__all__ = (
    "SMALL_LINES",
    "Definition",
    "ImportSpec",
    "ParsedFile",
    "clean_comment",
    "expand_rust_use",
    "parse_source",
)


@dataclass(frozen=True, slots=True)
class ParsedFile:
    definitions: tuple[Definition, ...]
    imports: tuple[ImportSpec, ...]
    #: Package or namespace the file declares (Java, Go, C#, PHP), else "".
    package: str


def _imports(spec: LanguageSpec, source: bytes, root: Node) -> tuple[list[ImportSpec], str]:
    query = import_query(spec.name)
    if query is None:
        return [], ""
    captures = QueryCursor(query).captures(root)
    package = ""
    namespaces = captures.get("namespace", [])
    if namespaces:
        package = node_text(source, min(namespaces, key=lambda n: n.start_byte)).strip()
    found: list[ImportSpec] = []
    for node in sorted(captures.get("import", []), key=lambda n: n.start_byte):
        before = len(found)
        package = spec.import_handler(source, node, found) or package
        for position in range(before, len(found)):
            found[position] = replace(
                found[position], line=node.start_point.row, end_line=node.end_point.row
            )
    return found, package


def parse_source(language: str, path: str, source: bytes) -> ParsedFile:
    """Definitions and imports of one file; the syntax tree is not kept."""
    spec = spec_for(language)
    tree = new_parser(language).parse(source)
    root = tree.root_node
    extractor = Extractor(spec, source, path)
    extractor.walk(root, "")
    imports, package = _imports(spec, source, root)
    return ParsedFile(tuple(extractor.defs), tuple(imports), package)

"""What repository context to show the model at a cursor, most useful first.

0. The definition of the call the cursor is in (``c.Flags(|``), found by each
   language's visibility rules and the receiver's type as the file states it.
1. Definitions the current file imports and uses near the cursor: the model
   otherwise invents their parameters.
2. The types those signatures mention, so argument and return shapes are known.
3. An outline of the current file when it does not fit the prompt window.
4. Snippets of recently used files that look like the code being written.
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePath

from .callee import SELF_NAMES, CallSite, call_at, receiver_type_names, return_type_name
from .definitions import CONTAINER_KINDS, TYPE_KINDS
from .index import RepositoryIndex
from .languages import comment_prefix, language_for_path, spec_for
from .packing import (
    PRIORITY_CALLEE,
    PRIORITY_IMPORTED,
    PRIORITY_NEIGHBOUR,
    PRIORITY_OUTLINE,
    PRIORITY_TYPES,
    ContextChunk,
    PackedContext,
    TokenCounter,
    estimate_tokens,
    pack_chunks,
)
from .resolve import Resolution, resolve_imports
from .resolvers import closest, implementation_files
from .symbols import Definition, ImportSpec, ParsedFile
from .tokens import IDENTIFIER, identifiers, jaccard

RecentFile = tuple[str | os.PathLike[str], str]

_MAX_MEMBERS = 40
#: Imports whose names are used qualified (``module.name``): only followed when used.
QUALIFIED_KINDS = frozenset({"module", "package", "mod"})


@dataclass(frozen=True)
class RetrievalOptions:
    #: Lines before the cursor whose identifiers count as "used near the cursor".
    near_lines: int = 60
    #: Definitions up to this many lines are shown whole, longer ones as signatures.
    small_body_lines: int = 12
    #: The FIM prompt window; a file longer than both gets an outline.
    prefix_chars: int = 6000
    suffix_chars: int = 2000
    neighbour_window: int = 20
    neighbour_step: int = 5
    max_neighbours: int = 3
    min_similarity: float = 0.1
    #: Lines of a recent file looked at for neighbour snippets.
    neighbour_max_lines: int = 5000
    max_definitions: int = 24
    max_types: int = 12


def display_path(index: RepositoryIndex | None, path: str | os.PathLike[str]) -> str:
    """How a file is named in a prompt: relative to the workspace, else its name."""
    rel = index.relative(path) if index is not None else None
    return rel if rel is not None else PurePath(path).name


def _line_start(text: str, offset: int, lines_back: int) -> int:
    """Offset of the start of the line ``lines_back`` lines above the one at ``offset``."""
    position = offset
    for _ in range(lines_back + 1):
        found = text.rfind("\n", 0, position)
        if found < 0:
            return 0
        position = found
    return position + 1


# -- rendering definitions -------------------------------------------------------


def _elided(definition: Definition, members: Sequence[Definition] = ()) -> str:
    """Header and doc line with the body replaced by an elision (or by member headers)."""
    spec = spec_for(definition.language)
    indent = definition.header[: len(definition.header) - len(definition.header.lstrip())]
    lines: list[str] = []
    if definition.doc and not spec.layout.docstring:
        lines.append(indent + spec.comment(definition.doc))
    lines.extend(spec.layout.elided(definition, [_compact(m) for m in members], indent))
    return "\n".join(lines)


def _compact(definition: Definition) -> str:
    """One header with an inline elision, as outlines and member lists show it."""
    if not definition.has_body:
        return definition.header
    return definition.header + spec_for(definition.language).layout.elision


def _members(definition: Definition, siblings: Sequence[Definition]) -> list[Definition]:
    if definition.kind not in CONTAINER_KINDS:
        return []
    outside = spec_for(definition.language).layout.members_outside
    found = [
        d
        for d in siblings
        if d.parent == definition.name
        and d is not definition
        and (outside or definition.start_line <= d.start_line <= definition.end_line)
    ]
    return found[:_MAX_MEMBERS]


def render_definition(
    definition: Definition, siblings: Sequence[Definition], small_body_lines: int = 12
) -> str:
    """A definition as prompt text: whole when small, else its signature(s)."""
    lines = definition.end_line - definition.start_line + 1
    if definition.full is not None and lines <= small_body_lines:
        text = definition.full
        spec = spec_for(definition.language)
        if definition.doc and not spec.layout.docstring:
            indent = text[: len(text) - len(text.lstrip())]
            text = f"{indent}{spec.comment(definition.doc)}\n{text}"
        extra = [d for d in _members(definition, siblings) if d.start_line > definition.end_line]
        if extra:
            text += "\n" + "\n".join(_compact(d) for d in extra)
    else:
        text = _elided(definition, _members(definition, siblings))
    return textwrap.dedent(text)


# -- the four sources ----------------------------------------------------------------


def _near_tokens(
    text: str, offset: int, near_lines: int, imports: Sequence[ImportSpec]
) -> dict[str, int]:
    """Identifier -> its last position before the cursor, within ``near_lines`` lines.

    Import statements do not count: a name is wanted where it is used.
    """
    start = _line_start(text, offset, near_lines)
    skipped = {line for imp in imports for line in range(imp.line, imp.end_line + 1)}
    line = text.count("\n", 0, start)
    last: dict[str, int] = {}
    position = start
    for source_line in text[start:offset].split("\n"):
        if line not in skipped:
            for match in IDENTIFIER.finditer(source_line):
                last[match.group()] = position + match.start()
        position += len(source_line) + 1
        line += 1
    return last


def _imported_definitions(
    index: RepositoryIndex,
    rel: str,
    resolution: Resolution,
    near: dict[str, int],
) -> list[tuple[Definition, tuple[Definition, ...]]]:
    """Top-level definitions of imported files whose names are used near the cursor."""
    found: dict[tuple[str, int], tuple[Definition, tuple[Definition, ...]]] = {}
    used = Resolution(
        tuple(
            r
            for r in resolution.imports
            if r.spec.kind not in QUALIFIED_KINDS or any(n in near for n in r.spec.names)
        ),
        resolution.implicit,
    )
    files = [f for f in used.files() if f != rel]
    for record in index.records(files):
        for definition in record.definitions:
            if not definition.parent and definition.name in near:
                found.setdefault(
                    (definition.path, definition.start_line), (definition, record.definitions)
                )
    # Names imported explicitly but defined one hop further (package re-exports).
    wanted = {
        name
        for resolved in used.imports
        for name in resolved.spec.names
        if name in near and resolved.files and resolved.spec.kind not in QUALIFIED_KINDS
    }
    missing = wanted - {d.name for d, _ in found.values()}
    if missing:
        for record in index.records(files):
            if not record.imports:
                continue
            onward = resolve_imports(index, record.path, record.language, record.imports)
            for target in index.records(f for f in onward.files() if f != rel):
                for definition in target.definitions:
                    if not definition.parent and definition.name in missing:
                        found.setdefault(
                            (definition.path, definition.start_line),
                            (definition, target.definitions),
                        )
    return sorted(
        found.values(), key=lambda item: (-near[item[0].name], item[0].path, item[0].start_line)
    )


def _type_definitions(
    index: RepositoryIndex,
    rel: str,
    *,
    family: str,
    texts: Iterable[tuple[str, str]],
    preferred: set[str],
    taken: set[tuple[str, int]],
    skip_names: set[str],
    limit: int,
) -> list[tuple[Definition, tuple[Definition, ...]]]:
    """Classes, structs, interfaces and types named in the chosen signatures."""
    chosen: list[tuple[Definition, tuple[Definition, ...]]] = []
    seen_names = set(skip_names)  # already shown: another same-named type would mislead
    onward: dict[str, set[str]] = {}
    for text, source_path in texts:
        if source_path not in onward:
            record = index.file(source_path)
            near_files = {source_path}
            if record is not None:
                resolution = resolve_imports(
                    index, source_path, record.language, record.imports, record.package
                )
                near_files.update(resolution.files())
            onward[source_path] = near_files
        for name in IDENTIFIER.findall(text):
            if name in seen_names or len(chosen) >= limit:
                continue
            seen_names.add(name)
            candidates = [
                d
                for d in index.definitions(name)
                if d.kind in TYPE_KINDS
                and d.path != rel
                and (d.path, d.start_line) not in taken
                and spec_for(d.language).family == family
            ]
            if not candidates:
                continue
            in_source = [d for d in candidates if d.path in onward[source_path]]
            in_preferred = in_source or [d for d in candidates if d.path in preferred]
            if in_preferred:
                pick = in_preferred[0]
            else:
                best_path = closest([d.path for d in candidates], source_path)
                pick = next(d for d in candidates if d.path == best_path)
            record = index.file(pick.path)
            siblings = record.definitions if record is not None else (pick,)
            chosen.append((pick, siblings))
            taken.add((pick.path, pick.start_line))
    return chosen


def _outline(
    definitions: Sequence[Definition],
    text: str,
    offset: int,
    options: RetrievalOptions,
) -> tuple[str, int, int] | None:
    """Headers of the enclosing scopes and their siblings that the window does not show."""
    cursor_line = text.count("\n", 0, offset)
    first_visible = text.count("\n", 0, max(0, offset - options.prefix_chars))
    last_visible = text.count("\n", 0, min(len(text), offset + options.suffix_chars))
    enclosing = [d for d in definitions if d.start_line <= cursor_line <= d.end_line]
    scopes = {""} | {d.name for d in enclosing if d.kind in CONTAINER_KINDS}
    picked = [
        d
        for d in definitions
        if (d in enclosing and d.start_line < first_visible)
        or (
            d.parent in scopes
            and d not in enclosing
            and not first_visible <= d.start_line <= last_visible
        )
    ]
    if not picked:
        return None
    picked.sort(key=lambda d: d.start_line)
    owners = {d.parent for d in picked}
    lines = [d.header if d.name in owners else _compact(d) for d in picked]
    return "\n".join(lines), picked[0].start_line, picked[-1].end_line


def _neighbours(
    index: RepositoryIndex,
    current: str,
    text: str,
    offset: int,
    *,
    recent: Sequence[RecentFile],
    options: RetrievalOptions,
) -> list[ContextChunk]:
    """Best-matching window of each recent file (Jaccard over identifier sets)."""
    start = _line_start(text, offset, options.neighbour_window - 1)
    query = identifiers(text[start:offset])
    if not query:
        return []
    window, step = options.neighbour_window, max(1, options.neighbour_step)
    scored: list[tuple[float, str, int, str]] = []
    seen: set[str] = set()
    for path, other_text in recent:
        shown = display_path(index, path)
        # The index's own policy: allowed, and source code it would index (an
        # open credentials file, a YAML of secrets, lends nothing).
        if (
            shown == current
            or shown in seen
            or not index.is_allowed(path)
            or language_for_path(PurePath(path)) is None
        ):
            continue
        seen.add(shown)
        token_lines = index.line_tokens(shown, other_text)[: options.neighbour_max_lines]
        best = (0.0, 0)
        for first in range(0, max(1, len(token_lines) - window + step), step):
            tokens: set[str] = set()
            for line_tokens in token_lines[first : first + window]:
                tokens |= line_tokens
            score = jaccard(query, tokens)
            if score > best[0]:
                best = (score, first)
        if best[0] >= options.min_similarity:
            lines = other_text.split("\n")[best[1] : best[1] + window]
            scored.append((best[0], shown, best[1], "\n".join(lines)))
    scored.sort(key=lambda s: (-s[0], s[1], s[2]))
    return [
        ContextChunk(
            priority=PRIORITY_NEIGHBOUR,
            path=shown,
            start_line=first,
            end_line=first + snippet.count("\n"),
            text=snippet,
            source="neighbour",
            rank=float(rank),
        )
        for rank, (_, shown, first, snippet) in enumerate(scored[: options.max_neighbours])
    ]


# -- the call at the cursor ------------------------------------------------------------

#: Languages whose imported files' own imports are followed (headers, re-exports).
_ONWARD_LANGUAGES = frozenset({"c", "cpp", "python", "typescript", "javascript", "tsx", "rust"})
#: Base classes and interfaces as headers write them.
_BASES = re.compile(
    r"\bclass\s+\w+\s*\(([^)]*)\)"  # Python
    r"|\b(?:extends|implements)\s+([\w.$<>,\s]+?)\s*(?:\{|$|implements\b)"  # Java, TS, C#
    r"|\b(?:class|struct)\s+\w+\s*(?:final\s*)?:\s*([^{]+)"  # C++
)
_BASE_NAME = re.compile(r"[A-Za-z_$][\w$]*")
_NOT_BASES = frozenset({"public", "private", "protected", "virtual", "object", "metaclass"})

#: At most this many definitions are shown for one call (overloads, same-named candidates).
_MAX_CALLEES = 2
#: An unresolved name is looked up in the whole workspace only when this few files define it.
_MAX_UNSCOPED_FILES = 2


def _visible_files(
    index: RepositoryIndex, rel: str, language: str, resolution: Resolution
) -> set[str]:
    """Files whose names this file sees: its imports, its package, and one hop further.

    The hop follows what the imported files import (a header's own includes, a
    package's re-exports) and, for a header, the file that implements it.
    """
    direct = [f for f in resolution.files() if f != rel]
    visible = set(direct)
    for record in index.records(direct):
        visible.update(implementation_files(index, record.path, record.language))
        if record.imports and record.language in _ONWARD_LANGUAGES:
            onward = resolve_imports(index, record.path, record.language, record.imports)
            visible.update(onward.files())
    visible.discard(rel)
    return visible


def _enclosing_owners(parsed: ParsedFile, line: int) -> list[str]:
    """The classes, impls or receivers around the cursor, innermost first."""
    around = [d for d in parsed.definitions if d.start_line <= line <= d.end_line]
    around.sort(key=lambda d: d.start_line, reverse=True)
    owners: list[str] = []
    for definition in around:
        if definition.kind in CONTAINER_KINDS:
            owners.append(definition.name)
        if definition.parent:
            owners.append(definition.parent)
    return list(dict.fromkeys(owners))


def _with_bases(index: RepositoryIndex, family: str, owners: Sequence[str]) -> list[str]:
    """The owners and what they extend, two levels up: a method may be inherited."""
    found = list(owners)
    frontier = list(owners)
    for _ in range(2):
        following: list[str] = []
        for owner in frontier:
            for definition in index.definitions(owner):
                if (
                    definition.kind not in TYPE_KINDS
                    or spec_for(definition.language).family != family
                ):
                    continue
                for match in _BASES.finditer(definition.header):
                    written = next(g for g in match.groups() if g is not None)
                    for name in _BASE_NAME.findall(re.sub(r"<[^<>]*>", "", written)):
                        base = name.rsplit(".", 1)[-1]
                        if base not in found and base not in _NOT_BASES:
                            found.append(base)
                            following.append(base)
        frontier = following
    return found


def _type_names(index: RepositoryIndex, family: str, names: Sequence[str]) -> list[str]:
    """The names that are types here, with factory functions replaced by what they return."""
    types: list[str] = []
    for name in names:
        found = [d for d in index.definitions(name) if spec_for(d.language).family == family]
        if any(d.kind in TYPE_KINDS for d in found):
            types.append(name)
            continue
        for function in found:
            returned = return_type_name(function.header, name)
            if returned and returned not in ("Self", "self"):
                types.append(returned)
            elif returned and function.parent:
                types.append(function.parent)
    return list(dict.fromkeys(types))


def _qualifier_files(
    index: RepositoryIndex, rel: str, language: str, resolution: Resolution, site: CallSite
) -> set[str]:
    """Files a module/package qualifier names (``pkg.F(``, ``mod.f(``, ``ns.f(``)."""
    if not site.qualifier:
        return set()
    root = site.qualifier[0]
    files: set[str] = set()
    for resolved in resolution.imports:
        written = resolved.spec.spec
        if (
            root in resolved.spec.names
            or written.rsplit("/", 1)[-1] == root  # Go: the package's last path segment
            or (resolved.spec.kind == "module" and written.split(".")[0] == root)  # import a.b
        ):
            files.update(resolved.files)
    if not files and root in ("crate", "self", "super"):
        # Rust: a path written out at the call, resolved as a ``use`` of it would be.
        path = "::".join((*site.qualifier, site.name))
        files.update(
            resolve_imports(index, rel, language, (ImportSpec(path, (site.name,), "use"),)).files()
        )
    if files:
        for record in index.records(sorted(files)):
            files.update(implementation_files(index, record.path, record.language))
    files.discard(rel)
    return files


def _callee_definitions(
    index: RepositoryIndex,
    rel: str,
    language: str,
    parsed: ParsedFile,
    text: str,
    offset: int,
    resolution: Resolution,
) -> list[tuple[Definition, tuple[Definition, ...]]]:
    """Where the name being called is defined, by the strongest evidence available.

    In order: methods of the receiver's type (as the file states it, or the
    enclosing class for ``self``/``this``), definitions in the module a qualifier
    names, definitions in files this file sees, and last a name that only one or
    two files of the workspace define.
    """
    site = call_at(text, offset)
    if site is None:
        return []
    family = spec_for(language).family
    candidates = [
        d
        for d in index.definitions(site.name)
        if d.path != rel and spec_for(d.language).family == family
    ]
    if not candidates:
        return []
    picks: list[Definition] = []
    owner_rank: dict[str, int] = {}
    receiver = site.receiver
    line = text.count("\n", 0, offset)
    seen: set[str] | None = None

    def visible() -> set[str]:
        nonlocal seen
        if seen is None:
            seen = _visible_files(index, rel, language, resolution)
        return seen

    if receiver:
        if receiver in SELF_NAMES:
            owners = _enclosing_owners(parsed, line)
        elif any(d.kind in TYPE_KINDS for d in index.definitions(receiver)):
            owners = [receiver]  # Type.static(, Type::assoc(
        else:
            owners = _type_names(index, family, receiver_type_names(text, offset, receiver))
        owners = _with_bases(index, family, owners)
        owner_rank = {owner: i for i, owner in reversed(list(enumerate(owners)))}
        picks = [d for d in candidates if d.parent and d.parent in owner_rank]
        if len({d.path for d in picks}) > 1:
            # Same-named types elsewhere: the one this file sees.
            picks = [d for d in picks if d.path in visible()] or picks
        if not picks:
            module = _qualifier_files(index, rel, language, resolution, site)
            picks = [d for d in candidates if d.path in module and not d.parent]
    if not picks and not receiver:
        # An import that names it (``from m import f``, ``use crate::m::f``, a static import).
        named = {
            path
            for resolved in resolution.imports
            if site.name in resolved.spec.names
            for path in resolved.files
        }
        picks = [d for d in candidates if d.path in named]
    if not picks:
        pool = [d for d in candidates if d.path in visible()]
        if not pool and len({d.path for d in candidates}) <= _MAX_UNSCOPED_FILES:
            pool = candidates
        if not receiver:
            # A plain call names a function or a type, or a method of the enclosing class.
            owners = _with_bases(index, family, _enclosing_owners(parsed, line))
            plain = [d for d in pool if not d.parent or d.parent in owners]
            pool = plain or pool
        picks = pool
    if site.constructor or (picks and any(d.kind in TYPE_KINDS for d in picks)):
        types = [d for d in picks if d.kind in TYPE_KINDS]
        picks = types or picks
    # A definition with a body (the .c file) and its declaration (the header) both help;
    # the closest files first.
    order = {path: i for i, path in enumerate(_by_closeness([d.path for d in picks], rel))}
    picks.sort(
        key=lambda d: (
            owner_rank.get(d.parent, len(owner_rank)),
            order[d.path],
            not d.has_body,
            d.start_line,
        )
    )
    chosen: list[tuple[Definition, tuple[Definition, ...]]] = []
    for definition in picks[:_MAX_CALLEES]:
        record = index.file(definition.path)
        chosen.append((definition, record.definitions if record is not None else (definition,)))
    return chosen


def _by_closeness(paths: Sequence[str], rel: str) -> list[str]:
    remaining = list(dict.fromkeys(paths))
    ordered: list[str] = []
    while remaining:
        best = closest(remaining, rel)
        assert best is not None
        ordered.append(best)
        remaining.remove(best)
    return ordered


def callee_chunks(
    index: RepositoryIndex,
    path: str | os.PathLike[str],
    text: str,
    offset: int,
    *,
    small_body_lines: int = 12,
) -> list[ContextChunk]:
    """Only the definitions of the call at the cursor: cheap enough for every keystroke.

    Used when the rest of the context is kept (its tokens are cached) and only
    the call being written is new.
    """
    offset = max(0, min(offset, len(text)))
    language = language_for_path(PurePath(path))
    rel = index.relative(path)
    if language is None or rel is None or call_at(text, offset) is None:
        return []
    if not index.is_allowed(path):
        return []
    parsed = index.parse_text(display_path(index, path), text)
    if parsed is None:
        return []
    resolution = resolve_imports(index, rel, language, parsed.imports, parsed.package)
    callees = _callee_definitions(index, rel, language, parsed, text, offset, resolution)
    return _rendered(callees, PRIORITY_CALLEE, "callee", small_body_lines)


def _rendered(
    items: Sequence[tuple[Definition, tuple[Definition, ...]]],
    priority: int,
    source: str,
    small_body_lines: int,
) -> list[ContextChunk]:
    """Definitions as chunks of one source, ranked in the order given."""
    return [
        _chunk(
            priority,
            definition,
            render_definition(definition, siblings, small_body_lines),
            source,
            rank,
        )
        for rank, (definition, siblings) in enumerate(items)
    ]


def _definition_chunks(
    index: RepositoryIndex,
    rel: str,
    language: str,
    parsed: ParsedFile,
    text: str,
    offset: int,
    options: RetrievalOptions,
) -> list[ContextChunk]:
    """The imported definitions used near the cursor, then the types they mention."""
    chunks: list[ContextChunk] = []
    near = _near_tokens(text, offset, options.near_lines, parsed.imports)
    resolution = resolve_imports(index, rel, language, parsed.imports, parsed.package)
    callees = _callee_definitions(index, rel, language, parsed, text, offset, resolution)
    chunks.extend(_rendered(callees, PRIORITY_CALLEE, "callee", options.small_body_lines))
    shown = {(d.path, d.start_line) for d, _ in callees}
    imported = [
        item
        for item in _imported_definitions(index, rel, resolution, near)
        if (item[0].path, item[0].start_line) not in shown
    ][: options.max_definitions]
    chunks.extend(_rendered(imported, PRIORITY_IMPORTED, "import", options.small_body_lines))
    rendered = [(chunk.text, chunk.path) for chunk in chunks]
    taken = {(d.path, d.start_line) for d, _ in imported} | shown
    preferred = set(resolution.files())
    types = _type_definitions(
        index,
        rel,
        family=spec_for(language).family,
        texts=rendered,
        preferred=preferred,
        taken=taken,
        skip_names={d.name for d, _ in imported} | {d.name for d, _ in callees},
        limit=options.max_types,
    )
    chunks.extend(_rendered(types, PRIORITY_TYPES, "type", options.small_body_lines))
    return chunks


def retrieve(
    index: RepositoryIndex,
    path: str | os.PathLike[str],
    text: str,
    offset: int,
    recent: Sequence[RecentFile] = (),
    *,
    options: RetrievalOptions | None = None,
) -> list[ContextChunk]:
    """Context chunks for a cursor, each with its priority and selection rank.

    ``text`` is the current document as the editor has it (it wins over the
    disk and over the index).  Nothing is returned for a file that itself must
    never reach a prompt.
    """
    options = options or RetrievalOptions()
    offset = max(0, min(offset, len(text)))
    if not index.is_allowed(path):
        return []
    current = display_path(index, path)
    rel = index.relative(path)
    language = language_for_path(PurePath(path))
    chunks: list[ContextChunk] = []
    parsed = index.parse_text(current, text) if language is not None else None
    if parsed is not None and rel is not None and language is not None:
        chunks.extend(_definition_chunks(index, rel, language, parsed, text, offset, options))
    if parsed is not None and len(text) > options.prefix_chars + options.suffix_chars:
        outline = _outline(parsed.definitions, text, offset, options)
        if outline is not None:
            body, first, last = outline
            chunks.append(ContextChunk(PRIORITY_OUTLINE, current, first, last, body, "outline"))
    chunks.extend(_neighbours(index, current, text, offset, recent=recent, options=options))
    return chunks


def _chunk(
    priority: int, definition: Definition, body: str, source: str, rank: int
) -> ContextChunk:
    return ContextChunk(
        priority=priority,
        path=definition.path,
        start_line=definition.start_line,
        end_line=definition.end_line,
        text=body,
        source=source,
        name=definition.name,
        rank=float(rank),
    )


def build_context_chunks(
    index: RepositoryIndex,
    path: str | os.PathLike[str],
    text: str,
    offset: int,
    recent: Sequence[RecentFile] = (),
    budget_tokens: int = 1024,
    *,
    count_tokens: TokenCounter = estimate_tokens,
    options: RetrievalOptions | None = None,
    include_current_path: bool = True,
    extra: Sequence[ContextChunk] = (),
    header: str = "",
) -> PackedContext:
    """Retrieve and pack; the structured result keeps the chosen chunks for inspection.

    ``extra`` chunks (recent edits) are ranked with the retrieved ones by priority;
    ``header`` is what path lines start with (default: the file's comment prefix).
    """
    chunks = retrieve(index, path, text, offset, recent, options=options) + list(extra)
    current = display_path(index, path) if include_current_path else None
    return pack_chunks(
        chunks,
        budget_tokens,
        header or comment_prefix(PurePath(path)),
        count_tokens=count_tokens,
        current_path=current,
    )


def build_context(
    index: RepositoryIndex,
    path: str | os.PathLike[str],
    text: str,
    offset: int,
    recent: Sequence[RecentFile] = (),
    budget_tokens: int = 1024,
    *,
    count_tokens: TokenCounter = estimate_tokens,
    options: RetrievalOptions | None = None,
    include_current_path: bool = True,
) -> str:
    """Text to put before the FIM prefix: path-labelled chunks, then the current path.

    Empty when there is nothing to add, so the prompt is then unchanged.
    """
    return build_context_chunks(
        index,
        path,
        text,
        offset,
        recent,
        budget_tokens,
        count_tokens=count_tokens,
        options=options,
        include_current_path=include_current_path,
    ).text


__all__ = (
    "ContextChunk",
    "PackedContext",
    "RecentFile",
    "RetrievalOptions",
    "build_context",
    "build_context_chunks",
    "callee_chunks",
    "render_definition",
    "retrieve",
)

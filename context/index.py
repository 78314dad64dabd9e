"""The repository index: per-file records plus lookups by name, directory and package.

A file watcher thread updates the index while completion requests read it, so
every read and write of the maps goes through one lock; the records themselves
are immutable, so readers may use them after the lock is released.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .errors import WorkspaceError
from .languages import SPECS, grammar, language_for_path, spec_for
from .symbols import Definition, ImportSpec, ParsedFile, parse_source
from .tokens import line_token_sets
from .workspace import (
    HARD_MAX_FILE_BYTES,
    WorkspaceFilter,
    WorkspaceOptions,
    decode_source,
    file_limit,
    iter_source_files,
    open_regular,
    read_source,
)

_PARSE_CACHE_SIZE = 32
#: Files walked between progress callbacks during a (re)scan.
_PROGRESS_EVERY = 200
_K = TypeVar("_K")


@dataclass(frozen=True, slots=True)
class FileRecord:
    """What the index remembers about one file (never its syntax tree or full text)."""

    path: str
    language: str
    size: int
    mtime_ns: int
    line_count: int
    definitions: tuple[Definition, ...]
    imports: tuple[ImportSpec, ...]
    package: str


@dataclass(frozen=True)
class IndexStats:
    files: int
    definitions: int
    build_seconds: float
    #: Resident memory growth while the index was built (bytes; 0 if unknown).
    memory_bytes: int
    languages: dict[str, int]


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0


def _dirname(rel: str) -> str:
    return rel.rsplit("/", 1)[0] if "/" in rel else ""


def _basename(rel: str) -> str:
    return rel.rsplit("/", 1)[-1]


class RepositoryIndex:
    """Definitions and imports of every indexable file under one workspace root."""

    def __init__(self, root: str | os.PathLike[str], options: WorkspaceOptions | None = None):
        root_path = Path(root).resolve()
        if not root_path.is_dir():
            raise WorkspaceError(f"workspace root {root_path} is not a directory")
        self.root = root_path
        self.workspace = WorkspaceFilter(root_path, options)
        self._lock = threading.RLock()
        self._files: dict[str, FileRecord] = {}
        self._by_name: dict[str, list[Definition]] = {}
        self._by_basename: dict[str, set[str]] = {}
        self._by_dir: dict[str, set[str]] = {}
        self._dirs_by_basename: dict[str, set[str]] = {}
        self._by_package: dict[tuple[str, str], set[str]] = {}
        self._parsed: OrderedDict[tuple[str, int, int], ParsedFile] = OrderedDict()
        self._tokens: OrderedDict[tuple[str, int, int], tuple[frozenset[str], ...]] = OrderedDict()
        self.build_seconds = 0.0
        self.memory_bytes = 0
        #: Directories at ``MAX_DEPTH`` whose subdirectories the last walk left out.
        self.too_deep: tuple[str, ...] = ()

    # -- building -----------------------------------------------------------

    @classmethod
    def build(
        cls,
        root: str | os.PathLike[str],
        options: WorkspaceOptions | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> RepositoryIndex:
        """Index a whole workspace (one parse per file; trees are not kept)."""
        index = cls(root, options)
        index.rescan(progress)
        return index

    def rescan(self, progress: Callable[[int], None] | None = None) -> None:
        """Walk the workspace again: parse new or changed files, drop vanished ones.

        Also the way to apply changed .gitignore rules or settings.
        """
        started = time.perf_counter()
        rss_before = _rss_bytes()
        for language in SPECS:
            grammar(language)  # loaded up front so memory growth counts the records only
        seen: set[str] = set()
        too_deep: list[str] = []
        for rel, path, size in iter_source_files(self.workspace, too_deep):
            seen.add(rel)
            if progress is not None and len(seen) % _PROGRESS_EVERY == 0:
                progress(len(seen))
            with self._lock:
                old = self._files.get(rel)
            if old is not None and old.mtime_ns == 0:
                continue  # text of an open document: the editor's copy wins over disk
            try:
                mtime_ns = path.stat().st_mtime_ns
            except OSError:
                continue
            if old is not None and old.size == size and old.mtime_ns == mtime_ns:
                continue
            data = read_source(path, self.workspace.options.max_file_bytes)
            if data is None:
                self._remove(rel)
                continue
            self._store(self._record(rel, data, mtime_ns))
        with self._lock:
            gone = [rel for rel in self._files if rel not in seen]
        for rel in gone:
            self._remove(rel)
        self.too_deep = tuple(too_deep)
        self.build_seconds = time.perf_counter() - started
        self.memory_bytes = max(0, _rss_bytes() - rss_before)

    def _record(self, rel: str, data: bytes, mtime_ns: int) -> FileRecord:
        language = language_for_path(rel)
        assert language is not None
        parsed = parse_source(language, rel, data)
        return FileRecord(
            path=rel,
            language=language,
            size=len(data),
            mtime_ns=mtime_ns,
            line_count=data.count(b"\n") + 1,
            definitions=parsed.definitions,
            imports=parsed.imports,
            package=parsed.package,
        )

    # -- incremental updates ------------------------------------------------

    def update_file(self, path: str | os.PathLike[str], text: str | None = None) -> bool:
        """Re-index one file from ``text`` (an open document) or from disk.

        Returns whether the file is now in the index; files that became ignored,
        secret, binary, oversized or unreadable are dropped from it.
        """
        rel = self.workspace.relative(path)
        if rel is None:
            return False
        if _basename(rel) == ".gitignore":
            self.workspace.invalidate(_dirname(rel))
            self.rescan()
            return False
        if language_for_path(rel) is None or not self.workspace.allows(rel):
            self._remove(rel)
            return False
        limit = file_limit(self.workspace.options)
        data: bytes | None = None
        mtime_ns = 0
        if text is None:
            # What the first walk would read: a regular file, reached without a
            # symlink, neither FIFO nor link out of the workspace.
            found = open_regular(self.root / rel, limit) if self.workspace.unlinked(rel) else None
            if found is not None and decode_source(found[0]) is not None:
                data, mtime_ns = found
        elif len(text) <= limit and "\x00" not in text[:8192]:
            data = text.encode("utf-8", errors="surrogatepass")
            if len(data) > limit:
                data = None
        if text is not None and data is None:
            self._over_cap(rel, len(text))
        if data is None:
            self._remove(rel)
            return False
        self._store(self._record(rel, data, mtime_ns))
        return True

    def _over_cap(self, rel: str, size: int) -> None:
        """Say once that an open document is too big to index despite the setting."""
        if HARD_MAX_FILE_BYTES < size <= self.workspace.options.max_file_bytes:
            self.workspace.reporter.once(
                f"size\0{rel}",
                "%s: %.1f MB, over the %.0f MB ever indexed (HARD_MAX_FILE_BYTES); skipped",
                rel,
                size / 1e6,
                HARD_MAX_FILE_BYTES / 1e6,
            )

    def remove_file(self, path: str | os.PathLike[str]) -> bool:
        """Forget a deleted file; returns whether it was indexed."""
        rel = self.workspace.relative(path)
        return rel is not None and self._remove(rel)

    def _store(self, record: FileRecord) -> None:
        with self._lock:
            self._remove(record.path)
            rel = record.path
            self._files[rel] = record
            for definition in record.definitions:
                self._by_name.setdefault(definition.name, []).append(definition)
            self._by_basename.setdefault(_basename(rel), set()).add(rel)
            directory = _dirname(rel)
            members = self._by_dir.setdefault(directory, set())
            if not members:
                self._dirs_by_basename.setdefault(_basename(directory), set()).add(directory)
            members.add(rel)
            if record.package:
                key = (spec_for(record.language).family, record.package)
                self._by_package.setdefault(key, set()).add(rel)

    def _remove(self, rel: str) -> bool:
        with self._lock:
            record = self._files.pop(rel, None)
            if record is None:
                return False
            for definition in record.definitions:
                same = self._by_name.get(definition.name)
                if same is None:
                    continue
                kept = [d for d in same if d.path != rel]
                if kept:
                    self._by_name[definition.name] = kept
                else:
                    del self._by_name[definition.name]
            _discard(self._by_basename, _basename(rel), rel)
            directory = _dirname(rel)
            if _discard(self._by_dir, directory, rel):
                _discard(self._dirs_by_basename, _basename(directory), directory)
            if record.package:
                key = (spec_for(record.language).family, record.package)
                _discard(self._by_package, key, rel)
            return True

    # -- reads ----------------------------------------------------------------

    def relative(self, path: str | os.PathLike[str]) -> str | None:
        return self.workspace.relative(path)

    def is_allowed(self, path: str | os.PathLike[str]) -> bool:
        """Whether a file may appear in a prompt (not ignored, excluded or secret)."""
        return self.workspace.allows(path)

    def file(self, rel: str) -> FileRecord | None:
        with self._lock:
            return self._files.get(rel)

    def files(self) -> list[str]:
        with self._lock:
            return sorted(self._files)

    def __len__(self) -> int:
        with self._lock:
            return len(self._files)

    def __contains__(self, rel: object) -> bool:
        with self._lock:
            return rel in self._files

    def definitions(self, name: str) -> list[Definition]:
        """Every indexed definition called ``name``, sorted by path then line."""
        with self._lock:
            found = list(self._by_name.get(name, ()))
        return sorted(found, key=lambda d: (d.path, d.start_line))

    def files_in_dir(self, directory: str) -> list[str]:
        with self._lock:
            return sorted(self._by_dir.get(directory, ()))

    def files_with_suffix(self, suffix: str) -> list[str]:
        """Files whose path is ``suffix`` or ends with ``/suffix``."""
        with self._lock:
            candidates = list(self._by_basename.get(_basename(suffix), ()))
        return sorted(p for p in candidates if p == suffix or p.endswith("/" + suffix))

    def dirs_with_suffix(self, suffix: str) -> list[str]:
        """Directories holding indexed files whose path is ``suffix`` or ends with it."""
        suffix = suffix.strip("/")
        with self._lock:
            candidates = list(self._dirs_by_basename.get(_basename(suffix), ()))
        return sorted(d for d in candidates if d == suffix or d.endswith("/" + suffix))

    def files_with_package(self, family: str, package: str) -> list[str]:
        with self._lock:
            return sorted(self._by_package.get((family, package), ()))

    def parse_text(self, rel: str, text: str) -> ParsedFile | None:
        """Definitions and imports of an open document's current text (cached)."""
        language = language_for_path(rel)
        if language is None or len(text) > HARD_MAX_FILE_BYTES:
            return None  # tree-sitter would hold the GIL for seconds
        key = (rel, hash(text), len(text))
        with self._lock:
            cached = self._parsed.get(key)
            if cached is not None:
                self._parsed.move_to_end(key)
                return cached
        data = text.encode("utf-8", errors="surrogatepass")
        if len(data) > HARD_MAX_FILE_BYTES:
            return None
        parsed = parse_source(language, rel, data)
        with self._lock:
            self._parsed[key] = parsed
            while len(self._parsed) > _PARSE_CACHE_SIZE:
                self._parsed.popitem(last=False)
        return parsed

    def line_tokens(self, key: str, text: str) -> tuple[frozenset[str], ...]:
        """Identifier sets per line of a recently used document (cached by content)."""
        if len(text) > HARD_MAX_FILE_BYTES:
            return ()
        cache_key = (key, hash(text), len(text))
        with self._lock:
            cached = self._tokens.get(cache_key)
            if cached is not None:
                self._tokens.move_to_end(cache_key)
                return cached
        tokens = line_token_sets(text)
        with self._lock:
            self._tokens[cache_key] = tokens
            while len(self._tokens) > _PARSE_CACHE_SIZE:
                self._tokens.popitem(last=False)
        return tokens

    def records(self, rels: Iterable[str]) -> list[FileRecord]:
        with self._lock:
            return [self._files[r] for r in rels if r in self._files]


def _discard(mapping: dict[_K, set[str]], key: _K, value: str) -> bool:
    """Remove ``value`` from a set-valued map; returns whether the key's set emptied."""
    members = mapping.get(key)
    if members is None:
        return False
    members.discard(value)
    if not members:
        del mapping[key]
        return True
    return False


def index_stats(index: RepositoryIndex) -> IndexStats:
    """Sizes and costs of an index, for logs and the benchmark."""
    languages: dict[str, int] = {}
    definitions = 0
    for record in index.records(index.files()):
        languages[record.language] = languages.get(record.language, 0) + 1
        definitions += len(record.definitions)
    return IndexStats(
        files=len(index),
        definitions=definitions,
        build_seconds=index.build_seconds,
        memory_bytes=index.memory_bytes,
        languages=dict(sorted(languages.items())),
    )

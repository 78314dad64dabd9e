"""Which files of a workspace may ever reach a prompt, and reading them safely.

Ignored, excluded and secret files are filtered before they are read, so their
content can never end up in the index, let alone in a prompt.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pathspec import GitIgnoreSpec

from .languages import language_for_path

#: Files that hold credentials; never indexed, never shown to the model.
DEFAULT_SECRET_PATTERNS: tuple[str, ...] = (
    ".env*",
    "*.pem",
    "*.key",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "credentials",
    "credentials.json",
    ".netrc",
    "_netrc",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    ".htpasswd",
)
#: Directories that are never source (VCS data, dependency and cache trees).
ALWAYS_SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
    }
)
DEFAULT_MAX_FILE_BYTES = 1_000_000
_BINARY_PROBE = 8192


@dataclass(frozen=True)
class WorkspaceOptions:
    """User settings for what is indexed; ``exclude`` uses .gitignore glob syntax."""

    exclude: tuple[str, ...] = ()
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    secret_patterns: tuple[str, ...] = DEFAULT_SECRET_PATTERNS
    respect_gitignore: bool = True


class WorkspaceFilter:
    """Decides whether a path may be indexed; nested .gitignore files are honoured."""

    def __init__(self, root: Path, options: WorkspaceOptions | None = None) -> None:
        self.root = root
        self.options = options or WorkspaceOptions()
        self._never = GitIgnoreSpec.from_lines(
            [*self.options.secret_patterns, *self.options.exclude]
        )
        self._specs: dict[str, GitIgnoreSpec | None] = {}
        self._lock = threading.Lock()

    def invalidate(self, directory: str | None = None) -> None:
        """Forget cached .gitignore rules (all, or those of one relative directory)."""
        with self._lock:
            if directory is None:
                self._specs.clear()
            else:
                self._specs.pop(directory, None)

    def _spec(self, directory: str) -> GitIgnoreSpec | None:
        with self._lock:
            if directory in self._specs:
                return self._specs[directory]
        lines: list[str] = []
        base = self.root / directory if directory else self.root
        sources = [base / ".gitignore"]
        if not directory:
            sources.append(base / ".git" / "info" / "exclude")
        for source in sources:
            try:
                lines.extend(source.read_text(encoding="utf-8", errors="replace").splitlines())
            except OSError:
                continue
        spec = GitIgnoreSpec.from_lines(lines) if lines else None
        with self._lock:
            self._specs[directory] = spec
        return spec

    def _gitignored(self, rel: str, is_dir: bool) -> bool:
        """Whether the .gitignore files of ``rel``'s ancestors ignore it (last match wins)."""
        if not self.options.respect_gitignore:
            return False
        parts = rel.split("/")
        ignored = False
        for depth in range(len(parts)):
            directory = "/".join(parts[:depth])
            spec = self._spec(directory)
            if spec is None:
                continue
            relative = "/".join(parts[depth:]) + ("/" if is_dir else "")
            result = spec.check_file(relative)
            if result.include is not None:
                ignored = result.include
        return ignored

    def never(self, rel: str) -> bool:
        """Secret or user-excluded, wherever the file lives."""
        return self._never.match_file(rel)

    def skip_dir(self, rel: str) -> bool:
        name = rel.rsplit("/", 1)[-1]
        if name in ALWAYS_SKIPPED_DIRS:
            return True
        return self._never.match_file(rel + "/") or self._gitignored(rel, True)

    def skip_file(self, rel: str) -> bool:
        return self.never(rel) or self._gitignored(rel, False)

    def relative(self, path: str | os.PathLike[str]) -> str | None:
        """Workspace-relative POSIX path, or None for a path outside the workspace."""
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        try:
            rel = os.path.relpath(os.path.abspath(candidate), self.root)
        except ValueError:  # another drive on Windows
            return None
        rel = PurePosixPath(Path(rel).as_posix()).as_posix()
        if rel == "." or rel.startswith("../") or rel == "..":
            return None
        return rel

    def allows(self, path: str | os.PathLike[str]) -> bool:
        """Full check for one path: inside the workspace, every ancestor is checked too."""
        rel = self.relative(path)
        if rel is None:
            return not self.never(Path(path).name) and not self.never(Path(path).as_posix())
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            if self.skip_dir("/".join(parts[:depth])):
                return False
        return not self.skip_file(rel)


@functools.lru_cache(maxsize=32)
def _spec(patterns: tuple[str, ...]) -> GitIgnoreSpec:
    return GitIgnoreSpec.from_lines(patterns)


def blocks_completion(
    path: str | os.PathLike[str],
    root: Path | None,
    exclude: tuple[str, ...] = (),
    allow: tuple[str, ...] = (),
    secret_patterns: tuple[str, ...] = DEFAULT_SECRET_PATTERNS,
) -> bool:
    """Whether a file is secret or excluded, so that completing in it would send it to a model.

    Inside the workspace the path relative to ``root`` is matched (so ``config/``
    patterns work); elsewhere only the file name, since the directories above a
    workspace are not the user's patterns' business.  ``allow`` (same syntax)
    lets matching files be completed after all.
    """
    candidate = Path(path)
    name = candidate.name
    rel: str | None = None
    if root is not None:
        try:
            rel = candidate.resolve().relative_to(root).as_posix()
        except (OSError, ValueError):
            rel = None
    target = rel if rel is not None else name
    if allow and _spec(allow).match_file(target):
        return False
    return _spec((*secret_patterns, *exclude)).match_file(target)


def iter_source_files(workspace: WorkspaceFilter) -> Iterator[tuple[str, Path, int]]:
    """(relative path, absolute path, size) of indexable source files, sorted per directory."""
    root = workspace.root
    limit = workspace.options.max_file_bytes
    stack: list[tuple[str, Path]] = [("", root)]
    while stack:
        rel_dir, directory = stack.pop()
        try:
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError:
            continue
        subdirs: list[tuple[str, Path]] = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                if entry.is_symlink():
                    continue
                if entry.is_dir():
                    if not workspace.skip_dir(rel):
                        subdirs.append((rel, Path(entry.path)))
                    continue
                if not entry.is_file() or language_for_path(entry.name) is None:
                    continue
                size = entry.stat().st_size
            except OSError:
                continue
            if size > limit or workspace.skip_file(rel):
                continue
            yield rel, Path(entry.path), size
        stack.extend(reversed(subdirs))


def decode_source(data: bytes) -> str | None:
    """Text of a file, or None for binaries (a NUL byte early on) and non-UTF-8 files."""
    if b"\x00" in data[:_BINARY_PROBE]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def read_source(path: Path, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes | None:
    """Bytes of a text source file within the size limit, else None."""
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError:
        return None
    if len(data) > max_bytes or decode_source(data) is None:
        return None
    return data

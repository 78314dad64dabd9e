"""Which files of a workspace may ever reach a prompt, and reading them safely.

Ignored, excluded and secret files are filtered before they are read, so their
content can never end up in the index, let alone in a prompt.  A workspace may
be hostile: names that are not UTF-8, trees thousands of levels deep, symlinks
out of it, FIFOs, .gitignore lines git tolerates and pathspec rejects, files of
hundreds of megabytes.  None of them may crash, hang or leak anything.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import stat
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pathspec import GitIgnoreSpec

from .languages import language_for_path

log = logging.getLogger(__name__)

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
#: Files larger than this are never read or parsed, whatever ``context.maxFileBytes``
#: says: tree-sitter holds the GIL while it parses (the event loop stalls with it),
#: and a 62 MB file took 74 s and 3 GB to index.
HARD_MAX_FILE_BYTES = 8_000_000
#: Directories nested deeper than this below the root are neither indexed nor
#: watched (paths of 1,000 levels overflowed watchdog's recursive walk).
MAX_DEPTH = 64
_BINARY_PROBE = 8192
#: Opened without waiting (FIFOs, devices) and never through a final symlink.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def file_limit(options: WorkspaceOptions) -> int:
    """The size above which a file is skipped: the setting, within the hard cap."""
    return min(options.max_file_bytes, HARD_MAX_FILE_BYTES)


def decodable(path: str) -> bool:
    """Whether a path is real text: names that are not UTF-8 arrive surrogate-escaped,
    and such a path must never reach a prompt (encoding it there raises)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def dir_depth(rel: str) -> int:
    """How many directories below the root ``rel`` is (a top-level entry: 0)."""
    return rel.count("/")


class _Reporter:
    """Says each distinct problem once: the watcher re-reads the same files often."""

    def __init__(self) -> None:
        self._said: set[str] = set()
        self._lock = threading.Lock()

    def once(self, key: str, message: str, *args: object) -> None:
        with self._lock:
            if key in self._said:
                return
            self._said.add(key)
        log.warning(message, *args)


def compile_patterns(
    lines: Iterable[str], source: str, reporter: _Reporter | None = None
) -> GitIgnoreSpec:
    """A spec of the lines pathspec accepts; the others are skipped and said once.

    git itself ignores a lone ``!`` or ``\\`` and an empty range such as ``[z-a]``;
    pathspec raises on them, and one such line must not cost the whole file.
    """
    good: list[str] = []
    bad: list[str] = []
    for line in lines:
        try:
            GitIgnoreSpec.from_lines([line])
        except (ValueError, re.error):
            bad.append(line)
            continue
        good.append(line)
    if bad:
        shown = ", ".join(repr(line) for line in bad[:5]) + (" ..." if len(bad) > 5 else "")
        message = "%s: skipping %d pattern(s) that cannot be used: %s"
        if reporter is None:
            log.warning(message, source, len(bad), shown)
        else:
            reporter.once(f"{source}\0{bad}", message, source, len(bad), shown)
    return GitIgnoreSpec.from_lines(good)


def open_regular(path: str | os.PathLike[str], max_bytes: int) -> tuple[bytes, int] | None:
    """(bytes, mtime_ns) of a regular file of at most ``max_bytes``, else None.

    Never waits on a FIFO or device (``O_NONBLOCK``, then ``S_ISREG`` on the open
    descriptor) and never follows a symlink at the end of the path.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except (OSError, ValueError):  # ValueError: a NUL in the path
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    if size > max_bytes:
        return None  # grew while being read
    return b"".join(chunks), info.st_mtime_ns


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
        self.reporter = _Reporter()
        self._never = compile_patterns(
            [*self.options.secret_patterns, *self.options.exclude],
            "context.exclude",
            self.reporter,
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
            # A FIFO called .gitignore must not block: regular files only.
            found = open_regular(source, HARD_MAX_FILE_BYTES)
            if found is not None:
                lines.extend(found[0].decode("utf-8", errors="replace").splitlines())
        shown = f"{directory}/.gitignore" if directory else ".gitignore"
        spec = compile_patterns(lines, shown, self.reporter) if lines else None
        with self._lock:
            self._specs[directory] = spec
        return spec

    def _gitignored(self, rel: str, is_dir: bool) -> bool:
        """Whether the .gitignore files of ``rel``'s ancestors ignore it (last match wins)."""
        if not self.options.respect_gitignore:
            return False
        parts = rel.split("/")
        ignored = False
        directory = ""
        for depth in range(len(parts)):
            if depth:  # one join per level, not one per level and ancestor
                directory = f"{directory}/{parts[depth - 1]}" if directory else parts[0]
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
        if name in ALWAYS_SKIPPED_DIRS or not decodable(name):
            return True
        if dir_depth(rel) >= MAX_DEPTH:
            return True
        return self._never.match_file(rel + "/") or self._gitignored(rel, True)

    def skip_file(self, rel: str) -> bool:
        if not decodable(rel) or dir_depth(rel) > MAX_DEPTH:
            return True
        return self.never(rel) or self._gitignored(rel, False)

    def unlinked(self, rel: str) -> bool:
        """Whether no directory on the way from the root to ``rel`` is a symlink.

        The walk never follows symlinks; the watcher and the re-reads of closed
        documents must not either (a link out of the workspace would bring its
        target into prompts).
        """
        parent = self.root / rel.rsplit("/", 1)[0] if "/" in rel else self.root
        try:
            return os.path.realpath(parent) == str(parent)
        except (OSError, ValueError):
            return False

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
            shown = Path(path).as_posix()
            if not decodable(shown):
                return False
            return not self.never(Path(path).name) and not self.never(shown)
        if self.skip_file(rel):  # also bounds the depth before the loop below
            return False
        parts = rel.split("/")
        directory = ""
        for part in parts[:-1]:
            directory = f"{directory}/{part}" if directory else part
            if self.skip_dir(directory):
                return False
        return True


@functools.lru_cache(maxsize=32)
def _spec(patterns: tuple[str, ...], source: str) -> GitIgnoreSpec:
    return compile_patterns(patterns, source)


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
    if allow and _spec(allow, "context.completeExcluded").match_file(target):
        return False
    return _spec((*secret_patterns, *exclude), "context.exclude").match_file(target)


def iter_source_files(
    workspace: WorkspaceFilter, too_deep: list[str] | None = None
) -> Iterator[tuple[str, Path, int]]:
    """(relative path, absolute path, size) of indexable source files, sorted per directory.

    Iterative and bounded: directories deeper than ``MAX_DEPTH`` are not entered;
    those at the bound that hold subdirectories are appended to ``too_deep``.
    Symlinks, names that are not UTF-8 and anything but regular files are skipped.
    """
    root = workspace.root
    limit = file_limit(workspace.options)
    stack: list[tuple[str, Path]] = [("", root)]
    while stack:
        rel_dir, directory = stack.pop()
        try:
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError:
            continue
        depth = dir_depth(rel_dir) + 1 if rel_dir else 0
        subdirs: list[tuple[str, Path]] = []
        cut = False
        for entry in entries:
            if not decodable(entry.name):
                log.debug("skipping %r: the name is not UTF-8", entry.path)
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                if entry.is_symlink():
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if depth >= MAX_DEPTH:
                        cut = cut or entry.name not in ALWAYS_SKIPPED_DIRS
                        continue
                    if not workspace.skip_dir(rel):
                        subdirs.append((rel, Path(entry.path)))
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                if language_for_path(entry.name) is None:
                    continue
                size = entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
            if size > limit:
                if size <= workspace.options.max_file_bytes:
                    workspace.reporter.once(
                        f"size\0{rel}",
                        "%s: %.1f MB, over the %.0f MB ever indexed (HARD_MAX_FILE_BYTES); skipped",
                        rel,
                        size / 1e6,
                        HARD_MAX_FILE_BYTES / 1e6,
                    )
                continue
            if workspace.skip_file(rel):
                continue
            yield rel, Path(entry.path), size
        if cut and too_deep is not None:
            too_deep.append(rel_dir)
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
    """Bytes of a regular text source file within the size limit, else None."""
    found = open_regular(path, min(max_bytes, HARD_MAX_FILE_BYTES))
    if found is None or decode_source(found[0]) is None:
        return None
    return found[0]

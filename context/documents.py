"""Open documents with LSP positions (UTF-16, or UTF-8/32 when negotiated) mapped to offsets.

The server keeps its own copy of each open document so that the pure core never
depends on the protocol library, and so that edits that do not fit the document
are rejected instead of silently corrupting the text.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

from .errors import InvalidEditError, PositionOutOfRangeError

_NEWLINE = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Position:
    """A zero-based line and a character offset in code units (UTF-16 unless negotiated)."""

    line: int
    character: int


@dataclass(frozen=True)
class Range:
    start: Position
    end: Position


@dataclass(frozen=True)
class TextChange:
    """One content change; ``range`` None means the whole text is replaced."""

    text: str
    range: Range | None = None


UTF16 = "utf-16"
UTF8 = "utf-8"
UTF32 = "utf-32"
ENCODINGS = (UTF16, UTF8, UTF32)


def _units(char: str, encoding: str) -> int:
    code = ord(char)
    if encoding == UTF16:
        return 2 if code > 0xFFFF else 1
    if encoding == UTF8:
        return 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4
    return 1


def units_len(text: str, encoding: str = UTF16) -> int:
    """Length of ``text`` in the code units of ``encoding`` (UTF-16 by default)."""
    if text.isascii() or encoding == UTF32:
        return len(text)
    if encoding == UTF8:
        return len(text.encode("utf-8", errors="surrogatepass"))
    return len(text.encode("utf-16-le", errors="surrogatepass")) // 2


def units_to_index(line_text: str, character: int, encoding: str = UTF16) -> int:
    """Index into ``line_text`` for a column in code units, clamped to the line end.

    LSP says a character past the end of the line means the end of the line.  A
    column that falls inside a character's code units rounds up past it.
    """
    if character <= 0:
        return 0
    if line_text.isascii() or encoding == UTF32:
        return min(character, len(line_text))
    units = 0
    for index, char in enumerate(line_text):
        if units >= character:
            return index
        units += _units(char, encoding)
    return len(line_text)


def _line_starts(text: str) -> list[int]:
    return [0, *(m.end() for m in _NEWLINE.finditer(text))]


class LineIndex:
    """Offsets of line starts, kept in blocks so that an edit costs about its own size.

    A flat list would shift every later line start on each keystroke (a 20 MB
    document: hundreds of thousands of numbers per key).  Here the blocks after
    an edit only move their base; the lines inside the edit are found again.
    """

    BLOCK = 512

    def __init__(self, text: str) -> None:
        self._blocks: list[list[int]] = []
        self._bases: list[int] = []
        self._set(0, 0, _line_starts(text))

    def _set(self, first: int, last: int, starts: list[int]) -> None:
        """Replace blocks ``first:last`` by ``starts`` (absolute offsets), cut into blocks."""
        size = self.BLOCK
        chunks = [starts[i : i + size] for i in range(0, len(starts), size)]
        self._blocks[first:last] = chunks
        self._bases[first:last] = [0] * len(chunks)
        self._firsts = [b[0] + base for b, base in zip(self._blocks, self._bases, strict=True)]
        self._before = [0]
        for block in self._blocks:
            self._before.append(self._before[-1] + len(block))

    def __len__(self) -> int:
        return self._before[-1]

    def starts(self) -> list[int]:
        """Every line start, in order (for checks; O(lines))."""
        return [
            q + base for block, base in zip(self._blocks, self._bases, strict=True) for q in block
        ]

    def start(self, line: int) -> int:
        b = bisect_right(self._before, line) - 1
        return self._blocks[b][line - self._before[b]] + self._bases[b]

    def line_of(self, offset: int) -> int:
        """The line holding ``offset`` (the last line start at or before it)."""
        b = max(0, bisect_right(self._firsts, offset) - 1)
        block = self._blocks[b]
        return self._before[b] + bisect_right(block, offset - self._bases[b]) - 1

    def splice(self, text: str, start: int, end: int, new_end: int) -> None:
        """``text`` (already edited) had ``[start, end)`` replaced by ``[start, new_end)``.

        Whether offset p starts a line depends on the characters at p-1 and p,
        so line starts before ``start`` and after the edit's end + 1 keep their
        status; those in between are found again in the new text.
        """
        delta = new_end - end
        first = max(0, bisect_right(self._firsts, start - 1) - 1)
        last = max(first + 1, bisect_right(self._firsts, end))
        touched = [
            q + base
            for block, base in zip(self._blocks[first:last], self._bases[first:last], strict=True)
            for q in block
        ]
        head = [p for p in touched if p < start]
        tail = [q + delta for q in touched if q > end]
        lo = max(0, start - 1)
        middle = [
            m.end()
            for m in _NEWLINE.finditer(text, lo, new_end + 1)
            if start <= m.end() <= new_end and m.end() > 0
        ]
        for b in range(last, len(self._blocks)):
            self._bases[b] += delta
        starts = head + middle + tail
        if first == 0 and (not starts or starts[0] != 0):
            starts.insert(0, 0)
        self._set(first, last, starts)


@dataclass
class Document:
    """The text of one open document and its line index."""

    uri: str
    text: str
    version: int = 0
    language_id: str = ""
    encoding: str = UTF16
    _lines: LineIndex = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._lines = LineIndex(self.text)

    @property
    def line_count(self) -> int:
        return len(self._lines)

    def line_text(self, line: int) -> str:
        """The line without its line terminator."""
        start = self._lines.start(line)
        end = self._lines.start(line + 1) if line + 1 < len(self._lines) else len(self.text)
        return self.text[start:end].rstrip("\r\n")

    def offset_at(self, position: Position, *, clamp_line: bool = False) -> int:
        """String offset of an LSP position.

        A line past the end is an error unless ``clamp_line`` is set (then it
        means the end of the document); a character past the end of its line is
        the end of that line, as the LSP specification says.
        """
        if position.line < 0 or position.character < 0:
            raise PositionOutOfRangeError(
                f"position {position.line}:{position.character} is negative"
            )
        if position.line >= self.line_count:
            if clamp_line:
                return len(self.text)
            raise PositionOutOfRangeError(
                f"line {position.line} is past the end of {self.uri} "
                f"({self.line_count} lines; lines are zero-based)"
            )
        start = self._lines.start(position.line)
        return start + units_to_index(
            self.line_text(position.line), position.character, self.encoding
        )

    def position_at(self, offset: int) -> Position:
        offset = max(0, min(offset, len(self.text)))
        line = self._lines.line_of(offset)
        start = self._lines.start(line)
        return Position(line, units_len(self.text[start:offset], self.encoding))

    def apply(self, change: TextChange) -> tuple[int, int, int]:
        """Apply one change; a range that does not fit the document raises.

        Returns ``(start, end, new_end)``: the old text's ``[start, end)`` is now
        ``[start, new_end)`` (what the edit history needs to find the hunk).
        """
        if change.range is None:
            old_length = len(self.text)
            self.text = change.text
            self._lines = LineIndex(self.text)
            return 0, old_length, len(self.text)
        start_pos, end_pos = change.range.start, change.range.end
        if (end_pos.line, end_pos.character) < (start_pos.line, start_pos.character):
            raise InvalidEditError(
                f"edit range end {end_pos.line}:{end_pos.character} is before its start "
                f"{start_pos.line}:{start_pos.character}"
            )
        # An edit may end exactly one line past the last line at character 0
        # (the position just after a final newline in some clients).
        for pos in (start_pos, end_pos):
            if pos.line > self.line_count or (pos.line == self.line_count and pos.character > 0):
                raise InvalidEditError(
                    f"edit range {start_pos.line}:{start_pos.character}-"
                    f"{end_pos.line}:{end_pos.character} is outside {self.uri} "
                    f"({self.line_count} lines)"
                )
        start = self.offset_at(start_pos, clamp_line=True)
        end = self.offset_at(end_pos, clamp_line=True)
        self._splice(start, end, change.text)
        return start, end, start + len(change.text)

    def line_of(self, offset: int) -> int:
        """The line holding ``offset`` (zero-based), from the line index."""
        return self._lines.line_of(max(0, min(offset, len(self.text))))

    def _splice(self, start: int, end: int, new_text: str) -> None:
        self.text = self.text[:start] + new_text + self.text[end:]
        self._lines.splice(self.text, start, end, start + len(new_text))


class DocumentStore:
    """Open documents by URI; text of open documents wins over what is on disk."""

    def __init__(self, encoding: str = UTF16) -> None:
        self.encoding = encoding
        self._docs: dict[str, Document] = {}
        self._out_of_sync: set[str] = set()

    def open(self, uri: str, text: str, version: int = 0, language_id: str = "") -> Document:
        doc = Document(uri, text, version, language_id, self.encoding)
        self._docs[uri] = doc
        self._out_of_sync.discard(uri)
        return doc

    def close(self, uri: str) -> None:
        self._docs.pop(uri, None)
        self._out_of_sync.discard(uri)

    def get(self, uri: str) -> Document | None:
        return self._docs.get(uri)

    def __contains__(self, uri: object) -> bool:
        return uri in self._docs

    def is_out_of_sync(self, uri: str) -> bool:
        return uri in self._out_of_sync

    def change(
        self,
        uri: str,
        version: int,
        changes: list[TextChange],
        spans: list[tuple[int, int, int]] | None = None,
    ) -> Document:
        """Apply changes in order; each applied one's span is appended to ``spans``.

        After a rejected edit the copy no longer matches the client's, so later
        incremental edits are ignored until a full-text change or a reopen.
        """
        doc = self._docs.get(uri)
        if doc is None:
            raise InvalidEditError(f"didChange for {uri}, which is not open")
        for change in changes:
            if change.range is None:
                span = doc.apply(change)
                if spans is not None:
                    spans.append(span)
                self._out_of_sync.discard(uri)
                continue
            if uri in self._out_of_sync:
                continue
            try:
                span = doc.apply(change)
                if spans is not None:
                    spans.append(span)
            except InvalidEditError:
                self._out_of_sync.add(uri)
                raise
        doc.version = version
        return doc

    def uris(self) -> list[str]:
        return list(self._docs)

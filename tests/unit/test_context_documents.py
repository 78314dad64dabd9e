"""Document text and LSP positions: UTF-16 (and negotiated UTF-8/32) columns, edits."""

from __future__ import annotations

import random

import pytest

from codellama_lsp.context.documents import (
    UTF8,
    UTF16,
    UTF32,
    Document,
    DocumentStore,
    LineIndex,
    Position,
    Range,
    TextChange,
    _line_starts,
    units_len,
    units_to_index,
)
from codellama_lsp.context.errors import InvalidEditError, PositionOutOfRangeError

TEXT = "def f():\n    s = '😀 日本'  # x\r\n    return s\rend"


def test_units_len_per_encoding() -> None:
    assert units_len("a😀日", UTF16) == 4  # astral = surrogate pair
    assert units_len("a😀日", UTF8) == 1 + 4 + 3
    assert units_len("a😀日", UTF32) == 3


def test_units_to_index_rounds_into_pairs_and_clamps() -> None:
    line = "x😀y"
    assert units_to_index(line, 1, UTF16) == 1
    assert units_to_index(line, 3, UTF16) == 2  # after the emoji
    assert units_to_index(line, 2, UTF16) == 2  # inside the pair: rounds up past it
    assert units_to_index(line, 99, UTF16) == 3  # past the line end: the end
    assert units_to_index(line, 5, UTF8) == 2


def test_offset_and_position_round_trip_with_emoji_and_cjk() -> None:
    doc = Document("file:///x.py", TEXT)
    assert doc.line_count == 4
    line1 = doc.line_text(1)
    assert line1 == "    s = '😀 日本'  # x"
    # Column after "日" in UTF-16: 4+5 ("s = '") -> 9, emoji 2 units, space, 日.
    col = units_len("    s = '😀 日")
    assert col == 13
    offset = doc.offset_at(Position(1, col))
    assert TEXT[offset] == "本"
    assert doc.position_at(offset) == Position(1, col)
    # "\r" alone ends a line too.
    assert doc.offset_at(Position(3, 0)) == TEXT.index("end")


def test_position_past_end_of_document_is_an_error() -> None:
    doc = Document("file:///x.py", "a\nb")
    with pytest.raises(PositionOutOfRangeError, match="past the end"):
        doc.offset_at(Position(2, 0))
    with pytest.raises(PositionOutOfRangeError):
        doc.offset_at(Position(-1, 0))
    assert doc.offset_at(Position(1, 50)) == 3  # past the line end clamps


def test_incremental_edits_with_emoji() -> None:
    doc = Document("file:///x.py", "a😀b\nc")
    doc.apply(TextChange("Z", Range(Position(0, 3), Position(0, 3))))  # after the emoji
    assert doc.text == "a😀Zb\nc"
    doc.apply(TextChange("", Range(Position(0, 1), Position(0, 3))))  # delete the emoji
    assert doc.text == "aZb\nc"
    doc.apply(TextChange("1\n2\n", Range(Position(1, 0), Position(1, 1))))
    assert doc.text == "aZb\n1\n2\n"
    assert doc.line_count == 4
    doc.apply(TextChange("tail", Range(Position(3, 0), Position(3, 0))))
    assert doc.text.endswith("2\ntail")


@pytest.mark.parametrize(
    "edit",
    [
        Range(Position(5, 0), Position(5, 0)),  # lines past the end
        Range(Position(0, 0), Position(9, 0)),
        Range(Position(1, 0), Position(0, 0)),  # end before start
        Range(Position(2, 1), Position(2, 1)),  # one past the last line, not at column 0
    ],
)
def test_edits_outside_the_document_are_rejected(edit: Range) -> None:
    doc = Document("file:///x.py", "ab\ncd")
    with pytest.raises(InvalidEditError):
        doc.apply(TextChange("x", edit))
    assert doc.text == "ab\ncd"


def test_store_marks_out_of_sync_until_full_text() -> None:
    store = DocumentStore()
    store.open("u", "ab")
    with pytest.raises(InvalidEditError):
        store.change("u", 2, [TextChange("x", Range(Position(9, 0), Position(9, 0)))])
    assert store.is_out_of_sync("u")
    store.change("u", 3, [TextChange("y", Range(Position(0, 0), Position(0, 0)))])
    doc = store.get("u")
    assert doc is not None and doc.text == "ab"  # ignored while out of sync
    store.change("u", 4, [TextChange("fresh")])
    assert not store.is_out_of_sync("u") and doc.text == "fresh"


@pytest.mark.parametrize("block", [4, 512])
def test_line_index_matches_a_full_rescan_after_random_edits(
    block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LineIndex, "BLOCK", block)  # small blocks: edits across blocks
    rng = random.Random(7)
    alphabet = ["a", "😀", "日", "\n", "\r", "\r\n", " "]
    doc = Document("file:///r", "start\r\nmid\rend\n")
    for _ in range(400):
        start = rng.randrange(0, len(doc.text) + 1)
        end = rng.randrange(start, min(len(doc.text), start + 6) + 1)
        new = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 4)))
        a, b = doc.position_at(start), doc.position_at(end)
        # Only edits whose ends are real character boundaries, as clients send.
        if doc.offset_at(a) != start or doc.offset_at(b) != end:
            continue
        expected = doc.text[:start] + new + doc.text[end:]
        doc.apply(TextChange(new, Range(a, b)))
        assert doc.text == expected
        assert doc._lines.starts() == _line_starts(doc.text)
        for offset in range(0, len(doc.text) + 1, 7):
            line = doc.position_at(offset).line
            assert _line_starts(doc.text)[line] <= offset


def test_store_encoding_applies_to_new_documents() -> None:
    store = DocumentStore(UTF8)
    doc = store.open("u", "😀x")
    assert doc.offset_at(Position(0, 4)) == 1
    store.encoding = UTF16
    assert store.open("v", "😀x").offset_at(Position(0, 2)) == 1

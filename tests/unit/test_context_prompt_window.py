"""The prefix/suffix windows around the cursor are cut at line boundaries."""

from __future__ import annotations

import pytest

from codellama_lsp.context.prompt import fim_input, prefix_window, suffix_window

LINES = [f"line {i:02d} 😀\n" for i in range(20)]
TEXT = "".join(LINES)


def test_whole_document_when_it_fits() -> None:
    offset = TEXT.index("line 10") + 4
    fim = fim_input(TEXT, offset, 10_000, 10_000)
    assert fim.prefix + fim.suffix == TEXT
    assert fim.prefix.endswith("line")


def test_prefix_is_cut_at_a_line_start_and_keeps_the_cursor_line() -> None:
    offset = TEXT.index("line 10") + 4
    prefix = prefix_window(TEXT, offset, 30)
    assert prefix.startswith("line ") and prefix.endswith("line")
    assert len(prefix) <= 30 + 4
    assert TEXT[:offset].endswith(prefix)
    # A budget smaller than the cursor line still keeps the whole line start.
    assert prefix_window(TEXT, offset, 1) == "line"


def test_suffix_is_cut_after_a_newline_and_keeps_the_cursor_line() -> None:
    offset = TEXT.index("line 10") + 4
    suffix = suffix_window(TEXT, offset, 40)
    assert suffix.startswith(" 10 😀\n") and suffix.endswith("\n")
    assert len(suffix) <= 40
    assert suffix_window(TEXT, offset, 0) == " 10 😀\n"


def test_offset_outside_text_is_rejected() -> None:
    with pytest.raises(ValueError):
        fim_input("abc", 4, 10, 10)

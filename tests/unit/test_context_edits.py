"""Recent edits as context: hunks, coalescing, what is offered where, and its stability."""

from __future__ import annotations

from pathlib import Path

from codellama_lsp.context.assemble import assemble_view, plan_view
from codellama_lsp.context.documents import Document, Position, Range, TextChange
from codellama_lsp.context.edits import (
    EditHistory,
    RecentEdit,
    render_edit,
    union_span,
)
from codellama_lsp.context.index import RepositoryIndex
from codellama_lsp.context.workspace import WorkspaceOptions

A, B = "file:///ws/a.py", "file:///ws/b.py"
LINES = [f"line_{i} = {i}" for i in range(200)]
TEXT = "\n".join(LINES) + "\n"


class Editor:
    """A document and the history fed the way the server feeds it."""

    def __init__(self, history: EditHistory, key: str, text: str = TEXT) -> None:
        self.history, self.key = history, key
        self.doc = Document(key, text)
        self.now = 0.0

    def edit(self, line: int, col: int, end_line: int, end_col: int, text: str) -> None:
        before = self.doc.text
        span = self.doc.apply(
            TextChange(text, Range(Position(line, col), Position(end_line, end_col)))
        )
        self.history.record(
            self.key,
            f"/ws/{self.key.rsplit('/', 1)[-1]}",
            before,
            self.doc.text,
            span,
            self.now,
            self.doc.line_of,
        )

    def type(self, line: int, col: int, text: str) -> None:
        for i, ch in enumerate(text):
            self.edit(line, col + i, line, col + i, ch)


def offered(
    history: EditHistory, key: str | None, line: int, now: float = 1.0
) -> tuple[RecentEdit, ...]:
    return history.recent(key, line, now=now, limit=4, max_age_s=600)


def test_successive_keystrokes_coalesce_into_one_hunk() -> None:
    history = EditHistory()
    a = Editor(history, A)
    a.type(10, 11, "00")  # line_10 = 1000
    (edit,) = offered(history, B, 0)
    assert edit.before == ("line_10 = 10",) and edit.after == ("line_10 = 1000",)
    assert edit.line == 10 and edit.path == "/ws/a.py"


def test_an_edit_that_restores_the_text_drops_the_hunk() -> None:
    history = EditHistory()
    a = Editor(history, A)
    a.type(10, 11, "7")
    a.edit(10, 11, 10, 12, "")
    assert offered(history, B, 0) == ()


def test_whitespace_only_changes_are_not_offered() -> None:
    history = EditHistory()
    a = Editor(history, A)
    a.edit(10, 0, 10, 0, "    ")
    assert offered(history, B, 0) == ()


def test_near_the_cursor_is_left_out_far_and_other_files_are_offered() -> None:
    history = EditHistory()
    b = Editor(history, B)
    b.type(100, 0, "x")
    assert offered(history, B, 100) == ()  # being typed at the cursor
    assert offered(history, B, 130) == ()  # still near
    assert [e.line for e in offered(history, B, 170)] == [100]  # far
    assert [e.line for e in offered(history, A, 100)] == [100]  # another file


def test_typing_a_long_block_keeps_the_hunks_near_it_left_out() -> None:
    history = EditHistory()
    b = Editor(history, B)
    b.type(70, 0, "y")  # 30 lines above where the user writes
    b.type(100, 0, "def f():\n")
    for i in range(40):  # the cursor walks 40 lines down as the function grows
        b.type(101 + i, 0, f"    s{i} = {i}\n")
        assert offered(history, B, 102 + i) == ()


def test_order_is_by_last_change_and_time_does_not_reorder() -> None:
    history = EditHistory()
    a = Editor(history, A)
    a.type(10, 0, "a")
    a.type(150, 0, "b")
    a.type(80, 0, "c")
    first = offered(history, B, 0, now=1.0)
    assert [e.line for e in first] == [10, 150, 80]  # oldest first, the newest last
    assert offered(history, B, 0, now=300.0) == first
    a.type(10, 1, "a")  # edited again: it moves to the end
    assert [e.line for e in offered(history, B, 0)] == [150, 80, 10]


def test_limit_keeps_the_newest_and_expiry_drops_old_ones() -> None:
    history = EditHistory()
    a = Editor(history, A)
    for i, line in enumerate((10, 30, 50, 70, 90, 110)):
        a.now = float(i)
        a.type(line, 0, "z")
    assert [e.line for e in offered(history, B, 0, now=6.0)] == [50, 70, 90, 110]
    assert [e.line for e in history.recent(B, 0, now=603.5, limit=4, max_age_s=600)] == [90, 110]


def test_lines_inserted_above_shift_a_hunk_but_not_its_label() -> None:
    history = EditHistory()
    b = Editor(history, B)
    b.type(150, 0, "q")
    shown = offered(history, B, 10)
    b.type(10, 0, "new\nlines\n")  # typing at the cursor, far above the hunk
    assert offered(history, B, 12) == shown  # unchanged, byte for byte
    b.type(152, 1, "q")  # the region, where it is now
    (edit,) = offered(history, B, 12)
    assert edit.after == ("qqline_150 = 150",) and edit.before == ("line_150 = 150",)


def test_secret_files_are_never_offered() -> None:
    history = EditHistory()
    env = Editor(history, "file:///ws/.env", "TOKEN=abc\n")
    env.type(0, 6, "secret")
    assert offered(history, B, 0) != ()
    assert history.recent(B, 0, now=1, limit=4, max_age_s=600, allowed=lambda p: False) == ()


def test_big_regions_are_tracked_but_not_shown_and_renders_are_capped() -> None:
    history = EditHistory()
    a = Editor(history, A)
    a.edit(0, 0, 0, 0, "pasted\n" * 500)
    assert offered(history, B, 0) == ()
    wide = RecentEdit(A, "/ws/a.py", 3, ("x",), tuple("y" * 400 for _ in range(20)), 1, 0.0)
    text = render_edit(wide, "#", "a.py")
    assert len(text) <= 500 and text.startswith("# Recent edit in a.py:4\n# before:\n# x\n")


def test_unicode_and_whole_document_changes() -> None:
    history = EditHistory()
    doc = Document(A, "a = '😀'\nb = 2\n")
    before = doc.text
    span = doc.apply(TextChange("a = '😀日本'\nb = 2\n"))  # a full-text sync
    history.record(A, "/ws/a.py", before, doc.text, span, 0.0)
    (edit,) = offered(history, B, 0)
    assert edit.before == ("a = '😀'",) and edit.after == ("a = '😀日本'",)


def test_union_span_of_successive_changes() -> None:
    text = "0123456789"
    after = text[:2] + "AB" + text[3:]  # [2,3) -> "AB"
    after = after[:8] + after[9:]  # then delete one character further on
    span = union_span([(2, 3, 4), (8, 9, 8)])
    assert span is not None
    lo, old_hi, new_hi = span
    assert text[:lo] == after[:lo] and text[old_hi:] == after[new_hi:]


def test_the_prompt_keeps_the_hunks_while_typing_and_changes_on_an_edit_elsewhere(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.py").write_text(TEXT)
    index = RepositoryIndex.build(tmp_path, WorkspaceOptions())
    history = EditHistory()
    a = Editor(history, (tmp_path / "a.py").as_uri())
    b_text = "def main():\n    pass\n" + "\n".join(f"x{i} = {i}" for i in range(100)) + "\n"
    b = Document("file:///b", b_text)
    before = a.doc.text
    span = a.doc.apply(TextChange("line_3 = 'renamed'", Range(Position(3, 0), Position(3, 10))))
    history.record(a.key, str(tmp_path / "a.py"), before, a.doc.text, span, 0.0)
    plan = plan_view(
        2048,
        near_prefix_chars=800,
        near_suffix_chars=200,
        max_prefix_chars=6000,
        max_suffix_chars=2000,
        context_tokens=-1,
        text_before=20,
        text_after=len(b_text) - 20,
    )
    path = str(tmp_path / "b.py")
    offset, previous = 20, None
    texts = []
    for ch in "return 1":
        b.apply(TextChange(ch, Range(b.position_at(offset), b.position_at(offset))))
        offset += 1
        edits = history.recent("file:///b", 1, now=1.0, limit=4, max_age_s=600)
        parts = assemble_view(
            b.text,
            offset,
            plan,
            budget=2048,
            path=path,
            index=index,
            previous=previous,
            edits=edits,
        )
        assert "# Recent edit in a.py:4" in parts.context and "line_3 = 'renamed'" in parts.context
        texts.append(parts.context)
        previous = parts
    assert len(set(texts)) == 1  # typing changes nothing before the near windows
    before = a.doc.text
    span = a.doc.apply(TextChange("line_150 = 'new'", Range(Position(150, 0), Position(150, 14))))
    history.record(a.key, str(tmp_path / "a.py"), before, a.doc.text, span, 2.0)
    edits = history.recent("file:///b", 1, now=3.0, limit=4, max_age_s=600)
    parts = assemble_view(
        b.text, offset, plan, budget=2048, path=path, index=index, previous=previous, edits=edits
    )
    assert "line_150 = 'new'" in parts.context
    # The new hunk is appended: everything before the old edit section is unchanged.
    assert parts.context.startswith(texts[-1][: texts[-1].index("# Recent edit")])


def test_in_a_repository_level_prompt_each_hunk_is_a_section_of_its_file() -> None:
    from codellama_lsp.context.edits import edit_chunks, render_edits
    from codellama_lsp.context.packing import FILE_SEPARATOR, file_sections

    edits = [
        RecentEdit(A, "/ws/a.py", 3, ("x = 1",), ("x = 2",), 1, 0.0),
        RecentEdit(B, "/ws/b 😀.py", 9, (), ("y = 3",), 2, 1.0),
    ]
    chunks = edit_chunks(edits, "#", lambda p: p.rsplit("/", 1)[-1])
    sections = file_sections(render_edits(chunks, FILE_SEPARATOR))
    assert [path for path, _ in sections] == ["a.py", "b 😀.py"]  # oldest first
    assert sections[0][1].startswith("# Recent edit in a.py:4\n# before:\n# x = 1\n")
    assert sections[1][1].endswith("y = 3\n")
    assert FILE_SEPARATOR not in render_edits(chunks)  # the commented preamble

"""The "view" layout: a sticky view of the file before the FIM part, small near windows after."""

from __future__ import annotations

from codellama_lsp.context.assemble import (
    PromptBudget,
    ViewPlan,
    assemble_view,
    plan_view,
    prompt_budget,
)
from codellama_lsp.context.prompt import FileView, take_view, view_still_serves
from codellama_lsp.core.state import CompletionState

#: 400 numbered lines, some with emoji (several UTF-16 units, one character here).
LINES = "".join(
    f"def f{i}(x):  # 🙂 {i}\n    return x + {i}\n" if i % 7 == 0 else f"value_{i} = {i} * 2\n"
    for i in range(400)
)
PLAN = ViewPlan(
    near_prefix_chars=600,
    near_suffix_chars=200,
    before_chars=4000,
    after_chars=2000,
    context_tokens=0,
)


def line_end(text: str, line: int) -> int:
    """Offset of the end of ``line`` (before its newline)."""
    offset = 0
    for _ in range(line):
        offset = text.index("\n", offset) + 1
    return text.index("\n", offset)


def build(text: str, offset: int, previous=None, budget: int = 4096):  # type: ignore[no-untyped-def]
    return assemble_view(text, offset, PLAN, budget=budget, path="pkg/mod.py", previous=previous)


def test_a_cursor_move_inside_the_view_changes_only_the_near_windows() -> None:
    first = build(LINES, line_end(LINES, 200))
    assert first.view is not None and not first.context_kept
    assert "# Path: mod.py\n" in first.context and first.context.endswith("# Path: mod.py\n")
    for line in (190, 180, 215, 230, 201):
        moved = build(LINES, line_end(LINES, line), first)
        assert moved.context == first.context and moved.context_kept
        assert moved.prefix.endswith(LINES[: line_end(LINES, line)].rsplit("\n", 1)[1])
        assert len(moved.prefix) <= PLAN.near_prefix_chars + 100
        assert len(moved.suffix) <= PLAN.near_suffix_chars + 100
        first = moved


def test_typing_keeps_the_view_until_the_edits_add_up() -> None:
    offset = line_end(LINES, 200)
    parts = build(LINES, offset)
    text = LINES
    typed = 0
    while True:
        text = text[:offset] + "x" + text[offset:]
        offset += 1
        typed += 1
        nxt = build(text, offset, parts)
        if not nxt.context_kept:
            break
        assert nxt.context == parts.context
        parts = nxt
    # Renewed after about half a near window of edits, from the same start: the
    # head's text is the same up to the first edit.
    assert typed > 256
    assert nxt.view is not None and parts.view is not None
    assert nxt.view.start == parts.view.start
    edit = parts.context.index(LINES[line_end(LINES, 199) : line_end(LINES, 200)])
    assert nxt.context[:edit] == parts.context[:edit]


def test_leaving_the_view_takes_a_new_one() -> None:
    first = build(LINES, line_end(LINES, 200))
    assert first.view is not None
    far = build(LINES, line_end(LINES, 20), first)
    assert not far.context_kept and far.view is not None
    assert far.view.start < first.view.start


def test_an_edit_above_the_view_moves_its_start_and_renews_it() -> None:
    first = build(LINES, line_end(LINES, 200))
    assert first.view is not None
    cut = line_end(LINES, 5) + 1
    shorter = LINES[:cut] + LINES[cut + 3 :]  # three characters deleted far above
    again = build(shorter, line_end(shorter, 200), first)
    assert not again.context_kept  # the stored start no longer is a line start there


def test_view_checks() -> None:
    view = take_view(LINES, 5000, 1000, 500, None)
    assert view.start == 0 or LINES[view.start - 1] == "\n"
    assert LINES[view.start : len(LINES) - view.tail] == view.text
    assert view_still_serves(view, LINES, 5000, 100)
    assert not view_still_serves(view, LINES, 100, 100)  # cursor outside
    assert not view_still_serves(FileView(3, "x", 0, 3), LINES, 3, 100)  # not a line start


def test_the_view_keeps_its_start_when_renewed_below_it() -> None:
    view = take_view(LINES, 5000, 3000, 500, None)
    lower = take_view(LINES, 5600, 3000, 500, view)
    assert lower.start == view.start  # still within reach: tokens before the edit survive
    far = take_view(LINES, 9000, 3000, 500, view)
    assert far.start != view.start


def test_cold_budget_follows_the_measured_speed() -> None:
    assert prompt_budget(16384, 128, 0.0, 5000).tokens == 16384 - 128 - 16
    assert prompt_budget(16384, 128, 9000.0, 5000).tokens == 16384 - 128 - 16
    cpu = prompt_budget(16384, 128, 400.0, 5000)
    assert 1500 <= cpu.tokens <= 2000 and "400 tokens/s" in cpu.reason
    assert prompt_budget(16384, 128, 5.0, 5000).tokens == 512  # the floor
    assert prompt_budget(16384, 128, 400.0, 0).tokens == 16384 - 128 - 16  # turned off
    # A slightly different measurement gives the same budget (the steps).
    assert prompt_budget(16384, 128, 390.0, 5000).tokens == cpu.tokens


def test_the_budget_changes_only_when_the_speed_really_does() -> None:
    state = CompletionState(4)
    assert state.settle_budget(PromptBudget(2048, "a")) == 2048
    assert state.settle_budget(PromptBudget(2560, "b")) == 2048
    assert state.settle_budget(PromptBudget(1792, "c")) == 2048
    assert state.settle_budget(PromptBudget(4096, "d")) == 4096
    state.reset()
    assert state.settle_budget(PromptBudget(1024, "e")) == 1024


def test_plan_view_splits_the_budget() -> None:
    common = dict(
        near_prefix_chars=1200,
        near_suffix_chars=300,
        max_prefix_chars=12000,
        max_suffix_chars=3000,
        text_before=50_000,
        text_after=50_000,
    )
    small = plan_view(1024, context_tokens=-1, **common)  # type: ignore[arg-type]
    assert (small.near_prefix_chars + small.near_suffix_chars) <= 1024 * 3 // 3
    assert small.before_chars > 0 and small.after_chars > 0 and small.context_tokens > 0
    big = plan_view(16000, context_tokens=-1, **common)  # type: ignore[arg-type]
    assert (big.near_prefix_chars, big.near_suffix_chars) == (1200, 300)
    assert (big.before_chars, big.after_chars) == (12000, 3000)
    explicit = plan_view(16000, context_tokens=500, **common)  # type: ignore[arg-type]
    assert explicit.context_tokens == 500
    short = dict(common, text_before=900, text_after=300)
    tiny_file = plan_view(4096, context_tokens=-1, **short)  # type: ignore[arg-type]
    assert tiny_file.before_chars == 900 and tiny_file.after_chars == 300
    assert tiny_file.context_tokens > 3000  # the short file leaves the rest to the repository


def test_edits_far_apart_count_as_the_lines_edited_not_the_span() -> None:
    offset = line_end(LINES, 200)
    parts = build(LINES, offset)
    # A few characters typed on line 200, then the cursor jumps 20 lines up.
    text = LINES[:offset] + "  # done" + LINES[offset:]
    parts = build(text, offset + 8, parts)
    up = line_end(text, 180)
    text = text[:up] + " # 😀" + text[up:]
    moved = build(text, up + 4, parts)
    assert moved.context_kept and moved.context == parts.context


GEOMETRY_SOURCE = "from .geometry import scale_point\n" + LINES


def geometry_workspace(tmp_path, *, files: bool = False):  # type: ignore[no-untyped-def]
    """pkg/mod.py importing pkg/geometry.py; the view layout at a cursor in mod.py."""
    from codellama_lsp.context.index import RepositoryIndex

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "geometry.py").write_text(
        "def scale_point(point, factor_x, factor_y):\n    return point\n", encoding="utf-8"
    )
    (tmp_path / "pkg" / "mod.py").write_text(GEOMETRY_SOURCE, encoding="utf-8")
    index = RepositoryIndex.build(tmp_path)
    plan = ViewPlan(600, 200, 4000, 2000, context_tokens=500)
    path = tmp_path / "pkg" / "mod.py"

    def at(text: str, offset: int, previous=None):  # type: ignore[no-untyped-def]
        return assemble_view(
            text,
            offset,
            plan,
            budget=4096,
            path=path,
            index=index,
            previous=previous,
            files=files,
        )

    return at


def test_a_call_typed_in_a_kept_view_pins_its_definition_after_the_view(tmp_path) -> None:  # type: ignore[no-untyped-def]
    at = geometry_workspace(tmp_path)
    source = GEOMETRY_SOURCE

    offset = line_end(source, 200)
    first = at(source, offset)
    assert first.view is not None and "scale_point(point" not in first.context
    text = source[:offset] + "\np = scale_point(" + source[offset:]
    typed = at(text, offset + len("\np = scale_point("), first)
    # The view and the repository context are kept (their tokens stay cached); the
    # definition comes after them, labelled with its path, before the current file's label.
    assert typed.context_kept and typed.context.startswith(
        first.context[: -len("# Path: pkg/mod.py\n")]
    )
    assert "# Path: pkg/geometry.py\ndef scale_point(point, factor_x, factor_y):" in typed.context
    assert typed.context.endswith("# Path: pkg/mod.py\n")
    # Leaving the call drops it again.
    after = text.replace("p = scale_point(", "p = 1")
    moved = at(after, offset + len("\np = 1"), typed)
    assert moved.context_kept and moved.context == first.context


def test_repository_level_prompts_write_each_file_as_its_own_section(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from codellama_lsp.context.packing import file_sections

    at = geometry_workspace(tmp_path, files=True)
    source = GEOMETRY_SOURCE
    offset = line_end(source, 200)
    first = at(source, offset)
    sections = file_sections(first.context)
    assert "Path:" not in first.context and first.view is not None
    # The view is the current file's section; the last one names it for the FIM part.
    assert sections[-1] == ("pkg/mod.py", "") and sections[-2][0] == "pkg/mod.py"
    assert sections[-2][1].rstrip("\n") == first.view.text.rstrip("\n")
    # A keystroke keeps every section (and so every cached token of them).
    text = source[:offset] + "x" + source[offset:]
    typed = at(text, offset + 1, first)
    assert typed.context_kept and file_sections(typed.context) == sections
    # A call's definition is pinned as a section of its own file, after the view.
    call = source[:offset] + "\np = scale_point(" + source[offset:]
    pinned = at(call, offset + len("\np = scale_point("), first)
    after = file_sections(pinned.context)
    assert after[: len(sections) - 1] == sections[:-1] and after[-1] == ("pkg/mod.py", "")
    assert after[-2][0] == "pkg/geometry.py"
    assert after[-2][1].startswith("def scale_point(point, factor_x, factor_y):")

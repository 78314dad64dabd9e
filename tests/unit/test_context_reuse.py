"""Cache-stable prompts and answers without model work (pure modules)."""

from __future__ import annotations

import threading
from pathlib import Path

from codellama_lsp.context.assemble import PromptParts, assemble, context_changed
from codellama_lsp.context.index import RepositoryIndex
from codellama_lsp.context.packing import ContextChunk
from codellama_lsp.context.prompt import fim_input, sticky_prefix_start
from codellama_lsp.context.reuse import ShownSuggestion, SuggestionCache, typed_through

TEXT = "def greet(name):\n    msg = \n    return msg  # 😀\n"
AT = TEXT.index("msg = ") + len("msg = ")


def shown(suggestion: str = 'f"hello {name} 😀"') -> ShownSuggestion:
    return ShownSuggestion(TEXT, AT, suggestion)


def typing(chars: str) -> tuple[str, int]:
    return TEXT[:AT] + chars + TEXT[AT:], AT + len(chars)


# -- typed-through -----------------------------------------------------------


def test_typing_the_start_of_a_suggestion_answers_the_rest() -> None:
    text, offset = typing('f"hel')
    assert typed_through(shown(), text, offset) == 'lo {name} 😀"'


def test_typing_through_an_emoji_counts_characters_not_utf16_units() -> None:
    text, offset = typing('f"hello {name} 😀')
    assert typed_through(shown(), text, offset) == '"'


def test_the_same_text_and_cursor_answers_the_whole_suggestion() -> None:
    assert typed_through(shown(), TEXT, AT) == 'f"hello {name} 😀"'


def test_typing_something_else_needs_the_model() -> None:
    text, offset = typing('f"bye')
    assert typed_through(shown(), text, offset) is None


def test_typing_all_of_it_leaves_nothing_to_show() -> None:
    text, offset = typing('f"hello {name} 😀"')
    assert typed_through(shown(), text, offset) is None


def test_edits_elsewhere_or_cursor_moves_need_the_model() -> None:
    text, offset = typing("f")
    assert typed_through(shown(), text.replace("greet", "greed"), offset) is None  # before
    assert typed_through(shown(), text.replace("return", "yield"), offset) is None  # after
    assert typed_through(shown(), text, offset - 1) is None  # cursor moved back
    assert typed_through(shown(), TEXT, AT + 1) is None  # moved right without typing
    assert typed_through(None, text, offset) is None


def test_deleting_back_is_not_typing_through() -> None:
    text = TEXT[: AT - 1] + TEXT[AT:]
    assert typed_through(shown(), text, AT - 1) is None


# -- the LRU cache -------------------------------------------------------------


def test_cache_returns_what_was_stored_and_remembers_empty_answers() -> None:
    cache = SuggestionCache(4)
    assert cache.get("a") == (False, None)
    cache.put("a", " return a + b")
    cache.put("b", None)
    assert cache.get("a") == (True, " return a + b")
    assert cache.get("b") == (True, None)
    assert (cache.hits, cache.misses) == (2, 1)


def test_cache_evicts_the_least_recently_used() -> None:
    cache = SuggestionCache(2)
    cache.put("a", "1")
    cache.put("b", "2")
    cache.get("a")  # a is now newer than b
    cache.put("c", "3")
    assert cache.get("b") == (False, None)
    assert cache.get("a") == (True, "1") and cache.get("c") == (True, "3")
    cache.resize(1)
    assert len(cache) == 1 and cache.get("c") == (True, "3")
    cache.resize(0)
    cache.put("d", "4")
    assert len(cache) == 0
    cache.resize(3)
    cache.put("e", "5")
    cache.clear()
    assert len(cache) == 0


def test_cache_is_safe_across_threads() -> None:
    cache = SuggestionCache(50)

    def work(n: int) -> None:
        for i in range(500):
            cache.put((n, i % 60), str(i))
            cache.get((n, (i * 7) % 60))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 50
    assert cache.hits + cache.misses == 4 * 500


# -- the prefix window keeps its start -------------------------------------------

LINES = "".join(f"line_{i:03d} = {i}\n" for i in range(200))


def test_prefix_start_stays_put_while_typing() -> None:
    offset = len(LINES)
    first = sticky_prefix_start(LINES, offset, 600, None)
    assert LINES[first - 1] == "\n" and offset - first <= 600 * 3 // 4
    text = LINES
    start = first
    for ch in "total = sum(values)\n":
        text += ch
        start = sticky_prefix_start(text, len(text), 600, start)
        assert start == first  # same first line, same token prefix
    window = fim_input(text, len(text), 600, 100, start)
    assert window.prefix == text[first:]


def test_prefix_start_moves_once_the_window_is_full() -> None:
    offset = len(LINES)
    first = sticky_prefix_start(LINES, offset, 600, None)
    grown = LINES + "x = 1\n" * 40  # 240 characters more: past the 600 limit
    moved = sticky_prefix_start(grown, len(grown), 600, first)
    assert moved > first and grown[moved - 1] == "\n"
    assert len(grown) - moved <= 600 * 3 // 4


def test_prefix_start_is_always_a_line_start_that_fits() -> None:
    first = sticky_prefix_start(LINES, len(LINES), 600, None)
    # Text deleted above: the old start may now fall inside a line or past the cursor.
    for cut in (3, 100, 1000, len(LINES) - 50):
        shorter = LINES[cut:]
        start = sticky_prefix_start(shorter, len(shorter), 600, first)
        assert start == 0 or shorter[start - 1] == "\n"
        assert len(shorter) - start <= 600
    assert sticky_prefix_start(LINES, 5, 600, first) == 0  # cursor above the old start


# -- context changes only when it matters ---------------------------------------


def chunk(source: str, name: str, text: str, path: str = "util.py") -> ContextChunk:
    return ContextChunk(0, path, 0, text.count("\n"), text, source, name)


def test_context_change_is_material_for_new_or_edited_definitions() -> None:
    old = [chunk("import", "parse", "def parse(a):\n"), chunk("neighbour", "", "x = 1\n", "b.py")]
    assert not context_changed(old, old)
    # Neighbour snippets follow every keystroke: alone they do not count.
    assert not context_changed(old, [old[0], chunk("neighbour", "", "y = 2\n", "c.py")])
    # A definition no longer needed does not count either.
    assert not context_changed(old, [])
    assert context_changed(old, [chunk("import", "parse", "def parse(a, b):\n")])
    assert context_changed(old, [*old, chunk("type", "Config", "class Config:\n")])
    assert context_changed([], [chunk("outline", "", "class A:\n", "main.py")])


def test_assemble_keeps_the_previous_context_until_it_changes(tmp_path: Path) -> None:
    (tmp_path / "util.py").write_text("def parse_config(path: str) -> dict:\n    return {}\n")
    (tmp_path / "extra.py").write_text("def slugify(title: str) -> str:\n    return title\n")
    index = RepositoryIndex.build(tmp_path)
    main = tmp_path / "main.py"
    text = "from util import parse_config\n\ncfg = parse_config(p)\n"

    def parts(source: str, previous: PromptParts | None) -> PromptParts:
        return assemble(
            source,
            len(source),
            max_prefix_chars=4000,
            max_suffix_chars=1000,
            path=main,
            index=index,
            context_tokens=1000,
            previous=previous,
        )

    first = parts(text, None)
    assert "def parse_config(path: str) -> dict:" in first.context and not first.context_kept
    second = parts(text + "x = cfg", first)
    assert second.context_kept and second.context == first.context
    assert second.prefix_start == first.prefix_start
    # A new import of something defined elsewhere is material: the context is rebuilt.
    third = parts("from extra import slugify\n" + text + "s = slugify(", second)
    assert not third.context_kept and "def slugify(title: str) -> str:" in third.context

"""When a suggestion is complete, and how it is cleaned up before an editor shows it.

The in-process engine calls :meth:`StopChecker.check` after every decoded token so that
decoding ends as soon as the suggestion is complete (a model left alone happily writes
the next three functions); remote backends, which only see the whole text, call
:func:`finalize`, which applies the same rules once more.

Everything works on plain strings and is language-agnostic except the choice of block
openers in :func:`decide_policy`, which the language registry supplies (unknown
languages get every opener); indentation is compared by width with tabs counted as
four columns.  Known limit: indentation is all the checker knows about structure, so a
multi-line string whose lines start at column 0 ends a suggestion early.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .languages import GENERIC_OPENERS, SPECS, BlockOpeners, comment_markers, spec_for_id

StopReason = Literal["newline", "dedent", "block_end", "max_lines", "repetition", "suffix"]

_TAB_WIDTH = 4

#: Every registered language name (what :func:`_canonical` can answer).
_KNOWN = frozenset(SPECS)
_CASE_LABEL = re.compile(r"(?:case\b.*|default\s*):")
#: The rest of a line after an auto-closed ``{``: closers and a ``;`` or ``,``.
_CLOSERS_ONLY = re.compile(r"[)\]}]*[;,]?")

#: A stripped line that ends by opening a block (any language; used on generated lines).
_ENDS_OPENER = re.compile(r"(?:[\[({:]|=>|(?<![\w$.-])(?:then|do|else|in))$")
#: A stripped line that closes a block: a closing bracket or a shell/Ruby/Lua end word.
_CLOSER_START = re.compile(r"(?:[)\]}]|(?:fi|done|esac|end)\b(?!\s*[=.(\[:,]))")
#: Lines that continue the statement of the block they follow (``else:``, ``} catch {``).
_CONTINUATION = re.compile(r"(?:else|elif|except|finally|catch)\b")
#: The registry's comment markers, plus ``*`` (inside a block comment) and ``--`` (SQL, Lua).
_COMMENT = re.compile("|".join(re.escape(m) for m in sorted(comment_markers() | {"*", "--"})))
_DECORATOR = re.compile(r"@[A-Za-z_]")
_CONTROL = re.compile(
    r"(?:if|for|while|switch|try|do|else|elif|with|match|loop|unless|until|select|case"
    r"|default|except|finally|catch|foreach|return|async\s+(?:with|for))\b"
)
_MODIFIERS = (
    r"(?:export|default|pub(?:\([^)]*\))?|public|private|protected|internal|static|abstract"
    r"|final|sealed|override|virtual|async|unsafe|extern|inline|partial|declare)"
)
#: The start of a definition: keyword headers, or declarations that begin with a modifier.
_HEADER = re.compile(
    rf"(?:{_MODIFIERS}\s+)*(?:def|class|function|fn|func|struct|enum|trait|impl|interface"
    rf"|namespace|union|record)(?=[\s<*(])|(?:{_MODIFIERS}\s+)+\S"
)

#: One letter repeated 8+ times inside a word that is not a number (``0xFFFFFFFF`` is fine).
_REPEATED_LETTER = re.compile(r"(?<!\w)(?=[^\W\d])\w*?([^\W\d_])\1{7}")
#: A 2-10 character unit repeated 5+ times in a row (``1, 1, 1, 1, 1, 1``).
_REPEATED_UNIT = re.compile(r"(.{2,10}?)\1{4,}")
#: Longest run the rules above need to see whole: five units of ten characters, and some.
_RECHECK = 64
_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
#: What may be trimmed when a suggestion ends with only the start of the rest of the line.
_OVERLAP_PUNCT = re.compile(r"[)\]};,\"'`\s]+")


@dataclass(frozen=True)
class StopPolicy:
    """How long a suggestion may grow, decided once per request from the cursor position.

    Multi-line suggestions must stay inside the cursor's block: a generated line indented
    less than ``indent`` ends the suggestion.  With ``after_opener`` (the cursor follows a
    block opener such as ``def f():`` or ``if (x) {``) lines must be indented *deeper*
    than ``indent``, the opener line's indentation; a line at exactly that width that
    closes the block (``}``, ``);``, ``fi``, ``done``) is kept and ends the suggestion,
    and one that continues it (``} else {``, ``else:``, ``except E:``) is kept going.
    """

    multiline: bool
    indent: str = ""
    max_lines: int = 12
    after_opener: bool = False


def _canonical(language: str | None) -> str | None:
    """The registered language an LSP language id or grammar name means, if any."""
    spec = spec_for_id(language)
    return spec.name if spec is not None else None


def _openers(language: str | None) -> BlockOpeners:
    spec = spec_for_id(language)
    return spec.openers if spec is not None else GENERIC_OPENERS


def _leading(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _width(indent: str) -> int:
    return len(indent.expandtabs(_TAB_WIDTH))


def _first_line(suffix: str) -> str:
    end = suffix.find("\n")
    return (suffix if end < 0 else suffix[:end]).rstrip("\r")


def _upcoming_lines(suffix: str, limit: int) -> list[str]:
    """The next non-blank lines after the cursor line, right-stripped."""
    lines: list[str] = []
    pos = suffix.find("\n")
    while pos >= 0 and len(lines) < limit:
        nxt = suffix.find("\n", pos + 1)
        line = suffix[pos + 1 : nxt if nxt >= 0 else len(suffix)].rstrip()
        if line:
            lines.append(line)
        pos = nxt
    return lines


def _opens_block(before: str, after: str, openers: BlockOpeners) -> bool:
    """True when ``before`` ends with a block opener and ``after`` leaves room for a body.

    Only ``{`` may be followed by closing brackets (an editor's auto-closed pair); an
    auto-closed ``(`` or ``[`` means arguments typed inline, so it stays single-line.
    """
    head = before.rstrip()
    rest = after.strip()
    if not head:
        return False
    if head.endswith("{"):
        return _CLOSERS_ONLY.fullmatch(rest) is not None
    if rest:
        return False
    if head[-1] in "([":
        return True
    if head.endswith(":"):
        return openers.colon or (
            openers.case_labels and _CASE_LABEL.fullmatch(head.lstrip()) is not None
        )
    if head.endswith("=>"):
        return openers.arrow
    return openers.words is not None and openers.words.search(head) is not None


def decide_policy(
    prefix: str, suffix: str, *, language: str | None = None, max_lines: int = 12
) -> StopPolicy:
    """Multi-line only where a block of code is expected, single-line everywhere else.

    Multi-line when the cursor's line is blank on both sides (``indent`` is the
    whitespace before the cursor, or the previous non-blank line's indentation when the
    cursor is at column 0, deeper than it if that line opens a block), or when the text
    before the cursor opens a block (``:`` in Python, ``{``, a ``(`` or ``[`` that ends
    the line, ``=>``, ``case x:``, shell ``then``/``do``/``else``/``in``) with nothing
    but whitespace after it, or only closing brackets after a ``{``.  ``language`` is an
    LSP language id or a grammar name; unknown ones get the generic openers.
    """
    if max_lines < 1:
        raise ValueError(f"max_lines must be at least 1, got {max_lines}")
    openers = _openers(language)
    before = prefix[prefix.rfind("\n") + 1 :]
    after = _first_line(suffix)
    if not before.strip() and not after.strip():
        if before:
            return StopPolicy(True, before, max_lines)
        head = prefix[: len(prefix) - len(before)].rstrip()
        previous = head[head.rfind("\n") + 1 :]
        opener = _opens_block(previous, "", openers)
        return StopPolicy(True, _leading(previous), max_lines, after_opener=opener)
    if _opens_block(before, after, openers):
        return StopPolicy(True, _leading(before), max_lines, after_opener=True)
    return StopPolicy(False, _leading(before), max_lines)


def _repetitive_line(line: str, start: int = 0) -> bool:
    """A line that shows the model looping on a few characters.

    ``start`` skips text that an earlier call already found clean: only the last
    ``_RECHECK`` characters before it are read again (a repeated run is at most that
    long when it is first found), widened back to a word start for the letter rule.
    """
    start = max(0, start - _RECHECK)
    while start > 0 and (line[start - 1].isalnum() or line[start - 1] == "_"):
        start -= 1
    line = line[start:]
    if _REPEATED_LETTER.search(line):
        return True
    for match in _REPEATED_UNIT.finditer(line):
        unit = match.group(1)
        if len(set(unit)) > 1 and any(not c.isspace() and c not in _PUNCTUATION for c in unit):
            return True
    return False


def _periodic(lines: list[str]) -> bool:
    """The newest lines are one block of lines repeated three times."""
    n = len(lines)
    for period in range(1, n // 3 + 1):
        block = lines[n - period :]
        if lines[n - 2 * period : n - period] == block == lines[n - 3 * period : n - 2 * period]:
            return True
    return False


def _is_header(content: str, width: int) -> bool:
    """A first line that starts a definition, so the suggestion should be that one block."""
    if _COMMENT.match(content) or _CONTROL.match(content):
        return False
    if _DECORATOR.match(content):
        return True
    opens = _ENDS_OPENER.search(content) is not None
    if _HEADER.match(content):
        return opens or content.endswith(")")
    return width == 0 and opens


_GO, _CUT, _END, _WAIT = "go", "cut", "end", "wait"


class StopChecker:
    """The stop rules applied while decoding; keeps per-line state so each call is cheap.

    Single-line: stop at the first line break.  Multi-line, beyond the
    :class:`StopPolicy` indentation rules: a line below the floor stops generation as
    soon as its first character appears (one at exactly the opener's width is judged
    when complete); a first line that is shallower than the floor (cursor at column 0)
    or starts a definition (``def``/``class``/``fn``/``func``, a modifier such as
    ``public``/``export``, a decorator, or a top-level line ending in an opener) makes
    the suggestion that one block; a line equal to the suffix's next line (echo),
    ``max_lines`` lines, or repetition stop it too.

    :meth:`check` expects the text to only grow between calls (a shorter text starts the
    scan over); only the current, unfinished line is re-read.  After a stop it keeps
    answering the same length.  ``reason`` says which rule stopped it.
    """

    def __init__(self, policy: StopPolicy, prefix: str, suffix: str) -> None:
        self.policy = policy
        self._before = prefix[prefix.rfind("\n") + 1 :]
        blank_after = not _first_line(suffix).strip()
        upcoming = _upcoming_lines(suffix, 1) if blank_after else []
        #: The suffix's next line: generating it again means the model is echoing the suffix.
        self._echo = upcoming[0] if upcoming else None
        self._restart()

    def _restart(self) -> None:
        self._seen = 0  # length of the text at the previous call
        self._start = 0  # where the current line starts in the text
        self._index = 0  # which line of the suggestion that is
        self._floor = _width(self.policy.indent)
        self._opener = self.policy.after_opener
        self._seen_content = False
        self._pending_header = False  # a decorator or signature whose block has not opened
        self._counted = 0
        self._clean = 0  # how much of the current line has been found free of repetition
        self._lines: list[str] = []
        self._result: int | None = None
        self.reason: StopReason | None = None

    def check(self, text: str) -> int | None:
        """Length of ``text`` to keep if generation must stop now, else None."""
        if self._result is not None:
            return self._result
        if len(text) < self._seen:
            self._restart()
        self._seen = len(text)
        if not self.policy.multiline:
            return self._check_single(text)
        while (newline := text.find("\n", self._start)) >= 0:
            cut = self._close_line(text, newline)
            if cut is not None:
                return cut
            self._start = newline + 1
            self._index += 1
            self._clean = 0
        return self._check_partial(text)

    def finish(self, text: str) -> int:
        """Length of ``text`` to keep once generation has ended (the last line is complete)."""
        cut = self.check(text)
        if cut is not None:
            return cut
        if self.policy.multiline and self._start < len(text):
            cut = self._close_line(text, len(text))
            if cut is not None:
                return cut
        return len(text)

    def _stop(self, keep: int, reason: StopReason) -> int:
        self._result = keep
        self.reason = reason
        return keep

    def _check_single(self, text: str) -> int | None:
        newline = text.find("\n")
        line = text if newline < 0 else text[:newline]
        if _repetitive_line(line, self._clean):
            return self._stop(len(line), "repetition")
        self._clean = len(line)
        if newline >= 0:
            return self._stop(len(line.rstrip("\r")), "newline")
        return None

    def _end_of_previous_line(self, text: str) -> int:
        if self._start == 0:
            return 0
        end = self._start - 1
        return end - 1 if end > 0 and text[end - 1] == "\r" else end

    def _exempt(self) -> bool:
        """The first line continues the opener's own line, so its indentation means nothing."""
        return self._index == 0 and self.policy.after_opener and self._before.strip() != ""

    def _judge(self, full: str, content: str, complete: bool) -> str:
        if self._exempt():
            return _GO
        width = _width(_leading(full))
        if not self._opener:
            if width >= self._floor:
                return _GO
            # At column 0 a shallower first line starts a block of its own.
            first_at_column_0 = not self._seen_content and self._before == ""
            return _GO if first_at_column_0 else _CUT
        if width != self._floor:
            return _GO if width > self._floor else _CUT
        if not complete:
            return _WAIT
        closer = _CLOSER_START.match(content) is not None
        opens = _ENDS_OPENER.search(content) is not None
        if self._pending_header and (
            closer or content.startswith("{") or _DECORATOR.match(content) or _HEADER.match(content)
        ):
            self._pending_header = not opens
            return _GO
        if (closer or _CONTINUATION.match(content)) and opens:
            return _GO
        return _END if closer else _CUT

    def _first_content(self, full: str, content: str) -> None:
        """A first line shallower than the block, or a definition header, bounds the rest."""
        if self._opener:
            return
        width = _width(_leading(full))
        header = _is_header(content, width)
        if width < self._floor or header:
            self._opener = True
            self._floor = width
            self._pending_header = header and _ENDS_OPENER.search(content) is None

    def _close_line(self, text: str, end: int) -> int | None:
        raw = text[self._start : end]
        if raw.endswith("\r"):
            raw = raw[:-1]
        line_end = self._start + len(raw)
        full = self._before + raw if self._index == 0 else raw
        content = full.strip()
        # The rest of an opener's line (usually empty) is not one of the suggestion's lines.
        counts = self._index > 0 or raw.strip() != ""
        if not content or (self._exempt() and not counts):
            self._counted += counts
            return self._count_limit(line_end)
        if _repetitive_line(raw, self._clean):
            return self._stop(line_end, "repetition")
        verdict = self._judge(full, content, complete=True)
        if verdict == _CUT:
            return self._stop(self._end_of_previous_line(text), "dedent")
        if verdict == _END:
            return self._stop(line_end, "block_end")
        self._first_content(full, content)
        self._seen_content = True
        self._lines.append(full.rstrip())
        if _periodic(self._lines):
            return self._stop(line_end, "repetition")
        if full.rstrip() == self._echo:
            return self._stop(line_end, "suffix")
        self._counted += counts
        return self._count_limit(line_end)

    def _count_limit(self, line_end: int) -> int | None:
        if self._counted >= self.policy.max_lines:
            return self._stop(line_end, "max_lines")
        return None

    def _check_partial(self, text: str) -> int | None:
        raw = text[self._start :]
        if _repetitive_line(raw, self._clean):
            return self._stop(len(text), "repetition")
        self._clean = len(raw)
        full = self._before + raw if self._index == 0 else raw
        content = full.strip()
        if content and self._judge(full, content, complete=False) == _CUT:
            return self._stop(self._end_of_previous_line(text), "dedent")
        return None


def _balance(text: str) -> int:
    """Opening minus closing brackets; strings are not parsed, this is a heuristic."""
    return sum(text.count(c) for c in "([{") - sum(text.count(c) for c in ")]}")


def _trim_overlap(text: str, after: str) -> str:
    """Drop the end of ``text`` that repeats the start of the rest of the cursor line.

    The overlap must be that whole rest of the line, or only closing punctuation, and
    trimming must not leave brackets or quotes open that the suggestion closed itself:
    with ``)`` after the cursor, ``foo(x))`` loses one ``)`` but ``foo(x)`` keeps its own.
    """
    after = after.rstrip()
    for k in range(len(after), 0, -1):
        part = after[:k]
        if not text.endswith(part):
            continue
        if k < len(after) and not _OVERLAP_PUNCT.fullmatch(part):
            continue
        if _balance(text) > _balance(part):
            continue
        if any(part.count(q) and (text.count(q) - part.count(q)) % 2 for q in "\"'`"):
            continue
        return text[: len(text) - k]
    return text


def _tidy_end(text: str, after: str) -> str:
    """Trailing whitespace goes, except what lays out the text that follows the cursor.

    Before ``}`` a final line break and indentation put the brace on its own line; before
    a word a trailing space keeps the two apart (``if |x`` + ``not `` → ``if not x``).
    """
    core = text.rstrip()
    if not after.strip():
        return core
    tail = text[len(core) :]
    if "\n" in tail:
        return core + "\n" + tail.rsplit("\n", 1)[1]
    if after[0].isspace() or after[0] in ")]};,":
        return core
    return text


def _drop_suffix_echo(text: str, before: str, suffix: str) -> str:
    """Remove trailing lines that are the same as the lines that follow the cursor."""
    lines = (before + text).split("\n")
    content = [i for i, line in enumerate(lines) if line.strip()]
    upcoming = _upcoming_lines(suffix, len(content))
    for m in range(min(len(content), len(upcoming)), 0, -1):
        if [lines[i].rstrip() for i in content[-m:]] == upcoming[:m]:
            first = content[-m]
            return "\n".join(lines[:first])[len(before) :].rstrip() if first else ""
    return text


def finalize(text: str, policy: StopPolicy, prefix: str, suffix: str) -> str | None:
    """The suggestion to show, or None when nothing useful is left.

    Applies the stop rules to the whole text, drops repetitive output, strips trailing
    whitespace (see :func:`_tidy_end`), trims what repeats the rest of the cursor line,
    drops a suggestion that is only the start of the suffix, and drops trailing lines
    that repeat the next lines of the suffix.  Line breaks come back as ``\\n``; in
    single-line mode the result never contains one.
    """
    text = text.replace("\r\n", "\n")
    suffix = suffix.replace("\r\n", "\n")
    checker = StopChecker(policy, prefix, suffix)
    text = text[: checker.finish(text)]
    if checker.reason == "repetition":
        return None
    before = prefix[prefix.rfind("\n") + 1 :]
    after = _first_line(suffix)
    core = text.rstrip()
    if not core.strip() or suffix.startswith(core):
        return None
    trimmed = _trim_overlap(core, after)
    result = _tidy_end(trimmed if trimmed != core else text, after)
    if not after.strip():
        result = _drop_suffix_echo(result, before, suffix)
    if not result.strip() or suffix.startswith(result):
        return None
    if not policy.multiline:
        result = result.split("\n", 1)[0]
    return result


def finish_generated(
    text: str, policy: StopPolicy, prefix: str, suffix: str, *, cut_short: bool = False
) -> str | None:
    """The suggestion to show for what a backend generated (see :func:`finalize`).

    ``cut_short``: generation stopped on the time budget, mid-thought; a
    multi-line suggestion then keeps only its complete lines, since a half line
    of code is worse than one line fewer.
    """
    if cut_short and policy.multiline and "\n" in text:
        text = text[: text.rfind("\n")]
    return finalize(text, policy, prefix, suffix)

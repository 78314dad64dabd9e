"""``codellama-lsp eval``: does the prompt show the function being called?

Cases are cross-file calls sampled from the user's own repository
(:mod:`codellama_lsp.context.callsites`), each cut just after its ``(``.  At
each one the prompt is built exactly as the server would build it there
(:func:`.pipeline.build_prompt`; with a model, the whole :func:`.pipeline.complete`
as ``codellama-lsp complete`` runs it), and it counts as a hit when the
callee's definition line is in the prompt.  The same cases go through a BM25
baseline over 20-line windows (:mod:`codellama_lsp.context.bm25`) with the same
character budget, so the figure has something to be read against.  Everything
but the timings is determined by the workspace, the settings and the seed.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from codellama_lsp.context.bm25 import WindowIndex, query_text
from codellama_lsp.context.callsites import (
    CALL_FORMS,
    Case,
    call_arguments,
    cut_at_call,
    definition_line,
    definition_row,
    names_a_parameter,
    parameters,
    sample_cases,
    split_top_level,
)
from codellama_lsp.context.index import RepositoryIndex
from codellama_lsp.context.languages import comment_prefix, spec_for
from codellama_lsp.context.symbols import Definition
from codellama_lsp.context.workspace import blocks_completion, read_source
from codellama_lsp.quant.backend import Backend
from codellama_lsp.quant.fim import CODE_LLAMA, FAMILIES, request_text

from .pipeline import Budget, CompletionInput, build_prompt, complete
from .settings import Settings
from .state import CompletionState, Prompt

log = logging.getLogger(__name__)

#: Languages whose call syntax the sampler knows.
SUPPORTED_LANGUAGES: tuple[str, ...] = tuple(sorted(CALL_FORMS))
#: Characters per token of ``context.packing.estimate_tokens``: ``--budget`` → ``maxTokens``.
CHARS_PER_TOKEN = 3
#: How a hit got into the prompt when no chunk holds it.
PINNED = "pinned"
IN_FILE = "file"


@dataclass(frozen=True)
class EvalOptions:
    #: Language names; empty: every supported language the workspace has.
    languages: tuple[str, ...] = ()
    cases: int = 40
    budget_chars: int = 6000
    seed: int = 0


@dataclass(frozen=True)
class CaseResult:
    """One call site and what each retriever made of it (lines and columns 1-based)."""

    file: str
    language: str
    line: int
    #: The column just after the ``(``, in characters.
    column: int
    callee: str
    definition_file: str
    definition_line: int
    #: The definition line looked for (stripped): the one found, else the likeliest.
    definition: str
    hit: bool
    #: The source of the prompt chunk that held it ("callee", "import", ...); "" on a miss.
    found_by: str
    bm25_hit: bool
    prompt_chars: int
    build_ms: float
    #: With a model: the suggestion after the ``(`` (None without a model or answer).
    generated: str | None = None
    #: The callee's parameter names (None: not readable from its header).
    parameters: tuple[str, ...] | None = None
    #: Arguments of the generated call when it closed, else None.
    arguments: int | None = None
    #: Generated arity accepted by the callee (None: not checked).
    arity_match: bool | None = None
    #: Generated arguments mention a parameter name (None: not checked).
    names_parameter: bool | None = None


@dataclass(frozen=True)
class Figures:
    """Totals of one language, or of all of them ("overall")."""

    language: str
    cases: int
    hits: int
    bm25_hits: int
    median_prompt_chars: float
    median_build_ms: float
    p95_build_ms: float
    #: How hits were found: (source, count), most frequent first.
    found_by: tuple[tuple[str, int], ...]
    #: With a model: cases generated, and of those with known parameters, the checks.
    generated: int = 0
    arity_checked: int = 0
    arity_matches: int = 0
    names_checked: int = 0
    names_matches: int = 0

    @property
    def recall(self) -> float | None:
        return self.hits / self.cases if self.cases else None

    @property
    def bm25_recall(self) -> float | None:
        return self.bm25_hits / self.cases if self.cases else None

    @property
    def arity_rate(self) -> float | None:
        return self.arity_matches / self.arity_checked if self.arity_checked else None

    @property
    def names_rate(self) -> float | None:
        return self.names_matches / self.names_checked if self.names_checked else None


@dataclass(frozen=True)
class EvalReport:
    workspace: str
    seed: int
    budget_chars: int
    context_tokens: int
    #: The model's label, or None without one.
    model: str | None
    files: int
    languages: tuple[Figures, ...]
    overall: Figures
    cases: tuple[CaseResult, ...]
    seconds: float


def eval_settings(settings: Settings, budget_chars: int) -> Settings:
    """``settings`` with ``context.maxTokens`` the budget in estimated tokens."""
    context = dataclasses.replace(settings.context, max_tokens=budget_chars // CHARS_PER_TOKEN)
    return dataclasses.replace(settings, context=context)


def present_languages(index: RepositoryIndex) -> tuple[str, ...]:
    """The supported languages the workspace has files of."""
    found = {r.language for r in index.records(index.files())}
    return tuple(language for language in SUPPORTED_LANGUAGES if language in found)


class _Baseline:
    """BM25 window indexes, one per language family, built on first use."""

    def __init__(self, index: RepositoryIndex, texts: dict[str, str]) -> None:
        self._index = index
        self._texts = texts
        self._built: dict[str, WindowIndex] = {}

    def for_language(self, language: str) -> WindowIndex:
        family = spec_for(language).family
        built = self._built.get(family)
        if built is None:
            started = time.perf_counter()
            built = self._built[family] = WindowIndex(self._files(family))
            log.info(
                "BM25 windows of %s: %d in %.2f s",
                family,
                len(built),
                time.perf_counter() - started,
            )
        return built

    def _files(self, family: str) -> list[tuple[str, str]]:
        files: list[tuple[str, str]] = []
        limit = self._index.workspace.options.max_file_bytes
        for record in self._index.records(self._index.files()):
            if spec_for(record.language).family != family:
                continue
            text = self._texts.get(record.path)
            if text is None:
                data = read_source(self._index.root / record.path, limit)
                if data is None:
                    continue
                text = data.decode("utf-8")
            files.append((record.path, text))
        return files


def run_eval(
    index: RepositoryIndex,
    settings: Settings,
    options: EvalOptions,
    budget: Budget,
    backend: Backend | None = None,
) -> EvalReport:
    """Sample the cases, build each prompt (and completion) and the baseline, and total them.

    ``budget`` counts tokens for prompts built without a model; with
    ``backend`` every case runs the whole completion pipeline on it instead.
    """
    started = time.perf_counter()
    settings = eval_settings(settings, options.budget_chars)
    languages = options.languages or present_languages(index)
    texts: dict[str, str] = {}
    baseline = _Baseline(index, texts)
    # One state for the run (the prompt budget settles once); every case is its own
    # document in it, so nothing one case built is kept for the next.
    state = CompletionState(0)
    results: list[CaseResult] = []
    figures: list[Figures] = []
    for language in languages:
        cases, stats = sample_cases(index, language, options.cases, options.seed, texts=texts)
        log.info(
            "%s: %d cases from %d of %d files (%d candidate calls)",
            language,
            len(cases),
            stats.scanned,
            stats.files,
            stats.candidates,
        )
        windows = baseline.for_language(language) if cases else None
        done = []
        for case in cases:
            assert windows is not None
            text = texts[case.path]
            result = _run_case(
                index, settings, case, text, budget, backend, windows, options.budget_chars, state
            )
            if result is not None:
                done.append(result)
        results.extend(done)
        figures.append(_figures(language, done))
    return EvalReport(
        workspace=str(index.root),
        seed=options.seed,
        budget_chars=options.budget_chars,
        context_tokens=settings.context.max_tokens,
        model=backend.describe().label if backend is not None else None,
        files=len(index),
        languages=tuple(figures),
        overall=_figures("overall", results),
        cases=tuple(results),
        seconds=time.perf_counter() - started,
    )


def _run_case(
    index: RepositoryIndex,
    settings: Settings,
    case: Case,
    text: str,
    budget: Budget,
    backend: Backend | None,
    windows: WindowIndex,
    budget_chars: int,
    state: CompletionState,
) -> CaseResult | None:
    call = case.call
    cut = cut_at_call(text, call.offset)
    path = index.root / case.path
    c = settings.context
    doc = CompletionInput(
        key=f"{path.as_uri()}#eval:{call.line}:{call.offset}",
        text=cut,
        offset=call.offset,
        language=case.language,
        path=str(path),
        index=index,
        excluded=blocks_completion(path, index.root, c.exclude, c.complete_excluded),
    )
    if doc.excluded:
        return None
    generated: str | None = None
    if backend is None:
        prompt = build_prompt(doc, settings, budget, state)
    else:
        answer = complete(doc, settings, backend, state)
        state.forget(doc.key)  # a case is a document opened once: nothing of it is kept
        backend.forget(doc.key)
        if answer.prompt is None:
            return None
        prompt, generated = answer.prompt, answer.suggestion
    request = prompt.request
    # The prompt as the model reads it: repository-level families get files, not a
    # preamble (a family known only by its GGUF's tokens has a preamble, like Code Llama).
    family = FAMILIES.get((backend or budget).describe().family, CODE_LLAMA)
    shown = request_text(request, family, shown=True)
    wanted = case.wanted_lines()
    found = next((line for line in wanted if line in shown), None)
    comment = comment_prefix(case.path)
    retrieved = windows.retrieve(query_text(cut, call.offset), budget_chars, comment, case.path)
    line_start = cut.rfind("\n", 0, call.offset) + 1
    definition = case.definition
    if found is not None and found != case.definition_line:
        definition = next(d for d in case.alternatives if definition_line(d) == found)
    result = CaseResult(
        file=case.path,
        language=case.language,
        line=call.line + 1,
        column=call.offset - line_start + 1,
        callee=call.name,
        definition_file=definition.path,
        definition_line=definition_row(definition) + 1,
        definition=found if found is not None else case.definition_line,
        hit=found is not None,
        found_by=_found_by(prompt, found) if found is not None else "",
        bm25_hit=any(line in w.text for w in retrieved for line in wanted),
        prompt_chars=len(shown),
        build_ms=prompt.build_ms,
    )
    if backend is None:
        return result
    return _with_generation(index, definition, result, generated)


def _found_by(prompt: Prompt, wanted: str) -> str:
    """The source of the most useful chunk showing ``wanted``, else where else it was."""
    parts = prompt.parts
    for chunk in sorted(parts.chunks, key=lambda c: (c.priority, c.path, c.start_line)):
        if wanted in chunk.text:
            return chunk.source
    if wanted in parts.pinned:
        return PINNED
    return IN_FILE


def _with_generation(
    index: RepositoryIndex, definition: Definition, result: CaseResult, generated: str | None
) -> CaseResult:
    """Check the generated call's arguments against the callee's parameters."""
    record = index.file(definition.path)
    siblings = record.definitions if record is not None else ()
    params = parameters(definition, siblings)
    text = generated or ""
    arguments = call_arguments(text)
    names: bool | None = None
    arity: bool | None = None
    if params is not None:
        arity = arguments is not None and params.accepts(len(arguments))
        if any(params.names):
            pieces = arguments if arguments is not None else split_top_level(text)[0]
            names = names_a_parameter(pieces, params.names)
    return dataclasses.replace(
        result,
        generated=generated,
        parameters=params.names if params is not None else None,
        arguments=len(arguments) if arguments is not None else None,
        arity_match=arity,
        names_parameter=names,
    )


def _percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _figures(language: str, results: Sequence[CaseResult]) -> Figures:
    found = Counter(r.found_by for r in results if r.hit)
    times = [r.build_ms for r in results]
    arity = [r.arity_match for r in results if r.arity_match is not None]
    names = [r.names_parameter for r in results if r.names_parameter is not None]
    return Figures(
        language=language,
        cases=len(results),
        hits=sum(r.hit for r in results),
        bm25_hits=sum(r.bm25_hit for r in results),
        median_prompt_chars=statistics.median([r.prompt_chars for r in results])
        if results
        else 0.0,
        median_build_ms=statistics.median(times) if times else 0.0,
        p95_build_ms=_percentile(times, 0.95),
        found_by=tuple(sorted(found.items(), key=lambda item: (-item[1], item[0]))),
        generated=sum(r.generated is not None for r in results),
        arity_checked=len(arity),
        arity_matches=sum(arity),
        names_checked=len(names),
        names_matches=sum(names),
    )


# -- output ------------------------------------------------------------------------


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_text(report: EvalReport) -> str:
    """The report as a table: one row per language, then "overall"."""
    with_model = report.model is not None
    head = (
        f"workspace {report.workspace} ({report.files} files), seed {report.seed}, "
        f"budget {report.budget_chars} characters (context.maxTokens {report.context_tokens})"
        + (f", model {report.model}" if with_model else ", no model")
        + f", {report.seconds:.1f} s\n\n"
    )
    columns = f"{'language':<12}{'cases':>6}{'codellama-lsp':>15}{'BM25':>7}"
    columns += f"{'median chars':>14}{'median ms':>11}{'p95 ms':>9}"
    if with_model:
        columns += f"{'arity':>8}{'param names':>13}"
    lines = [columns]
    for row in (*report.languages, report.overall):
        line = (
            f"{row.language:<12}{row.cases:>6}{_rate(row.recall):>15}{_rate(row.bm25_recall):>7}"
            f"{row.median_prompt_chars:>14.0f}{row.median_build_ms:>11.1f}{row.p95_build_ms:>9.1f}"
        )
        if with_model:
            line += f"{_rate(row.arity_rate):>8}{_rate(row.names_rate):>13}"
        lines.append(line)
    lines.append("")
    lines.append("how hits got into the prompt (chunk source: hits):")
    for row in (*report.languages, report.overall):
        found = ", ".join(f"{source} {count}" for source, count in row.found_by) or "-"
        lines.append(f"  {row.language:<12}{found}")
    if with_model:
        lines.append("")
        lines.append(
            "arity: generated calls that close with an argument count the callee accepts; "
            "param names: generated arguments that mention one of its parameter names "
            "(both over cases whose parameters its header shows)"
        )
    return head + "\n".join(lines) + "\n"


def _figures_json(row: Figures) -> dict[str, Any]:
    data: dict[str, Any] = {
        "cases": row.cases,
        "hits": row.hits,
        "recall": row.recall,
        "bm25_hits": row.bm25_hits,
        "bm25_recall": row.bm25_recall,
        "median_prompt_chars": row.median_prompt_chars,
        "median_build_ms": round(row.median_build_ms, 3),
        "p95_build_ms": round(row.p95_build_ms, 3),
        "found_by": dict(row.found_by),
    }
    if row.generated:
        data.update(
            generated=row.generated,
            arity_checked=row.arity_checked,
            arity_rate=row.arity_rate,
            names_checked=row.names_checked,
            names_rate=row.names_rate,
        )
    return data


def to_json(report: EvalReport) -> dict[str, Any]:
    """The report as one JSON-ready object: settings, figures per language, the cases."""
    cases = []
    for case in report.cases:
        item = dataclasses.asdict(case)
        item["build_ms"] = round(case.build_ms, 3)
        if report.model is None:
            for key in ("generated", "parameters", "arguments", "arity_match", "names_parameter"):
                del item[key]
        cases.append(item)
    return {
        "workspace": report.workspace,
        "seed": report.seed,
        "budget_chars": report.budget_chars,
        "context_tokens": report.context_tokens,
        "model": report.model,
        "files": report.files,
        "seconds": round(report.seconds, 3),
        "languages": {row.language: _figures_json(row) for row in report.languages},
        "overall": _figures_json(report.overall),
        "cases": cases,
    }

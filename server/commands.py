"""The inspection commands: ``complete``, ``prompt``, ``eval``, ``index``, ``models``, ``stats``.

``complete`` and ``prompt`` run the core pipeline the server runs (windows,
repository context, token budget, stop rules, postprocessing, the same backend
configuration), so what they print is what an editor would get at that
position with the same settings (``--settings``); ``eval`` runs the same
pipeline at call sites sampled from the workspace; ``index`` shows what the
server would index.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codellama_lsp.context.assemble import PromptParts
from codellama_lsp.context.documents import UTF32, Document, Position
from codellama_lsp.context.errors import CodeLlamaLspError
from codellama_lsp.context.index import RepositoryIndex, index_stats
from codellama_lsp.context.languages import language_for_id, language_for_path
from codellama_lsp.context.workspace import WorkspaceOptions, blocks_completion, decodable
from codellama_lsp.core.backends import (
    Estimate,
    connect_remote,
    load_local,
    local_config,
    remote_config,
    with_overrides,
)
from codellama_lsp.core.pipeline import (
    EXCLUDED_MESSAGE,
    CompletionInput,
    build_prompt,
    complete,
)
from codellama_lsp.core.settings import Settings, parse_settings
from codellama_lsp.core.state import CompletionState
from codellama_lsp.quant.backend import Backend
from codellama_lsp.quant.errors import ModelError
from codellama_lsp.quant.fim import FAMILIES, order_for, request_text

log = logging.getLogger(__name__)


class UsageError(Exception):
    """Bad arguments: exit status 2, like argparse's own errors."""


def cmd_models(args: argparse.Namespace) -> int:
    from codellama_lsp.quant.catalog import CATALOG, DEFAULT_MODEL, cached_path, lookup, models_dir
    from codellama_lsp.quant.download import download, how_to_get

    command = args.models_command
    if command == "list":
        out = sys.stdout
        out.write(f"{'name':<32}{'family':<16}{'size':>9}  {'use':<9}{'state':<12}source\n")
        for entry in CATALOG:
            state = "downloaded" if cached_path(entry) else "-"
            use = "infill" if entry.for_infill else "chat"
            mark = " (default)" if entry.name == DEFAULT_MODEL else ""
            out.write(
                f"{entry.name:<32}{entry.family:<16}{entry.size_gb:>6.2f} GB  {use:<9}"
                f"{state:<12}{entry.repo_id}/{entry.filename}{mark}\n"
            )
        out.write(f"\nmodel cache: {models_dir()}\n")
        return 0
    if command == "path":
        entry = lookup(args.name)
        found = cached_path(entry)
        if found is None:
            raise CodeLlamaLspError(f"{entry.name} is not downloaded: {how_to_get(entry)}")
        sys.stdout.write(f"{found}\n")
        return 0
    if command == "download":
        entry = lookup(args.name)
        sys.stderr.write(
            f"{entry.title}: {entry.size_gb:.2f} GB from huggingface.co/{entry.repo_id}\n"
        )
        path = download(entry)
        sys.stdout.write(f"{path}\n")
        return 0
    from codellama_lsp.quant.quantize import quantize

    result = quantize(
        Path(args.source),
        Path(args.dest),
        args.qtype,
        threads=args.threads,
        allow_requantize=args.allow_requantize,
    )
    sys.stdout.write(
        f"{result.dst}: {result.qtype}, {result.src_bytes / 1e6:.1f} MB -> "
        f"{result.dst_bytes / 1e6:.1f} MB in {result.seconds:.1f} s\n"
    )
    return 0


def parse_location(location: str) -> tuple[Path, int, int]:
    parts = location.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise UsageError(f"expected FILE:LINE:COL with 1-based numbers, got {location!r}")
    line, col = int(parts[1]), int(parts[2])
    if line < 1 or col < 1:
        raise UsageError(f"LINE and COL are 1-based, got {line}:{col}")
    return Path(parts[0]), line, col


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise UsageError(f"file not found: {path}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8 text") from exc
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc


@dataclass(frozen=True)
class _Target:
    """A checked position: the file's on-disk text is the document."""

    path: Path
    text: str
    offset: int


def _locate(location: str) -> _Target:
    path, line, col = parse_location(location)
    text = _read(path)
    doc = Document(path.resolve().as_uri(), text, encoding=UTF32)
    line_text = doc.line_text(line - 1) if line - 1 < doc.line_count else ""
    if line - 1 >= doc.line_count or col - 1 > len(line_text):
        raise UsageError(
            f"{path}:{line}:{col} is past the end of the "
            + ("file" if line - 1 >= doc.line_count else "line")
            + f" ({doc.line_count} lines)"
        )
    return _Target(path, text, doc.offset_at(Position(line - 1, col - 1)))


def _workspace(directory: str, options: WorkspaceOptions | None = None) -> RepositoryIndex:
    root = Path(directory).expanduser()
    if not root.exists():
        raise UsageError(f"workspace not found: {directory}")
    if not root.is_dir():
        raise UsageError(f"workspace is not a directory: {directory}")
    started = time.perf_counter()
    index = RepositoryIndex.build(root, options)
    stats = index_stats(index)
    log.info(
        "indexed %s: %d files, %d definitions in %.2f s",
        index.root,
        stats.files,
        stats.definitions,
        time.perf_counter() - started,
    )
    return index


def _context_index(args: argparse.Namespace, settings: Settings) -> RepositoryIndex | None:
    if args.workspace is None:
        return None
    context = settings.context
    options = WorkspaceOptions(exclude=context.exclude, max_file_bytes=context.max_file_bytes)
    return _workspace(args.workspace, options)


def _settings(args: argparse.Namespace) -> Settings:
    """``--settings`` (what an editor would send), with the other flags on top."""
    raw: object = None
    if args.settings is not None:
        text = args.settings
        if text.startswith("@"):
            text = _read(Path(text[1:]))
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"--settings is not JSON: {exc}") from exc
    settings, warnings = parse_settings(raw)
    for warning in warnings:
        log.warning("%s", warning)
    context_tokens = getattr(args, "context_tokens", None)  # eval sets its own budget
    if context_tokens is not None:
        if context_tokens < 0:
            raise UsageError(f"--context-tokens must be 0 or more, got {context_tokens}")
        context = dataclasses.replace(settings.context, max_tokens=context_tokens)
        settings = dataclasses.replace(settings, context=context)
    fim_order = getattr(args, "fim_order", None)
    if fim_order is not None:
        completion = dataclasses.replace(settings.completion, fim_order=fim_order)
        settings = dataclasses.replace(settings, completion=completion)
    return with_overrides(settings, model_path=args.model, max_tokens=args.max_tokens)


def _shown(path: Path) -> Path:
    """The path as text, as an editor's ``file:`` URI decodes it: bytes that are not
    UTF-8 become U+FFFD, never surrogates, which no prompt or stdout can encode."""
    text = str(path)
    if decodable(text):
        return path
    return Path(os.fsencode(text).decode("utf-8", errors="replace"))


def _input(target: _Target, index: RepositoryIndex | None, settings: Settings) -> CompletionInput:
    path = _shown(target.path.resolve())
    c = settings.context
    return CompletionInput(
        key=path.as_uri(),
        text=target.text,
        offset=target.offset,
        language=language_for_path(path),
        path=str(path),
        index=index,
        excluded=blocks_completion(
            path, index.root if index is not None else None, c.exclude, c.complete_excluded
        ),
    )


def _log_context(parts: PromptParts) -> None:
    chunks = ", ".join(f"{c.path}:{c.start_line + 1} ({c.source})" for c in parts.chunks)
    log.info(
        "context: %d tokens in %d chunks%s",
        parts.context_tokens,
        len(parts.chunks),
        f": {chunks}" if chunks else "",
    )


def _default_model() -> str:
    """The catalog's default model when it is downloaded; the CLI never downloads on its own."""
    from codellama_lsp.quant.catalog import DEFAULT_MODEL, cached_path, lookup
    from codellama_lsp.quant.download import how_to_get

    entry = lookup(DEFAULT_MODEL)
    found = cached_path(entry)
    if found is None:
        raise UsageError(
            f"no model: pass --model PATH, or download the default: {how_to_get(entry)}"
        )
    return str(found)


def _backend(settings: Settings) -> Backend:
    """The backend the settings name, configured as the server would configure it."""
    if settings.backend.type != "local":
        return connect_remote(remote_config(settings))
    return load_local(local_config(settings, settings.model.path or _default_model()))


def cmd_complete(args: argparse.Namespace) -> int:
    settings = _settings(args)
    # Argument and file errors first: they should not wait for a model to load.
    target = _locate(args.location)
    index = _context_index(args, settings)
    backend = _backend(settings)
    answer = complete(_input(target, index, settings), settings, backend, CompletionState(0))
    if answer.prompt is not None:
        _log_context(answer.prompt.parts)
    log.info("complete %s %s", target.path, answer.log_fields())
    if answer.suggestion is not None:
        sys.stdout.write(answer.suggestion + "\n")
    return 0


def _family(settings: Settings) -> str:
    """The FIM family of the model the settings name (``model.name``), without loading it."""
    from codellama_lsp.quant.catalog import lookup

    if settings.model.name:
        try:
            return lookup(settings.model.name).family
        except ModelError:
            pass
    return "codellama"


def cmd_prompt(args: argparse.Namespace) -> int:
    settings = _settings(args)
    target = _locate(args.location)
    index = _context_index(args, settings)
    doc = _input(target, index, settings)
    if doc.excluded:
        log.warning("%s: %s", target.path, EXCLUDED_MESSAGE)
        return 0
    if args.model or settings.backend.type != "local":
        backend = _backend(settings)
        prompt = build_prompt(doc, settings, backend, CompletionState(0))
        text = backend.prompt_text(prompt.request)
        family = backend.describe().family
    else:
        family = _family(settings)
        estimate = Estimate(settings.model.n_ctx, family)
        prompt = build_prompt(doc, settings, estimate, CompletionState(0))
        text = request_text(prompt.request, FAMILIES[family], shown=True)
        log.warning(
            "prompt is untokenized: no model was given (--model PATH); counts are estimates; "
            "the %s format (model.name)",
            FAMILIES[family].title,
        )
    sys.stdout.write(text + "\n")
    _log_context(prompt.parts)
    order = order_for(family, prompt.request.fim_order)
    log.info("prompt: %d characters, order %s", len(text), order)
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    index = _workspace(args.directory, WorkspaceOptions(exclude=tuple(args.exclude)))
    if not args.stats:
        sys.stdout.writelines(rel + "\n" for rel in index.files())
        return 0
    stats = index_stats(index)
    sys.stdout.write(
        f"files: {stats.files}\n"
        f"definitions: {stats.definitions}\n"
        f"time_s: {stats.build_seconds:.3f}\n"
        f"memory_mb: {stats.memory_bytes / 1e6:.1f}\n"
    )
    return 0


def _eval_languages(values: list[str]) -> tuple[str, ...]:
    """``--lang`` values (repeatable, comma-separated; names, LSP ids or file extensions)."""
    from codellama_lsp.core.evaluate import SUPPORTED_LANGUAGES

    found: list[str] = []
    for value in values:
        for name in filter(None, (v.strip() for v in value.split(","))):
            language = language_for_id(name) or language_for_path(f"x.{name.lstrip('.')}")
            if language is None or language not in SUPPORTED_LANGUAGES:
                raise UsageError(f"--lang {name!r}: eval knows " + ", ".join(SUPPORTED_LANGUAGES))
            if language not in found:
                found.append(language)
    return tuple(found)


def cmd_eval(args: argparse.Namespace) -> int:
    """Sample cross-file calls of the workspace and report how often the prompt shows the callee."""
    from codellama_lsp.core.evaluate import EvalOptions, render_text, run_eval, to_json

    if args.cases < 1:
        raise UsageError(f"--cases must be 1 or more, got {args.cases}")
    if args.budget < 0:
        raise UsageError(f"--budget must be 0 or more, got {args.budget}")
    options = EvalOptions(
        languages=_eval_languages(args.lang),
        cases=args.cases,
        budget_chars=args.budget,
        seed=args.seed,
    )
    settings = _settings(args)
    context = settings.context
    index = _workspace(
        args.workspace,
        WorkspaceOptions(exclude=context.exclude, max_file_bytes=context.max_file_bytes),
    )
    backend = _backend(settings) if args.model or settings.backend.type != "local" else None
    try:
        report = run_eval(index, settings, options, Estimate(settings.model.n_ctx), backend)
    finally:
        if backend is not None:
            backend.close()
    if not report.cases:
        log.warning("no cross-file call sites found in %s", index.root)
    if args.json:
        sys.stdout.write(json.dumps(to_json(report), indent=2) + "\n")
    else:
        sys.stdout.write(render_text(report))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    """Acceptance from the local counts; nothing but those files is read."""
    from codellama_lsp.core.stats import StatsError, report, stats_dir

    try:
        result = report(args.days)
    except StatsError as exc:
        raise UsageError(str(exc)) from exc
    if args.json:
        print(json.dumps({"dir": str(stats_dir()), **result.to_json()}, indent=2))
    else:
        print(result.table())
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "complete": cmd_complete,
    "prompt": cmd_prompt,
    "eval": cmd_eval,
    "index": cmd_index,
    "models": cmd_models,
    "stats": cmd_stats,
}

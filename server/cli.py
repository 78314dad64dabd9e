"""Command line: ``codellama-lsp --stdio`` and the inspection commands.

``complete`` and ``prompt`` run the same pipeline as the server (windows,
repository context, token budget), so what they print is what an editor would
get at that position; ``index`` shows what the server would index.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from codellama_lsp.context.assemble import PromptParts, assemble, auto_context_budget
from codellama_lsp.context.documents import UTF32, Document, Position
from codellama_lsp.context.errors import CodeLlamaLspError
from codellama_lsp.context.index import RepositoryIndex, index_stats
from codellama_lsp.context.packing import TokenCounter, estimate_tokens
from codellama_lsp.context.workspace import WorkspaceOptions
from codellama_lsp.quant.engine import CompletionRequest, Engine, EngineConfig
from codellama_lsp.quant.errors import ModelError

from . import __version__
from .logs import setup_logging
from .settings import Settings

log = logging.getLogger(__name__)


class UsageError(Exception):
    """Bad arguments: exit status 2, like argparse's own errors."""


def _common_flags(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--model", metavar="PATH", default=default, help="Code Llama GGUF file")
    parser.add_argument(
        "--max-tokens", metavar="N", type=int, default=default, help="most tokens to generate"
    )
    parser.add_argument(
        "--log-file", metavar="FILE", default=default, help="log here instead of stderr"
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        default=argparse.SUPPRESS if suppress else "INFO",
    )


def _context_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workspace", metavar="DIR", default=None, help="index DIR for repository context"
    )
    parser.add_argument(
        "--context-tokens",
        metavar="N",
        type=int,
        default=None,
        help="token budget for repository context (default: what n_ctx leaves; 0: none)",
    )
    parser.add_argument("--fim-order", choices=["spm", "psm"], default=None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codellama-lsp",
        description="Inline code completion language server running Code Llama locally.",
    )
    parser.add_argument("--version", action="version", version=f"codellama-lsp {__version__}")
    parser.add_argument(
        "--stdio", action="store_true", help="serve LSP over stdin/stdout (the default)"
    )
    _common_flags(parser, suppress=False)
    sub = parser.add_subparsers(dest="command")
    location_help = "FILE:LINE:COL, LINE and COL 1-based, COL counted in characters"
    complete = sub.add_parser("complete", help="print the completion at a position")
    complete.add_argument("location", help=location_help)
    _context_flags(complete)
    _common_flags(complete, suppress=True)
    prompt = sub.add_parser(
        "prompt",
        help="print the exact prompt that would be sent",
        description="Print the prompt for a position: exact tokens with --model, "
        "else the same layout untokenized.",
    )
    prompt.add_argument("location", help=location_help)
    _context_flags(prompt)
    _common_flags(prompt, suppress=True)
    index = sub.add_parser("index", help="index a workspace and list its files or statistics")
    index.add_argument("directory", metavar="DIR", help="workspace root")
    index.add_argument(
        "--stats", action="store_true", help="print counts, build time and memory, not files"
    )
    index.add_argument(
        "--exclude",
        metavar="GLOB",
        action="append",
        default=[],
        help="leave matching files out (.gitignore syntax; repeatable)",
    )
    index.add_argument("--log-file", metavar="FILE", default=argparse.SUPPRESS)
    index.add_argument(
        "--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default=argparse.SUPPRESS
    )
    models = sub.add_parser(
        "models",
        help="list, download, locate or quantize Code Llama GGUF models",
        description="Code Llama GGUF builds by name; downloads go to the model cache "
        "(set CODELLAMA_LSP_MODELS_DIR to move it).",
    )
    models_sub = models.add_subparsers(dest="models_command", required=True)
    models_sub.add_parser("list", help="the catalog, with what is downloaded")
    fetch = models_sub.add_parser("download", help="download a catalog model (resumable)")
    fetch.add_argument("name", help="catalog name, e.g. codellama-7b-q4_k_m")
    where = models_sub.add_parser("path", help="print a downloaded model's file path")
    where.add_argument("name", help="catalog name")
    quant = models_sub.add_parser(
        "quantize", help="quantize a GGUF file with llama.cpp (F32/F16 to Q8_0, Q4_K_M...)"
    )
    quant.add_argument("source", metavar="IN", help="GGUF file to read (never modified)")
    quant.add_argument("dest", metavar="OUT", help="GGUF file to write")
    quant.add_argument("--type", dest="qtype", default="Q4_K_M", help="Q4_K_M (default), ...")
    quant.add_argument("--threads", type=int, default=0, help="0: every core")
    quant.add_argument(
        "--allow-requantize",
        action="store_true",
        help="accept an already quantized input (loses quality)",
    )
    for p in (models, fetch, where, quant):
        p.add_argument("--log-file", metavar="FILE", default=argparse.SUPPRESS)
        p.add_argument(
            "--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default=argparse.SUPPRESS
        )
    return parser


def cmd_models(args: argparse.Namespace) -> int:
    from codellama_lsp.quant.catalog import CATALOG, DEFAULT_MODEL, cached_path, lookup, models_dir
    from codellama_lsp.quant.download import download, how_to_get

    command = args.models_command
    if command == "list":
        out = sys.stdout
        out.write(f"{'name':<32}{'size':>9}  {'use':<9}{'state':<12}source\n")
        for entry in CATALOG:
            state = "downloaded" if cached_path(entry) else "-"
            use = "infill" if entry.for_infill else "chat"
            mark = " (default)" if entry.name == DEFAULT_MODEL else ""
            out.write(
                f"{entry.name:<32}{entry.size_gb:>6.2f} GB  {use:<9}{state:<12}"
                f"{entry.repo_id}/{entry.filename}{mark}\n"
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


@dataclass(frozen=True)
class _Prompt:
    request: CompletionRequest
    parts: PromptParts
    path: Path


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
    if args.context_tokens is not None and args.context_tokens < 0:
        raise UsageError(f"--context-tokens must be 0 or more, got {args.context_tokens}")
    if args.workspace is None:
        return None
    options = WorkspaceOptions(
        exclude=settings.context_exclude, max_file_bytes=settings.context_max_file_bytes
    )
    return _workspace(args.workspace, options)


def _build_prompt(
    args: argparse.Namespace,
    settings: Settings,
    target: _Target,
    index: RepositoryIndex | None,
    count_tokens: TokenCounter,
) -> _Prompt:
    """The server's prompt for a position: the same windows, context and budget."""
    max_tokens = args.max_tokens or settings.max_tokens
    context_tokens = args.context_tokens
    if context_tokens is None:
        context_tokens = auto_context_budget(
            settings.n_ctx,
            max_tokens,
            min(settings.max_prefix_chars, target.offset),
            min(settings.max_suffix_chars, len(target.text) - target.offset),
        )
    parts = assemble(
        target.text,
        target.offset,
        max_prefix_chars=settings.max_prefix_chars,
        max_suffix_chars=settings.max_suffix_chars,
        path=target.path.resolve(),
        index=index,
        context_tokens=context_tokens,
        count_tokens=count_tokens,
    )
    request = CompletionRequest(
        prefix=parts.prefix,
        suffix=parts.suffix,
        max_tokens=max_tokens,
        fim_order=args.fim_order or settings.fim_order,
        context=parts.context,
    )
    return _Prompt(request, parts, target.path)


def _log_context(parts: PromptParts) -> None:
    chunks = ", ".join(f"{c.path}:{c.start_line + 1} ({c.source})" for c in parts.chunks)
    log.info(
        "context: %d tokens in %d chunks%s",
        parts.context_tokens,
        len(parts.chunks),
        f": {chunks}" if chunks else "",
    )


def untokenized_prompt(request: CompletionRequest) -> str:
    """The prompt's layout as text, for when no model is at hand to tokenize it.

    It mirrors ``Engine.render``: SentencePiece shows a leading space before the
    prefix, none before the suffix; the engine's trimming to ``n_ctx`` is not
    applied.
    """
    prefix = " " + request.prefix if request.prefix else ""
    context = " " + request.context if request.context else ""
    if request.fim_order == "psm":
        return f"<s>{context}▁<PRE>{prefix}▁<SUF>{request.suffix}▁<MID>"
    return f"<s>{context}▁<PRE>▁<SUF>{request.suffix}▁<MID>{prefix}"


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


def _engine(args: argparse.Namespace, settings: Settings) -> Engine:
    return Engine.load(
        EngineConfig(
            model_path=args.model or _default_model(),
            n_ctx=settings.n_ctx,
            n_gpu_layers=settings.n_gpu_layers,
            n_threads=settings.n_threads,
        )
    )


def _engine_counter(engine: Engine) -> TokenCounter:
    """The engine's exact count: the server packs context with it too."""

    def count(text: str) -> int:
        return len(engine.tokenize_suffix(text))

    return count


def cmd_complete(args: argparse.Namespace) -> int:
    settings = Settings()
    # Argument and file errors first: they should not wait for a model to load.
    target = _locate(args.location)
    index = _context_index(args, settings)
    engine = _engine(args, settings)
    built = _build_prompt(args, settings, target, index, _engine_counter(engine))
    _log_context(built.parts)
    started = time.perf_counter()
    result = engine.complete(built.request)
    log.info(
        "complete %s prompt_tokens=%d context_tokens=%d generated_tokens=%d ttft_ms=%.1f "
        "total_ms=%.1f stop=%s",
        built.path,
        result.prompt_tokens,
        built.parts.context_tokens,
        result.generated_tokens,
        result.ttft_ms,
        (time.perf_counter() - started) * 1000,
        result.stop_reason,
    )
    sys.stdout.write(result.text + "\n")
    return 0


def cmd_prompt(args: argparse.Namespace) -> int:
    settings = Settings()
    target = _locate(args.location)
    index = _context_index(args, settings)
    if args.model:
        engine = _engine(args, settings)
        built = _build_prompt(args, settings, target, index, _engine_counter(engine))
        tokens = engine.prepare(built.request).tokens
        sys.stdout.write(engine.render(tokens) + "\n")
        _log_context(built.parts)
        log.info("prompt: %d tokens, order %s", len(tokens), built.request.fim_order)
        return 0
    built = _build_prompt(args, settings, target, index, estimate_tokens)
    text = untokenized_prompt(built.request)
    sys.stdout.write(text + "\n")
    log.warning("prompt is untokenized: no model was given (--model PATH); counts are estimates")
    _log_context(built.parts)
    log.info("prompt: ~%d tokens, order %s", estimate_tokens(text), built.request.fim_order)
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


def private_protocol_stdout() -> BinaryIO:
    """A stdout of the protocol's own; file descriptor 1 then points at stderr.

    llama-cpp-python points fd 1 at /dev/null while it loads a model (on a
    worker thread), and native code may print to fd 1: either would swallow or
    corrupt the JSON-RPC messages the event loop writes meanwhile.  Anything
    else that writes to stdout (print, C libraries, child processes) lands in
    stderr instead.
    """
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "wb")


def serve(args: argparse.Namespace) -> int:
    from .app import CodeLlamaServer
    from .features import register_all

    ls = CodeLlamaServer(model_override=args.model, max_tokens_override=args.max_tokens)
    register_all(ls)
    ls.start_io(stdin=sys.stdin.buffer, stdout=private_protocol_stdout())
    # exit after shutdown is a clean stop (0); exit without it, or a closed
    # stdin, is not (1), as the LSP specification asks.
    return 0 if ls.protocol._shutdown else 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_file, args.log_level)
    try:
        if args.command == "complete":
            return cmd_complete(args)
        if args.command == "prompt":
            return cmd_prompt(args)
        if args.command == "index":
            return cmd_index(args)
        if args.command == "models":
            return cmd_models(args)
        return serve(args)
    except (UsageError, ModelError, CodeLlamaLspError) as exc:
        sys.stderr.write(f"codellama-lsp: error: {exc}\n")
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `codellama-lsp models list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0

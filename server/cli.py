"""Command line: ``codellama-lsp --stdio`` and the inspection commands.

``complete`` and ``prompt`` run the same pipeline as the server, so what they
print is what an editor would get at that position.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from codellama_lsp.context.documents import UTF32, Document, Position
from codellama_lsp.context.errors import CodeLlamaLspError
from codellama_lsp.context.prompt import fim_input
from codellama_lsp.quant.engine import CompletionRequest, Engine, EngineConfig
from codellama_lsp.quant.errors import ModelError

from . import __version__
from .logs import setup_logging
from .settings import Settings

log = logging.getLogger(__name__)


class UsageError(Exception):
    pass


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
    complete.add_argument("--fim-order", choices=["spm", "psm"], default=None)
    _common_flags(complete, suppress=True)
    prompt = sub.add_parser("prompt", help="print the exact prompt that would be sent")
    prompt.add_argument("location", help=location_help)
    prompt.add_argument("--workspace", metavar="DIR", default=None, help="workspace root")
    prompt.add_argument("--fim-order", choices=["spm", "psm"], default=None)
    _common_flags(prompt, suppress=True)
    return parser


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


def _request(args: argparse.Namespace, settings: Settings) -> tuple[CompletionRequest, str]:
    path, line, col = parse_location(args.location)
    text = _read(path)
    doc = Document(path.resolve().as_uri(), text, encoding=UTF32)
    line_text = doc.line_text(line - 1) if line - 1 < doc.line_count else ""
    if line - 1 >= doc.line_count or col - 1 > len(line_text):
        raise UsageError(
            f"{path}:{line}:{col} is past the end of the "
            + ("file" if line - 1 >= doc.line_count else "line")
            + f" ({doc.line_count} lines)"
        )
    offset = doc.offset_at(Position(line - 1, col - 1))
    fim = fim_input(text, offset, settings.max_prefix_chars, settings.max_suffix_chars)
    request = CompletionRequest(
        prefix=fim.prefix,
        suffix=fim.suffix,
        max_tokens=args.max_tokens or settings.max_tokens,
        fim_order=args.fim_order or settings.fim_order,
    )
    return request, str(path)


def _engine(args: argparse.Namespace, settings: Settings) -> Engine:
    if not args.model:
        raise UsageError("no model: pass --model PATH to a Code Llama GGUF file")
    return Engine.load(
        EngineConfig(
            model_path=args.model,
            n_ctx=settings.n_ctx,
            n_gpu_layers=settings.n_gpu_layers,
            n_threads=settings.n_threads,
        )
    )


def cmd_complete(args: argparse.Namespace) -> int:
    settings = Settings()
    request, path = _request(args, settings)
    engine = _engine(args, settings)
    started = time.perf_counter()
    result = engine.complete(request)
    log.info(
        "complete %s prompt_tokens=%d generated_tokens=%d ttft_ms=%.1f total_ms=%.1f stop=%s",
        path,
        result.prompt_tokens,
        result.generated_tokens,
        result.ttft_ms,
        (time.perf_counter() - started) * 1000,
        result.stop_reason,
    )
    sys.stdout.write(result.text + "\n")
    return 0


def cmd_prompt(args: argparse.Namespace) -> int:
    settings = Settings()
    request, _ = _request(args, settings)
    engine = _engine(args, settings)
    prepared = engine.prepare(request)
    sys.stdout.write(engine.render(prepared.tokens) + "\n")
    log.info("prompt: %d tokens, order %s", len(prepared.tokens), request.fim_order)
    return 0


def serve(args: argparse.Namespace) -> int:
    from .app import CodeLlamaServer
    from .features import register_all

    ls = CodeLlamaServer(model_override=args.model, max_tokens_override=args.max_tokens)
    register_all(ls)
    ls.start_io()
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
        return serve(args)
    except (UsageError, ModelError, CodeLlamaLspError) as exc:
        sys.stderr.write(f"codellama-lsp: error: {exc}\n")
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        return 130

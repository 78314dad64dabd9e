"""Command line: the argument parser, ``--stdio`` serving, and dispatch to the commands.

Only argparse and logging load before the arguments are parsed, so
``--version`` and ``--help`` answer at once; the commands live in
:mod:`.commands`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import BinaryIO

from . import __version__
from .logs import setup_logging

log = logging.getLogger(__name__)


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
    parser.add_argument("--fim-order", choices=["auto", "spm", "psm"], default=None)
    parser.add_argument(
        "--settings",
        metavar="JSON",
        default=None,
        help="settings as an editor sends them (JSON, or @FILE): the same keys as "
        'codellama.* (e.g. \'{"completion": {"timeBudgetMs": 500}}\')',
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
    evaluate = sub.add_parser(
        "eval",
        help="measure how often prompts show the function being called (no model needed)",
        description="Sample cross-file call sites of the workspace with tree-sitter, cut each "
        "after its '(', build the prompt the server would build there, and report per "
        "language how often it holds the callee's definition, beside a BM25-windows "
        "baseline with the same budget; with --model also generate there and check the "
        "call's arguments.",
    )
    evaluate.add_argument(
        "--workspace", metavar="DIR", default=".", help="the repository (default: .)"
    )
    evaluate.add_argument(
        "--lang",
        metavar="L",
        action="append",
        default=[],
        help="only these languages (repeatable or comma-separated; default: every one present)",
    )
    evaluate.add_argument(
        "--cases", metavar="N", type=int, default=40, help="cases per language (default: 40)"
    )
    evaluate.add_argument(
        "--budget",
        metavar="CHARS",
        type=int,
        default=6000,
        help="characters of repository context (context.maxTokens = CHARS // 3; default: 6000)",
    )
    evaluate.add_argument(
        "--seed", metavar="S", type=int, default=0, help="sampling seed (default: 0)"
    )
    evaluate.add_argument(
        "--json", action="store_true", help="print one JSON object (figures and cases)"
    )
    evaluate.add_argument(
        "--settings",
        metavar="JSON",
        default=None,
        help="settings as an editor sends them (JSON, or @FILE), as for prompt",
    )
    _common_flags(evaluate, suppress=True)
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
    stats = sub.add_parser(
        "stats",
        help="print how often suggestions were accepted, per language (counted locally)",
        description="Acceptance rate, accepted characters and p50/p95 latency per language, "
        "from the counts the server keeps in the user data directory (never code, never "
        "sent anywhere; set CODELLAMA_LSP_STATS_DIR to move them).",
    )
    stats.add_argument(
        "--days", metavar="N", type=int, default=7, help="the last N days, today included (7)"
    )
    stats.add_argument(
        "--json", action="store_true", help="one JSON object, also per model and backend"
    )
    for p in (models, fetch, where, quant, stats):
        p.add_argument("--log-file", metavar="FILE", default=argparse.SUPPRESS)
        p.add_argument(
            "--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default=argparse.SUPPRESS
        )
    return parser


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
    args = parser.parse_args(argv)  # --version and --help end here, before heavy imports
    setup_logging(args.log_file, args.log_level)
    from codellama_lsp.context.errors import CodeLlamaLspError
    from codellama_lsp.quant.errors import ModelError

    from .commands import COMMANDS, UsageError

    try:
        command = COMMANDS.get(args.command or "", serve)
        return command(args)
    except (UsageError, ModelError, CodeLlamaLspError) as exc:
        sys.stderr.write(f"codellama-lsp: error: {exc}\n")
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `codellama-lsp models list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0

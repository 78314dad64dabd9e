"""Logging: stdout carries the protocol, so logs go to stderr or a file only."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_file: str | None, level: str = "INFO") -> None:
    handler: logging.Handler
    if log_file:
        Path(log_file).expanduser().parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(Path(log_file).expanduser(), encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    if level.upper() != "DEBUG":
        handler.addFilter(_quiet_library_tracebacks)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pygls logs every message body at INFO: far too much for a per-keystroke server.
    logging.getLogger("pygls").setLevel(logging.WARNING)


def _quiet_library_tracebacks(record: logging.LogRecord) -> bool:
    """Keep pygls' one-line error, drop its traceback: the client got an error response."""
    if not record.name.startswith("pygls"):
        return True
    if record.exc_info and type(record.exc_info[1]).__name__ == "_AnsweredError":
        return False  # already logged, with its reason, when it was answered
    record.exc_info = None
    record.exc_text = None
    message = record.getMessage()
    if "\n" in message:
        record.msg, record.args = message.splitlines()[0], None
    return True

"""Acceptance statistics: counts kept on this machine, never code, never sent anywhere.

Each event is one JSON line in a file per local day under the user's data
directory (``stats/YYYY-MM-DD.jsonl``; ``CODELLAMA_LSP_STATS_DIR`` moves it).
Lines are appended with ``O_APPEND`` in one ``write``, so several servers (one
per editor window) can write to the same day at once.  An event holds only
labels and numbers: the time, what happened (``shown``, ``accepted``,
``partial``), the language id, the model file's name (or the remote model's),
the backend kind, a length in characters and, for a shown suggestion, its
latency.  Reading skips lines it cannot parse, so a torn or foreign line costs
that line only.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from codellama_lsp.quant.backend import BackendInfo

log = logging.getLogger(__name__)

STATS_DIR_ENV = "CODELLAMA_LSP_STATS_DIR"
EVENTS = ("shown", "accepted", "partial")
#: Labels are names, never content: anything longer is cut.
_LABEL_MAX = 120


class StatsError(Exception):
    """Statistics asked for in a way that cannot be answered (a bad day count)."""


def stats_dir() -> Path:
    """Where the day files live: ``$CODELLAMA_LSP_STATS_DIR``, else the user data directory."""
    override = os.environ.get(STATS_DIR_ENV)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("codellama-lsp")) / "stats"


def model_label(info: BackendInfo) -> str:
    """The model's name without paths or credentials: a file name, or the remote model.

    A remote backend's label is ``"PROTOCOL URL [MODEL]"``; the URL may hold a
    user and password, so only the model name, else the host, is kept.
    """
    if info.kind == "local":
        return _label(Path(info.label).name)
    parts = info.label.split()
    if len(parts) >= 3:
        return _label(parts[2])
    host = urlsplit(parts[1]).hostname if len(parts) == 2 else None
    return _label(host or info.kind)


def _label(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable())[:_LABEL_MAX] or "unknown"


@dataclass(frozen=True)
class Event:
    """One line of a day file."""

    event: str
    language: str
    model: str
    backend: str
    chars: int
    latency_ms: float = 0.0
    #: Seconds since the epoch.
    time: float = 0.0

    def to_json(self) -> str:
        record: dict[str, Any] = {
            "time": round(self.time, 3),
            "event": self.event,
            "language": _label(self.language),
            "model": _label(self.model),
            "backend": _label(self.backend),
            "chars": max(0, int(self.chars)),
        }
        if self.event == "shown":
            record["latency_ms"] = round(max(0.0, self.latency_ms), 1)
        return json.dumps(record, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Event | None:
        """The event on ``line``, or None for anything that is not one (skipped)."""
        try:
            raw = json.loads(line)
            if not isinstance(raw, dict) or raw.get("event") not in EVENTS:
                return None
            return cls(
                event=str(raw["event"]),
                language=str(raw.get("language", "unknown")),
                model=str(raw.get("model", "unknown")),
                backend=str(raw.get("backend", "unknown")),
                chars=int(raw.get("chars", 0)),
                latency_ms=float(raw.get("latency_ms", 0.0)),
                time=float(raw.get("time", 0.0)),
            )
        except (ValueError, TypeError, KeyError):
            return None


def day_file(root: Path, day: date) -> Path:
    return root / f"{day.isoformat()}.jsonl"


class StatsLog:
    """Appends events to today's file; a failing disk is logged once and costs nothing else."""

    def __init__(self, root: Path | None = None) -> None:
        self._root = root
        self._warned = False

    @property
    def root(self) -> Path:
        return self._root if self._root is not None else stats_dir()

    def append(self, event: Event) -> bool:
        """True when the line was written; never raises."""
        if not event.time:
            event = Event(**{**event.__dict__, "time": time.time()})
        line = (event.to_json() + "\n").encode("utf-8")
        day = datetime.fromtimestamp(event.time).date()
        try:
            root = self.root
            root.mkdir(parents=True, exist_ok=True)
            fd = os.open(day_file(root, day), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)  # one write: lines of concurrent writers never interleave
            finally:
                os.close(fd)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("acceptance statistics are not kept: %s", exc)
            return False
        return True


def read_events(root: Path, days: int, today: date | None = None) -> Iterator[Event]:
    """The events of the last ``days`` days (today included); unreadable lines are skipped."""
    if days < 1:
        raise StatsError(f"--days must be at least 1, got {days}")
    today = today or date.today()
    for back in range(days - 1, -1, -1):
        path = day_file(root, today - timedelta(days=back))
        try:
            with path.open(encoding="utf-8", errors="replace") as f:
                for line in f:
                    event = Event.from_json(line)
                    if event is not None:
                        yield event
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (0 for no values): a latency some request really had."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Tally:
    """Counts for one language, model, backend, or all of them."""

    shown: int = 0
    accepted: int = 0
    partial: int = 0
    accepted_chars: int = 0
    latencies: list[float] = field(default_factory=list)

    def add(self, event: Event) -> None:
        if event.event == "shown":
            self.shown += 1
            self.latencies.append(event.latency_ms)
        elif event.event == "accepted":
            self.accepted += 1
            self.accepted_chars += event.chars
        else:
            self.partial += 1
            self.accepted_chars += event.chars

    @property
    def rate(self) -> float:
        """Accepted over shown; an accept of a suggestion shown before the window counts too."""
        return min(1.0, self.accepted / self.shown) if self.shown else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "shown": self.shown,
            "accepted": self.accepted,
            "partial": self.partial,
            "accepted_chars": self.accepted_chars,
            "rate": round(self.rate, 4),
            "p50_ms": round(percentile(self.latencies, 50), 1),
            "p95_ms": round(percentile(self.latencies, 95), 1),
        }


@dataclass
class Report:
    """The last ``days`` days: overall, and per language, model and backend."""

    days: int
    total: Tally = field(default_factory=Tally)
    languages: dict[str, Tally] = field(default_factory=dict)
    models: dict[str, Tally] = field(default_factory=dict)
    backends: dict[str, Tally] = field(default_factory=dict)

    def add(self, event: Event) -> None:
        self.total.add(event)
        for table, key in (
            (self.languages, event.language),
            (self.models, event.model),
            (self.backends, event.backend),
        ):
            table.setdefault(key, Tally()).add(event)

    def to_json(self) -> dict[str, Any]:
        def by(table: dict[str, Tally]) -> dict[str, Any]:
            return {key: table[key].to_json() for key in sorted(table)}

        return {
            "days": self.days,
            "total": self.total.to_json(),
            "languages": by(self.languages),
            "models": by(self.models),
            "backends": by(self.backends),
        }

    def table(self) -> str:
        """Per language and overall: what ``codellama-lsp stats`` prints."""
        rows = [("language", "shown", "accepted", "rate", "chars", "partial", "p50 ms", "p95 ms")]
        tallies = [*sorted(self.languages.items()), ("all", self.total)]
        for name, t in tallies:
            rows.append(
                (
                    name,
                    str(t.shown),
                    str(t.accepted),
                    f"{t.rate:.0%}",
                    str(t.accepted_chars),
                    str(t.partial),
                    f"{percentile(t.latencies, 50):.0f}",
                    f"{percentile(t.latencies, 95):.0f}",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
            for row in rows
        ]
        plural = "day" if self.days == 1 else f"{self.days} days"
        header = f"Acceptance over the last {plural} (counted on this machine only)"
        return "\n".join([header, *lines])


def summarize(events: Iterable[Event], days: int) -> Report:
    report = Report(days)
    for event in events:
        report.add(event)
    return report


def report(days: int = 7, root: Path | None = None, today: date | None = None) -> Report:
    """The last ``days`` days of every server on this machine."""
    return summarize(read_events(root or stats_dir(), days, today), days)


def today_summary(root: Path | None = None) -> dict[str, Any]:
    """Today's overall counts, for a status tooltip."""
    return report(1, root).total.to_json()

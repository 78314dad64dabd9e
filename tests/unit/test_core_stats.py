"""Acceptance statistics: day files, aggregation, percentiles, the days window, bad lines."""

from __future__ import annotations

import json
import os
import threading
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from codellama_lsp.core.stats import (
    STATS_DIR_ENV,
    Event,
    StatsError,
    StatsLog,
    day_file,
    model_label,
    percentile,
    report,
    stats_dir,
)
from codellama_lsp.quant.backend import BackendInfo

TODAY = date(2026, 3, 10)


def at(day: date, hour: int = 12) -> float:
    return datetime(day.year, day.month, day.day, hour).timestamp()


def shown(language: str, latency: float, day: date = TODAY, model: str = "m.gguf") -> Event:
    return Event("shown", language, model, "local", 10, latency, at(day))


def accepted(language: str, chars: int, day: date = TODAY, event: str = "accepted") -> Event:
    return Event(event, language, "m.gguf", "local", chars, 0.0, at(day))


def test_rate_chars_and_latency_per_language(tmp_path: Path) -> None:
    log = StatsLog(tmp_path)
    for latency in (10, 20, 30, 40, 100):
        assert log.append(shown("python", latency))
    log.append(shown("go", 50, model="other.gguf"))
    log.append(accepted("python", 12))
    log.append(accepted("python", 8))
    log.append(accepted("python", 3, event="partial"))
    result = report(7, tmp_path, TODAY)
    py = result.languages["python"].to_json()
    assert py == {
        "shown": 5,
        "accepted": 2,
        "partial": 1,
        "accepted_chars": 23,
        "rate": 0.4,
        "p50_ms": 30.0,
        "p95_ms": 100.0,
    }
    assert result.total.shown == 6 and result.total.accepted == 2
    assert set(result.models) == {"m.gguf", "other.gguf"}
    assert result.models["other.gguf"].shown == 1
    assert result.backends["local"].shown == 6
    table = result.table()
    assert "python" in table and "40%" in table and "all" in table


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) == 0.0


def test_days_window_counts_only_the_last_n_days(tmp_path: Path) -> None:
    log = StatsLog(tmp_path)
    log.append(shown("python", 10, TODAY))
    log.append(shown("python", 10, TODAY - timedelta(days=1)))
    log.append(shown("python", 10, TODAY - timedelta(days=7)))
    assert report(1, tmp_path, TODAY).total.shown == 1
    assert report(2, tmp_path, TODAY).total.shown == 2
    assert report(7, tmp_path, TODAY).total.shown == 2
    assert report(8, tmp_path, TODAY).total.shown == 3
    with pytest.raises(StatsError):
        report(0, tmp_path, TODAY)


def test_corrupt_and_foreign_lines_are_skipped(tmp_path: Path) -> None:
    log = StatsLog(tmp_path)
    log.append(shown("python", 10))
    with day_file(tmp_path, TODAY).open("a", encoding="utf-8") as f:
        f.write('{"event": "shown", "language": "py\n')  # torn
        f.write("not json\n[1, 2]\n")
        f.write('{"event": "deleted"}\n{"event": "accepted", "chars": "many"}\n')
        f.write("\xff\xfe\n")
    log.append(accepted("python", 4))
    result = report(1, tmp_path, TODAY)
    assert result.total.shown == 1 and result.total.accepted == 1


def test_lines_hold_only_counts_and_labels(tmp_path: Path) -> None:
    StatsLog(tmp_path).append(shown("python", 12.345))
    (line,) = day_file(tmp_path, TODAY).read_text(encoding="utf-8").splitlines()
    assert set(json.loads(line)) == {
        "time",
        "event",
        "language",
        "model",
        "backend",
        "chars",
        "latency_ms",
    }


def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    def write() -> None:
        log = StatsLog(tmp_path)
        for _ in range(200):
            log.append(shown("python", 1.0))

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert report(1, tmp_path, TODAY).total.shown == 800


def test_a_write_error_is_logged_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    log = StatsLog(blocker / "stats")  # a directory under a file: cannot be made
    assert not log.append(shown("python", 1.0))
    assert not log.append(shown("python", 1.0))
    assert sum("not kept" in r.message for r in caplog.records) == 1


def test_the_directory_follows_the_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATS_DIR_ENV, str(tmp_path / "s"))
    assert stats_dir() == tmp_path / "s"
    monkeypatch.delenv(STATS_DIR_ENV)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    if os.name == "posix" and os.uname().sysname != "Darwin":
        assert stats_dir() == tmp_path / "xdg" / "codellama-lsp" / "stats"


def test_model_labels_carry_no_paths_or_credentials() -> None:
    local = BackendInfo("local", "/home/me/models/codellama-7b.Q4_K_M.gguf", 4096)
    assert model_label(local) == "codellama-7b.Q4_K_M.gguf"
    named = BackendInfo("openai", "openai https://user:pw@host:8080/v1 codellama-7b", 4096)
    assert model_label(named) == "codellama-7b"
    unnamed = BackendInfo("llama-server", "infill http://user:pw@gpu-box:8080/?key=k", 4096)
    assert model_label(unnamed) == "gpu-box"

"""Blocking work off the event loop: a lane bounds its threads however much work comes."""

from __future__ import annotations

import asyncio
import threading

import pytest

from codellama_lsp.server.worker import WorkerLane


async def test_a_lane_never_runs_more_threads_than_it_has() -> None:
    lane = WorkerLane(2, "test")
    release = threading.Event()
    running: set[str] = set()
    peak = 0
    lock = threading.Lock()

    def job(i: int) -> int:
        nonlocal peak
        with lock:
            running.add(threading.current_thread().name)
            peak = max(peak, threading.active_count())
        release.wait(5)
        return i * 2

    before = threading.active_count()
    futures = [lane.run(lambda i=i: job(i)) for i in range(50)]  # type: ignore[misc]
    await asyncio.sleep(0.05)
    release.set()
    assert await asyncio.gather(*futures) == [i * 2 for i in range(50)]
    assert lane.threads == 2 and len(running) <= 2
    assert peak <= before + 2


async def test_errors_reach_the_awaiting_coroutine_and_the_lane_goes_on() -> None:
    lane = WorkerLane(1, "test")

    def fail() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await lane.run(fail)
    assert await lane.run(lambda: 7) == 7
    assert lane.threads == 1

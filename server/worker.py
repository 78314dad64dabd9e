"""Run blocking work off the event loop on daemon threads.

Daemon threads, not a ThreadPoolExecutor: a long prompt evaluation must not keep
the process alive after the client said exit (executor threads are joined at
interpreter shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def _bridge(fn: Callable[[], T]) -> tuple[asyncio.Future[T], Callable[[], None]]:
    """A future of the running loop, and the job that runs ``fn`` on any thread and settles it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def job() -> None:
        try:
            result = fn()
        except BaseException as exc:  # handed to the awaiting coroutine
            outcome: tuple[T | None, BaseException | None] = (None, exc)
        else:
            outcome = (result, None)
        # RuntimeError: the loop closed while the work ran, so nobody waits.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, *outcome)

    return future, job


def run_off_loop(fn: Callable[[], T], name: str = "codellama-worker") -> asyncio.Future[T]:
    future, job = _bridge(fn)
    threading.Thread(target=job, name=name, daemon=True).start()
    return future


class WorkerLane:
    """A fixed number of daemon threads for one kind of work, fed from a queue.

    Every keystroke starts a completion; with a thread each, typing across
    many documents piled up hundreds of threads that all waited for the one
    model.  A lane runs at most ``workers`` at a time (superseded work, already
    cancelled, passes through quickly) and starts its threads as work first comes.
    """

    def __init__(self, workers: int, name: str) -> None:
        self._workers = max(1, workers)
        self._name = name
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._started = 0
        self._lock = threading.Lock()

    @property
    def threads(self) -> int:
        """Threads started so far (never more than ``workers``)."""
        return self._started

    def run(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        future, job = _bridge(fn)
        self._queue.put(job)
        with self._lock:
            if self._started < self._workers:
                self._started += 1
                threading.Thread(
                    target=self._serve, name=f"{self._name}-{self._started}", daemon=True
                ).start()
        return future

    def _serve(self) -> None:
        while True:
            self._queue.get()()

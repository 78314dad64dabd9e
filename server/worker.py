"""Run blocking work off the event loop on daemon threads.

Daemon threads, not a ThreadPoolExecutor: a long prompt evaluation must not keep
the process alive after the client said exit (executor threads are joined at
interpreter shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def run_off_loop(fn: Callable[[], T], name: str = "codellama-worker") -> asyncio.Future[T]:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def hand_back(result: T | None, error: BaseException | None) -> None:
        # RuntimeError: the loop closed while the work ran, so nobody waits.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, error)

    def work() -> None:
        try:
            result = fn()
        except BaseException as exc:  # handed to the awaiting coroutine
            hand_back(None, exc)
        else:
            hand_back(result, None)

    threading.Thread(target=work, name=name, daemon=True).start()
    return future

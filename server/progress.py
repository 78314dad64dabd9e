"""What the server tells the client about long work: ``$/progress`` and ``codellama/status``."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from .app import CodeLlamaServer

log = logging.getLogger(__name__)

STATUS_METHOD = "codellama/status"


def send_status(ls: CodeLlamaServer, state: str, message: str) -> None:
    """``codellama/status``: what the server is doing, for status bars and tests."""
    ls.protocol.notify(STATUS_METHOD, {"state": state, "message": message})


class Progress:
    """One ``$/progress`` task (a download, an index build).

    When the client cannot show progress, or refuses the token, nothing is sent
    and the work goes on regardless.  ``report`` may be called from worker
    threads; it hands the message to the event loop.
    """

    def __init__(self, ls: CodeLlamaServer, token: str | None) -> None:
        self._ls = ls
        self._token = token
        self._loop = asyncio.get_running_loop()
        self._percentage: int | None = None

    @classmethod
    async def begin(cls, ls: CodeLlamaServer, title: str, message: str = "") -> Progress:
        capabilities = ls.client_capabilities.window
        if capabilities is None or not capabilities.work_done_progress:
            return cls(ls, None)
        token = f"codellama-{ls.next_request_number()}"
        try:
            await asyncio.wait_for(ls.work_done_progress.create_async(token), 5)
        except Exception as exc:  # refused or never answered: go on without progress
            log.info("no progress for %s: %s", title, exc)
            return cls(ls, None)
        ls.work_done_progress.begin(
            token, types.WorkDoneProgressBegin(title=title, message=message, percentage=0)
        )
        return cls(ls, token)

    def report(self, message: str, percentage: int | None = None) -> None:
        """Thread-safe; a percentage already shown is not sent again."""
        if self._token is None or (percentage is not None and percentage == self._percentage):
            return
        self._percentage = percentage
        report = types.WorkDoneProgressReport(message=message, percentage=percentage)
        self._loop.call_soon_threadsafe(self._ls.work_done_progress.report, self._token, report)

    def end(self, message: str) -> None:
        if self._token is not None:
            self._ls.work_done_progress.end(self._token, types.WorkDoneProgressEnd(message=message))
            self._token = None

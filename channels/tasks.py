"""Stopping background tasks: cancel them, then wait until each has really finished."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any] | None]) -> None:
    """Cancel every task and await it, so no task outlives the object that started it.

    A task that is the caller itself is left alone: cancelling it would end the cleanup.
    """
    pending = [t for t in tasks if t is not None and not t.done()
               and t is not asyncio.current_task()]
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError):
            await task

"""Starting a node's parts one after another, and stopping them in reverse whatever fails.

Each part's stop goes on an :class:`~contextlib.AsyncExitStack` the moment its start returned,
so a start that fails midway stops exactly the parts already running, and nothing that never
started. At shutdown the same stack stops every part in the reverse order of starting.

A stop that raises is logged with the part's name and the stops after it still run: a hub that
fails to stop must not leave the database pool open. The first such failure is raised again
once every part was stopped, not only logged, so that the lifespan reports a failed shutdown
(uvicorn then logs "Application shutdown failed" with its traceback instead of "complete") and
a caller that runs the lifespan itself sees it. The later failures stay in the log; they are
often consequences of the first.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType

__all__ = ["NodeParts", "StartupError"]

log = logging.getLogger(__name__)

Step = Callable[[], Awaitable[object]]


class StartupError(RuntimeError):
    """A part of the node failed to start; the parts started before it were stopped again."""


class NodeParts:
    """The running parts of one node, stopped in reverse order when the context is left.

    ``await parts.start(name, start, stop=...)`` starts a part and then registers its stop;
    ``parts.running(name, stop)`` registers the stop of a part that is running already (built
    by its constructor, or started without awaiting). A failed start leaves the context as a
    :class:`StartupError` that names the part.
    """

    def __init__(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self._first_failure: Exception | None = None

    async def __aenter__(self) -> NodeParts:
        await self._stack.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)
        failure, self._first_failure = self._first_failure, None
        # While a start failure (or a cancellation) propagates, that is the error to report;
        # the stops that failed on its way out are in the log.
        if failure is not None and exc is None:
            raise failure

    async def start(self, name: str, start: Step, *, stop: Step | None = None) -> None:
        try:
            await start()
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise StartupError(f"coedit could not start: {name} failed ({reason})") from exc
        if stop is not None:
            self.running(name, stop)

    def running(self, name: str, stop: Step) -> None:
        async def stop_part() -> None:
            try:
                await stop()
            except Exception as exc:
                log.exception("stopping %s failed; stopping the other parts anyway", name)
                if self._first_failure is None:
                    self._first_failure = exc

        self._stack.push_async_callback(stop_part)

"""Asyncio helpers of the worker's app: a coroutine finished in a task, a repeated watch."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

WATCH_EVERY = 1.0  # seconds between two runs of each watcher


async def every(seconds: float, fun: Callable[[], Awaitable[None]]) -> None:
    """Awaits ``fun`` every ``seconds``; an error it raises is logged, and it goes on."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await fun()
        except Exception:  # a watch that fails must not stop the worker it watches
            log.exception("a watch of the worker failed")


async def finish(coro: Coroutine[Any, Any, Any], waiting: Any) -> Any:
    """Runs a coroutine that suspended on ``waiting`` to its end, as its task would.

    Args:
        coro: The coroutine, after a first step that yielded ``waiting``.
        waiting: The future it waits for, or None (a bare yield: it lets the loop run).

    Returns:
        What the coroutine returns; cancelling this task cancels the coroutine as
        cancelling its own task would.
    """
    while True:
        thrown: BaseException | None = None
        try:
            if waiting is None:
                await asyncio.sleep(0)
            else:
                # as a task does with the future its coroutine yields: then cancelling this
                # task cancels that future, and the coroutine reads its result itself
                waiting._asyncio_future_blocking = False
                await waiting
        except asyncio.CancelledError as exc:
            if waiting is None or not waiting.cancelled():
                thrown = exc  # this task was cancelled, not the future: tell the coroutine
        except Exception:  # the future's own error: the coroutine takes it from the future
            pass
        try:
            waiting = coro.send(None) if thrown is None else coro.throw(thrown)
        except StopIteration as stop:
            return stop.value

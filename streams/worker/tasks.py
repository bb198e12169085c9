"""Asyncio helpers of the worker: a coroutine finished in a task, a watch, where tasks wait."""

from __future__ import annotations

import asyncio
import gc
import logging
import types
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
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


def task_waits(loop: asyncio.AbstractEventLoop) -> list[str]:
    """Where each pending task of ``loop`` waits: its chain of awaits, outermost first.

    Read-only and safe from another thread: a task that moves meanwhile shows where it was.
    """
    lines = []
    for task in sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name()):
        chain = []
        awaited: Any = task.get_coro()
        for _ in range(40):  # deeper chains of awaits are cut short
            frame = _first(awaited, ("cr_frame", "ag_frame", "gi_frame"))
            if frame is None:  # an awaitable's wrapper, an async generator's asend, a task
                awaited = next((r for r in gc.get_referents(awaited) if isinstance(r, _RUNS)), None)
            else:
                name = Path(frame.f_code.co_filename).name
                chain.append(f"{name}:{frame.f_lineno} {frame.f_code.co_name}")
                awaited = _first(awaited, ("cr_await", "ag_await", "gi_yieldfrom"))
            if awaited is None:  # a future, or a coroutine not suspended
                break
        lines.append(f"{task.get_name()}: {' > '.join(chain) or 'not started'}")
    return lines


# what runs code with a frame, or holds what does (a task holds its coroutine)
_RUNS = (types.CoroutineType, types.AsyncGeneratorType, types.GeneratorType, asyncio.Task)


def _first(obj: Any, names: tuple[str, ...]) -> Any:
    # coroutines, async generators and generators name the same links differently
    return next((v for n in names if (v := getattr(obj, n, None)) is not None), None)

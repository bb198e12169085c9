"""Tasks: where each task of a loop waits, through every kind of await."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from typing import Any

from aupwatch.streams.worker.tasks import task_waits


async def _events(event: asyncio.Event) -> AsyncIterator[None]:
    await event.wait()
    yield None


async def _inner(event: asyncio.Event) -> None:
    async for _ in _events(event):  # awaits an asend object, which names no generator
        break


class _Wrapped:
    """Awaited as Faust awaits an agent: through a coroutine's own ``__await__``."""

    def __init__(self, event: asyncio.Event) -> None:
        self.event = event

    def __await__(self) -> Generator[Any, None, None]:
        return _inner(self.event).__await__()


async def _outer(event: asyncio.Event) -> None:
    await _Wrapped(event)


def test_task_waits_gives_each_tasks_chain_of_awaits() -> None:
    async def main() -> list[str]:
        event = asyncio.Event()
        task = asyncio.create_task(_outer(event), name="held")
        await asyncio.sleep(0)  # the task runs to its wait
        lines = task_waits(asyncio.get_running_loop())
        event.set()
        await task
        return lines

    lines = asyncio.run(main())
    held = [line for line in lines if line.startswith("held: ")]
    assert len(held) == 1, lines
    chain = held[0].removeprefix("held: ").split(" > ")
    names = [link.split(" ")[-1] for link in chain]
    assert names[:4] == ["_outer", "_inner", "_events", "wait"], chain
    assert chain[0].startswith("test_tasks.py:")

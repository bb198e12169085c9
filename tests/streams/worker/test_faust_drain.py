"""Pins Faust's drain loop that ``faust_app.drain_messages`` copies, and tests the copy.

The copy must do what Faust's loop does, except that a callback's first step runs in the
loop's own task; one that suspends finishes in a task under Faust's ``wait_first``.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from types import SimpleNamespace
from typing import Any

import mode
import pytest
from faust.transport import consumer as transport_consumer
from faust.types import TP

from aupwatch.streams.config import AppConfig
from aupwatch.streams.worker import faust_app
from aupwatch.streams.worker.settings import faust_settings
from aupwatch.streams.worker.tasks import finish

# sha256 of faust-streaming 0.15.3's Consumer._drain_messages: drain_messages copies it
FAUST_DRAIN = "44a25003"


def test_faust_drain_loop_is_the_one_copied() -> None:
    source = inspect.getsource(transport_consumer.Consumer._drain_messages)
    assert hashlib.sha256(source.encode()).hexdigest()[:8] == FAUST_DRAIN
    assert "callback(message), self.suspend_flow.wait()" in source


def test_the_fetcher_drains_through_the_app_consumer_attribute() -> None:
    source = inspect.getsource(transport_consumer.Fetcher._fetcher.fun)
    assert "consumer = cast(Consumer, self.app.consumer)" in source
    assert "await consumer._drain_messages(self)" in source


def test_the_worker_app_consumer_drains_with_the_copy() -> None:
    app = faust_app.WorkerApp("pin-drain", **faust_settings(AppConfig()))
    assert app.consumer._drain_messages.__func__ is faust_app.drain_messages


class Message(SimpleNamespace):
    """The fields of a Faust message the loop reads."""


def _consumer(messages: list[Any], callback: Any) -> tuple[Any, Any]:
    """A real worker consumer whose getmany yields ``messages`` once, and a fetcher."""
    app = faust_app.WorkerApp("pin-drain", **faust_settings(AppConfig()))
    consumer = app.consumer
    fetcher = SimpleNamespace(_stopped=mode.utils.locks.Event())

    async def getmany(timeout: float) -> Any:
        for m in messages:
            yield m.tp, m
        fetcher._stopped.set()  # one batch, then the loop ends

    consumer.getmany = getmany
    consumer.callback = callback
    return consumer, fetcher


def _messages(n: int) -> list[Any]:
    tp = TP("in", 0)
    return [Message(tp=tp, offset=o, topic="in") for o in range(n)]


def test_callbacks_that_do_not_suspend_run_without_wait_first() -> None:
    seen: list[int] = []

    async def callback(message: Any) -> None:
        seen.append(message.offset)

    async def main() -> tuple[int, Any]:
        consumer, fetcher = _consumer(_messages(5), callback)
        waits = 0

        async def counting(*coros: Any, **kw: Any) -> Any:
            nonlocal waits
            waits += 1
            return await mode.Service.wait_first(consumer, *coros, **kw)

        consumer.wait_first = counting
        await consumer._drain_messages(fetcher)
        return waits, consumer._read_offset[TP("in", 0)]

    waits, read = asyncio.run(main())
    assert (seen, waits, read) == ([0, 1, 2, 3, 4], 0, 4)


def test_a_callback_that_suspends_finishes_in_order_before_the_next_message() -> None:
    seen: list[str] = []

    async def callback(message: Any) -> None:
        seen.append(f"start {message.offset}")
        if message.offset == 1:
            await asyncio.sleep(0.01)  # a full stream queue, say
            await asyncio.sleep(0)  # a bare yield
        seen.append(f"end {message.offset}")

    async def main() -> None:
        consumer, fetcher = _consumer(_messages(3), callback)
        await consumer._drain_messages(fetcher)

    asyncio.run(main())
    assert seen == ["start 0", "end 0", "start 1", "end 1", "start 2", "end 2"]


def test_a_suspended_callback_is_cancelled_when_the_flow_is_suspended() -> None:
    seen: list[str] = []

    async def main() -> Any:
        blocked = asyncio.get_running_loop().create_future()

        async def callback(message: Any) -> None:
            if message.offset == 0:
                try:
                    await blocked
                except asyncio.CancelledError:
                    seen.append("cancelled 0")
                    raise
            seen.append(f"done {message.offset}")

        consumer, fetcher = _consumer(_messages(2), callback)
        asyncio.get_running_loop().call_later(0.05, consumer.suspend_flow.set)
        await consumer._drain_messages(fetcher)
        return blocked.cancelled(), consumer._read_offset[TP("in", 0)]

    # as with Faust's own loop: the message counts as read, the next one goes on at once
    assert asyncio.run(main()) == (True, 1)
    assert seen == ["done 1", "cancelled 0"]


def test_a_callback_error_ends_the_loop_as_in_faust() -> None:
    async def callback(message: Any) -> None:
        raise ValueError("bad message")

    async def main() -> None:
        consumer, fetcher = _consumer(_messages(1), callback)
        await consumer._drain_messages(fetcher)

    with pytest.raises(ValueError, match="bad message"):
        asyncio.run(main())


def test_finish_gives_the_coroutine_its_futures_results_and_errors() -> None:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()

        async def coro() -> Any:
            a = await first
            try:
                await second
            except KeyError as exc:
                return a, repr(exc)
            return None

        c = coro()
        waiting = c.send(None)
        assert waiting is first
        task = asyncio.ensure_future(finish(c, waiting))
        loop.call_soon(first.set_result, 7)
        loop.call_later(0.01, second.set_exception, KeyError("k"))
        return await task

    assert asyncio.run(main()) == (7, "KeyError('k')")


def test_cancelling_finish_cancels_the_future_and_throws_into_the_coroutine() -> None:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        never = loop.create_future()
        seen = []

        async def coro() -> None:
            try:
                await never
            finally:
                seen.append("finally")

        c = coro()
        task = asyncio.ensure_future(finish(c, c.send(None)))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return never.cancelled(), seen

    assert asyncio.run(main()) == (True, ["finally"])


def test_cancelling_finish_after_its_future_is_done_still_cancels_the_coroutine() -> None:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        seen = []

        async def coro() -> None:
            try:
                seen.append(await ready)
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise

        c = coro()
        task = asyncio.ensure_future(finish(c, c.send(None)))
        await asyncio.sleep(0)
        ready.set_result("result")  # too late to cancel the future: a task cancels its coroutine
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return seen

    assert asyncio.run(main()) == ["cancelled"]

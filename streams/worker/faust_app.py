"""Faust-facing parts of the worker: the app, the state table, the drain, the watches.

The only module that uses faust-streaming's or aiokafka's private API (pinned by
tests/streams/worker/test_faust_app.py and test_faust_drain.py against the pinned
faust-streaming version): ``_to_key``/``_to_value`` of a table, ``table.data.data``,
``producer._ensure_producer``, ``consumer._commit``, ``consumer._read_offset``, the
consumer's ``_drain_messages`` (replaced through ``app._new_consumer`` by
``drain_messages``, a copy of Faust's loop), the consumer thread's ``_ensure_consumer``
(to seek some partitions to their committed offsets, to pause and resume fetching in
aiokafka itself, and to set its fetcher's ``_fetch_max_wait_ms``), mode's
``Worker._schedule_shutdown``, and ``app.rebalancing``/``app.in_recovery``; for the
watches of a stuck worker, the consumer thread's ``thread_loop`` and ``_consumer``,
aiokafka's fetch positions and its coordinator's ``request_rejoin``, Faust's
``_active_partitions``, and its table recovery's offsets and event times.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from types import MethodType
from typing import Any

import faust
import orjson
from faust.transport.consumer import CONSUMER_FETCHING
from faust.types import TP

from aupwatch.streams.worker.tasks import WATCH_EVERY, every, finish


class StateTable(faust.Table):  # type: ignore[type-arg]
    """A table whose changelog holds raw bytes keys and orjson values."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # before the changelog topic is built: it takes its codecs from these
        self.key_serializer = "raw"
        self.value_serializer = "raw"

    def _to_key(self, k: Any) -> Any:
        return k.decode() if isinstance(k, bytes) else k

    def _to_value(self, v: Any) -> Any:
        return orjson.loads(v) if isinstance(v, bytes | bytearray) else v


class WorkerApp(faust.App):
    """A Faust app whose consumer drains messages with ``drain_messages``."""

    def _new_consumer(self) -> Any:
        consumer: Any = super()._new_consumer()
        consumer._drain_messages = MethodType(drain_messages, consumer)
        return consumer

    def watch(self, fun: Callable[[], Awaitable[None]]) -> None:
        """Runs ``fun`` once a second from the start: Faust's timers wait for table recovery."""
        self.watchers = [*getattr(self, "watchers", []), fun]

    async def on_start(self) -> None:
        """As Faust's, and starts the watchers."""
        await super().on_start()
        for fun in getattr(self, "watchers", []):
            self.add_future(every(WATCH_EVERY, fun))


async def drain_messages(self: Any, fetcher: Any) -> None:
    """Faust 0.15.3's ``Consumer._drain_messages``, stepping each callback itself.

    Faust awaits ``wait_first(callback(message), suspend_flow.wait())`` for every message:
    four tasks and an ``asyncio.wait``, about 40 % of a bare agent's CPU at one record per
    message. Nearly every callback ends without suspending (the stream's queue has room),
    so its first step runs here; only one that suspends goes on in a task, as before, under
    the same ``wait_first`` (a rebalance or a stop still interrupts it).
    """
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(CONSUMER_FETCHING)
            ait = getmany(timeout=1.0)
            # getmany may return at once again and again: let the loop run between
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset and acks_enabled_for(message.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        coro = callback(message)
                        try:
                            waiting = coro.send(None)
                        except StopIteration:
                            pass
                        else:
                            await self.wait_first(finish(coro, waiting), self.suspend_flow.wait())
                        set_read_offset(tp, offset)
                unset_flag(CONSUMER_FETCHING)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(CONSUMER_FETCHING)


class PartitionWriter:
    """Appends records to record batches of one topic partition, sending each when full.

    Straight to aiokafka: a producer send per record costs ~30 us, an append ~3 us.

    Args:
        producer: Faust's producer (its aiokafka producer does the work).
        topic: Topic name.
        partition: Partition number.
    """

    def __init__(self, producer: Any, topic: str, partition: int) -> None:
        self.raw = producer._ensure_producer()
        self.topic = topic
        self.partition = partition
        self.batch = self.raw.create_batch()

    async def add(self, key: bytes, value: bytes | None) -> None:
        """Appends one record (a full batch is sent first)."""
        if self.batch.append(key=key, value=value, timestamp=None) is None:
            await self.raw.send_batch(self.batch, self.topic, partition=self.partition)
            self.batch = self.raw.create_batch()
            self.batch.append(key=key, value=value, timestamp=None)

    async def close(self) -> None:
        """Sends what is left (in order after every earlier batch)."""
        if self.batch.record_count():
            await self.raw.send_batch(self.batch, self.topic, partition=self.partition)
        self.batch = self.raw.create_batch()


def table_dict(table: Any) -> dict[str, Any]:
    """The in-memory dict behind a memory-store table (read and written in place)."""
    data: dict[str, Any] = table.data.data
    return data


def changelog_topic(table: Any) -> str:
    """The name of a table's changelog topic."""
    return str(table.changelog_topic.get_topic_name())


async def seek_to_committed(consumer: Any, tps: list[TP]) -> dict[TP, int | None]:
    """Seeks only these partitions to their committed offsets; returns those offsets.

    Faust's ``seek_to_committed`` seeks every assigned partition, the tables' changelogs
    too, which its recovery positions itself. Faust's read offsets follow the seek, so its
    drain takes the records read again.
    """
    from aiokafka.structs import TopicPartition

    thread = consumer._thread
    parts = [TopicPartition(tp.topic, tp.partition) for tp in tps]

    async def call() -> dict[TP, int | None]:
        sought = await thread._ensure_consumer().seek_to_committed(*parts)
        committed = {TP(tp.topic, tp.partition): offset for tp, offset in sought.items()}
        # as Faust's seek_wait does: its drain drops records below the last one it read
        read = consumer._read_offset
        for tp, offset in committed.items():
            if offset and offset > 0:
                read[tp] = offset
            else:
                read.pop(tp, None)
        return committed

    return await thread.call_thread(call)  # type: ignore[no-any-return]


async def commit_offsets(consumer: Any, offsets: dict[tuple[str, int], int]) -> None:
    """Commits these offsets as given (Faust's public commit takes its own acked offsets)."""
    await consumer._commit({TP(t, p): o for (t, p), o in offsets.items()})


def settled(app: Any) -> bool:
    """Whether Faust is neither rebalancing nor recovering tables.

    Faust pauses every assigned partition for a rebalance and its table recovery, and
    resumes every stream partition when both are done (``app.on_rebalance_end``); pausing
    or resuming partitions in between would fight it.
    """
    return not (app.rebalancing or app.in_recovery)


def event_loops(app: Any) -> dict[str, asyncio.AbstractEventLoop]:
    """The app's event loop, and its consumer thread's (Faust runs aiokafka in a thread)."""
    loops = {"main": app.loop}
    thread = getattr(app.consumer, "_thread", None)
    if thread is not None:
        loops["consumer thread"] = thread.thread_loop
    return loops


def positions(app: Any) -> dict[TP, int | None]:
    """Each assigned partition's fetch position in aiokafka (None: it has none yet)."""
    raw: Any = getattr(app.consumer._thread, "_consumer", None)
    subscription = None if raw is None else raw._subscription.subscription
    assignment = None if subscription is None else subscription.assignment
    if raw is None or assignment is None:
        return {}  # not started, or between two assignments
    states = {tp: assignment.state_value(tp) for tp in raw.assignment()}
    return {
        TP(tp.topic, tp.partition): state.position if state.has_valid_position else None
        for tp, state in states.items()
    }


def partition_states(app: Any) -> list[str]:
    """Each assigned partition as aiokafka and Faust see it, a line each (for a diagnosis).

    Read from the app's thread while the consumer thread may move them: a snapshot.
    """
    consumer = app.consumer
    raw = consumer._thread._ensure_consumer()  # says when it has not started
    paused, active, read = raw.paused(), consumer._active_partitions or set(), consumer._read_offset
    return [
        f"{tp.topic}[{tp.partition}]: position {position}, end {raw.highwater(tp)}, "
        f"read {read.get(tp)}, {'paused' if tp in paused else 'fetched'} by aiokafka, "
        f"{'active' if tp in active else 'inactive'} in Faust"
        for tp, position in sorted(positions(app).items())
    ]


def rejoin(app: Any) -> None:
    """Asks the group for a new rebalance, in the consumer's thread (aiokafka's futures)."""
    thread = app.consumer._thread
    coordinator = thread._ensure_consumer()._coordinator
    thread.thread_loop.call_soon_threadsafe(coordinator.request_rejoin)


def lost_changelogs(
    app: Any, moved: dict[TP, int | None], now: float, quiet: float
) -> dict[TP, int]:
    """Changelog partitions whose records the client moved past and recovery never got.

    Faust drops records the client returned while it stops a batch (a rebalance) or finds
    the partition inactive, and its table recovery then waits for them for good.

    Args:
        app: The Faust app.
        moved: The assigned partitions' fetch positions (``positions``).
        now: ``time.monotonic()``, Faust's recovery clock.
        quiet: Seconds a partition must have given the recovery nothing.

    Returns:
        Partition -> the offset to read it again from.
    """
    recovery = app.tables._recovery  # not ``recovery``, which would make it before Faust does
    if recovery is None or not recovery.in_recovery:
        return {}
    started = recovery._recovery_started_at or now
    lost = {}
    for tp in recovery.active_tps:
        got, last = recovery.active_offsets.get(tp), recovery.active_highwaters.get(tp)
        at = moved.get(tp)
        if got is None or last is None or at is None or got >= last or at <= got + 1:
            continue  # done, not started, or the client has not passed what it needs next
        if now - recovery._active_events_received_at.get(tp, started) >= quiet:
            lost[tp] = max(got + 1, 0)
    return lost


async def read_again(app: Any, offsets: dict[TP, int]) -> None:
    """Seeks partitions back, and lets Faust's drain take what it already passed there."""
    consumer = app.consumer
    for tp, offset in offsets.items():  # first: records of the new position may come at once
        consumer._read_offset[tp] = offset or None  # as Faust's own seek: None delivers all
    await consumer.seek_wait(offsets)


async def pause_fetching(consumer: Any, tps: set[TP]) -> None:
    """Stops aiokafka returning and fetching records of these partitions.

    Paused in aiokafka, not in Faust's set of active partitions: Faust drops the records
    of a partition it finds inactive in a batch aiokafka already returned, after aiokafka
    moved its position past them, so those offsets would never be delivered again.
    aiokafka keeps a paused partition's position at the last record it returned and drops
    what it fetched beyond (fetched again on resume). Faust never pauses in aiokafka, and
    a rebalance gives every partition a fresh, unpaused state. Partitions not assigned
    (a rebalance under way) are left alone.
    """
    await _in_consumer_thread(consumer, "pause", tps)


async def resume_fetching(consumer: Any, tps: set[TP]) -> None:
    """Fetches these partitions again from their positions (see ``pause_fetching``)."""
    await _in_consumer_thread(consumer, "resume", tps)


async def set_fetch_wait(consumer: Any, seconds: float) -> None:
    """Lets the broker hold a fetch that finds no records for at most ``seconds``.

    Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no setting for
    it. aiokafka has one fetch in flight per broker, for every partition it reads there:
    while the broker holds a fetch of partitions with nothing new (input read to its end,
    a quiet internal topic), records arriving on the others wait too, up to 1.5 s at each
    internal hop. aiokafka's fetcher reads the value for each request it builds.
    """
    thread = consumer._thread
    ms = max(1, round(seconds * 1000))

    def call() -> None:
        raw = thread._ensure_consumer()
        raw._fetch_max_wait_ms = ms  # a consumer started again builds its fetcher from it
        fetcher = getattr(raw, "_fetcher", None)
        if fetcher is not None:
            fetcher._fetch_max_wait_ms = ms

    await thread.call_thread(call)


async def _in_consumer_thread(consumer: Any, method: str, tps: set[TP]) -> None:
    # aiokafka's resume completes a future of the consumer thread's loop: call it there
    from aiokafka.structs import TopicPartition

    thread = consumer._thread
    parts = [TopicPartition(tp.topic, tp.partition) for tp in tps]

    def call() -> None:
        raw = thread._ensure_consumer()
        held = raw.assignment()
        mine = [p for p in parts if p in held]
        if mine:
            getattr(raw, method)(*mine)

    await thread.call_thread(call)


class BoundedStopWorker(faust.Worker):
    """A Faust worker that exits at most ``stop_timeout`` seconds after SIGTERM or SIGINT.

    Faust can hang in its shutdown (seen in ``Worker.stop_and_shutdown``); input not
    committed is re-read by the next owner, so a forced exit loses nothing.
    """

    stop_timeout = 25.0

    def _schedule_shutdown(self, signal: Any) -> None:
        if not self._signal_stop_time:
            timer = threading.Timer(self.stop_timeout, _forced_exit, (self.stop_timeout,))
            timer.daemon = True
            timer.start()
        super()._schedule_shutdown(signal)


def _forced_exit(after: float) -> None:
    print(
        f"aupwatch: worker did not stop within {after:.0f} s of the signal; exiting",
        file=sys.stderr,
        flush=True,
    )
    os._exit(1)

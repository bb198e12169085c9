"""Pins the private faust-streaming and aiokafka API that faust_app.py relies on.

If an upgrade changes any of these, the worker would fail in ways only a broker run shows;
these tests fail first, and name what moved.
"""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace
from typing import Any

import aiokafka
import faust
import mode
import pytest
from faust.stores import memory
from faust.tables import base as tables
from faust.tables import recovery
from faust.transport import consumer as transport_consumer
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

from aupwatch.streams.config import AppConfig
from aupwatch.streams.worker import faust_app


def test_faust_is_the_pinned_version() -> None:
    assert faust.__version__ == "0.15.3"


def test_tables_convert_keys_and_values_through_overridable_hooks() -> None:
    assert callable(tables.Collection._to_key)
    assert callable(tables.Collection._to_value)
    assert faust_app.StateTable._to_key is not tables.Collection._to_key


def test_a_memory_store_keeps_a_plain_dict_named_data() -> None:
    assert "self.data: MutableMapping = {}" in inspect.getsource(memory.Store)
    table = faust_app.StateTable(_app(), name="pin-state", partitions=1)
    assert isinstance(faust_app.table_dict(table), dict)


def test_the_producer_exposes_its_aiokafka_producer_with_record_batches() -> None:
    assert callable(driver.Producer._ensure_producer)
    for name in ("create_batch", "send_batch"):
        assert callable(getattr(aiokafka.AIOKafkaProducer, name))


def test_the_consumer_commits_given_offsets() -> None:
    params = list(inspect.signature(driver.Consumer._commit).parameters)
    assert params == ["self", "offsets"]
    assert inspect.iscoroutinefunction(driver.Consumer._commit)

    class Consumer:
        committed: Any = None

        async def _commit(self, offsets: Any) -> bool:
            self.committed = offsets
            return True

    consumer = Consumer()
    asyncio.run(faust_app.commit_offsets(consumer, {("t", 2): 17}))
    assert consumer.committed == {TP("t", 2): 17}


def test_the_consumer_thread_seeks_chosen_partitions_to_committed_offsets() -> None:
    assert "self._thread" in inspect.getsource(driver.Consumer.__init__)
    assert callable(driver.AIOKafkaConsumerThread._ensure_consumer)
    assert callable(driver.AIOKafkaConsumerThread.call_thread)
    params = inspect.signature(aiokafka.AIOKafkaConsumer.seek_to_committed).parameters
    assert list(params) == ["self", "partitions"]

    class Consumer:
        async def seek_to_committed(self, *parts: Any) -> dict[Any, int | None]:
            return {p: 5 for p in parts}

    class Thread:
        def _ensure_consumer(self) -> Consumer:
            return Consumer()

        async def call_thread(self, fn: Any, *args: Any) -> Any:
            return await fn(*args)

    consumer = SimpleNamespace(_thread=Thread())
    got = asyncio.run(faust_app.seek_to_committed(consumer, [TP("t", 1)]))
    assert got == {TP("t", 1): 5}


def test_shutdown_on_a_signal_goes_through_schedule_shutdown_once() -> None:
    params = list(inspect.signature(mode.Worker._schedule_shutdown).parameters)
    assert params == ["self", "signal"]
    assert mode.Worker._signal_stop_time is None  # class default, set on the first signal
    source = inspect.getsource(mode.Worker._on_sigterm)
    assert "_schedule_shutdown" in source


def test_a_signal_arms_the_forced_exit_once(monkeypatch: pytest.MonkeyPatch) -> None:
    armed: list[float] = []

    class Timer:
        def __init__(self, after: float, fn: Any, args: Any) -> None:
            armed.append(after)
            self.daemon = False

        def start(self) -> None:
            pass

    monkeypatch.setattr(faust_app.threading, "Timer", Timer)
    monkeypatch.setattr(mode.Worker, "_schedule_shutdown", lambda self, signal: None)
    worker = object.__new__(faust_app.BoundedStopWorker)
    worker._signal_stop_time = None
    faust_app.BoundedStopWorker._schedule_shutdown(worker, 15)  # type: ignore[arg-type]
    worker._signal_stop_time = 1.0  # as mode sets it on the first signal
    faust_app.BoundedStopWorker._schedule_shutdown(worker, 15)  # type: ignore[arg-type]
    assert armed == [faust_app.BoundedStopWorker.stop_timeout]


def _app() -> faust.App:
    return faust.App("pin", **faust_app.faust_settings(AppConfig()))


def test_pausing_a_partition_takes_it_out_of_the_fetch_and_resuming_puts_it_back() -> None:
    consumer = object.__new__(driver.Consumer)
    a, b = TP("in", 0), TP("in", 1)
    consumer._active_partitions = {a, b}
    consumer._paused_partitions = set()
    faust_app.pause_partitions(consumer, {a})
    assert consumer._get_active_partitions() == {b}
    assert consumer._paused_partitions == {a}
    faust_app.resume_partitions(consumer, {a})
    assert consumer._get_active_partitions() == {a, b}
    assert not consumer._paused_partitions


def test_faust_resumes_every_stream_partition_when_a_rebalance_ends() -> None:
    """Why the worker pauses its partitions again after each rebalance, never during one.

    Faust pauses every assigned partition for a rebalance and resumes all but the
    changelogs when recovery ends, then calls ``on_rebalance_end``; a revoked partition
    leaves its paused set.
    """
    for method in (recovery.Recovery._resume_streams, recovery.Recovery.on_recovery_completed):
        source = inspect.getsource(method)
        assert "consumer.resume_partitions(" in source
        assert "not self._is_changelog_tp(tp)" in source
        assert source.index("resume_partitions(") < source.index("on_rebalance_end()")
    assert "T(consumer.pause_partitions)(assigned)" in inspect.getsource(
        faust.App._on_partitions_assigned
    )
    revoked = inspect.getsource(transport_consumer.Consumer.on_partitions_revoked)
    assert "self._paused_partitions.difference_update(revoked)" in revoked


def test_the_app_says_when_it_is_rebalancing_or_recovering() -> None:
    app = SimpleNamespace(rebalancing=False, in_recovery=False)
    assert faust_app.settled(app)
    assert not faust_app.settled(SimpleNamespace(rebalancing=True, in_recovery=False))
    assert not faust_app.settled(SimpleNamespace(rebalancing=False, in_recovery=True))
    real = _app()
    assert (real.rebalancing, real.in_recovery) == (False, False)
    assert faust_app.settled(real)
    assert "self.rebalancing = True" in inspect.getsource(faust.App.on_rebalance_start)
    assert "self.rebalancing = False" in inspect.getsource(faust.App.on_rebalance_end)
    assert "self.app.in_recovery = True" in inspect.getsource(recovery.Recovery)

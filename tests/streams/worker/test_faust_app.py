"""Pins the private faust-streaming and aiokafka API that faust_app.py relies on.

If an upgrade changes any of these, the worker would fail in ways only a broker run shows;
these tests fail first, and name what moved.
"""

from __future__ import annotations

import asyncio
import inspect
import re
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
from aupwatch.streams.worker.settings import faust_settings


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
            return {p: {1: 5, 2: None}.get(p.partition, 0) for p in parts}

    class Thread:
        def _ensure_consumer(self) -> Consumer:
            return Consumer()

        async def call_thread(self, fn: Any, *args: Any) -> Any:
            return await fn(*args)

    read = {TP("t", 1): 7724, TP("t", 2): 40, TP("t", 3): 9, TP("u", 0): 8}
    consumer = SimpleNamespace(_thread=Thread(), _read_offset=read)
    tps = [TP("t", 1), TP("t", 2), TP("t", 3)]
    got = asyncio.run(faust_app.seek_to_committed(consumer, tps))
    assert got == {TP("t", 1): 5, TP("t", 2): None, TP("t", 3): 0}
    assert read == {TP("t", 1): 5, TP("u", 0): 8}  # as Faust's own seek_wait leaves them


def test_faust_drops_records_below_its_read_offset_and_its_seeks_move_it() -> None:
    drain = inspect.getsource(transport_consumer.Consumer._drain_messages)
    assert "r_offset = get_read_offset(tp)" in drain
    assert "if r_offset is None or offset >= r_offset:" in drain
    seek = inspect.getsource(driver.AIOKafkaConsumerThread._seek_wait)
    assert "self.consumer._read_offset[tp] = offset" in seek
    assert "del self.consumer._read_offset[tp]" in seek


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
    return faust.App("pin", **faust_settings(AppConfig()))


def test_fetching_pauses_and_resumes_in_aiokafka_in_the_consumer_thread() -> None:
    assert callable(aiokafka.AIOKafkaConsumer.pause)
    assert callable(aiokafka.AIOKafkaConsumer.resume)
    done: list[tuple[str, set[Any]]] = []

    class Raw:
        def assignment(self) -> set[Any]:
            return {TP("in", 0), TP("in", 1)}

        def pause(self, *tps: Any) -> None:
            done.append(("pause", set(tps)))

        def resume(self, *tps: Any) -> None:
            done.append(("resume", set(tps)))

    class Thread:
        def _ensure_consumer(self) -> Raw:
            return Raw()

        async def call_thread(self, fn: Any, *args: Any) -> Any:
            done.append(("thread", set()))
            return fn(*args)

    consumer = SimpleNamespace(_thread=Thread())
    # partition 2 is not assigned (a rebalance under way): left alone
    asyncio.run(faust_app.pause_fetching(consumer, {TP("in", 1), TP("in", 2)}))
    asyncio.run(faust_app.resume_fetching(consumer, {TP("in", 1)}))
    assert done == [
        ("thread", set()),
        ("pause", {TP("in", 1)}),
        ("thread", set()),
        ("resume", {TP("in", 1)}),
    ]


def test_faust_fixes_its_fetch_wait_and_aiokafka_reads_it_per_request() -> None:
    """Why and how ``set_fetch_wait`` works: no setting, a value read for each fetch."""
    from aiokafka.consumer.fetcher import Fetcher

    made = inspect.getsource(driver.AIOKafkaConsumerThread._create_worker_consumer)
    assert "fetch_max_wait_ms=1500" in made  # a Faust setting would replace the override
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(
        aiokafka.AIOKafkaConsumer.start
    )
    builds = inspect.getsource(Fetcher._get_actions_per_node)
    assert re.search(r"FetchRequest\(\s*self\._fetch_max_wait_ms,", builds)


def test_set_fetch_wait_sets_the_consumer_and_its_fetcher_in_the_consumer_thread() -> None:
    raw = SimpleNamespace(
        _fetch_max_wait_ms=1500, _fetcher=SimpleNamespace(_fetch_max_wait_ms=1500)
    )
    calls: list[str] = []

    class Thread:
        def _ensure_consumer(self) -> Any:
            return raw

        async def call_thread(self, fn: Any, *args: Any) -> Any:
            calls.append("thread")
            return fn(*args)

    asyncio.run(faust_app.set_fetch_wait(SimpleNamespace(_thread=Thread()), 0.1))
    assert (calls, raw._fetch_max_wait_ms, raw._fetcher._fetch_max_wait_ms) == (
        ["thread"],
        100,
        100,
    )
    raw._fetcher = None  # not started yet: its fetcher will be built from the consumer's value
    asyncio.run(faust_app.set_fetch_wait(SimpleNamespace(_thread=Thread()), 0.0004))
    assert raw._fetch_max_wait_ms == 1


class Records:
    """aiokafka's partition records: three messages from offset 5."""

    def __init__(self) -> None:
        self.next_fetch_offset = 5
        self.left = [5, 6, 7]

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> int:
        if not self.left:
            raise StopIteration
        self.next_fetch_offset = self.left[0] + 1
        return self.left.pop(0)


def test_aiokafka_returns_nothing_of_a_paused_partition_and_keeps_its_position() -> None:
    """What makes a pause exact: the records fetched beyond are dropped, not skipped."""
    from aiokafka.consumer.fetcher import FetchResult
    from aiokafka.consumer.subscription_state import Assignment
    from aiokafka.structs import TopicPartition

    async def run() -> tuple[list[Any], int, list[Any], int]:
        tp = TopicPartition("in", 0)
        assignment = Assignment({tp})
        state = assignment.state_value(tp)
        state.seek(5)
        state.pause()
        paused = FetchResult(tp, assignment=assignment, partition_records=Records(), backoff=0)
        got_paused, at = paused.getall(), state.position
        state.resume()
        fresh = FetchResult(tp, assignment=assignment, partition_records=Records(), backoff=0)
        return got_paused, at, fresh.getall(), state.position

    assert asyncio.run(run()) == ([], 5, [5, 6, 7], 8)


def test_a_rebalance_gives_every_aiokafka_partition_a_fresh_unpaused_state() -> None:
    from aiokafka.consumer.subscription_state import Subscription
    from aiokafka.structs import TopicPartition

    async def run() -> tuple[bool, bool]:
        tp = TopicPartition("in", 0)
        subscription = Subscription(["in"])
        subscription._assign({tp})
        subscription.assignment.state_value(tp).pause()
        before = subscription.assignment.state_value(tp).paused
        subscription._assign({tp})  # the same partition again, as a rebalance does
        return before, subscription.assignment.state_value(tp).paused

    assert asyncio.run(run()) == (True, False)


def test_faust_drops_fetched_records_of_partitions_it_finds_inactive() -> None:
    """Why the worker does not pause through Faust's active partitions, and why no pause
    of Faust's own touches aiokafka's flag: Faust never calls aiokafka's pause."""
    getmany = inspect.getsource(transport_consumer.Consumer.getmany)
    assert "or tp in active_partitions" in getmany
    assert "yield tp, to_message(tp, record)" in getmany
    fetched = inspect.getsource(driver.AIOKafkaConsumerThread._fetch_records)
    assert "fetcher.fetched_records(" in fetched and "active_partitions" in fetched
    for module in (driver, transport_consumer, recovery, faust.app.base):
        calls = re.findall(r"[\w.]*\.(?:pause|resume)\(", inspect.getsource(module))
        # Faust's flow control (an event of its own) is the only thing it resumes that way
        assert all(call.endswith("flow_control.resume(") for call in calls), calls


def test_a_rebalance_starts_before_and_waits_for_the_revocation_handlers() -> None:
    """Why a pause made under the worker's lock lands before the next assignment."""
    listener = inspect.getsource(driver.ConsumerRebalanceListener.on_partitions_revoked)
    assert listener.index("app.on_rebalance_start()") < listener.index("return thread.")
    from aiokafka.consumer import group_coordinator

    prepare = inspect.getsource(group_coordinator.GroupCoordinator._on_join_prepare)
    assert "res = self._subscription.listener.on_partitions_revoked(revoked)" in prepare
    assert "await res" in prepare
    revoked = inspect.getsource(faust.App._on_partitions_revoked)
    assert "await T(self.on_partitions_revoked.send)(revoked)" in revoked
    assert "self.rebalancing = True" in inspect.getsource(faust.App.on_rebalance_start)


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


def test_a_commit_refused_after_a_rebalance_fails_quietly() -> None:
    """Why the worker may commit in its revocation handler.

    aiokafka keeps the member (and its heartbeat) in the old generation while the handler
    runs, so a commit there lands before any new owner reads; a commit from a member the
    group already left behind is refused with "already rebalanced", which Faust reports as
    a failed commit instead of crashing the worker.
    """
    from aiokafka import errors
    from aiokafka.consumer import group_coordinator

    assert "as it can commit offsets" in inspect.getsource(group_coordinator.GroupCoordinator)

    async def refused(error: type[Exception]) -> str:
        async def known() -> None:
            pass

        async def do_commit(assignment: Any, offsets: Any) -> None:
            raise error()

        member = SimpleNamespace(
            ensure_coordinator_known=known,
            _commit_lock=asyncio.Lock(),
            _do_commit_offsets=do_commit,
        )
        with pytest.raises(errors.CommitFailedError) as exc:
            await group_coordinator.GroupCoordinator.commit_offsets(member, None, {})  # type: ignore[arg-type]
        return str(exc.value)

    for error in (
        errors.UnknownMemberIdError,
        errors.IllegalGenerationError,
        errors.RebalanceInProgressError,
    ):
        assert "already rebalanced" in asyncio.run(refused(error))
    faust_commit = inspect.getsource(driver.AIOKafkaConsumerThread._commit)
    assert 'if "already rebalanced" in str(exc):\n                return False' in faust_commit


def test_the_consumer_threads_event_loop_is_found() -> None:
    assert issubclass(driver.AIOKafkaConsumerThread, mode.threads.ServiceThread)
    assert "self.thread_loop = " in inspect.getsource(mode.threads.ServiceThread.__init__)
    main, other = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        thread = SimpleNamespace(thread_loop=other)
        app = SimpleNamespace(loop=main, consumer=SimpleNamespace(_thread=thread))
        assert faust_app.event_loops(app) == {"main": main, "consumer thread": other}
    finally:
        main.close()
        other.close()


def test_each_assigned_partition_is_described_as_aiokafka_and_faust_see_it() -> None:
    from aiokafka.consumer.subscription_state import (
        Assignment,
        SubscriptionState,
        TopicPartitionState,
    )
    from aiokafka.structs import TopicPartition

    assert isinstance(SubscriptionState.subscription, property)
    assert callable(Assignment.state_value)
    assert "_consumer: Optional[aiokafka.AIOKafkaConsumer] = None" in inspect.getsource(
        driver.AIOKafkaConsumerThread
    )
    for name in ("has_valid_position", "position"):
        assert isinstance(getattr(TopicPartitionState, name), property), name
    for name in ("assignment", "paused", "highwater"):
        assert callable(getattr(aiokafka.AIOKafkaConsumer, name)), name
    source = inspect.getsource(transport_consumer.Consumer)
    assert "self._active_partitions = set()" in source
    assert "self._read_offset = defaultdict(lambda: None)" in source

    def state(position: int | None) -> SimpleNamespace:
        return SimpleNamespace(has_valid_position=position is not None, position=position)

    t1, t2 = TopicPartition("t", 1), TopicPartition("t", 2)
    states = {t1: state(5), t2: state(None)}
    raw = SimpleNamespace(
        paused=lambda: {t2},
        assignment=lambda: {t2, t1},
        highwater=lambda tp: {t1: 9, t2: None}[tp],
        _subscription=SimpleNamespace(
            subscription=SimpleNamespace(assignment=SimpleNamespace(state_value=states.get))
        ),
    )
    consumer = SimpleNamespace(
        _thread=SimpleNamespace(_consumer=raw, _ensure_consumer=lambda: raw),
        _active_partitions={TP("t", 1)},
        _read_offset={TP("t", 1): 4},
    )
    assert faust_app.partition_states(SimpleNamespace(consumer=consumer)) == [
        "t[1]: position 5, end 9, read 4, fetched by aiokafka, active in Faust",
        "t[2]: position None, end None, read None, paused by aiokafka, inactive in Faust",
    ]


def test_a_rejoin_is_asked_of_aiokafkas_coordinator_in_the_consumer_thread() -> None:
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    assert "self._rejoin_needed_fut.set_result(None)" in inspect.getsource(
        GroupCoordinator.request_rejoin
    )
    assert "self._coordinator = " in inspect.getsource(aiokafka.AIOKafkaConsumer)
    asked: list[str] = []
    loop = asyncio.new_event_loop()
    try:
        coordinator = SimpleNamespace(request_rejoin=lambda: asked.append("rejoin"))
        thread = SimpleNamespace(
            thread_loop=loop,
            _ensure_consumer=lambda: SimpleNamespace(_coordinator=coordinator),
        )
        faust_app.rejoin(SimpleNamespace(consumer=SimpleNamespace(_thread=thread)))
        assert asked == []  # only in the consumer thread's loop
        loop.run_until_complete(asyncio.sleep(0))
        assert asked == ["rejoin"]
    finally:
        loop.close()


def test_watchers_run_from_the_apps_start_and_outlive_their_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Faust starts its timers once the first table recovery is over: a watch must not wait
    assert "_wait_for_table_recovery_completed" in inspect.getsource(faust.App.on_started)
    monkeypatch.setattr(faust_app, "WATCH_EVERY", 0.01)
    calls: list[int] = []

    async def watcher() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("a failing watch")

    async def main() -> None:
        app = faust_app.WorkerApp("pin-watch", **faust_settings(AppConfig()))
        app.watch(watcher)
        await app.on_start()  # Faust's start, before any recovery
        for _ in range(200):
            await asyncio.sleep(0.01)
            if len(calls) >= 3:
                break
        for fut in list(app._futures):
            fut.cancel()

    asyncio.run(main())
    assert calls[:3] == [0, 1, 2]  # the first one's error did not end them


def test_changelog_records_the_client_passed_and_recovery_never_got_are_found() -> None:
    source = inspect.getsource(recovery.Recovery)
    for name in (
        "self.active_tps = set()",
        "self.active_offsets = Counter()",
        "self.active_highwaters = Counter()",
        "self._active_events_received_at = {}",
        "self._recovery_started_at = monotonic()",
        "self.in_recovery = True",
    ):
        assert name in source, name
    assert "def seek_wait" in inspect.getsource(transport_consumer.ThreadDelegateConsumer)
    from faust.tables import manager

    assert "self._recovery = Recovery(" in inspect.getsource(manager.TableManager)

    done, waiting, passed, quiet, fresh = (TP("c", p) for p in range(5))
    rec = SimpleNamespace(
        in_recovery=True,
        _recovery_started_at=100.0,
        active_tps={done, waiting, passed, quiet, fresh},
        active_offsets={done: 9, waiting: 3, passed: 3, quiet: -1, fresh: 3},
        active_highwaters={done: 9, waiting: 9, passed: 9, quiet: 9, fresh: 9},
        _active_events_received_at={passed: 110.0, fresh: 139.0},
    )
    at: dict[TP, int | None] = {done: 10, waiting: 4, passed: 10, quiet: 10, fresh: 10}
    app = SimpleNamespace(tables=SimpleNamespace(_recovery=rec))
    # done: all received; waiting: the client has not passed offset 4; fresh: an event 1 s ago
    assert faust_app.lost_changelogs(app, at, 140.0, 30.0) == {passed: 4, quiet: 0}
    rec.in_recovery = False
    assert faust_app.lost_changelogs(app, at, 140.0, 30.0) == {}
    app.tables._recovery = None  # Faust has not made its recovery yet
    assert faust_app.lost_changelogs(app, at, 140.0, 30.0) == {}

    sought: list[tuple[dict[TP, int], dict[TP, int | None]]] = []

    async def seek_wait(offsets: dict[TP, int]) -> None:
        sought.append((dict(offsets), dict(consumer._read_offset)))

    consumer = SimpleNamespace(seek_wait=seek_wait, _read_offset={passed: 9, quiet: 9})
    asyncio.run(faust_app.read_again(SimpleNamespace(consumer=consumer), {passed: 4, quiet: 0}))
    # the drain takes them again: its read offsets moved back before the seek
    assert sought == [({passed: 4, quiet: 0}, {passed: 4, quiet: None})]

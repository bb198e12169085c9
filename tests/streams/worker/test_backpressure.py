"""The backpressure policy and ledger: which input partitions pause and resume, and why."""

from __future__ import annotations

import random

from aupwatch.detectors.engine import NEVER
from aupwatch.streams.worker.backpressure import (
    InputState,
    PausePolicy,
    Transitions,
    UndecidedLedger,
)

LIMIT = 1000


def s(undecided: int, event_time: int, idle: bool = False, ready: int = 0) -> InputState:
    return InputState(undecided, event_time, idle, ready)


def test_a_partition_over_the_limit_that_leads_is_paused() -> None:
    policy = PausePolicy(LIMIT)
    change = policy.review({0: s(5000, 100), 1: s(LIMIT + 1, 200)})
    assert change == Transitions(frozenset({1}), frozenset())
    assert policy.paused == {1}


def test_the_slowest_partition_is_never_paused_however_far_ahead_of_decisions() -> None:
    policy = PausePolicy(LIMIT)
    assert policy.review({0: s(10**6, 100), 1: s(10, 200)}).pause == frozenset()
    assert policy.review({0: s(10**6, 100), 1: s(10**6, 100)}).pause == frozenset()  # a tie


def test_an_idle_partition_does_not_count_as_slowest() -> None:
    policy = PausePolicy(LIMIT)
    # partition 0 is behind but idle: 1 is the slowest active one, 2 leads it
    change = policy.review({0: s(0, 50, idle=True), 1: s(5000, 100), 2: s(5000, 300)})
    assert change.pause == frozenset({2})
    # when every other partition is idle, the last active one keeps running
    policy = PausePolicy(LIMIT)
    assert not policy.review({0: s(0, 50, idle=True), 1: s(5000, 300)}).pause


def test_a_paused_partition_resumes_when_it_no_longer_leads() -> None:
    policy = PausePolicy(LIMIT)
    policy.review({0: s(0, 100), 1: s(5000, 200)})
    change = policy.review({0: s(0, 250), 1: s(5000, 200)})
    assert change == Transitions(frozenset(), frozenset({1}))
    assert not policy.paused


def test_a_paused_partition_resumes_when_the_slowest_goes_idle() -> None:
    policy = PausePolicy(LIMIT)
    policy.review({0: s(0, 100), 1: s(5000, 200)})
    assert policy.review({0: s(0, 100, idle=True), 1: s(5000, 200)}).resume == {1}


def test_resume_waits_for_half_the_limit_while_it_still_leads() -> None:
    policy = PausePolicy(LIMIT)
    policy.review({0: s(0, 100), 1: s(5000, 200)})
    assert policy.review({0: s(0, 150), 1: s(LIMIT // 2 + 1, 200)}) == Transitions(
        frozenset(), frozenset()
    )
    assert policy.review({0: s(0, 150), 1: s(LIMIT // 2, 200)}).resume == {1}


def test_each_transition_is_reported_once() -> None:
    policy = PausePolicy(LIMIT)
    states = {0: s(0, 100), 1: s(5000, 200)}
    assert policy.review(states).pause == {1}
    assert policy.review(states) == Transitions(frozenset(), frozenset())


def test_zero_never_pauses() -> None:
    policy = PausePolicy(0)
    assert policy.review({0: s(0, 100), 1: s(10**9, 200)}) == Transitions(frozenset(), frozenset())
    assert policy.admits(1, 10**9, {0: s(0, 100), 1: s(10**9, 200)})


def test_a_revoked_partition_is_forgotten_without_a_resume() -> None:
    policy = PausePolicy(LIMIT)
    policy.review({0: s(0, 100), 1: s(5000, 200)})
    assert policy.review({0: s(0, 100)}) == Transitions(frozenset(), frozenset())
    assert not policy.paused


def test_admits_pauses_mid_batch_once_past_the_limit() -> None:
    policy = PausePolicy(LIMIT)
    states = {0: s(0, 100), 1: s(900, 200)}
    assert policy.admits(1, 1000, states)  # at the limit: taken
    assert not policy.admits(1, 1100, states)  # past it and leading: paused
    assert policy.paused == {1}
    assert not policy.admits(1, 0, states)  # paused: nothing more until a review resumes it
    # the slowest: what a batch takes counts as ready (times not known yet), up to the limit
    assert policy.admits(0, 1000, states)
    assert not policy.admits(0, 1100, states)
    assert policy.paused == {0, 1}


def test_the_slowest_pauses_on_ready_records_and_resumes_at_half_the_limit() -> None:
    policy = PausePolicy(LIMIT)
    # undecided only within the allowed lateness (not ready): the slowest runs however many
    assert not policy.review({0: s(10**6, 100, ready=LIMIT), 1: s(0, 200)}).pause
    change = policy.review({0: s(10**6, 100, ready=LIMIT + 1), 1: s(0, 200)})
    assert change == Transitions(frozenset({0}), frozenset())
    assert not policy.review({0: s(10**6, 100, ready=LIMIT // 2 + 1), 1: s(0, 200)}).resume
    assert policy.review({0: s(10**6, 100, ready=LIMIT // 2), 1: s(0, 200)}).resume == {0}


def test_a_partition_that_took_a_batch_with_its_ready_records_is_paused() -> None:
    policy = PausePolicy(LIMIT)
    states = {0: s(600, 100, ready=600), 1: s(0, 200)}
    assert policy.admits(0, 1000, states)
    assert not policy.admits(0, 1001, states)  # 600 ready + 401 taken: past the limit


def test_no_wait_for_ever_whatever_the_order() -> None:
    """Partitions read at random speeds, decisions lagging at the slowest: all gets read.

    A deadlock would leave records unread with every unread partition paused and every
    decision made.
    """
    rng = random.Random(3)
    for _ in range(50):
        parts = rng.randint(1, 5)
        # per partition: event times of its records, increasing at its own density
        records = {q: sorted(rng.sample(range(10_000), rng.randint(0, 3000))) for q in range(parts)}
        read = dict.fromkeys(records, 0)
        policy, ledger = PausePolicy(rng.choice([50, 200, 1000])), UndecidedLedger()
        lateness, lag = rng.choice([0, 5, 300]), rng.randint(0, 20)
        decisions = [NEVER] * (lag + 1)  # the group decides what it could ``lag`` steps ago
        for _ in range(200_000):
            times = {q: records[q][read[q] - 1] if read[q] else NEVER for q in records}
            idle = {q: read[q] == len(records[q]) for q in records}
            fronts = [t for q, t in times.items() if not idle[q]]
            horizon = min(fronts, default=10_000) - lateness
            states = {
                q: InputState(ledger.undecided(q), times[q], idle[q], ledger.ready(q, horizon))
                for q in records
            }
            policy.review(states)
            active = [q for q in records if read[q] < len(records[q]) and q not in policy.paused]
            if not active and all(d == horizon for d in decisions):
                break
            if active:
                q = rng.choice(active)
                take = records[q][read[q] : read[q] + rng.randint(1, 40)]
                read[q] += len(take)
                ledger.ingested(q, take[-1], len(take))
            decisions = [*decisions[1:], horizon]
            ledger.settle(decisions[0])
        assert read == {q: len(r) for q, r in records.items()}


def test_the_ledger_counts_undecided_records_as_a_prefix() -> None:
    ledger = UndecidedLedger()
    ledger.ingested(0, 100, 10)
    ledger.ingested(0, 300, 5)  # out of order within the partition
    ledger.ingested(0, 200, 7)
    ledger.ingested(1, 150, 3)
    ledger.ingested(1, 160, 0)  # a message of dead letters only: nothing to decide
    ledger.settle(250)
    assert (ledger.undecided(0), ledger.undecided(1)) == (12, 0)  # 200 waits behind 300
    ledger.settle(300)
    assert ledger.undecided(0) == 0
    ledger.ingested(0, 400, 4)
    ledger.ingested(0, 350, 6)
    ledger.ingested(0, 500, 2)
    assert (ledger.ready(0, 399), ledger.ready(0, 400), ledger.ready(0, 10**6)) == (0, 10, 12)
    ledger.forget(0)
    assert ledger.undecided(0) == 0

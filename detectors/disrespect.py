"""throttle_disrespect: an app that keeps calling into throttling without backing off.

State key ``R|app|seller|operation``; the state is the event times of the scope's calls
(``c``) and of its throttled (429) calls (``q``, from the first one on: most scopes have
none) within ``window``. The scope's own calls prune it; one lazy
timer ``_t``, due two windows after the latest call when it was armed, drops the scope once
its window is empty (its next call then starts from empty, exactly as if it were kept) and
otherwise re-arms from the latest call, so a busy scope sets one timer per two windows.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from typing import TYPE_CHECKING

from aupwatch.detectors.declare import SEP, Detector, Reason, Severity, Step
from aupwatch.detectors.item import C_DEV, C_STATUS, EVENT_ID, PAYLOAD, TS
from aupwatch.detectors.occurrence import Emitter
from aupwatch.detectors.steps import States, apply_step

if TYPE_CHECKING:
    from aupwatch.detectors.config import DetectorConfig
    from aupwatch.detectors.engine import Item, Output, State

NAME = "throttle_disrespect"


class Disrespect:
    """Judges each throttled call by the scope's calls in the window that ends at it.

    Args:
        config: Gives ``disrespect_window``, ``min_throttled``, ``min_share``, the plans.
    """

    prefix = "R"
    # fire only drops or re-arms the scope's own state and emits nothing (see Operator)
    quiet_timers = True

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.window = config.disrespect_window
        # a late record up to a window behind the watermark still finds the scope's calls;
        # 1 us more, so that ids remembered for dedup_horizon (10 min) go with the state
        self.horizon = 2 * config.disrespect_window + 1
        self.min_throttled = config.min_throttled
        self.share = config.min_share
        self.occur = Emitter(config, NAME)

    def step(self, key: str, states: States, item: Item, out: Output) -> int | None:
        """As ``apply`` (``detectors.steps``); a call that is not throttled here."""
        state = states.get(key)
        if item[PAYLOAD][C_STATUS] == 429 or (state is not None and "_t" not in state):
            return apply_step(self, key, states, state, item, out)
        ts = item[TS]
        if state is None:  # a new scope's first call: most calls
            due = ts + self.horizon
            states[key] = {"c": [ts], "_t": due}  # "q" comes with its first 429
            return due
        calls: list[int] = state["c"]
        if calls and ts < calls[-1]:
            insort(calls, ts)  # a late item may come out of order
        else:
            calls.append(ts)  # as _add, inlined: every call of every scope comes here
        if calls[0] <= ts - self.window - self.window:
            self._trim(state, ts)
        return None

    def _trim(self, state: State, ts: int) -> None:
        """Drops the times before the window that ends at ``ts``: amortised, once per window."""
        _drop(state["c"], ts - self.window)
        if "q" in state:
            _drop(state["q"], ts - self.window)

    def apply(self, key: str, state: State | None, item: Item, out: Output) -> State | None:
        """Counts the call; a 429 that finds the condition met is an occurrence."""
        ts = item[TS]
        call = item[PAYLOAD]
        developer, status = call[C_DEV], call[C_STATUS]
        if state is None:
            state = {"c": [], "_t": ts + self.horizon}
        elif "_t" not in state:
            state["_t"] = ts + self.horizon  # written before scopes had timers
        calls: list[int] = state["c"]
        _add(calls, ts)
        if status != 429:  # step takes most of these: a state without _t, a late record
            if calls[0] <= ts - self.window - self.window:
                self._trim(state, ts)
            return state
        throttled: list[int] = state.setdefault("q", [])
        _add(throttled, ts)
        since = ts - self.window  # the window is (ts - window, ts]
        _drop(calls, since)
        _drop(throttled, since)
        n_calls, n_throttled = len(calls), len(throttled)
        if n_throttled < self.min_throttled or n_throttled < self.share * n_calls:
            return state
        _, app, seller, operation = key.split(SEP)
        plan = self.config.plan_for(operation)
        self.occur(
            out,
            item,
            "retry_storm",
            {
                "app_id": app,
                "seller_id": seller,
                "operation": operation,
                "developer_id": developer,
            },
            oid=item[EVENT_ID],
            first_seen=throttled[0],
            evidence={
                "calls": n_calls,
                "throttled_calls": n_throttled,
                "share": round(n_throttled / n_calls, 3),
                "plan": {"rate": plan.rate, "burst": plan.burst},
            },
        )
        return state

    def fire(self, key: str, state: State, due: int, out: Output) -> State | None:
        """Drops the scope two windows after its latest call, else re-arms from that call.

        A call after ``due`` then finds the window ``(t - window, t]`` empty of older calls,
        as it would if the scope were kept; so does a late record up to a window behind.
        """
        calls: list[int] = state["c"]
        if not calls or calls[-1] + self.horizon <= due:
            return None
        state["_t"] = calls[-1] + self.horizon
        return state


def _add(times: list[int], ts: int) -> None:
    """Adds a time, keeping the list in order (a late item may come out of order)."""
    if times and ts < times[-1]:
        insort(times, ts)
    else:
        times.append(ts)


def _drop(times: list[int], since: int) -> None:
    """Removes the times at or before ``since`` (the list is in event order)."""
    cut = bisect_right(times, since)
    if cut:
        del times[:cut]


DETECTOR = Detector(
    name=NAME,
    clause="Design your Application to respect per-Seller throttling quotas.",
    reasons=(
        Reason(
            "retry_storm",
            Severity.MEDIUM,
            "App {app_id} kept calling {operation} for seller {seller_id} while throttled: "
            "{throttled_calls} of {calls} calls got 429",
            ("app_id", "seller_id", "operation", "developer_id"),
        ),
    ),
    steps=(
        Step(
            "R",
            "detect",
            key=("app_id", "seller_id", "operation"),
            inputs=("api_call",),
            build=Disrespect,
        ),
    ),
    settings=(
        "throttle_disrespect.window",
        "throttle_disrespect.min_throttled",
        "throttle_disrespect.min_share",
    ),
)

"""dormant_key: keys without a successful call for 90 days, and their later use.

State key ``D|key``. The timer ``_t`` is rescheduled lazily: a successful call only moves
the clock, and a timer that fires early re-arms itself at the real due time. The state is
kept forever (a dormant key must say ``reactivated``, a revoked one ``revoked_key_used``, at
any later time) unless ``key_retention`` forgets a key after that long without an item.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aupwatch.detectors.declare import SEP, Detector, Reason, Severity, Step
from aupwatch.detectors.item import C_DEV, C_STATUS, EVENT_ID, PAYLOAD, TS
from aupwatch.detectors.occurrence import Emitter
from aupwatch.detectors.retention import expired, rearm, touch
from aupwatch.detectors.steps import States, apply_step, step_by_apply
from aupwatch.schemas.records import format_ts

if TYPE_CHECKING:
    from aupwatch.detectors.config import DetectorConfig
    from aupwatch.detectors.engine import Item, Output, State

NAME = "dormant_key"
_DAY = 86_400_000_000


class Dormant:
    """Tracks each key's clock (creation, rotation, last success) and its life cycle.

    Args:
        config: Gives ``dormant_after`` and ``warn_after`` (0 turns warnings off).
    """

    prefix = "D"

    def __init__(self, config: DetectorConfig) -> None:
        self.after = config.dormant_after
        self.warn = config.warn_after
        self.occur = Emitter(config, NAME)

    def _due(self, state: State) -> int | None:
        if state["st"] != "active":
            return None
        if self.warn and not state["warned"]:
            return int(state["clock"] + self.warn)
        return int(state["clock"] + self.after)

    def _arm(self, state: State) -> State:
        # keep an earlier timer: it re-arms itself when it fires
        due = self._due(state)
        if due is None:
            state["_t"] = None
        elif state.get("_t") is None or state["_t"] > due:
            state["_t"] = due
        return state

    def step(self, key: str, states: States, item: Item, out: Output) -> int | None:
        """As ``apply`` (``detectors.steps``); a call with an active key here: most records."""
        payload = item[PAYLOAD]
        state = states.get(key)
        if payload[0] != "c" or state is None or state["st"] != "active":
            return apply_step(self, key, states, state, item, out)
        if 200 <= payload[C_STATUS] < 300:
            ts = state["ok"] = item[TS]
            if ts > state["clock"]:
                state["clock"] = ts
                state["warned"] = False  # a new idle stretch starts: it may warn again
        warn = self.warn  # self._arm(state), as in apply
        due = state["clock"] + (warn if warn and not state["warned"] else self.after)
        armed = state.get("_t")
        if armed is None or armed > due:
            state["_t"] = due
            return due  # type: ignore[no-any-return]
        return None

    def apply(self, key: str, state: State | None, item: Item, out: Output) -> State | None:
        """Applies a key event (``k``) or a call (``c``)."""
        ts = item[TS]
        payload = item[PAYLOAD]
        if payload[0] == "k":
            action, developer = payload[1], payload[2]
            if state is None:
                state = {
                    "dev": developer,
                    "clock": ts,
                    "ok": None,
                    "st": "active",
                    "warned": False,
                    "_t": None,
                }
            elif state["st"] == "revoked":
                return state
            state["dev"] = developer
            if action in ("revoked", "deleted"):
                state["st"] = "revoked"
                state["_t"] = None
                return state
            state["clock"] = max(state["clock"], ts)
            state["st"] = "active"
            state["warned"] = False
            return self._arm(state)
        status = payload[C_STATUS]
        ok = 200 <= status < 300
        if state is None:
            state = {
                "dev": payload[C_DEV],
                "clock": ts,
                "ok": ts if ok else None,
                "st": "active",
                "warned": False,
                "_t": None,
            }
            return self._arm(state)
        st = state["st"]
        if st == "revoked":
            self._occur(out, item, key, state, "revoked_key_used", status=status)
            return state
        if st == "dormant":
            self._occur(out, item, key, state, "reactivated", status=status)
            if not ok:
                return state
            state["st"] = "active"
            state["warned"] = False
        if ok:
            state["ok"] = ts
            if ts > state["clock"]:
                state["clock"] = ts
                state["warned"] = False  # a new idle stretch starts: it may warn again
        return self._arm(state)  # step does this inline for an active key

    def fire(self, key: str, state: State, due: int, out: Output) -> State | None:
        """Emits the warning or the dormancy due now, or re-arms at the real due time."""
        real = self._due(state)
        state["_t"] = None
        if real is None:
            return state
        if real > due:
            state["_t"] = real
            return state
        item: Item = (due, -1, f"due{SEP}{due}", key, None, 0)
        if self.warn and not state["warned"]:
            state["warned"] = True
            self._occur(out, item, key, state, "dormant_warning")
        else:
            state["st"] = "dormant"
            self._occur(out, item, key, state, "dormant")
        return self._arm(state)

    def _occur(
        self,
        out: Output,
        item: Item,
        key: str,
        state: State,
        reason: str,
        status: int | None = None,
    ) -> None:
        evidence: dict[str, object] = {
            "last_success": None if state["ok"] is None else format_ts(state["ok"]),
            "idle_days": (item[TS] - state["clock"]) // _DAY,
        }
        if status is not None:
            evidence["status"] = status
        self.occur(
            out,
            item,
            reason,
            {"key_id": key.split(SEP, 1)[1], "developer_id": state["dev"]},
            oid=item[EVENT_ID],
            first_seen=state["clock"] if status is None else item[TS],
            evidence=evidence,
        )


class RetainedDormant(Dormant):
    """``Dormant`` that forgets a key ``key_retention`` after its last item.

    ``key_retention`` is longer than ``dormant_after``, so an idle key still goes dormant
    first. A forgotten key is as if never seen: its next call makes it known again.

    Args:
        config: As for ``Dormant``, with ``key_retention`` > ``dormant_after``.
    """

    step = step_by_apply  # every item goes through apply (and touch)

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__(config)
        self.retention = config.key_retention

    def apply(self, key: str, state: State | None, item: Item, out: Output) -> State | None:
        """As ``Dormant.apply``; any item of the key is activity."""
        new = super().apply(key, state, item, out)
        return None if new is None else touch(new, item[TS], self.retention)

    def fire(self, key: str, state: State, due: int, out: Output) -> State | None:
        """Forgets the key, or does what ``Dormant.fire`` does and keeps the earlier timer."""
        if expired(state, due, self.retention, state["clock"]):
            return None
        new = super().fire(key, state, due, out)
        return None if new is None else rearm(new, self.retention, new["clock"])


def _build(config: DetectorConfig) -> Dormant:
    """The operator: with the opt-in retention only when it is set."""
    return RetainedDormant(config) if config.key_retention else Dormant(config)


_KEY_SUBJECT = ("key_id", "developer_id")
DETECTOR = Detector(
    name=NAME,
    clause="Keys that do not make a successful call in 90 days will be deleted.",
    reasons=(
        Reason(
            "dormant_warning",
            Severity.LOW,
            "Key {key_id} of {developer_id} has made no successful call for {idle_days} days",
            _KEY_SUBJECT,
        ),
        Reason(
            "dormant",
            Severity.LOW,
            "Key {key_id} of {developer_id} is dormant: no successful call for {idle_days} days",
            _KEY_SUBJECT,
        ),
        Reason(
            "reactivated",
            Severity.MEDIUM,
            "Dormant key {key_id} of {developer_id} was used again",
            _KEY_SUBJECT,
        ),
        Reason(
            "revoked_key_used",
            Severity.HIGH,
            "Key {key_id} of {developer_id} was used after it was revoked or deleted",
            _KEY_SUBJECT,
        ),
    ),
    steps=(Step("D", "detect", key=("key_id",), inputs=("key_event", "api_call"), build=_build),),
    settings=("dormant.dormant_after", "dormant.warn_after", "dormant.key_retention"),
)

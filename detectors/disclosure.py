"""cross_seller_disclosure: seller data shown to another seller's user or an outsider.

State key ``O|app|resource``; the state holds the sellers that own the resource within the
app (each with the time of the latest successful call that returned it for them) and the
accesses still waiting for an owner (``ownership_wait``). Most resources have one owner
and no access waiting: their state keeps it flat (``own``: the seller, ``at``: the time),
one dict instead of two; the others keep ``own`` as seller -> time, the only shape of
state format 3, which therefore still reads as it was written. The same ownership feeds
``internal_overreach``: accesses by internal users are forwarded to it with their owners.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aupwatch.detectors.declare import SEP, Detector, Reason, Severity, Step
from aupwatch.detectors.item import C_SELLER, EVENT_ID, ORIGIN, PAYLOAD, RANK, TS
from aupwatch.detectors.occurrence import Emitter
from aupwatch.detectors.steps import States, apply_step

if TYPE_CHECKING:
    from aupwatch.detectors.config import DetectorConfig
    from aupwatch.detectors.engine import Item, Output, State

NAME = "cross_seller_disclosure"
OVERREACH = "internal_overreach"
# a waiting access, persisted as a list: [ts, event id, payload, judged, origin]
W_TS, W_EVENT_ID, W_PAYLOAD, W_JUDGED, W_ORIGIN = range(5)


class Disclosure:
    """Records ownership from successful calls and judges each disclosed resource.

    Args:
        config: Gives ``ownership_wait``, ``ownership_retention``, the exceptions and
            which of the two detectors that read ownership are switched on.
    """

    prefix = "O"

    def __init__(self, config: DetectorConfig) -> None:
        self.occur = Emitter(config, NAME)
        self.wait = config.ownership_wait
        self.retention = config.ownership_retention
        self.judging = NAME not in config.disabled
        self.overreach = OVERREACH not in config.disabled

    def step(self, key: str, states: States, item: Item, out: Output) -> int | None:
        """As ``apply`` (``detectors.steps``); a call for a new resource or its one owner here."""
        payload = item[PAYLOAD]
        state = states.get(key)
        if payload[0] == "c":
            if state is None:  # half the calls own a new resource
                ts = item[TS]
                if self.retention:
                    due = ts + self.retention + 1
                    states[key] = {"own": payload[C_SELLER], "at": ts, "_t": due}
                    return due
                states[key] = {"own": payload[C_SELLER], "at": ts}
                return None
            if state["own"] == payload[C_SELLER]:  # its one owner again (a map is no str)
                ts = state["at"] = item[TS]
                if self.retention and state.get("_t") is None:
                    due = state["_t"] = ts + self.retention + 1
                    return due
                return None
        return apply_step(self, key, states, state, item, out)

    def apply(self, key: str, state: State | None, item: Item, out: Output) -> State | None:
        """Adds an owner (``c``) or judges a data access (``a``)."""
        payload = item[PAYLOAD]
        ts = item[TS]
        if payload[0] == "c":
            seller = payload[C_SELLER]
            if state is None:  # built in one step: half the calls own a new resource
                if self.retention:
                    return {"own": seller, "at": ts, "_t": ts + self.retention + 1}
                return {"own": seller, "at": ts}
            owners = state["own"]
            if type(owners) is str:  # one owner, no access waiting
                if owners == seller:
                    state["at"] = ts
                    if self.retention and state.get("_t") is None:
                        state["_t"] = ts + self.retention + 1
                    return state
                owners = state["own"] = {owners: state.pop("at")}  # a second owner
            new = seller not in owners
            owners[seller] = ts
            if self.retention and state.get("_t") is None:
                state["_t"] = ts + self.retention + 1
            if new and state.get("wait"):
                self._owner_for_waiting(key, state, seller, item, out)
            return state
        viewer_type = payload[1]
        if state is None or not state["own"]:
            if not self.wait:
                if viewer_type != "internal_user":
                    out.unowned += 1
                return state
            # no owner yet: wait for a successful call within ownership_wait
            if state is None:
                state = {"own": {}}
            state.setdefault("wait", []).append([ts, item[EVENT_ID], payload, False, item[ORIGIN]])
            due = ts + self.wait + 1
            if state.get("_t") is None or state["_t"] > due:
                state["_t"] = due
            return state
        self._judge(key, owners_of(state), item, payload, out, ts)
        return state

    def _judge(
        self,
        key: str,
        owners: dict[str, int],
        item: Item,
        payload: Any,
        out: Output,
        at: int,
        only: str | None = None,
    ) -> None:
        """Judges one access against the owners (or the one new owner ``only``) at ``at``."""
        _, viewer_type, viewer_id, viewer_seller, channel = payload
        _, app, resource = key.split(SEP, 2)
        if viewer_type == "internal_user":
            if self.overreach:
                sellers = sorted(owners) if only is None else [only]
                out.forwards.append(
                    (
                        at,
                        item[RANK],
                        f"{item[EVENT_ID]}{SEP}{resource}",
                        f"I{SEP}{app}{SEP}{viewer_id}",
                        (sellers, resource, item[EVENT_ID]),
                        item[ORIGIN],
                    )
                )
            return
        if not self.judging:
            return
        if viewer_type == "seller_user":
            if viewer_seller in owners:
                return
            reason, viewer = "other_seller", {"viewer_seller_id": viewer_seller}
        else:
            reason, viewer = "external_party", {"viewer_id": viewer_id}
        for owner in sorted(owners) if only is None else [only]:
            self.occur(
                out,
                item,
                reason,
                {"app_id": app, "owner_seller_id": owner, "viewer_type": viewer_type, **viewer},
                oid=f"{item[EVENT_ID]}{SEP}{resource}",
                counters={"disclosures": 1},
                distinct={"resource_ids": resource, "channels": channel},
                ts=at,
            )

    def _owner_for_waiting(
        self, key: str, state: State, seller: str, call: Item, out: Output
    ) -> None:
        """Judges the accesses still waiting against a new owner, at the owning call's time."""
        for entry in state["wait"]:
            ts, eid, payload, _, origin = entry
            if ts + self.wait < call[TS]:
                continue  # its wait is over (the timer has not dropped it yet)
            entry[W_JUDGED] = True
            access: Item = (ts, 3, eid, key, payload, origin)
            self._judge(key, state["own"], access, payload, out, call[TS], only=seller)

    def fire(self, key: str, state: State, due: int, out: Output) -> State | None:
        """Ends the waits and forgets the owners past ``ownership_retention``."""
        now = due - 1
        if type(state["own"]) is str:  # one owner, no access waiting: it stays or goes
            last = state["at"]
            if not self.retention or last + self.retention > now:
                state["_t"] = last + self.retention + 1 if self.retention else None
                return state
            return None
        state["_t"] = None
        waiting = state.get("wait")
        if waiting:
            keep = []
            for entry in waiting:
                if entry[W_TS] + self.wait > now:
                    keep.append(entry)
                elif not entry[W_JUDGED] and entry[W_PAYLOAD][1] != "internal_user":
                    out.unowned += 1  # still without owner after the wait
            if keep:
                state["wait"] = keep
            else:
                del state["wait"]
        owners: dict[str, int] = state["own"]
        if self.retention:
            for seller in [s for s, last in owners.items() if last + self.retention <= now]:
                del owners[seller]
        if not owners and not state.get("wait"):
            return None
        dues = [e[W_TS] + self.wait + 1 for e in state.get("wait", ())]
        if self.retention and owners:
            dues.append(min(owners.values()) + self.retention + 1)
        state["_t"] = max(min(dues), due + 1) if dues else None
        return state


def owners_of(state: State) -> dict[str, int]:
    """The owners of a resource's state: seller -> latest owning call's time."""
    owners = state["own"]
    if type(owners) is str:
        return {owners: state["at"]}
    return owners  # type: ignore[no-any-return]


DETECTOR = Detector(
    name=NAME,
    clause="Do not disclose information, individually labeled or aggregated, obtained "
    "through Marketplace APIs on behalf of a Seller to other Application users or any "
    "outside parties.",
    reasons=(
        Reason(
            "other_seller",
            Severity.CRITICAL,
            "App {app_id} showed data of seller {owner_seller_id} to a user of seller "
            "{viewer_seller_id}",
            ("app_id", "owner_seller_id", "viewer_type", "viewer_seller_id"),
        ),
        Reason(
            "external_party",
            Severity.CRITICAL,
            "App {app_id} disclosed data of seller {owner_seller_id} to outside party {viewer_id}",
            ("app_id", "owner_seller_id", "viewer_type", "viewer_id"),
        ),
    ),
    steps=(
        Step(
            "O",
            "detect",
            key=("app_id", "resource_id"),
            inputs=("api_call", "data_access"),
            build=Disclosure,
        ),
    ),
    settings=("disclosure.ownership_wait", "disclosure.ownership_retention"),
)

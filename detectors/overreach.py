"""internal_overreach: an internal user reaching the data of too many sellers.

State key ``I|app|viewer`` in the throttle stage, fed by ``cross_seller_disclosure``'s
ownership step (``O``), which forwards each (access, resource) of an internal user with the
resource's owners. The state is the window of (time, seller, resource, access) seen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aupwatch.detectors.declare import SEP, Detector, Reason, Severity, Step
from aupwatch.detectors.item import PAYLOAD, TS
from aupwatch.detectors.occurrence import Emitter

if TYPE_CHECKING:
    from aupwatch.detectors.config import DetectorConfig
    from aupwatch.detectors.engine import Item, Output, State

NAME = "internal_overreach"
# an access in the window, persisted as a list: [ts, seller, resource, access event id]
Q_TS, Q_SELLER, Q_RESOURCE, Q_ACCESS = range(4)


class Overreach:
    """Counts the distinct owning sellers an internal user reached within ``window``.

    Args:
        config: Gives ``overreach_window``, ``max_sellers`` and the exceptions.
    """

    prefix = "I"

    def __init__(self, config: DetectorConfig) -> None:
        self.window = config.overreach_window
        self.max = config.max_sellers
        self.sample = config.sample_size
        self.occur = Emitter(config, NAME)

    def apply(self, key: str, state: State | None, item: Item, out: Output) -> State | None:
        """Adds a disclosed resource and its owners; a new seller at the threshold emits."""
        ts = item[TS]
        sellers, resource, access = item[PAYLOAD]
        if state is None:
            state = {"q": [], "n": {}, "_t": ts + self.window + 1}
        queue: list[list[Any]] = state["q"]
        counts: dict[str, int] = state["n"]
        self._prune(queue, counts, ts - self.window)
        added = False
        for seller in sellers:
            queue.append([ts, seller, resource, access])
            n = counts.get(seller, 0)
            counts[seller] = n + 1
            added = added or n == 0
        if added and len(counts) >= self.max:
            _, app, viewer = key.split(SEP, 2)
            distinct = sorted(counts)
            self.occur(
                out,
                item,
                "broad_access",
                {"app_id": app, "viewer_id": viewer},
                oid=access,
                first_seen=queue[0][Q_TS],
                evidence={
                    "distinct_sellers": len(distinct),
                    "sellers": distinct[: self.sample],
                    "accesses": len({e[Q_ACCESS] for e in queue}),
                    "resources": len({e[Q_RESOURCE] for e in queue}),
                },
            )
        return state

    @staticmethod
    def _prune(queue: list[list[Any]], counts: dict[str, int], since: int) -> None:
        """Drops the entries at or before ``since`` (the window is ``(t - window, t]``)."""
        cut = 0
        for entry in queue:
            if entry[Q_TS] > since:
                break
            cut += 1
            seller = entry[Q_SELLER]
            left = counts[seller] - 1
            if left:
                counts[seller] = left
            else:
                del counts[seller]
        if cut:
            del queue[:cut]

    def fire(self, key: str, state: State, due: int, out: Output) -> State | None:
        """Drops what left the window; the key when nothing is left."""
        queue = state["q"]
        self._prune(queue, state["n"], due - 1 - self.window)
        if not queue:
            return None
        state["_t"] = max(queue[-1][Q_TS] + self.window + 1, due + 1)
        return state


DETECTOR = Detector(
    name=NAME,
    clause="Only grant access to data on a 'need-to-know' basis within your organization.",
    reasons=(
        Reason(
            "broad_access",
            Severity.MEDIUM,
            "Internal user {viewer_id} of app {app_id} reached data of {distinct_sellers} "
            "sellers within the window",
            ("app_id", "viewer_id"),
        ),
    ),
    steps=(
        Step(
            "I",
            "throttle",
            key=("app_id", "viewer_id"),
            # accesses by internal users, with the owners of what they reached
            inputs=("forward:O",),
            build=Overreach,
        ),
    ),
    settings=("internal_overreach.window", "internal_overreach.max_sellers"),
)

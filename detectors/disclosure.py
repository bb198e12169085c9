"""cross_seller_disclosure: seller data shown to another seller's user or an outsider.

State key ``O|app|resource``; the state is the set of sellers that own the resource
within the app (each with the time it was first fetched for them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aupwatch.detectors.declare import SEP, Detector, Reason, Severity, Step
from aupwatch.detectors.occurrence import Emitter

if TYPE_CHECKING:
    from aupwatch.detectors.config import DetectorConfig
    from aupwatch.detectors.engine import Item, Output, State

NAME = "cross_seller_disclosure"


class Disclosure:
    """Records ownership from successful calls and judges each disclosed resource.

    Args:
        config: Gives the exceptions.
    """

    prefix = "O"

    def __init__(self, config: DetectorConfig) -> None:
        self.occur = Emitter(config, NAME)

    def apply(self, key: str, state: State | None, item: Item, out: Output) -> State | None:
        """Adds an owner (``c``) or judges a data access (``a``)."""
        payload = item[4]
        if payload[0] == "c":
            if state is None:
                return {"own": {payload[1]: item[0]}}
            state["own"].setdefault(payload[1], item[0])
            return state
        _, viewer_type, viewer_id, viewer_seller, channel = payload
        if viewer_type == "internal_user":
            return state
        if state is None:
            out.unowned += 1
            return None
        owners = state["own"]
        if viewer_type == "seller_user":
            if viewer_seller in owners:
                return state
            reason, viewer = "other_seller", {"viewer_seller_id": viewer_seller}
        else:
            reason, viewer = "external_party", {"viewer_id": viewer_id}
        _, app, resource = key.split(SEP, 2)
        for owner in sorted(owners):
            self.occur(
                out,
                item,
                reason,
                {"app_id": app, "owner_seller_id": owner, "viewer_type": viewer_type, **viewer},
                oid=f"{item[2]}{SEP}{resource}",
                counters={"disclosures": 1},
                distinct={"resource_ids": resource, "channels": channel},
            )
        return state

    def fire(self, key: str, state: State, due: int, out: Output) -> State | None:
        """Never called: ownership is kept without timers."""
        return state


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
)

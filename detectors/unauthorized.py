"""unauthorized_seller_access: acting for sellers that have not authorized the app.

Calls for sellers without an active, sufficient grant, and data shown to users of sellers
without an active grant.

State key ``U|app|seller``; the state is the latest authorization in event order, kept
forever (a revoke must still say ``revoked`` years later) unless
``authorization_retention`` forgets a pair after that long without an item.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aupwatch.detectors.declare import SEP, Detector, Reason, Severity, Step
from aupwatch.detectors.item import (
    A_CHANNEL,
    A_VIEWER,
    C_DEV,
    C_OP,
    C_STATUS,
    EVENT_ID,
    PAYLOAD,
    TS,
)
from aupwatch.detectors.occurrence import Emitter
from aupwatch.detectors.retention import applied, fired
from aupwatch.detectors.steps import States, apply_step, step_by_apply

if TYPE_CHECKING:
    from aupwatch.detectors.config import DetectorConfig
    from aupwatch.detectors.engine import Item, Output, State

NAME = "unauthorized_seller_access"


class Unauthorized:
    """Judges calls and accesses by a seller's users against the grant active at their time.

    Args:
        config: Gives the restricted-role catalog and the exceptions.
    """

    prefix = "U"

    def __init__(self, config: DetectorConfig) -> None:
        self.roles = dict(config.roles)  # a plain dict: faster to read than the proxy
        self.occur = Emitter(config, NAME)

    def step(self, key: str, states: States, item: Item, out: Output) -> int | None:
        """As ``apply`` (``detectors.steps``); a call, which changes no grant, here."""
        state = states.get(key)
        if item[PAYLOAD][0] == "c":
            self.apply(key, state, item, out)
            return None
        return apply_step(self, key, states, state, item, out)

    def apply(self, key: str, state: State | None, item: Item, out: Output) -> State | None:
        """Applies an authorization (``g``/``r``), judges a call (``c``) or an access (``a``)."""
        payload = item[PAYLOAD]
        tag = payload[0]
        if tag != "c":  # nine items in ten are calls: they test the tag once
            if tag == "g":
                return {"a": "g", "roles": payload[1], "x": payload[2]}
            if tag == "r":
                return {"a": "r"}
            self._viewer(key, state, item, out)  # "a"
            return state
        required = self.roles.get(payload[C_OP])
        if state is None:
            reason = "no_grant"
        elif state["a"] == "r":
            reason = "revoked"
        elif state["x"] is not None and state["x"] <= item[TS]:
            reason = "expired"
        elif required is not None and required not in state["roles"]:
            reason = "missing_role"
        else:
            return state
        developer, operation, status = payload[C_DEV], payload[C_OP], payload[C_STATUS]
        _, app, seller = key.split(SEP)
        self.occur(
            out,
            item,
            reason,
            {"app_id": app, "seller_id": seller, "developer_id": developer},
            oid=item[EVENT_ID],
            evidence={"required_role": required} if reason == "missing_role" else None,
            counters={"calls": 1, "succeeded": 1 if 200 <= status < 300 else 0},
            distinct={"operations": operation},
        )
        return state

    def _viewer(self, key: str, state: State | None, item: Item, out: Output) -> None:
        """Judges a data access by a user of the key's seller (``unauthorized_viewer``)."""
        if state is None:
            grant = "none"
        elif state["a"] == "r":
            grant = "revoked"
        elif state["x"] is not None and state["x"] <= item[TS]:
            grant = "expired"
        else:
            return
        access = item[PAYLOAD]
        viewer, channel = access[A_VIEWER], access[A_CHANNEL]
        _, app, seller = key.split(SEP)
        self.occur(
            out,
            item,
            "unauthorized_viewer",
            {"app_id": app, "seller_id": seller},
            oid=item[EVENT_ID],
            evidence={"authorization": grant},
            counters={"accesses": 1},
            distinct={"viewers": viewer, "channels": channel},
        )

    def fire(self, key: str, state: State, due: int, out: Output) -> State | None:
        """Never called: this detector sets no timers."""
        return state


class RetainedUnauthorized(Unauthorized):
    """``Unauthorized`` that forgets a pair ``authorization_retention`` after its last item.

    A forgotten pair is as if never authorized: its next call is ``no_grant``.

    Args:
        config: As for ``Unauthorized``, with ``authorization_retention`` > 0.
    """

    step = step_by_apply  # every item goes through apply (and applied)

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__(config)
        self.retention = config.authorization_retention

    def apply(self, key: str, state: State | None, item: Item, out: Output) -> State | None:
        """As ``Unauthorized.apply``; any item of the pair is activity."""
        return applied(state, super().apply(key, state, item, out), item[TS], self.retention)

    def fire(self, key: str, state: State, due: int, out: Output) -> State | None:
        """Forgets the pair, or re-arms at its latest activity plus the retention."""
        return fired(state, due, self.retention)


def _build(config: DetectorConfig) -> Unauthorized:
    """The operator: with the opt-in retention only when it is set (no timers otherwise)."""
    if config.authorization_retention:
        return RetainedUnauthorized(config)
    return Unauthorized(config)


_CALL_SUBJECT = ("app_id", "seller_id", "developer_id")
DETECTOR = Detector(
    name=NAME,
    clause="Only act on behalf of Sellers that have granted you permission through "
    "third-party authorization.",
    reasons=(
        Reason(
            "no_grant",
            Severity.HIGH,
            "App {app_id} called the API for seller {seller_id}, who never authorized it",
            _CALL_SUBJECT,
        ),
        Reason(
            "revoked",
            Severity.HIGH,
            "App {app_id} called the API for seller {seller_id} after its authorization "
            "was revoked",
            _CALL_SUBJECT,
        ),
        Reason(
            "expired",
            Severity.MEDIUM,
            "App {app_id} called the API for seller {seller_id} after its authorization expired",
            _CALL_SUBJECT,
        ),
        Reason(
            "missing_role",
            Severity.HIGH,
            "App {app_id} called a restricted operation for seller {seller_id} without the "
            "role it needs",
            _CALL_SUBJECT,
        ),
        Reason(
            "unauthorized_viewer",
            Severity.MEDIUM,
            "App {app_id} showed data to users of seller {seller_id}, who has not authorized it",
            ("app_id", "seller_id"),
        ),
    ),
    steps=(
        Step(
            "U",
            "detect",
            key=("app_id", "seller_id"),
            # a data_access by a seller_user is keyed by (app_id, viewer_seller_id)
            inputs=("authorization", "api_call", "data_access"),
            build=_build,
        ),
    ),
    settings=("roles", "unauthorized_seller_access.authorization_retention"),
)

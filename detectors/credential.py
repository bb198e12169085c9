"""credential_sharing: a key used by another developer, or by its owner through another app.

State key ``K|key``; the state is the key's owner: the developer (and app, when known) of
its latest ``created`` key_event, or of the first call of a key first seen in a call. It is
kept forever unless ``dormant.key_retention`` forgets a key after that long without an item.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aupwatch.detectors.declare import Detector, Reason, Severity, Step
from aupwatch.detectors.item import C_APP, C_DEV, C_IP, C_OP, C_STATUS, EVENT_ID, PAYLOAD, TS
from aupwatch.detectors.occurrence import Emitter
from aupwatch.detectors.retention import applied, fired
from aupwatch.detectors.steps import States, apply_step, step_by_apply

if TYPE_CHECKING:
    from aupwatch.detectors.config import DetectorConfig
    from aupwatch.detectors.engine import Item, Output, State

NAME = "credential_sharing"


class Sharing:
    """Keeps each key's owner and judges every call made with the key.

    Args:
        config: Gives the exceptions.
    """

    prefix = "K"

    def __init__(self, config: DetectorConfig) -> None:
        self.occur = Emitter(config, NAME)

    def step(self, key: str, states: States, item: Item, out: Output) -> int | None:
        """As ``apply`` (``detectors.steps``); the owner's own call, nearly every one, here."""
        payload = item[PAYLOAD]
        state = states.get(key)
        if (
            state is None
            or payload[0] != "c"
            or payload[C_DEV] != state["dev"]
            or (state["app"] is not None and payload[C_APP] != state["app"])
        ):
            return apply_step(self, key, states, state, item, out)
        return None  # nothing to judge, nothing changes

    def apply(self, key: str, state: State | None, item: Item, out: Output) -> State | None:
        """Applies a key event (``k``) or judges a call (``c``)."""
        payload = item[PAYLOAD]
        if payload[0] == "k":
            _, action, developer, app = payload
            if state is None or action == "created":
                # a created event sets the owner anew; a key first seen in another event
                # is owned by the developer that event names
                return {"dev": developer, "app": app}
            return state  # rotated, revoked, deleted: the owner stays
        developer, app = payload[C_DEV], payload[C_APP]
        if state is None:
            return {"dev": developer, "app": app}
        owner = state["dev"]
        if developer != owner:
            reason = "foreign_developer"
            subject = {"key_id": key[2:], "owner_developer_id": owner, "developer_id": developer}
        elif state["app"] is not None and app != state["app"]:
            reason = "foreign_app"
            subject = {"key_id": key[2:], "owner_developer_id": owner, "app_id": app}
        else:
            return state
        self.occur(
            out,
            item,
            reason,
            subject,
            oid=item[EVENT_ID],
            evidence={"owner_app_id": state["app"]},
            counters={"calls": 1, "succeeded": 1 if 200 <= payload[C_STATUS] < 300 else 0},
            distinct={"operations": payload[C_OP], "source_ips": payload[C_IP]},
        )
        return state

    def fire(self, key: str, state: State, due: int, out: Output) -> State | None:
        """Never called: this detector sets no timers."""
        return state


class RetainedSharing(Sharing):
    """``Sharing`` that forgets a key's owner ``key_retention`` after the key's last item.

    A forgotten key is as if never seen: its next call makes that call's developer the owner.

    Args:
        config: As for ``Sharing``, with ``key_retention`` > 0.
    """

    step = step_by_apply  # every item goes through apply (and touch)

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__(config)
        self.retention = config.key_retention

    def apply(self, key: str, state: State | None, item: Item, out: Output) -> State | None:
        """As ``Sharing.apply``; any item of the key is activity."""
        return applied(state, super().apply(key, state, item, out), item[TS], self.retention)

    def fire(self, key: str, state: State, due: int, out: Output) -> State | None:
        """Forgets the key, or re-arms at its latest activity plus the retention."""
        return fired(state, due, self.retention)


def _build(config: DetectorConfig) -> Sharing:
    """The operator: with the opt-in retention only when it is set (no timers otherwise)."""
    return RetainedSharing(config) if config.key_retention else Sharing(config)


DETECTOR = Detector(
    name=NAME,
    clause="Never share keys or passwords.",
    reasons=(
        Reason(
            "foreign_developer",
            Severity.HIGH,
            "Key {key_id} of {owner_developer_id} was used by developer {developer_id}",
            ("key_id", "owner_developer_id", "developer_id"),
        ),
        Reason(
            "foreign_app",
            Severity.MEDIUM,
            "Key {key_id} of {owner_developer_id} was used through app {app_id}, not its own",
            ("key_id", "owner_developer_id", "app_id"),
        ),
    ),
    steps=(Step("K", "detect", key=("key_id",), inputs=("key_event", "api_call"), build=_build),),
    settings=("dormant.key_retention",),
)

"""Injected breaches and hard negatives of the synthetic log generator, with ground truth.

Every breach is placed on a subject of its own and keeps all of its occurrences within
30 minutes, so it yields exactly one alert per (detector, reason, subject) under
docs/semantics.md (dedup window 1 h). Dormancy and unauthorized_viewer alerts are
simulated once the largest event time of the file is known.

The cases of each detector family live in a module of their own (``unauthorized``,
``viewers``, ``throttle``, ``disrespect``, ``disclosure``, ``overreach``, ``keys``). The
version 1 cases are injected before the background, the later ones after it, so that
adding them left the earlier records (and their event ids) as they were.

The truth is kept for two configurations: the defaults (deploy/aupwatch.toml) and the
tuned configuration of ``aupwatch.streams.generator.tuned`` (user-agent linking, the
injected proxy network and SDK agent ignored, exceptions). The input is the same for both.
"""

from __future__ import annotations

from typing import Any

from aupwatch.streams.generator import tuned
from aupwatch.streams.generator.disclosure import inject_disclosure, inject_ownership_wait
from aupwatch.streams.generator.disrespect import inject_retry_storms
from aupwatch.streams.generator.entities import DAY_MS, App, Seller
from aupwatch.streams.generator.keys import fold, inject_credentials, inject_dormancy, simulate_key
from aupwatch.streams.generator.overreach import inject_overreach
from aupwatch.streams.generator.throttle import inject_linked_quota, inject_shared_quota
from aupwatch.streams.generator.tuned import BOTH, DEFAULT, TUNED
from aupwatch.streams.generator.unauthorized import inject_unauthorized
from aupwatch.streams.generator.viewers import inject_viewers, viewer_truth
from aupwatch.streams.generator.world import World

PER_REASON = 3
# records the cases after the background add (about): the background leaves room for them
LATE_RECORDS = 570


class Injector:
    """Injects the breaches and hard negatives into a ``World`` and keeps their truth."""

    def __init__(self, world: World) -> None:
        self.w = world
        self.rng = world.rng
        self.truth: list[dict[str, Any]] = []
        self.only: dict[str, list[dict[str, Any]]] = {DEFAULT: [], TUNED: []}
        self.excepted: list[dict[str, Any]] = []  # truth the tuned exceptions suppress
        self.exceptions: list[dict[str, Any]] = []  # the tuned config's [[exceptions]]
        self.dormancy_keys: dict[str, str] = {}  # key_id -> developer_id
        self.cases: list[dict[str, Any]] = []  # what was injected (breaches and negatives)

    # ---- helpers -----------------------------------------------------------------------
    def expect(
        self, detector: str, reason: str, subject: dict[str, Any], config: str = BOTH
    ) -> None:
        """Adds one expected alert to the truth of both configurations or of one."""
        alert = {"detector": detector, "reason": reason, "subject": subject}
        (self.truth if config == BOTH else self.only[config]).append(alert)

    def except_tuned(self, alert: dict[str, Any] | None, rule: dict[str, Any]) -> None:
        """Adds an ``[[exceptions]]`` entry to the tuned config; ``alert`` is what it hides."""
        self.exceptions.append(rule)
        if alert is not None:
            self.excepted.append(alert)

    def note(self, case: str, **info: Any) -> None:
        """Records an injected case (for tests and debugging)."""
        self.cases.append({"case": case, **info})

    def at(self, lead: int = 3 * DAY_MS) -> int:
        """A random time at least ``lead`` after the start and a day before the end."""
        w = self.w
        return int(w.start + lead + int(self.rng.random() * max(0, w.span - lead - DAY_MS)))

    def app_at(self, t: int, exclude: tuple[App, ...] = (), age: int = DAY_MS) -> App:
        """A random app of another developer than ``exclude``'s, started ``age`` before ``t``."""
        ready = [
            a
            for a in self.w.apps
            if a.start + age <= t and all(a.dev is not e.dev for e in exclude)
        ]
        if not ready:
            ready = [
                a for a in self.w.apps if a.start < t and all(a.dev is not e.dev for e in exclude)
            ]
        return self.rng.choice(ready)

    def pick(
        self, t: int, n_apps: int = 1, n_sellers: int = 1, age: int = DAY_MS
    ) -> tuple[list[App], list[Seller]]:
        """Apps of distinct developers and sellers none of them has a pair with."""
        for _ in range(200):
            apps: list[App] = []
            for _ in range(n_apps):
                apps.append(self.app_at(t, tuple(apps), age))
            sellers = self.w.free_sellers(apps, n_sellers)
            if sellers is not None:
                return apps, sellers
        raise ValueError("not enough sellers for the injected cases; raise sellers")

    def new_key(self, app: App, created: int) -> str:
        """Creates a key whose dormancy alerts are simulated at the end."""
        key_id = self.w.key_id()
        self.w.tracked[key_id] = []
        self.dormancy_keys[key_id] = app.dev.id
        self.w.key_event(created, key_id, app, "created")
        return str(key_id)

    # ---- all cases ---------------------------------------------------------------------
    def run(self) -> None:
        """Injects the version 1 breaches and negatives (before the background)."""
        inject_unauthorized(self)
        inject_shared_quota(self)
        inject_disclosure(self)
        inject_dormancy(self)

    def after_background(self) -> None:
        """Injects the cases added after the background was (so the earlier ids stay)."""
        inject_viewers(self, PER_REASON)
        inject_credentials(self)
        inject_retry_storms(self)
        inject_linked_quota(self)
        inject_ownership_wait(self)
        inject_overreach(self)

    def finish(self, max_ts: int) -> list[dict[str, Any]]:
        """Completes the truth once the largest event time is known; the default truth."""
        for key_id, dev_id in self.dormancy_keys.items():
            occ = simulate_key(self.w.tracked[key_id], max_ts)
            for reason, _ts in fold(occ):
                self.expect("dormant_key", reason, {"key_id": key_id, "developer_id": dev_id})
        for subject, _ts in viewer_truth(self.w):
            self.expect("unauthorized_seller_access", "unauthorized_viewer", subject)
        return [*self.truth, *self.only[DEFAULT]]

    def tuned_truth(self) -> list[dict[str, Any]]:
        """The truth under the tuned configuration (after ``finish``)."""
        hidden = {tuned.alert_key(a) for a in self.excepted}
        return [a for a in (*self.truth, *self.only[TUNED]) if tuned.alert_key(a) not in hidden]

    def tuned_config(self) -> str:
        """The tuned configuration as TOML (a partial file: the rest keeps its defaults)."""
        return tuned.render(self.exceptions)

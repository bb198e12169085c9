"""Routing of records to detector items, the stages, and the in-process pipeline.

The in-process pipeline is what offline replay and tests run.

Stages: ``detect`` (prefixes D, G, K, L, O, R, U) -> ``throttle`` (T, I) -> ``alerts``
(A, S). In a worker each stage runs one shard per partition of its topic; here one shard
each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from aupwatch.detectors.alerts import SEP, AlertAggregator, SuppressedAggregator, is_new
from aupwatch.detectors.config import DetectorConfig
from aupwatch.detectors.engine import NEVER, Item, Operator, Output, Shard
from aupwatch.detectors.item import C_SELLER, KEY, PAYLOAD
from aupwatch.detectors.record_shard import RecordShard
from aupwatch.detectors.registry import PREFIXES, detector_operators, live_prefixes
from aupwatch.detectors.throttle import is_solo, scope_seller, solo_forward
from aupwatch.detectors.watermarks import SourceClock
from aupwatch.schemas.records import KIND_RANK, ApiCall, Authorization, DataAccess, KeyEvent, Record

STAGES = ("detect", "throttle", "alerts")
# state-key prefix -> detector name (``alerts`` for the aggregators), from the registry
DETECTOR_OF_PREFIX: dict[str, str] = dict(PREFIXES)


@dataclass(frozen=True, slots=True)
class Routing:
    """Which detect-stage items records feed: none for state that cannot change.

    Attributes:
        prefixes: The state-key prefixes that get items (``registry.live_prefixes``).
        ignored_agents: User agents that link no one (``link_ignore_values``): a call's
            ``G`` item would change nothing.
    """

    prefixes: frozenset[str]
    ignored_agents: frozenset[str] = frozenset()
    # whether a call feeds D, G, K, L, O, R, U
    call_steps: tuple[bool, ...] = field(init=False)
    # whether it feeds G, and whether it feeds every other step of a call
    to_g: bool = field(init=False)
    every_call: bool = field(init=False)

    def __post_init__(self) -> None:
        # frozen: the derived fields are set through object
        steps = tuple(p in self.prefixes for p in "DGKLORU")
        object.__setattr__(self, "call_steps", steps)
        object.__setattr__(self, "to_g", steps[1])
        object.__setattr__(self, "every_call", all(steps[:1] + steps[2:]))

    @classmethod
    def of(cls, config: DetectorConfig) -> Routing:
        """The routing of one configuration (replay and workers route with the same)."""
        return cls(live_prefixes(config), config.link_ignore_values)


# the prefixes of a call's keys, with their separator
_D, _G, _K, _L, _O, _R, _U = (p + SEP for p in "DGKLORU")


# every item of every step: what routing gave before it depended on the settings
EVERY = Routing(frozenset(PREFIXES))


def route(rec: Record, origin: int = 0, routing: Routing = EVERY) -> Item | None:
    """Turns one record into its detect-stage item: the state keys it feeds, packed fields.

    Args:
        rec: A validated record.
        origin: Wall-clock ms at which the record was appended to Kafka (0 offline).
        routing: Which steps can change state (``Routing.of(config)``); the default
            routes to every step, which gives the same alerts at a higher cost.

    Returns:
        ``(ts, rank, event_id, keys, packed, origin)``, keys in the order the engine
        decides them, or None when no live step takes the record. A worker splits the
        keys among the partitions that own them.
    """
    if type(rec) is not ApiCall:
        return _route_other(rec, origin, routing)
    app, seller, key_id = rec.app_id, rec.seller_id, rec.key_id
    status = rec.status
    rids = rec.resource_ids
    # prefixes in key order: D < G < K < L < O < R < U
    if routing.every_call:  # D, K, L, O, R, U live: the usual settings
        agent = rec.user_agent
        if agent and routing.to_g and agent not in routing.ignored_agents:
            keys = [_D + key_id, _G + agent, _K + key_id, _L + rec.source_ip]
        else:
            keys = [_D + key_id, _K + key_id, _L + rec.source_ip]
        if rids and 200 <= status < 300:
            if len(rids) == 1:  # the usual case, without a comprehension's call
                keys.append(f"{_O}{app}{SEP}{rids[0]}")
            else:
                pre = _O + app + SEP
                keys += [pre + rid for rid in sorted(rids)]
        keys += (f"{_R}{app}{SEP}{seller}{SEP}{rec.operation}", f"{_U}{app}{SEP}{seller}")
    else:
        keys = []
        to_d, to_g, to_k, to_l, to_o, to_r, to_u = routing.call_steps
        if to_d:
            keys.append(_D + key_id)
        agent = rec.user_agent
        if agent and to_g and agent not in routing.ignored_agents:
            keys.append(_G + agent)
        if to_k:
            keys.append(_K + key_id)
        if to_l:
            keys.append(_L + rec.source_ip)
        if rids and 200 <= status < 300 and to_o:
            pre = _O + app + SEP
            keys += [pre + rid for rid in sorted(rids)]
        if to_r:
            keys.append(f"{_R}{app}{SEP}{seller}{SEP}{rec.operation}")
        if to_u:
            keys.append(f"{_U}{app}{SEP}{seller}")
        if not keys:
            return None
    packed = (
        "c",
        rec.developer_id,
        app,
        rec.operation,
        status,
        rec.source_ip,
        seller,
        rec.region,
    )
    return (rec.ts, 2, rec.event_id, keys, packed, origin)


def _route_other(rec: Record, origin: int, routing: Routing) -> Item | None:
    """``route`` of an authorization, a data access or a key event."""
    ts, eid = rec.ts, rec.event_id
    live = routing.prefixes
    keys: list[str] = []
    packed: tuple[Any, ...]
    if isinstance(rec, Authorization):
        if "U" not in live:
            return None
        keys.append(f"U{SEP}{rec.app_id}{SEP}{rec.seller_id}")
        if rec.action == "grant":
            return (ts, 1, eid, keys, ("g", list(rec.roles), rec.expires_at), origin)
        return (ts, 1, eid, keys, ("r",), origin)
    if isinstance(rec, DataAccess):
        if "O" in live:
            pre = f"O{SEP}{rec.app_id}{SEP}"
            keys += [pre + rid for rid in sorted(rec.resource_ids)]
        if rec.viewer_seller_id is not None and rec.viewer_type == "seller_user" and "U" in live:
            # the viewer's seller must have authorized the app (after the O keys: U > O)
            keys.append(f"U{SEP}{rec.app_id}{SEP}{rec.viewer_seller_id}")
        if not keys:
            return None
        packed = ("a", rec.viewer_type, rec.viewer_id, rec.viewer_seller_id, rec.channel)
        return (ts, 3, eid, keys, packed, origin)
    assert isinstance(rec, KeyEvent)
    if "D" in live:
        keys.append(f"D{SEP}{rec.key_id}")
    if "K" in live:
        keys.append(f"K{SEP}{rec.key_id}")
    if not keys:
        return None
    packed = ("k", rec.action, rec.developer_id, rec.app_id)
    return (ts, KIND_RANK["key_event"], eid, keys, packed, origin)


def _live_forwards(forwards: list[Item], throttle: Shard) -> list[Item]:
    """Drops the forwards to ``SharedQuota`` that cannot change the throttle stage.

    A forward is decided in the step that made it (its time is at most the watermark
    both shards advance to). ``SharedQuota`` (prefix T) creates state only for a call with
    links (payload ``[developer, status, address, links]``), so a call without links to a
    scope that has no state, and no call with links in this step or still buffered, meets
    no state when decided and changes nothing. Most calls share no address: ``Links``
    hands those on as their own detect items, and only those of a seller with such a
    scope are built into forwards. Forwards to other operators all pass.
    """
    built = [f for f in forwards if type(f[KEY]) is str]  # one pass: the rest are solo calls
    live = {k for f in built if isinstance(k := f[KEY], str) and (k[0] != "T" or f[PAYLOAD][3])}
    live.update(
        k for b in throttle.buffer if isinstance(k := b[KEY], str) and k[0] == "T" and b[PAYLOAD][3]
    )
    store = throttle.store
    sellers = {scope_seller(k) for k in chain(live, store) if k[0] == "T"}
    if not sellers:  # the usual step: no solo call can meet a scope
        return [f for f in built if f[KEY] in live or f[KEY] in store]
    kept = []
    for f in forwards:
        if is_solo(f):
            if f[PAYLOAD][C_SELLER] not in sellers:
                continue
            f = solo_forward(f)
        if f[KEY] in live or f[KEY] in store:
            kept.append(f)
    return kept


def stage_operators(stage: str, config: DetectorConfig) -> list[Operator]:
    """The operators of one stage (detector steps as declared, or the aggregators)."""
    if stage == "alerts":
        return [AlertAggregator(config), SuppressedAggregator(config)]
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    return detector_operators(stage, config)


def shard_of(
    stage: str, ops: list[Operator], config: DetectorConfig, **kw: Any
) -> Shard | RecordShard:
    """A new shard of a stage: the detect stage's items are records (``RecordShard``)."""
    return RecordShard(ops, config, **kw) if stage == "detect" else Shard(ops, config, **kw)


@dataclass(slots=True)
class Stats:
    """Counts the pipeline keeps (records by kind and outcome are counted by callers)."""

    duplicates: int = 0
    late: int = 0
    unowned: int = 0
    alerts_new: int = 0
    alert_versions: int = 0
    by_detector: dict[str, int] = field(default_factory=dict)
    # excepted occurrences by (detector, reason)
    suppressed: dict[tuple[str, str], int] = field(default_factory=dict)


class Pipeline:
    """All stages in one process, fed records in arrival order.

    Args:
        config: Detector settings.
    """

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        # nothing here persists state: no changed-key tracking
        self.shards = {
            s: shard_of(s, stage_operators(s, config), config, track_dirty=False) for s in STAGES
        }
        self.routing = Routing.of(config)
        self.clock = SourceClock(config.allowed_lateness)
        self.pending: list[Item] = []
        self.stats = Stats()
        self.suppressed: list[dict[str, Any]] = []

    @property
    def max_ts(self) -> int:
        """Largest event time seen."""
        return self.clock.max_ts

    @property
    def watermark(self) -> int:
        """Largest event time seen minus the allowed lateness."""
        wm = self.clock.watermark(False)
        return NEVER if wm is None else wm

    def feed(self, rec: Record) -> bool:
        """Queues one record; returns True when it was late (at or below the watermark)."""
        late = self.clock.see(rec.ts)
        item = route(rec, 0, self.routing)
        if item is not None:
            self.pending.append(item)
        if late:
            self.stats.late += 1
        return late

    def step(self, final: bool = False) -> list[dict[str, Any]]:
        """Moves queued items through every stage up to the watermark.

        Versions of suppressed alerts are kept in ``self.suppressed`` until taken.

        Args:
            final: End of input: flush the watermark to the largest event time seen.

        Returns:
            Alert versions emitted, in order.
        """
        wm = self.max_ts if final else self.watermark
        out = Output()
        detect, throttle, alerts = (self.shards[s] for s in STAGES)
        detect.add(self.pending, out)
        self.pending = []
        detect.advance(wm, out)
        throttle.add(_live_forwards(out.forwards, throttle), out)
        out.forwards = []
        throttle.advance(wm, out)
        alerts.add(out.occurrences, out)
        out.occurrences = []
        alerts.advance(wm, out)
        self.stats.duplicates += out.duplicates
        self.stats.unowned += out.unowned
        for alert in out.alerts:
            self.stats.alert_versions += 1
            if is_new(alert):
                self.stats.alerts_new += 1
                det = alert["detector"]
                self.stats.by_detector[det] = self.stats.by_detector.get(det, 0) + 1
        if out.suppressed:
            counts = self.stats.suppressed
            for alert in out.suppressed:  # one version per excepted occurrence
                pair = (alert["detector"], alert["reason"])
                counts[pair] = counts.get(pair, 0) + 1
            self.suppressed.extend(out.suppressed)
        return out.alerts

    def take_suppressed(self) -> list[dict[str, Any]]:
        """Returns and forgets the suppressed alert versions emitted so far."""
        taken, self.suppressed = self.suppressed, []
        return taken

    def state_sizes(self) -> dict[str, int]:
        """Stored keys per detector, over all stages."""
        sizes: dict[str, int] = {}
        for shard in self.shards.values():
            for prefix, n in shard.state_sizes().items():
                name = DETECTOR_OF_PREFIX[prefix]
                sizes[name] = sizes.get(name, 0) + n
        return sizes
